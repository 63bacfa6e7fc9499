/* The generated GEMM kernels (compiler/cg_gemm.c) against a double
 * reference, on shapes chosen to break them: sizes that are not multiples
 * of the vector width (16 floats, 8 doubles with AVX-512) or of the
 * register block (14 x 32 floats), single rows and columns, k across the
 * k-block edge; all four transposes; leading dimensions larger than the
 * minimum (the gaps hold NaN, which must not leak in); beta 0 (C holds
 * NaN beforehand, which must not leak either) and 1.
 *
 * Bound per element: |got - want| <= TOL * u * (sum_k |a||b| + |beta c|),
 * u the unit roundoff of the element type (2^-24, 2^-53). The a-priori
 * bound of a k-term dot product is k * u * that sum; the worst measured
 * ratio err / (u * sum) is 4.57 (2026-12-06, AMD EPYC Zen 5: float 3.50,
 * 3.80 and 4.02, double 4.56, 4.57 and 3.35 on the AVX-512, AVX2 and
 * generic paths), so
 * TOL = 16 keeps within 10x of it and still catches any lost or doubled
 * term, which costs about the sum itself.
 *
 * Each vector path runs: the host's (AVX-512 here), haswell's (AVX2 and
 * FMA; skipped on a CPU without them) and x86-64's (the generic path,
 * 128-bit vectors without FMA). */
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
#include "tune.h"

#define TOL 16.0

typedef struct {
    int m, n, k;
} shape;

/* Each awkward value in each position at least once, with others. */
static const shape shapes[] = {
    {1, 1, 1},    {2, 7, 15},   {7, 16, 17},  {15, 17, 31}, {16, 31, 33}, {17, 33, 48}, {31, 48, 49},
    {33, 49, 97}, {48, 97, 2},  {49, 257, 7}, {97, 1, 257}, {257, 2, 16}, {14, 32, 1},  {28, 64, 300},
    {13, 15, 1000}, {1, 257, 33}, {29, 1, 7},  {3, 100, 600}, {64, 576, 576}, {30, 1000, 400},
    {16, 144, 1024}, {32, 48, 144}, /* resnet-small's 16 and 32 rows (register rows 8+8, 11+11+10) */
};
#define NSHAPES (int)(sizeof shapes / sizeof *shapes)

typedef void (*gemm_f)(const void *, const void *, void *, float);
typedef void (*gemm_d)(const void *, const void *, void *, double);

/* extra columns of every leading dimension */
static int pad_of(int s, int ta, int tb) { return 1 + (s + 2 * ta + tb) % 5; }

static void dims(const shape *s, int ta, int tb, int si, int64_t *lda, int64_t *ldb, int64_t *ldc)
{
    *lda = (ta ? s->m : s->k) + pad_of(si, ta, tb);
    *ldb = (tb ? s->k : s->n) + pad_of(si + 1, ta, tb);
    *ldc = s->n + pad_of(si + 2, ta, tb);
}

static void fn_name(char *buf, size_t len, int si, int ta, int tb)
{
    snprintf(buf, len, "test_gemm_%d_%d%d", si, ta, tb);
}

/* The shapes --tune's candidate blockings run on: k across the
 * candidate k-blocks' edges, m not a multiple of any candidate mr, n
 * across the packed block's edge (nc is 512 at kc 128). */
static int crosses_kc(int si)
{
    const shape *s = &shapes[si];
    return (s->m == 97 && s->k == 257) || s->k == 1000 || (s->n == 1000 && s->k == 400) || (s->m == 64 && s->k == 576);
}

/* One module with a wrapper per shape (those of `only`, or all) and
 * transpose, each calling the generated GEMM, blocked mr x kc (0: the
 * default rule's). */
