/* flip+implicit-gemm (compiler/convplan.h): the data gradient of a
 * stride-1 convolution as the forward convolution of dy with flipped,
 * transposed weights (sc_conv_flip_geom) run by the implicit-GEMM kernel
 * (sc_cg_gemm_conv), against a double reference of the data gradient
 * written from its definition (dx[ch][ih][iw] = sum over o, kh, kw of
 * W[o][ch][kh][kw] dy[o][ih + p - kh][iw + p - kw]). Shapes chosen to
 * break it: odd channels, planes not multiples of the vector width or the
 * register block, padding 0 to k-1 (k-1: every tap of the flipped
 * convolution reaches past dy's edge), 1x1, 3x3, 5x5 and 7x7 kernels,
 * one image and odd chunks of 3, C below and above the register block,
 * O*K*K across the k-block edge.
 *
 * Bound per element as in test_gemm_conv: |got - want| <= TOL * u * sum
 * |w||dy|; worst measured ratio 3.98 (2026-12-06, AMD EPYC Zen 5: double
 * 3.98; float 2.26 with AVX-512, 2.85 AVX2, 2.68 generic), so TOL = 16 as
 * there. */
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
#include "convplan.h"

#define TOL 16.0

typedef struct {
    int64_t o, c, h, w, k, p, nb;  /* forward conv: c -> o channels, h x w, kernel k, padding p; images */
} dgrad;

static const dgrad cases[] = {
    {7, 5, 9, 11, 3, 1, 1},  {16, 17, 8, 7, 3, 0, 3}, {5, 29, 6, 6, 3, 2, 2},  /* p = k-1 */
    {3, 14, 13, 9, 7, 3, 1}, {11, 3, 12, 10, 7, 0, 3}, {9, 7, 5, 5, 1, 0, 3}, /* 1x1 over chunks */
    {1, 1, 1, 1, 1, 0, 1},   {37, 15, 7, 9, 3, 1, 2}, /* O*K*K = 333 > kc */
    {6, 33, 4, 6, 5, 4, 1},  {64, 13, 3, 3, 3, 1, 3},
    /* resnet-small's layers (C = 16, 32, 64: the balanced register rows
     * 8+8, 11+11+10, 4x13+12) */
    {16, 16, 32, 32, 3, 1, 1}, {32, 32, 16, 16, 3, 1, 2}, {64, 64, 8, 8, 3, 1, 3},
};
#define NCASES (int)(sizeof cases / sizeof *cases)

typedef void (*gemm_f)(const void *, const void *, void *, float);
typedef void (*gemm_d)(const void *, const void *, void *, double);

static sc_conv_geom fwd(const dgrad *v)
{
    int64_t oh = v->h + 2 * v->p - v->k + 1, ow = v->w + 2 * v->p - v->k + 1;
    return (sc_conv_geom){v->c, v->h, v->w, v->k, 1, v->p, oh, ow, 1, 1};
}

static void fn_name(char *buf, size_t len, int i) { snprintf(buf, len, "test_dgrad_%d", i); }

static sc_codegen *build(int f64, const char *cpu)
{
    char err[1024];
    sc_codegen_options o = {.target_cpu = cpu, .opt_level = 2, .double_precision = f64};
    sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    LLVMTypeRef args[4] = {c->ptr, c->ptr, c->ptr, c->elt};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 4, 0);
    for (int i = 0; i < NCASES; i++) {
        const dgrad *v = &cases[i];
        sc_conv_geom g = fwd(v), f = sc_conv_flip_geom(&g, v->o);
        int64_t kdim = v->o * v->k * v->k, cols = v->nb * v->h * v->w;
        assert_int_equal(f.oh, v->h); /* the flipped convolution's output is dx's plane */
        assert_int_equal(f.ow, v->w);
        char name[64];
        fn_name(name, sizeof name, i);
        c->fn = LLVMAddFunction(c->mod, name, ft);
        c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
        LLVMPositionBuilderAtEnd(c->b, c->entry);
        sc_cg_gemm_conv(c, 0, v->c, cols, kdim, LLVMGetParam(c->fn, 0), kdim, &f, v->nb, LLVMGetParam(c->fn, 1),
                        LLVMGetParam(c->fn, 3), LLVMGetParam(c->fn, 2), cols);
        LLVMBuildRetVoid(c->b);
    }
    if (sc_codegen_optimize(c, err, sizeof err))
        fail_msg("%s", err);
    return c;
}

