/* The vector elementwise kernels (compiler/cg_elementwise.c: relu, add,
 * their fused forms and gradients, reshape) against the reference ops,
 * node by node: sizes below one vector, tails that are no multiple of the
 * vector width (1 to width - 1 past the last whole vector), one and
 * several blocks of the thread pool, exact multiples; out of place and in
 * place over the first input, as the memory plan runs add+relu and the
 * gradients' sums. Inputs include NaN, +-inf, +-0 and exact ties at 0.
 * The output starts as NaN, so an element left unwritten shows, and
 * guards on both sides must stay untouched; the blocks are split over
 * two calls, as over two threads.
 *
 * Exact: one operation per element, the reference's rounded.
 *
 *   test_elementwise --bench   times the add family and relu_bwd in place
 *   at resnet18-stl10's sizes, one thread, and prints GB/s by CPU time */
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

static const int ops[] = {SC_OP_RELU,     SC_OP_RELU_BWD,     SC_OP_ADD,
                          SC_OP_ADD_RELU, SC_OP_ADD_RELU_BWD, SC_OP_RESHAPE};
#define NOPS (int)(sizeof ops / sizeof *ops)
/* below a vector, tails of 1 and of a vector less one, exact vectors,
 * one block and a tail, three blocks exactly (a block: 16384) */
static const int sizes[] = {1, 7, 15, 64, 81, 127, 16384 + 37, 3 * 16384};
#define NSIZES (int)(sizeof sizes / sizeof *sizes)
#define GUARD 64

typedef void (*kern_fn)(const void *a, const void *b, const void *y, void *out, int64_t lo, int64_t hi);

static int nin(int op)
{
    return op == SC_OP_ADD_RELU_BWD ? 3 : op == SC_OP_RELU || op == SC_OP_RESHAPE ? 1 : 2;
}

static void fn_name(char *buf, size_t len, int op, int size) { snprintf(buf, len, "test_eltw_%d_%d", op, size); }

/* Op `op`'s kernel over n floats as function `name`(a, b, c, out, lo,
 * hi) in c's module; its work items, its impl into impl. */
static int64_t add_kernel(sc_codegen *c, int op, int n, const char *name, char *impl, size_t impl_len)
{
    LLVMTypeRef args[6] = {c->ptr, c->ptr, c->ptr, c->ptr, c->i64, c->i64};
    c->fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->vd, args, 6, 0));
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    sc_graph g;
    sc_graph_init(&g);
    int shape[1] = {n}, in[3], out;
    for (int k = 0; k < nin(op); k++) {
        char tname[8];
        snprintf(tname, sizeof tname, "in%d", k);
        in[k] = sc_graph_tensor(&g, tname, SC_T_ACT, 1, shape, 0);
    }
    out = sc_graph_tensor(&g, "out", SC_T_ACT, 1, shape, 0);
    sc_graph_node(&g, (sc_opkind)op, in, nin(op), &out, 1, 0, "node");
    c->g = &g;
    c->node = 0;
    for (int k = 0; k < 3; k++)
        c->arg_in[k] = LLVMGetParam(c->fn, (unsigned)k);
    c->arg_out[0] = LLVMGetParam(c->fn, 3);
    c->arg_lo = LLVMGetParam(c->fn, 4);
    c->arg_hi = LLVMGetParam(c->fn, 5);
    sc_lowered r = sc_cg_lower_elementwise(c, 0);
    if (impl)
        snprintf(impl, impl_len, "%s", r.impl);
    LLVMBuildRetVoid(c->b);
    c->g = NULL;
    sc_graph_free(&g);
    return r.extent;
}

/* Every (op, size) kernel; extent[op][size] its work items. */
static sc_codegen *build(int f64, const char *cpu, int64_t extent[NOPS][NSIZES], char *impl, size_t impl_len)
{
    char err[1024];
    sc_codegen_options o = {.target_cpu = cpu, .opt_level = 2, .double_precision = f64};
    sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    for (int o_ = 0; o_ < NOPS; o_++)
        for (int s = 0; s < NSIZES; s++) {
            char name[64];
            fn_name(name, sizeof name, o_, s);
            extent[o_][s] = add_kernel(c, ops[o_], sizes[s], name, impl, impl_len);
        }
    if (sc_codegen_optimize(c, err, sizeof err))
        fail_msg("%s", err);
    return c;
}

static kern_fn lookup(sc_codegen *c, int op, int size)
{
    char name[64], err[512];
    fn_name(name, sizeof name, op, size);
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    return (kern_fn)(uintptr_t)fp;
}

static int same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* NaN, +-inf, +-0 and exact zeros now and then, else uniform in [-1, 1) */
static double draw(uint64_t *seed, int f64)
{
    double r = frand(seed), u = (r + 1) * 16;
    if (u < 0.25)
        return NAN;
    if (u < 0.5)
        return u < 0.375 ? INFINITY : -INFINITY;
    if (u < 1.5)
        return u < 1 ? 0.0 : -0.0;
    return f64 ? r : (double)(float)r;
}

static void reference(int op, long n, double *const in[3], double *want)
{
    switch (op) {
    case SC_OP_RELU: sc_ref_relu(n, in[0], want); break;
    case SC_OP_RELU_BWD: sc_ref_relu_bwd(n, in[0], in[1], want); break;
    case SC_OP_ADD: sc_ref_add(n, in[0], in[1], want); break;
    case SC_OP_ADD_RELU: sc_ref_add_relu(n, in[0], in[1], want); break;
    case SC_OP_ADD_RELU_BWD: sc_ref_add_relu_bwd(n, in[0], in[1], in[2], want); break;
    default: memcpy(want, in[0], (size_t)n * sizeof *want); break;
    }
}

