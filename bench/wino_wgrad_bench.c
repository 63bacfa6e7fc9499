/* sc_wino_wgrad_bench: where winograd F(m,3)'s weight gradient spends
 * its time (cg_winograd_wgrad.c) on resnet18-stl10's and -cifar's layer
 * shapes (batch 32: 64 views, chunks as the plan takes them), one core,
 * JIT-compiled for the host: one thread's share of the node with two
 * threads (sc_cg_winograd_wgrad_group 0 of 2: the first half of the
 * (m+2)^2 tile elements) against its GEMMs alone per chunk (dU[e] +=
 * Z[e] V[e]^T, V and Z as the transforms left them, in cache); the rest
 * is the transforms' (plane copies, B^T d B, A dy A^T) and the GEMMs'
 * cache misses after them. Shapes marked F3 and F4 take F(3,3) and
 * F(4,3). Thread CPU time, best of R runs (default 5). Not a test.
 *
 *   sc_wino_wgrad_bench [R [shape index]] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cg_builder.h"
#include "cg_gemm.h"
#include "cg_winograd.h"
#include "cg_winograd_wgrad.h"
#include "codegen.h"
#include "codegen_internal.h"
#include "bench_util.h"

#define PROG "sc_wino_wgrad_bench"

typedef struct {
    const char *name;
    int64_t c, h, n, nb, m; /* channels (in and out), plane side, images, images per chunk, F(m,3) */
} shape;

static const shape shapes[] = {
    {"stl 24x24/64", 64, 24, 64, 1, 2},   {"stl 12x12/128", 128, 12, 64, 4, 2}, {"stl 6x6/256", 256, 6, 64, 16, 2},
    {"cif 32x32/64", 64, 32, 64, 1, 2},   {"cif 16x16/128", 128, 16, 64, 4, 2}, {"cif 8x8/256", 256, 8, 64, 16, 2},
    {"cif 4x4/512", 512, 4, 64, 64, 2},   {"stl 3x3/512 F3", 512, 3, 64, 64, 3}, {"stl 6x6/256 F3", 256, 6, 64, 64, 3},
    {"stl 12x12/128 F3", 128, 12, 64, 16, 3}, {"cif 4x4/512 F4", 512, 4, 64, 64, 4}, {"cif 8x8/256 F4", 256, 8, 64, 64, 4},
    {"stl 24x24/64 F3", 64, 24, 64, 4, 3},  {"cif 32x32/64 F3", 64, 32, 64, 2, 3}, {"cif 16x16/128 F3", 128, 16, 64, 4, 3},
};
#define NS (int)(sizeof shapes / sizeof *shapes)


int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5, only = argc > 2 ? atoi(argv[2]) : -1;
    if (reps < 1)
        reps = 1;
    sc_codegen *c = sc_bench_codegen(PROG);
    char err[1024];
    LLVMTypeRef args[4] = {c->ptr, c->ptr, c->ptr, c->ptr};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 4, 0);
    for (int i = 0; i < NS; i++)
        for (int f = 0; f < 2; f++) {
            if (only >= 0 && i != only)
                continue;
            const shape *s = &shapes[i];
            sc_wino_geom v = sc_conv_wino_wgrad_geom_m(s->c, s->c, s->h, s->h, s->nb, 2, s->m);
            char name[32];
            snprintf(name, sizeof name, "b_%d_%d", i, f);
            c->fn = LLVMAddFunction(c->mod, name, ft);
            c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
            LLVMPositionBuilderAtEnd(c->b, c->entry);
            LLVMValueRef DY = LLVMGetParam(c->fn, 0), X = LLVMGetParam(c->fn, 1), ws = LLVMGetParam(c->fn, 2),
                         dU = LLVMGetParam(c->fn, 3);
            if (f == 0) {
                sc_cg_winograd_clear(c, &v, ws);
                sc_cg_winograd_wgrad_group(c, &v, s->n, 0, 2, DY, X, ws, dU);
            } else {
                loop Ln, Le;
                LLVMValueRef Z = gep(c, ws, ci(c, v.at_m));
                loop_begin(c, &Ln, s->n / s->nb);
                LLVMValueRef e = loop_begin(c, &Le, (s->m + 2) * (s->m + 2) / 2);
                sc_cg_gemm(c, 0, 1, s->c, s->c, v.t, gep(c, Z, imul(c, e, ci(c, s->c * v.t))), v.t,
                           gep(c, ws, imul(c, e, ci(c, s->c * v.t))), v.t, cf(c, 1),
                           gep(c, dU, imul(c, e, ci(c, s->c * s->c))), s->c);
                loop_end(c, &Le);
                loop_end(c, &Ln);
            }
            LLVMBuildRetVoid(c->b);
        }
    if (sc_codegen_optimize(c, err, sizeof err)) {
        fprintf(stderr, "sc_wino_wgrad_bench: %s\n", err);
        return 1;
    }
    printf("%-16s %5s %9s %9s %9s %8s  (one core, thread CPU time, best of %d)\n", "shape", "t", "whole ms", "GEMMs ms",
           "rest ms", "GEMM GF/s", reps);
    for (int i = 0; i < NS; i++) {
        if (only >= 0 && i != only)
            continue;
        const shape *s = &shapes[i];
        sc_wino_geom v = sc_conv_wino_wgrad_geom_m(s->c, s->c, s->h, s->h, s->nb, 2, s->m);
        int64_t plane = s->n * s->c * s->h * s->h;
        float *x = sc_bench_floats(PROG, plane), *dy = sc_bench_floats(PROG, plane), *ws = sc_bench_floats(PROG, v.at_u),
              *du = sc_bench_floats(PROG, 36 * s->c * s->c);
        double t[2];
        for (int f = 0; f < 2; f++) {
            char name[32];
            snprintf(name, sizeof name, "b_%d_%d", i, f);
            t[f] = sc_bench_best4(c, PROG, name, reps, dy, x, ws, du);
        }
        double flops = (double)((s->m + 2) * (s->m + 2) / 2) * 2 * (double)(s->c * s->c) * (double)(v.tt * s->n);
        printf("%-16s %5lld %9.3f %9.3f %9.3f %8.0f\n", s->name, (long long)v.t, t[0] * 1e3, t[1] * 1e3,
               (t[0] - t[1]) * 1e3, flops / t[1] * 1e-9);
        free(x);
        free(dy);
        free(ws);
        free(du);
    }
    sc_codegen_free(c);
    return 0;
}
