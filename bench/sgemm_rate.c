/* OpenBLAS's single-precision GEMM rate on this machine: the yardstick
 * against which bench/step_bench.sh reads a training step's GFLOP/s.
 *
 *   sc_sgemm_rate [--threads T] [--reps R] [N ...]
 *   sc_sgemm_rate --best-core
 *
 * Times cblas_sgemm C = A B on N x N matrices (default sizes 1024 1536
 * 2048) with T OpenBLAS threads (default 2), R timed calls per size
 * (default 7) after one warm-up call, and prints each size's median
 * GFLOP/s and then the median of those medians as the rate:
 *
 *   sgemm rate 123.4 GFLOP/s (median over sizes, 2 threads)
 *
 * --best-core prints the strongest OpenBLAS core this CPU runs (the value
 * of OPENBLAS_CORETYPE that a training binary would choose,
 * sc_blascore_best), or nothing when it has no AVX2 + FMA. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "sc_blascore.h"

#define MAX_SIZES 16

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int usage(void)
{
    fprintf(stderr, "usage: sc_sgemm_rate [--threads T] [--reps R] [N ...] | --best-core\n");
    return 2;
}

/* Median GFLOP/s of reps calls at size n, or -1 when out of memory. */
static double rate_at(int n, int reps)
{
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double *g = malloc((size_t)reps * sizeof *g);
    double r = -1;
    if (a && b && c && g) {
        unsigned s = 12345;
        for (size_t i = 0; i < nn; i++) {
            s = s * 1103515245u + 12345u;
            a[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
            b[i] = (float)((s >> 4) & 0xffff) / 65536.0f - 0.5f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        for (int k = 0; k < reps; k++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            g[k] = 2.0 * n * (double)n * n / (now() - t0) / 1e9;
        }
        r = median(g, reps);
    }
    free(a);
    free(b);
    free(c);
    free(g);
    return r;
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 7, sizes[MAX_SIZES], nsizes = 0;
    if (argc == 2 && !strcmp(argv[1], "--best-core")) {
        sc_cpu_simd cpu;
        sc_cpu_simd_probe(&cpu);
        const char *best = sc_blascore_best(&cpu);
        printf("%s\n", best ? best : "");
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") || !strcmp(argv[i], "--reps")) {
            int *dst = argv[i][2] == 't' ? &threads : &reps;
            if (i + 1 >= argc || parse_int(argv[i + 1], 1, 1024, dst)) {
                fprintf(stderr, "sc_sgemm_rate: error: %s needs an integer from 1 to 1024\n", argv[i]);
                return 2;
            }
            i++;
        } else if (argv[i][0] == '-') {
            return usage();
        } else if (nsizes == MAX_SIZES || parse_int(argv[i], 16, 16384, &sizes[nsizes++])) {
            fprintf(stderr, "sc_sgemm_rate: error: sizes are up to %d integers from 16 to 16384, not '%s'\n",
                    MAX_SIZES, argv[i]);
            return 2;
        }
    }
    if (!nsizes) {
        sizes[0] = 1024;
        sizes[1] = 1536;
        sizes[2] = 2048;
        nsizes = 3;
    }
    openblas_set_num_threads(threads);
    printf("%s (core %s), %d threads\n", openblas_get_config(), openblas_get_corename(), openblas_get_num_threads());
    double med[MAX_SIZES];
    for (int i = 0; i < nsizes; i++) {
        med[i] = rate_at(sizes[i], reps);
        if (med[i] < 0) {
            fprintf(stderr, "sc_sgemm_rate: error: out of memory at N = %d\n", sizes[i]);
            return 1;
        }
        printf("N = %5d: %.1f GFLOP/s (median of %d)\n", sizes[i], med[i], reps);
    }
    printf("sgemm rate %.1f GFLOP/s (median over sizes, %d threads)\n", median(med, nsizes),
           openblas_get_num_threads());
    return 0;
}
