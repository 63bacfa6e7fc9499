/* Lowering of per-channel reductions: batchnorm (training, eval, backward,
 * running statistics) and the bias gradient.
 *
 * Memory, not arithmetic, bounds these kernels, so each is laid out for
 * passes over memory:
 *   - work items are blocks of cb adjacent channels, so that a pass reads
 *     runs of cb * hw contiguous elements per image (one channel of a 3x3
 *     map alone is 9 floats per image, a cache line shared with the next
 *     channel's and 18 KB from the next image's);
 *   - the spatial loop runs on explicit vectors of VL elements, its
 *     constant tail on narrower ones, sums in double per vector lane;
 *   - training batchnorm takes the mean and the variance from one pass of
 *     shifted sums (x - s, (x - s)^2 about the channel's first element s,
 *     in double), then applies: 2 reads and 1 write of x's size, where
 *     the two-pass variance took 3 reads. Backward reads dy (and the relu
 *     output y when fused) and x twice and writes dx once.
 * Data-parallel builds keep their phases: sums, squared deviations about
 * the mean over all ranks, apply (the shift would have to be shared). */
#include "cg_builder.h"

enum {
    VL = 16,          /* elements per vector: one AVX-512 register of floats */
    RUN = 1024,       /* a block's contiguous run per image, elements, at least */
    MIN_ITEMS = 8,    /* work items a node keeps for the thread pool */
    MAX_CB = 256      /* channels per block: its per-channel arrays are on the stack */
};

/* ---- vectors of width w (1: a scalar) ---- */

static LLVMValueRef splat(sc_codegen *c, LLVMValueRef s, int w)
{
    if (w == 1)
        return s;
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), (unsigned)w);
    LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetUndef(vt), s, LLVMConstInt(c->i32, 0, 0), "");
    return LLVMBuildShuffleVector(c->b, v, LLVMGetUndef(vt), LLVMConstNull(LLVMVectorType(c->i32, (unsigned)w)), "");
}

static LLVMValueRef vext(sc_codegen *c, LLVMValueRef v, int w)
{
    return c->f64_elements ? v : LLVMBuildFPExt(c->b, v, vty(c->f64, w), "");
}

/* The sum of a double vector's lanes (any order: reassociation allowed). */
static LLVMValueRef hsum(sc_codegen *c, LLVMValueRef v, int w)
{
    if (w == 1)
        return v;
    LLVMTypeRef vt = LLVMTypeOf(v);
    unsigned id = LLVMLookupIntrinsicID("llvm.vector.reduce.fadd", strlen("llvm.vector.reduce.fadd"));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, &vt, 1);
    LLVMTypeRef ft = LLVMIntrinsicGetType(c->ctx, id, &vt, 1);
    LLVMValueRef args[2] = {cd(c, 0), v};
    return fmf(LLVMBuildCall2(c->b, ft, fn, args, 2, ""));
}

/* An array of n values of type t on the kernel's stack frame. */
static LLVMValueRef stack_array(sc_codegen *c, LLVMTypeRef t, int64_t n)
{
    return entry_alloca(c, LLVMArrayType2(t, (uint64_t)n), 64);
}

static LLVMValueRef elem_ptr(sc_codegen *c, LLVMTypeRef t, LLVMValueRef a, LLVMValueRef j)
{
    return LLVMBuildInBoundsGEP2(c->b, t, a, &j, 1, "");
}

static LLVMValueRef aget(sc_codegen *c, LLVMTypeRef t, LLVMValueRef a, LLVMValueRef j)
{
    return LLVMBuildLoad2(c->b, t, elem_ptr(c, t, a, j), "");
}

static void aset(sc_codegen *c, LLVMValueRef a, LLVMValueRef j, LLVMValueRef v)
{
    LLVMBuildStore(c->b, v, elem_ptr(c, LLVMTypeOf(v), a, j));
}

/* ---- passes over a block of channels ---- */

/* [N, C, hw] in work items of cb adjacent channels; c0 is the item's first. */
typedef struct {
    int64_t n, ch, hw, cb;
    LLVMValueRef c0;
} geom;

