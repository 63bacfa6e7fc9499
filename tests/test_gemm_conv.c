/* The implicit-GEMM convolution kernels (compiler/cg_gemm.c,
 * sc_cg_gemm_conv, sc_cg_gemm_conv_rows) against a double reference built
 * from an explicit im2col matrix: C = A col (forward, "in"), C = A col^T
 * (weight gradient, "it") and C = A col^T with col^T's columns tap-major,
 * gathered from channels-last images (weight gradient, "ir"), on
 * geometries chosen to break the gather: odd
 * channels, strides 1 and 2, padding 0 to 3 (more than the kernel's reach
 * on the left of a 1x1), 1x1, 3x3 and 7x7 kernels, chunks of 1 to 3
 * images (columns running across images), k crossing the k-block edge and
 * n the n-block edge, m not a multiple of the register block; beta 0 (C
 * holds NaN beforehand) and 1; ldc larger than n (the gap must stay).
 *
 * Bound per element as in test_gemm_gen: |got - want| <= TOL * u *
 * (sum |a||b| + |beta c|); worst measured ratio 5.40 (2026-12-06, AMD EPYC
 * Zen 5, with resnet-small's shapes: float 4.06 with AVX-512, 4.73 AVX2,
 * 5.40 generic; double 3.72), so TOL = 16. The host's vectors in float and double, haswell's and
 * x86-64's (128 bits, the masked loads scalarised) in float. */
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

#define TOL 16.0

typedef struct {
    int64_t m, c, h, w, k, s, p, nb, d;
} conv;

/* m, channels, h, w, kernel, stride, padding, images, dilation;
 * the last four have channel runs ("ir") longer than a vector and not a
 * multiple of it, taps 2 apart, and ckk 833 crossing the n block */
static const conv convs[] = {
    {15, 3, 9, 11, 3, 1, 1, 1, 1},  {29, 5, 8, 7, 3, 2, 1, 3, 1},   {16, 37, 6, 6, 3, 1, 1, 2, 1}, /* ckk 333 > kc */
    {14, 3, 17, 13, 7, 2, 3, 2, 1}, {7, 4, 5, 5, 1, 1, 2, 3, 1},   {33, 8, 15, 15, 3, 1, 0, 3, 1}, /* cols 507 > nc */
    {1, 1, 1, 1, 1, 1, 0, 1, 1},    {64, 16, 12, 12, 3, 2, 2, 2, 1}, {3, 2, 4, 6, 5, 1, 3, 1, 1},
    {20, 33, 7, 9, 3, 2, 2, 3, 2}, {9, 40, 5, 6, 3, 1, 3, 2, 1}, {12, 17, 11, 10, 7, 1, 3, 2, 1},
    {30, 21, 6, 5, 1, 2, 0, 3, 1},
    /* resnet-small's (m = 16, 32: the balanced register rows 8+8 and
     * 11+11+10), its 1x1 stride-2 downsample among them */
    {16, 16, 32, 32, 3, 1, 1, 1, 1}, {32, 32, 16, 16, 3, 1, 1, 2, 1}, {32, 16, 32, 32, 1, 2, 0, 2, 1},
};
#define NCONVS (int)(sizeof convs / sizeof *convs)

typedef void (*gemm_f)(const void *, const void *, void *, float);
typedef void (*gemm_d)(const void *, const void *, void *, double);

static int64_t dil(const conv *v) { return v->d; }

static sc_conv_geom geom(const conv *v)
{
    int64_t reach = dil(v) * (v->k - 1) + 1;
    int64_t oh = (v->h + 2 * v->p - reach) / v->s + 1, ow = (v->w + 2 * v->p - reach) / v->s + 1;
    return (sc_conv_geom){v->c, v->h, v->w, v->k, v->s, v->p, oh, ow, dil(v), 1};
}

/* kinds: 0 "in", 1 "it", 2 "ir" (op(B) = col^T as for it) */
enum { KINDS = 3 };
static const char *kind_name(int tb) { return tb == 2 ? "ir" : tb ? "it" : "in"; }

