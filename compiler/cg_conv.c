/* Lowering of convolutions: im2col+gemm, implicit-gemm, gemm-1x1,
 * shift+gemm and flip+implicit-gemm (convplan.h; winograd in cg_winograd.c), forward, data gradient
 * and weight gradient. */
#include <stdio.h>

#include "cg_builder.h"
#include "cg_gemm.h"
#include "cg_winograd.h"
#include "cg_winograd_wgrad.h"
#include "convplan.h"

/* ---- convolution pieces ---- */

/* col2im's rows in vectors (sc_cg_scatter_add) from this many output
 * columns, or where the kernel is 1x1: on shorter rows each tap's one
 * masked vector re-reads what the previous tap's just stored, and the
 * scalar loop measured faster (resnet18-stl10's 3x3 stride-2 data
 * gradient onto 3x3: 1.3x the time in vectors; resnet18-cifar's onto 4x4:
 * 1.04x; one thread, CPU time, AMD EPYC Zen 5). */
enum { SCATTER_MIN_OW = 8 };

/* col[(ch*k + kh)*k + kw][oh*ow + ow] = x[ch][oh*s - p + kh*d][ow*s - p + kw*d]
 * (0 outside), for one image, col's rows ldc apart; or the reverse,
 * accumulating col into x (col2im), when reverse is set. */
static void im2col(sc_codegen *c, const sc_conv_geom *g, LLVMValueRef x, LLVMValueRef col, int64_t ldc, int reverse)
{
    loop Lc, Lkh, Lkw, Loh, Low;
    LLVMValueRef ch = loop_begin(c, &Lc, g->c);
    LLVMValueRef kh = loop_begin(c, &Lkh, g->k);
    LLVMValueRef kw = loop_begin(c, &Lkw, g->k);
    LLVMValueRef row = mad(c, mad(c, ch, g->k, kh), g->k, kw);
    LLVMValueRef colrow = gep(c, col, imul(c, row, ci(c, ldc)));
    LLVMValueRef xch = gep(c, x, imul(c, ch, ci(c, g->h * g->w)));
    LLVMValueRef lo, hi;
    if (g->d > 1) /* dilated: the tap's offsets are d apart */
        kh = imul(c, kh, ci(c, g->d)), kw = imul(c, kw, ci(c, g->d));
    sc_cg_conv_valid_cols(c, g, kw, &lo, &hi);
    LLVMValueRef oh = loop_begin(c, &Loh, g->oh);
    LLVMValueRef ih = isub(c, mad(c, oh, g->s, kh), ci(c, g->p));
    LLVMValueRef rowok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                      LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, g->h), ""), "");
    LLVMValueRef crow = gep(c, colrow, imul(c, oh, ci(c, g->ow)));
    /* Columns outside [lo, hi) and rows outside the image are padding. */
    LLVMValueRef lo2 = LLVMBuildSelect(c->b, rowok, lo, ci(c, g->ow), "");
    LLVMValueRef hi2 = LLVMBuildSelect(c->b, rowok, hi, ci(c, g->ow), "");
    LLVMValueRef xrow = gep(c, xch, isub(c, imul(c, ih, ci(c, g->w)), ci(c, g->p - 0)));
    /* x index of column ow: ih*w + ow*s - p + kw */
    LLVMValueRef xbase = gep(c, xrow, kw);
    if (!reverse) {
        loop Lz1, Lz2;
        LLVMValueRef z1 = loop_range(c, &Lz1, ci(c, 0), lo2);
        st(c, crow, z1, cf(c, 0));
        loop_end(c, &Lz1);
        LLVMValueRef o = loop_range(c, &Low, lo2, hi2);
        st(c, crow, o, ld(c, xbase, imul(c, o, ci(c, g->s))));
        loop_end(c, &Low);
        LLVMValueRef z2 = loop_range(c, &Lz2, hi2, ci(c, g->ow));
        st(c, crow, z2, cf(c, 0));
        loop_end(c, &Lz2);
    } else if (g->k > 1 && g->ow < SCATTER_MIN_OW) {
        LLVMValueRef o = loop_range(c, &Low, lo2, hi2);
        LLVMValueRef xi = imul(c, o, ci(c, g->s));
        st(c, xbase, xi, fadd(c, ld(c, xbase, xi), ld(c, crow, o)));
        loop_end(c, &Low);
    } else {
        sc_cg_scatter_add(c, g->s, xbase, crow, lo2, hi2);
    }
    loop_end(c, &Loh);
    loop_end(c, &Lkw);
    loop_end(c, &Lkh);
    loop_end(c, &Lc);
}

/* Node i's plan (convplan.h): the algorithm, chunks, workspace parts and
 * kernel name, as the memory plan sized them. */
static sc_conv_plan node_plan(sc_codegen *c, int i)
{
    const sc_memplan_opts *o = &c->mp->opts;
    return sc_conv_plan_node(c->g, i, o->threads, o->conv, o->tuning);
}

/* Convolutions run over chunks of nb images: im2col puts the chunk's
 * columns side by side, [C*K*K, nb*OH*OW], so that one GEMM covers the
 * chunk even where OH*OW is small (late ResNet stages). GEMM results in
 * that layout are scattered back to NCHW. The workspace's parts: */
typedef struct {
    LLVMValueRef col, t;   /* columns, then [O, cols] */
} conv_ws;

static conv_ws conv_workspace(sc_codegen *c, int i, const sc_conv_plan *cp)
{
    conv_ws p;
    p.col = workspace(c, i);
    p.t = gep(c, p.col, ci(c, cp->at_b));
    return p;
}

