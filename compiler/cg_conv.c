/* Lowering of convolutions: im2col+gemm, gemm-1x1 and shift+gemm
 * (convplan.h), forward, data gradient and weight gradient. */
#include <stdio.h>

#include "cg_builder.h"
#include "convplan.h"

/* ---- convolution pieces ---- */

typedef struct {
    int64_t c, h, w, k, s, p, oh, ow;
} geom;

/* The range of output columns ow whose input column ow*s - p + kw lies in
 * [0, w): [lo, hi), computed in generated code from kw. */
static void valid_cols(sc_codegen *c, const geom *g, LLVMValueRef kw, LLVMValueRef *lo, LLVMValueRef *hi)
{
    /* lo = ceil((p - kw) / s) clamped at 0; hi = floor((w - 1 + p - kw) / s) + 1 clamped at ow.
     * p - kw + s - 1 >= 0 is not guaranteed, so clamp the numerators first. */
    LLVMValueRef num_lo = imax(c, isub(c, ci(c, g->p), kw), ci(c, 0));
    *lo = LLVMBuildSDiv(c->b, iadd(c, num_lo, ci(c, g->s - 1)), ci(c, g->s), "");
    LLVMValueRef num_hi = isub(c, ci(c, g->w - 1 + g->p), kw);
    LLVMValueRef h = iadd(c, LLVMBuildSDiv(c->b, imax(c, num_hi, ci(c, -1)), ci(c, g->s), ""), ci(c, 1));
    /* num_hi = -1 means no valid column: sdiv(-1, s) = 0 gives 1, fix up. */
    h = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, num_hi, ci(c, 0), ""), ci(c, 0), h, "");
    *hi = imax(c, imin(c, h, ci(c, g->ow)), *lo);
}

/* col[(ch*k + kh)*k + kw][oh*ow + ow] = x[ch][oh*s - p + kh][ow*s - p + kw]
 * (0 outside), for one image, col's rows ldc apart; or the reverse,
 * accumulating col into x (col2im), when reverse is set. */
static void im2col(sc_codegen *c, const geom *g, LLVMValueRef x, LLVMValueRef col, int64_t ldc, int reverse)
{
    loop Lc, Lkh, Lkw, Loh, Low;
    LLVMValueRef ch = loop_begin(c, &Lc, g->c);
    LLVMValueRef kh = loop_begin(c, &Lkh, g->k);
    LLVMValueRef kw = loop_begin(c, &Lkw, g->k);
    LLVMValueRef row = mad(c, mad(c, ch, g->k, kh), g->k, kw);
    LLVMValueRef colrow = gep(c, col, imul(c, row, ci(c, ldc)));
    LLVMValueRef xch = gep(c, x, imul(c, ch, ci(c, g->h * g->w)));
    LLVMValueRef lo, hi;
    valid_cols(c, g, kw, &lo, &hi);
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
    } else {
        LLVMValueRef o = loop_range(c, &Low, lo2, hi2);
        LLVMValueRef xi = imul(c, o, ci(c, g->s));
        st(c, xbase, xi, fadd(c, ld(c, xbase, xi), ld(c, crow, o)));
        loop_end(c, &Low);
    }
    loop_end(c, &Loh);
    loop_end(c, &Lkw);
    loop_end(c, &Lkh);
    loop_end(c, &Lc);
}

static geom conv_geom(const sc_tensor *x, const sc_tensor *y, const sc_node *n)
{
    geom g = {x->shape[1], x->shape[2], x->shape[3], n->kernel, n->stride, n->pad, y->shape[2], y->shape[3]};
    return g;
}

static int direct(const geom *g) { return g->k == 1 && g->s == 1 && g->p == 0; }

/* Convolutions run over chunks of nb images (sc_conv_chunk): im2col puts
 * the chunk's columns side by side, [C*K*K, nb*OH*OW], so that one GEMM
 * covers the chunk even where OH*OW is small (late ResNet stages). GEMM
 * results in that layout are scattered back to NCHW. */
typedef struct {
    geom g;
    int64_t n, o, ckk, ohw, nb, cols;
    int direct;            /* one image, 1x1 stride 1: no copies at all */
    LLVMValueRef col, t;   /* workspace: columns, then [O, cols] */
} conv_plan;

