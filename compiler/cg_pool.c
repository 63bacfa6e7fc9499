/* Lowering of pooling: max and average pooling, global average pooling,
 * and their gradients. */
#include <stdlib.h>

#include "cg_builder.h"

/* ---- pooling ---- */

/* The window of output (oh, ow): calls body for every in-bounds input
 * element in scan order, with its index. */
typedef void (*window_fn)(sc_codegen *c, LLVMValueRef xi, void *ctx);

static void for_window(sc_codegen *c, LLVMValueRef xoff, LLVMValueRef h0, LLVMValueRef w0, int64_t K, int64_t H,
                       int64_t W, window_fn body, void *ctx)
{
    loop Lkh, Lkw;
    LLVMValueRef kh = loop_begin(c, &Lkh, K);
    LLVMValueRef kw = loop_begin(c, &Lkw, K);
    LLVMValueRef ih = iadd(c, h0, kh), iw = iadd(c, w0, kw);
    LLVMValueRef ok = LLVMBuildAnd(c->b,
                                   LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                                LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, H), ""), ""),
                                   LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, iw, ci(c, 0), ""),
                                                LLVMBuildICmp(c->b, LLVMIntSLT, iw, ci(c, W), ""), ""),
                                   "");
    branch Bok;
    if_begin(c, &Bok, ok);
    body(c, iadd(c, xoff, mad(c, ih, W, iw)), ctx);
    if_end(c, &Bok);
    loop_end(c, &Lkw);
    loop_end(c, &Lkh);
}

typedef struct {
    LLVMValueRef X, DX, best, g;
} poolctx;

/* Strictly greater, from the first in-bounds element: ties go to the
 * first as in the reference, but a NaN after the first is passed over
 * (the reference's "or NaN" kept LLVM from vectorising the maximum and
 * doubled the kernel's time; the backward follows the reference). */
static void win_max(sc_codegen *c, LLVMValueRef xi, void *p)
{
    poolctx *q = p;
    LLVMValueRef v = ld(c, q->X, xi), b = get(c, q->best, c->elt);
    set(c, q->best, LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, v, b, ""), v, b, ""));
}

static void win_sum(sc_codegen *c, LLVMValueRef xi, void *p)
{
    poolctx *q = p;
    set(c, q->best, fadd(c, get(c, q->best, c->elt), ld(c, q->X, xi)));
}

static void win_spread(sc_codegen *c, LLVMValueRef xi, void *p)
{
    poolctx *q = p;
    st(c, q->DX, xi, fadd(c, ld(c, q->DX, xi), q->g));
}

/* ---- max pooling, vectorised over the output width ----
 * A chunk is V outputs of one row. For each of the K input rows its
 * windows cover, one masked load of the span they read (L elements from
 * column ow0*S - P); tap (kh, kw) of lane j is element j*S + kw of the
 * span, picked out by a constant shuffle. Padding loads as -inf, which
 * never wins, so no branch depends on the position or the data. The
 * backward finds the argmax the same way (from x: no extra buffer) and
 * adds dy into each dx span in registers, in the order of the
 * reference's scan of the outputs, so the sums round alike. */
typedef struct {
    int64_t H, W, OW, K, S, P;
    int64_t span; /* elements of a chunk's span that its taps read */
    unsigned V, L; /* lanes; elements of a span vector: V times a power of 2 */
    LLVMTypeRef vt, st, ct, it, lt; /* <V x elt>, <L x elt>, <V x i32>, <V x i64>, <L x i64> */
} mpool;

static LLVMValueRef intrinsic(sc_codegen *c, const char *name, LLVMTypeRef *over, unsigned nover, LLVMValueRef *args,
                              unsigned nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, over, nover);
    return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, over, nover), fn, args, nargs, "");
}

static LLVMValueRef mload(sc_codegen *c, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef mask, LLVMValueRef pass)
{
    LLVMTypeRef over[2] = {vt, c->ptr};
    LLVMValueRef args[4] = {p, LLVMConstInt(c->i32, c->f64_elements ? 8 : 4, 0), mask, pass};
    return intrinsic(c, "llvm.masked.load", over, 2, args, 4);
}

static void mstore(sc_codegen *c, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef v, LLVMValueRef mask)
{
    LLVMTypeRef over[2] = {vt, c->ptr};
    LLVMValueRef args[4] = {v, p, LLVMConstInt(c->i32, c->f64_elements ? 8 : 4, 0), mask};
    intrinsic(c, "llvm.masked.store", over, 2, args, 4);
}

static LLVMValueRef const_vec(LLVMTypeRef t, const int64_t *idx, unsigned n);

