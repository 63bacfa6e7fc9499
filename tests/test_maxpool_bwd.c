/* The max-pool backward kernel (compiler/cg_pool.c) against the reference
 * (sc_ref_maxpool_bwd), node by node, and the forward one (separable: row
 * maxima then column taps) against sc_ref_maxpool on the same pools and
 * more (k7 s2 p3, k5 s4 p2, k2 s5: strides whose chunk spans 4 and 8
 * vectors; k1 s1): overlapping windows (k3 s2 p1, k3
 * s1, k2 s1 p1), k2 s2, k3 s3, a kernel smaller than its stride (inputs
 * no window reads), odd sizes, rows wider than several blocks, batch 1
 * and 3, ties (inputs drawn from five values), NaN (one input in 16)
 * and -inf (three in 16: windows of it only, which keep their first).
 * dx starts as NaN, so an element left unwritten shows, and guards on
 * both sides of it must stay untouched; the planes are split over two
 * calls, as over two threads. A plane too large for the gather's
 * scratch takes the scatter form, checked alike.
 *
 * Exact: dy holds multiples of 1/64 in float (every sum of a few is
 * exact) and any double in double, where the kernel must add in the
 * reference's order to match. The host's vectors in float and double,
 * haswell's and x86-64's (128 bits) in float.
 *
 *   test_maxpool_bwd --bench   times the kernel at resnet18-stl10's
 *   shape (64 x 64 planes, 48x48 -> 24x24) and prints GB/s by CPU time */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kernel_buf.h"

#include "codegen.h"
#include "codegen_internal.h"
#include "ir.h"
#include "refops.h"

typedef struct {
    int n, c, h, w, k, s, p;
} pool;

/* images, channels, h, w, kernel, stride, padding */
static const pool pools[] = {
    {2, 3, 48, 48, 3, 2, 1},  /* resnet18-stl10's, smaller batch */
    {1, 2, 23, 37, 3, 2, 1},  /* batch 1, odd sizes */
    {3, 2, 17, 19, 2, 2, 0},  /* k2 s2, batch 3 */
    {3, 1, 23, 37, 3, 1, 1},  /* k3 s1: three windows each way */
    {1, 2, 13, 20, 2, 1, 1},  /* k2 s1 p1 */
    {2, 2, 24, 35, 3, 3, 0},  /* k3 s3: no overlap */
    {1, 1, 5, 70, 3, 2, 1},   /* several blocks per row */
    {2, 1, 7, 9, 1, 2, 0},    /* k1 s2: inputs no window reads */
    {1, 1, 3, 3, 3, 2, 1},    /* one window row */
    {1, 1, 400, 400, 3, 2, 1} /* scratch too large: the scatter form */
};
#define NPOOLS (int)(sizeof pools / sizeof *pools)
/* the forward's: the pools above and these */
static const pool fpools_more[] = {
    {1, 2, 19, 23, 7, 2, 3}, /* the 7x7 stem's geometry */
    {3, 1, 21, 45, 5, 4, 2}, /* stride 4: 4 loads per tap */
    {1, 2, 12, 41, 2, 5, 1}, /* stride 5: 8 loads per tap */
    {2, 1, 5, 33, 1, 1, 0},  /* k1 s1 */
};
#define NMORE (int)(sizeof fpools_more / sizeof *fpools_more)
#define NFPOOLS (NPOOLS + NMORE)
static const pool *fpool(int i) { return i < NPOOLS ? &pools[i] : &fpools_more[i - NPOOLS]; }
#define GUARD 64

typedef void (*kern_fn)(const void *dy, const void *x, void *dx, int64_t lo, int64_t hi);

static int out_size(const pool *v, int in) { return (in + 2 * v->p - v->k) / v->s + 1; }

static void fn_name(char *buf, size_t len, int i) { snprintf(buf, len, "test_maxpool_%d", i); }

