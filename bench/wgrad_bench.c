/* sc_wgrad_bench: the weight gradient's GEMM forms on resnet18-stl10's
 * layer shapes (batch 32: 64 views), one core, JIT-compiled for the host:
 *
 *   nt  dW = dy . col^T with col an explicit im2col matrix (the im2col
 *       pass that writes it is not timed)
 *   it  the same with col^T's blocks gathered from NCHW images (folded)
 *   ir  dW with tap-major columns, its blocks gathered as channel runs
 *       from channels-last images (what the plan uses; the copy to
 *       channels-last and the row reorder are not timed)
 *
 * Prints GFLOP/s from thread CPU time, best of R runs (default 7), so a
 * shared machine distorts it less than wall time. Not a test.
 *
 *   sc_wgrad_bench [R] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cg_gemm.h"
#include "codegen.h"
#include "codegen_internal.h"
#include "bench_util.h"

#define PROG "sc_wgrad_bench"

typedef struct {
    const char *name;
    int64_t o, c, hw, k, s, p, nb; /* output channels, input channels, input plane side, kernel, stride, pad, images */
} shape;

static const shape shapes[] = {
    {"layer1 3x3", 64, 64, 24, 3, 1, 1, 1},      {"layer2 3x3", 128, 128, 12, 3, 1, 1, 4},
    {"layer3 3x3", 256, 256, 6, 3, 1, 1, 8},     {"layer4 3x3", 512, 512, 3, 3, 1, 1, 32},
    {"layer4 3x3 s2", 512, 256, 6, 3, 2, 1, 32}, {"layer2 1x1 s2", 128, 64, 24, 1, 2, 0, 4},
    {"layer4 rows/2", 256, 512, 3, 3, 1, 1, 32}, /* one thread's half of dW's rows (convplan.h, mslices) */
};
#define NSHAPES (int)(sizeof shapes / sizeof *shapes)

typedef void (*gemm_f)(const void *, const void *, void *, float);

static sc_conv_geom geom(const shape *v)
{
    int64_t o = (v->hw + 2 * v->p - v->k) / v->s + 1;
    return (sc_conv_geom){v->c, v->hw, v->hw, v->k, v->s, v->p, o, o, 1, 1};
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 1)
        reps = 1;
    sc_codegen *c = sc_bench_codegen(PROG);
    char err[1024];
    LLVMTypeRef args[4] = {c->ptr, c->ptr, c->ptr, c->elt};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 4, 0);
    for (int i = 0; i < NSHAPES; i++)
        for (int f = 0; f < 3; f++) {
            const shape *v = &shapes[i];
            sc_conv_geom g = geom(v);
            int64_t ckk = v->c * v->k * v->k, cols = v->nb * g.oh * g.ow;
            char name[32];
            snprintf(name, sizeof name, "bench_%d_%d", i, f);
            c->fn = LLVMAddFunction(c->mod, name, ft);
            c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
            LLVMPositionBuilderAtEnd(c->b, c->entry);
            LLVMValueRef a = LLVMGetParam(c->fn, 0), b = LLVMGetParam(c->fn, 1), out = LLVMGetParam(c->fn, 2),
                         beta = LLVMGetParam(c->fn, 3);
            if (f == 0)
                sc_cg_gemm(c, 0, 1, v->o, ckk, cols, a, cols, b, cols, beta, out, ckk);
            else if (f == 1)
                sc_cg_gemm_conv(c, 1, v->o, ckk, cols, a, cols, &g, v->nb, b, beta, out, ckk);
            else
                sc_cg_gemm_conv_rows(c, v->o, ckk, cols, a, cols, &g, v->nb, b, beta, out, ckk);
            LLVMBuildRetVoid(c->b);
        }
    if (sc_codegen_optimize(c, err, sizeof err)) {
        fprintf(stderr, "sc_wgrad_bench: %s\n", err);
        return 1;
    }
    printf("%-14s %-16s %8s %8s %8s  (GFLOP/s, one core, thread CPU time, best of %d)\n", "shape", "o x ckk x cols", "nt",
           "it", "ir", reps);
    for (int i = 0; i < NSHAPES; i++) {
        const shape *v = &shapes[i];
        sc_conv_geom g = geom(v);
        int64_t ckk = v->c * v->k * v->k, cols = v->nb * g.oh * g.ow;
        float *a = sc_bench_floats(PROG, v->o * cols), *col = sc_bench_floats(PROG, ckk * cols),
              *x = sc_bench_floats(PROG, v->nb * v->c * v->hw * v->hw),
              *out = sc_bench_floats(PROG, v->o * ckk);
        double rate[3];
        for (int f = 0; f < 3; f++) {
            char name[32];
            snprintf(name, sizeof name, "bench_%d_%d", i, f);
            gemm_f fn = (gemm_f)(uintptr_t)sc_codegen_jit(c, name, err, sizeof err);
            if (!fn) {
                fprintf(stderr, "sc_wgrad_bench: %s\n", err);
                return 1;
            }
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = sc_bench_cpu_now();
                fn(a, f == 0 ? col : x, out, 1.0f);
                double t = sc_bench_cpu_now() - t0;
                best = t < best ? t : best;
            }
            rate[f] = 2.0 * (double)v->o * (double)ckk * (double)cols / best * 1e-9;
        }
        char dims[40];
        snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)v->o, (long long)ckk, (long long)cols);
        printf("%-14s %-16s %8.1f %8.1f %8.1f\n", v->name, dims, rate[0], rate[1], rate[2]);
        free(a);
        free(col);
        free(x);
        free(out);
    }
    sc_codegen_free(c);
    return 0;
}
