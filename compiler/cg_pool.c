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

/* The reference's (PyTorch's) rule, for every max-pool kernel: the
 * maximum moves to v where v is strictly greater or NaN, so ties go to
 * the first tap and a NaN in the window wins. */
static LLVMValueRef max_moves(sc_codegen *c, LLVMValueRef v, LLVMValueRef best)
{
    return LLVMBuildOr(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, v, best, ""), LLVMBuildFCmp(c->b, LLVMRealUNO, v, v, ""),
                       "");
}

/* The scalar forward (kernels or strides past SEPARABLE_MAX_TAPS only):
 * the reference's rule from the first in-bounds element. */
static void win_max(sc_codegen *c, LLVMValueRef xi, void *p)
{
    poolctx *q = p;
    LLVMValueRef v = ld(c, q->X, xi), b = get(c, q->best, c->elt);
    set(c, q->best, LLVMBuildSelect(c->b, max_moves(c, v, b), v, b, ""));
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
 * backward finds the argmax this way (from x: no extra buffer) and then
 * gathers (below) or, for a plane too large, scatters dy into dx, in
 * the order of the reference's scan of the outputs, so the sums round
 * alike. */
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

/* Per lane (output column), the code of the window's first in-bounds
 * tap in row kh0, where the reference's scan starts. */
static LLVMValueRef first_tap(sc_codegen *c, const mpool *m, LLVMValueRef lane, LLVMValueRef kh0)
{
    LLVMValueRef kw0 = LLVMBuildSub(c->b, splat(c, m->it, ci(c, m->P)),
                                    LLVMBuildMul(c->b, lane, splat(c, m->it, ci(c, m->S)), ""), "");
    kw0 = LLVMBuildSelect(c->b, vcmp(c, LLVMIntSGT, kw0, LLVMConstNull(m->it)), kw0, LLVMConstNull(m->it), "");
    return LLVMBuildAdd(c->b, LLVMBuildTrunc(c->b, kw0, m->ct, ""),
                        splat(c, m->ct, LLVMBuildTrunc(c->b, imul(c, kh0, ci(c, m->K)), c->i32, "")), "");
}

/* The argmax of each window of a chunk, outputs (oh, ow0 .. ow0+V-1) of
 * the plane at xoff: code kh*K + kw per lane; *lane_ok says which lanes
 * are outputs. */
static LLVMValueRef chunk_argmax(sc_codegen *c, const mpool *m, LLVMValueRef X, LLVMValueRef xoff, LLVMValueRef oh,
                                 LLVMValueRef ow0, LLVMValueRef *lane_ok)
{
    LLVMValueRef h0 = isub(c, imul(c, oh, ci(c, m->S)), ci(c, m->P));
    LLVMValueRef c0 = isub(c, imul(c, ow0, ci(c, m->S)), ci(c, m->P)); /* span's first column */
    LLVMValueRef lane = LLVMBuildAdd(c->b, splat(c, m->it, ow0), iota(c, m->V), "");
    *lane_ok = vcmp(c, LLVMIntSLT, lane, splat(c, m->it, ci(c, m->OW)));
    LLVMValueRef col = LLVMBuildAdd(c->b, splat(c, m->lt, c0), iota(c, m->L), "");
    LLVMValueRef col_ok = LLVMBuildAnd(c->b, vcmp(c, LLVMIntSGE, col, LLVMConstNull(m->lt)),
                                       vcmp(c, LLVMIntSLT, col, splat(c, m->lt, ci(c, m->W))), "");
    LLVMValueRef code = first_tap(c, m, lane, imax(c, isub(c, ci(c, 0), h0), ci(c, 0)));
    LLVMValueRef best = splat(c, m->vt, neg_inf(c));
    for (int64_t kh = 0; kh < m->K; kh++) {
        LLVMValueRef mask, at = span_row(c, m, xoff, h0, c0, col_ok, kh, &mask);
        /* a plain GEP: the span may start before the tensor (masked off) */
        LLVMValueRef span =
            span_load(c, m, LLVMBuildGEP2(c->b, c->elt, X, &at, 1, ""), mask, splat(c, m->st, neg_inf(c)));
        for (int64_t kw = 0; kw < m->K; kw++) {
            LLVMValueRef v = pick(c, m, span, kw);
            /* PyTorch's rule: move on strictly greater or NaN */
            LLVMValueRef up = max_moves(c, v, best);
            best = LLVMBuildSelect(c->b, up, v, best, "");
            code = LLVMBuildSelect(c->b, up, splat(c, m->ct, LLVMConstInt(c->i32, (unsigned)(kh * m->K + kw), 0)),
                                   code, "");
        }
    }
    return code;
}

/* The scatter form, for planes too large for the gather's scratch: one
 * chunk adds its dy into the dx spans its windows cover (dx zeroed
 * beforehand). */
static void scatter_chunk(sc_codegen *c, const mpool *m, LLVMValueRef X, LLVMValueRef Y, LLVMValueRef DX,
                          LLVMValueRef xoff, LLVMValueRef yoff, LLVMValueRef oh, LLVMValueRef ow0)
{
    LLVMValueRef lane_ok, code = chunk_argmax(c, m, X, xoff, oh, ow0, &lane_ok);
    LLVMValueRef h0 = isub(c, imul(c, oh, ci(c, m->S)), ci(c, m->P));
    LLVMValueRef c0 = isub(c, imul(c, ow0, ci(c, m->S)), ci(c, m->P));
    LLVMValueRef col = LLVMBuildAdd(c->b, splat(c, m->lt, c0), iota(c, m->L), "");
    LLVMValueRef col_ok = LLVMBuildAnd(c->b, vcmp(c, LLVMIntSGE, col, LLVMConstNull(m->lt)),
                                       vcmp(c, LLVMIntSLT, col, splat(c, m->lt, ci(c, m->W))), "");
    LLVMValueRef yat = iadd(c, yoff, iadd(c, imul(c, oh, ci(c, m->OW)), ow0));
    LLVMValueRef g = mload(c, m->vt, gep(c, Y, yat), lane_ok, LLVMConstNull(m->vt));
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

/* ---- max pooling backward, gathered ----
 * Per plane, two passes. The first finds every window's argmax
 * (row_argmax, col_argmax) and keeps code and dy per output in a scratch
 * on the stack, rows of rs entries, output ow at entry e + ow, the entries
 * around them code -1 (never hit) and dy 0. The second writes each dx
 * row once, in blocks of V*S columns from column b*V*S - P, the columns
 * of outputs b*V .. b*V + V - 1's first S taps; the windows that reach a
 * block are outputs b*V - e .. b*V + V - 1 (gather_row). No zeroing, no
 * read of dx, and every input row is written whole (zeros where no
 * window reaches). Sums run in the reference's order: output rows
 * upwards, then columns ow upwards. */
typedef struct {
    int64_t e;   /* outputs left of a block's first whose windows reach it */
    int64_t nr;  /* output rows that can cover one input row */
    int64_t nw;  /* chunks of V outputs per output row (first pass) */
    int64_t nb;  /* blocks per input row (second pass) */
    int64_t rs;  /* scratch entries per output row */
    unsigned bl; /* block columns, V*S */
} gplan;

/* the largest scratch (a plane's row maxima, codes and dy) put on the stack */
#define GATHER_SCRATCH_MAX (256 << 10)
/* the most output rows per input row, and the largest stride, unrolled */
#define GATHER_MAX_TAPS 8

static int gather_plan(const mpool *m, int64_t OH, int esz, gplan *p)
{
    p->e = (m->K - 1) / m->S;
    p->nr = (m->K + m->S - 1) / m->S;
    p->nw = (m->OW + m->V - 1) / m->V;
    p->bl = (unsigned)(m->V * m->S);
    p->nb = (m->W + m->P + p->bl - 1) / p->bl;
    p->rs = p->e + (p->nb > p->nw ? p->nb : p->nw) * m->V;
    int64_t bytes = (OH * p->rs + m->H * p->nw * m->V) * (4 + esz);
    return p->nr <= GATHER_MAX_TAPS && m->S <= GATHER_MAX_TAPS && bytes <= GATHER_SCRATCH_MAX;
}

static LLVMValueRef vload(sc_codegen *c, LLVMTypeRef vt, LLVMValueRef p, unsigned align)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, vt, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static void vstore(sc_codegen *c, LLVMValueRef v, LLVMValueRef p, unsigned align)
{
    LLVMSetAlignment(LLVMBuildStore(c->b, v, p), align);
}

static LLVMValueRef gep_t(sc_codegen *c, LLVMTypeRef t, LLVMValueRef p, LLVMValueRef at)
{
    return LLVMBuildGEP2(c->b, t, p, &at, 1, "");
}

/* The first pass, separable: per input row, each output column's
 * maximum over its K taps of that row and the tap (row_argmax); then per
 * output row, the K rows' maxima combined (col_argmax). x is read once,
 * row after row. Exact: the reference's scan, kh-major, moves on strictly
 * greater or NaN; over one row from -inf it ends at the row's last NaN,
 * else its first maximum, and moving to that on the same rule from the
 * rows before gives what the scan gives. */
static void row_argmax(sc_codegen *c, const mpool *m, const gplan *p, LLVMValueRef X, LLVMValueRef hv,
                       LLVMValueRef hk, LLVMValueRef xoff, LLVMValueRef ih)
{
    unsigned ea = c->f64_elements ? 8 : 4;
    loop Lw;
    LLVMValueRef w = loop_begin(c, &Lw, p->nw);
    LLVMValueRef ow0 = imul(c, w, ci(c, m->V));
    LLVMValueRef c0 = isub(c, imul(c, ow0, ci(c, m->S)), ci(c, m->P));
    LLVMValueRef col = LLVMBuildAdd(c->b, splat(c, m->lt, c0), iota(c, m->L), "");
    LLVMValueRef col_ok = LLVMBuildAnd(c->b, vcmp(c, LLVMIntSGE, col, LLVMConstNull(m->lt)),
                                       vcmp(c, LLVMIntSLT, col, splat(c, m->lt, ci(c, m->W))), "");
    LLVMValueRef lane = LLVMBuildAdd(c->b, splat(c, m->it, ow0), iota(c, m->V), "");
    LLVMValueRef code = first_tap(c, m, lane, ci(c, 0));
    LLVMValueRef at = iadd(c, xoff, iadd(c, imul(c, ih, ci(c, m->W)), c0));
    LLVMValueRef span =
        span_load(c, m, LLVMBuildGEP2(c->b, c->elt, X, &at, 1, ""), col_ok, splat(c, m->st, neg_inf(c)));
    LLVMValueRef best = splat(c, m->vt, neg_inf(c));
    for (int64_t kw = 0; kw < m->K; kw++) {
        LLVMValueRef v = pick(c, m, span, kw);
        LLVMValueRef up = max_moves(c, v, best);
        best = LLVMBuildSelect(c->b, up, v, best, "");
        code = LLVMBuildSelect(c->b, up, splat(c, m->ct, LLVMConstInt(c->i32, (unsigned)kw, 0)), code, "");
    }
    LLVMValueRef hat = iadd(c, imul(c, ih, ci(c, p->nw * m->V)), ow0);
    vstore(c, best, gep_t(c, c->elt, hv, hat), ea);
    vstore(c, code, gep_t(c, c->i32, hk, hat), 4);
    loop_end(c, &Lw);
}

static void col_argmax(sc_codegen *c, const mpool *m, const gplan *p, LLVMValueRef Y, LLVMValueRef hv,
                       LLVMValueRef hk, LLVMValueRef codes, LLVMValueRef gs, LLVMValueRef yoff, LLVMValueRef oh)
{
    unsigned ea = c->f64_elements ? 8 : 4;
    LLVMValueRef h0 = isub(c, imul(c, oh, ci(c, m->S)), ci(c, m->P));
    LLVMValueRef kh0 = imax(c, isub(c, ci(c, 0), h0), ci(c, 0));
    loop Lw;
    LLVMValueRef w = loop_begin(c, &Lw, p->nw);
    LLVMValueRef ow0 = imul(c, w, ci(c, m->V));
    LLVMValueRef lane = LLVMBuildAdd(c->b, splat(c, m->it, ow0), iota(c, m->V), "");
    LLVMValueRef lane_ok = vcmp(c, LLVMIntSLT, lane, splat(c, m->it, ci(c, m->OW)));
    LLVMValueRef code = first_tap(c, m, lane, kh0);
    LLVMValueRef best = splat(c, m->vt, neg_inf(c));
    for (int64_t kh = 0; kh < m->K; kh++) {
        LLVMValueRef ih = iadd(c, h0, ci(c, kh));
        LLVMValueRef ok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                       LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, m->H), ""), "");
        LLVMValueRef at = iadd(c, imul(c, imin(c, imax(c, ih, ci(c, 0)), ci(c, m->H - 1)), ci(c, p->nw * m->V)), ow0);
        LLVMValueRef v = vload(c, m->vt, gep_t(c, c->elt, hv, at), ea);
        v = LLVMBuildSelect(c->b, ok, v, splat(c, m->vt, neg_inf(c)), ""); /* a padding row never wins */
        LLVMValueRef k = LLVMBuildAdd(c->b, vload(c, m->ct, gep_t(c, c->i32, hk, at), 4),
                                      splat(c, m->ct, LLVMConstInt(c->i32, (unsigned)(kh * m->K), 0)), "");
        LLVMValueRef up = max_moves(c, v, best);
        best = LLVMBuildSelect(c->b, up, v, best, "");
        code = LLVMBuildSelect(c->b, up, k, code, "");
    }
    LLVMValueRef g = mload(c, m->vt, gep(c, Y, iadd(c, yoff, iadd(c, imul(c, oh, ci(c, m->OW)), ow0))), lane_ok,
                           LLVMConstNull(m->vt));
    code = LLVMBuildSelect(c->b, lane_ok, code, LLVMConstAllOnes(m->ct), "");
    LLVMValueRef at = iadd(c, imul(c, oh, ci(c, p->rs)), iadd(c, ow0, ci(c, p->e)));
    vstore(c, code, gep_t(c, c->i32, codes, at), 4);
    vstore(c, g, gep_t(c, c->elt, gs, at), ea);
    loop_end(c, &Lw);
}

