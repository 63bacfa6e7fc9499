/* winograd F(m,3)'s weight gradient (convplan.h), m = 2, 3, 4 (the
 * plan takes F(2,3) or F(3,3), convplan.c's wgrad_m); for F(2,3): the forward pass
 * computes tile t's outputs as y_t = A^T [U (.) V_t] A with U = G g G^T
 * and V_t = B^T d_t B (cg_winograd.c), so
 *   dL/dg = G^T [sum over t of Z_t (.) V_t] G,  Z_t = A dy_t A^T,
 * dy_t the tile's 2x2 output gradient (zero past an odd plane's edge).
 * For each of the 16 tile elements e the sum over tiles is one GEMM with
 * the tiles as its depth: dU[e] [O, C] += Z[e] [O, t] . V[e] [C, t]^T,
 * summed over the chunks in place (beta 1), then dW = G^T dU G once.
 * The threads split the tile elements in groups of whole rows of the 4x4
 * tile (e = 4 row + col): each transforms only its rows of every tile of
 * x and dy, so no transform is done twice and there is no partial dU,
 * only the one shared copy. The larger tiles likewise with a = m+2
 * (below, "the larger tiles"). */
#include "cg_winograd_wgrad.h"

#include "cg_builder.h"
#include "cg_gemm.h"
#include "cg_vec.h"
#include "cg_winograd.h"

#include <stdio.h>
#include <string.h>

/* A (a, b): a, a+b, a-b, -b (the rows or columns of a 2x2 tile by A). */
static void a2(sc_codegen *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef out[4])
{
    out[0] = a;
    out[1] = fadd(c, a, b);
    out[2] = fsub(c, a, b);
    out[3] = fmf(LLVMBuildFNeg(c->b, b, ""));
}

/* G^T x: x0 + (x1+x2)/2, (x1-x2)/2, (x1+x2)/2 + x3. */
static void gt4(sc_codegen *c, LLVMValueRef x[4], LLVMValueRef out[3])
{
    LLVMValueRef half = cf(c, 0.5), s = fmul(c, fadd(c, x[1], x[2]), half);
    out[0] = fadd(c, x[0], s);
    out[1] = fmul(c, fsub(c, x[1], x[2]), half);
    out[2] = fadd(c, s, x[3]);
}

/* ---- the transforms, vectorised over a row of tiles ----
 * Tile tx of a row reads the plane P at columns 2 tx + k: a vector of
 * `lanes` tiles from tx0 takes, for each k, every other element of the
 * 2 lanes elements of P's row from 2 tx0 + k, two masked loads picked
 * apart by a constant shuffle (LLVM's own vectorisation of the scalar
 * loop used gathers: 62% of the 24x24-plane, 64-channel node's time on
 * Zen 5 went to the transforms, the GEMMs ran near the FMA peak;
 * bench/wino_wgrad_bench.c). The results of a tile row's elements are
 * contiguous over tx (V and Z: [e][ch][j*tt + ty*tw + tx]): one masked
 * store each. The arithmetic per tile is the scalar one. The vectors,
 * masked loads and stores: cg_vec.h. */

/* out[k][l] = p[2 l + k] for l < lanes, k < nk (2 or 4): the 2 lanes
 * elements from p and, for k of 2 and 3, from p + 2; lanes 0: the
 * scalars p[k]. */