/* A graph of one max-pool backward node (dy, x) -> dx of pool v, or
 * (fwd) the forward node x -> y. */
static void pool_graph(sc_graph *g, const pool *v, int fwd)
{
    sc_graph_init(g);
    int xs[4] = {v->n, v->c, v->h, v->w}, ys[4] = {v->n, v->c, out_size(v, v->h), out_size(v, v->w)};
    int in[2] = {sc_graph_tensor(g, "dy", SC_T_GRAD, 4, ys, 0), sc_graph_tensor(g, "x", SC_T_ACT, 4, xs, 0)};
    int out = fwd ? sc_graph_tensor(g, "y", SC_T_ACT, 4, ys, 0) : sc_graph_tensor(g, "dx", SC_T_GRAD, 4, xs, 0);
    int i = fwd ? sc_graph_node(g, SC_OP_MAXPOOL, &in[1], 1, &out, 1, 0, "pool")
                : sc_graph_node(g, SC_OP_MAXPOOL_BWD, in, 2, &out, 1, 0, "pool");
    g->n[i].kernel = v->k;
    g->n[i].stride = v->s;
    g->n[i].pad = v->p;
}

/* Kernels of pools list[0 .. count-1] (or, list NULL, fpool(0 ..)), as
 * fn(dy, x, dx, lo, hi) or fn(x, -, y, lo, hi). */
static sc_codegen *build(int f64, const char *cpu, const pool *list, int count, char impl[][40], int fwd)
{
    char err[1024];
    sc_codegen_options o = {.target_cpu = cpu, .opt_level = 2, .double_precision = f64};
    sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    LLVMTypeRef args[5] = {c->ptr, c->ptr, c->ptr, c->i64, c->i64};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 5, 0);
    for (int i = 0; i < count; i++) {
        sc_graph g;
        pool_graph(&g, list ? &list[i] : fpool(i), fwd);
        char name[64];
        fn_name(name, sizeof name, i);
        c->fn = LLVMAddFunction(c->mod, name, ft);
        c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
        LLVMPositionBuilderAtEnd(c->b, c->entry);
        c->g = &g;
        c->node = 0;
        c->arg_in[0] = LLVMGetParam(c->fn, fwd ? 1 : 0); /* the forward's x */
        c->arg_in[1] = LLVMGetParam(c->fn, 1);
        c->arg_out[0] = LLVMGetParam(c->fn, 2);
        c->arg_lo = LLVMGetParam(c->fn, 3);
        c->arg_hi = LLVMGetParam(c->fn, 4);
        sc_lowered r = sc_cg_lower_pool(c, 0);
        snprintf(impl[i], 40, "%s", r.impl);
        LLVMBuildRetVoid(c->b);
        c->g = NULL;
        sc_graph_free(&g);
    }
    if (sc_codegen_optimize(c, err, sizeof err))
        fail_msg("%s", err);
    return c;
}

static uint64_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static int same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

static kern_fn lookup(sc_codegen *c, int i)
{
    char name[64], err[512];
    fn_name(name, sizeof name, i);
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    return (kern_fn)(uintptr_t)fp;
}

