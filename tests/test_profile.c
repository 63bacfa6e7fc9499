/* The per-kernel profiler (runtime/profile.c), driven the way generated
 * sc_step code drives it: marks before every node, -1 at the end. Sleeps
 * stand in for kernels; every bound is taken from the test's own clock
 * around the marks, so a slow machine cannot make it fail. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sc_profile.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec t = {0, (long)ms * 1000000L};
    while (nanosleep(&t, &t))
        ;
}

static int setup(void **state)
{
    (void)state;
    return sc_prof_init(3);
}

static int teardown(void **state)
{
    (void)state;
    sc_prof_free();
    return 0;
}

/* Time between two marks goes to the earlier node; after -1, to nobody. */
static void test_attribution(void **state)
{
    (void)state;
    double a = now();
    sc_prof_node(0);
    double b = now();
    sleep_ms(20);
    double c = now();
    sc_prof_node(2);
    double d = now();
    sleep_ms(5);
    double e = now();
    sc_prof_node(-1);
    double f = now();
    sleep_ms(30);
    sc_prof_node(-1);   /* a second end mark closes nothing */

    assert_int_equal(sc_prof_calls(0), 1);
    assert_int_equal(sc_prof_calls(1), 0);
    assert_int_equal(sc_prof_calls(2), 1);
    double s0 = sc_prof_seconds(0), s1 = sc_prof_seconds(1), s2 = sc_prof_seconds(2);
    assert_true(s0 >= c - b && s0 <= d - a);
    assert_true(s1 == 0.0);
    assert_true(s2 >= e - d && s2 <= f - c);
    assert_true(s2 < 0.030);   /* the 30 ms after the end mark are nobody's */
    assert_int_equal(sc_prof_stray(), 0);
}

/* Every entry of a node counts once, and times add up over steps. */
static void test_calls_accumulate(void **state)
{
    (void)state;
    double inside = 0;
    for (int step = 0; step < 4; step++) {
        sc_prof_node(1);
        double t = now();
        sleep_ms(2);
        inside += now() - t;
        sc_prof_node(0);
        sc_prof_node(-1);
    }
    assert_int_equal(sc_prof_calls(0), 4);
    assert_int_equal(sc_prof_calls(1), 4);
    assert_int_equal(sc_prof_calls(2), 0);
    assert_true(sc_prof_seconds(1) >= inside);
    assert_true(sc_prof_seconds(1) >= 0.008);
    assert_true(sc_prof_seconds(0) < sc_prof_seconds(1));
}

/* Reset zeroes everything and forgets a node left open. */
static void test_reset(void **state)
{
    (void)state;
    sc_prof_node(2);
    sleep_ms(3);
    sc_prof_node(7);   /* outside the table of 3 */
    sc_prof_node(1);
    assert_int_equal(sc_prof_stray(), 1);
    sc_prof_reset();
    sleep_ms(3);
    sc_prof_node(-1);  /* node 1 was open before the reset: not charged */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sc_prof_calls(i), 0);
        assert_true(sc_prof_seconds(i) == 0.0);
    }
    assert_int_equal(sc_prof_stray(), 0);
}

/* A stray mark closes the open node; the time after it is nobody's. */
static void test_stray(void **state)
{
    (void)state;
    double a = now();
    sc_prof_node(0);
    sc_prof_node(3);
    double b = now();
    sleep_ms(10);
    sc_prof_node(-1);
    assert_int_equal(sc_prof_stray(), 1);
    assert_int_equal(sc_prof_calls(0), 1);
    assert_true(sc_prof_seconds(0) <= b - a);
    assert_int_equal(sc_prof_calls(-1), 0);
    assert_int_equal(sc_prof_calls(3), 0);
    assert_true(sc_prof_seconds(3) == 0.0);
    assert_int_equal(sc_prof_init(-1), -1);
    assert_int_equal(sc_prof_calls(0), 1);   /* a failed init keeps the counters */
}

/* Before any init every mark is stray. */
static void test_uninitialised(void **state)
{
    (void)state;
    sc_prof_free();
    sc_prof_node(0);
    sc_prof_node(-1);
    assert_int_equal(sc_prof_stray(), 1);
    assert_int_equal(sc_prof_calls(0), 0);
}