static geom geometry(const sc_tensor *t)
{
    geom g = {.n = t->shape[0], .ch = t->shape[1]};
    g.hw = t->numel / (g.n * g.ch);
    g.cb = 1;
    while (g.cb * g.hw < RUN && 2 * g.cb <= MAX_CB && g.ch % (2 * g.cb) == 0 && g.ch / (2 * g.cb) >= MIN_ITEMS)
        g.cb *= 2;
    return g;
}

/* The block's loop: a work item of the parallel loop. */
static void begin_block(sc_codegen *c, sc_lowered *res, loop *L, geom *g)
{
    g->c0 = imul(c, par_loop(c, res, L, g->ch / g->cb), ci(c, g->cb));
    snprintf(res->impl, sizeof res->impl, "vector x%d, %lld ch/item", VL, (long long)g->cb);
}

typedef struct {
    int relu;                       /* fused: relu after the apply, or the relu mask on dy */
    LLVMValueRef x, dy, y, dx;      /* tensors; y is the relu output in the fused backward */
    LLVMValueRef r;                 /* batchnorm+add+relu: the residual added before the relu */
    LLVMValueRef a1, a2, a3, a4;    /* [cb] per-channel constants of the block */
    LLVMValueRef k1, k2, k3, k4;    /* the current channel's, set by the pass's prep */
} bnctx;

/* A pass over a block: prep once per (image, channel j of the block), then
 * body for each run of w elements from idx, giving nterms double terms to
 * sum into the [cb] double arrays sums (nterms 0: it stores instead). */
typedef struct {
    void (*prep)(sc_codegen *c, bnctx *b, LLVMValueRef j);
    void (*body)(sc_codegen *c, bnctx *b, LLVMValueRef idx, int w, LLVMValueRef *terms);
    int nterms;
    LLVMValueRef sums[2];
} pass;

/* A w-lane double vector in the first lanes of a VL-lane one, zeros after. */
static LLVMValueRef widen(sc_codegen *c, LLVMValueRef v, int w)
{
    LLVMTypeRef vd = LLVMVectorType(c->f64, VL);
    if (w == 1)
        return LLVMBuildInsertElement(c->b, LLVMConstNull(vd), v, LLVMConstInt(c->i32, 0, 0), "");
    LLVMValueRef idx[VL];
    for (int q = 0; q < VL; q++)
        idx[q] = LLVMConstInt(c->i32, (unsigned)(q < w ? q : w), 0);
    return LLVMBuildShuffleVector(c->b, v, LLVMConstNull(LLVMTypeOf(v)), LLVMConstVector(idx, VL), "");
}

/* The sums run per channel in VL double lanes (acc, [cb] vectors on the
 * stack), the tail's terms in the first lanes, and fold to one double per
 * channel after the pass: no horizontal sum per (image, channel), which
 * cost more than the data at 3x3 maps (9 elements: two of them per term). */
static void run_pass(sc_codegen *c, const geom *g, bnctx *b, const pass *p)
{
    LLVMTypeRef vd = LLVMVectorType(c->f64, VL);
    int64_t nvec = g->hw / VL, tail = g->hw % VL;
    LLVMValueRef acc[2], accv[2], terms[2];
    for (int t = 0; t < p->nterms; t++) {
        acc[t] = stack_array(c, vd, g->cb);
        LLVMBuildMemSet(c->b, acc[t], LLVMConstInt(LLVMInt8TypeInContext(c->ctx), 0, 0), ci(c, 8 * VL * g->cb), 64);
        accv[t] = var(c, vd, LLVMConstNull(vd));
    }
    loop Ln, Lj, Lk;
    LLVMValueRef img = loop_begin(c, &Ln, g->n);
    LLVMValueRef j = loop_begin(c, &Lj, g->cb);
    LLVMValueRef base = imul(c, iadd(c, mad(c, img, g->ch, g->c0), j), ci(c, g->hw));
    if (p->prep)
        p->prep(c, b, j);
    for (int t = 0; t < p->nterms; t++)
        set(c, accv[t], aget(c, vd, acc[t], j));
    if (nvec) {
        LLVMValueRef k = loop_begin(c, &Lk, nvec);
        p->body(c, b, mad(c, k, VL, base), VL, terms);
        for (int t = 0; t < p->nterms; t++)
            set(c, accv[t], fadd(c, get(c, accv[t], vd), terms[t]));
        loop_end(c, &Lk);
    }
    /* the constant tail in halving widths: 9 = 8 + 1 */
    int64_t off = nvec * VL;
    for (int w = VL / 2; w >= 1; w /= 2)
        if (tail & w) {
            p->body(c, b, iadd(c, base, ci(c, off)), w, terms);
            for (int t = 0; t < p->nterms; t++)
                set(c, accv[t], fadd(c, get(c, accv[t], vd), widen(c, terms[t], w)));
            off += w;
        }
    for (int t = 0; t < p->nterms; t++)
        aset(c, acc[t], j, get(c, accv[t], vd));
    loop_end(c, &Lj);
    loop_end(c, &Ln);
    for (int t = 0; t < p->nterms; t++) {
        j = loop_begin(c, &Lj, g->cb);
        LLVMValueRef s = hsum(c, aget(c, vd, acc[t], j), VL);
        aset(c, p->sums[t], j, fadd(c, aget(c, c->f64, p->sums[t], j), s));
        loop_end(c, &Lj);
    }
}

