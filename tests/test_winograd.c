/* winograd F(m,3), m = 2, 3, 4 (compiler/convplan.h, cg_winograd.h): the
 * generated weight transform, input transform, (m+2)^2 GEMMs and output
 * transform of a
 * 3x3, stride-1, pad-1 convolution against a double reference written
 * from the definition: forward, y[o][yy][xx] = b[o] + sum over c, kh, kw
 * of W[o][c][kh][kw] x[c][yy-1+kh][xx-1+kw], and flipped (the data
 * gradient, W read as [cin][cout]: dx[c][y][x] = sum over o, kh, kw of
 * W[o][c][kh][kw] dy[o][y+1-kh][x+1-kw]). Shapes chosen to break it:
 * planes odd and even and not multiples of the m x m tile (a partial tile
 * at the right and bottom edges), 3x3 and 6x6 and 12x12 planes that m
 * divides, 1x1 and 1xN planes (every tap but the
 * centre in the padding), one image, odd batches and chunks of 1 to 3
 * images, channels not multiples of the vector width, rows and depth
 * across the GEMM's register block and k-block; and each case by rows
 * (all its images one chunk, blocks of 1 to 150 output channels).
 *
 * Bound per element: |got - want| <= TOL * u * sum |w||x| (u the unit
 * roundoff). Winograd rounds in the transforms as well as the sums (V's
 * elements are sums of up to 4 inputs, U's of 9 weights halved, the
 * output transform adds 9 products of M): worst measured ratio 4.43
 * (2026-12-06, AMD EPYC Zen 5: float 4.43 with AVX-512 and AVX2, 2.94
 * generic; double 4.21), against 3.98 for the direct kernels
 * (test_dgrad_flip), so TOL = 32, 7x the worst. The larger tiles' points
 * (+-2, the divisors up to 24 of F(4,3)'s G) cost more: measured
 * 2026-12-07, AMD EPYC Zen 4, worst over the cases of each m: F(2,3) as
 * above; F(3,3) float 42.9 (AVX-512, AVX2), 31.9 (generic), double 23.9;
 * F(4,3) float 47.5 (AVX-512, AVX2), 37.9 (generic), double 40.6. Bounds
 * 256 and 384: 6x and 8x the worst. In float, 48 u of sum |w||x| is
 * 2.8e-6 of it. Measured again 2026-12-07 on AMD EPYC Zen 5 with every
 * case also by rows (every image one chunk, blocks of output channels:
 * the same worst errors): F(4,3) float 54.9 (AVX-512, AVX2), 40.8
 * (generic), double 40.6; 384 is 7x the worst. With the input and
 * output transforms in vectors of tiles (their rounding LLVM's
 * reassociation of the same sums: the scalar loops' sums of taps were
 * reordered across the column and row passes, the shuffles between
 * them now keep the passes apart), the weights transform in explicit
 * vectors (the same sums per filter, which LLVM's reassociation orders
 * differently for some of G's rows) and the cases of both added,
 * 2026-12-07, AMD EPYC Zen 5: F(2,3) float 4.43 (AVX-512, AVX2), 3.12
 * (generic), double 4.27; F(3,3) float 42.9 (AVX-512), 50.7 (AVX2 by
 * rows), 37.4 (generic), double 39.1; F(4,3) float 54.9 (AVX-512, AVX2),
 * 40.8 (generic), double 58.3: 256 and 384 are 5.1x and 6.6x the worst.
 *
 * The weight gradient (cg_winograd_wgrad.c) likewise against dW[o][c][kh][kw]
 * = sum over images and pixels of dy[o][y][x] x[c][y-1+kh][x-1+kw], on the
 * same kinds of shapes, the tile elements in 1, 2 or 4 groups (the
 * threads' split), tile depth across the GEMM's k-block (480 tiles). */
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

#include "cg_winograd.h"
#include "cg_winograd_wgrad.h"
#include "codegen.h"