static void deinterleave(sc_codegen *c, const sc_vec *w, LLVMValueRef p, int lanes, int nk, LLVMValueRef *out)
{
    if (!lanes) {
        for (int k = 0; k < nk; k++)
            out[k] = ld(c, p, ci(c, k));
        return;
    }
    LLVMValueRef idx[2][64];
    for (int l = 0; l < w->vw; l++)
        for (int k = 0; k < 2; k++)
            idx[k][l] = LLVMConstInt(c->i32, (unsigned long long)(2 * l + k), 0);
    for (int s = 0; s < nk / 2; s++) {
        LLVMValueRef q = gep(c, p, ci(c, 2 * s)), half[2];
        for (int h = 0; h < 2; h++) {
            int on = 2 * lanes - h * w->vw;
            half[h] = on <= 0 ? LLVMConstNull(w->vt)
                              : sc_vload_n(c, w, gep(c, q, ci(c, (int64_t)h * w->vw)), on < w->vw ? on : w->vw);
        }
        for (int k = 0; k < 2; k++)
            out[2 * s + k] = LLVMBuildShuffleVector(c->b, half[0], half[1], LLVMConstVector(idx[k], (unsigned)w->vw), "");
    }
}

/* The row of tiles at P's row p (tile tx's rows of d at p + 2 tx +
 * i wp) in vectors of the vector width: the whole ones in a loop, the
 * last partial one with its own lanes. Rows of fewer than WGRAD_VEC_TW
 * tiles tile by tile (lanes 0: scalars), as before, which LLVM vectorises
 * over tx with gathers: measured (bench/wino_wgrad_bench.c, one core,
 * Zen 5, machine shared, 3 alternating runs) one thread's half of the
 * node at 4x4 (512 channels, 2 tiles a row) 6.1-6.9 ms scalar, 6.9-7.6
 * in vectors of 2 lanes; at 8x8 (256, 4 a row) 6.7-7.1 scalar, 7.2-8.2 in
 * vectors; at 12x12 (128, 6 a row) 4.8 scalar, 3.5-3.8 in vectors; at
 * 24x24 (64, 12 a row) 7.1-7.3 scalar, 5.1-5.2 in vectors. */
enum { WGRAD_VEC_TW = 6 };
typedef void (*tile_vec_f)(sc_codegen *c, const sc_wino_geom *v, const sc_vec *w, LLVMValueRef p, LLVMValueRef dst,
                           int lanes, int r0, int r1);

static void tile_row(sc_codegen *c, const sc_wino_geom *v, const sc_vec *w, LLVMValueRef p, LLVMValueRef dst,
                     int r0, int r1, tile_vec_f f)
{
    if (v->tw < WGRAD_VEC_TW) {
        loop L;
        LLVMValueRef tx = loop_begin(c, &L, v->tw);
        f(c, v, w, gep(c, p, imul(c, tx, ci(c, 2))), gep(c, dst, tx), 0, r0, r1);
        loop_end(c, &L);
        return;
    }
    int64_t full = v->tw / w->vw, rest = v->tw % w->vw;
    if (full) {
        loop L;
        LLVMValueRef tx0 = imul(c, loop_begin(c, &L, full), ci(c, w->vw));
        f(c, v, w, gep(c, p, imul(c, tx0, ci(c, 2))), gep(c, dst, tx0), w->vw, r0, r1);
        loop_end(c, &L);
    }
    if (rest)
        f(c, v, w, gep(c, p, ci(c, 2 * full * w->vw)), gep(c, dst, ci(c, full * w->vw)), (int)rest, r0, r1);
}

/* x's tiles: rows r0 <= r < r1 of B^T d B. */
static void x_vec(sc_codegen *c, const sc_wino_geom *v, const sc_vec *w, LLVMValueRef p, LLVMValueRef dst, int lanes,
                  int r0, int r1)
{
    LLVMValueRef d[4][4];
    for (int i = (r0 ? 1 : 0); i < (r1 < 4 ? 3 : 4); i++) /* the rows of d the group's rows of B^T d read */
        deinterleave(c, w, gep(c, p, ci(c, i * v->wp)), lanes, 4, d[i]);
    for (int r = r0; r < r1; r++) {
        LLVMValueRef row[4], out[4];
        for (int k = 0; k < 4; k++)
            row[k] = r == 0 ? fsub(c, d[0][k], d[2][k])
                     : r == 1 ? fadd(c, d[1][k], d[2][k])
                     : r == 2 ? fsub(c, d[2][k], d[1][k])
                              : fsub(c, d[1][k], d[3][k]);
        sc_cg_winograd_bt4(c, row, out); /* (B^T d) B */
        for (int k = 0; k < 4; k++)
            sc_vstore_n(c, w, gep(c, dst, ci(c, ((r - r0) * 4 + k) * v->cin * v->t)), out[k], lanes);
    }
}

