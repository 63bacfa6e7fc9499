/* Lowering of per-channel reductions: batchnorm (training, eval, backward,
 * running statistics) and the bias gradient. */
#include "cg_builder.h"

/* ---- per-channel reductions ---- */

/* Loops over the elements of channel ch of an [N, C, HW] tensor, calling
 * body with the element index. */
typedef void (*elem_fn)(sc_codegen *c, LLVMValueRef idx, void *ctx);

static void for_channel(sc_codegen *c, int64_t n, int64_t ch_count, int64_t hw, LLVMValueRef ch, elem_fn f, void *ctx)
{
    loop Ln, Lk;
    LLVMValueRef img = loop_begin(c, &Ln, n);
    LLVMValueRef base = imul(c, iadd(c, imul(c, img, ci(c, ch_count)), ch), ci(c, hw));
    LLVMValueRef k = loop_begin(c, &Lk, hw);
    f(c, iadd(c, base, k), ctx);
    loop_end(c, &Lk);
    loop_end(c, &Ln);
}

typedef struct {
    int relu;                           /* fused: relu after the apply, or the relu mask on dy */
    LLVMValueRef x, dy, y, dx;          /* pointers; y is the relu output in the fused backward */
    LLVMValueRef acc1, acc2;            /* double accumulators */
    LLVMValueRef mean, k1, k2, k3;      /* float scalars */
} bnctx;

static void bn_sum(sc_codegen *c, LLVMValueRef idx, void *p)
{
    bnctx *b = p;
    set(c, b->acc1, fadd(c, get(c, b->acc1, c->f64), fext(c, ld(c, b->x, idx))));
}

static void bn_sqdev(sc_codegen *c, LLVMValueRef idx, void *p)
{
    bnctx *b = p;
    LLVMValueRef d = fsub(c, fext(c, ld(c, b->x, idx)), b->mean);
    set(c, b->acc1, fadd(c, get(c, b->acc1, c->f64), fmul(c, d, d)));
}


static void bn_apply(sc_codegen *c, LLVMValueRef idx, void *p)
{
    bnctx *b = p; /* y = x * k1 + k2 */
    LLVMValueRef v = fadd(c, fmul(c, ld(c, b->x, idx), b->k1), b->k2);
    st(c, b->y, idx, b->relu ? relu(c, v) : v);
}

static LLVMValueRef bn_dy(sc_codegen *c, bnctx *b, LLVMValueRef idx)
{
    LLVMValueRef dy = ld(c, b->dy, idx);
    return b->relu ? masked(c, dy, ld(c, b->y, idx)) : dy;
}

static void bn_bwd_sums(sc_codegen *c, LLVMValueRef idx, void *p)
{
    bnctx *b = p;
    LLVMValueRef dy = fext(c, bn_dy(c, b, idx));
    LLVMValueRef d = fsub(c, fext(c, ld(c, b->x, idx)), b->mean);
    set(c, b->acc1, fadd(c, get(c, b->acc1, c->f64), dy));
    set(c, b->acc2, fadd(c, get(c, b->acc2, c->f64), fmul(c, dy, d)));
}

static void bn_bwd_apply(sc_codegen *c, LLVMValueRef idx, void *p)
{
    bnctx *b = p; /* dx = k1 * (dy - k2 - (x - mean) * k3) */
    LLVMValueRef d = fsub(c, ld(c, b->x, idx), b->mean);
    LLVMValueRef v = fsub(c, fsub(c, bn_dy(c, b, idx), b->k2), fmul(c, d, b->k3));
    st(c, b->dx, idx, fmul(c, b->k1, v));
}

static void bias_sum(sc_codegen *c, LLVMValueRef idx, void *p)
{
    bnctx *b = p;
    set(c, b->acc1, fadd(c, get(c, b->acc1, c->f64), fext(c, ld(c, b->dy, idx))));
}

static void nchw(const sc_tensor *t, int64_t *n, int64_t *ch, int64_t *hw)
{
    *n = t->shape[0];
    *ch = t->shape[1];
    *hw = t->numel / (*n * *ch);
}

