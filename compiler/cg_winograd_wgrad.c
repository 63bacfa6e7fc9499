/* winograd F(2,3)'s weight gradient (convplan.h): the forward pass
 * computes tile t's outputs as y_t = A^T [U (.) V_t] A with U = G g G^T
 * and V_t = B^T d_t B (cg_winograd.c), so
 *   dL/dg = G^T [sum over t of Z_t (.) V_t] G,  Z_t = A dy_t A^T,
 * dy_t the tile's 2x2 output gradient (zero past an odd plane's edge).
 * For each of the 16 tile elements e the sum over tiles is one GEMM with
 * the tiles as its depth: dU[e] [O, C] += Z[e] [O, t] . V[e] [C, t]^T,
 * summed over the chunks in place (beta 1), then dW = G^T dU G once.
 * The threads split dU's rows (o): each transforms every input tile of a
 * chunk (a small pass beside its GEMMs) and dy's tiles of its rows, so
 * there is no per-thread partial dU, only the one shared copy. */
#include "cg_winograd_wgrad.h"

#include "cg_builder.h"
#include "cg_gemm.h"
#include "cg_winograd.h"

#include <stdio.h>

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

/* Z[e][r][j*tt + ty*tw + tx] = (A D A^T)[e] for dy's rows o0 + r < o0 +
 * v->cout of the chunk's images, D = dy[2ty..2ty+1][2tx..2tx+1]: each
 * plane copied into P's interior as the inputs are (P[(y+1)*wp + x+1]),
 * so that a half tile past the edge reads P's zero border. */
static void dy_tiles(sc_codegen *c, const sc_wino_geom *v, int64_t o_total, LLVMValueRef DY, LLVMValueRef img0,
                     int64_t nb, LLVMValueRef o0, LLVMValueRef P, LLVMValueRef Z)
{
    int64_t ms = v->cout;
    loop Lj, Lr, Ly, Lx, Lty, Ltx;
    LLVMValueRef j = loop_begin(c, &Lj, nb);
    LLVMValueRef r = loop_begin(c, &Lr, ms);
    LLVMValueRef src = gep(c, DY, imul(c, mad(c, iadd(c, img0, j), o_total, iadd(c, o0, r)), ci(c, v->h * v->w)));
    LLVMValueRef y = loop_begin(c, &Ly, v->h);
    LLVMValueRef srow = gep(c, src, imul(c, y, ci(c, v->w)));
    LLVMValueRef prow = gep(c, P, mad(c, y, v->wp, ci(c, v->wp + 1)));
    LLVMValueRef x = loop_begin(c, &Lx, v->w);
    st(c, prow, x, ld(c, srow, x));
    loop_end(c, &Lx);
    loop_end(c, &Ly);
    LLVMValueRef dst = gep(c, Z, mad(c, r, v->t, imul(c, j, ci(c, v->tt))));
    LLVMValueRef ty = loop_begin(c, &Lty, v->th);
    LLVMValueRef ptile = gep(c, P, mad(c, ty, 2 * v->wp, ci(c, v->wp + 1)));
    LLVMValueRef drow = gep(c, dst, imul(c, ty, ci(c, v->tw)));
    LLVMValueRef tx = loop_begin(c, &Ltx, v->tw);
    LLVMValueRef x0 = imul(c, tx, ci(c, 2)), t[2][4];
    for (int i = 0; i < 2; i++) /* rows of D by A on the right: D A^T */
        a2(c, ld(c, ptile, iadd(c, x0, ci(c, i * v->wp))), ld(c, ptile, iadd(c, x0, ci(c, i * v->wp + 1))), t[i]);
    for (int k = 0; k < 4; k++) { /* columns: A (D A^T) */
        LLVMValueRef out[4];
        a2(c, t[0][k], t[1][k], out);
        for (int q = 0; q < 4; q++)
            st(c, drow, iadd(c, tx, ci(c, (q * 4 + k) * ms * v->t)), out[q]);
    }
    loop_end(c, &Ltx);
    loop_end(c, &Lty);
    loop_end(c, &Lr);
    loop_end(c, &Lj);
}

