/* sc_wino_bench: where the time of a Winograd F(m,3) forward convolution
 * (cg_winograd.c) goes, on resnet18-cifar's and resnet18-stl10's 3x3
 * layer shapes (batch 32: 64 views), one core, JIT-compiled for the host.
 * Per node of 64 images, in ms of thread CPU time (best of R runs,
 * default 5): the weight transform (all of U), the input transform, the
 * (m+2)^2 GEMMs and the output transform of every chunk, and the whole
 * chunk kernel (sc_cg_winograd_chunk) over the chunks; then the whole
 * convolution by rows (convplan.h, sc_conv_wino_rows_geom: every image in
 * one chunk, blocks of output channels each transforming its own rows of
 * U) where the plan's rule takes it ("-" elsewhere), and the same as
 * the data gradient (flip: W read as the forward's [cin][cout]). Not a
 * test.
 *
 *   sc_wino_bench [R [m]]     (m: 2, 3 or 4 for every shape; default the plan's) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cg_gemm.h"
#include "cg_winograd.h"
#include "codegen.h"
#include "codegen_internal.h"
#include "bench_util.h"

#define PROG "sc_wino_bench"

#include "cg_builder.h"

typedef struct {
    const char *name;
    int64_t c, hw, m; /* channels in and out, plane side, the plan's m */
} shape;

static const shape shapes[] = {
    {"cifar 32x32", 64, 32, 4}, {"cifar 16x16", 128, 16, 4}, {"cifar 8x8", 256, 8, 4}, {"cifar 4x4", 512, 4, 4},
    {"small 8x8", 64, 8, 2},    {"stl 24x24", 64, 24, 3},   {"stl 12x12", 128, 12, 3},   {"stl 6x6", 256, 6, 3},   {"stl 3x3", 512, 3, 3},
};
#define NSHAPES (int)(sizeof shapes / sizeof *shapes)
#define NIMG 64
#define THREADS 2

enum { K_WEIGHTS, K_INPUTS, K_GEMMS, K_OUTPUTS, K_CHUNK, K_ROWS, K_ROWS_FLIP, NK };
static const char *kname[NK] = {"weights", "inputs", "gemms", "outputs", "chunk", "by rows", "flip"};

static sc_wino_geom rows_geom(const shape *s, int64_t m)
{
    int64_t tt = ((s->hw + m - 1) / m) * ((s->hw + m - 1) / m), a2 = (m + 2) * (m + 2);
    int64_t rb = sc_conv_wino_rows(NIMG, tt, s->c, s->c, a2, THREADS);
    return sc_conv_wino_rows_geom(s->c, s->c, s->hw, s->hw, NIMG, m, rb ? rb : s->c);
}


static sc_wino_geom geom_of(const shape *s, int64_t m, int64_t *nb)
{
    int64_t t1 = ((s->hw + m - 1) / m) * ((s->hw + m - 1) / m);
    *nb = sc_conv_wino_chunk(NIMG, t1, THREADS, SC_WINO_TILES);
    return sc_conv_wino_geom_m(s->c, s->c, s->hw, s->hw, *nb, m);
}

