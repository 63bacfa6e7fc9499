/* winograd F(m,3) (convplan.h): a 3x3, stride-1, pad-1 convolution by
 * Winograd's minimal filtering F(m x m, 3x3) for m = 2, 3, 4. Output tile
 * (ty, tx) is y[m ty .. m ty+m-1][m tx .. m tx+m-1] =
 * A^T [sum over c of U_c (.) V_c] A, with the a x a input tile (a = m+2)
 * d = x[m ty-1 .. m ty+m][m tx-1 .. m tx+m] (zero outside), V = B^T d B,
 * U = G g G^T. The sum over c for each of the a*a tile elements e is one
 * GEMM: M[e] [cout, t] = U[e] [cout, cin] . V[e] [cin, t].
 *
 * B^T (a x a), G (a x 3) and A^T (m x a) come from Toom-Cook at the
 * points of wino_points and infinity (wino_mats): for finite point p_j,
 * B^T's row j holds the coefficients of prod over l != j of (x - p_l), G's
 * row j is (1, p_j, p_j^2) / prod over l != j of (p_j - p_l), A^T's column
 * j is (1, p_j, .., p_j^(m-1)); the point at infinity takes the last row of
 * B^T (prod over all l of (x - p_l)), G (0, 0, 1) and the column
 * (0, .., 0, 1) of A^T. A row whose divisor is negative is negated in both
 * B^T and G (their product unchanged) so that G's are the positive ones.
 * F(2,3) at 0, 1, -1 gives the matrices of Lavin and Gray up to signs
 * (its transforms stay the hand-written ones, bt4, g3, at4);
 * F(4,3) at 0, +-1, +-2 theirs exactly. The transforms are constant
 * multiply-adds that skip zero coefficients and multiply by none of +-1.
 *
 * The kernel runs over chunks of images (U transformed once, each chunk's
 * GEMMs over all of it), or by rows (sc_conv_wino_rows_geom) where all the
 * images make one chunk: blocks of output channels, each transforming its
 * own rows of U just before its GEMMs use them. */
#include "cg_winograd.h"

#include <stdio.h>
#include <string.h>

#include "cg_builder.h"
#include "cg_winograd_vec.h"

/* The finite interpolation points of F(m,3) (m+1 of them). F(3,3)'s
 * fourth point by the worst error tests/test_winograd.c measured over the
 * host (AVX-512), AVX2 and generic float and host double (2026-12-07, AMD
 * EPYC Zen 4, u of sum |w||x|, G's rows summed then scaled term by term):
 * -2: 35.4, -1/2: 36.2, 2: 43.6, 1/2: 124 (-2: 42.9 with the common
 * factor of G's rows applied once, as now).
 * Small points of either sign keep B^T's and A^T's coefficients small
 * (powers of 2, no more than 4) and G's divisors near 1 (6 at most). */
static const double wino_points[5][5] = {
    [2] = {0, 1, -1},
    [3] = {0, 1, -1, -2},
    [4] = {0, 1, -1, 2, -2},
};

typedef struct {
    int m, a;
    double bt[6][6], g[6][3], at[4][6];
} wino_mats;

/* The coefficients (ascending powers) of the product of (x - p[l]) over
 * l < n but `skip`, into poly[0 .. n]. */
static void poly_of(const double *p, int n, int skip, double *poly)
{
    int deg = 0;
    poly[0] = 1;
    for (int l = 0; l < n; l++) {
        if (l == skip)
            continue;
        poly[deg + 1] = 0;
        for (int k = deg + 1; k > 0; k--)
            poly[k] = poly[k - 1] - p[l] * poly[k];
        poly[0] *= -p[l];
        deg++;
    }
}

static wino_mats mats_of(int m)
{
    wino_mats w;
    memset(&w, 0, sizeof w);
    w.m = m, w.a = m + 2;
    const double *p = wino_points[m];
    int nf = w.a - 1; /* finite points */
    for (int j = 0; j < nf; j++) {
        double poly[6], f = 1;
        poly_of(p, nf, j, poly);
        for (int l = 0; l < nf; l++)
            f *= l == j ? 1 : p[j] - p[l];
        double s = f < 0 ? -1 : 1;
        for (int k = 0; k < w.a; k++)
            w.bt[j][k] = k < nf ? s * poly[k] : 0;
        for (int k = 0; k < 3; k++)
            w.g[j][k] = s * (k == 0 ? 1 : k == 1 ? p[j] : p[j] * p[j]) / f;
        for (int i = 0; i < m; i++)
            w.at[i][j] = i == 0 ? 1 : w.at[i - 1][j] * p[j];
    }
    double poly[6];
    poly_of(p, nf, -1, poly);
    for (int k = 0; k < w.a; k++)
        w.bt[nf][k] = poly[k];
    w.g[nf][2] = 1;
    w.at[m - 1][nf] = 1;
    return w;
}