void sc_cg_winograd_wgrad_slice(sc_codegen *c, const sc_wino_geom *v, int64_t o_total, int64_t n, LLVMValueRef DY,
                                LLVMValueRef X, LLVMValueRef o0, LLVMValueRef ws, LLVMValueRef dU)
{
    int64_t nb = v->t / v->tt, ms = v->cout, C = v->cin;
    LLVMValueRef V = ws, Z = gep(c, ws, ci(c, v->at_m)), P = gep(c, ws, ci(c, v->at_plane));
    LLVMValueRef dus = gep(c, dU, imul(c, o0, ci(c, C)));
    loop Ln, Le;
    LLVMValueRef chunk = loop_begin(c, &Ln, n / nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, nb));
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, ci(c, 0), ""), cf(c, 0), cf(c, 1), "");
    sc_cg_winograd_inputs(c, v, X, img0, nb, P, V);
    dy_tiles(c, v, o_total, DY, img0, nb, o0, P, Z);
    LLVMValueRef e = loop_begin(c, &Le, 16);
    sc_cg_gemm(c, 0, 1, ms, C, v->t, gep(c, Z, imul(c, e, ci(c, ms * v->t))), v->t,
               gep(c, V, imul(c, e, ci(c, C * v->t))), v->t, beta, gep(c, dus, imul(c, e, ci(c, o_total * C))), C);
    loop_end(c, &Le);
    loop_end(c, &Ln);
}

void sc_cg_winograd_wgrad_row(sc_codegen *c, int64_t o_total, int64_t c_total, LLVMValueRef dU, LLVMValueRef o,
                              LLVMValueRef DW)
{
    loop Lc;
    LLVMValueRef ch = loop_begin(c, &Lc, c_total);
    LLVMValueRef at = mad(c, o, c_total, ch), y[3][4];
    for (int k = 0; k < 4; k++) { /* columns: G^T X */
        LLVMValueRef col[4], out[3];
        for (int r = 0; r < 4; r++)
            col[r] = ld(c, dU, iadd(c, at, ci(c, (r * 4 + k) * o_total * c_total)));
        gt4(c, col, out);
        for (int i = 0; i < 3; i++)
            y[i][k] = out[i];
    }
    LLVMValueRef w = gep(c, DW, imul(c, at, ci(c, 9)));
    for (int i = 0; i < 3; i++) { /* rows: (G^T X) G */
        LLVMValueRef out[3];
        gt4(c, y[i], out);
        for (int k = 0; k < 3; k++)
            st(c, w, ci(c, i * 3 + k), out[k]);
    }
    loop_end(c, &Lc);
}

void sc_cg_winograd_wgrad_serial(sc_codegen *c, const sc_wino_geom *v, int64_t o_total, int64_t n, int64_t slices,
                                 LLVMValueRef DY, LLVMValueRef X, LLVMValueRef DW, LLVMValueRef ws)
{
    LLVMValueRef dU = gep(c, ws, ci(c, v->at_u));
    sc_cg_winograd_clear(c, v, ws);
    loop Ls, Lo;
    LLVMValueRef s = loop_begin(c, &Ls, slices);
    sc_cg_winograd_wgrad_slice(c, v, o_total, n, DY, X, imul(c, s, ci(c, v->cout)), ws, dU);
    loop_end(c, &Ls);
    LLVMValueRef o = loop_begin(c, &Lo, o_total);
    sc_cg_winograd_wgrad_row(c, o_total, v->cin, dU, o, DW);
    loop_end(c, &Lo);
}

/* Phase 0: each slice of dU's rows (the plan's mslices, one item each of
 * the parallel loop) over every chunk, in the one copy of dU at the end of
 * the last thread's workspace part (the plan's `once`); phase 1: dW's
 * rows from it. */
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
        sc_cg_winograd_wgrad_row(c, cp->o, cp->g.c, dU, par_loop(c, res, &L, cp->o), DW);
        loop_end(c, &L);
        return;
    }
    LLVMValueRef ws = workspace(c, i);
    sc_cg_winograd_clear(c, v, ws);
    LLVMValueRef s = par_loop(c, res, &L, cp->mslices);
    sc_cg_winograd_wgrad_slice(c, v, cp->o, cp->n, DY, X, imul(c, s, ci(c, v->cout)), ws, dU);
    loop_end(c, &L);
}