/* Lane j of the S vectors acc[t] to block column j*S + t. */
static LLVMValueRef interleave(sc_codegen *c, const mpool *m, LLVMValueRef *acc)
{
    unsigned V = m->V, S = (unsigned)m->S;
    int64_t *idx = malloc(sizeof *idx * V * S);
    if (!idx)
        oom();
    LLVMValueRef cur = acc[0];
    for (unsigned t = 1; t < S; t++) { /* concatenate: acc[0] .. acc[t] */
        for (unsigned q = 0; q < t * V; q++)
            idx[q] = q < V ? (int64_t)q : -1;
        LLVMValueRef wide = LLVMBuildShuffleVector(c->b, acc[t], LLVMGetPoison(m->vt), const_vec(c->i32, idx, t * V), "");
        for (unsigned q = 0; q < (t + 1) * V; q++)
            idx[q] = q;
        cur = LLVMBuildShuffleVector(c->b, cur, wide, const_vec(c->i32, idx, (t + 1) * V), "");
    }
    if (S > 1) {
        for (unsigned q = 0; q < S * V; q++)
            idx[q] = (int64_t)(q % S * V + q / S);
        cur = LLVMBuildShuffleVector(c->b, cur, LLVMGetPoison(LLVMTypeOf(cur)), const_vec(c->i32, idx, S * V), "");
    }
    free(idx);
    return cur;
}

