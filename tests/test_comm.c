/* test_comm: the communicators (runtime/comm_serial.c, runtime/comm_mpi.c)
 * against one-process references, through tests/comm_check.c: the serial
 * one directly, the MPI one under mpirun with 1, 2 and 3 ranks (3: a
 * world size that is not a power of two). The MPI cases skip (the program
 * then exits with CTest's skip code) when the suite was built without MPI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mpi_run.h"
#include "test_skip.h"

static void run_check(const char *prog, int ranks)
{
    const char *bin = getenv("SC_BINARY_DIR");
    assert_non_null(bin);
    char *path = xprintf("%s/tests/%s", bin, prog);
    char *argv[] = {path, NULL};
    int rc = ranks ? run_mpi(ranks, argv, NULL) : run_log(argv, NULL);
    if (rc != 0)
        print_error("%s%s%d exited with status %d\n", prog, ranks ? " under mpirun -np " : "", ranks, rc);
    free(path);
    assert_int_equal(rc, 0);
}

static void test_serial(void **state)
{
    (void)state;
    run_check("comm_check_serial", 0);
}

static void test_mpi_ranks(void **state)
{
    (void)state;
    if (!mpi_available())
        test_skip("simclrc was built without MPI: the MPI communicator is not tested\n");
    run_check("comm_check_mpi", 1);
    run_check("comm_check_mpi", 2);
    run_check("comm_check_mpi", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial),
        cmocka_unit_test(test_mpi_ranks),
    };
    return test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