static void check(sc_codegen *c, int f64, int i, const char *impl)
{
    const pool *v = &pools[i];
    sc_window w = {.n = v->n, .c = v->c, .h = v->h, .w = v->w, .kernel = v->k, .stride = v->s, .pad = v->p,
                   .oh = out_size(v, v->h), .ow = out_size(v, v->w)};
    size_t esz = f64 ? 8 : 4, nx = (size_t)v->n * v->c * v->h * v->w, ny = (size_t)v->n * v->c * w.oh * w.ow;
    double *X = alloc(nx * sizeof *X), *DY = alloc(ny * sizeof *DY), *DX = alloc(nx * sizeof *DX);
    char *x = alloc(nx * esz), *dy = alloc(ny * esz), *dx = alloc((nx + 2 * GUARD) * esz);
    uint64_t seed = (uint64_t)i * 2 + (uint64_t)f64;
    for (size_t j = 0; j < nx; j++) {
        uint64_t r = next(&seed) % 16; /* ties, NaN, and -inf (as padding: a window of it keeps its first) */
        X[j] = r == 0 ? NAN : r <= 3 ? -INFINITY : (double)(int)(next(&seed) % 5) - 2;
        put(x, j, X[j], f64);
    }
    for (size_t j = 0; j < ny; j++) {
        double r = (double)(int)(next(&seed) % 513) - 256;
        DY[j] = f64 ? r / 3.0 : r / 64.0;
        put(dy, j, DY[j], f64);
    }
    for (size_t j = 0; j < nx + 2 * GUARD; j++)
        put(dx, j, j < GUARD || j >= nx + GUARD ? 12345.0 : NAN, f64);
    sc_ref_maxpool_bwd(&w, DY, X, DX);
    kern_fn fn = lookup(c, i);
    int64_t planes = (int64_t)v->n * v->c;
    fn(dy, x, dx + GUARD * esz, 0, planes / 2); /* two slices, as two threads */
    fn(dy, x, dx + GUARD * esz, planes / 2, planes);
    for (size_t j = 0; j < nx + 2 * GUARD; j++) {
        int inside = j >= GUARD && j < nx + GUARD;
        double got = get(dx, j, f64), want = inside ? DX[j - GUARD] : 12345.0;
        if (!same(got, want))
            fail_msg("%s pool %d (%dx%dx%dx%d k%d s%d p%d, %s): dx[%lld] = %.17g, want %.17g", f64 ? "double" : "float",
                     i, v->n, v->c, v->h, v->w, v->k, v->s, v->p, impl, (long long)j - GUARD, got, want);
    }
    free(X);
    free(DY);
    free(DX);
    free(x);
    free(dy);
    free(dx);
}

/* The forward: y inside starts as 777 (no pool's value), guards around
 * it must stay; values as for the backward (ties, NaN, -inf). */
static void check_fwd(sc_codegen *c, int f64, int i, const char *impl)
{
    const pool *v = fpool(i);
    sc_window w = {.n = v->n, .c = v->c, .h = v->h, .w = v->w, .kernel = v->k, .stride = v->s, .pad = v->p,
                   .oh = out_size(v, v->h), .ow = out_size(v, v->w)};
    size_t esz = f64 ? 8 : 4, nx = (size_t)v->n * v->c * v->h * v->w, ny = (size_t)v->n * v->c * w.oh * w.ow;
    double *X = alloc(nx * sizeof *X), *Y = alloc(ny * sizeof *Y);
    char *x = alloc(nx * esz), *y = alloc((ny + 2 * GUARD) * esz);
    uint64_t seed = (uint64_t)i * 2 + (uint64_t)f64 + 1000;
    for (size_t j = 0; j < nx; j++) {
        uint64_t r = next(&seed) % 16;
        X[j] = r == 0 ? NAN : r <= 3 ? -INFINITY : (double)(int)(next(&seed) % 5) - 2;
        put(x, j, X[j], f64);
    }
    for (size_t j = 0; j < ny + 2 * GUARD; j++)
        put(y, j, j < GUARD || j >= ny + GUARD ? 12345.0 : 777.0, f64);
    sc_ref_maxpool(&w, X, Y);
    kern_fn fn = lookup(c, i);
    int64_t planes = (int64_t)v->n * v->c;
    fn(NULL, x, y + GUARD * esz, 0, planes / 2); /* two slices, as two threads */
    fn(NULL, x, y + GUARD * esz, planes / 2, planes);
    for (size_t j = 0; j < ny + 2 * GUARD; j++) {
        int inside = j >= GUARD && j < ny + GUARD;
        double got = get(y, j, f64), want = inside ? Y[j - GUARD] : 12345.0;
        if (!same(got, want))
            fail_msg("%s forward pool %d (%dx%dx%dx%d k%d s%d p%d, %s): y[%lld] = %.17g, want %.17g",
                     f64 ? "double" : "float", i, v->n, v->c, v->h, v->w, v->k, v->s, v->p, impl,
                     (long long)j - GUARD, got, want);
    }
    free(X);
    free(Y);
    free(x);
    free(y);
}