/* The second pass over one input row ih: dx row ih, block by block.
 * Block column j*S + t (t < S) is tap t + d*S of output j - d, for each
 * d >= 0 with a tap that far: per t, the outputs' codes and dy load
 * lane-aligned from entry j0 - d (no shuffle), and the S sums are
 * interleaved at the end. */
static void gather_row(sc_codegen *c, const mpool *m, const gplan *p, int64_t OH, LLVMValueRef DX, LLVMValueRef codes,
                       LLVMValueRef gs, LLVMValueRef xoff, LLVMValueRef ih)
{
    unsigned ea = c->f64_elements ? 8 : 4;
    LLVMTypeRef bc = LLVMVectorType(c->i64, p->bl);
    /* output rows oh_lo .. oh_hi cover row ih */
    LLVMValueRef num = imax(c, iadd(c, ih, ci(c, m->P - m->K + 1)), ci(c, 0));
    LLVMValueRef oh_lo = LLVMBuildSDiv(c->b, iadd(c, num, ci(c, m->S - 1)), ci(c, m->S), "");
    LLVMValueRef oh_hi = imin(c, LLVMBuildSDiv(c->b, iadd(c, ih, ci(c, m->P)), ci(c, m->S), ""), ci(c, OH - 1));
    LLVMValueRef rowat[GATHER_MAX_TAPS], base[GATHER_MAX_TAPS];
    for (int64_t n = 0; n < p->nr; n++) {
        LLVMValueRef oh = iadd(c, oh_lo, ci(c, n));
        LLVMValueRef ok = LLVMBuildICmp(c->b, LLVMIntSLE, oh, oh_hi, "");
        LLVMValueRef ohc = imin(c, oh, ci(c, OH - 1));
        LLVMValueRef kh = isub(c, iadd(c, ih, ci(c, m->P)), imul(c, ohc, ci(c, m->S)));
        /* a row that does not cover ih asks for codes below -1: never there */
        base[n] = LLVMBuildSelect(c->b, ok, LLVMBuildTrunc(c->b, imul(c, kh, ci(c, m->K)), c->i32, ""),
                                  LLVMConstInt(c->i32, (unsigned long long)-(int64_t)(m->K + 2), 1), "");
        rowat[n] = iadd(c, imul(c, ohc, ci(c, p->rs)), ci(c, p->e));
    }
    loop Lb;
    LLVMValueRef b = loop_begin(c, &Lb, p->nb);
    LLVMValueRef j0 = imul(c, b, ci(c, m->V));
    LLVMValueRef acc[GATHER_MAX_TAPS];
    for (int64_t t = 0; t < m->S; t++) {
        acc[t] = LLVMConstNull(m->vt);
        for (int64_t n = 0; n < p->nr; n++)
            for (int64_t d = (m->K - 1 - t) / m->S; t < m->K && d >= 0; d--) {
                LLVMValueRef at = isub(c, iadd(c, rowat[n], j0), ci(c, d));
                LLVMValueRef cv = vload(c, m->ct, gep_t(c, c->i32, codes, at), 4);
                LLVMValueRef gv = vload(c, m->vt, gep_t(c, c->elt, gs, at), ea);
                LLVMValueRef want = LLVMBuildAdd(c->b, base[n], LLVMConstInt(c->i32, (unsigned)(t + d * m->S), 0), "");
                LLVMValueRef hit = vcmp(c, LLVMIntEQ, cv, splat(c, m->ct, want));
                acc[t] = LLVMBuildSelect(c->b, hit, fadd(c, acc[t], gv), acc[t], "");
            }
    }
    LLVMValueRef all = interleave(c, m, acc);
    LLVMValueRef c0 = isub(c, imul(c, b, ci(c, p->bl)), ci(c, m->P));
    LLVMValueRef col = LLVMBuildAdd(c->b, splat(c, bc, c0), const_vec(c->i64, NULL, p->bl), "");
    LLVMValueRef mask = LLVMBuildAnd(c->b, vcmp(c, LLVMIntSGE, col, LLVMConstNull(bc)),
                                     vcmp(c, LLVMIntSLT, col, splat(c, bc, ci(c, m->W))), "");
    LLVMValueRef at = iadd(c, xoff, iadd(c, imul(c, ih, ci(c, m->W)), c0));
    LLVMValueRef dst = gep_t(c, c->elt, DX, at); /* may start before the tensor: masked off */
    for (unsigned k = 0; k < p->bl / m->V; k++) {
        LLVMValueRef off = LLVMConstInt(c->i64, k * m->V, 0);
        mstore(c, m->vt, gep_t(c, c->elt, dst, off), piece(c, m, all, k), piece(c, m, mask, k));
    }
    loop_end(c, &Lb);
}