static sc_codegen *build(int f64, const char *cpu, int mr, int kc, int (*only)(int))
{
    char err[1024];
    sc_codegen_options o = {.target_cpu = cpu, .opt_level = 2, .double_precision = f64};
    sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    LLVMTypeRef args[4] = {c->ptr, c->ptr, c->ptr, c->elt};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 4, 0);
    c->gemm_mr = mr;
    c->gemm_kc = kc;
    for (int si = 0; si < NSHAPES; si++)
        for (int t = 0; t < 4 && (!only || only(si)); t++) {
            int ta = t >> 1, tb = t & 1;
            int64_t lda, ldb, ldc;
            dims(&shapes[si], ta, tb, si, &lda, &ldb, &ldc);
            char name[64];
            fn_name(name, sizeof name, si, ta, tb);
            c->fn = LLVMAddFunction(c->mod, name, ft);
            c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
            LLVMPositionBuilderAtEnd(c->b, c->entry);
            sc_cg_gemm(c, ta, tb, shapes[si].m, shapes[si].n, shapes[si].k, LLVMGetParam(c->fn, 0), lda,
                       LLVMGetParam(c->fn, 1), ldb, LLVMGetParam(c->fn, 3), LLVMGetParam(c->fn, 2), ldc);
            LLVMBuildRetVoid(c->b);
        }
    if (sc_codegen_optimize(c, err, sizeof err))
        fail_msg("%s", err);
    return c;
}

/* Runs shape si, transposes ta tb, with beta, and returns the worst
 * err / (u * bound) over the elements. */
static double check(sc_codegen *c, int f64, int si, int ta, int tb, double beta)
{
    const shape *s = &shapes[si];
    int64_t lda, ldb, ldc;
    dims(s, ta, tb, si, &lda, &ldb, &ldc);
    int64_t ra = ta ? s->k : s->m, rb = tb ? s->n : s->k;
    size_t esz = f64 ? 8 : 4;
    size_t na = (size_t)(ra * lda), nb = (size_t)(rb * ldb), nc = (size_t)(s->m * ldc);
    double *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B), *C = malloc(nc * sizeof *C);
    void *a = malloc(na * esz), *b = malloc(nb * esz), *cc = malloc(nc * esz);
    assert_non_null(A);
    assert_non_null(B);
    assert_non_null(C);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(cc);
    uint64_t seed = (uint64_t)(si * 8 + ta * 2 + tb) + (beta != 0) * 1000;
    /* values rounded to the element type, so the reference sees the same;
     * NaN in the gaps of the leading dimensions */
    for (int pass = 0; pass < 3; pass++) {
        double *M = pass == 0 ? A : pass == 1 ? B : C;
        void *m = pass == 0 ? a : pass == 1 ? b : cc;
        size_t n = pass == 0 ? na : pass == 1 ? nb : nc;
        int64_t ld = pass == 0 ? lda : pass == 1 ? ldb : ldc, w = pass == 0 ? (ta ? s->m : s->k)
                                                                   : pass == 1 ? (tb ? s->k : s->n) : s->n;
        for (size_t i = 0; i < n; i++) {
            double v = (int64_t)(i % (size_t)ld) < w ? frand(&seed) : NAN;
            if (pass == 2 && beta == 0)
                v = NAN;  /* beta 0: C must not be read */
            if (f64)
                ((double *)m)[i] = v;
            else
                ((float *)m)[i] = (float)v;
            M[i] = f64 ? v : (double)(float)v;
        }
    }
    char name[64];
    fn_name(name, sizeof name, si, ta, tb);
    char err[512];
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    if (f64)
        ((gemm_d)(uintptr_t)fp)(a, b, cc, beta);
    else
        ((gemm_f)(uintptr_t)fp)(a, b, cc, (float)beta);
    double u = f64 ? 0x1p-53 : 0x1p-24, worst = 0;
    for (int i = 0; i < s->m; i++)
        for (int j = 0; j < s->n; j++) {
            double want = 0, mag = 0;
            for (int p = 0; p < s->k; p++) {
                double x = ta ? A[p * lda + i] : A[i * lda + p];
                double y = tb ? B[j * ldb + p] : B[p * ldb + j];
                want += x * y;
                mag += fabs(x * y);
            }
            if (beta != 0) {
                want += beta * C[i * ldc + j];
                mag += fabs(beta * C[i * ldc + j]);
            }
            double got = f64 ? ((double *)cc)[i * ldc + j] : ((float *)cc)[i * ldc + j];
            double r = fabs(got - want) / (u * mag + 1e-300);
            if (!(r <= TOL))
                fail_msg("%s %dx%dx%d t%d%d beta %g: C[%d][%d] = %.9g, want %.9g (%.1f u of the bound)",
                         f64 ? "double" : "float", s->m, s->n, s->k, ta, tb, beta, i, j, got, want, r);
            worst = fmax(worst, r);
        }
    /* the gaps of C's rows are untouched */
    for (int i = 0; i < s->m; i++)
        for (int64_t j = s->n; j < ldc; j++) {
            double got = f64 ? ((double *)cc)[i * ldc + j] : ((float *)cc)[i * ldc + j];
            double was = C[i * ldc + j];
            if (!(got == was || (isnan(got) && isnan(was))))
                fail_msg("%dx%dx%d t%d%d: C[%d][%lld] outside the matrix was written", s->m, s->n, s->k, ta, tb, i,
                         (long long)j);
        }
    free(A);
    free(B);
    free(C);
    free(a);
    free(b);
    free(cc);
    return worst;
}

