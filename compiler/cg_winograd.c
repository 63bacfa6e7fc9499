/* winograd F(2,3) (convplan.h): a 3x3, stride-1, pad-1 convolution by
 * Winograd's minimal filtering F(2x2, 3x3). Output tile (ty, tx) is
 * y[2ty..2ty+1][2tx..2tx+1] = A^T [sum over c of U_c (.) V_c] A, with the
 * input tile d = x[2ty-1..2ty+2][2tx-1..2tx+2] (zero outside),
 * V = B^T d B, U = G g G^T, and
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *   G   = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * The sum over c for each of the 16 tile elements e is one GEMM:
 * M[e] [cout, t] = U[e] [cout, cin] . V[e] [cin, t]. */
#include "cg_winograd.h"

#include "cg_builder.h"

/* The row transform of four values by B^T: d0-d2, d1+d2, d2-d1, d1-d3. */
static void bt4(sc_codegen *c, LLVMValueRef d[4], LLVMValueRef out[4])
{
    out[0] = fsub(c, d[0], d[2]);
    out[1] = fadd(c, d[1], d[2]);
    out[2] = fsub(c, d[2], d[1]);
    out[3] = fsub(c, d[1], d[3]);
}

/* By G: g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2. */
static void g3(sc_codegen *c, LLVMValueRef g[3], LLVMValueRef out[4])
{
    LLVMValueRef half = cf(c, 0.5), s = fadd(c, g[0], g[2]);
    out[0] = g[0];
    out[1] = fmul(c, fadd(c, s, g[1]), half);
    out[2] = fmul(c, fsub(c, s, g[1]), half);
    out[3] = g[2];
}

/* By A^T: m0+m1+m2, m1-m2-m3. */
static void at4(sc_codegen *c, LLVMValueRef m[4], LLVMValueRef out[2])
{
    out[0] = fadd(c, fadd(c, m[0], m[1]), m[2]);
    out[1] = fsub(c, fsub(c, m[1], m[2]), m[3]);
}

/* U[e][a][b] = (G g G^T)[e] for the GEMMs' rows a < cout and
 * columns b < cin, over a's. The forward convolution's g is W[a][b]; the
 * data gradient's (flip) the flipped W[b][a]: g[kh][kw] = W[b][a][2-kh][2-kw]. */
void sc_cg_winograd_weights(sc_codegen *c, sc_lowered *res, const sc_wino_geom *v, LLVMValueRef W, LLVMValueRef U,
                            int flip)
{
    loop La, Lb;
    LLVMValueRef a = par_loop(c, res, &La, v->cout);
    LLVMValueRef b = loop_begin(c, &Lb, v->cin);
    LLVMValueRef g = gep(c, W, imul(c, flip ? mad(c, b, v->cout, a) : mad(c, a, v->cin, b), ci(c, 9)));
    LLVMValueRef t[4][3], u[4][4];
    for (int kw = 0; kw < 3; kw++) { /* columns: G g */
        LLVMValueRef col[3], out[4];
        for (int kh = 0; kh < 3; kh++)
            col[kh] = ld(c, g, ci(c, flip ? 8 - (kh * 3 + kw) : kh * 3 + kw));
        g3(c, col, out);
        for (int r = 0; r < 4; r++)
            t[r][kw] = out[r];
    }
    for (int r = 0; r < 4; r++) /* rows: (G g) G^T */
        g3(c, t[r], u[r]);
    LLVMValueRef at = mad(c, a, v->cin, b);
    for (int e = 0; e < 16; e++)
        st(c, U, iadd(c, at, ci(c, e * v->cout * v->cin)), u[e / 4][e % 4]);
    loop_end(c, &Lb);
    loop_end(c, &La);
}

/* V[e][ch][j*tt + ty*tw + tx] = (B^T d B)[e] for the chunk's images: each
 * channel plane copied into the zero-bordered plane P (P[(y+1)*wp + x+1] =
 * x[y][x]; its border was zeroed once per call), tile (ty, tx) then
 * P[2ty..2ty+3][2tx..2tx+3] with no bounds to check. */