/* ---- pass bodies ---- */

static void prep_k12(sc_codegen *c, bnctx *b, LLVMValueRef j)
{
    b->k1 = aget(c, c->elt, b->a1, j);
    b->k2 = aget(c, c->elt, b->a2, j);
}

static void prep_k1234(sc_codegen *c, bnctx *b, LLVMValueRef j)
{
    prep_k12(c, b, j);
    b->k3 = aget(c, c->elt, b->a3, j);
    b->k4 = aget(c, c->elt, b->a4, j);
}

static void prep_d1(sc_codegen *c, bnctx *b, LLVMValueRef j)
{
    b->k1 = aget(c, c->f64, b->a1, j);
}

/* x - s and its square, s the channel's shift (k1, double) */
static void body_shifted(sc_codegen *c, bnctx *b, LLVMValueRef idx, int w, LLVMValueRef *t)
{
    t[0] = fsub(c, vext(c, vld(c, b->x, idx, w), w), splat(c, b->k1, w));
    t[1] = fmul(c, t[0], t[0]);
}

static void body_sum_x(sc_codegen *c, bnctx *b, LLVMValueRef idx, int w, LLVMValueRef *t)
{
    t[0] = vext(c, vld(c, b->x, idx, w), w);
}

/* (x - mean)^2, the mean (k1) in double */
static void body_sqdev(sc_codegen *c, bnctx *b, LLVMValueRef idx, int w, LLVMValueRef *t)
{
    LLVMValueRef d = fsub(c, vext(c, vld(c, b->x, idx, w), w), splat(c, b->k1, w));
    t[0] = fmul(c, d, d);
}

static void body_apply(sc_codegen *c, bnctx *b, LLVMValueRef idx, int w, LLVMValueRef *t)
{
    (void)t; /* y = x * k1 + k2 (+ r) */
    LLVMValueRef v = fadd(c, fmul(c, vld(c, b->x, idx, w), splat(c, b->k1, w)), splat(c, b->k2, w));
    if (b->r)
        v = fadd(c, v, vld(c, b->r, idx, w));
    vst(c, b->y, idx, b->relu ? relu(c, v) : v);
}

static LLVMValueRef dy_of(sc_codegen *c, bnctx *b, LLVMValueRef idx, int w)
{
    LLVMValueRef dy = vld(c, b->dy, idx, w);
    return b->relu ? masked(c, dy, vld(c, b->y, idx, w)) : dy;
}

/* dy and dy * (x - mean), the mean (k1) in double */
static void body_bwd_sums(sc_codegen *c, bnctx *b, LLVMValueRef idx, int w, LLVMValueRef *t)
{
    t[0] = vext(c, dy_of(c, b, idx, w), w);
    LLVMValueRef d = fsub(c, vext(c, vld(c, b->x, idx, w), w), splat(c, b->k1, w));
    t[1] = fmul(c, t[0], d);
}

static void body_bwd_apply(sc_codegen *c, bnctx *b, LLVMValueRef idx, int w, LLVMValueRef *t)
{
    (void)t; /* dx = k1 * (dy - k2 - (x - k4) * k3), k4 the mean */
    LLVMValueRef d = fsub(c, vld(c, b->x, idx, w), splat(c, b->k4, w));
    LLVMValueRef v = fsub(c, fsub(c, dy_of(c, b, idx, w), splat(c, b->k2, w)), fmul(c, d, splat(c, b->k3, w)));
    vst(c, b->dx, idx, fmul(c, splat(c, b->k1, w), v));
}

