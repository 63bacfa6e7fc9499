/* The channels-last copy of the implicit weight gradient
 * (compiler/cg_gemm.c, sc_cg_to_channels_last): dst[((j*oh + y)*ow +
 * x)*ch + k] = x[j][k][y*s][x*s], subsampled at stride s. A copy, so
 * exact: every element of dst equals its source bit for bit, and the
 * floats past dst's end (a guard of sentinels) stay untouched. Shapes
 * chosen to break the vw x vw squares: channels below, at and past the
 * vector width (1, 3, 16, 17, 33, 64), planes whose pixel count is not a
 * multiple of it (odd and prime sizes, 1x1), strides 1, 2 and 3 with odd
 * planes (the last row and column kept), batches of 1 to 3. */
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
    if (sc_codegen_optimize(c, err, sizeof err))
        fail_msg("%s", err);
    return c;
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
    printf("%s, %s: %d channels-last copies exact; %d-bit vectors\n", f64 ? "double" : "float", cpu ? cpu : "host",
           NCASES, c->gemm_vbits);
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
