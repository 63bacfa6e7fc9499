/* The vector paths a generated-kernel test runs its cases on: the host's
 * in float and double, then float with AVX2's (haswell, only where the
 * host has AVX2 and FMA: its code would not run otherwise) and the
 * generic 128-bit path's (x86-64). The test defines
 *     static void run(int f64, const char *cpu);   (cpu NULL: the host)
 * before including this, and lists KERNEL_TARGET_TESTS in its cmocka
 * group. For test_gemm_conv, test_dgrad_flip and test_maxpool_bwd. */
#ifndef KERNEL_TARGETS_H
#define KERNEL_TARGETS_H

static void test_float(void **state)
{
    (void)state;
    run(0, NULL);
}

static void test_double(void **state)
{
    (void)state;
    run(1, NULL);
}

static void test_other_vectors(void **state)
{
    (void)state;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        run(0, "haswell");
    run(0, "x86-64");
}

#define KERNEL_TARGET_TESTS                                                                                  \
    cmocka_unit_test(test_float), cmocka_unit_test(test_double), cmocka_unit_test(test_other_vectors)

#endif