/* k times x, a scalar or a vector (k splat) */
static LLVMValueRef kmul(sc_codegen *c, LLVMValueRef x, double k)
{
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef kc = cf(c, k);
    if (LLVMGetTypeKind(t) == LLVMVectorTypeKind) {
        LLVMValueRef e[64];
        unsigned n = LLVMGetVectorSize(t);
        for (unsigned i = 0; i < n; i++)
            e[i] = kc;
        kc = LLVMConstVector(e, n);
    }
    return fmul(c, x, kc);
}

/* out[r] = sum over j < cols of M[r][j] x[j] for r < rows (M's rows
 * `stride` apart), x scalars or vectors (the weight gradient's): the
 * nonzero terms only, +-1 ones as additions; a row whose coefficients
 * share one magnitude k (G's halves and sixths) as k times the signed
 * sum. */
static void matvec(sc_codegen *c, const double *M, int stride, int rows, int cols, LLVMValueRef *x, LLVMValueRef *out)
{
    for (int r = 0; r < rows; r++) {
        const double *row = M + r * stride;
        double common = 0; /* cg_builder.h's fadd and fsub rule math.h out */
        for (int j = 0; j < cols; j++) {
            double mag = row[j] < 0 ? -row[j] : row[j];
            if (mag != 0)
                common = common == 0 || common == mag ? mag : -1;
        }
        double scale = common > 0 ? common : 1;
        LLVMValueRef acc = NULL;
        for (int j = 0; j < cols; j++) {
            double k = row[j] / scale;
            if (k == 0)
                continue;
            LLVMValueRef t = k == 1 || k == -1 ? x[j] : kmul(c, x[j], k);
            if (!acc)
                acc = k == -1 ? fmf(LLVMBuildFNeg(c->b, t, "")) : t;
            else
                acc = k == -1 ? fsub(c, acc, t) : fadd(c, acc, t);
        }
        out[r] = acc ? (scale != 1 ? kmul(c, acc, scale) : acc) : kmul(c, x[0], 0);
    }
}

/* F(2,3) as it was written by hand before the larger tiles (its
 * arithmetic unchanged): by B^T: d0-d2, d1+d2, d2-d1, d1-d3. */
LLVMValueRef sc_cg_winograd_bt4_row(sc_codegen *c, LLVMValueRef d[4], int r)
{
    return r == 0 ? fsub(c, d[0], d[2]) : r == 1 ? fadd(c, d[1], d[2]) : r == 2 ? fsub(c, d[2], d[1]) : fsub(c, d[1], d[3]);
}

void sc_cg_winograd_bt4(sc_codegen *c, LLVMValueRef d[4], LLVMValueRef out[4])
{
    for (int r = 0; r < 4; r++)
        out[r] = sc_cg_winograd_bt4_row(c, d, r);
}

/* By G: g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2 (scalars or vectors). */
static void g3(sc_codegen *c, LLVMValueRef g[3], LLVMValueRef out[4])
{
    LLVMValueRef s = fadd(c, g[0], g[2]);
    out[0] = g[0];
    out[1] = kmul(c, fadd(c, s, g[1]), 0.5);
    out[2] = kmul(c, fsub(c, s, g[1]), 0.5);
    out[3] = g[2];
}

/* By A^T: m0+m1+m2, m1-m2-m3. */
static void at4(sc_codegen *c, LLVMValueRef m[4], LLVMValueRef out[2])
{
    out[0] = fadd(c, fadd(c, m[0], m[1]), m[2]);
    out[1] = fsub(c, fsub(c, m[1], m[2]), m[3]);
}

/* The three transforms of one row or column: F(2,3)'s above, the larger
 * tiles' by matvec. */
static void by_bt(sc_codegen *c, const wino_mats *w, LLVMValueRef *in, LLVMValueRef *out)
{
    if (w->m == 2)
        sc_cg_winograd_bt4(c, in, out);
    else
        matvec(c, &w->bt[0][0], 6, w->a, w->a, in, out);
}

/* row r of B^T in */
static LLVMValueRef by_bt_row(sc_codegen *c, const wino_mats *w, int r, LLVMValueRef *in)
{
    LLVMValueRef out;
    if (w->m == 2)
        return sc_cg_winograd_bt4_row(c, in, r);
    matvec(c, &w->bt[r][0], 6, 1, w->a, in, &out);
    return out;
}

static void by_g(sc_codegen *c, const wino_mats *w, LLVMValueRef *in, LLVMValueRef *out)
{
    if (w->m == 2)
        g3(c, in, out);
    else
        matvec(c, &w->g[0][0], 3, w->a, 3, in, out);
}