static conv_plan plan_conv(sc_codegen *c, int i, const sc_tensor *x, const sc_tensor *y, int64_t o)
{
    conv_plan p;
    p.g = conv_geom(x, y, &c->g->n[i]);
    p.n = x->shape[0];
    p.o = o;
    p.ckk = p.g.c * p.g.k * p.g.k;
    p.ohw = p.g.oh * p.g.ow;
    p.nb = sc_conv_chunk(x->shape[0], p.ohw, c->mp->opts.threads);
    p.cols = p.nb * p.ohw;
    p.direct = direct(&p.g) && p.nb == 1;
    if (p.direct)
        snprintf(c->impl, sizeof c->impl, "gemm-1x1");
    else if (p.nb == 1)
        snprintf(c->impl, sizeof c->impl, "im2col+gemm");
    else
        snprintf(c->impl, sizeof c->impl, "im2col+gemm x%lld", (long long)p.nb);
    p.col = workspace(c, i);
    p.t = gep(c, p.col, ci(c, p.ckk * p.cols));
    return p;
}

/* dst[o][j*ohw + q] = src_(img0+j)[o][q] for the chunk, or the reverse. */
static void gather_chunk(sc_codegen *c, const conv_plan *p, LLVMValueRef nchw, LLVMValueRef img0, LLVMValueRef t,
                         int to_nchw)
{
    loop Lj, Lo, Lq;
    LLVMValueRef j = loop_begin(c, &Lj, p->nb);
    LLVMValueRef img = gep(c, nchw, imul(c, iadd(c, img0, j), ci(c, p->o * p->ohw)));
    LLVMValueRef o = loop_begin(c, &Lo, p->o);
    LLVMValueRef a = gep(c, img, imul(c, o, ci(c, p->ohw)));
    LLVMValueRef b = gep(c, t, iadd(c, imul(c, o, ci(c, p->cols)), imul(c, j, ci(c, p->ohw))));
    LLVMValueRef q = loop_begin(c, &Lq, p->ohw);
    if (to_nchw)
        st(c, a, q, ld(c, b, q));
    else
        st(c, b, q, ld(c, a, q));
    loop_end(c, &Lq);
    loop_end(c, &Lo);
    loop_end(c, &Lj);
}

/* im2col of every image of the chunk into p->col. */
static void chunk_columns(sc_codegen *c, const conv_plan *p, LLVMValueRef X, LLVMValueRef img0, int reverse)
{
    loop Lj;
    LLVMValueRef j = loop_begin(c, &Lj, p->nb);
    LLVMValueRef xn = gep(c, X, imul(c, iadd(c, img0, j), ci(c, p->g.c * p->g.h * p->g.w)));
    im2col(c, &p->g, xn, gep(c, p->col, imul(c, j, ci(c, p->ohw))), p->cols, reverse);
    loop_end(c, &Lj);
}

/* ---- shift+gemm (convplan.h) ---- */

typedef struct {
    sc_shift_geom s;
    LLVMValueRef xp, t, wt;  /* workspace: padded source, GEMM output, per-tap weights */
} shift_plan;

static shift_plan plan_shift(sc_codegen *c, int i)
{
    shift_plan p;
    p.s = sc_conv_shift_geom(c->g, i, c->mp->opts.threads);
    p.xp = workspace(c, i);
    p.t = gep(c, p.xp, ci(c, p.s.cs * p.s.stride));
    p.wt = gep(c, p.t, ci(c, p.s.cd * p.s.stride));
    snprintf(c->impl, sizeof c->impl, "shift+gemm x%lld", (long long)p.s.nb);
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
static void lower_conv_shift(sc_codegen *c, int i, int flip)
{
    const sc_node *n = &c->g->n[i];
    shift_plan p = plan_shift(c, i);
    LLVMValueRef SRC = tensor(c, n->in[0]), W = tensor(c, n->in[1]), DST = tensor(c, n->out[0]);
    shift_weights(c, &p.s, W, p.wt, flip);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &Ln, p.s.n / p.s.nb);
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
    loop_end(c, &Ln);
}

/* Weight gradient by shifted GEMMs: dW[tap] += dy_grid . xp_shifted^T per
 * chunk into per-tap sums, then rearranged into target's [O][C][k][k]. */
