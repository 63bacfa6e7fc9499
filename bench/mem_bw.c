/* The memory bandwidth of this machine, STREAM-like: the yardstick against
 * which the memory-bound kernels of a step (pooling, batchnorm, ReLU) read
 * their GB/s in `bench-step --profile` (issue 14).
 *
 *   sc_mem_bw [--threads T] [--mib N]
 *
 * Each thread owns a slice of two float arrays of N MiB each (default
 * 256, well beyond the caches) and runs two kernels over it with libc's
 * tuned routines: copy (memcpy: 2 bytes moved per byte copied, as STREAM
 * counts it) and write (memset), each timed by its threads' CPU time.
 * Prints the best of 5 runs of each on 1 thread and on T threads
 * (default: the CPUs this process may run on):
 *
 *   copy 31.2 write 20.3 GB/s (1 thread); copy ... (2 threads)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 5
#define MAX_THREADS 1024

typedef struct {
    float *a, *b;
    size_t n;
    int kind; /* 0 copy, 1 write */
    double cpu;
} slice;

static double clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *run_slice(void *p)
{
    slice *s = p;
    double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    if (s->kind == 0)
        memcpy(s->b, s->a, s->n * sizeof(float));
    else
        memset(s->b, 0, s->n * sizeof(float));
    s->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
    return NULL;
}

/* Best GB/s of RUNS runs of kind over n floats split among T threads,
 * timed by the slowest thread's CPU time: on a shared machine, the rate
 * while running rather than a share of the wall clock. */
static double rate(float *a, float *b, size_t n, int T, int kind)
{
    pthread_t th[MAX_THREADS];
    slice s[MAX_THREADS];
    double best = 0;
    for (int r = 0; r < RUNS; r++) {
        for (int t = 0; t < T; t++) {
            size_t lo = n * (size_t)t / (size_t)T, hi = n * (size_t)(t + 1) / (size_t)T;
            s[t] = (slice){a + lo, b + lo, hi - lo, kind, 0};
            if (t && pthread_create(&th[t], NULL, run_slice, &s[t]) != 0) {
                fprintf(stderr, "sc_mem_bw: pthread_create: %s\n", strerror(errno));
                exit(1);
            }
        }
        run_slice(&s[0]);
        for (int t = 1; t < T; t++)
            pthread_join(th[t], NULL);
        double dt = 0;
        for (int t = 0; t < T; t++)
            dt = s[t].cpu > dt ? s[t].cpu : dt;
        double bytes = (double)n * sizeof(float) * (kind == 0 ? 2 : 1);
        if (bytes / dt > best)
            best = bytes / dt;
    }
    return best * 1e-9;
}

int main(int argc, char **argv)
{
    int T = 0;
    long mib = 256;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
            mib = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: sc_mem_bw [--threads T] [--mib N]\n");
            return 2;
        }
    }
    if (T <= 0) {
        cpu_set_t set;
        T = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    }
    if (T > MAX_THREADS || mib < 1 || mib > (1L << 20)) {
        fprintf(stderr, "sc_mem_bw: --threads 1..%d, --mib 1..%ld\n", MAX_THREADS, 1L << 20);
        return 2;
    }
    size_t n = (size_t)mib << 18; /* floats in N MiB */
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    if (!a || !b) {
        fprintf(stderr, "sc_mem_bw: out of memory\n");
        free(a);
        free(b);
        return 1;
    }
    for (size_t i = 0; i < n; i++) /* touched: no page faults in the timing */
        a[i] = b[i] = (float)(i & 255);
    int ts[2] = {1, T};
    for (int k = 0; k < (T > 1 ? 2 : 1); k++)
        printf("%scopy %.1f write %.1f GB/s (%d thread%s)", k ? "; " : "", rate(a, b, n, ts[k], 0),
               rate(a, b, n, ts[k], 1), ts[k], ts[k] > 1 ? "s" : "");
    printf("\n");
    free(a);
    free(b);
    return 0;
}
