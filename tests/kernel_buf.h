/* Buffers of the generated-kernel tests (test_gemm_gen, test_gemm_conv,
 * test_dgrad_flip, test_winograd, test_maxpool_bwd, test_elementwise,
 * test_batchnorm_kernels), whose kernels run in float or in double:
 * element i of m read and written as a double either way, a checked
 * malloc, a seeded uniform draw in [-1, 1), and the CPU clock of their
 * --bench modes. Include after cmocka.h. */
#ifndef KERNEL_BUF_H
#define KERNEL_BUF_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline double frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2 - 1;
}

static inline void *alloc(size_t n)
{
    void *p = malloc(n);
    assert_non_null(p);
    return p;
}

static inline void put(void *m, size_t i, double v, int f64)
{
    if (f64)
        ((double *)m)[i] = v;
    else
        ((float *)m)[i] = (float)v;
}

static inline double get(const void *m, size_t i, int f64)
{
    return f64 ? ((const double *)m)[i] : ((const float *)m)[i];
}

/* Seconds of this process's CPU time (the --bench modes: the machine
 * may be shared, so no wall clock). */
static inline double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