static char *printed(const sc_node_info *nodes, int n, int64_t steps, double seconds)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    sc_prof_print(f, nodes, n, steps, seconds);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* The line of the table that starts with the given rank. */
static const char *rank_line(const char *text, int rank, char *out, size_t len)
{
    char key[16];
    snprintf(key, sizeof key, "\n%5d  ", rank);
    const char *p = strstr(text, key);
    if (!p)
        return NULL;
    p++;
    size_t n = strcspn(p, "\n");
    snprintf(out, len, "%.*s", (int)n, p);
    return out;
}

static void test_print(void **state)
{
    (void)state;
    static const sc_node_info nodes[3] = {
        {"encoder.0.conv", "conv2d", "im2col+gemm", 4e9, 2},
        {"encoder.0.bn", "batchnorm+relu", "loop", 0, 2},
        {"encoder.1.conv", "conv2d", "gemm 1x1", 2e9, 2},
    };
    /* Two steps: node 2 slowest, then 0; node 1 never runs. */
    double t0 = now();
    for (int step = 0; step < 2; step++) {
        sc_prof_node(0);
        sleep_ms(4);
        sc_prof_node(2);
        sleep_ms(12);
        sc_prof_node(-1);
    }
    double total = now() - t0;
    char *out = printed(nodes, 3, 2, total);

    char line[256], want[64];
    assert_non_null(rank_line(out, 1, line, sizeof line));
    assert_non_null(strstr(line, "encoder.1.conv"));
    assert_non_null(strstr(line, "gemm 1x1"));
    snprintf(want, sizeof want, " %.1f ", 2 * 2e9 / sc_prof_seconds(2) / 1e9);
    assert_non_null(strstr(line, want));
    snprintf(want, sizeof want, " %.1f%%", 100.0 * sc_prof_seconds(2) / total);
    assert_non_null(strstr(line, want));
    assert_non_null(rank_line(out, 2, line, sizeof line));
    assert_non_null(strstr(line, "encoder.0.conv"));
    assert_null(rank_line(out, 3, line, sizeof line));   /* node 1 never ran */
    assert_non_null(strstr(out, "1 of 3 nodes never ran"));

    /* Per op: the two convolutions merge into one row. */
    const char *ops = strstr(out, "\nper op:\n");
    assert_non_null(ops);
    const char *conv = strstr(ops, "\nconv2d ");
    assert_non_null(conv);
    int nn = 0;
    long long calls = 0;
    assert_int_equal(sscanf(conv + 1, "conv2d %d %lld", &nn, &calls), 2);
    assert_int_equal(nn, 2);
    assert_int_equal(calls, 4);
    assert_null(strstr(ops, "batchnorm+relu"));
    free(out);

    /* A node without FLOPs shows "-" for its rate. */
    sc_prof_reset();
    sc_prof_node(1);
    sleep_ms(1);
    sc_prof_node(-1);
    out = printed(nodes, 3, 1, 0.002);
    assert_non_null(rank_line(out, 1, line, sizeof line));
    assert_non_null(strstr(line, "encoder.0.bn"));
    assert_non_null(strstr(line, "    - "));
    free(out);
}

/* The CSV table: a header, the nodes that ran in call order, names with
 * commas and quotes quoted, times and FLOPs of all calls. */
static void test_csv(void **state)
{
    (void)state;
    static const sc_node_info nodes[3] = {
        {"a,b", "conv2d", "im2col+gemm", 4e9, 2},
        {"never", "relu", "loop", 0, 1},
        {"say \"x\"", "conv2d_bwd_data", "shift+gemm x2", 1e9, 2},
    };
    for (int step = 0; step < 3; step++) {
        sc_prof_node(2);
        sleep_ms(1);
        sc_prof_node(0);
        sleep_ms(1);
        sc_prof_node(-1);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(sc_prof_write_csv(f, nodes, 3), 0);
    fclose(f);
    char want[512];
    snprintf(want, sizeof want,
             "index,node,op,impl,calls,total_ms,flops\n"
             "0,\"a,b\",conv2d,im2col+gemm,3,%.6f,%.17g\n"
             "2,\"say \"\"x\"\"\",conv2d_bwd_data,shift+gemm x2,3,%.6f,%.17g\n",
             1e3 * sc_prof_seconds(0), 3 * 4e9, 1e3 * sc_prof_seconds(2), 3 * 1e9);
    assert_string_equal(text, want);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attribution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_accumulate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stray, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uninitialised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