/* the first `rows` outputs of A^T */
static void by_at(sc_codegen *c, const wino_mats *w, int rows, LLVMValueRef *in, LLVMValueRef *out)
{
    if (w->m == 2) {
        LLVMValueRef o[2];
        at4(c, in, o);
        for (int r = 0; r < rows; r++)
            out[r] = o[r];
    } else {
        matvec(c, &w->at[0][0], 6, rows, w->a, in, out);
    }
}

/* U = G g G^T of `lanes` filters in vector lanes: the 9 lanes taps from
 * p (filter l's taps p[9 l .. 9 l + 8]) picked apart in two steps of 3 by
 * constant shuffles (taps 3u+s are the elements 3 (3l+u) + s: every third
 * element of p, then every third of those: 36 vpermt2ps for 16 filters
 * on AVX-512), flipped (g[kh][kw] = tap 8 - 3kh - kw) for the data
 * gradient; element e's lanes to dst + e us.
 * The arithmetic per filter is the scalar one (by_g). LLVM vectorised
 * the scalar loop over filters with gathers, 9 or cout*9 floats apart
 * (the flip: every lane another page): 63-70% of the by-rows kernels'
 * own time (besides their GEMMs) went to the first gather (perf,
 * resnet18-stl10 b32, Zen 5). */
static void filters_vec(sc_codegen *c, const sc_wino_geom *v, const wino_mats *w, const sc_wino_vec *vv, LLVMValueRef p,
                        LLVMValueRef dst, int lanes, int flip)
{
    int vw = vv->vw, na = w->a;
    LLVMValueRef third[3][3], tap[9], g[9]; /* third[s][r]: vector r of p's elements 3j + s */
    for (int r = 0; r < 3; r++) {
        int on = 3 * lanes - r * vw; /* the j < 3 lanes in [r vw, (r+1) vw) */
        on = on > vw ? vw : on;
        LLVMValueRef out[3];
        if (on > 0) {
            LLVMValueRef part[3];
            sc_cg_wino_load_parts(c, vv, gep(c, p, ci(c, (int64_t)3 * vw * r)), 0, 1, 3, on, 3, part);
            sc_cg_wino_pick_chain(c, vv, part, sc_cg_wino_span_parts(vv, 3, on, 3), 3, on, 3, out);
        }
        for (int s = 0; s < 3; s++)
            third[s][r] = on > 0 ? out[s] : LLVMConstNull(vv->vt);
    }
    for (int s = 0; s < 3; s++) {
        LLVMValueRef out[3];
        sc_cg_wino_pick_chain(c, vv, third[s], 3, 3, lanes, 3, out);
        for (int u = 0; u < 3; u++)
            tap[3 * u + s] = out[u];
    }
    for (int t = 0; t < 9; t++)
        g[t] = tap[flip ? 8 - t : t];
    LLVMValueRef tg[6][3], u[6];
    for (int kw = 0; kw < 3; kw++) { /* columns: G g */
        LLVMValueRef col[3], out[6];
        for (int kh = 0; kh < 3; kh++)
            col[kh] = g[kh * 3 + kw];
        by_g(c, w, col, out);
        for (int r = 0; r < na; r++)
            tg[r][kw] = out[r];
    }
    for (int r = 0; r < na; r++) { /* rows: (G g) G^T */
        by_g(c, w, tg[r], u);
        for (int k = 0; k < na; k++)
            sc_cg_wino_vstore(c, vv, gep(c, dst, ci(c, (r * na + k) * v->us)), u[k], lanes);
    }
}

/* The filters of W [ni][nj][3][3] for i in [lo, hi), j in [j0, j0 + nj)
 * into U[e][(i - i0) nj + j - j0], in vectors over j (contiguous in W
 * and U), the last partial one with its own lanes. The forward's i is
 * the GEMMs' row a (W [cout][cin], nj = cin): U [a*a][rows][cin]; the
 * data gradient's (flip) i is their column b (W is the forward's [cin =
 * the GEMMs' columns][cout = their rows]): U [a*a][cin][rows], read as
 * the GEMMs' transposed A. */