/* op(B) k x n: the im2col matrix [ckk, cols] or its transpose */
static void sizes(const conv *v, int tb, int64_t *n, int64_t *k, int64_t *lda, int64_t *ldc)
{
    sc_conv_geom g = geom(v);
    int64_t ckk = v->c * v->k * v->k, cols = v->nb * g.oh * g.ow;
    *n = tb ? ckk : cols;
    *k = tb ? cols : ckk;
    *lda = *k + 3;
    *ldc = *n + 2;
}

static void fn_name(char *buf, size_t len, int ci, int tb) { snprintf(buf, len, "test_conv_%d_%d", ci, tb); }

static sc_codegen *build(int f64, const char *cpu)
{
    char err[1024];
    sc_codegen_options o = {.target_cpu = cpu, .opt_level = 2, .double_precision = f64};
    sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    LLVMTypeRef args[4] = {c->ptr, c->ptr, c->ptr, c->elt};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 4, 0);
    for (int i = 0; i < NCONVS; i++)
        for (int tb = 0; tb < KINDS; tb++) {
            int64_t n, k, lda, ldc;
            sizes(&convs[i], tb, &n, &k, &lda, &ldc);
            sc_conv_geom g = geom(&convs[i]);
            char name[64];
            fn_name(name, sizeof name, i, tb);
            c->fn = LLVMAddFunction(c->mod, name, ft);
            c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
            LLVMPositionBuilderAtEnd(c->b, c->entry);
            if (tb == 2)
                sc_cg_gemm_conv_rows(c, convs[i].m, n, k, LLVMGetParam(c->fn, 0), lda, &g, convs[i].nb,
                                     LLVMGetParam(c->fn, 1), LLVMGetParam(c->fn, 3), LLVMGetParam(c->fn, 2), ldc);
            else
                sc_cg_gemm_conv(c, tb, convs[i].m, n, k, LLVMGetParam(c->fn, 0), lda, &g, convs[i].nb,
                                LLVMGetParam(c->fn, 1), LLVMGetParam(c->fn, 3), LLVMGetParam(c->fn, 2), ldc);
            LLVMBuildRetVoid(c->b);
        }
    if (sc_codegen_optimize(c, err, sizeof err))
        fail_msg("%s", err);
    return c;
}

/* col[r][q] of the images X (double), r = (ch*k + kh)*k + kw, q = (img*oh + oy)*ow + ox */
static double col_at(const conv *v, const double *X, int64_t r, int64_t q)
{
    sc_conv_geom g = geom(v);
    int64_t ch = r / (v->k * v->k), kh = r / v->k % v->k, kw = r % v->k;
    int64_t img = q / (g.oh * g.ow), oy = q / g.ow % g.oh, ox = q % g.ow;
    int64_t ih = oy * v->s - v->p + kh * dil(v), iw = ox * v->s - v->p + kw * dil(v);
    if (ih < 0 || ih >= v->h || iw < 0 || iw >= v->w)
        return 0;
    return X[((img * v->c + ch) * v->h + ih) * v->w + iw];
}

/* Fills m (elements of esz bytes) and its double image M alike. */
static void fill(void *m, double *M, size_t n, int f64, uint64_t *seed, int nan)
{
    for (size_t i = 0; i < n; i++) {
        double v = nan ? NAN : frand(seed);
        if (f64)
            ((double *)m)[i] = v;
        else
            ((float *)m)[i] = (float)v;
        M[i] = f64 ? v : (double)(float)v;
    }
}

