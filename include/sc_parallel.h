/* The runtime's thread pool, driven by generated code.
 *
 * A generated kernel whose outer loop can be split (convolution chunks,
 * channels, planes, blocks of elements) is called through sc_parallel_for:
 * the pool runs fn(ctx, lo, hi, tid) on every thread tid in [0, threads),
 * with [lo, hi) the tid-th of `threads` contiguous, nearly equal slices of
 * [0, n) (possibly empty), and returns when all are done. The static split
 * makes results independent of timing: the same thread count gives
 * bit-identical results.
 *
 * OpenBLAS is kept to one thread while the pool has more than one, so the
 * two never oversubscribe the cores: each pool thread calls sgemm on its
 * own slice. */
#ifndef SC_PARALLEL_H
#define SC_PARALLEL_H

#include <stdint.h>

typedef void (*sc_task_fn)(void *ctx, int64_t lo, int64_t hi, int64_t tid);

void sc_parallel_for(sc_task_fn fn, void *ctx, int64_t n);

/* Sets the number of threads (1 .. the model's max_threads; larger values
 * are clamped); 0 means the default: the online CPUs, clamped. Call it
 * before the first step. Returns the number in effect. */
int sc_threads_set(int n);
/* The number of threads in effect (initialising the default if unset). */
int sc_threads(void);
/* Between steps, BLAS calls outside generated code (the kNN monitor, the
 * linear probe) may use every pool thread's core: wide 1 gives OpenBLAS
 * the pool's thread count, wide 0 takes it back to one (required again
 * before the next step). No effect with a one-thread pool. */
void sc_blas_wide(int wide);
/* The CPUs this process may run on (its affinity mask: what mpirun,
 * taskset or a container allow), else the online CPUs; at least 1. */
int sc_cpus(void);

#endif