static void weights(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef W, LLVMValueRef U, LLVMValueRef lo,
                    LLVMValueRef hi, LLVMValueRef i0, LLVMValueRef j0, int64_t nj, int flip)
{
    wino_mats w = mats_of((int)v->m);
    sc_wino_vec vv = sc_cg_wino_vec(c);
    int64_t njt = flip ? v->cout : v->cin, full = nj / vv.vw, rest = nj % vv.vw;
    loop Li;
    LLVMValueRef i = loop_range(c, &Li, lo, hi);
    LLVMValueRef wrow = gep(c, W, imul(c, mad(c, i, njt, j0), ci(c, 9)));
    LLVMValueRef urow = gep(c, U, imul(c, isub(c, i, i0), ci(c, nj)));
    if (full) {
        loop Lj;
        LLVMValueRef j = imul(c, loop_begin(c, &Lj, full), ci(c, vv.vw));
        filters_vec(c, v, &w, &vv, gep(c, wrow, imul(c, j, ci(c, 9))), gep(c, urow, j), vv.vw, flip);
        loop_end(c, &Lj);
    }
    if (rest)
        filters_vec(c, v, &w, &vv, gep(c, wrow, ci(c, full * vv.vw * 9)), gep(c, urow, ci(c, full * vv.vw)), (int)rest,
                    flip);
    loop_end(c, &Li);
}

void sc_cg_winograd_weights(sc_codegen *c, sc_lowered *res, const sc_wino_geom *v, LLVMValueRef W, LLVMValueRef U,
                            int flip)
{
    res->extent = flip ? v->cin : v->cout;
    weights(c, v, W, U, c->arg_lo, c->arg_hi, ci(c, 0), ci(c, 0), flip ? v->cout : v->cin, flip);
}

/* ---- the input and output transforms in vectors of tiles ----
 * (cg_winograd_vec.h) A tile's element e is contiguous over the tiles
 * of a row (V and M: [e][ch][j*tt + ty*tw + tx]) and across the rows of
 * an image, but tile tx reads the plane P at columns m tx + k and writes
 * y's columns m tx + k: the scalar loops over tx, as LLVM vectorised them,
 * gathered and scattered element by element. Instead a vector holds
 * `rows` tile rows of `lanes` tiles each (several rows where a row has
 * fewer tiles than the vector width, as many as fit, else a row in
 * vectors of the vector width and the last partial one): P's rows are
 * loaded whole and picked apart by constant shuffles into one vector per
 * tap (sc_cg_wino_deinterleave), V's and M's elements loaded and stored
 * whole or masked, and y's rows put back together by constant shuffles
 * (sc_cg_wino_interleave). The arithmetic per tile is the scalar one
 * (by_bt, by_at). Fewer than WINO_VEC_MIN tiles a vector (planes of one
 * or two tiles): tile by tile in scalars. */
enum { WINO_VEC_MIN = 4 };

typedef struct {
    const sc_wino_geom *v;
    wino_mats w;
    sc_wino_vec vv;
    int g;            /* tile rows a vector; 0: tile by tile */
    LLVMValueRef src; /* inputs: the plane P; outputs: M's tiles of (o, image) */
    LLVMValueRef dst; /* inputs: V's tiles of (channel, image); outputs: y's plane */
    LLVMValueRef b;   /* outputs: the bias (a vector, or a scalar tile by tile) or NULL */
    int yrows;        /* outputs: y's rows of each tile row (m but at the bottom edge) */
} tiles;

/* A vector of tiles: `rows` tile rows from ty of `lanes` tiles each (0:
 * one tile, scalars) from tx0; width: the y columns of each row its
 * tiles cover (m lanes, less at the plane's right edge). */
typedef void (*group_f)(sc_codegen *c, const tiles *t, LLVMValueRef ty, LLVMValueRef tx0, int rows, int lanes,
                        int width);

static tiles tiles_of(sc_codegen *c, const sc_wino_geom *v)
{
    tiles t;
    memset(&t, 0, sizeof t);
    t.v = v, t.w = mats_of((int)v->m), t.vv = sc_cg_wino_vec(c);
    int vw = t.vv.vw, tw = (int)v->tw, m = (int)v->m;
    if (tw >= vw) {
        t.g = 1;
        return t;
    }
    /* P's parts a vector of rows reads: at most 8 (sc_cg_wino_deinterleave) */
    int nv = (m * (tw - 1) + m + 2 + vw - 1) / vw;
    t.g = vw / tw < v->th ? vw / tw : (int)v->th;
    while (t.g * nv > 8)
        t.g--;
    if (t.g * tw < WINO_VEC_MIN)
        t.g = 0;
    return t;
}