/* dy's tiles: rows r0 <= q < r1 of A D A^T. */
static void dy_vec(sc_codegen *c, const sc_wino_geom *v, const sc_vec *w, LLVMValueRef p, LLVMValueRef dst, int lanes,
                   int r0, int r1)
{
    LLVMValueRef D[2][2];
    for (int i = 0; i < 2; i++)
        deinterleave(c, w, gep(c, p, ci(c, i * v->wp)), lanes, 2, D[i]);
    for (int q = r0; q < r1; q++) {
        LLVMValueRef row[2], out[4]; /* row q of A D: D0, D0+D1, D0-D1, -D1 */
        for (int k = 0; k < 2; k++)
            row[k] = q == 0 ? D[0][k]
                     : q == 1 ? fadd(c, D[0][k], D[1][k])
                     : q == 2 ? fsub(c, D[0][k], D[1][k])
                              : fmf(LLVMBuildFNeg(c->b, D[1][k], ""));
        a2(c, row[0], row[1], out); /* (A D) A^T */
        for (int k = 0; k < 4; k++)
            sc_vstore_n(c, w, gep(c, dst, ci(c, ((q - r0) * 4 + k) * v->cout * v->t)), out[k], lanes);
    }
}

/* The group's tile rows r0 <= r < r1 of the chunk's images, as
 * tiles_m below: x's (is_dy 0) V[4(r-r0) + k][ch][j*tt + ty*tw + tx] =
 * (B^T d B)[4r + k], d = P[2ty..2ty+3][2tx..2tx+3]; dy's (is_dy 1)
 * Z[4(q-r0) + k][o][...] = (A D A^T)[4q + k] for every o < v->cout, D =
 * dy[2ty..2ty+1][2tx..2tx+1]: the plane copied into P's interior as x's
 * is, so that a half tile past the edge reads P's zero border. */
static void tiles2(sc_codegen *c, const sc_wino_geom *v, int is_dy, LLVMValueRef src, LLVMValueRef img0, int64_t nb,
                   LLVMValueRef P, LLVMValueRef dst, int r0, int r1)
{
    sc_vec w = sc_vec_of(c);
    int64_t ch_n = is_dy ? v->cout : v->cin;
    loop Lj, Lc, Lty;
    LLVMValueRef j = loop_begin(c, &Lj, nb);
    LLVMValueRef ch = loop_begin(c, &Lc, ch_n);
    sc_cg_winograd_plane(c, v, gep(c, src, imul(c, mad(c, iadd(c, img0, j), ch_n, ch), ci(c, v->h * v->w))), P);
    LLVMValueRef d0 = gep(c, dst, mad(c, ch, v->t, imul(c, j, ci(c, v->tt))));
    LLVMValueRef ty = loop_begin(c, &Lty, v->th);
    LLVMValueRef drow = gep(c, d0, imul(c, ty, ci(c, v->tw)));
    LLVMValueRef prow = is_dy ? gep(c, P, mad(c, ty, 2 * v->wp, ci(c, v->wp + 1)))
                              : gep(c, P, imul(c, ty, ci(c, 2 * v->wp)));
    tile_row(c, v, &w, prow, drow, r0, r1, is_dy ? dy_vec : x_vec);
    loop_end(c, &Lty);
    loop_end(c, &Lc);
    loop_end(c, &Lj);
}

