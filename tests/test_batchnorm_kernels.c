/* The training batchnorm kernels (compiler/cg_batchnorm.c: batchnorm,
 * batchnorm+relu, batchnorm+add+relu and their backward) against the reference ops, node by
 * node: maps of 1 element, maps shorter than a vector (3x3), tails that
 * are no multiple of the vector width, several channels per work item
 * (64 channels of 3x3), batch 1. The channels are split over two calls,
 * as over two threads; outputs start as NaN, so an element left
 * unwritten shows. x has a per-channel offset of 10 to 20 (the shifted
 * sums' case) and the relu forms get a mask of about half their elements
 * (batchnorm+add+relu's residual, in [-1, 1), about as large as the
 * normalised values, decides it with them).
 *
 * Each tensor is compared to the reference (double) relative to its
 * largest magnitude: within DOUBLE_TOL in double, FLOAT_TOL in float.
 *
 *   test_batchnorm_kernels --bench   times each op at resnet18-stl10's and
 *   resnet-small's shapes (batch 32: 64 images), one thread, and prints
 *   GB/s by CPU time */
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

/* worst measured: 1.1e-14 (double: y of batchnorm+relu at 2x6x144, x*k1 + k2
 * cancelling about 10x), 4.2e-6 (float) */
#define DOUBLE_TOL 1e-13
#define FLOAT_TOL 3e-5
#define EPS 1e-5

typedef struct {
    int n, c, hw;
} shape;

static const shape shapes[] = {
    {3, 3, 1},   /* 1x1 maps: the scalar tail alone */
    {2, 5, 9},   /* 3x3: 8 + 1 */
    {1, 4, 17},  /* batch 1, a vector and 1 */
    {3, 2, 47},  /* 2 vectors + 8 + 4 + 2 + 1 */
    {2, 6, 144}, /* whole vectors */
    {2, 64, 9},  /* several channels per work item */
    {1, 32, 36}, /* batch 1, several channels, a tail of 4 */
};
#define NSHAPES (int)(sizeof shapes / sizeof *shapes)

static const int ops[] = {SC_OP_BATCHNORM, SC_OP_BATCHNORM_RELU, SC_OP_BATCHNORM_BWD, SC_OP_BATCHNORM_RELU_BWD,
                          SC_OP_BATCHNORM_ADD_RELU};
#define NOPS (int)(sizeof ops / sizeof *ops)

enum { MAXIN = 6, MAXOUT = 3 };
typedef void (*kern_fn)(void *const *in, void *const *out, int64_t lo, int64_t hi);

static int is_bwd(int op) { return op == SC_OP_BATCHNORM_BWD || op == SC_OP_BATCHNORM_RELU_BWD; }

/* inputs and outputs of the node, as the graph has them */
static int nin(int op)
{
    return op == SC_OP_BATCHNORM_RELU_BWD ? 6 : is_bwd(op) ? 5 : op == SC_OP_BATCHNORM_ADD_RELU ? 4 : 3;
}

static void fn_name(char *buf, size_t len, int o, int s) { snprintf(buf, len, "test_bn_%d_%d", o, s); }

static void node_graph(sc_graph *g, int op, const shape *v)
{
    sc_graph_init(g);
    int big[3] = {v->n, v->c, v->hw}, ch[1] = {v->c}, in[MAXIN], out[MAXOUT];
    int relu = op == SC_OP_BATCHNORM_RELU_BWD;
    for (int k = 0; k < nin(op); k++) {
        int per_channel = is_bwd(op) ? k >= 2 + relu : k == 1 || k == 2; /* the forward's in3: the residual */
        char name[8];
        snprintf(name, sizeof name, "in%d", k);
        in[k] = sc_graph_tensor(g, name, SC_T_ACT, per_channel ? 1 : 3, per_channel ? ch : big, 0);
    }
    for (int k = 0; k < 3; k++) {
        char name[8];
        snprintf(name, sizeof name, "out%d", k);
        out[k] = sc_graph_tensor(g, name, SC_T_ACT, k ? 1 : 3, k ? ch : big, 0);
    }
    int i = sc_graph_node(g, (sc_opkind)op, in, nin(op), out, 3, 0, "bn");
    g->n[i].eps = EPS;
}