/* f over the vectors of tile rows [ty0, ty0 + n) */
static void tile_groups(sc_codegen *c, const tiles *t, int64_t ty0, int64_t n, group_f f)
{
    const sc_wino_geom *v = t->v;
    int m = (int)v->m, tw = (int)v->tw, vw = t->vv.vw;
    if (n <= 0)
        return;
    loop Ly, Lx;
    if (t->g > 1 || (t->g == 1 && tw < vw)) { /* rows of tw tiles, g a vector */
        int64_t full = n / t->g;
        if (full) {
            LLVMValueRef ty = mad(c, loop_begin(c, &Ly, full), t->g, ci(c, ty0));
            f(c, t, ty, ci(c, 0), t->g, tw, (int)v->w);
            loop_end(c, &Ly);
        }
        if (n % t->g)
            f(c, t, ci(c, ty0 + full * t->g), ci(c, 0), (int)(n % t->g), tw, (int)v->w);
        return;
    }
    int step = t->g ? vw : 1, nx = (tw + step - 1) / step; /* vectors (or tiles) a row, the last on its own */
    LLVMValueRef ty = iadd(c, loop_begin(c, &Ly, n), ci(c, ty0));
    if (nx > 1) {
        LLVMValueRef tx0 = imul(c, loop_begin(c, &Lx, nx - 1), ci(c, step));
        f(c, t, ty, tx0, 1, t->g ? vw : 0, m * step);
        loop_end(c, &Lx);
    }
    int last = tw - (nx - 1) * step;
    f(c, t, ty, ci(c, (int64_t)(nx - 1) * step), 1, t->g ? last : 0, (int)v->w - m * (nx - 1) * step);
    loop_end(c, &Ly);
}

/* V's tiles: the a x a input tiles at P[m ty ..][m tx0 ..], B^T d B,
 * a row r of B^T d at a time: B^T's row r on the whole rows of P the
 * tiles span (for each tile and tap the scalar's sum; P's rows loaded
 * again for each r rather than all a x a taps of the tiles held in
 * registers: they spilled), its taps picked apart, then by B. Tile
 * by tile (lanes 0) as the scalar loop was: measured slower one r at a
 * time (bench/wino_bench.c, cifar 4x4: 0.63 ms against 0.52). */
static void in_group(sc_codegen *c, const tiles *t, LLVMValueRef ty, LLVMValueRef tx0, int rows, int lanes, int width)
{
    const sc_wino_geom *v = t->v;
    int na = t->w.a, m = (int)v->m, np = lanes ? rows * sc_cg_wino_span_parts(&t->vv, m, lanes, na) : 0;
    (void)width;
    LLVMValueRef p = gep(c, t->src, mad(c, ty, v->m * v->wp, imul(c, tx0, ci(c, v->m))));
    LLVMValueRef dst = gep(c, t->dst, mad(c, ty, v->tw, tx0));
    LLVMValueRef tr[6][6];
    for (int k = 0; k < na && !lanes; k++) { /* one tile: columns B^T d first, as the scalar loop was */
        LLVMValueRef col[6], out[6];
        for (int r = 0; r < na; r++)
            col[r] = ld(c, p, ci(c, r * v->wp + k));
        by_bt(c, &t->w, col, out);
        for (int r = 0; r < na; r++)
            tr[r][k] = out[r];
    }
    for (int r = 0; r < na; r++) {
        LLVMValueRef d[6][8], col[6], part[8], out[6];
        if (lanes) {
            for (int i = 0; i < na; i++) /* P's rows */
                sc_cg_wino_load_parts(c, &t->vv, gep(c, p, ci(c, i * v->wp)), v->m * v->wp, rows, m, lanes, na, d[i]);
            for (int h = 0; h < np; h++) { /* row r of B^T d */
                for (int i = 0; i < na; i++)
                    col[i] = d[i][h];
                part[h] = by_bt_row(c, &t->w, r, col);
            }
            sc_cg_wino_pick(c, &t->vv, part, rows, m, lanes, na, tr[r]);
        }
        by_bt(c, &t->w, tr[r], out); /* (B^T d) B */
        for (int k = 0; k < na; k++)
            sc_cg_wino_vstore(c, &t->vv, gep(c, dst, ci(c, (r * na + k) * v->vs)), out[k], rows * lanes);
    }
}

/* V[e][ch][j*tt + ty*tw + tx] = (B^T d B)[e] for the chunk's images: each
 * channel plane copied into the zero-bordered plane P (P[(y+1)*wp + x+1] =
 * x[y][x]; its border was zeroed once per call), tile (ty, tx) then
 * P[m ty .. m ty+m+1][m tx .. m tx+m+1] with no bounds to check. */
static void inputs(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef X, LLVMValueRef img0, int64_t nb, LLVMValueRef P,
                   LLVMValueRef V, LLVMValueRef lo, LLVMValueRef hi)
{
    tiles t = tiles_of(c, v);
    loop Lj, Lc;
    LLVMValueRef ch = loop_range(c, &Lc, lo, hi);
    LLVMValueRef j = loop_begin(c, &Lj, nb);
    sc_cg_winograd_plane(c, v, gep(c, X, imul(c, mad(c, iadd(c, img0, j), v->cin, ch), ci(c, v->h * v->w))), P);
    t.src = P;
    t.dst = gep(c, V, mad(c, ch, v->t, imul(c, j, ci(c, v->tt))));
    tile_groups(c, &t, 0, v->th, in_group);
    loop_end(c, &Lj);
    loop_end(c, &Lc);
}