/* dst[o][j*ohw + q] = src_(img0+j)[o0 + o][q] for the chunk and rows
 * rows o < nrows, or the reverse. */
static void gather_rows(sc_codegen *c, const sc_conv_plan *cp, LLVMValueRef nchw, LLVMValueRef img0, LLVMValueRef o0,
                        int64_t nrows, LLVMValueRef t, int to_nchw)
{
    loop Lj, Lo, Lq;
    LLVMValueRef j = loop_begin(c, &Lj, cp->nb);
    LLVMValueRef img = gep(c, nchw, imul(c, iadd(c, img0, j), ci(c, cp->o * cp->ohw)));
    LLVMValueRef o = loop_begin(c, &Lo, nrows);
    LLVMValueRef a = gep(c, img, imul(c, iadd(c, o0, o), ci(c, cp->ohw)));
    LLVMValueRef b = gep(c, t, iadd(c, imul(c, o, ci(c, cp->cols)), imul(c, j, ci(c, cp->ohw))));
    LLVMValueRef q = loop_begin(c, &Lq, cp->ohw);
    if (to_nchw)
        st(c, a, q, ld(c, b, q));
    else
        st(c, b, q, ld(c, a, q));
    loop_end(c, &Lq);
    loop_end(c, &Lo);
    loop_end(c, &Lj);
}

/* dst[o][j*ohw + q] = src_(img0+j)[o][q] for the chunk, or the reverse. */
static void gather_chunk(sc_codegen *c, const sc_conv_plan *cp, LLVMValueRef nchw, LLVMValueRef img0, LLVMValueRef t,
                         int to_nchw)
{
    gather_rows(c, cp, nchw, img0, ci(c, 0), cp->o, t, to_nchw);
}

/* im2col of every image of the chunk into col. */
static void chunk_columns(sc_codegen *c, const sc_conv_plan *cp, LLVMValueRef col, LLVMValueRef X, LLVMValueRef img0, int reverse)
{
    loop Lj;
    LLVMValueRef j = loop_begin(c, &Lj, cp->nb);
    LLVMValueRef xn = gep(c, X, imul(c, iadd(c, img0, j), ci(c, cp->g.c * cp->g.h * cp->g.w)));
    im2col(c, &cp->g, xn, gep(c, col, imul(c, j, ci(c, cp->ohw))), cp->cols, reverse);
    loop_end(c, &Lj);
}

/* A GEMM's operand: its base, leading dimension and, for grouped
 * convolutions, the distance between two groups' slices. */
typedef struct {
    LLVMValueRef p;
    int64_t ld, step;
} operand;

/* out_g = op(a_g) . op(b_g) for each group g (the plan's per-group sizes
 * m x n x k); a single plain GEMM when the conv is not grouped. */
static void group_gemms(sc_codegen *c, const sc_conv_plan *cp, int ta, int tb, int64_t m, int64_t n, int64_t k, operand a,
                        operand b, LLVMValueRef beta, operand out)
{
    if (cp->g.groups == 1) {
        sgemm(c, ta, tb, m, n, k, a.p, a.ld, b.p, b.ld, beta, out.p, out.ld);
        return;
    }
    loop Lg;
    LLVMValueRef gi = loop_begin(c, &Lg, cp->g.groups);
    sgemm(c, ta, tb, m, n, k, gep(c, a.p, imul(c, gi, ci(c, a.step))), a.ld, gep(c, b.p, imul(c, gi, ci(c, b.step))), b.ld,
          beta, gep(c, out.p, imul(c, gi, ci(c, out.step))), out.ld);
    loop_end(c, &Lg);
}

/* The operands of the im2col path: the weight [O, C/G*K*K] (group g's
 * rows from g*O/G), columns [C*K*K, ld] (group g's rows from g*C/G*K*K)
 * and an [O, ld] matrix of outputs or output gradients. */
static operand w_op(const sc_conv_plan *cp, LLVMValueRef W) { return (operand){W, cp->cgkk, cp->og * cp->cgkk}; }
static operand col_op(const sc_conv_plan *cp, LLVMValueRef col, int64_t ld) { return (operand){col, ld, cp->cgkk * ld}; }
static operand out_op(const sc_conv_plan *cp, LLVMValueRef y, int64_t ld) { return (operand){y, ld, cp->og * ld}; }

/* ---- shift+gemm (convplan.h) ---- */

typedef struct {
    sc_shift_geom s;
    LLVMValueRef xp, t, wt;  /* workspace: padded source, GEMM output, per-tap weights */
} shift_plan;

static shift_plan plan_shift(sc_codegen *c, int i, const sc_conv_plan *cp)
{
    shift_plan p;
    p.s = cp->shift;
    p.xp = workspace(c, i);
    p.t = gep(c, p.xp, ci(c, cp->at_b));
    p.wt = gep(c, p.t, ci(c, cp->at_taps - cp->at_b));
    return p;
}

/* dst[ch][j*plane + (h+p)*wp + p + w] = src_(img0+j)[ch][h][w], zero
 * around: the chunk's images padded, side by side in each channel row. */