/* ---- the larger tiles, F(m,3) for m = 3, 4 (a = m+2) ----
 * The same sums with the matrices of cg_winograd.c (sc_cg_winograd_mats):
 * V = B^T d B of x's a x a tiles, Z = A dy A^T of dy's m x m ones (A
 * a x m, the transpose of A^T), dW = G^T dU G. A group takes the
 * elements [e0, e1) of the a*a (not whole rows: 25 and 36 elements split
 * evenly), computing only the rows of B^T d and A dy they need. Tile by
 * tile: the planes where they pay are small (convplan.c). */
typedef struct {
    int m, a;
    double bt[6][6], g[6][3], at[4][6];
    double am[6][4];  /* A = (A^T)^T */
    double gt[3][6];  /* G^T */
} wmats;

static wmats wmats_of(int m)
{
    wmats w;
    memset(&w, 0, sizeof w);
    w.m = m, w.a = m + 2;
    sc_cg_winograd_mats(m, w.bt, w.g, w.at);
    for (int i = 0; i < w.a; i++) {
        for (int j = 0; j < m; j++)
            w.am[i][j] = w.at[j][i];
        for (int j = 0; j < 3; j++)
            w.gt[j][i] = w.g[i][j];
    }
    return w;
}

/* dst[(e - e0) * es + tile] = (L T L^T)[e] for e in [e0, e1), T the n x n
 * tile(s) at p (rows wp apart; a vector of `lanes` tiles m apart, or one
 * tile where lanes is 0), L (a x n, rows `ls` apart) */
static void tile_m(sc_codegen *c, const wmats *w, const sc_vec *vv, const double *L, int ls, int n, LLVMValueRef p,
                   int64_t wp, LLVMValueRef dst, int64_t es, int e0, int e1, int lanes)
{
    LLVMValueRef d[6][6], col[6], t[6];
    for (int i = 0; i < n; i++)
        sc_vdeinterleave(c, vv, gep(c, p, ci(c, i * wp)), w->m, lanes, n, d[i]);
    for (int r = e0 / w->a; r <= (e1 - 1) / w->a; r++) {
        LLVMValueRef row[6], out[6];
        for (int k = 0; k < n; k++) { /* row r of L T */
            for (int i = 0; i < n; i++)
                col[i] = d[i][k];
            sc_cg_winograd_matvec(c, L + r * ls, ls, 1, n, col, t);
            row[k] = t[0];
        }
        sc_cg_winograd_matvec(c, L, ls, w->a, n, row, out); /* (L T) L^T */
        for (int k = 0; k < w->a; k++) {
            int e = r * w->a + k;
            if (e >= e0 && e < e1)
                sc_vstore_n(c, vv, gep(c, dst, ci(c, (e - e0) * es)), out[k], lanes);
        }
    }
}

/* V's (x: L = B^T, a x a tiles at P + m ty wp + m tx) or Z's (dy: L = A,
 * m x m tiles at P's interior) elements [e0, e1) of the chunk's images,
 * a row of tiles in vectors as F(2,3)'s (tile_row) where it has
 * WGRAD_VEC_TW tiles or more. */