static void check(sc_codegen *c, int f64, int o_, int s, int64_t extent, int inplace)
{
    int op = ops[o_];
    size_t n = (size_t)sizes[s], esz = f64 ? 8 : 4;
    double *in[3], *want = alloc(n * sizeof *want);
    char *buf[3], *out = alloc((n + 2 * GUARD) * esz);
    uint64_t seed = (uint64_t)(o_ * 100 + s * 2 + f64);
    for (int k = 0; k < 3; k++) {
        in[k] = alloc(n * sizeof *in[k]);
        buf[k] = alloc(n * esz);
        for (size_t j = 0; j < n; j++) {
            in[k][j] = draw(&seed, f64);
            put(buf[k], j, in[k][j], f64);
        }
    }
    reference(op, (long)n, in, want);
    for (size_t j = 0; j < n && !f64; j++) /* the float kernel's result: the double's rounded */
        want[j] = (float)want[j];
    for (size_t j = 0; j < n + 2 * GUARD; j++)
        put(out, j, j < GUARD || j >= n + GUARD ? 12345.0 : NAN, f64);
    char *dst = out + GUARD * esz;
    if (inplace) /* the output over the first input */
        memcpy(dst, buf[0], n * esz);
    kern_fn fn = lookup(c, o_, s);
    const void *a = inplace ? dst : buf[0];
    fn(a, buf[1], buf[2], dst, 0, extent / 2); /* two slices, as two threads */
    fn(a, buf[1], buf[2], dst, extent / 2, extent);
    for (size_t j = 0; j < n + 2 * GUARD; j++) {
        int inside = j >= GUARD && j < n + GUARD;
        double got = get(out, j, f64), w = inside ? want[j - GUARD] : 12345.0;
        if (!same(got, w) || (w == 0 && signbit(got) != signbit(w) && op == SC_OP_RESHAPE))
            fail_msg("%s op %d size %zu%s: out[%lld] = %.17g, want %.17g", f64 ? "double" : "float", op, n,
                     inplace ? " in place" : "", (long long)j - GUARD, got, w);
    }
    for (int k = 0; k < 3; k++) {
        free(in[k]);
        free(buf[k]);
    }
    free(want);
    free(out);
}

static void run(int f64, const char *cpu)
{
    int64_t extent[NOPS][NSIZES];
    char impl[40];
    sc_codegen *c = build(f64, cpu, extent, impl, sizeof impl);
    for (int o_ = 0; o_ < NOPS; o_++)
        for (int s = 0; s < NSIZES; s++) {
            assert_int_equal(extent[o_][s], (sizes[s] + 16383) / 16384);
            check(c, f64, o_, s, extent[o_][s], 0);
            check(c, f64, o_, s, extent[o_][s], 1);
        }
    assert_non_null(strstr(impl, "vector x"));
    printf("%s, %s (%s): %d ops x %d sizes exact, in place and not\n", f64 ? "double" : "float", cpu ? cpu : "host",
           impl, NOPS, NSIZES);
    sc_codegen_free(c);
}

#include "kernel_targets.h"

/* add, add+relu, add+relu_bwd and relu_bwd in place (out over the first
 * input, as the memory plan runs them) at resnet18-stl10's sizes (batch
 * 32: 64 x 64 x 24 x 24 and 64 x 512 x 3 x 3), one thread: bytes of the
 * inputs read and the output written per second of CPU time, best of 5. */
static int bench(void)
{
    static const int bops[] = {SC_OP_ADD, SC_OP_ADD_RELU, SC_OP_ADD_RELU_BWD, SC_OP_RELU_BWD};
    static const int bsizes[] = {64 * 64 * 576, 64 * 512 * 9};
    for (int s = 0; s < 2; s++)
        for (int o_ = 0; o_ < 4; o_++) {
            int op = bops[o_], n = bsizes[s];
            char err[1024];
            sc_codegen_options o = {.opt_level = 2};
            sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
            if (!c)
                return fprintf(stderr, "%s\n", err), 1;
            char impl[40];
            int64_t extent = add_kernel(c, op, n, "bench", impl, sizeof impl);
            if (sc_codegen_optimize(c, err, sizeof err))
                return fprintf(stderr, "%s\n", err), 1;
            kern_fn fn = (kern_fn)(uintptr_t)sc_codegen_jit(c, "bench", err, sizeof err);
            float *t[3] = {malloc((size_t)n * 4), malloc((size_t)n * 4), malloc((size_t)n * 4)};
            if (!fn || !t[0] || !t[1] || !t[2])
                return fprintf(stderr, "bench: %s\n", fn ? "out of memory" : err), 1;
            uint64_t seed = 1;
            for (int k = 0; k < 3; k++)
                for (int j = 0; j < n; j++)
                    t[k][j] = (float)frand(&seed);
            double best = 1e30;
            for (int k = 0; k < 5; k++) {
                double t0 = cpu_seconds();
                fn(t[0], t[1], t[2], t[0], 0, extent);
                double dt = cpu_seconds() - t0;
                best = dt < best ? dt : best;
            }
            printf("%-14s %8d floats in place (%s): %7.3f ms, %5.1f GB/s\n", sc_op_name((sc_opkind)op), n, impl,
                   best * 1e3, (nin(op) + 1.0) * n * 4 / best * 1e-9);
            for (int k = 0; k < 3; k++)
                free(t[k]);
            sc_codegen_free(c);
        }
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
