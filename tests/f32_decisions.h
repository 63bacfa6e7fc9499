/* The float32 step's ReLU and max-pool decisions imposed on the float64
 * interpreter (f32_decisions.c), for test_codegen_parity.
 *
 * A ReLU input or a max-pool gap within float32 rounding of a tie may be
 * decided the other way by a float32 step than by float64, which reroutes
 * a gradient upstream. Which ties flip depends on the rounding (the seed,
 * the GEMM kernels), so no tolerance or seed can tell such a flip from a
 * bug. Instead the same model is generated in float32 in memory (the
 * binary's code: same passes, plan and code generator, run through MCJIT),
 * every decision of its step is recorded (y > 0 of each ReLU, the argmax of
 * each max-pool window), and the interpreter runs the step in float64 with
 * those decisions imposed. The compiled step must then match it at the
 * usual tolerance, and every flipped decision must be a near-tie of the
 * float64 forward (its margin is reported). Leaky ReLU's x > 0 is not
 * recorded: only tests/specs/activations.xml has one, and its gradients
 * match float64 without. */
#ifndef F32_DECISIONS_H
#define F32_DECISIONS_H

#include <stddef.h>

typedef struct {
    long decisions;        /* ReLU elements and max-pool windows decided */
    long relu_flips, pool_flips;
    double worst_margin;   /* largest flipped margin, relative to max|pre-activation| of its tensor */
    char worst_at[200];    /* the tensor where it is */
    /* The float32 error of the ReLU inputs both sides keep (y > 0), on
     * the same relative scale: */
    double max_error, sum_sq_error;
    long positives;
} f32_flips;

/* Compiles spec (batch, conv policy of convplan.h, generated GEMMs or
 * cblas_sgemm as --gemm=openblas, --fuse-stats or not, threads; the picks
 * of the --tune-table CSV tune_table unless it is NULL, as a --tune binary
 * that saved it was compiled) to float32 in
 * memory, runs its step from seed, and writes to path the interpreter's
 * step with the float32 decisions imposed: loss and grad/NAME (float32,
 * step-dump names), and the in-memory float32 step's own gradients as
 * f32/grad/NAME. Returns 0, or -1 with a message in err. */
int f32_imposed_step(const char *spec, int batch, int conv, int gemm_openblas, int fuse_stats, int threads,
                     const char *tune_table,
                     unsigned long long seed,
                     const char *path, f32_flips *fl, char *err, size_t errlen);

#endif