/* Op o_'s kernel at shape v as function test_bn_<o_>_<s>(in[], out[],
 * lo, hi) in c's module; its work items, its impl into impl. */
static int64_t add_kernel(sc_codegen *c, int o_, int s, const shape *v, char *impl, size_t len)
{
    LLVMTypeRef args[4] = {c->ptr, c->ptr, c->i64, c->i64};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 4, 0);
    sc_graph g;
    node_graph(&g, ops[o_], v);
    char name[64];
    fn_name(name, sizeof name, o_, s);
    c->fn = LLVMAddFunction(c->mod, name, ft);
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    c->g = &g;
    c->node = 0;
    for (int k = 0; k < MAXIN + MAXOUT; k++) {
        LLVMValueRef idx = LLVMConstInt(c->i64, (unsigned long long)(k < MAXIN ? k : k - MAXIN), 0);
        LLVMValueRef at = LLVMBuildGEP2(c->b, c->ptr, LLVMGetParam(c->fn, k < MAXIN ? 0 : 1), &idx, 1, "");
        LLVMValueRef p = LLVMBuildLoad2(c->b, c->ptr, at, "");
        if (k < MAXIN)
            c->arg_in[k] = p;
        else
            c->arg_out[k - MAXIN] = p;
    }
    c->arg_ws = LLVMConstNull(c->ptr);
    c->arg_lo = LLVMGetParam(c->fn, 2);
    c->arg_hi = LLVMGetParam(c->fn, 3);
    sc_lowered r = is_bwd(ops[o_]) ? sc_cg_lower_batchnorm_bwd(c, 0) : sc_cg_lower_batchnorm(c, 0);
    if (impl)
        snprintf(impl, len, "%s", r.impl);
    LLVMBuildRetVoid(c->b);
    c->g = NULL;
    sc_graph_free(&g);
    return r.extent;
}

/* Every (op, shape) kernel as f(in[], out[], lo, hi); extent its work items. */
static sc_codegen *build(int f64, int64_t extent[NOPS][NSHAPES])
{
    char err[1024];
    sc_codegen_options o = {.opt_level = 2, .double_precision = f64};
    sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    for (int o_ = 0; o_ < NOPS; o_++)
        for (int s = 0; s < NSHAPES; s++)
            extent[o_][s] = add_kernel(c, o_, s, &shapes[s], NULL, 0);
    if (sc_codegen_optimize(c, err, sizeof err))
        fail_msg("%s", err);
    return c;
}

static kern_fn lookup(sc_codegen *c, int o, int s)
{
    char name[64], err[512];
    fn_name(name, sizeof name, o, s);
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    return (kern_fn)(uintptr_t)fp;
}

/* values as the kernel's element type holds them */
static double rnd(double v, int f64) { return f64 ? v : (double)(float)v; }

/* The largest |got - want| over the largest |want| of n elements. */
static double rel_err(const void *got, const double *want, size_t n, int f64)
{
    double err = 0, scale = 0;
    for (size_t j = 0; j < n; j++) {
        double g = get(got, j, f64), d = fabs(g - want[j]);
        if (isnan(g))
            return INFINITY;
        err = d > err ? d : err;
        scale = fabs(want[j]) > scale ? fabs(want[j]) : scale;
    }
    return scale > 0 ? err / scale : err;
}