static void body_sum_dy(sc_codegen *c, bnctx *b, LLVMValueRef idx, int w, LLVMValueRef *t)
{
    t[0] = vext(c, vld(c, b->dy, idx, w), w);
}

/* ---- kernels ---- */

static LLVMValueRef inv_std(sc_codegen *c, LLVMValueRef var_f64, double eps)
{
    return fdiv(c, cd(c, 1.0), call_intrinsic1(c, "llvm.sqrt", c->f64, fadd(c, var_f64, cd(c, eps))));
}

static void zero_sums(sc_codegen *c, const geom *g, LLVMValueRef a)
{
    LLVMBuildMemSet(c->b, a, LLVMConstInt(LLVMInt8TypeInContext(c->ctx), 0, 0), ci(c, 8 * g->cb), 8);
}

/* The apply constants of channel j (c0 + j) from its mean and variance
 * (double): y = x * k1 + k2 with k1 = gamma / std, k2 = beta - mean * k1.
 * Stores the statistics. */
static void fwd_constants(sc_codegen *c, const sc_node *n, bnctx *b, LLVMValueRef ch, LLVMValueRef j,
                          LLVMValueRef mean, LLVMValueRef v)
{
    st(c, tensor(c, n->out[1]), ch, ftrunc(c, mean));
    st(c, tensor(c, n->out[2]), ch, ftrunc(c, v));
    LLVMValueRef scale = fmul(c, fext(c, ld(c, tensor(c, n->in[1]), ch)), inv_std(c, v, n->eps));
    aset(c, b->a1, j, ftrunc(c, scale));
    aset(c, b->a2, j, ftrunc(c, fsub(c, fext(c, ld(c, tensor(c, n->in[2]), ch)), fmul(c, mean, scale))));
}

/* The mean and biased variance of channel ch from the convolution's
 * per-chunk statistics (fuse_stats.c): rows of [N, C, 3] with a positive
 * count merged in image order, in double (sc_ref_stats_merge). */
static void merged_stats(sc_codegen *c, LLVMValueRef S, int64_t nimg, int64_t nch, LLVMValueRef ch, LLVMValueRef *mean,
                         LLVMValueRef *v)
{
    LLVMValueRef cnt = var(c, c->f64, cd(c, 0)), mu = var(c, c->f64, cd(c, 0)), m2 = var(c, c->f64, cd(c, 0));
    loop Li;
    LLVMValueRef img = loop_begin(c, &Li, nimg);
    LLVMValueRef at = imul(c, mad(c, img, nch, ch), ci(c, 3));
    LLVMValueRef nt = fext(c, ld(c, S, at));
    branch B;
    if_begin(c, &B, LLVMBuildFCmp(c->b, LLVMRealOGT, nt, cd(c, 0), ""));
    LLVMValueRef na = get(c, cnt, c->f64), tot = fadd(c, na, nt);
    LLVMValueRef d = fsub(c, fext(c, ld(c, S, iadd(c, at, ci(c, 1)))), get(c, mu, c->f64));
    set(c, mu, fadd(c, get(c, mu, c->f64), fdiv(c, fmul(c, d, nt), tot)));
    LLVMValueRef cross = fdiv(c, fmul(c, fmul(c, d, d), fmul(c, na, nt)), tot);
    set(c, m2, fadd(c, get(c, m2, c->f64), fadd(c, fext(c, ld(c, S, iadd(c, at, ci(c, 2)))), cross)));
    set(c, cnt, tot);
    if_end(c, &B);
    loop_end(c, &Li);
    *mean = get(c, mu, c->f64);
    *v = fdiv(c, get(c, m2, c->f64), get(c, cnt, c->f64));
}

/* Training-mode batchnorm: shifted sums, then the apply (see the top);
 * with conv2d+stats's statistics as its last input, no pass for the sums.
 * batchnorm+add+relu adds the residual r (its fourth input) in the apply:
 * the join's pass over memory saved, and the batchnorm's output never
 * written. */