static void shift_pad(sc_codegen *c, const sc_shift_geom *s, LLVMValueRef src, LLVMValueRef img0, LLVMValueRef dst)
{
    zero(c, dst, s->cs * s->stride);
    loop Lj, Lc, Lh, Lw;
    LLVMValueRef j = loop_begin(c, &Lj, s->nb);
    LLVMValueRef img = gep(c, src, imul(c, iadd(c, img0, j), ci(c, s->cs * s->h * s->w)));
    LLVMValueRef ch = loop_begin(c, &Lc, s->cs);
    LLVMValueRef from = gep(c, img, imul(c, ch, ci(c, s->h * s->w)));
    LLVMValueRef to = gep(c, dst, iadd(c, imul(c, ch, ci(c, s->stride)), mad(c, j, s->plane, ci(c, s->p * s->wp + s->p))));
    LLVMValueRef h = loop_begin(c, &Lh, s->h);
    LLVMValueRef frow = gep(c, from, imul(c, h, ci(c, s->w)));
    LLVMValueRef trow = gep(c, to, imul(c, h, ci(c, s->wp)));
    LLVMValueRef w = loop_begin(c, &Lw, s->w);
    st(c, trow, w, ld(c, frow, w));
    loop_end(c, &Lw);
    loop_end(c, &Lh);
    loop_end(c, &Lc);
    loop_end(c, &Lj);
}

/* Between NCHW (nchw, images img0..) and the padded grid (grid: cd rows of
 * s->stride, position j*plane + oh*wp + ow). */
static void shift_grid(sc_codegen *c, const sc_shift_geom *s, LLVMValueRef nchw, LLVMValueRef img0, LLVMValueRef grid,
                       int to_nchw)
{
    loop Lj, Lo, Lh, Lw;
    LLVMValueRef j = loop_begin(c, &Lj, s->nb);
    LLVMValueRef img = gep(c, nchw, imul(c, iadd(c, img0, j), ci(c, s->cd * s->oh * s->ow)));
    LLVMValueRef o = loop_begin(c, &Lo, s->cd);
    LLVMValueRef a = gep(c, img, imul(c, o, ci(c, s->oh * s->ow)));
    LLVMValueRef b = gep(c, grid, iadd(c, imul(c, o, ci(c, s->stride)), imul(c, j, ci(c, s->plane))));
    LLVMValueRef h = loop_begin(c, &Lh, s->oh);
    LLVMValueRef arow = gep(c, a, imul(c, h, ci(c, s->ow)));
    LLVMValueRef brow = gep(c, b, imul(c, h, ci(c, s->wp)));
    LLVMValueRef w = loop_begin(c, &Lw, s->ow);
    if (to_nchw)
        st(c, arow, w, ld(c, brow, w));
    else
        st(c, brow, w, ld(c, arow, w));
    loop_end(c, &Lw);
    loop_end(c, &Lh);
    loop_end(c, &Lo);
    loop_end(c, &Lj);
}

/* wt[tap][d][e] = W[o][ci][kh][kw] for the GEMM's tap = kh*k + kw: the
 * forward pass takes (d, e) = (o, ci); the data gradient, a convolution
 * of dy, takes (d, e) = (ci, o) with the taps flipped. */
static void shift_weights(sc_codegen *c, const sc_shift_geom *s, LLVMValueRef W, LLVMValueRef wt, int flip)
{
    int64_t kk = s->k * s->k, O = flip ? s->cs : s->cd, C = flip ? s->cd : s->cs;
    loop Lo, Lc, Lt;
    LLVMValueRef o = loop_begin(c, &Lo, O);
    LLVMValueRef ch = loop_begin(c, &Lc, C);
    LLVMValueRef wrow = gep(c, W, imul(c, mad(c, o, C, ch), ci(c, kk)));
    LLVMValueRef tap = loop_begin(c, &Lt, kk);
    LLVMValueRef dst = flip ? iadd(c, imul(c, isub(c, ci(c, kk - 1), tap), ci(c, C * O)), mad(c, ch, O, o))
                            : iadd(c, imul(c, tap, ci(c, O * C)), mad(c, o, C, ch));
    st(c, wt, dst, ld(c, wrow, tap));
    loop_end(c, &Lt);
    loop_end(c, &Lc);
    loop_end(c, &Lo);
}

/* out[d][q] = sum over taps of wt[tap] . xp[.][q + kh*wp + kw]: the
 * convolution on the padded grid. */
static void shift_gemms(sc_codegen *c, const shift_plan *p)
{
    const sc_shift_geom *s = &p->s;
    loop Lt;
    LLVMValueRef tap = loop_begin(c, &Lt, s->k * s->k);
    LLVMValueRef kh = LLVMBuildSDiv(c->b, tap, ci(c, s->k), ""), kw = LLVMBuildSRem(c->b, tap, ci(c, s->k), "");
    LLVMValueRef b = gep(c, p->xp, mad(c, kh, s->wp, kw));
    LLVMValueRef a = gep(c, p->wt, imul(c, tap, ci(c, s->cd * s->cs)));
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, tap, ci(c, 0), ""), cf(c, 0), cf(c, 1), "");
    sgemm(c, 0, 0, s->cd, s->npos, s->cs, a, s->cs, b, s->stride, beta, p->t, s->stride);
    loop_end(c, &Lt);
}

