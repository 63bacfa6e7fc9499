/* What the one-core kernel benchmarks (wgrad_bench.c, wino_bench.c,
 * wino_wgrad_bench.c) share: a thread-CPU clock, so another process on
 * the machine does not count, and deterministic test data. */
#ifndef SC_BENCH_UTIL_H
#define SC_BENCH_UTIL_H

#include <stdint.h>

/* this thread's CPU time in seconds */
double sc_bench_cpu_now(void);

/* n floats, 64-byte aligned, in [-0.5, 0.5) by a fixed pattern; exits
 * with `prog`'s name on running out of memory */
float *sc_bench_floats(const char *prog, int64_t n);

#endif