static void inputs(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef X, LLVMValueRef img0, int64_t nb, LLVMValueRef P,
                   LLVMValueRef V)
{
    loop Lj, Lc, Ly, Lx, Lty, Ltx;
    LLVMValueRef j = loop_begin(c, &Lj, nb);
    LLVMValueRef ch = loop_begin(c, &Lc, v->cin);
    LLVMValueRef src = gep(c, X, imul(c, mad(c, iadd(c, img0, j), v->cin, ch), ci(c, v->h * v->w)));
    LLVMValueRef y = loop_begin(c, &Ly, v->h);
    LLVMValueRef srow = gep(c, src, imul(c, y, ci(c, v->w)));
    LLVMValueRef prow = gep(c, P, mad(c, y, v->wp, ci(c, v->wp + 1)));
    LLVMValueRef x = loop_begin(c, &Lx, v->w);
    st(c, prow, x, ld(c, srow, x));
    loop_end(c, &Lx);
    loop_end(c, &Ly);
    LLVMValueRef dst = gep(c, V, mad(c, ch, v->t, imul(c, j, ci(c, v->tt))));
    LLVMValueRef ty = loop_begin(c, &Lty, v->th);
    LLVMValueRef ptile = gep(c, P, imul(c, ty, ci(c, 2 * v->wp)));
    LLVMValueRef drow = gep(c, dst, imul(c, ty, ci(c, v->tw)));
    LLVMValueRef tx = loop_begin(c, &Ltx, v->tw);
    LLVMValueRef x0 = imul(c, tx, ci(c, 2)), t[4][4];
    for (int k = 0; k < 4; k++) { /* columns: B^T d */
        LLVMValueRef col[4], out[4];
        for (int r = 0; r < 4; r++)
            col[r] = ld(c, ptile, iadd(c, x0, ci(c, r * v->wp + k)));
        bt4(c, col, out);
        for (int r = 0; r < 4; r++)
            t[r][k] = out[r];
    }
    for (int r = 0; r < 4; r++) { /* rows: (B^T d) B */
        LLVMValueRef out[4];
        bt4(c, t[r], out);
        for (int k = 0; k < 4; k++)
            st(c, drow, iadd(c, tx, ci(c, (r * 4 + k) * v->cin * v->t)), out[k]);
    }
    loop_end(c, &Ltx);
    loop_end(c, &Lty);
    loop_end(c, &Lc);
    loop_end(c, &Lj);
}

/* The 2x2 outputs of tile tx of a row of tiles whose M elements start at
 * m (element e at m + e*cout*t), into rows y0 (and y1 when rows is 2),
 * columns 2tx (and 2tx+1 when cols is 2), plus bias b (or NULL). */
static void out_tile(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef m, LLVMValueRef tx, LLVMValueRef y0,
                     LLVMValueRef y1, int rows, int cols, LLVMValueRef b)
{
    LLVMValueRef t[2][4];
    for (int k = 0; k < 4; k++) { /* columns: A^T m */
        LLVMValueRef col[4], out[2];
        for (int r = 0; r < 4; r++)
            col[r] = ld(c, m, iadd(c, tx, ci(c, (r * 4 + k) * v->cout * v->t)));
        at4(c, col, out);
        t[0][k] = out[0], t[1][k] = out[1];
    }
    LLVMValueRef x0 = imul(c, tx, ci(c, 2));
    for (int r = 0; r < rows; r++) { /* rows: (A^T m) A */
        LLVMValueRef out[2];
        at4(c, t[r], out);
        for (int k = 0; k < cols; k++)
            st(c, r ? y1 : y0, iadd(c, x0, ci(c, k)), b ? fadd(c, out[k], b) : out[k]);
    }
}

/* One row of tiles ty into y's rows 2ty (and 2ty+1 when rows is 2): the
 * full tiles, then the half one of an odd width. */
static void out_row(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef m, LLVMValueRef yo, LLVMValueRef ty, int rows,
                    LLVMValueRef b)
{
    LLVMValueRef mrow = gep(c, m, imul(c, ty, ci(c, v->tw)));
    LLVMValueRef y0 = gep(c, yo, imul(c, ty, ci(c, 2 * v->w))), y1 = gep(c, y0, ci(c, v->w));
    loop Ltx;
    LLVMValueRef tx = loop_begin(c, &Ltx, v->w / 2);
    out_tile(c, v, mrow, tx, y0, y1, rows, 2, b);
    loop_end(c, &Ltx);
    if (v->w % 2)
        out_tile(c, v, mrow, ci(c, v->w / 2), y0, y1, rows, 1, b);
}

/* y[img0 + j][o] = the output transform of M's tiles (+ bias B[o] where
 * B is not NULL), overwriting y. */