/* Forward (flip 0) or data gradient (flip 1) by shifted GEMMs. */
static void lower_conv_shift(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *plan, int flip)
{
    const sc_node *n = &c->g->n[i];
    shift_plan p = plan_shift(c, i, plan);
    LLVMValueRef SRC = tensor(c, n->in[0]), W = tensor(c, n->in[1]), DST = tensor(c, n->out[0]);
    shift_weights(c, &p.s, W, p.wt, flip);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, res, &Ln, p.s.n / p.s.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.s.nb));
    shift_pad(c, &p.s, SRC, img0, p.xp);
    shift_gemms(c, &p);
    shift_grid(c, &p.s, DST, img0, p.t, 1);
    if (!flip && n->nin > 2) {
        LLVMValueRef B = tensor(c, n->in[2]);
        loop Lj, Lo, Lq;
        LLVMValueRef j = loop_begin(c, &Lj, p.s.nb);
        LLVMValueRef yn = gep(c, DST, imul(c, iadd(c, img0, j), ci(c, p.s.cd * p.s.oh * p.s.ow)));
        LLVMValueRef oc = loop_begin(c, &Lo, p.s.cd);
        LLVMValueRef bv = ld(c, B, oc);
        LLVMValueRef row = gep(c, yn, imul(c, oc, ci(c, p.s.oh * p.s.ow)));
        LLVMValueRef q = loop_begin(c, &Lq, p.s.oh * p.s.ow);
        st(c, row, q, fadd(c, ld(c, row, q), bv));
        loop_end(c, &Lq);
        loop_end(c, &Lo);
        loop_end(c, &Lj);
    }
    if (n->op == SC_OP_CONV2D_STATS) {
        sc_cg_conv_chunk_stats(c, i, img0, p.s.nb);
        strncat(res->impl, " +stats", sizeof res->impl - strlen(res->impl) - 1);
    }
    loop_end(c, &Ln);
}

/* Weight gradient by shifted GEMMs: dW[tap] += dy_grid . xp_shifted^T per
 * chunk into per-tap sums, then rearranged into target's [O][C][k][k]. */
static void shift_bwd_weight(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *plan, LLVMValueRef DY,
                             LLVMValueRef X, LLVMValueRef target)
{
    shift_plan p = plan_shift(c, i, plan);
    const sc_shift_geom *s = &p.s; /* src x: cs = C; dst dy: cd = O */
    LLVMValueRef dyg = p.t, acc = p.wt;
    int64_t kk = s->k * s->k;
    loop Ln, Lt;
    LLVMValueRef chunk = par_loop(c, res, &Ln, s->n / s->nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, s->nb));
    shift_pad(c, s, X, img0, p.xp);
    zero(c, dyg, s->cd * s->stride); /* off-grid positions contribute nothing */
    shift_grid(c, s, DY, img0, dyg, 0);
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, c->arg_lo, ""), cf(c, 0), cf(c, 1), "");
    LLVMValueRef tap = loop_begin(c, &Lt, kk);
    LLVMValueRef kh = LLVMBuildSDiv(c->b, tap, ci(c, s->k), ""), kw = LLVMBuildSRem(c->b, tap, ci(c, s->k), "");
    LLVMValueRef b = gep(c, p.xp, mad(c, kh, s->wp, kw));
    sgemm(c, 0, 1, s->cd, s->cs, s->npos, dyg, s->stride, b, s->stride, beta, gep(c, acc, imul(c, tap, ci(c, s->cd * s->cs))),
          s->cs);
    loop_end(c, &Lt);
    loop_end(c, &Ln);
    branch Bany;
    if_begin(c, &Bany, LLVMBuildICmp(c->b, LLVMIntSLT, c->arg_lo, c->arg_hi, ""));
    loop Lo, Lc, Lk;
    LLVMValueRef o = loop_begin(c, &Lo, s->cd);
    LLVMValueRef ch = loop_begin(c, &Lc, s->cs);
    LLVMValueRef trow = gep(c, target, imul(c, mad(c, o, s->cs, ch), ci(c, kk)));
    LLVMValueRef src = mad(c, o, s->cs, ch);
    LLVMValueRef k = loop_begin(c, &Lk, kk);
    st(c, trow, k, ld(c, acc, iadd(c, imul(c, k, ci(c, s->cd * s->cs)), src)));
    loop_end(c, &Lk);
    loop_end(c, &Lc);
    loop_end(c, &Lo);
    if_end(c, &Bany);
}