/* The worst relative error of op o on shape s over its outputs. */
static double check(sc_codegen *c, int f64, int o, int s, int64_t extent)
{
    const shape *v = &shapes[s];
    int op = ops[o], relu = op == SC_OP_BATCHNORM_RELU || op == SC_OP_BATCHNORM_RELU_BWD;
    int add = op == SC_OP_BATCHNORM_ADD_RELU;
    size_t big = (size_t)v->n * v->c * v->hw, ch = (size_t)v->c, esz = f64 ? 8 : 4;
    double *x = alloc(big * 8), *dy = alloc(big * 8), *y = alloc(big * 8), *dx = alloc(big * 8);
    double *r = alloc(big * 8);
    double *gamma = alloc(ch * 8), *beta = alloc(ch * 8), *mean = alloc(ch * 8), *var = alloc(ch * 8);
    double *dg = alloc(ch * 8), *db = alloc(ch * 8);
    uint64_t seed = (uint64_t)(o * 100 + s * 2 + f64);
    for (size_t j = 0; j < big; j++) {
        size_t chan = j / (size_t)v->hw % ch;
        x[j] = rnd(10 + (double)chan * 10 / (double)ch + frand(&seed), f64);
        dy[j] = rnd(frand(&seed), f64);
        r[j] = add ? rnd(frand(&seed), f64) : 0; /* the other ops' streams as before */
    }
    for (size_t k = 0; k < ch; k++) {
        gamma[k] = rnd(1 + 0.5 * frand(&seed), f64);
        beta[k] = rnd(0.2 * frand(&seed), f64);
    }
    /* the forward's outputs: the backward's y, mean and var, rounded */
    if (add)
        sc_ref_batchnorm_add_relu(v->n, v->c, v->hw, EPS, x, gamma, beta, r, y, mean, var);
    else
        (relu ? sc_ref_batchnorm_relu : sc_ref_batchnorm)(v->n, v->c, v->hw, EPS, x, gamma, beta, y, mean, var);
    for (size_t j = 0; j < big; j++)
        y[j] = rnd(y[j], f64);
    for (size_t k = 0; k < ch; k++) {
        mean[k] = rnd(mean[k], f64);
        var[k] = rnd(var[k], f64);
    }
    const double *in[MAXIN], *want[MAXOUT];
    size_t in_n[MAXIN], out_n[MAXOUT] = {big, ch, ch};
    int nk = nin(op);
    if (!is_bwd(op)) {
        in[0] = x, in[1] = gamma, in[2] = beta, in[3] = r;
        in_n[0] = in_n[3] = big, in_n[1] = in_n[2] = ch;
        want[0] = y, want[1] = mean, want[2] = var;
    } else {
        int k = 0;
        in[k] = dy, in_n[k++] = big;
        if (relu)
            in[k] = y, in_n[k++] = big;
        in[k] = x, in_n[k++] = big;
        in[k] = gamma, in[k + 1] = mean, in[k + 2] = var;
        in_n[k] = in_n[k + 1] = in_n[k + 2] = ch;
        if (relu)
            sc_ref_batchnorm_relu_bwd(v->n, v->c, v->hw, EPS, dy, y, x, gamma, mean, var, dx, dg, db);
        else
            sc_ref_batchnorm_bwd(v->n, v->c, v->hw, EPS, dy, x, gamma, mean, var, dx, dg, db);
        want[0] = dx, want[1] = dg, want[2] = db;
    }
    void *bin[MAXIN] = {0}, *bout[MAXOUT];
    for (int k = 0; k < nk; k++) {
        bin[k] = alloc(in_n[k] * esz);
        for (size_t j = 0; j < in_n[k]; j++)
            put(bin[k], j, in[k][j], f64);
    }
    for (int k = 0; k < MAXOUT; k++) {
        bout[k] = alloc(out_n[k] * esz);
        for (size_t j = 0; j < out_n[k]; j++)
            put(bout[k], j, NAN, f64);
    }
    kern_fn fn = lookup(c, o, s);
    fn(bin, bout, 0, extent / 2); /* two slices, as two threads */
    fn(bin, bout, extent / 2, extent);
    double worst = 0;
    for (int k = 0; k < MAXOUT; k++) {
        double e = rel_err(bout[k], want[k], out_n[k], f64);
        if (!(e <= (f64 ? DOUBLE_TOL : FLOAT_TOL)))
            fail_msg("%s op %d %dx%dx%d: output %d off by %.3g of its largest", f64 ? "double" : "float", op, v->n,
                     v->c, v->hw, k, e);
        worst = e > worst ? e : worst;
    }
    for (int k = 0; k < nk; k++)
        free(bin[k]);
    for (int k = 0; k < MAXOUT; k++)
        free(bout[k]);
    free(r);
    free(x), free(dy), free(y), free(dx), free(gamma), free(beta), free(mean), free(var), free(dg), free(db);
    return worst;
}