/* per m (F(m,3)): 2, 3, 4 */
static const double tol[5] = {[2] = 32.0 /* worst measured 4.43 */, [3] = 256.0 /* 50.7 */, [4] = 384.0 /* 58.3 */};
#define NM 3 /* m = 2 .. 4 */
/* The weight gradient's bound is on the sum of |dy||x| over the 9 taps
 * of (o, c): the transforms mix them (dU holds the 3x3 neighbourhood's
 * products, G^T dU G cancels the other taps' out of each), so a tap with
 * few products of its own (the 3x2 plane's corner taps) errs relative to
 * the neighbourhood's; on its own sum the ratio reached 252. Worst measured
 * on the 9 taps' 2.02 (2026-12-07, AMD EPYC Zen 4: float 1.63 with
 * AVX-512, AVX2 and generic; double 2.02), so 16, 8x the worst. F(3,3)'s
 * and F(4,3)'s weight gradients (every case again with their tiles):
 * float 3.86 and 4.57 (AVX-512, AVX2), 4.74 and 4.26 (generic), double
 * 5.91 and 4.77 (2026-12-07, AMD EPYC Zen 5; the tiles in vectors or one
 * by one alike), so 48 for both, 8x and 10x the worst. */
static const double tol_wgrad[5] = {[2] = 16, [3] = 48, [4] = 48};

typedef struct {
    int64_t cin, cout, h, w, n, nb; /* cin -> cout channels of h x w; n images in chunks of nb */
    int flip, bias;
} wcase;

static const wcase cases[] = {
    {5, 7, 9, 11, 1, 1, 0, 1},  {17, 16, 8, 7, 3, 3, 0, 0}, {3, 29, 6, 6, 2, 1, 1, 0},
    {64, 64, 4, 4, 4, 2, 0, 1}, {13, 37, 1, 1, 3, 3, 1, 0}, {33, 6, 1, 5, 1, 1, 0, 1},
    {1, 1, 1, 1, 1, 1, 0, 0},   {70, 65, 5, 3, 3, 1, 1, 0}, {130, 48, 7, 10, 2, 2, 0, 1},
    {9, 300, 3, 2, 1, 1, 1, 0}, {66, 70, 3, 3, 5, 5, 1, 1}, {19, 23, 13, 10, 3, 1, 0, 1},
    {8, 9, 12, 12, 2, 2, 1, 0}, {65, 64, 6, 6, 2, 1, 0, 0},
    /* the transforms in vectors of tiles (cg_winograd.c): rows of more
     * tiles than the vector width, whole vectors and a partial one (66
     * wide: 33, 22 and 17 tiles; 49: 25, 17, 13), exactly one vector of
     * AVX2 (32: 8 tiles of F(4,3)), and several rows a vector with a
     * group left over and the partial bottom row (23 x 13: 6 rows of 4
     * F(4,3) tiles, 8 of 5, 12 of 7) */
    {6, 5, 10, 66, 1, 1, 0, 1}, {5, 4, 23, 13, 3, 3, 1, 0}, {3, 4, 32, 32, 2, 1, 0, 1}, {4, 3, 17, 49, 3, 1, 0, 1},
    /* the weights transform's last partial vector of filters (cg_winograd.c,
     * weights(): the forward's over cin, the flip's over cout or a block
     * of rb rows) with 15, 7 and 3 lanes of 16, 8 and 4 (its taps in all
     * three vectors of every third one); the flip's 62 = 3x16 + 14 (by
     * rows 31 = 16 + 15) */
    {31, 46, 4, 5, 2, 1, 0, 1}, {23, 62, 5, 4, 3, 3, 1, 0},
};
#define NCASES (int)(sizeof cases / sizeof *cases)

/* The weight gradient (cg_winograd_wgrad.c): x's c channels, dy's o, the
 * tile elements in `groups` groups (the threads' split). */
typedef struct {
    int64_t c, o, h, w, n, nb;
    int groups;
} gcase;

static const gcase gcases[] = {
    {5, 7, 9, 11, 1, 1, 1},   {17, 16, 8, 7, 3, 3, 2},  {3, 29, 6, 6, 2, 1, 4},     {64, 64, 4, 4, 4, 2, 2},
    {13, 36, 1, 1, 3, 3, 4},  {33, 6, 1, 5, 1, 1, 2},   {1, 1, 1, 1, 1, 1, 1},      {70, 65, 5, 3, 3, 1, 4},
    {130, 48, 7, 10, 2, 2, 2}, {9, 300, 3, 2, 1, 1, 4}, {37, 30, 13, 13, 5, 5, 2}, {20, 18, 32, 30, 2, 2, 1},
    {16, 40, 34, 33, 1, 1, 2},
    /* rows of tiles in vectors (cg_winograd_wgrad.c): 33 tiles a row (2
     * whole vectors of 16 and 1, 4 of 8 and 1, 8 of 4 and 1; F(3,3) 22,
     * F(4,3) 17), 6 a row (the fewest in vectors) */
    {7, 5, 5, 66, 1, 1, 2}, {3, 17, 9, 12, 3, 3, 4}, {6, 4, 7, 18, 1, 1, 2},
};
#define NGCASES (int)(sizeof gcases / sizeof *gcases)

