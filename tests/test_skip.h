/* Skipping a test case so that CTest says so: cmocka counts a skip() as
 * no failure, so a program whose only trouble was a skip would pass.
 * test_skip() notes it, and test_exit() turns "no failure, something
 * skipped" into SKIP_CODE, which tests/CMakeLists.txt declares as every
 * test's SKIP_RETURN_CODE. Header-only: each test program is one file. */
#ifndef TEST_SKIP_H
#define TEST_SKIP_H

#define SKIP_CODE 77

static int test_skipped;

/* Prints why (printf arguments) and skips the running test case. */
#define test_skip(...)                                                                                                 \
    do {                                                                                                               \
        print_message(__VA_ARGS__);                                                                                    \
        test_skipped = 1;                                                                                              \
        skip();                                                                                                        \
    } while (0)

/* The program's exit status from cmocka's count of failed tests. */
static inline int test_exit(int failed)
{
    return failed ? 1 : test_skipped ? SKIP_CODE : 0;
}

#endif
