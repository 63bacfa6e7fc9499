/* Lowering of pooling: max and average pooling, global average pooling,
 * and their gradients. */
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
    LLVMValueRef X, DX, best, arg, g;
} poolctx;

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

sc_lowered sc_cg_lower_pool(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_MAXPOOL_BWD || n->op == SC_OP_AVGPOOL_BWD;
    int max = n->op == SC_OP_MAXPOOL || n->op == SC_OP_MAXPOOL_BWD;
    /* forward x/y shapes */
    const sc_tensor *x = bwd ? &c->g->t[n->out[0]] : &c->g->t[n->in[0]];
    const sc_tensor *y = bwd ? &c->g->t[n->in[0]] : &c->g->t[n->out[0]];
    int64_t H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3], K = n->kernel;
    poolctx q = {0};
    q.X = max && bwd ? tensor(c, n->in[1]) : bwd ? NULL : tensor(c, n->in[0]);
    LLVMValueRef Y = bwd ? tensor(c, n->in[0]) : tensor(c, n->out[0]); /* y or dy */
    q.DX = bwd ? tensor(c, n->out[0]) : NULL;
    q.best = var(c, c->elt, cf(c, 0));
    q.arg = var(c, c->i64, ci(c, 0));
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
        /* Start from the first in-bounds element (pad <= kernel/2 makes
         * one exist). */
        LLVMValueRef first = iadd(c, xoff, mad(c, imax(c, h0, ci(c, 0)), W, imax(c, w0, ci(c, 0))));
        set(c, q.best, ld(c, q.X, first));
        for_window(c, xoff, h0, w0, K, H, W, win_max, &q);
        if (bwd) {
            /* The first element equal to the maximum, in straight-line
             * code: taps in reverse scan order, each a select, so no
             * branch depends on the data; out-of-bounds taps read the
             * first element and never hit. NaN equals nothing: its
             * gradient goes to the first element. */
            LLVMValueRef a = first, best = get(c, q.best, c->elt);
            for (int64_t t = K * K - 1; t >= 0; t--) {
                LLVMValueRef ih = iadd(c, h0, ci(c, t / K)), iw = iadd(c, w0, ci(c, t % K));
                LLVMValueRef ok = LLVMBuildAnd(
                    c->b,
                    LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                 LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, H), ""), ""),
                    LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, iw, ci(c, 0), ""),
                                 LLVMBuildICmp(c->b, LLVMIntSLT, iw, ci(c, W), ""), ""),
                    "");
                LLVMValueRef xi = LLVMBuildSelect(c->b, ok, iadd(c, xoff, mad(c, ih, W, iw)), first, "");
                LLVMValueRef hit = LLVMBuildAnd(c->b, ok, LLVMBuildFCmp(c->b, LLVMRealOEQ, ld(c, q.X, xi), best, ""), "");
                a = LLVMBuildSelect(c->b, hit, xi, a, "");
            }
            st(c, q.DX, a, fadd(c, ld(c, q.DX, a), ld(c, Y, yi)));
        } else
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
