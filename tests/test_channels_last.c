/* The layout kernels of the convolutions (compiler/cg_gemm.c), exact
 * (bit for bit: a copy, or one addition per element) on every vector
 * path:
 *
 * sc_cg_to_channels_last, the implicit weight gradient's copy:
 * dst[((j*oh + y)*ow + x)*ch + k] = x[j][k][y*s][x*s], subsampled at
 * stride s; the floats past dst's end (a guard of sentinels) stay
 * untouched. Shapes chosen to break the vw x vw squares: channels below,
 * at and past the vector width (1, 3, 16, 17, 33, 64), planes whose pixel
 * count is not a multiple of it (odd and prime sizes, 1x1), strides 1, 2
 * and 3 with odd planes (the last row and column kept), batches of 1 to 3.
 *
 * sc_cg_scatter_add, a row of col2im: x[t*s] += col[t] for t in [lo, hi),
 * every other element of x unchanged (col holds values at every t, so a
 * lane past the range or between the taps that is added shows). Strides 1
 * to 4 (3 does not divide a vector: the scalar path), ranges empty, of
 * one column, below, at and past a vector's columns, from lo > 0. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernel_buf.h"

#include "cg_gemm.h"
#include "codegen.h"
#include "codegen_internal.h"

typedef struct {
    int64_t nb, ch, h, w, s;
} shape;

static const shape cases[] = {
    {1, 1, 1, 1, 1},   {2, 3, 5, 7, 1},   {1, 16, 4, 4, 1},  {3, 17, 9, 11, 1}, {2, 33, 13, 5, 1},
    {1, 64, 32, 32, 1}, {2, 16, 32, 32, 2}, {3, 17, 9, 11, 2}, {1, 33, 7, 7, 2},  {2, 64, 8, 8, 2},
    {1, 40, 10, 9, 3}, {2, 5, 3, 3, 2},   {1, 32, 1, 1, 2},  {2, 20, 2, 31, 2},
};
#define NCASES (int)(sizeof cases / sizeof *cases)
#define GUARD 67

typedef void (*copy_f)(const void *, void *);

typedef struct {
    int64_t s, lo, hi;
} span;

static const span spans[] = {
    {1, 0, 0},  {1, 0, 1},  {1, 3, 19}, {1, 0, 16}, {1, 5, 40}, {2, 0, 8},  {2, 1, 9},   {2, 0, 7},
    {2, 2, 35}, {2, 4, 4},  {2, 0, 1},  {3, 1, 11}, {4, 0, 4},  {4, 3, 13}, {2, 0, 16}, {2, 7, 24},
};
#define NSPANS (int)(sizeof spans / sizeof *spans)
#define XLEN 200

static void span_name(char *buf, size_t len, int i) { snprintf(buf, len, "test_sa_%d", i); }

static void fn_name(char *buf, size_t len, int i) { snprintf(buf, len, "test_cl_%d", i); }

static sc_codegen *build(int f64, const char *cpu)
{
    char err[1024];
    sc_codegen_options o = {.target_cpu = cpu, .opt_level = 2, .double_precision = f64};
    sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    LLVMTypeRef args[2] = {c->ptr, c->ptr};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 2, 0);
    for (int i = 0; i < NCASES; i++) {
        const shape *v = &cases[i];
        char name[64];
        fn_name(name, sizeof name, i);
        c->fn = LLVMAddFunction(c->mod, name, ft);
        c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
        LLVMPositionBuilderAtEnd(c->b, c->entry);
        sc_cg_to_channels_last(c, v->nb, v->ch, v->h, v->w, v->s, LLVMGetParam(c->fn, 0), LLVMGetParam(c->fn, 1));
        LLVMBuildRetVoid(c->b);
    }
    for (int i = 0; i < NSPANS; i++) {
        char name[64];
        span_name(name, sizeof name, i);
        c->fn = LLVMAddFunction(c->mod, name, ft);
        c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
        LLVMPositionBuilderAtEnd(c->b, c->entry);
        sc_cg_scatter_add(c, spans[i].s, LLVMGetParam(c->fn, 1), LLVMGetParam(c->fn, 0), LLVMConstInt(c->i64, (unsigned long long)spans[i].lo, 1),
                          LLVMConstInt(c->i64, (unsigned long long)spans[i].hi, 1));
        LLVMBuildRetVoid(c->b);
    }
    if (sc_codegen_optimize(c, err, sizeof err))
        fail_msg("%s", err);
    return c;
}

static void check_span(sc_codegen *c, int f64, int si)
{
    const span *v = &spans[si];
    size_t esz = f64 ? 8 : 4, ncol = XLEN / 4 + 1;
    void *x = alloc(XLEN * esz), *col = alloc(ncol * esz);
    double want[XLEN];
    uint64_t seed = (uint64_t)si * 11 + 3;
    for (size_t i = 0; i < XLEN; i++) {
        want[i] = f64 ? frand(&seed) : (double)(float)frand(&seed);
        put(x, i, want[i], f64);
    }
    for (size_t t = 0; t < ncol; t++)
        put(col, t, frand(&seed), f64);
    for (int64_t t = v->lo; t < v->hi; t++) {
        double sum = want[t * v->s] + get(col, (size_t)t, f64);
        want[t * v->s] = f64 ? sum : (double)(float)sum;
    }
    char name[64], err[512];
    span_name(name, sizeof name, si);
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    ((copy_f)(uintptr_t)fp)(col, x);
    for (size_t i = 0; i < XLEN; i++)
        if (get(x, i, f64) != want[i])
            fail_msg("span %d (s %lld, [%lld, %lld)): x[%zu] = %g, want %g", si, (long long)v->s, (long long)v->lo,
                     (long long)v->hi, i, get(x, i, f64), want[i]);
    free(x);
    free(col);
}

static void check(sc_codegen *c, int f64, int ci)
{
    const shape *v = &cases[ci];
    int64_t oh = (v->h - 1) / v->s + 1, ow = (v->w - 1) / v->s + 1;
    size_t esz = f64 ? 8 : 4, nx = (size_t)(v->nb * v->ch * v->h * v->w), nd = (size_t)(v->nb * v->ch * oh * ow);
    void *x = alloc(nx * esz), *d = alloc((nd + GUARD) * esz);
    uint64_t seed = (uint64_t)ci * 13 + 5;
    for (size_t i = 0; i < nx; i++)
        put(x, i, frand(&seed), f64);
    for (size_t i = 0; i < nd + GUARD; i++)
        put(d, i, NAN, f64);
    char name[64], err[512];
    fn_name(name, sizeof name, ci);
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    ((copy_f)(uintptr_t)fp)(x, d);
    for (int64_t j = 0; j < v->nb; j++)
        for (int64_t y = 0; y < oh; y++)
            for (int64_t xx = 0; xx < ow; xx++)
                for (int64_t k = 0; k < v->ch; k++) {
                    double want = get(x, (size_t)(((j * v->ch + k) * v->h + y * v->s) * v->w + xx * v->s), f64);
                    double got = get(d, (size_t)(((j * oh + y) * ow + xx) * v->ch + k), f64);
                    if (got != want)
                        fail_msg("case %d: dst[%lld][%lld][%lld][%lld] = %g, want %g", ci, (long long)j, (long long)y,
                                 (long long)xx, (long long)k, got, want);
                }
    for (size_t i = nd; i < nd + GUARD; i++)
        if (!isnan(get(d, i, f64)))
            fail_msg("case %d: dst[%zu] past the end written", ci, i);
    free(x);
    free(d);
}

static void run(int f64, const char *cpu)
{
    sc_codegen *c = build(f64, cpu);
    for (int i = 0; i < NCASES; i++)
        check(c, f64, i);
    for (int i = 0; i < NSPANS; i++)
        check_span(c, f64, i);
    printf("%s, %s: %d channels-last copies, %d col2im rows exact; %d-bit vectors\n", f64 ? "double" : "float",
           cpu ? cpu : "host", NCASES, NSPANS, c->gemm_vbits);
    sc_codegen_free(c);
}

#include "kernel_targets.h"

int main(void)
{
    const struct CMUnitTest tests[] = {
        KERNEL_TARGET_TESTS,
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