sc_lowered sc_cg_lower_conv(sc_codegen *c, int i)
{
    sc_conv_plan cp = node_plan(c, i);
    sc_lowered res = lowered(cp.name);
    if (cp.algo == SC_CONV_SHIFT) {
        lower_conv_shift(c, i, &res, &cp, 0);
        return res;
    }
    if (cp.algo == SC_CONV_WINOGRAD) {
        sc_cg_lower_winograd(c, i, &res, &cp, 0);
        return res;
    }
    const sc_node *n = &c->g->n[i];
    conv_ws p = conv_workspace(c, i, &cp);
    LLVMValueRef X = tensor(c, n->in[0]), W = tensor(c, n->in[1]), Y = tensor(c, n->out[0]);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &res, &Ln, cp.chunks);
    LLVMValueRef img0 = imul(c, chunk, ci(c, cp.nb));
    if (cp.algo == SC_CONV_GEMM1X1) {
        LLVMValueRef xn = gep(c, X, imul(c, img0, ci(c, cp.g.c * cp.g.h * cp.g.w)));
        LLVMValueRef yn = gep(c, Y, imul(c, img0, ci(c, cp.o * cp.ohw)));
        sgemm(c, 0, 0, cp.o, cp.ohw, cp.g.c, W, cp.g.c, xn, cp.ohw, cf(c, 0), yn, cp.ohw);
    } else if (cp.algo == SC_CONV_IMPLICIT) {
        /* straight into y where the chunk is one image, else by its [O, cols] */
        LLVMValueRef xn = gep(c, X, imul(c, img0, ci(c, cp.g.c * cp.g.h * cp.g.w)));
        LLVMValueRef yn = gep(c, Y, imul(c, img0, ci(c, cp.o * cp.ohw)));
        sc_cg_gemm_conv(c, 0, cp.o, cp.cols, cp.ckk, W, cp.ckk, &cp.g, cp.nb, xn, cf(c, 0), cp.nb == 1 ? yn : p.t, cp.cols);
        if (cp.nb > 1)
            gather_chunk(c, &cp, Y, img0, p.t, 1);
    } else if (cp.nb == 1) {
        LLVMValueRef yn = gep(c, Y, imul(c, img0, ci(c, cp.o * cp.ohw)));
        chunk_columns(c, &cp, p.col, X, img0, 0);
        group_gemms(c, &cp, 0, 0, cp.og, cp.ohw, cp.cgkk, w_op(&cp, W), col_op(&cp, p.col, cp.ohw), cf(c, 0),
                    out_op(&cp, yn, cp.ohw));
    } else {
        chunk_columns(c, &cp, p.col, X, img0, 0);
        group_gemms(c, &cp, 0, 0, cp.og, cp.cols, cp.cgkk, w_op(&cp, W), col_op(&cp, p.col, cp.cols), cf(c, 0),
                    out_op(&cp, p.t, cp.cols));
        gather_chunk(c, &cp, Y, img0, p.t, 1);
    }
    if (n->nin > 2) {
        LLVMValueRef B = tensor(c, n->in[2]);
        loop Lj, Lo, Lp;
        LLVMValueRef j = loop_begin(c, &Lj, cp.nb);
        LLVMValueRef yn = gep(c, Y, imul(c, iadd(c, img0, j), ci(c, cp.o * cp.ohw)));
        LLVMValueRef oc = loop_begin(c, &Lo, cp.o);
        LLVMValueRef bv = ld(c, B, oc);
        LLVMValueRef row = gep(c, yn, imul(c, oc, ci(c, cp.ohw)));
        LLVMValueRef q = loop_begin(c, &Lp, cp.ohw);
        st(c, row, q, fadd(c, ld(c, row, q), bv));
        loop_end(c, &Lp);
        loop_end(c, &Lo);
        loop_end(c, &Lj);
    }
    if (n->op == SC_OP_CONV2D_STATS) {
        sc_cg_conv_chunk_stats(c, i, img0, cp.nb);
        strncat(res.impl, " +stats", sizeof res.impl - strlen(res.impl) - 1);
    }
    loop_end(c, &Ln);
    return res;
}

/* flip+implicit-gemm (convplan.h). Phase 0: wf[ch][(o*k + kh)*k + kw] =
 * W[o][ch][k-1-kh][k-1-kw] in the one copy at the end of the last
 * thread's workspace part (the plan's `once`), in blocks of FLIP_CH
 * channels over the threads: per o, one contiguous run of W is read and
 * FLIP_CH rows of wf each grow by k*k (sequential streams; a channel at a
 * time read W's rows C*k*k apart, and took 3x as long on layer 4 of
 * resnet18-stl10). Phase 1: per chunk, dx = wf . im2col(dy) with the
 * plan's flip geometry, straight into dx where the chunk is one image,
 * else by the chunk's [C, nb*H*W]. */
enum { FLIP_CH = 16 };

static void lower_bwd_data_flip(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *cp)
{
    const sc_node *n = &c->g->n[i];
    LLVMValueRef DY = tensor(c, n->in[0]), W = tensor(c, n->in[1]), DX = tensor(c, n->out[0]);
    int64_t kk = cp->g.k * cp->g.k, C = cp->g.c, O = cp->o, hw = cp->g.h * cp->g.w;
    /* the last part as planned, whatever threads the binary runs on */
    LLVMValueRef wf = gep(c, c->arg_ws, ci(c, ws_stride(c, i) * (c->mp->opts.threads - 1) + cp->at_taps));
    res->nphases = 2;
    loop Ln;
    if (c->phase == 0) {
        /* the node's name in info --kernels and the profile is phase 0's */
        sc_cg_gemm_note(c, "in", C, cp->cols, O * kk);
        loop Lo, Lc, Lt;
        LLVMValueRef c0 = imul(c, par_loop(c, res, &Ln, (C + FLIP_CH - 1) / FLIP_CH), ci(c, FLIP_CH));
        LLVMValueRef c1 = imin(c, iadd(c, c0, ci(c, FLIP_CH)), ci(c, C));
        LLVMValueRef o = loop_begin(c, &Lo, O);
        LLVMValueRef ch = loop_range(c, &Lc, c0, c1);
        LLVMValueRef src = gep(c, W, imul(c, mad(c, o, C, ch), ci(c, kk)));
        LLVMValueRef dst = gep(c, wf, mad(c, ch, O * kk, imul(c, o, ci(c, kk))));
        LLVMValueRef t = loop_begin(c, &Lt, kk);
        st(c, dst, t, ld(c, src, isub(c, ci(c, kk - 1), t)));
        loop_end(c, &Lt);
        loop_end(c, &Lc);
        loop_end(c, &Lo);
        loop_end(c, &Ln);
        return;
    }
    LLVMValueRef chunk = par_loop(c, res, &Ln, cp->chunks);
    LLVMValueRef img0 = imul(c, chunk, ci(c, cp->nb));
    LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, O * cp->ohw)));
    LLVMValueRef dxn = gep(c, DX, imul(c, img0, ci(c, C * hw)));
    LLVMValueRef t = workspace(c, i);
    sc_cg_gemm_conv(c, 0, C, cp->cols, O * kk, wf, O * kk, &cp->flip, cp->nb, dyn, cf(c, 0), cp->nb == 1 ? dxn : t,
                    cp->cols);
    if (cp->nb > 1) {
        loop Lj, Lc, Lq;
        LLVMValueRef j = loop_begin(c, &Lj, cp->nb);
        LLVMValueRef ch = loop_begin(c, &Lc, C);
        LLVMValueRef a = gep(c, dxn, mad(c, j, C * hw, imul(c, ch, ci(c, hw))));
        LLVMValueRef b = gep(c, t, mad(c, ch, cp->cols, imul(c, j, ci(c, hw))));
        LLVMValueRef q = loop_begin(c, &Lq, hw);
        st(c, a, q, ld(c, b, q));
        loop_end(c, &Lq);
        loop_end(c, &Lc);
        loop_end(c, &Lj);
    }
    loop_end(c, &Ln);
}