sc_lowered sc_cg_lower_batchnorm(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    geom g = geometry(&c->g->t[n->in[0]]);
    bnctx b = {0};
    int add = n->op == SC_OP_BATCHNORM_ADD_RELU, nplain = 3 + add; /* inputs before the statistics */
    b.relu = n->op == SC_OP_BATCHNORM_RELU || add;
    b.r = add ? tensor(c, n->in[3]) : NULL;
    b.x = tensor(c, n->in[0]);
    b.y = tensor(c, n->out[0]);
    b.a1 = stack_array(c, c->elt, g.cb);
    b.a2 = stack_array(c, c->elt, g.cb);
    LLVMValueRef s1 = stack_array(c, c->f64, g.cb), s2 = stack_array(c, c->f64, g.cb);
    LLVMValueRef shift = stack_array(c, c->f64, g.cb);
    LLVMValueRef m = cd(c, (double)(g.n * g.hw));
    if (c->mpi) {
        res.nphases = 3;
        m = fmul(c, m, call(c, c->ranks_t, c->ranks_fn, NULL, 0));
    }
    LLVMValueRef S = c->arg_ws; /* MPI: [C] sums, [C] squared deviations */
    loop Lb, Lj;
    begin_block(c, &res, &Lb, &g);
    if (!c->mpi && n->nin > nplain) {
        LLVMValueRef j = loop_begin(c, &Lj, g.cb), ch = iadd(c, g.c0, j), mean, v;
        merged_stats(c, tensor(c, n->in[nplain]), g.n, g.ch, ch, &mean, &v);
        fwd_constants(c, n, &b, ch, j, mean, v);
        loop_end(c, &Lj);
        snprintf(res.impl, sizeof res.impl, "vector x%d, %lld ch/item, stats", VL, (long long)g.cb);
    } else if (!c->mpi) {
        LLVMValueRef j = loop_begin(c, &Lj, g.cb);
        aset(c, shift, j, fext(c, ld(c, b.x, imul(c, iadd(c, g.c0, j), ci(c, g.hw)))));
        loop_end(c, &Lj);
        zero_sums(c, &g, s1);
        zero_sums(c, &g, s2);
        b.a1 = shift; /* prep_d1 reads the shift as k1 */
        run_pass(c, &g, &b, &(pass){prep_d1, body_shifted, 2, {s1, s2}});
        b.a1 = stack_array(c, c->elt, g.cb);
        j = loop_begin(c, &Lj, g.cb);
        LLVMValueRef d = fdiv(c, aget(c, c->f64, s1, j), m); /* mean - shift */
        LLVMValueRef v = fsub(c, fdiv(c, aget(c, c->f64, s2, j), m), fmul(c, d, d));
        v = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, v, cd(c, 0), ""), v, cd(c, 0), "");
        fwd_constants(c, n, &b, iadd(c, g.c0, j), j, fadd(c, aget(c, c->f64, shift, j), d), v);
        loop_end(c, &Lj);
    } else if (c->phase < 2) {
        zero_sums(c, &g, s1);
        if (c->phase == 1) {
            LLVMValueRef j = loop_begin(c, &Lj, g.cb);
            aset(c, shift, j, fdiv(c, LLVMBuildLoad2(c->b, c->f64, gep64(c, S, iadd(c, g.c0, j)), ""), m));
            loop_end(c, &Lj);
        }
        b.a1 = shift; /* the mean over all ranks, phase 1 */
        run_pass(c, &g, &b, &(pass){prep_d1, c->phase ? body_sqdev : body_sum_x, 1, {s1}});
        LLVMValueRef j = loop_begin(c, &Lj, g.cb);
        LLVMBuildStore(c->b, aget(c, c->f64, s1, j), gep64(c, S, iadd(c, iadd(c, g.c0, j), ci(c, c->phase * g.ch))));
        loop_end(c, &Lj);
        res.hook = 1, res.hook_off = c->phase * g.ch, res.hook_n = g.ch;
        loop_end(c, &Lb);
        return res;
    } else {
        LLVMValueRef j = loop_begin(c, &Lj, g.cb), ch = iadd(c, g.c0, j);
        LLVMValueRef mean = fdiv(c, LLVMBuildLoad2(c->b, c->f64, gep64(c, S, ch), ""), m);
        LLVMValueRef v = fdiv(c, LLVMBuildLoad2(c->b, c->f64, gep64(c, S, iadd(c, ch, ci(c, g.ch))), ""), m);
        fwd_constants(c, n, &b, ch, j, mean, v);
        loop_end(c, &Lj);
    }
    run_pass(c, &g, &b, &(pass){prep_k12, body_apply, 0, {0}});
    loop_end(c, &Lb);
    return res;
}

