/* Lowering of the losses over the batch's feature statistics: Barlow
 * Twins and VICReg (ir.h), forward and backward. One thread; the D x D
 * products go to the GEMM, the per-feature statistics are summed in
 * double. With --mpi the communicator computes them over all ranks
 * (sc_comm_statloss), as NT-Xent's. */
#include <stdio.h>

#include "cg_builder.h"
#include "model.h"
#include "sc_comm.h"

#define BARLOW_EPS 1e-5 /* ir.h: the standardisation's */

/* The workspace (memplan.c sizes it: 2N D + D D + 2D): the two views'
 * standardised rows (Barlow) or one view's centred rows (VICReg), then
 * C [D, D], then 2D per-feature values. */

/* Feature k of the n rows at Z (row stride d): the mean and the sum of
 * squared deviations, in double. */
static void column_stats(sc_codegen *c, LLVMValueRef Z, int64_t n, int64_t d, LLVMValueRef k, LLVMValueRef *mean,
                         LLVMValueRef *ss)
{
    LLVMValueRef acc = var(c, c->f64, cd(c, 0));
    loop L1, L2;
    LLVMValueRef i = loop_begin(c, &L1, n);
    set(c, acc, fadd(c, get(c, acc, c->f64), fext(c, ld(c, Z, mad(c, i, d, k)))));
    loop_end(c, &L1);
    *mean = fdiv(c, get(c, acc, c->f64), cd(c, (double)n));
    set(c, acc, cd(c, 0));
    LLVMValueRef i2 = loop_begin(c, &L2, n);
    LLVMValueRef e = fsub(c, fext(c, ld(c, Z, mad(c, i2, d, k))), *mean);
    set(c, acc, fadd(c, get(c, acc, c->f64), fmul(c, e, e)));
    loop_end(c, &L2);
    *ss = get(c, acc, c->f64);
}

/* For each feature of the n rows at Z: S[k] = sqrt(ss_k / div + eps) and
 * the rows centred (scaled by 1 / S[k] when standardise) into OUT. */
static void centre_view(sc_codegen *c, LLVMValueRef Z, int64_t n, int64_t d, double div, double eps,
                        int standardise, LLVMValueRef OUT, LLVMValueRef S)
{
    loop Lk, Li;
    LLVMValueRef k = loop_begin(c, &Lk, d), mean, ss;
    column_stats(c, Z, n, d, k, &mean, &ss);
    LLVMValueRef s = call_intrinsic1(c, "llvm.sqrt", c->f64, fadd(c, fdiv(c, ss, cd(c, div)), cd(c, eps)));
    st(c, S, k, ftrunc(c, s));
    LLVMValueRef i = loop_begin(c, &Li, n);
    LLVMValueRef idx = mad(c, i, d, k);
    LLVMValueRef v = fsub(c, fext(c, ld(c, Z, idx)), mean);
    st(c, OUT, idx, ftrunc(c, standardise ? fdiv(c, v, s) : v));
    loop_end(c, &Li);
    loop_end(c, &Lk);
}

static LLVMValueRef is_diag(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildICmp(c->b, LLVMIntEQ, a, b, "");
}

/* ---- Barlow Twins ---- */