typedef void (*gkern_f)(const void *, const void *, void *, void *);

static void gfn_name(char *buf, size_t len, int i, int m) { snprintf(buf, len, "test_wino_wgrad_%d_%d", i, m); }

static sc_wino_geom ggeom(const gcase *k, int m)
{
    return sc_conv_wino_wgrad_geom_m(k->c, k->o, k->h, k->w, k->nb, k->groups, m);
}

typedef void (*kern_f)(const void *, const void *, void *, void *, const void *);

static void fn_name(char *buf, size_t len, int i, int m, int rows)
{
    snprintf(buf, len, "test_wino_%d_%d%s", i, m, rows ? "_rows" : "");
}

/* By rows (convplan.h, sc_conv_wino_rows_geom): every image in one chunk,
 * blocks of rb output channels: the largest proper divisor of cout (two
 * or more blocks, of 1 to 150 rows), or cout in one block where it is
 * prime. */
static int64_t rows_rb(int64_t cout)
{
    for (int64_t rb = cout / 2; rb >= 1; rb--)
        if (cout % rb == 0)
            return rb;
    return cout;
}

static sc_wino_geom geom_of(const wcase *k, int m, int rows)
{
    return rows ? sc_conv_wino_rows_geom(k->cin, k->cout, k->h, k->w, k->n, m, rows_rb(k->cout))
                : sc_conv_wino_geom_m(k->cin, k->cout, k->h, k->w, k->nb, m);
}

/* floats of the kernel's workspace */
static size_t ws_floats(const sc_wino_geom *v)
{
    int64_t a2 = (v->m + 2) * (v->m + 2);
    return (size_t)(v->rb ? v->at_v + a2 * v->vs : v->at_u + a2 * v->us);
}

/* kernel(W, X, Y, ws, bias): the weights into ws's U, then every chunk. */
static sc_codegen *build(int f64, const char *cpu)
{
    char err[1024];
    sc_codegen_options o = {.target_cpu = cpu, .opt_level = 2, .double_precision = f64};
    sc_codegen *c = sc_codegen_new(&o, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    LLVMTypeRef args[5] = {c->ptr, c->ptr, c->ptr, c->ptr, c->ptr};
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, 5, 0);
    for (int i = 0; i < NCASES * NM * 2; i++) {
        const wcase *k = &cases[i % NCASES];
        int m = 2 + i / NCASES % NM, rows = i / (NCASES * NM);
        sc_wino_geom v = geom_of(k, m, rows);
        char name[64];
        fn_name(name, sizeof name, i % NCASES, m, rows);
        c->fn = LLVMAddFunction(c->mod, name, ft);
        c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
        LLVMPositionBuilderAtEnd(c->b, c->entry);
        sc_cg_winograd_serial(c, &v, k->n, rows ? k->n : k->nb, LLVMGetParam(c->fn, 0), LLVMGetParam(c->fn, 1),
                              LLVMGetParam(c->fn, 2), LLVMGetParam(c->fn, 3), k->bias ? LLVMGetParam(c->fn, 4) : NULL,
                              k->flip);
        LLVMBuildRetVoid(c->b);
    }
    LLVMTypeRef gft = LLVMFunctionType(c->vd, args, 4, 0);
    for (int i = 0; i < NGCASES * NM; i++) { /* kernel(dY, X, dW, ws) */
        const gcase *k = &gcases[i % NGCASES];
        int m = 2 + i / NGCASES;
        sc_wino_geom v = ggeom(k, m);
        char name[64];
        gfn_name(name, sizeof name, i % NGCASES, m);
        c->fn = LLVMAddFunction(c->mod, name, gft);
        c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
        LLVMPositionBuilderAtEnd(c->b, c->entry);
        sc_cg_winograd_wgrad_serial(c, &v, k->n, k->groups, LLVMGetParam(c->fn, 0), LLVMGetParam(c->fn, 1),
                                    LLVMGetParam(c->fn, 2), LLVMGetParam(c->fn, 3));
        LLVMBuildRetVoid(c->b);
    }
    if (sc_codegen_optimize(c, err, sizeof err))
        fail_msg("%s", err);
    return c;
}