sc_lowered sc_cg_lower_batchnorm_eval(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    geom g = geometry(&c->g->t[n->in[0]]);
    bnctx b = {0};
    b.x = tensor(c, n->in[0]);
    b.y = tensor(c, n->out[0]);
    b.a1 = stack_array(c, c->elt, g.cb);
    b.a2 = stack_array(c, c->elt, g.cb);
    LLVMValueRef G = tensor(c, n->in[1]), B = tensor(c, n->in[2]);
    LLVMValueRef RM = tensor(c, n->in[3]), RV = tensor(c, n->in[4]);
    loop Lb, Lj;
    begin_block(c, &res, &Lb, &g);
    LLVMValueRef j = loop_begin(c, &Lj, g.cb), ch = iadd(c, g.c0, j);
    LLVMValueRef scale = fmul(c, fext(c, ld(c, G, ch)), inv_std(c, fext(c, ld(c, RV, ch)), n->eps));
    aset(c, b.a1, j, ftrunc(c, scale));
    aset(c, b.a2, j, ftrunc(c, fsub(c, fext(c, ld(c, B, ch)), fmul(c, fext(c, ld(c, RM, ch)), scale))));
    loop_end(c, &Lj);
    run_pass(c, &g, &b, &(pass){prep_k12, body_apply, 0, {0}});
    loop_end(c, &Lb);
    return res;
}

/* dgamma and dbeta are this rank's sums (the ranks' gradients are
 * averaged later); dx uses the sums over all ranks with global batchnorm. */
sc_lowered sc_cg_lower_batchnorm_bwd(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    bnctx b = {0};
    b.relu = n->op == SC_OP_BATCHNORM_RELU_BWD;
    int o = b.relu; /* the fused op has the relu output y after dy */
    geom g = geometry(&c->g->t[n->in[1 + o]]);
    b.dy = tensor(c, n->in[0]);
    b.y = b.relu ? tensor(c, n->in[1]) : NULL;
    b.x = tensor(c, n->in[1 + o]);
    b.dx = tensor(c, n->out[0]);
    LLVMValueRef G = tensor(c, n->in[2 + o]), MEAN = tensor(c, n->in[3 + o]), VAR = tensor(c, n->in[4 + o]);
    LLVMValueRef DG = tensor(c, n->out[1]), DB = tensor(c, n->out[2]);
    LLVMValueRef s1 = stack_array(c, c->f64, g.cb), s2 = stack_array(c, c->f64, g.cb);
    LLVMValueRef meand = stack_array(c, c->f64, g.cb);
    LLVMValueRef m = cd(c, (double)(g.n * g.hw)), S = c->arg_ws;
    if (c->mpi) {
        res.nphases = 2;
        m = fmul(c, m, call(c, c->ranks_t, c->ranks_fn, NULL, 0));
    }
    loop Lb, Lj;
    begin_block(c, &res, &Lb, &g);
    if (!c->mpi || c->phase == 0) {
        LLVMValueRef j = loop_begin(c, &Lj, g.cb);
        aset(c, meand, j, fext(c, ld(c, MEAN, iadd(c, g.c0, j))));
        loop_end(c, &Lj);
        zero_sums(c, &g, s1);
        zero_sums(c, &g, s2);
        b.a1 = meand;
        run_pass(c, &g, &b, &(pass){prep_d1, body_bwd_sums, 2, {s1, s2}});
        j = loop_begin(c, &Lj, g.cb);
        LLVMValueRef ch = iadd(c, g.c0, j);
        LLVMValueRef sdy = aget(c, c->f64, s1, j), sdyx = aget(c, c->f64, s2, j);
        st(c, DG, ch, ftrunc(c, fmul(c, sdyx, inv_std(c, fext(c, ld(c, VAR, ch)), n->eps))));
        st(c, DB, ch, ftrunc(c, sdy));
        if (c->mpi) {
            LLVMBuildStore(c->b, sdy, gep64(c, S, ch));
            LLVMBuildStore(c->b, sdyx, gep64(c, S, iadd(c, ch, ci(c, g.ch))));
        }
        loop_end(c, &Lj);
        if (c->mpi) {
            res.hook = 1, res.hook_off = 0, res.hook_n = 2 * g.ch;
            loop_end(c, &Lb);
            return res;
        }
    }
    b.a1 = stack_array(c, c->elt, g.cb);
    b.a2 = stack_array(c, c->elt, g.cb);
    b.a3 = stack_array(c, c->elt, g.cb);
    b.a4 = stack_array(c, c->elt, g.cb);
    LLVMValueRef j = loop_begin(c, &Lj, g.cb), ch = iadd(c, g.c0, j);
    LLVMValueRef sdy = c->mpi ? LLVMBuildLoad2(c->b, c->f64, gep64(c, S, ch), "") : aget(c, c->f64, s1, j);
    LLVMValueRef sdyx = c->mpi ? LLVMBuildLoad2(c->b, c->f64, gep64(c, S, iadd(c, ch, ci(c, g.ch))), "")
                               : aget(c, c->f64, s2, j);
    LLVMValueRef istd = inv_std(c, fext(c, ld(c, VAR, ch)), n->eps);
    aset(c, b.a1, j, ftrunc(c, fmul(c, fext(c, ld(c, G, ch)), istd)));
    aset(c, b.a2, j, ftrunc(c, fdiv(c, sdy, m)));
    aset(c, b.a3, j, ftrunc(c, fdiv(c, fmul(c, fmul(c, istd, istd), sdyx), m)));
    aset(c, b.a4, j, ld(c, MEAN, ch));
    loop_end(c, &Lj);
    run_pass(c, &g, &b, &(pass){prep_k1234, body_bwd_apply, 0, {0}});
    loop_end(c, &Lb);
    return res;
}

