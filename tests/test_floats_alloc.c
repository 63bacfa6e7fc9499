/* sc_floats_alloc (runtime/state.c): zeroed, 64-byte aligned below
 * 2 MiB, 2 MiB aligned from there (where it asks for huge pages), writable
 * to its last float; NULL for negative or overflowing sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sc_state.h"

#define HUGE_BYTES ((uintptr_t)2 << 20)

static void check(int64_t n, uintptr_t align)
{
    float *p = sc_floats_alloc(n);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % align, 0);
    for (int64_t i = 0; i < n; i += 997)
        assert_true(p[i] == 0.0f);
    if (n > 0) {
        assert_true(p[n - 1] == 0.0f);
        p[n - 1] = 1.0f;
    }
    free(p);
}

static void test_alignment(void **state)
{
    (void)state;
    check(0, 64);
    check(1, 64);
    check(1000, 64);
    check((int64_t)(HUGE_BYTES / 4) - 1, 64);
    check((int64_t)(HUGE_BYTES / 4), HUGE_BYTES);      /* exactly one huge page */
    check((int64_t)(3 * HUGE_BYTES / 4) + 5, HUGE_BYTES); /* a partial huge page at the end */
}

static void test_bad_sizes(void **state)
{
    (void)state;
    assert_null(sc_floats_alloc(-1));
    assert_null(sc_floats_alloc(INT64_MAX));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