sc_lowered sc_cg_lower_conv_bwd_data(sc_codegen *c, int i)
{
    sc_conv_plan cp = node_plan(c, i);
    sc_lowered res = lowered(cp.name);
    if (cp.algo == SC_CONV_SHIFT) {
        lower_conv_shift(c, i, &res, &cp, 1);
        return res;
    }
    if (cp.algo == SC_CONV_FLIP) {
        lower_bwd_data_flip(c, i, &res, &cp);
        return res;
    }
    if (cp.algo == SC_CONV_WINOGRAD) {
        sc_cg_lower_winograd(c, i, &res, &cp, 1);
        return res;
    }
    const sc_node *n = &c->g->n[i];
    conv_ws p = conv_workspace(c, i, &cp);
    LLVMValueRef DY = tensor(c, n->in[0]), W = tensor(c, n->in[1]), DX = tensor(c, n->out[0]);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &res, &Ln, cp.chunks);
    LLVMValueRef img0 = imul(c, chunk, ci(c, cp.nb));
    int64_t chw = cp.g.c * cp.g.h * cp.g.w;
    if (cp.algo != SC_CONV_GEMM1X1) /* col2im accumulates into the chunk's images */
        zero(c, gep(c, DX, imul(c, img0, ci(c, chw))), cp.nb * chw);
    if (cp.algo == SC_CONV_GEMM1X1) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, cp.o * cp.ohw)));
        LLVMValueRef dxn = gep(c, DX, imul(c, img0, ci(c, cp.g.c * cp.g.h * cp.g.w)));
        sgemm(c, 1, 0, cp.g.c, cp.ohw, cp.o, W, cp.g.c, dyn, cp.ohw, cf(c, 0), dxn, cp.ohw);
    } else if (cp.nb == 1) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, cp.o * cp.ohw)));
        group_gemms(c, &cp, 1, 0, cp.cgkk, cp.ohw, cp.og, w_op(&cp, W), out_op(&cp, dyn, cp.ohw), cf(c, 0),
                    col_op(&cp, p.col, cp.ohw));
        chunk_columns(c, &cp, p.col, DX, img0, 1);
    } else {
        gather_chunk(c, &cp, DY, img0, p.t, 0);
        group_gemms(c, &cp, 1, 0, cp.cgkk, cp.cols, cp.og, w_op(&cp, W), out_op(&cp, p.t, cp.cols), cf(c, 0),
                    col_op(&cp, p.col, cp.cols));
        chunk_columns(c, &cp, p.col, DX, img0, 1);
    }
    loop_end(c, &Ln);
    return res;
}

/* The weight gradient in slices of dW's columns (convplan.c, use_slices):
 * slice s takes input channels [s*C/S, (s+1)*C/S), i.e. dW's columns
 * [s*CKK/S, (s+1)*CKK/S), and sums every chunk's GEMM into them. */
static void bwd_weight_slices(sc_codegen *c, const sc_conv_plan *cp, sc_lowered *res, LLVMValueRef DY, LLVMValueRef X,
                              LLVMValueRef DW)
{
    conv_ws p = conv_workspace(c, c->node, cp);
    sc_conv_geom gs = cp->g;
    gs.c = cp->g.c / cp->slices;
    int64_t rows = cp->ckk / cp->slices, chw = cp->g.c * cp->g.h * cp->g.w;
    loop Ls, Ln, Lj;
    LLVMValueRef s = par_loop(c, res, &Ls, cp->slices);
    LLVMValueRef xs = gep(c, X, imul(c, s, ci(c, gs.c * gs.h * gs.w)));
    LLVMValueRef dws = gep(c, DW, imul(c, s, ci(c, rows)));
    LLVMValueRef chunk = loop_begin(c, &Ln, cp->chunks);
    LLVMValueRef img0 = imul(c, chunk, ci(c, cp->nb));
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, ci(c, 0), ""), cf(c, 0), cf(c, 1), "");
    gather_chunk(c, cp, DY, img0, p.t, 0); /* even of one image: one path */
    LLVMValueRef j = loop_begin(c, &Lj, cp->nb);
    LLVMValueRef xn = gep(c, xs, imul(c, iadd(c, img0, j), ci(c, chw)));
    im2col(c, &gs, xn, gep(c, p.col, imul(c, j, ci(c, cp->ohw))), cp->cols, 0);
    loop_end(c, &Lj);
    sgemm(c, 0, 1, cp->o, rows, cp->cols, p.t, cp->cols, p.col, cp->cols, beta, dws, cp->ckk);
    loop_end(c, &Ln);
    loop_end(c, &Ls);
}