void sc_cg_winograd_inputs(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef X, LLVMValueRef img0, int64_t nb,
                           LLVMValueRef P, LLVMValueRef V)
{
    inputs(c, v, X, img0, nb, P, V, ci(c, 0), ci(c, v->cin));
}

/* y's rows m ty .. (t->yrows of each tile row), columns m tx0 .. (width
 * of them) from M's tiles: A^T M A (+ bias). */
static void out_group(sc_codegen *c, const tiles *t, LLVMValueRef ty, LLVMValueRef tx0, int rows, int lanes, int width)
{
    const sc_wino_geom *v = t->v;
    int na = t->w.a, m = (int)v->m;
    LLVMValueRef mp = gep(c, t->src, mad(c, ty, v->tw, tx0)), tr[4][6];
    for (int k = 0; k < na; k++) { /* columns: A^T M */
        LLVMValueRef col[6], out[4];
        for (int r = 0; r < na; r++) {
            LLVMValueRef p = gep(c, mp, ci(c, (r * na + k) * v->ms));
            col[r] = lanes ? sc_cg_wino_vload(c, &t->vv, p, rows * lanes) : ld(c, p, ci(c, 0));
        }
        by_at(c, &t->w, t->yrows, col, out);
        for (int r = 0; r < t->yrows; r++)
            tr[r][k] = out[r];
    }
    LLVMValueRef y0 = gep(c, t->dst, mad(c, ty, v->m * v->w, imul(c, tx0, ci(c, v->m))));
    for (int r = 0; r < t->yrows; r++) { /* rows: (A^T M) A */
        LLVMValueRef out[4];
        int nout = lanes ? m : width; /* the scalar path's partial tile: width values only */
        by_at(c, &t->w, nout, tr[r], out);
        for (int k = 0; k < nout && t->b; k++)
            out[k] = fadd(c, out[k], t->b);
        sc_cg_wino_interleave(c, &t->vv, out, m, gep(c, y0, ci(c, r * v->w)), v->m * v->w, rows, lanes, width);
    }
}

/* y[img0 + j][o] for o in [lo, hi) = the output transform of M's tiles
 * (row o - lo of each element; + bias B[o] where B is not NULL),
 * overwriting y: the full tile rows, then the partial one where m does
 * not divide the height. */
static void outputs(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef M, LLVMValueRef Y, LLVMValueRef B,
                    LLVMValueRef img0, int64_t nb, LLVMValueRef lo, LLVMValueRef hi)
{
    tiles t = tiles_of(c, v);
    loop Lj, Lo;
    LLVMValueRef o = loop_range(c, &Lo, lo, hi);
    LLVMValueRef j = loop_begin(c, &Lj, nb);
    if (B) {
        LLVMValueRef b = ld(c, B, o);
        if (t.g) { /* splat */
            LLVMValueRef one = LLVMBuildInsertElement(c->b, LLVMGetPoison(t.vv.vt), b, LLVMConstInt(c->i32, 0, 0), "");
            b = LLVMBuildShuffleVector(c->b, one, LLVMGetPoison(t.vv.vt),
                                       LLVMConstNull(LLVMVectorType(c->i32, (unsigned)t.vv.vw)), "");
        }
        t.b = b;
    }
    t.dst = gep(c, Y, imul(c, mad(c, iadd(c, img0, j), v->cout, o), ci(c, v->h * v->w)));
    t.src = gep(c, M, mad(c, isub(c, o, lo), v->t, imul(c, j, ci(c, v->tt))));
    t.yrows = (int)v->m;
    tile_groups(c, &t, 0, v->h / v->m, out_group);
    t.yrows = (int)(v->h % v->m);
    tile_groups(c, &t, v->h / v->m, t.yrows ? 1 : 0, out_group);
    loop_end(c, &Lj);
    loop_end(c, &Lo);
}

void sc_cg_winograd_outputs(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef M, LLVMValueRef Y, LLVMValueRef B,
                            LLVMValueRef img0, int64_t nb)
{
    outputs(c, v, M, Y, B, img0, nb, ci(c, 0), ci(c, v->cout));
}