/* Piece k (V elements) of a span vector, or pieces put back together. */
static LLVMValueRef piece(sc_codegen *c, const mpool *m, LLVMValueRef v, unsigned k)
{
    int64_t idx[64];
    for (unsigned j = 0; j < m->V; j++)
        idx[j] = (int64_t)(k * m->V + j);
    return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(LLVMTypeOf(v)), const_vec(c->i32, idx, m->V), "");
}

static LLVMValueRef concat(sc_codegen *c, LLVMValueRef *p, unsigned n)
{
    while (n > 1) {
        unsigned w = LLVMGetVectorSize(LLVMTypeOf(p[0])) * 2;
        int64_t *idx = malloc(sizeof *idx * w);
        if (!idx)
            oom();
        for (unsigned j = 0; j < w; j++)
            idx[j] = j;
        for (unsigned k = 0; k < n / 2; k++)
            p[k] = LLVMBuildShuffleVector(c->b, p[2 * k], p[2 * k + 1], const_vec(c->i32, idx, w), "");
        free(idx);
        n /= 2;
    }
    return p[0];
}

/* Masked load and store of a span, V elements at a time: the target's
 * masked moves take legal vector types only (LLVM scalarises the rest,
 * with a branch per element). Pieces past the span are not touched. */
static LLVMValueRef span_load(sc_codegen *c, const mpool *m, LLVMValueRef p, LLVMValueRef mask, LLVMValueRef pass)
{
    unsigned n = m->L / m->V;
    LLVMValueRef *parts = malloc(sizeof *parts * n);
    if (!parts)
        oom();
    for (unsigned k = 0; k < n; k++) {
        LLVMValueRef pk = piece(c, m, pass, k);
        if ((int64_t)k * m->V < m->span) {
            LLVMValueRef at = LLVMConstInt(c->i64, k * m->V, 0);
            pk = mload(c, m->vt, LLVMBuildGEP2(c->b, c->elt, p, &at, 1, ""), piece(c, m, mask, k), pk);
        }
        parts[k] = pk;
    }
    LLVMValueRef v = concat(c, parts, n);
    free(parts);
    return v;
}

static void span_store(sc_codegen *c, const mpool *m, LLVMValueRef p, LLVMValueRef v, LLVMValueRef mask)
{
    for (unsigned k = 0; k * m->V < m->L && (int64_t)k * m->V < m->span; k++) {
        LLVMValueRef at = LLVMConstInt(c->i64, k * m->V, 0);
        mstore(c, m->vt, LLVMBuildGEP2(c->b, c->elt, p, &at, 1, ""), piece(c, m, v, k), piece(c, m, mask, k));
    }
}

/* (math.h's fadd would clash with the builder's) */
static LLVMValueRef neg_inf(sc_codegen *c) { return LLVMConstReal(c->elt, -__builtin_inf()); }

static LLVMValueRef splat(sc_codegen *c, LLVMTypeRef vt, LLVMValueRef x)
{
    unsigned n = LLVMGetVectorSize(vt);
    LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetPoison(vt), x, LLVMConstInt(c->i32, 0, 0), "");
    return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(c->i32, n)), "");
}

/* A constant vector of n i32 (idx < 0: poison) or, with t = i64, the
 * lane numbers 0 .. n-1. Kernels and spans have no size bound, hence
 * the heap. */
static LLVMValueRef const_vec(LLVMTypeRef t, const int64_t *idx, unsigned n)
{
    LLVMValueRef *e = malloc(sizeof *e * n);
    if (!e)
        oom();
    for (unsigned k = 0; k < n; k++)
        e[k] = !idx ? LLVMConstInt(t, k, 0) : idx[k] < 0 ? LLVMGetPoison(t) : LLVMConstInt(t, (uint64_t)idx[k], 0);
    LLVMValueRef v = LLVMConstVector(e, n);
    free(e);
    return v;
}

static LLVMValueRef iota(sc_codegen *c, unsigned n) { return const_vec(c->i64, NULL, n); }

/* Tap kw of every lane, out of a span (lanes = 1), or the inverse: lane
 * j of v (<V>) at span element j*S + kw, the others zero's first lane. */
static LLVMValueRef shuffle(sc_codegen *c, const mpool *m, LLVMValueRef v, LLVMValueRef zero, int64_t kw, int lanes)
{
    unsigned n = lanes ? m->V : m->L;
    int64_t *idx = malloc(sizeof *idx * n);
    if (!idx)
        oom();
    for (unsigned q = 0; q < n; q++) {
        int64_t d = (int64_t)q - kw;
        idx[q] = lanes ? (int64_t)q * m->S + kw : d >= 0 && d % m->S == 0 && d / m->S < m->V ? d / m->S : m->V;
    }
    LLVMValueRef r = LLVMBuildShuffleVector(c->b, v, zero, const_vec(c->i32, idx, n), "");
    free(idx);
    return r;
}