static double check(sc_codegen *c, int f64, int ci, int tb, double beta)
{
    const conv *v = &convs[ci];
    int64_t n, k, lda, ldc;
    sizes(v, tb, &n, &k, &lda, &ldc);
    size_t esz = f64 ? 8 : 4, na = (size_t)(v->m * lda), nx = (size_t)(v->nb * v->c * v->h * v->w),
           nc = (size_t)(v->m * ldc);
    double *A = alloc(na * sizeof *A), *X = alloc(nx * sizeof *X), *C = alloc(nc * sizeof *C);
    void *a = alloc(na * esz), *x = alloc(nx * esz), *cc = alloc(nc * esz);
    uint64_t seed = (uint64_t)(ci * 6 + tb * 2) + (beta != 0);
    fill(a, A, na, f64, &seed, 0);
    fill(x, X, nx, f64, &seed, 0);
    fill(cc, C, nc, f64, &seed, beta == 0); /* beta 0: C must not be read */
    void *arg = x;
    if (tb == 2) { /* "ir" reads the images channels-last */
        int64_t hw = v->h * v->w;
        arg = alloc(nx * esz);
        for (int64_t img = 0; img < v->nb; img++)
            for (int64_t ch = 0; ch < v->c; ch++)
                for (int64_t px = 0; px < hw; px++)
                    memcpy((char *)arg + (size_t)(((img * hw + px) * v->c + ch)) * esz,
                           (char *)x + (size_t)((img * v->c + ch) * hw + px) * esz, esz);
    }
    char name[64], err[512];
    fn_name(name, sizeof name, ci, tb);
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    if (f64)
        ((gemm_d)(uintptr_t)fp)(a, arg, cc, beta);
    else
        ((gemm_f)(uintptr_t)fp)(a, arg, cc, (float)beta);
    if (arg != x)
        free(arg);
    double u = f64 ? 0x1p-53 : 0x1p-24, worst = 0;
    for (int64_t i = 0; i < v->m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double want = beta != 0 ? beta * C[i * ldc + j] : 0, mag = fabs(want);
            for (int64_t p = 0; p < k; p++) {
                /* "ir": column j is tap j / c, channel j % c; im2col row (ch*k + kh)*k + kw */
                int64_t r = tb == 2 ? j % v->c * v->k * v->k + j / v->c : j;
                double t = A[i * lda + p] * (tb ? col_at(v, X, r, p) : col_at(v, X, p, j));
                want += t;
                mag += fabs(t);
            }
            double got = f64 ? ((double *)cc)[i * ldc + j] : ((float *)cc)[i * ldc + j];
            double r = fabs(got - want) / (u * mag + 1e-300);
            if (!(r <= TOL))
                fail_msg("%s conv %d %s beta %g: C[%lld][%lld] = %.9g, want %.9g (%.1f u of the bound)",
                         f64 ? "double" : "float", ci, kind_name(tb), beta, (long long)i, (long long)j, got, want, r);
            worst = fmax(worst, r);
        }
        for (int64_t j = n; j < ldc; j++) { /* the gap of C's row is untouched */
            double got = f64 ? ((double *)cc)[i * ldc + j] : ((float *)cc)[i * ldc + j];
            double was = C[i * ldc + j];
            if (!(got == was || (isnan(got) && isnan(was))))
                fail_msg("conv %d %s: C[%lld][%lld] outside the matrix was written", ci, kind_name(tb), (long long)i,
                         (long long)j);
        }
    }
    free(A);
    free(X);
    free(C);
    free(a);
    free(x);
    free(cc);
    return worst;
}

/* cpu: NULL for the host (AVX-512 here), haswell (AVX2) or x86-64 (the
 * generic path: 128-bit vectors, masked loads scalarised) */
static void run(int f64, const char *cpu)
{
    sc_codegen *c = build(f64, cpu);
    double worst = 0;
    for (int i = 0; i < NCONVS; i++)
        for (int t = 0; t < 2 * KINDS; t++)
            worst = fmax(worst, check(c, f64, i, t % KINDS, t / KINDS ? 1.0 : 0.0));
    printf("%s, %s: %d convolutions x in/it/ir x beta 0/1, worst error %.2f u of sum|a||b| (bound %.0f); %d-bit vectors\n",
           f64 ? "double" : "float", cpu ? cpu : "host", NCONVS, worst, TOL, c->gemm_vbits);
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