static void tiles_m(sc_codegen *c, const sc_wino_geom *v, const wmats *w, int is_dy, LLVMValueRef src, LLVMValueRef img0,
                    int64_t nb, LLVMValueRef P, LLVMValueRef dst, int e0, int e1)
{
    sc_vec vv = sc_vec_of(c);
    int64_t ch_n = is_dy ? v->cout : v->cin;
    const double *L = is_dy ? &w->am[0][0] : &w->bt[0][0];
    int ls = is_dy ? 4 : 6, n = is_dy ? w->m : w->a;
    loop Lj, Lc, Lty, Ltx;
    LLVMValueRef j = loop_begin(c, &Lj, nb);
    LLVMValueRef ch = loop_begin(c, &Lc, ch_n);
    sc_cg_winograd_plane(c, v, gep(c, src, imul(c, mad(c, iadd(c, img0, j), ch_n, ch), ci(c, v->h * v->w))), P);
    LLVMValueRef d0 = gep(c, dst, mad(c, ch, v->t, imul(c, j, ci(c, v->tt))));
    LLVMValueRef ty = loop_begin(c, &Lty, v->th);
    LLVMValueRef prow = gep(c, P, mad(c, ty, v->m * v->wp, ci(c, is_dy ? v->wp + 1 : 0)));
    LLVMValueRef drow = gep(c, d0, imul(c, ty, ci(c, v->tw)));
    if (v->tw < WGRAD_VEC_TW) {
        LLVMValueRef tx = loop_begin(c, &Ltx, v->tw);
        tile_m(c, w, &vv, L, ls, n, gep(c, prow, imul(c, tx, ci(c, v->m))), v->wp, gep(c, drow, tx), ch_n * v->t, e0, e1,
               0);
        loop_end(c, &Ltx);
    } else {
        int64_t full = v->tw / vv.vw, rest = v->tw % vv.vw;
        if (full) {
            LLVMValueRef tx0 = imul(c, loop_begin(c, &Ltx, full), ci(c, vv.vw));
            tile_m(c, w, &vv, L, ls, n, gep(c, prow, imul(c, tx0, ci(c, v->m))), v->wp, gep(c, drow, tx0), ch_n * v->t,
                   e0, e1, vv.vw);
            loop_end(c, &Ltx);
        }
        if (rest)
            tile_m(c, w, &vv, L, ls, n, gep(c, prow, ci(c, full * vv.vw * v->m)), v->wp, gep(c, drow, ci(c, full * vv.vw)),
                   ch_n * v->t, e0, e1, (int)rest);
    }
    loop_end(c, &Lty);
    loop_end(c, &Lc);
    loop_end(c, &Lj);
}

void sc_cg_winograd_wgrad_group(sc_codegen *c, const sc_wino_geom *v, int64_t n, int group, int groups,
                                LLVMValueRef DY, LLVMValueRef X, LLVMValueRef ws, LLVMValueRef dU)
{
    int64_t nb = v->t / v->tt, O = v->cout, C = v->cin, a2 = (v->m + 2) * (v->m + 2);
    int e0 = (int)(group * a2 / groups), e1 = (int)((group + 1) * a2 / groups);
    LLVMValueRef V = ws, Z = gep(c, ws, ci(c, v->at_m)), P = gep(c, ws, ci(c, v->at_plane));
    loop Ln, Le;
    LLVMValueRef chunk = loop_begin(c, &Ln, n / nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, nb));
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, ci(c, 0), ""), cf(c, 0), cf(c, 1), "");
    if (v->m == 2) { /* groups of whole rows of the 4x4 (groups 1, 2 or 4) */
        tiles2(c, v, 0, X, img0, nb, P, V, e0 / 4, e1 / 4);
        tiles2(c, v, 1, DY, img0, nb, P, Z, e0 / 4, e1 / 4);
    } else {
        wmats w = wmats_of((int)v->m);
        tiles_m(c, v, &w, 0, X, img0, nb, P, V, e0, e1);
        tiles_m(c, v, &w, 1, DY, img0, nb, P, Z, e0, e1);
    }
    LLVMValueRef e = loop_begin(c, &Le, e1 - e0);
    sc_cg_gemm(c, 0, 1, O, C, v->t, gep(c, Z, imul(c, e, ci(c, O * v->t))), v->t, gep(c, V, imul(c, e, ci(c, C * v->t))),
               v->t, beta, gep(c, dU, imul(c, iadd(c, e, ci(c, e0)), ci(c, O * C))), C);
    loop_end(c, &Le);
    loop_end(c, &Ln);
}