/* A 1x1 unpadded convolution's implicit weight gradient reads only the
 * pixels its stride lands on: its channels-last copy keeps just those (a
 * quarter of x at stride 2), and its im2row matrix is that copy itself,
 * [cols, c], a plain GEMM's B read in place (no gathered blocks). */
static int rows_1x1(const sc_conv_geom *g) { return g->k == 1 && g->p == 0; }

/* The chunk's images channels-last (cg_gemm.h, sc_cg_to_channels_last),
 * subsampled for rows_1x1: the implicit weight gradient's source. */
static void to_channels_last(sc_codegen *c, const sc_conv_plan *cp, LLVMValueRef X, LLVMValueRef img0, LLVMValueRef dst)
{
    const sc_conv_geom *g = &cp->g;
    LLVMValueRef xn = gep(c, X, imul(c, img0, ci(c, g->c * g->h * g->w)));
    sc_cg_to_channels_last(c, cp->nb, g->c, g->h, g->w, rows_1x1(g) ? g->s : 1, xn, dst);
}

/* out (m rows of dW, tap-major columns) = beta out + a . the chunk's
 * im2row matrix from its channels-last images xcl */
static void rows_gemm(sc_codegen *c, const sc_conv_plan *cp, int64_t m, LLVMValueRef a, int64_t lda, LLVMValueRef xcl,
                      LLVMValueRef beta, LLVMValueRef out)
{
    if (rows_1x1(&cp->g))
        sgemm(c, 0, 0, m, cp->g.c, cp->cols, a, lda, xcl, cp->g.c, beta, out, cp->ckk);
    else
        sc_cg_gemm_conv_rows(c, m, cp->ckk, cp->cols, a, lda, &cp->g, cp->nb, xcl, beta, out, cp->ckk);
}

/* The implicit weight gradient's second phase, over dW's rows: the
 * partials of every thread but the last (which summed into dW) added, then the row's columns from tap-major
 * (kh, kw, c) back to dW's [c][kh][kw] through a stack copy. */
static void rows_finish(sc_codegen *c, sc_lowered *res, const sc_conv_plan *cp, LLVMValueRef DW, int64_t stride,
                        int64_t part_at)
{
    int threads = c->mp->opts.threads;
    int64_t kk = cp->g.k * cp->g.k, ckk = cp->ckk;
    int sums = threads > 1 && cp->mslices == 1; /* split by rows: no partials */
    snprintf(res->impl, sizeof res->impl, sums ? "sum of partials, taps reordered" : "taps reordered");
    LLVMValueRef buf = entry_alloca(c, LLVMArrayType2(c->elt, (uint64_t)ckk), 64);
    loop Lo, Lt, Lk, Lc, Lq;
    LLVMValueRef o = par_loop(c, res, &Lo, cp->o);
    LLVMValueRef row = gep(c, DW, imul(c, o, ci(c, ckk)));
    if (sums) {
        LLVMValueRef t = loop_range(c, &Lt, ci(c, 0), isub(c, runtime_threads(c), ci(c, 1)));
        LLVMValueRef part =
            gep(c, c->arg_ws, iadd(c, imul(c, t, ci(c, stride)), iadd(c, ci(c, part_at), imul(c, o, ci(c, ckk)))));
        LLVMValueRef k = loop_begin(c, &Lk, ckk);
        st(c, row, k, fadd(c, ld(c, row, k), ld(c, part, k)));
        loop_end(c, &Lk);
        loop_end(c, &Lt);
    }
    if (kk > 1) {
        LLVMValueRef k2 = loop_begin(c, &Lk, ckk);
        st(c, buf, k2, ld(c, row, k2));
        loop_end(c, &Lk);
        LLVMValueRef tap = loop_begin(c, &Lq, kk);
        LLVMValueRef ch = loop_begin(c, &Lc, cp->g.c);
        st(c, row, mad(c, ch, kk, tap), ld(c, buf, mad(c, tap, cp->g.c, ch)));
        loop_end(c, &Lc);
        loop_end(c, &Lq);
    }
    loop_end(c, &Lo);
}

/* The implicit weight gradient split by dW's rows (convplan.h,
 * mslices): slice s computes rows [s*ms, (s+1)*ms) over every chunk in
 * turn, the first overwriting. Each slice is one item of the parallel
 * loop, so no two threads share a row whatever the threads at run time. */
static void rows_split(sc_codegen *c, sc_lowered *res, const sc_conv_plan *cp, const conv_ws *p, LLVMValueRef DY,
                       LLVMValueRef X, LLVMValueRef DW)
{
    int64_t ms = cp->o / cp->mslices;
    loop Ls, Ln;
    LLVMValueRef o0 = imul(c, par_loop(c, res, &Ls, cp->mslices), ci(c, ms));
    LLVMValueRef chunk = loop_begin(c, &Ln, cp->chunks);
    LLVMValueRef img0 = imul(c, chunk, ci(c, cp->nb));
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, ci(c, 0), ""), cf(c, 0), cf(c, 1), "");
    LLVMValueRef a = gep(c, DY, iadd(c, imul(c, img0, ci(c, cp->o * cp->ohw)), imul(c, o0, ci(c, cp->ohw))));
    if (cp->nb > 1)
        gather_rows(c, cp, DY, img0, o0, ms, p->t, 0), a = p->t;
    to_channels_last(c, cp, X, img0, p->col);
    rows_gemm(c, cp, ms, a, cp->nb > 1 ? cp->cols : cp->ohw, p->col, beta, gep(c, DW, imul(c, o0, ci(c, cp->ckk))));
    loop_end(c, &Ln);
    loop_end(c, &Ls);
}