/* Scratch entries outside the outputs: code -1 and dy 0, once per call. */
static void gather_pads(sc_codegen *c, const mpool *m, const gplan *p, int64_t OH, LLVMValueRef codes, LLVMValueRef gs)
{
    loop Lr;
    LLVMValueRef r = loop_begin(c, &Lr, OH);
    LLVMValueRef row = imul(c, r, ci(c, p->rs));
    for (int64_t j = 0; j < p->rs; j++) {
        if (j == p->e)
            j = p->e + p->nw * m->V;
        if (j >= p->rs)
            break;
        LLVMValueRef at = iadd(c, row, ci(c, j));
        LLVMBuildStore(c->b, LLVMConstAllOnes(c->i32), gep_t(c, c->i32, codes, at));
        LLVMBuildStore(c->b, cf(c, 0), gep_t(c, c->elt, gs, at));
    }
    loop_end(c, &Lr);
}

static sc_lowered lower_maxpool_bwd(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->out[0]], *y = &c->g->t[n->in[0]];
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
    LLVMValueRef X = tensor(c, n->in[1]), Y = tensor(c, n->in[0]), DX = tensor(c, n->out[0]);
    gplan p;
    int gather = gather_plan(&m, OH, c->f64_elements ? 8 : 4, &p);
    sc_lowered res = lowered(gather ? "gather" : "vector");
    LLVMValueRef codes = NULL, gs = NULL, hv = NULL, hk = NULL;
    if (gather) {
        codes = entry_alloca(c, LLVMArrayType2(c->i32, (uint64_t)(OH * p.rs)), 64);
        gs = entry_alloca(c, LLVMArrayType2(c->elt, (uint64_t)(OH * p.rs)), 64);
        hv = entry_alloca(c, LLVMArrayType2(c->elt, (uint64_t)(m.H * p.nw * m.V)), 64);
        hk = entry_alloca(c, LLVMArrayType2(c->i32, (uint64_t)(m.H * p.nw * m.V)), 64);
        gather_pads(c, &m, &p, OH, codes, gs);
    }
    loop Lp, Loh, Lw;
    LLVMValueRef plane = par_loop(c, &res, &Lp, (int64_t)x->shape[0] * x->shape[1]);
    LLVMValueRef xoff = imul(c, plane, ci(c, m.H * m.W));
    LLVMValueRef yoff = imul(c, plane, ci(c, OH * m.OW));
    if (gather) {
        loop Lr;
        LLVMValueRef r = loop_begin(c, &Lr, m.H);
        row_argmax(c, &m, &p, X, hv, hk, xoff, r);
        loop_end(c, &Lr);
        LLVMValueRef oh = loop_begin(c, &Loh, OH);
        col_argmax(c, &m, &p, Y, hv, hk, codes, gs, yoff, oh);
        loop_end(c, &Loh);
        LLVMValueRef ih = loop_begin(c, &Lw, m.H);
        gather_row(c, &m, &p, OH, DX, codes, gs, xoff, ih);
        loop_end(c, &Lw);
    } else {
        zero(c, gep(c, DX, xoff), m.H * m.W); /* windows overlap only within a plane */
        LLVMValueRef oh = loop_begin(c, &Loh, OH);
        LLVMValueRef w = loop_begin(c, &Lw, (m.OW + m.V - 1) / m.V);
        scatter_chunk(c, &m, X, Y, DX, xoff, yoff, oh, imul(c, w, ci(c, m.V)));
        loop_end(c, &Lw);
        loop_end(c, &Loh);
    }
    loop_end(c, &Lp);
    return res;
}