void sc_cg_winograd_wgrad_row(sc_codegen *c, int64_t m, int64_t o_total, int64_t c_total, LLVMValueRef dU,
                              LLVMValueRef o, LLVMValueRef DW)
{
    wmats wm = wmats_of((int)m);
    int na = wm.a;
    loop Lc;
    LLVMValueRef ch = loop_begin(c, &Lc, c_total);
    LLVMValueRef at = mad(c, o, c_total, ch), y[3][6];
    for (int k = 0; k < na; k++) { /* columns: G^T X */
        LLVMValueRef col[6], out[3];
        for (int r = 0; r < na; r++)
            col[r] = ld(c, dU, iadd(c, at, ci(c, (r * na + k) * o_total * c_total)));
        if (m == 2)
            gt4(c, col, out);
        else
            sc_cg_winograd_matvec(c, &wm.gt[0][0], 6, 3, na, col, out);
        for (int i = 0; i < 3; i++)
            y[i][k] = out[i];
    }
    LLVMValueRef w = gep(c, DW, imul(c, at, ci(c, 9)));
    for (int i = 0; i < 3; i++) { /* rows: (G^T X) G */
        LLVMValueRef out[3];
        if (m == 2)
            gt4(c, y[i], out);
        else
            sc_cg_winograd_matvec(c, &wm.gt[0][0], 6, 3, na, y[i], out);
        for (int k = 0; k < 3; k++)
            st(c, w, ci(c, i * 3 + k), out[k]);
    }
    loop_end(c, &Lc);
}

void sc_cg_winograd_wgrad_serial(sc_codegen *c, const sc_wino_geom *v, int64_t n, int groups, LLVMValueRef DY,
                                 LLVMValueRef X, LLVMValueRef DW, LLVMValueRef ws)
{
    LLVMValueRef dU = gep(c, ws, ci(c, v->at_u));
    sc_cg_winograd_clear(c, v, ws);
    for (int g = 0; g < groups; g++)
        sc_cg_winograd_wgrad_group(c, v, n, g, groups, DY, X, ws, dU);
    loop Lo;
    LLVMValueRef o = loop_begin(c, &Lo, v->cout);
    sc_cg_winograd_wgrad_row(c, v->m, v->cout, v->cin, dU, o, DW);
    loop_end(c, &Lo);
}

/* Phase 0: each group of tile rows (the plan's mslices, one item each of
 * the parallel loop) over every chunk, into its elements of the one copy
 * of dU at the end of the last thread's workspace part (the plan's
 * `once`); phase 1: dW's rows from it. */
void sc_cg_lower_winograd_wgrad(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *cp)
{
    const sc_node *n = &c->g->n[i];
    const sc_wino_geom *v = &cp->wino;
    LLVMValueRef DY = tensor(c, n->in[0]), X = tensor(c, n->in[1]), DW = tensor(c, n->out[0]);
    LLVMValueRef dU = gep(c, c->arg_ws, ci(c, ws_stride(c, i) * (c->mp->opts.threads - 1) + v->at_u));
    res->nphases = 2;
    loop L;
    if (c->phase == 1) {
        snprintf(res->impl, sizeof res->impl, "winograd dW = G^T dU G");
        sc_cg_winograd_wgrad_row(c, v->m, cp->o, cp->g.c, dU, par_loop(c, res, &L, cp->o), DW);
        loop_end(c, &L);
        return;
    }
    LLVMValueRef ws = workspace(c, i);
    sc_cg_winograd_clear(c, v, ws);
    LLVMValueRef s = par_loop(c, res, &L, cp->mslices);
    for (int g = 0; g < (int)cp->mslices; g++) { /* each group's transforms generated for its rows */
        branch B;
        if_begin(c, &B, LLVMBuildICmp(c->b, LLVMIntEQ, s, ci(c, g), ""));
        sc_cg_winograd_wgrad_group(c, v, cp->n, g, (int)cp->mslices, DY, X, ws, dU);
        if_end(c, &B);
    }
    loop_end(c, &L);
}