static void barlow(sc_codegen *c, const sc_node *n, int bwd, LLVMValueRef Z, LLVMValueRef OUT, LLVMValueRef W,
                   int64_t N, int64_t d)
{
    double lambda = n->coef[SC_BARLOW_LAMBDA], scale = n->coef[SC_BARLOW_SCALE];
    LLVMValueRef ZN = W, C = gep(c, W, ci(c, 2 * N * d)), S = gep(c, W, ci(c, 2 * N * d + d * d));
    for (int v = 0; v < 2; v++)
        centre_view(c, gep(c, Z, ci(c, v * N * d)), N, d, (double)N, BARLOW_EPS, 1, gep(c, ZN, ci(c, v * N * d)),
                    gep(c, S, ci(c, v * d)));
    /* C N = Z1n^T Z2n */
    sgemm(c, 1, 0, d, d, N, ZN, d, gep(c, ZN, ci(c, N * d)), d, cf(c, 0), C, d);
    loop La, Lb;
    LLVMValueRef on = var(c, c->f64, cd(c, 0)), off = var(c, c->f64, cd(c, 0));
    LLVMValueRef a = loop_begin(c, &La, d), b = loop_begin(c, &Lb, d);
    LLVMValueRef idx = mad(c, a, d, b), diag = is_diag(c, a, b);
    LLVMValueRef x = fdiv(c, fext(c, ld(c, C, idx)), cd(c, (double)N));
    if (!bwd) {
        LLVMValueRef e = fsub(c, cd(c, 1), x);
        set(c, on, fadd(c, get(c, on, c->f64), LLVMBuildSelect(c->b, diag, fmul(c, e, e), cd(c, 0), "")));
        set(c, off, fadd(c, get(c, off, c->f64), LLVMBuildSelect(c->b, diag, cd(c, 0), fmul(c, x, x), "")));
    } else { /* G = dLoss/dC / N, in place */
        LLVMValueRef g = LLVMBuildSelect(c->b, diag, fmul(c, cd(c, 2), fsub(c, x, cd(c, 1))),
                                         fmul(c, cd(c, 2 * lambda), x), "");
        st(c, C, idx, ftrunc(c, fmul(c, g, cd(c, scale / (double)N))));
    }
    loop_end(c, &Lb);
    loop_end(c, &La);
    if (!bwd) {
        LLVMValueRef l = fmul(c, cd(c, scale), fadd(c, get(c, on, c->f64), fmul(c, cd(c, lambda), get(c, off, c->f64))));
        st(c, OUT, ci(c, 0), ftrunc(c, l));
        return;
    }
    /* dZ1n = Z2n G^T, dZ2n = Z1n G, then through the standardisation:
     * dz = (dzn - mean dzn - zn mean(dzn zn)) / s per feature */
    sgemm(c, 0, 1, N, d, d, gep(c, ZN, ci(c, N * d)), d, C, d, cf(c, 0), OUT, d);
    sgemm(c, 0, 0, N, d, d, ZN, d, C, d, cf(c, 0), gep(c, OUT, ci(c, N * d)), d);
    LLVMValueRef m1 = var(c, c->f64, cd(c, 0)), m2 = var(c, c->f64, cd(c, 0));
    for (int v = 0; v < 2; v++) {
        LLVMValueRef D = gep(c, OUT, ci(c, v * N * d)), X = gep(c, ZN, ci(c, v * N * d));
        loop Lk, Li, Li2;
        LLVMValueRef k = loop_begin(c, &Lk, d);
        set(c, m1, cd(c, 0));
        set(c, m2, cd(c, 0));
        LLVMValueRef i = loop_begin(c, &Li, N);
        LLVMValueRef at = mad(c, i, d, k), g = fext(c, ld(c, D, at));
        set(c, m1, fadd(c, get(c, m1, c->f64), g));
        set(c, m2, fadd(c, get(c, m2, c->f64), fmul(c, g, fext(c, ld(c, X, at)))));
        loop_end(c, &Li);
        LLVMValueRef mean1 = fdiv(c, get(c, m1, c->f64), cd(c, (double)N));
        LLVMValueRef mean2 = fdiv(c, get(c, m2, c->f64), cd(c, (double)N));
        LLVMValueRef s = fext(c, ld(c, S, iadd(c, k, ci(c, v * d))));
        LLVMValueRef i2 = loop_begin(c, &Li2, N);
        LLVMValueRef at2 = mad(c, i2, d, k);
        LLVMValueRef r = fsub(c, fsub(c, fext(c, ld(c, D, at2)), mean1), fmul(c, fext(c, ld(c, X, at2)), mean2));
        st(c, D, at2, ftrunc(c, fdiv(c, r, s)));
        loop_end(c, &Li2);
        loop_end(c, &Lk);
    }
}

/* ---- VICReg ---- */