sc_lowered sc_cg_lower_conv_bwd_weight(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *dw = &c->g->t[n->out[0]];
    int threads = c->mp->opts.threads;
    LLVMValueRef DY = tensor(c, n->in[0]), X = tensor(c, n->in[1]), DW = tensor(c, n->out[0]);
    sc_conv_plan cp = node_plan(c, i);
    int64_t stride = ws_stride(c, i), part_at = cp.at_partial;
    sc_lowered res = lowered(cp.name);
    if (cp.algo == SC_CONV_WINOGRAD) {
        sc_cg_lower_winograd_wgrad(c, i, &res, &cp);
        return res;
    }
    if (cp.slices > 1) {
        bwd_weight_slices(c, &cp, &res, DY, X, DW);
        return res;
    }
    res.nphases = threads > 1 || cp.algo == SC_CONV_IMPLICIT ? 2 : 1;
    if (c->phase == 1 && cp.algo == SC_CONV_IMPLICIT) {
        rows_finish(c, &res, &cp, DW, stride, part_at);
        return res;
    }
    if (c->phase == 1) {
        /* dW += the other threads' partial sums, in blocks over threads */
        enum { BLOCK = 4096 };
        snprintf(res.impl, sizeof res.impl, "sum of partials");
        LLVMValueRef T = runtime_threads(c);
        loop Lb, Lt, Lk;
        LLVMValueRef blk = par_loop(c, &res, &Lb, (dw->numel + BLOCK - 1) / BLOCK);
        LLVMValueRef k0 = imul(c, blk, ci(c, BLOCK));
        LLVMValueRef k1 = imin(c, iadd(c, k0, ci(c, BLOCK)), ci(c, dw->numel));
        LLVMValueRef t = loop_range(c, &Lt, ci(c, 0), isub(c, T, ci(c, 1)));
        LLVMValueRef part = gep(c, c->arg_ws, iadd(c, imul(c, t, ci(c, stride)), ci(c, part_at)));
        LLVMValueRef k = loop_range(c, &Lk, k0, k1);
        st(c, DW, k, fadd(c, ld(c, DW, k), ld(c, part, k)));
        loop_end(c, &Lk);
        loop_end(c, &Lt);
        loop_end(c, &Lb);
        return res;
    }
    conv_ws p = conv_workspace(c, i, &cp);
    if (cp.mslices > 1) {
        rows_split(c, &res, &cp, &p, DY, X, DW);
        return res;
    }
    /* The last thread sums its chunks into dW, the others into their
     * partials: the last one's is not in the arena (convplan.h). */
    LLVMValueRef target = DW;
    if (threads > 1) {
        LLVMValueRef part = gep(c, workspace(c, i), ci(c, part_at));
        LLVMValueRef last = isub(c, runtime_threads(c), ci(c, 1));
        target = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, c->arg_tid, last, ""), DW, part, "");
        branch Be;
        if_begin(c, &Be, LLVMBuildICmp(c->b, LLVMIntEQ, c->arg_lo, c->arg_hi, ""));
        zero(c, target, dw->numel);
        if_end(c, &Be);
    }
    DW = target;
    if (cp.algo == SC_CONV_SHIFT) {
        shift_bwd_weight(c, i, &res, &cp, DY, X, DW);
        return res;
    }
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &res, &Ln, cp.chunks);
    LLVMValueRef img0 = imul(c, chunk, ci(c, cp.nb));
    /* The slice's first chunk overwrites, the others accumulate. */
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, c->arg_lo, ""), cf(c, 0), cf(c, 1), "");
    if (cp.algo == SC_CONV_GEMM1X1) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, cp.o * cp.ohw)));
        LLVMValueRef xn = gep(c, X, imul(c, img0, ci(c, cp.g.c * cp.g.h * cp.g.w)));
        sgemm(c, 0, 1, cp.o, cp.g.c, cp.ohw, dyn, cp.ohw, xn, cp.ohw, beta, DW, cp.g.c);
    } else if (cp.algo == SC_CONV_IMPLICIT) {
        /* dW, columns tap-major, += dy . rows of the chunk's channels-last images */
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, cp.o * cp.ohw)));
        if (cp.nb > 1)
            gather_chunk(c, &cp, DY, img0, p.t, 0);
        to_channels_last(c, &cp, X, img0, p.col);
        rows_gemm(c, &cp, cp.o, cp.nb > 1 ? p.t : dyn, cp.cols, p.col, beta, DW);
    } else if (cp.nb == 1) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, cp.o * cp.ohw)));
        chunk_columns(c, &cp, p.col, X, img0, 0);
        group_gemms(c, &cp, 0, 1, cp.og, cp.cgkk, cp.ohw, out_op(&cp, dyn, cp.ohw), col_op(&cp, p.col, cp.ohw), beta,
                    w_op(&cp, DW));
    } else {
        gather_chunk(c, &cp, DY, img0, p.t, 0);
        chunk_columns(c, &cp, p.col, X, img0, 0);
        group_gemms(c, &cp, 0, 1, cp.og, cp.cgkk, cp.cols, out_op(&cp, p.t, cp.cols), col_op(&cp, p.col, cp.cols), beta,
                    w_op(&cp, DW));
    }
    loop_end(c, &Ln);
    return res;
}