static void outputs(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef M, LLVMValueRef Y, LLVMValueRef B,
                    LLVMValueRef img0, int64_t nb)
{
    loop Lj, Lo, Lty;
    LLVMValueRef j = loop_begin(c, &Lj, nb);
    LLVMValueRef o = loop_begin(c, &Lo, v->cout);
    LLVMValueRef b = B ? ld(c, B, o) : NULL;
    LLVMValueRef yo = gep(c, Y, imul(c, mad(c, iadd(c, img0, j), v->cout, o), ci(c, v->h * v->w)));
    LLVMValueRef m = gep(c, M, mad(c, o, v->t, imul(c, j, ci(c, v->tt))));
    LLVMValueRef ty = loop_begin(c, &Lty, v->h / 2);
    out_row(c, v, m, yo, ty, 2, b);
    loop_end(c, &Lty);
    if (v->h % 2)
        out_row(c, v, m, yo, ci(c, v->h / 2), 1, b);
    loop_end(c, &Lo);
    loop_end(c, &Lj);
}

void sc_cg_winograd_chunk(sc_codegen *c, const sc_wino_geom *v, int64_t nb, LLVMValueRef X, LLVMValueRef img0,
                          LLVMValueRef U, LLVMValueRef ws, LLVMValueRef Y, LLVMValueRef bias)
{
    LLVMValueRef V = ws, M = gep(c, ws, ci(c, v->at_m)), P = gep(c, ws, ci(c, v->at_plane));
    inputs(c, v, X, img0, nb, P, V);
    loop Le;
    LLVMValueRef e = loop_begin(c, &Le, 16);
    sc_cg_gemm(c, 0, 0, v->cout, v->t, v->cin, gep(c, U, imul(c, e, ci(c, v->cout * v->cin))), v->cin,
               gep(c, V, imul(c, e, ci(c, v->cin * v->t))), v->t, cf(c, 0), gep(c, M, imul(c, e, ci(c, v->cout * v->t))),
               v->t);
    loop_end(c, &Le);
    outputs(c, v, M, Y, bias, img0, nb);
}

void sc_cg_winograd_clear(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef ws)
{
    zero(c, gep(c, ws, ci(c, v->at_plane)), v->hp * v->wp);
}

/* Phase 0 transforms the weights over the GEMMs' rows into the one copy
 * at the end of the last thread's workspace part; phase 1 runs the chunks, each thread in its own workspace,
 * the plane's border zeroed once per call. */
void sc_cg_lower_winograd(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *cp, int flip)
{
    const sc_node *n = &c->g->n[i];
    const sc_wino_geom *v = &cp->wino;
    LLVMValueRef X = tensor(c, n->in[0]), W = tensor(c, n->in[1]), Y = tensor(c, n->out[0]);
    /* the one copy at the end of the last part as planned (the plan's
     * `once`), whatever threads the binary runs on */
    LLVMValueRef U = gep(c, c->arg_ws, ci(c, ws_stride(c, i) * (c->mp->opts.threads - 1) + v->at_u));
    res->nphases = 2;
    if (c->phase == 0) {
        /* the node's name in info --kernels and the profile is phase 0's */
        sc_cg_gemm_note(c, "16x", v->cout, v->t, v->cin);
        sc_cg_winograd_weights(c, res, v, W, U, flip);
        return;
    }
    LLVMValueRef ws = workspace(c, i);
    sc_cg_winograd_clear(c, v, ws);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, res, &Ln, cp->chunks);
    LLVMValueRef img0 = imul(c, chunk, ci(c, cp->nb));
    sc_cg_winograd_chunk(c, v, cp->nb, X, img0, U, ws, Y, !flip && n->nin > 2 ? tensor(c, n->in[2]) : NULL);
    if (!flip && n->op == SC_OP_CONV2D_STATS) {
        sc_cg_conv_chunk_stats(c, i, img0, cp->nb);
        strncat(res->impl, " +stats", sizeof res->impl - strlen(res->impl) - 1);
    }
    loop_end(c, &Ln);
}

void sc_cg_winograd_serial(sc_codegen *c, const sc_wino_geom *v, int64_t n, int64_t nb, LLVMValueRef W, LLVMValueRef X,
                           LLVMValueRef Y, LLVMValueRef ws, LLVMValueRef bias, int flip)
{
    LLVMValueRef lo = c->arg_lo, hi = c->arg_hi, U = gep(c, ws, ci(c, v->at_u));
    sc_lowered res = lowered("serial");
    c->arg_lo = ci(c, 0), c->arg_hi = ci(c, v->cout);
    sc_cg_winograd_weights(c, &res, v, W, U, flip);
    c->arg_lo = lo, c->arg_hi = hi;
    sc_cg_winograd_clear(c, v, ws);
    loop Ln;
    LLVMValueRef chunk = loop_begin(c, &Ln, n / nb);
    sc_cg_winograd_chunk(c, v, nb, X, imul(c, chunk, ci(c, nb)), U, ws, Y, bias);
    loop_end(c, &Ln);
}