static LLVMValueRef inv_std(sc_codegen *c, LLVMValueRef var_f64, double eps)
{
    return fdiv(c, cd(c, 1.0), call_intrinsic1(c, "llvm.sqrt", c->f64, fadd(c, var_f64, cd(c, eps))));
}

/* Training-mode batchnorm. One kernel per channel slice: the mean, the
 * variance about it (two passes, in double) and y, while the channel is
 * in cache. Data-parallel builds split that into three phases with the
 * sums reduced over the ranks in between (sc_comm_bn_allreduce), the
 * counts scaled by the ranks covered (sc_comm_bn_ranks). */
sc_lowered sc_cg_lower_batchnorm(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]];
    int64_t N, C, HW;
    nchw(x, &N, &C, &HW);
    bnctx b = {0};
    b.relu = n->op == SC_OP_BATCHNORM_RELU;
    b.x = tensor(c, n->in[0]);
    b.y = tensor(c, n->out[0]);
    LLVMValueRef G = tensor(c, n->in[1]), B = tensor(c, n->in[2]);
    LLVMValueRef MEAN = tensor(c, n->out[1]), VAR = tensor(c, n->out[2]);
    b.acc1 = var(c, c->f64, cd(c, 0));
    LLVMValueRef m = cd(c, (double)(N * HW));
    if (c->mpi) {
        res.nphases = 3;
        m = fmul(c, m, call(c, c->ranks_t, c->ranks_fn, NULL, 0));
    }
    LLVMValueRef S = c->arg_ws; /* MPI: [C] sums, [C] squared deviations */
    loop Lc;
    LLVMValueRef ch = par_loop(c, &res, &Lc, C);
    if (!c->mpi || c->phase == 0) {
        set(c, b.acc1, cd(c, 0));
        for_channel(c, N, C, HW, ch, bn_sum, &b);
        if (c->mpi) {
            LLVMBuildStore(c->b, get(c, b.acc1, c->f64), gep64(c, S, ch));
            res.hook = 1, res.hook_off = 0, res.hook_n = C;
            loop_end(c, &Lc);
            return res;
        }
        b.mean = fdiv(c, get(c, b.acc1, c->f64), m);
    } else
        b.mean = fdiv(c, LLVMBuildLoad2(c->b, c->f64, gep64(c, S, ch), ""), m);
    if (!c->mpi || c->phase == 1) {
        set(c, b.acc1, cd(c, 0));
        for_channel(c, N, C, HW, ch, bn_sqdev, &b);
        if (c->mpi) {
            LLVMBuildStore(c->b, get(c, b.acc1, c->f64), gep64(c, S, iadd(c, ch, ci(c, C))));
            res.hook = 1, res.hook_off = C, res.hook_n = C;
            loop_end(c, &Lc);
            return res;
        }
    }
    LLVMValueRef v = c->mpi ? fdiv(c, LLVMBuildLoad2(c->b, c->f64, gep64(c, S, iadd(c, ch, ci(c, C))), ""), m)
                            : fdiv(c, get(c, b.acc1, c->f64), m);
    st(c, MEAN, ch, ftrunc(c, b.mean));
    st(c, VAR, ch, ftrunc(c, v));
    LLVMValueRef scale = fmul(c, fext(c, ld(c, G, ch)), inv_std(c, v, n->eps));
    b.k1 = ftrunc(c, scale);
    b.k2 = ftrunc(c, fsub(c, fext(c, ld(c, B, ch)), fmul(c, b.mean, scale)));
    for_channel(c, N, C, HW, ch, bn_apply, &b);
    loop_end(c, &Lc);
    return res;
}