/* cpu: NULL for the host (AVX-512 here), or a CPU whose vectors take
 * another path: haswell (AVX2, 256 bits), x86-64 (the generic path:
 * 128 bits, no FMA). */
static double run_blocked(int f64, const char *cpu, int mr, int kc, int (*only)(int))
{
    sc_codegen *c = build(f64, cpu, mr, kc, only);
    double worst = 0;
    for (int si = 0; si < NSHAPES; si++)
        for (int t = 0; t < 4 && (!only || only(si)); t++)
            for (int bi = 0; bi < 2; bi++)
                worst = fmax(worst, check(c, f64, si, t >> 1, t & 1, bi ? 1.0 : 0.0));
    sc_codegen_free(c);
    return worst;
}

static void run(int f64, const char *cpu)
{
    double worst = run_blocked(f64, cpu, 0, 0, NULL);
    printf("%s, %s: %d shapes x 4 transposes x beta 0/1, worst error %.2f u of sum|a||b| (bound %.0f)\n",
           f64 ? "double" : "float", cpu ? cpu : "host", NSHAPES, worst, TOL);
}

/* Every blocking --tune may choose (tune.h's candidates, each register
 * row count with each k-block), on each vector path, in float (the
 * blocking does not depend on the element type's code paths). */
static void test_candidates(void **state)
{
    (void)state;
    static const char *const cpus[] = {NULL, "haswell", "x86-64"};
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    for (int p = 0; p < 3; p++) {
        if (p == 1 && !avx2)
            continue;
        char err[512];
        sc_codegen_options o = {.target_cpu = cpus[p], .opt_level = 2};
        sc_codegen *q = sc_codegen_new(&o, err, sizeof err);
        assert_non_null(q);
        double worst = 0;
        int seen[SC_TUNE_NMR * SC_TUNE_NKC], nseen = 0;
        for (int i = 0; i < SC_TUNE_NMR; i++)
            for (int j = 0; j < SC_TUNE_NKC; j++) {
                /* without AVX-512, mr 8 and 14 are 6: run each blocking once */
                q->gemm_mr = sc_tune_cand_mr[i];
                q->gemm_kc = sc_tune_cand_kc[j];
                sc_gemm_blocking bl = sc_cg_gemm_blocking(q, 1000, 1000, 1000);
                int key = bl.mr * 1000 + (int)bl.kc, dup = 0;
                for (int k = 0; k < nseen; k++)
                    dup |= seen[k] == key;
                if (dup)
                    continue;
                seen[nseen++] = key;
                worst = fmax(worst, run_blocked(0, cpus[p], sc_tune_cand_mr[i], sc_tune_cand_kc[j], crosses_kc));
            }
        printf("float, %s: %d distinct candidate blockings, worst error %.2f u of sum|a||b| (bound %.0f)\n",
               cpus[p] ? cpus[p] : "host", nseen, worst, TOL);
        sc_codegen_free(q);
    }
}