/* kernel(W, X, Y, ws) */
static void emit(sc_codegen *c, const sc_wino_geom *v, int64_t nb, int k, LLVMValueRef W, LLVMValueRef X,
                 LLVMValueRef Y, LLVMValueRef ws)
{
    LLVMValueRef U = gep(c, ws, ci(c, v->at_u)), V = ws, M = gep(c, ws, ci(c, v->at_m)),
                 P = gep(c, ws, ci(c, v->at_plane));
    int64_t a2 = (v->m + 2) * (v->m + 2);
    if (k == K_WEIGHTS) {
        sc_lowered res = lowered("bench");
        c->arg_lo = ci(c, 0), c->arg_hi = ci(c, v->cout);
        sc_cg_winograd_weights(c, &res, v, W, U, 0);
    } else if (k == K_INPUTS) {
        sc_cg_winograd_clear(c, v, ws);
        sc_cg_winograd_inputs(c, v, X, ci(c, 0), nb, P, V);
    } else if (k == K_GEMMS) {
        loop Le;
        LLVMValueRef e = loop_begin(c, &Le, a2);
        sc_cg_gemm(c, 0, 0, v->cout, v->t, v->cin, gep(c, U, imul(c, e, ci(c, v->us))), v->cin,
                   gep(c, V, imul(c, e, ci(c, v->vs))), v->t, cf(c, 0), gep(c, M, imul(c, e, ci(c, v->ms))), v->t);
        loop_end(c, &Le);
    } else if (k == K_OUTPUTS) {
        sc_cg_winograd_outputs(c, v, M, Y, NULL, ci(c, 0), nb);
    } else if (k == K_CHUNK) {
        sc_cg_winograd_clear(c, v, ws);
        sc_cg_winograd_chunk(c, v, nb, X, ci(c, 0), U, ws, Y, NULL, 0);
    } else {
        sc_cg_winograd_serial(c, v, NIMG, NIMG, W, X, Y, ws, NULL, k == K_ROWS_FLIP);
    }
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    int64_t mforce = argc > 2 ? atoi(argv[2]) : 0;
    if (reps < 1)
        reps = 1;
    if (mforce && (mforce < 2 || mforce > 4)) {
        fprintf(stderr, "sc_wino_bench: m must be 2, 3 or 4\n");
        return 1;
    }
    sc_codegen *c = sc_bench_codegen(PROG);
    char err[1024];
    LLVMTypeRef args[4] = {c->ptr, c->ptr, c->ptr, c->ptr};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 4, 0);
    for (int i = 0; i < NSHAPES; i++)
        for (int k = 0; k < NK; k++) {
            int64_t nb, m = mforce ? mforce : shapes[i].m;
            sc_wino_geom v = k >= K_ROWS ? rows_geom(&shapes[i], m) : geom_of(&shapes[i], m, &nb);
            char name[32];
            snprintf(name, sizeof name, "bench_%d_%d", i, k);
            c->fn = LLVMAddFunction(c->mod, name, ft);
            c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
            LLVMPositionBuilderAtEnd(c->b, c->entry);
            emit(c, &v, nb, k, LLVMGetParam(c->fn, 0), LLVMGetParam(c->fn, 1), LLVMGetParam(c->fn, 2),
                 LLVMGetParam(c->fn, 3));
            LLVMBuildRetVoid(c->b);
        }
    if (sc_codegen_optimize(c, err, sizeof err)) {
        fprintf(stderr, "sc_wino_bench: %s\n", err);
        return 1;
    }
    printf("ms per node of %d images, one core, thread CPU time, best of %d\n", NIMG, reps);
    printf("%-12s %1s %3s %-16s", "shape", "m", "nb", "gemm");
    for (int k = 0; k < K_ROWS; k++)
        printf(" %8s", kname[k]);
    printf(" %8s %7s %8s %7s %8s\n", "sum", "GFLOP/s", kname[K_ROWS], "GFLOP/s", kname[K_ROWS_FLIP]);
    for (int i = 0; i < NSHAPES; i++) {
        const shape *s = &shapes[i];
        int64_t nb, m = mforce ? mforce : s->m;
        sc_wino_geom v = geom_of(s, m, &nb);
        sc_wino_geom vr = rows_geom(s, m);
        int64_t a2 = (m + 2) * (m + 2), nw = s->c * s->c * 9, nx = NIMG * s->c * s->hw * s->hw,
                nws = v.at_u + a2 * v.us, nwr = vr.at_v + a2 * vr.vs;
        int rows = sc_conv_wino_rows(NIMG, v.tt, s->c, s->c, a2, THREADS) != 0;
        nws = nws > nwr ? nws : nwr;
        float *w = sc_bench_floats(PROG, nw), *x = sc_bench_floats(PROG, nx), *y = sc_bench_floats(PROG, nx),
              *ws = sc_bench_floats(PROG, nws);
        double ms[NK];
        for (int k = 0; k < NK; k++) {
            char name[32];
            snprintf(name, sizeof name, "bench_%d_%d", i, k);
            double best = sc_bench_best4(c, PROG, name, reps, w, x, y, ws);
            ms[k] = 1e3 * best * (k == K_WEIGHTS || k >= K_ROWS ? 1 : NIMG / nb);
        }
        char dims[40];
        snprintf(dims, sizeof dims, "%lldx %lldx%lldx%lld", (long long)((m + 2) * (m + 2)), (long long)v.cout,
                 (long long)v.t, (long long)v.cin);
        printf("%-12s %1lld %3lld %-16s", s->name, (long long)m, (long long)nb, dims);
        for (int k = 0; k < K_ROWS; k++)
            printf(" %8.3f", ms[k]);
        double tot = ms[K_WEIGHTS] + ms[K_CHUNK], flop = 2.0 * 9 * s->c * s->c * s->hw * s->hw * NIMG;
        printf(" %8.3f %7.1f", tot, flop / (tot * 1e-3) * 1e-9);
        if (rows)
            printf(" %8.3f %7.1f %8.3f\n", ms[K_ROWS], flop / (ms[K_ROWS] * 1e-3) * 1e-9, ms[K_ROWS_FLIP]);
        else
            printf(" %8s\n", "-");
        free(w);
        free(x);
        free(y);
        free(ws);
    }
    sc_codegen_free(c);
    return 0;
}