sc_lowered sc_cg_lower_batchnorm_eval(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]];
    int64_t N, C, HW;
    nchw(x, &N, &C, &HW);
    bnctx b = {0};
    b.x = tensor(c, n->in[0]);
    b.y = tensor(c, n->out[0]);
    LLVMValueRef G = tensor(c, n->in[1]), B = tensor(c, n->in[2]);
    LLVMValueRef RM = tensor(c, n->in[3]), RV = tensor(c, n->in[4]);
    loop Lc;
    LLVMValueRef ch = par_loop(c, &res, &Lc, C);
    LLVMValueRef scale = fmul(c, fext(c, ld(c, G, ch)), inv_std(c, fext(c, ld(c, RV, ch)), n->eps));
    b.k1 = ftrunc(c, scale);
    b.k2 = ftrunc(c, fsub(c, fext(c, ld(c, B, ch)), fmul(c, fext(c, ld(c, RM, ch)), scale)));
    for_channel(c, N, C, HW, ch, bn_apply, &b);
    loop_end(c, &Lc);
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
    const sc_tensor *x = &c->g->t[n->in[1 + o]];
    int64_t N, C, HW;
    nchw(x, &N, &C, &HW);
    b.dy = tensor(c, n->in[0]);
    b.y = b.relu ? tensor(c, n->in[1]) : NULL;
    b.x = tensor(c, n->in[1 + o]);
    b.dx = tensor(c, n->out[0]);
    LLVMValueRef G = tensor(c, n->in[2 + o]), MEAN = tensor(c, n->in[3 + o]), VAR = tensor(c, n->in[4 + o]);
    LLVMValueRef DG = tensor(c, n->out[1]), DB = tensor(c, n->out[2]);
    b.acc1 = var(c, c->f64, cd(c, 0));
    b.acc2 = var(c, c->f64, cd(c, 0));
    LLVMValueRef m = cd(c, (double)(N * HW)), S = c->arg_ws;
    if (c->mpi) {
        res.nphases = 2;
        m = fmul(c, m, call(c, c->ranks_t, c->ranks_fn, NULL, 0));
    }
    loop Lc;
    LLVMValueRef ch = par_loop(c, &res, &Lc, C);
    LLVMValueRef mean32 = ld(c, MEAN, ch);
    LLVMValueRef istd = inv_std(c, fext(c, ld(c, VAR, ch)), n->eps);
    LLVMValueRef sdy, sdyx;
    if (!c->mpi || c->phase == 0) {
        set(c, b.acc1, cd(c, 0));
        set(c, b.acc2, cd(c, 0));
        b.mean = fext(c, mean32);
        for_channel(c, N, C, HW, ch, bn_bwd_sums, &b);
        sdy = get(c, b.acc1, c->f64);
        sdyx = get(c, b.acc2, c->f64);
        st(c, DG, ch, ftrunc(c, fmul(c, sdyx, istd)));
        st(c, DB, ch, ftrunc(c, sdy));
        if (c->mpi) {
            LLVMBuildStore(c->b, sdy, gep64(c, S, ch));
            LLVMBuildStore(c->b, sdyx, gep64(c, S, iadd(c, ch, ci(c, C))));
            res.hook = 1, res.hook_off = 0, res.hook_n = 2 * C;
            loop_end(c, &Lc);
            return res;
        }
    } else {
        sdy = LLVMBuildLoad2(c->b, c->f64, gep64(c, S, ch), "");
        sdyx = LLVMBuildLoad2(c->b, c->f64, gep64(c, S, iadd(c, ch, ci(c, C))), "");
    }
    b.k1 = ftrunc(c, fmul(c, fext(c, ld(c, G, ch)), istd));
    b.k2 = ftrunc(c, fdiv(c, sdy, m));
    b.k3 = ftrunc(c, fdiv(c, fmul(c, fmul(c, istd, istd), sdyx), m));
    b.mean = mean32;
    for_channel(c, N, C, HW, ch, bn_bwd_apply, &b);
    loop_end(c, &Lc);
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
    const sc_tensor *dy = &c->g->t[n->in[0]];
    int64_t N, C, HW;
    nchw(dy, &N, &C, &HW);
    bnctx b = {0};
    b.dy = tensor(c, n->in[0]);
    LLVMValueRef DB = tensor(c, n->out[0]);
    b.acc1 = var(c, c->f64, cd(c, 0));
    loop Lc;
    LLVMValueRef ch = par_loop(c, &res, &Lc, C);
    set(c, b.acc1, cd(c, 0));
    for_channel(c, N, C, HW, ch, bias_sum, &b);
    st(c, DB, ch, ftrunc(c, get(c, b.acc1, c->f64)));
    loop_end(c, &Lc);
    return res;
}