static double check(sc_codegen *c, int f64, int ci_, int m, int rows)
{
    const wcase *k = &cases[ci_];
    sc_wino_geom v = geom_of(k, m, rows);
    int64_t hw = k->h * k->w;
    size_t esz = f64 ? 8 : 4, nw = (size_t)(k->cin * k->cout * 9), nx = (size_t)(k->n * k->cin * hw),
           ny = (size_t)(k->n * k->cout * hw), nws = ws_floats(&v);
    double *Wd = alloc(nw * sizeof *Wd), *Xd = alloc(nx * sizeof *Xd), *Bd = alloc((size_t)k->cout * sizeof *Bd);
    void *w = alloc(nw * esz), *x = alloc(nx * esz), *y = alloc(ny * esz), *ws = alloc(nws * esz),
         *b = alloc((size_t)k->cout * esz);
    uint64_t seed = (uint64_t)ci_ * 13 + 5;
    for (size_t i = 0; i < nw; i++)
        put(w, i, Wd[i] = f64 ? frand(&seed) : (double)(float)frand(&seed), f64);
    for (size_t i = 0; i < nx; i++)
        put(x, i, Xd[i] = f64 ? frand(&seed) : (double)(float)frand(&seed), f64);
    for (int64_t i = 0; i < k->cout; i++)
        put(b, (size_t)i, Bd[i] = k->bias ? (f64 ? frand(&seed) : (double)(float)frand(&seed)) : 0, f64);
    for (size_t i = 0; i < ny; i++) /* y is overwritten, never read */
        put(y, i, NAN, f64);
    for (size_t i = 0; i < nws; i++) /* nor is the workspace before it is written */
        put(ws, i, NAN, f64);
    char name[64], err[512];
    fn_name(name, sizeof name, ci_, m, rows);
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    ((kern_f)(uintptr_t)fp)(w, x, y, ws, b);
    double u = f64 ? 0x1p-53 : 0x1p-24, worst = 0;
    for (int64_t img = 0; img < k->n; img++)
        for (int64_t o = 0; o < k->cout; o++)
            for (int64_t yy = 0; yy < k->h; yy++)
                for (int64_t xx = 0; xx < k->w; xx++) {
                    double want = Bd[o], mag = fabs(Bd[o]);
                    for (int64_t ch = 0; ch < k->cin; ch++)
                        for (int64_t kh = 0; kh < 3; kh++)
                            for (int64_t kw = 0; kw < 3; kw++) {
                                int64_t sy = k->flip ? yy + 1 - kh : yy - 1 + kh, sx = k->flip ? xx + 1 - kw : xx - 1 + kw;
                                if (sy < 0 || sy >= k->h || sx < 0 || sx >= k->w)
                                    continue;
                                /* flip: W is the forward conv's [cin = our cout][cout = our cin] */
                                double wv = k->flip ? Wd[((ch * k->cout + o) * 3 + kh) * 3 + kw]
                                                    : Wd[((o * k->cin + ch) * 3 + kh) * 3 + kw];
                                double t = wv * Xd[((img * k->cin + ch) * k->h + sy) * k->w + sx];
                                want += t;
                                mag += fabs(t);
                            }
                    double got = get(y, (size_t)(((img * k->cout + o) * k->h + yy) * k->w + xx), f64);
                    double r = fabs(got - want) / (u * mag + 1e-300);
                    if (!(r <= tol[m]))
                        fail_msg("%s F(%d,3)%s case %d: y[%lld][%lld][%lld][%lld] = %.9g, want %.9g (%.1f u of the bound)",
                                 f64 ? "double" : "float", m, rows ? " by rows" : "", ci_, (long long)img, (long long)o, (long long)yy,
                                 (long long)xx, got, want, r);
                    worst = fmax(worst, r);
                }
    free(Wd);
    free(Xd);
    free(Bd);
    free(w);
    free(x);
    free(y);
    free(ws);
    free(b);
    return worst;
}

/* dW[o][c][kh][kw] = sum over images and output pixels of dy[o][y][x]
 * x[c][y-1+kh][x-1+kw], against the kernel's, bound as above on sum
 * |dy||x|. */