static LLVMValueRef pick(sc_codegen *c, const mpool *m, LLVMValueRef span, int64_t kw)
{
    return shuffle(c, m, span, LLVMGetPoison(m->st), kw, 1);
}

static LLVMValueRef place(sc_codegen *c, const mpool *m, LLVMValueRef v, LLVMValueRef zero, int64_t kw)
{
    return shuffle(c, m, v, zero, kw, 0);
}

static LLVMValueRef vcmp(sc_codegen *c, LLVMIntPredicate p, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildICmp(c->b, p, a, b, "");
}

/* Input row h0 + kh of the chunk: the offset of its span and the mask of
 * the span's elements inside the plane. A row outside is masked off
 * entirely, its address clamped into the plane all the same. */
static LLVMValueRef span_row(sc_codegen *c, const mpool *m, LLVMValueRef xoff, LLVMValueRef h0, LLVMValueRef c0,
                             LLVMValueRef col_ok, int64_t kh, LLVMValueRef *mask)
{
    LLVMValueRef ih = iadd(c, h0, ci(c, kh));
    LLVMValueRef row_ok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                       LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, m->H), ""), "");
    LLVMValueRef ihc = imin(c, imax(c, ih, ci(c, 0)), ci(c, m->H - 1));
    *mask = LLVMBuildAnd(c->b, col_ok, splat(c, LLVMVectorType(c->i1, m->L), row_ok), "");
    return iadd(c, iadd(c, xoff, imul(c, ihc, ci(c, m->W))), c0);
}

/* One chunk: outputs (oh, ow0 .. ow0+V-1) of the plane at xoff/yoff. */
static void maxpool_chunk(sc_codegen *c, const mpool *m, int bwd, LLVMValueRef X, LLVMValueRef Y, LLVMValueRef DX,
                          LLVMValueRef xoff, LLVMValueRef yoff, LLVMValueRef oh, LLVMValueRef ow0)
{
    LLVMValueRef h0 = isub(c, imul(c, oh, ci(c, m->S)), ci(c, m->P));
    LLVMValueRef c0 = isub(c, imul(c, ow0, ci(c, m->S)), ci(c, m->P)); /* span's first column */
    LLVMValueRef lane = LLVMBuildAdd(c->b, splat(c, m->it, ow0), iota(c, m->V), "");
    LLVMValueRef lane_ok = vcmp(c, LLVMIntSLT, lane, splat(c, m->it, ci(c, m->OW)));
    LLVMValueRef col = LLVMBuildAdd(c->b, splat(c, m->lt, c0), iota(c, m->L), "");
    LLVMValueRef col_ok = LLVMBuildAnd(c->b, vcmp(c, LLVMIntSGE, col, LLVMConstNull(m->lt)),
                                       vcmp(c, LLVMIntSLT, col, splat(c, m->lt, ci(c, m->W))), "");
    /* Each lane starts at its first in-bounds tap, as the reference. */
    LLVMValueRef kw0 = LLVMBuildSub(c->b, splat(c, m->it, ci(c, m->P)),
                                    LLVMBuildMul(c->b, lane, splat(c, m->it, ci(c, m->S)), ""), "");
    kw0 = LLVMBuildSelect(c->b, vcmp(c, LLVMIntSGT, kw0, LLVMConstNull(m->it)), kw0, LLVMConstNull(m->it), "");
    LLVMValueRef kh0 = imax(c, isub(c, ci(c, 0), h0), ci(c, 0));
    LLVMValueRef code = LLVMBuildAdd(c->b, LLVMBuildTrunc(c->b, kw0, m->ct, ""),
                                     splat(c, m->ct, LLVMBuildTrunc(c->b, imul(c, kh0, ci(c, m->K)), c->i32, "")), "");
    LLVMValueRef best = splat(c, m->vt, neg_inf(c));
    for (int64_t kh = 0; kh < m->K; kh++) {
        LLVMValueRef mask, at = span_row(c, m, xoff, h0, c0, col_ok, kh, &mask);
        /* a plain GEP: the span may start before the tensor (masked off) */
        LLVMValueRef span =
            span_load(c, m, LLVMBuildGEP2(c->b, c->elt, X, &at, 1, ""), mask, splat(c, m->st, neg_inf(c)));
        for (int64_t kw = 0; kw < m->K; kw++) {
            LLVMValueRef v = pick(c, m, span, kw);
            /* PyTorch's rule: move on strictly greater or NaN */
            LLVMValueRef up = LLVMBuildOr(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, v, best, ""),
                                          LLVMBuildFCmp(c->b, LLVMRealUNO, v, v, ""), "");
            best = LLVMBuildSelect(c->b, up, v, best, "");
            code = LLVMBuildSelect(c->b, up, splat(c, m->ct, LLVMConstInt(c->i32, (unsigned)(kh * m->K + kw), 0)),
                                   code, "");
        }
    }
    LLVMValueRef yat = iadd(c, yoff, iadd(c, imul(c, oh, ci(c, m->OW)), ow0));
    LLVMValueRef yp = gep(c, Y, yat);
    if (!bwd) {
        mstore(c, m->vt, yp, best, lane_ok);
        return;
    }
    LLVMValueRef g = mload(c, m->vt, yp, lane_ok, LLVMConstNull(m->vt));
    LLVMValueRef none = LLVMConstNull(LLVMVectorType(c->i1, m->V));
    for (int64_t kh = 0; kh < m->K; kh++) {
        LLVMValueRef mask, at = span_row(c, m, xoff, h0, c0, col_ok, kh, &mask);
        LLVMValueRef p = LLVMBuildGEP2(c->b, c->elt, DX, &at, 1, "");
        LLVMValueRef acc = span_load(c, m, p, mask, LLVMConstNull(m->st));
        /* for one dx element and output row, later columns ow hold it at
         * smaller kw: kw downwards adds in the reference's order */
        for (int64_t kw = m->K - 1; kw >= 0; kw--) {
            LLVMValueRef t = splat(c, m->ct, LLVMConstInt(c->i32, (unsigned)(kh * m->K + kw), 0));
            LLVMValueRef hit = LLVMBuildAnd(c->b, vcmp(c, LLVMIntEQ, code, t), lane_ok, "");
            LLVMValueRef at = place(c, m, hit, none, kw);
            acc = LLVMBuildSelect(c->b, at, fadd(c, acc, place(c, m, g, LLVMConstNull(m->vt), kw)), acc, "");
        }
        span_store(c, m, p, acc, mask);
    }
}

