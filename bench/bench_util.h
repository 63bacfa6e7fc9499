/* What the one-core kernel benchmarks (wgrad_bench.c, wino_bench.c,
 * wino_wgrad_bench.c) share: a thread-CPU clock, so another process on
 * the machine does not count, deterministic test data, and the timing of
 * a JIT-compiled kernel. */
#ifndef SC_BENCH_UTIL_H
#define SC_BENCH_UTIL_H

#include <stdint.h>

#include "codegen.h"

/* this thread's CPU time in seconds */
double sc_bench_cpu_now(void);

/* n floats, 64-byte aligned, in [-0.5, 0.5) by a fixed pattern; exits
 * with `prog`'s name on running out of memory */
float *sc_bench_floats(const char *prog, int64_t n);

/* A code generator for the host at -O2; exits with `prog`'s name when
 * LLVM cannot make one */
sc_codegen *sc_bench_codegen(const char *prog);

/* The best thread CPU seconds of `reps` runs of c's JIT-compiled
 * function `name`, void name(p0, p1, p2, p3); exits with `prog`'s name
 * when it cannot be compiled */
double sc_bench_best4(sc_codegen *c, const char *prog, const char *name, int reps, void *p0, void *p1, void *p2,
                      void *p3);

#endif