static void run(int f64, const char *cpu)
{
    char impl[NPOOLS][40];
    sc_codegen *c = build(f64, cpu, pools, NPOOLS, impl, 0);
    for (int i = 0; i < NPOOLS; i++)
        check(c, f64, i, impl[i]);
    /* the last needs the scatter form, the others fit the gather */
    for (int i = 0; i < NPOOLS; i++)
        assert_string_equal(impl[i], i == NPOOLS - 1 ? "vector" : "gather");
    printf("%s, %s: %d pools exact\n", f64 ? "double" : "float", cpu ? cpu : "host", NPOOLS);
    sc_codegen_free(c);
    char fimpl[NFPOOLS][40];
    c = build(f64, cpu, NULL, NFPOOLS, fimpl, 1);
    for (int i = 0; i < NFPOOLS; i++) {
        check_fwd(c, f64, i, fimpl[i]);
        assert_string_equal(fimpl[i], "separable");
    }
    printf("%s, %s: %d forward pools exact\n", f64 ? "double" : "float", cpu ? cpu : "host", NFPOOLS);
    sc_codegen_free(c);
}

#include "kernel_targets.h"

/* resnet18-stl10's max pool at batch 32 (64 views): bytes read (x, dy)
 * and written (dx) per second of CPU time, best of 10. */
static int bench(void)
{
    static const pool r18 = {64, 64, 48, 48, 3, 2, 1};
    char impl[1][40];
    sc_codegen *c = build(0, NULL, &r18, 1, impl, 0);
    kern_fn fn = lookup(c, 0);
    size_t nx = (size_t)64 * 64 * 48 * 48, ny = nx / 4;
    float *x = malloc(nx * 4), *dy = malloc(ny * 4), *dx = malloc(nx * 4);
    if (!x || !dy || !dx)
        return 1;
    uint64_t seed = 1;
    for (size_t j = 0; j < nx; j++)
        x[j] = (float)(next(&seed) % 1000);
    for (size_t j = 0; j < ny; j++)
        dy[j] = 1.0f;
    memset(dx, 0, nx * 4);
    double best = 1e30;
    for (int r = 0; r < 10; r++) {
        double t0 = cpu_seconds();
        fn(dy, x, dx, 0, 64 * 64);
        double t = cpu_seconds() - t0;
        best = t < best ? t : best;
    }
    double bytes = (double)(nx * 2 + ny) * 4;
    printf("maxpool_bwd (%s) 64x64x48x48 k3 s2 p1: %.2f ms, %.1f GB/s (x, dy read, dx written; CPU time, best of 10)\n",
           impl[0], best * 1e3, bytes / best * 1e-9);
    sc_codegen_free(c);
    c = build(0, NULL, &r18, 1, impl, 1); /* the forward */
    fn = lookup(c, 0);
    best = 1e30;
    for (int r = 0; r < 10; r++) {
        double t0 = cpu_seconds();
        fn(NULL, x, dy, 0, 64 * 64);
        double t = cpu_seconds() - t0;
        best = t < best ? t : best;
    }
    bytes = (double)(nx + ny) * 4;
    printf("maxpool (%s) 64x64x48x48 k3 s2 p1: %.2f ms, %.1f GB/s (x read, y written; CPU time, best of 10)\n", impl[0],
           best * 1e3, bytes / best * 1e-9);
    free(x);
    free(dy);
    free(dx);
    sc_codegen_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--bench"))
        return bench();
    const struct CMUnitTest tests[] = {
        KERNEL_TARGET_TESTS,
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