static sc_lowered lower_maxpool(sc_codegen *c, int i)
{
    sc_lowered res = lowered("vector");
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_MAXPOOL_BWD;
    const sc_tensor *x = bwd ? &c->g->t[n->out[0]] : &c->g->t[n->in[0]];
    const sc_tensor *y = bwd ? &c->g->t[n->in[0]] : &c->g->t[n->out[0]];
    mpool m = {.H = x->shape[2], .W = x->shape[3], .OW = y->shape[3], .K = n->kernel, .S = n->stride, .P = n->pad};
    int64_t OH = y->shape[2];
    m.V = (unsigned)sc_cg_gemm_blocking(c, 1, 1, 1).vw;
    m.span = (int64_t)(m.V - 1) * m.S + m.K;
    for (m.L = m.V; m.L < m.span; m.L *= 2)
        ;
    m.vt = LLVMVectorType(c->elt, m.V);
    m.st = LLVMVectorType(c->elt, m.L);
    m.ct = LLVMVectorType(c->i32, m.V);
    m.it = LLVMVectorType(c->i64, m.V);
    m.lt = LLVMVectorType(c->i64, m.L);
    LLVMValueRef X = bwd ? tensor(c, n->in[1]) : tensor(c, n->in[0]);
    LLVMValueRef Y = bwd ? tensor(c, n->in[0]) : tensor(c, n->out[0]); /* y or dy */
    LLVMValueRef DX = bwd ? tensor(c, n->out[0]) : NULL;
    loop Lp, Loh, Lw;
    LLVMValueRef plane = par_loop(c, &res, &Lp, (int64_t)x->shape[0] * x->shape[1]);
    LLVMValueRef xoff = imul(c, plane, ci(c, m.H * m.W));
    LLVMValueRef yoff = imul(c, plane, ci(c, OH * m.OW));
    if (bwd) /* windows overlap only within a plane */
        zero(c, gep(c, DX, xoff), m.H * m.W);
    LLVMValueRef oh = loop_begin(c, &Loh, OH);
    LLVMValueRef w = loop_begin(c, &Lw, (m.OW + m.V - 1) / m.V);
    maxpool_chunk(c, &m, bwd, X, Y, DX, xoff, yoff, oh, imul(c, w, ci(c, m.V)));
    loop_end(c, &Lw);
    loop_end(c, &Loh);
    loop_end(c, &Lp);
    return res;
}

