/* The FP32 FMA peak of this machine: the yardstick against which
 * bench/step_bench.sh reads a training step's GFLOP/s (issue 14).
 *
 *   sc_fma_peak [--threads T] [--isa zmm|ymm]
 *
 * Each thread runs an inline-assembly loop of 12 independent vfmadd231ps
 * chains (enough to cover the FMA latency times the FMA ports of current
 * x86 cores: 4 x 2 on Skylake-X and Zen 4/5, 5 x 2 on Haswell) on zmm
 * registers when the CPU has AVX-512F, else on ymm (AVX2 + FMA). Prints
 * the best of 5 runs (about 0.3 s each) on 1 thread and on T threads
 * (default: the CPUs this process may run on):
 *
 *   fma peak 330.1 GFLOP/s (zmm, 2 threads); 1 thread 170.2 GFLOP/s
 *
 * Exits with 1 on a CPU without FMA. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAINS 12
#define RUNS 5
#define RUN_SECONDS 0.3
#define MAX_THREADS 1024

static const float mul = 1e-5f, add = 1e-5f; /* products stay normal, sums far from overflow */

/* CHAINS independent vfmadd231ps per iteration, iters iterations. */
#define FMA12(R)                                                                                          \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "0\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "1\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "2\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "3\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "4\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "5\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "6\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "7\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "8\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "9\n\t"                                                        \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "10\n\t"                                                       \
    "vfmadd231ps %%" R "12, %%" R "13, %%" R "11\n\t"

#define ZERO12(R)                                                                                         \
    "vxorps %%" R "0, %%" R "0, %%" R "0\n\t"                                                               \
    "vxorps %%" R "1, %%" R "1, %%" R "1\n\t"                                                               \
    "vxorps %%" R "2, %%" R "2, %%" R "2\n\t"                                                               \
    "vxorps %%" R "3, %%" R "3, %%" R "3\n\t"                                                               \
    "vxorps %%" R "4, %%" R "4, %%" R "4\n\t"                                                               \
    "vxorps %%" R "5, %%" R "5, %%" R "5\n\t"                                                               \
    "vxorps %%" R "6, %%" R "6, %%" R "6\n\t"                                                               \
    "vxorps %%" R "7, %%" R "7, %%" R "7\n\t"                                                               \
    "vxorps %%" R "8, %%" R "8, %%" R "8\n\t"                                                               \
    "vxorps %%" R "9, %%" R "9, %%" R "9\n\t"                                                               \
    "vxorps %%" R "10, %%" R "10, %%" R "10\n\t"                                                            \
    "vxorps %%" R "11, %%" R "11, %%" R "11\n\t"

#define CLOBBERS                                                                                          \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",   \
        "xmm12", "xmm13", "cc"

#if defined(__x86_64__)
/* One loop per register width R; vxorps on zmm needs AVX512DQ, so the
 * accumulators are zeroed as xmm, which clears the whole register. */
#define FMA_LOOP(NAME, R)                                                                                 \
    static void NAME(long iters)                                                                          \
    {                                                                                                     \
        __asm__ volatile(ZERO12("xmm") "vbroadcastss %1, %%" R "12\n\t"                                    \
                                       "vbroadcastss %2, %%" R "13\n\t"                                    \
                                       "1:\n\t" FMA12(R) "dec %0\n\t"                                      \
                                                         "jnz 1b\n\t"                                      \
                                                         "vzeroupper\n\t"                                  \
                         : "+r"(iters)                                                                    \
                         : "m"(mul), "m"(add)                                                             \
                         : CLOBBERS);                                                                     \
    }
FMA_LOOP(loop_zmm, "zmm")
FMA_LOOP(loop_ymm, "ymm")

static int have(int zmm)
{
    __builtin_cpu_init();
    return zmm ? __builtin_cpu_supports("avx512f")
               : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
/* No x86 vector FMA to measure. */
static void loop_zmm(long iters) { (void)iters; }
static void loop_ymm(long iters) { (void)iters; }
static int have(int zmm) { (void)zmm; return 0; }
#endif

typedef struct {
    void (*loop)(long);
    long iters;
} job;

static void *run_job(void *arg)
{
    const job *j = arg;
    j->loop(j->iters);
    return NULL;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds for nthreads threads to run iters iterations each, or -1. */
static double timed(job *j, int nthreads)
{
    pthread_t tid[MAX_THREADS];
    double t0 = now();
    int started = 0;
    for (; started < nthreads; started++)
        if (pthread_create(&tid[started], NULL, run_job, j))
            break;
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    return started == nthreads ? now() - t0 : -1;
}

/* The best GFLOP/s of RUNS runs on nthreads threads, or -1. */
static double peak(job *j, int nthreads, int lanes)
{
    double best = -1;
    for (int r = 0; r < RUNS; r++) {
        double s = timed(j, nthreads);
        if (s <= 0)
            return -1;
        double g = 2.0 * lanes * CHAINS * (double)j->iters * nthreads / s / 1e9;
        if (g > best)
            best = g;
    }
    return best;
}

int main(int argc, char **argv)
{
    cpu_set_t set;
    int threads = sched_getaffinity(0, sizeof set, &set) ? 1 : CPU_COUNT(&set);
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    const char *isa = NULL;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            errno = 0;
            long t = strtol(argv[++i], &end, 10);
            if (*end || errno || t < 1 || t > MAX_THREADS) {
                fprintf(stderr, "sc_fma_peak: error: --threads needs an integer from 1 to %d\n", MAX_THREADS);
                return 2;
            }
            threads = (int)t;
        } else if (!strcmp(argv[i], "--isa") && i + 1 < argc &&
                   (!strcmp(argv[i + 1], "zmm") || !strcmp(argv[i + 1], "ymm"))) {
            isa = argv[++i];
        } else {
            fprintf(stderr, "usage: sc_fma_peak [--threads T] [--isa zmm|ymm]\n");
            return 2;
        }
    }
    int zmm_ok = have(1), ymm_ok = have(0);
    if (!isa)
        isa = zmm_ok ? "zmm" : ymm_ok ? "ymm" : NULL;
    if (!isa || (!strcmp(isa, "zmm") && !zmm_ok) || (!strcmp(isa, "ymm") && !ymm_ok)) {
        fprintf(stderr, "sc_fma_peak: error: this CPU has no %s FMA (AVX-512F or AVX2 + FMA)\n", isa ? isa : "vector");
        return 1;
    }
    int lanes = !strcmp(isa, "zmm") ? 16 : 8;
    job j = {!strcmp(isa, "zmm") ? loop_zmm : loop_ymm, 1000000};
    /* Calibrate: iterations for about RUN_SECONDS on one thread. */
    double s = timed(&j, 1);
    if (s > 0)
        j.iters = (long)(j.iters * RUN_SECONDS / s) + 1;
    double one = peak(&j, 1, lanes), all = peak(&j, threads, lanes);
    if (one < 0 || all < 0) {
        fprintf(stderr, "sc_fma_peak: error: cannot start %d threads\n", threads);
        return 1;
    }
    printf("fma peak %.1f GFLOP/s (%s, %d thread%s); 1 thread %.1f GFLOP/s\n", all, isa, threads,
           threads > 1 ? "s" : "", one);
    return 0;
}
