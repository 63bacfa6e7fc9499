/* The thread pool behind sc_parallel_for (sc_parallel.h).
 *
 * threads - 1 workers plus the calling thread, which runs slice 0. A call
 * publishes the task and bumps a generation counter; workers spin on the
 * counter for a while (kernels follow each other within microseconds) and
 * then sleep on a condition variable. The caller waits for the others by
 * spinning on a countdown. Every thread runs its slice even when it is
 * empty, so kernels can rely on each thread's per-thread state (partial
 * sums) being initialised. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "sc_parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cblas.h>

#include "sc_abi.h"

/* Weak: the compiler's tests link this pool without a generated model. */
extern const sc_model_desc sc_model __attribute__((weak));

#define MAX_THREADS 256
#define SPINS 20000

static struct {
    int threads;                 /* 0 until set */
    int started;                 /* workers running: threads - 1 */
    pthread_t th[MAX_THREADS];
    sc_task_fn fn;
    void *ctx;
    int64_t n;
    atomic_uint_fast64_t gen;
    atomic_int pending;
    atomic_int sleepers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_slice(int tid)
{
    int64_t t = pool.threads;
    int64_t lo = pool.n * tid / t, hi = pool.n * (tid + 1) / t;
    pool.fn(pool.ctx, lo, hi, tid);
}

static void *worker(void *arg)
{
    int tid = (int)(intptr_t)arg;
    uint_fast64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load(&pool.gen) == seen && spins < SPINS) {
            cpu_relax();
            spins++;
        }
        if (atomic_load(&pool.gen) == seen) {
            pthread_mutex_lock(&pool.mu);
            atomic_fetch_add(&pool.sleepers, 1);
            while (atomic_load(&pool.gen) == seen)
                pthread_cond_wait(&pool.cv, &pool.mu);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.mu);
        }
        seen = atomic_load(&pool.gen);
        run_slice(tid);
        atomic_fetch_sub(&pool.pending, 1);
    }
    return NULL;
}

int sc_cpus(void)
{
    cpu_set_t set;
    long cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (int)(cpus < 1024 ? cpus : 1024) : 1;
}

static int default_threads(void)
{
    int cpus = sc_cpus();
    return cpus < MAX_THREADS ? cpus : MAX_THREADS;
}

int sc_threads_set(int n)
{
    if (pool.started)  /* workers run for the life of the process */
        return pool.threads;
    if (n <= 0)
        n = default_threads();
    int blas = n;
    int max = &sc_model == NULL ? MAX_THREADS : sc_model.max_threads > 0 ? sc_model.max_threads : 1;
    if (n > max)
        n = max;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    pool.threads = n;
    /* Our threads each call a one-thread sgemm on their own slice; a
     * model built for one thread leaves the cores to OpenBLAS instead. */
    openblas_set_num_threads(n > 1 ? 1 : blas);
    return n;
}

void sc_blas_wide(int wide)
{
    if (sc_threads() > 1)
        openblas_set_num_threads(wide ? pool.threads : 1);
}

int sc_threads(void)
{
    if (!pool.threads)
        sc_threads_set(0);
    return pool.threads;
}

/* Starts the workers on first use; on failure the pool shrinks to the
 * threads that did start (results do not depend on the count). */
static void start(void)
{
    sc_threads();
    for (int t = 1; t < pool.threads; t++)
        if (pthread_create(&pool.th[t], NULL, worker, (void *)(intptr_t)t)) {
            fprintf(stderr, "warning: could not start thread %d of %d; running with %d\n", t + 1,
                    pool.threads, t);
            pool.threads = t;
            break;
        }
    pool.started = 1;
}

void sc_parallel_for(sc_task_fn fn, void *ctx, int64_t n)
{
    if (!pool.started)
        start();
    if (pool.threads == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    atomic_store(&pool.pending, pool.threads - 1);
    atomic_fetch_add(&pool.gen, 1);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
    }
    run_slice(0);
    int spins = 0;
    while (atomic_load(&pool.pending) > 0) {
        if (++spins < SPINS)
            cpu_relax();
        else
            sched_yield();
    }
}