/* ---- average pooling, and max pooling's forward ---- */

sc_lowered sc_cg_lower_pool(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    /* The forward stays a scalar loop: the vector chunks measured 3x
     * slower there (bwd: on par), cause not found yet. */
    if (n->op == SC_OP_MAXPOOL_BWD)
        return lower_maxpool(c, i);
    sc_lowered res = lowered("loop");
    int max = n->op == SC_OP_MAXPOOL;
    int bwd = n->op == SC_OP_AVGPOOL_BWD;
    /* forward x/y shapes */
    const sc_tensor *x = bwd ? &c->g->t[n->out[0]] : &c->g->t[n->in[0]];
    const sc_tensor *y = bwd ? &c->g->t[n->in[0]] : &c->g->t[n->out[0]];
    int64_t H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3], K = n->kernel;
    poolctx q = {0};
    q.X = bwd ? NULL : tensor(c, n->in[0]);
    LLVMValueRef Y = bwd ? tensor(c, n->in[0]) : tensor(c, n->out[0]); /* y or dy */
    q.DX = bwd ? tensor(c, n->out[0]) : NULL;
    q.best = var(c, c->elt, cf(c, 0));
    loop Lp, Loh, Low;
    LLVMValueRef plane = par_loop(c, &res, &Lp, (int64_t)x->shape[0] * x->shape[1]);
    LLVMValueRef xoff = imul(c, plane, ci(c, H * W));
    LLVMValueRef yoff = imul(c, plane, ci(c, OH * OW));
    if (bwd) /* windows overlap only within a plane */
        zero(c, gep(c, q.DX, xoff), H * W);
    LLVMValueRef oh = loop_begin(c, &Loh, OH);
    LLVMValueRef ow = loop_begin(c, &Low, OW);
    LLVMValueRef yi = iadd(c, yoff, mad(c, oh, OW, ow));
    LLVMValueRef h0 = isub(c, imul(c, oh, ci(c, n->stride)), ci(c, n->pad));
    LLVMValueRef w0 = isub(c, imul(c, ow, ci(c, n->stride)), ci(c, n->pad));
    if (max) {
        /* pad <= kernel/2 makes an in-bounds element exist */
        LLVMValueRef first = iadd(c, xoff, mad(c, imax(c, h0, ci(c, 0)), W, imax(c, w0, ci(c, 0))));
        set(c, q.best, ld(c, q.X, first));
        for_window(c, xoff, h0, w0, K, H, W, win_max, &q);
        st(c, Y, yi, get(c, q.best, c->elt));
    } else if (!bwd) {
        set(c, q.best, cf(c, 0));
        for_window(c, xoff, h0, w0, K, H, W, win_sum, &q);
        st(c, Y, yi, fmul(c, get(c, q.best, c->elt), cf(c, 1.0 / (double)(K * K))));
    } else {
        q.g = fmul(c, ld(c, Y, yi), cf(c, 1.0 / (double)(K * K)));
        for_window(c, xoff, h0, w0, K, H, W, win_spread, &q);
    }
    loop_end(c, &Low);
    loop_end(c, &Loh);
    loop_end(c, &Lp);
    return res;
}

sc_lowered sc_cg_lower_global_avgpool(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_GLOBAL_AVGPOOL_BWD;
    const sc_tensor *x = bwd ? &c->g->t[n->out[0]] : &c->g->t[n->in[0]];
    int64_t planes = (int64_t)x->shape[0] * x->shape[1], hw = x->numel / planes;
    LLVMValueRef A = tensor(c, n->in[0]), Y = tensor(c, n->out[0]);
    LLVMValueRef acc = var(c, c->f64, cd(c, 0));
    loop Lp, Lk;
    LLVMValueRef p = par_loop(c, &res, &Lp, planes);
    LLVMValueRef off = imul(c, p, ci(c, hw));
    if (!bwd)
        set(c, acc, cd(c, 0));
    LLVMValueRef g = bwd ? fmul(c, ld(c, A, p), cf(c, 1.0 / (double)hw)) : NULL;
    LLVMValueRef k = loop_begin(c, &Lk, hw);
    if (bwd)
        st(c, Y, iadd(c, off, k), g);
    else
        set(c, acc, fadd(c, get(c, acc, c->f64), fext(c, ld(c, A, iadd(c, off, k)))));
    loop_end(c, &Lk);
    if (!bwd)
        st(c, Y, p, ftrunc(c, fdiv(c, get(c, acc, c->f64), cd(c, (double)hw))));
    loop_end(c, &Lp);
    return res;
}