void sc_cg_winograd_chunk(sc_codegen *c, const sc_wino_geom *v, int64_t nb, LLVMValueRef X, LLVMValueRef img0,
                          LLVMValueRef U, LLVMValueRef ws, LLVMValueRef Y, LLVMValueRef bias, int flip)
{
    LLVMValueRef V = ws, M = gep(c, ws, ci(c, v->at_m)), P = gep(c, ws, ci(c, v->at_plane));
    sc_cg_winograd_inputs(c, v, X, img0, nb, P, V);
    loop Le;
    LLVMValueRef e = loop_begin(c, &Le, (v->m + 2) * (v->m + 2));
    sc_cg_gemm(c, flip, 0, v->cout, v->t, v->cin, gep(c, U, imul(c, e, ci(c, v->us))), flip ? v->cout : v->cin,
               gep(c, V, imul(c, e, ci(c, v->vs))), v->t, cf(c, 0), gep(c, M, imul(c, e, ci(c, v->ms))), v->t);
    loop_end(c, &Le);
    sc_cg_winograd_outputs(c, v, M, Y, bias, img0, nb);
}

/* By rows (sc_conv_wino_rows_geom): block k's output channels a0 ..
 * a0+rb-1, all images: its U (ws's; the flip's transposed, weights()),
 * its rows of the GEMMs from the shared V into ws's M, their output
 * transform; returns a0. */
static LLVMValueRef rows_block(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef k, LLVMValueRef W, LLVMValueRef V,
                               LLVMValueRef ws, LLVMValueRef Y, LLVMValueRef bias, int flip)
{
    LLVMValueRef a0 = imul(c, k, ci(c, v->rb)), a1 = iadd(c, a0, ci(c, v->rb));
    LLVMValueRef M = gep(c, ws, ci(c, v->at_m)), U = gep(c, ws, ci(c, v->at_u));
    if (flip)
        weights(c, v, W, U, ci(c, 0), ci(c, v->cin), ci(c, 0), a0, v->rb, 1);
    else
        weights(c, v, W, U, a0, a1, a0, ci(c, 0), v->cin, 0);
    loop Le;
    LLVMValueRef e = loop_begin(c, &Le, (v->m + 2) * (v->m + 2));
    sc_cg_gemm(c, flip, 0, v->rb, v->t, v->cin, gep(c, U, imul(c, e, ci(c, v->us))), flip ? v->rb : v->cin,
               gep(c, V, imul(c, e, ci(c, v->vs))), v->t, cf(c, 0), gep(c, M, imul(c, e, ci(c, v->ms))), v->t);
    loop_end(c, &Le);
    outputs(c, v, M, Y, bias, ci(c, 0), v->t / v->tt, a0, a1);
    return a0;
}

void sc_cg_winograd_plane(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef src, LLVMValueRef P)
{
    loop Ly, Lx;
    LLVMValueRef y = loop_begin(c, &Ly, v->h);
    LLVMValueRef srow = gep(c, src, imul(c, y, ci(c, v->w)));
    LLVMValueRef prow = gep(c, P, mad(c, y, v->wp, ci(c, v->wp + 1)));
    LLVMValueRef x = loop_begin(c, &Lx, v->w);
    st(c, prow, x, ld(c, srow, x));
    loop_end(c, &Lx);
    loop_end(c, &Ly);
}

void sc_cg_winograd_clear(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef ws)
{
    zero(c, gep(c, ws, ci(c, v->at_plane)), v->hp * v->wp);
}

/* By rows: phase 0 transforms the input tiles of every image, the
 * threads taking channels, into the shared V at the end of the last
 * thread's workspace part; phase 1 runs the blocks of output channels,
 * each thread in its own workspace. */
static void lower_rows(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *cp, int flip)
{
    const sc_node *n = &c->g->n[i];
    const sc_wino_geom *v = &cp->wino;
    LLVMValueRef X = tensor(c, n->in[0]), W = tensor(c, n->in[1]), Y = tensor(c, n->out[0]);
    LLVMValueRef V = gep(c, c->arg_ws, ci(c, ws_stride(c, i) * (c->mp->opts.threads - 1) + v->at_v));
    LLVMValueRef ws = workspace(c, i);
    res->nphases = 2;
    if (c->phase == 0) {
        char kind[24];
        snprintf(kind, sizeof kind, "%lldx", (long long)((v->m + 2) * (v->m + 2)));
        sc_cg_gemm_note(c, kind, v->rb, v->t, v->cin);
        sc_cg_winograd_clear(c, v, ws);
        res->extent = v->cin;
        inputs(c, v, X, ci(c, 0), cp->n, gep(c, ws, ci(c, v->at_plane)), V, c->arg_lo, c->arg_hi);
        return;
    }
    loop Lk;
    LLVMValueRef k = par_loop(c, res, &Lk, v->cout / v->rb);
    LLVMValueRef a0 = rows_block(c, v, k, W, V, ws, Y, !flip && n->nin > 2 ? tensor(c, n->in[2]) : NULL, flip);
    if (!flip && n->op == SC_OP_CONV2D_STATS) {
        sc_cg_conv_chunk_stats_rows(c, i, ci(c, 0), cp->n, a0, iadd(c, a0, ci(c, v->rb)));
        strncat(res->impl, " +stats", sizeof res->impl - strlen(res->impl) - 1);
    }
    loop_end(c, &Lk);
}