static void shift_bwd_weight(sc_codegen *c, int i, LLVMValueRef DY, LLVMValueRef X, LLVMValueRef target)
{
    shift_plan p = plan_shift(c, i);
    const sc_shift_geom *s = &p.s; /* src x: cs = C; dst dy: cd = O */
    LLVMValueRef dyg = p.t, acc = p.wt;
    int64_t kk = s->k * s->k;
    loop Ln, Lt;
    LLVMValueRef chunk = par_loop(c, &Ln, s->n / s->nb);
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

static int conv_shift(sc_codegen *c, int i)
{
    return sc_conv_choose(c->g, i, &c->mp->opts) == SC_CONV_SHIFT;
}

void sc_cg_lower_conv(sc_codegen *c, int i)
{
    if (conv_shift(c, i)) {
        lower_conv_shift(c, i, 0);
        return;
    }
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]], *w = &c->g->t[n->in[1]], *y = &c->g->t[n->out[0]];
    conv_plan p = plan_conv(c, i, x, y, w->shape[0]);
    LLVMValueRef X = tensor(c, n->in[0]), W = tensor(c, n->in[1]), Y = tensor(c, n->out[0]);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &Ln, p.n / p.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.nb));
    if (p.direct) {
        LLVMValueRef xn = gep(c, X, imul(c, img0, ci(c, p.g.c * p.g.h * p.g.w)));
        LLVMValueRef yn = gep(c, Y, imul(c, img0, ci(c, p.o * p.ohw)));
        sgemm(c, 0, 0, p.o, p.ohw, p.g.c, W, p.g.c, xn, p.ohw, cf(c, 0), yn, p.ohw);
    } else if (p.nb == 1) {
        LLVMValueRef yn = gep(c, Y, imul(c, img0, ci(c, p.o * p.ohw)));
        chunk_columns(c, &p, X, img0, 0);
        sgemm(c, 0, 0, p.o, p.ohw, p.ckk, W, p.ckk, p.col, p.ohw, cf(c, 0), yn, p.ohw);
    } else {
        chunk_columns(c, &p, X, img0, 0);
        sgemm(c, 0, 0, p.o, p.cols, p.ckk, W, p.ckk, p.col, p.cols, cf(c, 0), p.t, p.cols);
        gather_chunk(c, &p, Y, img0, p.t, 1);
    }
    if (n->nin > 2) {
        LLVMValueRef B = tensor(c, n->in[2]);
        loop Lj, Lo, Lp;
        LLVMValueRef j = loop_begin(c, &Lj, p.nb);
        LLVMValueRef yn = gep(c, Y, imul(c, iadd(c, img0, j), ci(c, p.o * p.ohw)));
        LLVMValueRef oc = loop_begin(c, &Lo, p.o);
        LLVMValueRef bv = ld(c, B, oc);
        LLVMValueRef row = gep(c, yn, imul(c, oc, ci(c, p.ohw)));
        LLVMValueRef q = loop_begin(c, &Lp, p.ohw);
        st(c, row, q, fadd(c, ld(c, row, q), bv));
        loop_end(c, &Lp);
        loop_end(c, &Lo);
        loop_end(c, &Lj);
    }
    loop_end(c, &Ln);
}

void sc_cg_lower_conv_bwd_data(sc_codegen *c, int i)
{
    if (conv_shift(c, i)) {
        lower_conv_shift(c, i, 1);
        return;
    }
    const sc_node *n = &c->g->n[i];
    const sc_tensor *dy = &c->g->t[n->in[0]], *w = &c->g->t[n->in[1]], *dx = &c->g->t[n->out[0]];
    conv_plan p = plan_conv(c, i, dx, dy, w->shape[0]);
    LLVMValueRef DY = tensor(c, n->in[0]), W = tensor(c, n->in[1]), DX = tensor(c, n->out[0]);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &Ln, p.n / p.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.nb));
    int64_t chw = p.g.c * p.g.h * p.g.w;
    if (!p.direct) /* col2im accumulates into the chunk's images */
        zero(c, gep(c, DX, imul(c, img0, ci(c, chw))), p.nb * chw);
    if (p.direct) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, p.o * p.ohw)));
        LLVMValueRef dxn = gep(c, DX, imul(c, img0, ci(c, p.g.c * p.g.h * p.g.w)));
        sgemm(c, 1, 0, p.g.c, p.ohw, p.o, W, p.g.c, dyn, p.ohw, cf(c, 0), dxn, p.ohw);
    } else if (p.nb == 1) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, p.o * p.ohw)));
        sgemm(c, 1, 0, p.ckk, p.ohw, p.o, W, p.ckk, dyn, p.ohw, cf(c, 0), p.col, p.ohw);
        chunk_columns(c, &p, DX, img0, 1);
    } else {
        gather_chunk(c, &p, DY, img0, p.t, 0);
        sgemm(c, 1, 0, p.ckk, p.cols, p.o, W, p.ckk, p.t, p.cols, cf(c, 0), p.col, p.cols);
        chunk_columns(c, &p, DX, img0, 1);
    }
    loop_end(c, &Ln);
}