static void run(int f64)
{
    int64_t extent[NOPS][NSHAPES];
    sc_codegen *c = build(f64, extent);
    double worst = 0;
    for (int o = 0; o < NOPS; o++)
        for (int s = 0; s < NSHAPES; s++) {
            double e = check(c, f64, o, s, extent[o][s]);
            worst = e > worst ? e : worst;
        }
    printf("%s: %d ops x %d shapes, worst error %.2g of a tensor's largest\n", f64 ? "double" : "float", NOPS, NSHAPES,
           worst);
    sc_codegen_free(c);
}

static void test_float(void **state)
{
    (void)state;
    run(0);
}

static void test_double(void **state)
{
    (void)state;
    run(1);
}

/* Each op at each shape, all channels on this thread: bytes of the
 * [n, c, hw] tensors read and written once (x and y; dy, x and dx, and
 * y with the relu) per second of CPU time, best of 5. */
static int bench(void)
{
    static const shape r18[] = {{64, 64, 2304}, {64, 64, 576}, {64, 128, 144}, {64, 256, 36}, {64, 512, 9},
                                /* resnet-small's */
                                {64, 16, 1024}, {64, 32, 256}, {64, 64, 64}};
    for (int s = 0; s < (int)(sizeof r18 / sizeof *r18); s++) {
        const shape *v = &r18[s];
        char err[1024];
        sc_codegen_options o = {.opt_level = 2};
        sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
        if (!c)
            return fprintf(stderr, "%s\n", err), 1;
        int64_t extent[NOPS];
        char impl[40] = "";
        for (int o_ = 0; o_ < NOPS; o_++)
            extent[o_] = add_kernel(c, o_, s, v, impl, sizeof impl);
        if (sc_codegen_optimize(c, err, sizeof err))
            return fprintf(stderr, "%s\n", err), 1;
        size_t big = (size_t)v->n * v->c * v->hw;
        float *t[4], *p[4];
        for (int k = 0; k < 4; k++) {
            t[k] = malloc(big * 4);
            p[k] = malloc((size_t)v->c * 4);
            if (!t[k] || !p[k])
                return fprintf(stderr, "bench: out of memory\n"), 1;
            uint64_t seed = (uint64_t)k + 1;
            for (size_t j = 0; j < big; j++)
                t[k][j] = (float)frand(&seed);
            for (int j = 0; j < v->c; j++)
                p[k][j] = 1.0f + 0.5f * (float)frand(&seed);
        }
        for (int o_ = 0; o_ < NOPS; o_++) {
            int op = ops[o_], relu = op == SC_OP_BATCHNORM_RELU_BWD;
            void *in[MAXIN], *out[MAXOUT] = {t[3], p[2], p[3]};
            if (!is_bwd(op))
                in[0] = t[0], in[1] = p[0], in[2] = p[1], in[3] = t[1];
            else if (relu)
                in[0] = t[0], in[1] = t[1], in[2] = t[2], in[3] = p[0], in[4] = p[1], in[5] = p[2];
            else
                in[0] = t[0], in[1] = t[2], in[2] = p[0], in[3] = p[1], in[4] = p[2];
            char name[64];
            fn_name(name, sizeof name, o_, s);
            kern_fn fn = (kern_fn)(uintptr_t)sc_codegen_jit(c, name, err, sizeof err);
            if (!fn)
                return fprintf(stderr, "%s\n", err), 1;
            double best = 1e30;
            for (int r = 0; r < 5; r++) {
                double t0 = cpu_seconds();
                fn(in, out, 0, extent[o_]);
                double dt = cpu_seconds() - t0;
                best = dt < best ? dt : best;
            }
            int tensors = is_bwd(op) ? 3 + relu : op == SC_OP_BATCHNORM_ADD_RELU ? 3 : 2;
            printf("%-20s %3dx%3dx%4d (%s): %8.3f ms, %5.1f GB/s\n", sc_op_name((sc_opkind)op), v->n, v->c, v->hw, impl,
                   best * 1e3, (double)tensors * (double)big * 4 / best * 1e-9);
        }
        for (int k = 0; k < 4; k++) {
            free(t[k]);
            free(p[k]);
        }
        sc_codegen_free(c);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--bench"))
        return bench();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_float), cmocka_unit_test(test_double)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
