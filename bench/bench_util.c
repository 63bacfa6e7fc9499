#include "bench_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double sc_bench_cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

float *sc_bench_floats(const char *prog, int64_t n)
{
    float *p = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64));
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(1);
    }
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    return p;
}

double sc_bench_best4(sc_codegen *c, const char *prog, const char *name, int reps, void *p0, void *p1, void *p2,
                      void *p3)
{
    char err[1024];
    void (*fn)(void *, void *, void *, void *) =
        (void (*)(void *, void *, void *, void *))(uintptr_t)sc_codegen_jit(c, name, err, sizeof err);
    if (!fn) {
        fprintf(stderr, "%s: %s\n", prog, err);
        exit(1);
    }
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = sc_bench_cpu_now();
        fn(p0, p1, p2, p3);
        double t = sc_bench_cpu_now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

sc_codegen *sc_bench_codegen(const char *prog)
{
    char err[1024];
    sc_codegen_options opt = {.opt_level = 2};
    sc_codegen *c = sc_codegen_new(&opt, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s: %s\n", prog, err);
        exit(1);
    }
    return c;
}