/* ---- max pooling's forward, separable ----
 * Per output row, first the maximum down the K input rows of every column
 * (plain vector loads along x's rows) into a row buffer on the stack,
 * indexed by column + P, whose entries outside the plane stay -inf; then
 * per chunk of V outputs, tap kw of every lane picked out of the buffer
 * at ow0*S + kw (n loads of V, one constant shuffle: lane j at j*S).
 * The rule is the reference's, move on strictly greater or NaN: the
 * value it ends at is NaN if the window holds one, else its maximum, in
 * any order of the taps, so rows first then columns gives the
 * reference's value. */
static LLVMValueRef max_rule(sc_codegen *c, LLVMValueRef best, LLVMValueRef v)
{
    return LLVMBuildSelect(c->b, max_moves(c, v, best), v, best, "");
}

/* the taps unrolled, kernel and stride both within this */
#define SEPARABLE_MAX_TAPS 16

static int maxpool_separable(const sc_node *n)
{
    return n->kernel <= SEPARABLE_MAX_TAPS && n->stride <= SEPARABLE_MAX_TAPS && n->pad >= 0;
}

static sc_lowered lower_maxpool_fwd(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]], *y = &c->g->t[n->out[0]];
    int64_t H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3];
    int64_t K = n->kernel, S = n->stride, P = n->pad;
    unsigned V = (unsigned)sc_cg_gemm_blocking(c, 1, 1, 1).vw, ea = c->f64_elements ? 8 : 4;
    unsigned np = 1; /* loads per tap: V*np elements hold a chunk's V*S */
    while (np < S)
        np *= 2;
    int64_t nw = (OW + V - 1) / V, nc = (W + V - 1) / V;
    int64_t len = nw * V * S + K + np * V;
    if (len < P + nc * V)
        len = P + nc * V;
    LLVMTypeRef vt = LLVMVectorType(c->elt, V), it = LLVMVectorType(c->i64, V);
    LLVMValueRef X = tensor(c, n->in[0]), Y = tensor(c, n->out[0]);
    LLVMValueRef buf = entry_alloca(c, LLVMArrayType2(c->elt, (uint64_t)len), 64);
    LLVMValueRef ninf = splat(c, vt, neg_inf(c));
    sc_lowered res = lowered("separable");
    loop Lz;
    LLVMValueRef z = loop_begin(c, &Lz, len); /* once per call: the borders stay -inf */
    LLVMBuildStore(c->b, neg_inf(c), gep_t(c, c->elt, buf, z));
    loop_end(c, &Lz);
    int64_t *idx = malloc(sizeof *idx * V);
    if (!idx)
        oom();
    for (unsigned j = 0; j < V; j++)
        idx[j] = (int64_t)j * S;
    LLVMValueRef lanes = const_vec(c->i32, idx, V);
    free(idx);
    loop Lp, Loh, Lc, Lw;
    LLVMValueRef plane = par_loop(c, &res, &Lp, (int64_t)x->shape[0] * x->shape[1]);
    LLVMValueRef xoff = imul(c, plane, ci(c, H * W));
    LLVMValueRef yoff = imul(c, plane, ci(c, OH * OW));
    LLVMValueRef oh = loop_begin(c, &Loh, OH);
    LLVMValueRef h0 = isub(c, imul(c, oh, ci(c, S)), ci(c, P));
    /* down the rows: buf[P + col] */
    LLVMValueRef q = loop_begin(c, &Lc, nc);
    LLVMValueRef c0 = imul(c, q, ci(c, V));
    LLVMValueRef col = LLVMBuildAdd(c->b, splat(c, it, c0), iota(c, V), "");
    LLVMValueRef col_ok = vcmp(c, LLVMIntSLT, col, splat(c, it, ci(c, W)));
    LLVMValueRef best = ninf;
    for (int64_t kh = 0; kh < K; kh++) {
        LLVMValueRef ih = iadd(c, h0, ci(c, kh));
        LLVMValueRef row_ok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                           LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, H), ""), "");
        LLVMValueRef ihc = imin(c, imax(c, ih, ci(c, 0)), ci(c, H - 1));
        LLVMValueRef v = mload(c, vt, gep(c, X, iadd(c, xoff, iadd(c, imul(c, ihc, ci(c, W)), c0))), col_ok, ninf);
        best = max_rule(c, best, LLVMBuildSelect(c->b, row_ok, v, ninf, ""));
    }
    mstore(c, vt, gep_t(c, c->elt, buf, iadd(c, c0, ci(c, P))), best, col_ok);
    loop_end(c, &Lc);
    /* along the row: tap kw of output ow at buf[ow*S + kw] */
    LLVMValueRef w = loop_begin(c, &Lw, nw);
    LLVMValueRef ow0 = imul(c, w, ci(c, V));
    LLVMValueRef lane_ok = vcmp(c, LLVMIntSLT, LLVMBuildAdd(c->b, splat(c, it, ow0), iota(c, V), ""),
                                splat(c, it, ci(c, OW)));
    best = ninf;
    for (int64_t kw = 0; kw < K; kw++) {
        LLVMValueRef at = iadd(c, imul(c, ow0, ci(c, S)), ci(c, kw)), parts[64];
        for (unsigned k = 0; k < np; k++)
            parts[k] = vload(c, vt, gep_t(c, c->elt, buf, iadd(c, at, ci(c, (int64_t)k * V))), ea);
        LLVMValueRef span = concat(c, parts, np);
        best = max_rule(c, best, LLVMBuildShuffleVector(c->b, span, LLVMGetPoison(LLVMTypeOf(span)), lanes, ""));
    }
    mstore(c, vt, gep(c, Y, iadd(c, yoff, iadd(c, imul(c, oh, ci(c, OW)), ow0))), best, lane_ok);
    loop_end(c, &Lw);
    loop_end(c, &Loh);
    loop_end(c, &Lp);
    return res;
}

/* ---- average pooling, and max pooling's forward ---- */

sc_lowered sc_cg_lower_pool(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    /* Max pooling's forward is separable (above); the scalar loop below
     * only for kernels or strides past SEPARABLE_MAX_TAPS. The vector
     * chunks of the backward's argmax measured 3x slower there. */
    if (n->op == SC_OP_MAXPOOL_BWD)
        return lower_maxpool_bwd(c, i);
    if (n->op == SC_OP_MAXPOOL && maxpool_separable(n))
        return lower_maxpool_fwd(c, i);
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