static double check(sc_codegen *c, int f64, int ci)
{
    const dgrad *v = &cases[ci];
    sc_conv_geom g = fwd(v);
    int64_t kk = v->k * v->k, kdim = v->o * kk, hw = v->h * v->w, cols = v->nb * hw;
    size_t esz = f64 ? 8 : 4, nw = (size_t)(v->o * v->c * kk), ndy = (size_t)(v->nb * v->o * g.oh * g.ow),
           ndx = (size_t)(v->c * cols);
    double *W = alloc(nw * sizeof *W), *DY = alloc(ndy * sizeof *DY);
    void *wf = alloc(nw * esz), *dy = alloc(ndy * esz), *dx = alloc(ndx * esz);
    uint64_t seed = (uint64_t)ci * 7 + 1;
    for (size_t i = 0; i < nw; i++)
        W[i] = f64 ? frand(&seed) : (double)(float)frand(&seed);
    for (size_t i = 0; i < ndy; i++) {
        DY[i] = f64 ? frand(&seed) : (double)(float)frand(&seed);
        put(dy, i, DY[i], f64);
    }
    for (size_t i = 0; i < ndx; i++) /* beta 0: dx must not be read */
        put(dx, i, NAN, f64);
    /* wf[ch][(o*k + kh)*k + kw] = W[o][ch][k-1-kh][k-1-kw], as convplan.h says */
    for (int64_t o = 0; o < v->o; o++)
        for (int64_t ch = 0; ch < v->c; ch++)
            for (int64_t t = 0; t < kk; t++)
                put(wf, (size_t)(ch * kdim + o * kk + t), W[(o * v->c + ch) * kk + kk - 1 - t], f64);
    char name[64], err[512];
    fn_name(name, sizeof name, ci);
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    if (f64)
        ((gemm_d)(uintptr_t)fp)(wf, dy, dx, 0.0);
    else
        ((gemm_f)(uintptr_t)fp)(wf, dy, dx, 0.0f);
    double u = f64 ? 0x1p-53 : 0x1p-24, worst = 0;
    for (int64_t img = 0; img < v->nb; img++)
        for (int64_t ch = 0; ch < v->c; ch++)
            for (int64_t ih = 0; ih < v->h; ih++)
                for (int64_t iw = 0; iw < v->w; iw++) {
                    double want = 0, mag = 0;
                    for (int64_t o = 0; o < v->o; o++)
                        for (int64_t kh = 0; kh < v->k; kh++)
                            for (int64_t kw = 0; kw < v->k; kw++) {
                                int64_t oy = ih + v->p - kh, ox = iw + v->p - kw;
                                if (oy < 0 || oy >= g.oh || ox < 0 || ox >= g.ow)
                                    continue;
                                double t = W[((o * v->c + ch) * v->k + kh) * v->k + kw] *
                                           DY[((img * v->o + o) * g.oh + oy) * g.ow + ox];
                                want += t;
                                mag += fabs(t);
                            }
                    /* dx as the GEMM leaves it: [C, nb*H*W], image by image */
                    double got = get(dx, (size_t)(ch * cols + img * hw + ih * v->w + iw), f64);
                    double r = fabs(got - want) / (u * mag + 1e-300);
                    if (!(r <= TOL))
                        fail_msg("%s case %d: dx[%lld][%lld][%lld][%lld] = %.9g, want %.9g (%.1f u of the bound)",
                                 f64 ? "double" : "float", ci, (long long)img, (long long)ch, (long long)ih,
                                 (long long)iw, got, want, r);
                    worst = fmax(worst, r);
                }
    free(W);
    free(DY);
    free(wf);
    free(dy);
    free(dx);
    return worst;
}

/* cpu: NULL for the host, haswell (AVX2) or x86-64 (generic, 128 bits) */
static void run(int f64, const char *cpu)
{
    sc_codegen *c = build(f64, cpu);
    double worst = 0;
    for (int i = 0; i < NCASES; i++)
        worst = fmax(worst, check(c, f64, i));
    printf("%s, %s: %d data gradients, worst error %.2f u of sum|w||dy| (bound %.0f); %d-bit vectors\n",
           f64 ? "double" : "float", cpu ? cpu : "host", NCASES, worst, TOL, c->gemm_vbits);
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