static double check_wgrad(sc_codegen *c, int f64, int ci_, int m)
{
    const gcase *k = &gcases[ci_];
    sc_wino_geom v = ggeom(k, m);
    int64_t hw = k->h * k->w;
    size_t esz = f64 ? 8 : 4, ndy = (size_t)(k->n * k->o * hw), nx = (size_t)(k->n * k->c * hw),
           nw = (size_t)(k->o * k->c * 9), nws = (size_t)(v.at_u + (m + 2) * (m + 2) * k->c * k->o);
    double *Dd = alloc(ndy * sizeof *Dd), *Xd = alloc(nx * sizeof *Xd);
    void *dy = alloc(ndy * esz), *x = alloc(nx * esz), *dw = alloc(nw * esz), *ws = alloc(nws * esz);
    uint64_t seed = (uint64_t)ci_ * 17 + 3;
    for (size_t i = 0; i < ndy; i++)
        put(dy, i, Dd[i] = f64 ? frand(&seed) : (double)(float)frand(&seed), f64);
    for (size_t i = 0; i < nx; i++)
        put(x, i, Xd[i] = f64 ? frand(&seed) : (double)(float)frand(&seed), f64);
    for (size_t i = 0; i < nw; i++) /* dW is overwritten, never read */
        put(dw, i, NAN, f64);
    for (size_t i = 0; i < nws; i++) /* nor is the workspace before it is written */
        put(ws, i, NAN, f64);
    char name[64], err[512];
    gfn_name(name, sizeof name, ci_, m);
    void *fp = sc_codegen_jit(c, name, err, sizeof err);
    if (!fp)
        fail_msg("%s", err);
    ((gkern_f)(uintptr_t)fp)(dy, x, dw, ws);
    double u = f64 ? 0x1p-53 : 0x1p-24, worst = 0;
    for (int64_t o = 0; o < k->o; o++)
        for (int64_t ch = 0; ch < k->c; ch++) {
            double want[9] = {0}, mag = 0; /* mag: the 9 taps' (Winograd mixes them) */
            for (int64_t tap = 0; tap < 9; tap++)
                for (int64_t img = 0; img < k->n; img++)
                    for (int64_t yy = 0; yy < k->h; yy++)
                        for (int64_t xx = 0; xx < k->w; xx++) {
                            int64_t sy = yy - 1 + tap / 3, sx = xx - 1 + tap % 3;
                            if (sy < 0 || sy >= k->h || sx < 0 || sx >= k->w)
                                continue;
                            double t = Dd[((img * k->o + o) * k->h + yy) * k->w + xx] *
                                       Xd[((img * k->c + ch) * k->h + sy) * k->w + sx];
                            want[tap] += t;
                            mag += fabs(t);
                        }
            for (int64_t kh = 0; kh < 3; kh++)
                for (int64_t kw = 0; kw < 3; kw++) {
                    double got = get(dw, (size_t)(((o * k->c + ch) * 3 + kh) * 3 + kw), f64);
                    double r = fabs(got - want[kh * 3 + kw]) / (u * mag + 1e-300);
                    if (!(r <= tol_wgrad[m]))
                        fail_msg("%s F(%d,3) wgrad case %d: dW[%lld][%lld][%lld][%lld] = %.9g, want %.9g (%.1f u of the bound)",
                                 f64 ? "double" : "float", m, ci_, (long long)o, (long long)ch, (long long)kh,
                                 (long long)kw, got, want[kh * 3 + kw], r);
                    worst = fmax(worst, r);
                }
        }
    free(Dd);
    free(Xd);
    free(dy);
    free(x);
    free(dw);
    free(ws);
    return worst;
}

/* cpu: NULL for the host, haswell (AVX2) or x86-64 (generic, 128 bits) */
static void run(int f64, const char *cpu)
{
    sc_codegen *c = build(f64, cpu);
    for (int rows = 0; rows < 2; rows++)
        for (int m = 2; m < 2 + NM; m++) {
            double worst = 0;
            for (int i = 0; i < NCASES; i++)
                worst = fmax(worst, check(c, f64, i, m, rows));
            printf("F(%d,3)%s %s, %s: %d convolutions, worst error %.2f u of sum|w||x| (bound %.0f); %d-bit vectors\n",
                   m, rows ? " by rows" : "", f64 ? "double" : "float", cpu ? cpu : "host", NCASES, worst, tol[m],
                   c->gemm_vbits);
        }
    for (int m = 2; m < 2 + NM; m++) {
        double worst = 0;
        for (int i = 0; i < NGCASES; i++)
            worst = fmax(worst, check_wgrad(c, f64, i, m));
        printf("F(%d,3) %s, %s: %d weight gradients, worst error %.2f u of sum|dy||x| (bound %.0f)\n", m,
               f64 ? "double" : "float", cpu ? cpu : "host", NGCASES, worst, tol_wgrad[m]);
    }
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