void sc_cg_lower_conv_bwd_weight(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *dy = &c->g->t[n->in[0]], *x = &c->g->t[n->in[1]], *dw = &c->g->t[n->out[0]];
    int threads = c->mp->opts.threads;
    LLVMValueRef DY = tensor(c, n->in[0]), X = tensor(c, n->in[1]), DW = tensor(c, n->out[0]);
    int64_t used, stride = ws_stride(c, i, &used), part_at = used - dw->numel;
    c->nphases = threads > 1 ? 2 : 1;
    if (c->phase == 1) {
        /* dW += the other threads' partial sums, in blocks over threads */
        enum { BLOCK = 4096 };
        snprintf(c->impl, sizeof c->impl, "sum of partials");
        LLVMValueRef T = runtime_threads(c);
        loop Lb, Lt, Lk;
        LLVMValueRef blk = par_loop(c, &Lb, (dw->numel + BLOCK - 1) / BLOCK);
        LLVMValueRef k0 = imul(c, blk, ci(c, BLOCK));
        LLVMValueRef k1 = imin(c, iadd(c, k0, ci(c, BLOCK)), ci(c, dw->numel));
        LLVMValueRef t = loop_range(c, &Lt, ci(c, 1), T);
        LLVMValueRef part = gep(c, c->arg_ws, iadd(c, imul(c, t, ci(c, stride)), ci(c, part_at)));
        LLVMValueRef k = loop_range(c, &Lk, k0, k1);
        st(c, DW, k, fadd(c, ld(c, DW, k), ld(c, part, k)));
        loop_end(c, &Lk);
        loop_end(c, &Lt);
        loop_end(c, &Lb);
        return;
    }
    conv_plan p = plan_conv(c, i, x, dy, dw->shape[0]);
    /* Thread 0 sums its chunks into dW, the others into their partials. */
    LLVMValueRef target = DW;
    if (threads > 1) {
        LLVMValueRef part = gep(c, workspace(c, i), ci(c, part_at));
        target = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, c->arg_tid, ci(c, 0), ""), DW, part, "");
        branch Be;
        if_begin(c, &Be, LLVMBuildICmp(c->b, LLVMIntEQ, c->arg_lo, c->arg_hi, ""));
        zero(c, target, dw->numel);
        if_end(c, &Be);
    }
    DW = target;
    if (conv_shift(c, i)) {
        shift_bwd_weight(c, i, DY, X, DW);
        return;
    }
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &Ln, p.n / p.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.nb));
    /* The slice's first chunk overwrites, the others accumulate. */
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, c->arg_lo, ""), cf(c, 0), cf(c, 1), "");
    if (p.direct) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, p.o * p.ohw)));
        LLVMValueRef xn = gep(c, X, imul(c, img0, ci(c, p.g.c * p.g.h * p.g.w)));
        sgemm(c, 0, 1, p.o, p.g.c, p.ohw, dyn, p.ohw, xn, p.ohw, beta, DW, p.g.c);
    } else if (p.nb == 1) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, p.o * p.ohw)));
        chunk_columns(c, &p, X, img0, 0);
        sgemm(c, 0, 1, p.o, p.ckk, p.ohw, dyn, p.ohw, p.col, p.ohw, beta, DW, p.ckk);
    } else {
        gather_chunk(c, &p, DY, img0, p.t, 0);
        chunk_columns(c, &p, X, img0, 0);
        sgemm(c, 0, 1, p.o, p.ckk, p.cols, p.t, p.cols, p.col, p.cols, beta, DW, p.ckk);
    }
    loop_end(c, &Ln);
}