sc_lowered sc_cg_lower_bn_running(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    const sc_graph *g = c->g;
    const sc_tensor *mean = &g->t[n->in[0]];
    const sc_tensor *bx = &g->t[g->n[mean->producer].in[0]];
    LLVMValueRef count = cd(c, (double)(bx->numel / bx->shape[1]));
    if (c->mpi)
        count = fmul(c, count, call(c, c->ranks_t, c->ranks_fn, NULL, 0));
    LLVMValueRef unbias = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, count, cd(c, 1), ""),
                                          fdiv(c, count, fsub(c, count, cd(c, 1))), cd(c, 1), "");
    unbias = c->f64_elements ? unbias : LLVMBuildFPTrunc(c->b, unbias, c->elt, "");
    LLVMValueRef M = tensor(c, n->in[0]), V = tensor(c, n->in[1]);
    LLVMValueRef RM = tensor(c, n->in[2]), RV = tensor(c, n->in[3]);
    loop L;
    LLVMValueRef k = loop_begin(c, &L, mean->numel);
    LLVMValueRef keep = cf(c, 1.0 - n->momentum), mom = cf(c, n->momentum);
    st(c, RM, k, fadd(c, fmul(c, keep, ld(c, RM, k)), fmul(c, mom, ld(c, M, k))));
    st(c, RV, k, fadd(c, fmul(c, keep, ld(c, RV, k)), fmul(c, mom, fmul(c, ld(c, V, k), unbias))));
    loop_end(c, &L);
    return res;
}

sc_lowered sc_cg_lower_bias_bwd(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    geom g = geometry(&c->g->t[n->in[0]]);
    bnctx b = {0};
    b.dy = tensor(c, n->in[0]);
    LLVMValueRef DB = tensor(c, n->out[0]), s1 = stack_array(c, c->f64, g.cb);
    loop Lb, Lj;
    begin_block(c, &res, &Lb, &g);
    zero_sums(c, &g, s1);
    run_pass(c, &g, &b, &(pass){NULL, body_sum_dy, 1, {s1}});
    LLVMValueRef j = loop_begin(c, &Lj, g.cb);
    st(c, DB, iadd(c, g.c0, j), ftrunc(c, aget(c, c->f64, s1, j)));
    loop_end(c, &Lj);
    loop_end(c, &Lb);
    return res;
}