static void vicreg(sc_codegen *c, const sc_node *n, int bwd, LLVMValueRef Z, LLVMValueRef OUT, LLVMValueRef W,
                   int64_t N, int64_t d)
{
    double sim = n->coef[SC_VICREG_SIM], stdc = n->coef[SC_VICREG_STD], cov = n->coef[SC_VICREG_COV];
    double eps = n->coef[SC_VICREG_EPS], n1 = (double)(N - 1), nd = (double)(N * d);
    LLVMValueRef ZC = W, C = gep(c, W, ci(c, N * d)), S = gep(c, W, ci(c, N * d + d * d));
    LLVMValueRef A = gep(c, S, ci(c, d));
    LLVMValueRef inv = var(c, c->f64, cd(c, 0)), vr = var(c, c->f64, cd(c, 0)), cv = var(c, c->f64, cd(c, 0));
    /* invariance */
    loop Le;
    LLVMValueRef e = loop_begin(c, &Le, N * d);
    LLVMValueRef e2 = iadd(c, e, ci(c, N * d));
    LLVMValueRef diff = fsub(c, fext(c, ld(c, Z, e)), fext(c, ld(c, Z, e2)));
    if (!bwd) {
        set(c, inv, fadd(c, get(c, inv, c->f64), fmul(c, diff, diff)));
    } else {
        LLVMValueRef g = fmul(c, diff, cd(c, 2 * sim / nd));
        st(c, OUT, e, ftrunc(c, g));
        st(c, OUT, e2, ftrunc(c, fsub(c, cd(c, 0), g)));
    }
    loop_end(c, &Le);
    for (int v = 0; v < 2; v++) {
        LLVMValueRef D = gep(c, OUT, ci(c, v * N * d));
        centre_view(c, gep(c, Z, ci(c, v * N * d)), N, d, n1, eps, 0, ZC, S);
        /* variance: the hinge; its gradient factor per feature into A */
        loop Lk;
        LLVMValueRef k = loop_begin(c, &Lk, d);
        LLVMValueRef s = fext(c, ld(c, S, k));
        LLVMValueRef below = LLVMBuildFCmp(c->b, LLVMRealOLT, s, cd(c, 1), "");
        if (!bwd)
            set(c, vr, fadd(c, get(c, vr, c->f64), LLVMBuildSelect(c->b, below, fsub(c, cd(c, 1), s), cd(c, 0), "")));
        else
            st(c, A, k, ftrunc(c, LLVMBuildSelect(c->b, below, fdiv(c, cd(c, -stdc / (2.0 * d) / n1), s), cd(c, 0), "")));
        loop_end(c, &Lk);
        /* covariance: C (N - 1) = Zc^T Zc */
        sgemm(c, 1, 0, d, d, N, ZC, d, ZC, d, cf(c, 0), C, d);
        loop La, Lb;
        LLVMValueRef a = loop_begin(c, &La, d), b = loop_begin(c, &Lb, d);
        LLVMValueRef idx = mad(c, a, d, b), diag = is_diag(c, a, b);
        LLVMValueRef x = fext(c, ld(c, C, idx));
        if (!bwd) {
            LLVMValueRef y = fdiv(c, x, cd(c, n1));
            set(c, cv, fadd(c, get(c, cv, c->f64), LLVMBuildSelect(c->b, diag, cd(c, 0), fmul(c, y, y), "")));
        } else { /* H = 4 cov C_offdiag / (D (N - 1)) */
            LLVMValueRef h = fmul(c, x, cd(c, 4 * cov / ((double)d * n1 * n1)));
            st(c, C, idx, ftrunc(c, LLVMBuildSelect(c->b, diag, cd(c, 0), h, "")));
        }
        loop_end(c, &Lb);
        loop_end(c, &La);
        if (!bwd)
            continue;
        /* dz += Zc H + A_k zc */
        sgemm(c, 0, 0, N, d, d, ZC, d, C, d, cf(c, 1), D, d);
        loop Li, Lk2;
        LLVMValueRef i = loop_begin(c, &Li, N), k2 = loop_begin(c, &Lk2, d);
        LLVMValueRef at = mad(c, i, d, k2);
        LLVMValueRef add = fmul(c, fext(c, ld(c, A, k2)), fext(c, ld(c, ZC, at)));
        st(c, D, at, ftrunc(c, fadd(c, fext(c, ld(c, D, at)), add)));
        loop_end(c, &Lk2);
        loop_end(c, &Li);
    }
    if (!bwd) {
        LLVMValueRef l = fadd(c, fmul(c, cd(c, sim / nd), get(c, inv, c->f64)),
                              fadd(c, fmul(c, cd(c, stdc / (2.0 * d)), get(c, vr, c->f64)),
                                   fmul(c, cd(c, cov / (double)d), get(c, cv, c->f64))));
        st(c, OUT, ci(c, 0), ftrunc(c, l));
    }
}

sc_lowered sc_cg_lower_statloss(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_BARLOW_BWD || n->op == SC_OP_VICREG_BWD;
    int is_barlow = n->op == SC_OP_BARLOW || n->op == SC_OP_BARLOW_BWD;
    const sc_tensor *z = &c->g->t[n->in[0]];
    int64_t rows = z->shape[0], d = z->shape[1];
    LLVMValueRef Z = tensor(c, n->in[0]), OUT = tensor(c, n->out[0]);
    if (c->mpi) { /* over all ranks' projections: the communicator's */
        snprintf(res.impl, sizeof res.impl, "all-gather");
        if (bwd) {
            LLVMValueRef a[3] = {OUT, ci(c, rows), ci(c, d)};
            call(c, c->statb_t, c->statb_fn, a, 3);
        } else {
            LLVMValueRef kind = LLVMConstInt(c->i32, is_barlow ? SC_STATLOSS_BARLOW : SC_STATLOSS_VICREG, 0);
            LLVMValueRef a[9] = {Z, ci(c, rows), ci(c, d), kind, cd(c, n->coef[0]), cd(c, n->coef[1]),
                                 cd(c, n->coef[2]), cd(c, n->coef[3]), OUT};
            call(c, c->stat_t, c->stat_fn, a, 9);
        }
        return res;
    }
    snprintf(res.impl, sizeof res.impl, "loop+gemm");
    if (is_barlow)
        barlow(c, n, bwd, Z, OUT, workspace(c, i), rows / 2, d);
    else
        vicreg(c, n, bwd, Z, OUT, workspace(c, i), rows / 2, d);
    return res;
}