static void test_float(void **state)
{
    (void)state;
    run(0, NULL);
}

static void test_double(void **state)
{
    (void)state;
    run(1, NULL);
}

static void test_avx2(void **state)
{
    (void)state;
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        skip();
    run(0, "haswell");
    run(1, "haswell");
}

static void test_generic(void **state)
{
    (void)state;
    run(0, "x86-64");
    run(1, "x86-64");
}

/* The blocking keeps the packed buffer bounded and the register block
 * within the target's registers. */
static void test_blocking(void **state)
{
    (void)state;
    char err[512];
    sc_codegen_options o = {.opt_level = 2};
    sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
    assert_non_null(c);
    int64_t sizes[][3] = {{1, 1, 1}, {64, 3136, 576}, {512, 9, 4608}, {4608, 512, 100000}};
    for (int i = 0; i < 4; i++) {
        sc_gemm_blocking bl = sc_cg_gemm_blocking(c, sizes[i][0], sizes[i][1], sizes[i][2]);
        int regs = c->gemm_vbits == 512 ? 32 : 16;
        assert_true(bl.mr >= 1 && bl.nv >= 1 && bl.mr * bl.nv + bl.nv + 1 <= regs);
        assert_true(bl.kc >= 1 && bl.kc <= sizes[i][2]);
        assert_true(bl.nc % (bl.nv * bl.vw) == 0);
        assert_true(bl.kc * bl.nc * 4 <= 512 << 10);
    }
    /* untuned, the rows are spread evenly over as many tiles as the full
     * register block needs: no thin edge tile (m = 16: 8 + 8 with AVX-512) */
    int64_t full = sc_cg_gemm_blocking(c, 1000, 64, 64).mr;
    for (int64_t m = 1; m <= 200; m++) {
        sc_gemm_blocking bl = sc_cg_gemm_blocking(c, m, 64, 64);
        int64_t tiles = (m + bl.mr - 1) / bl.mr;
        assert_true(bl.mr <= full && tiles == (m + full - 1) / full);
        assert_true(m - (tiles - 1) * bl.mr > bl.mr - tiles);
    }
    if (c->gemm_vbits == 512)
        assert_int_equal(sc_cg_gemm_blocking(c, 16, 1024, 144).mr, 8);
    /* --tune's choice is taken, within the registers and the shape */
    int regs = c->gemm_vbits == 512 ? 32 : 16;
    for (int i = 0; i < SC_TUNE_NMR; i++)
        for (int j = 0; j < SC_TUNE_NKC; j++) {
            c->gemm_mr = sc_tune_cand_mr[i];
            c->gemm_kc = sc_tune_cand_kc[j];
            sc_gemm_blocking bl = sc_cg_gemm_blocking(c, 64, 3136, 576), small = sc_cg_gemm_blocking(c, 5, 9, 100);
            assert_int_equal(bl.kc, c->gemm_kc);
            assert_true(bl.mr <= c->gemm_mr && bl.mr * bl.nv + bl.nv + 1 <= regs);
            assert_true(regs == 16 || bl.mr == c->gemm_mr);
            assert_true(small.mr == 5 && small.kc == 100);
            assert_true(bl.kc * bl.nc * 4 <= 512 << 10);
        }
    /* a k-block from a table of any size: the packed panel stays bounded */
    c->gemm_kc = 1 << 20;
    sc_gemm_blocking big = sc_cg_gemm_blocking(c, 64, 3136, 100000);
    assert_true(big.kc >= 1 && big.kc * big.nc * 4 <= 512 << 10);
    sc_codegen_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocking),
        cmocka_unit_test(test_float),
        cmocka_unit_test(test_double),
        cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_generic),
        cmocka_unit_test(test_candidates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