/* Phase 0 transforms the weights (over the GEMMs' rows; the flip's over their columns) into the one copy
 * at the end of the last thread's workspace part; phase 1 runs the chunks, each thread in its own workspace,
 * the plane's border zeroed once per call. */
void sc_cg_lower_winograd(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *cp, int flip)
{
    const sc_node *n = &c->g->n[i];
    const sc_wino_geom *v = &cp->wino;
    if (v->rb) {
        lower_rows(c, i, res, cp, flip);
        return;
    }
    LLVMValueRef X = tensor(c, n->in[0]), W = tensor(c, n->in[1]), Y = tensor(c, n->out[0]);
    /* the one copy at the end of the last part as planned (the plan's
     * `once`), whatever threads the binary runs on */
    LLVMValueRef U = gep(c, c->arg_ws, ci(c, ws_stride(c, i) * (c->mp->opts.threads - 1) + v->at_u));
    res->nphases = 2;
    if (c->phase == 0) {
        /* the node's name in info --kernels and the profile is phase 0's */
        char kind[24];
        snprintf(kind, sizeof kind, "%lldx", (long long)((v->m + 2) * (v->m + 2)));
        sc_cg_gemm_note(c, kind, v->cout, v->t, v->cin);
        sc_cg_winograd_weights(c, res, v, W, U, flip);
        return;
    }
    LLVMValueRef ws = workspace(c, i);
    sc_cg_winograd_clear(c, v, ws);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, res, &Ln, cp->chunks);
    LLVMValueRef img0 = imul(c, chunk, ci(c, cp->nb));
    sc_cg_winograd_chunk(c, v, cp->nb, X, img0, U, ws, Y, !flip && n->nin > 2 ? tensor(c, n->in[2]) : NULL, flip);
    if (!flip && n->op == SC_OP_CONV2D_STATS) {
        sc_cg_conv_chunk_stats(c, i, img0, cp->nb);
        strncat(res->impl, " +stats", sizeof res->impl - strlen(res->impl) - 1);
    }
    loop_end(c, &Ln);
}

void sc_cg_winograd_serial(sc_codegen *c, const sc_wino_geom *v, int64_t n, int64_t nb, LLVMValueRef W, LLVMValueRef X,
                           LLVMValueRef Y, LLVMValueRef ws, LLVMValueRef bias, int flip)
{
    if (v->rb) {
        LLVMValueRef V = gep(c, ws, ci(c, v->at_v));
        sc_cg_winograd_clear(c, v, ws);
        inputs(c, v, X, ci(c, 0), n, gep(c, ws, ci(c, v->at_plane)), V, ci(c, 0), ci(c, v->cin));
        loop Lk;
        LLVMValueRef k = loop_begin(c, &Lk, v->cout / v->rb);
        rows_block(c, v, k, W, V, ws, Y, bias, flip);
        loop_end(c, &Lk);
        return;
    }
    LLVMValueRef lo = c->arg_lo, hi = c->arg_hi, U = gep(c, ws, ci(c, v->at_u));
    sc_lowered res = lowered("serial");
    c->arg_lo = ci(c, 0), c->arg_hi = ci(c, flip ? v->cin : v->cout); /* sc_cg_winograd_weights' extent */
    sc_cg_winograd_weights(c, &res, v, W, U, flip);
    c->arg_lo = lo, c->arg_hi = hi;
    sc_cg_winograd_clear(c, v, ws);
    loop Ln;
    LLVMValueRef chunk = loop_begin(c, &Ln, n / nb);
    sc_cg_winograd_chunk(c, v, nb, X, imul(c, chunk, ci(c, nb)), U, ws, Y, bias, flip);
    loop_end(c, &Ln);
}

void sc_cg_winograd_mats(int m, double bt[6][6], double g[6][3], double at[4][6])
{
    wino_mats w = mats_of(m);
    memcpy(bt, w.bt, sizeof w.bt);
    memcpy(g, w.g, sizeof w.g);
    memcpy(at, w.at, sizeof w.at);
}

void sc_cg_winograd_matvec(sc_codegen *c, const double *M, int stride, int rows, int cols, LLVMValueRef *x,
                           LLVMValueRef *out)
{
    matvec(c, M, stride, rows, cols, x, out);
}
