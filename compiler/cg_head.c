/* Lowering of the projection head and the losses: linear layers, L2
 * normalisation, NT-Xent, softmax cross-entropy. */
#include <stdio.h>

#include "cg_builder.h"

/* ---- linear ---- */

sc_lowered sc_cg_lower_linear(sc_codegen *c, int i)
{
    sc_lowered res = lowered("gemm");
    const sc_node *n = &c->g->n[i];
    const sc_graph *g = c->g;
    LLVMValueRef A = tensor(c, n->in[0]), B = tensor(c, n->in[1]), Y = tensor(c, n->out[0]);
    if (n->op == SC_OP_LINEAR) { /* y[N,out] = x[N,in] W[out,in]^T + b */
        const sc_tensor *w = &g->t[n->in[1]];
        int64_t N = g->t[n->in[0]].shape[0], out = w->shape[0], in = w->shape[1];
        sgemm(c, 0, 1, N, out, in, A, in, B, in, cf(c, 0), Y, out);
        if (n->nin > 2) {
            LLVMValueRef BIAS = tensor(c, n->in[2]);
            loop Lr, Lo;
            LLVMValueRef r = loop_begin(c, &Lr, N);
            LLVMValueRef o = loop_begin(c, &Lo, out);
            LLVMValueRef idx = mad(c, r, out, o);
            st(c, Y, idx, fadd(c, ld(c, Y, idx), ld(c, BIAS, o)));
            loop_end(c, &Lo);
            loop_end(c, &Lr);
        }
    } else if (n->op == SC_OP_LINEAR_BWD_DATA) { /* dx[N,in] = dy[N,out] W[out,in] */
        const sc_tensor *w = &g->t[n->in[1]];
        int64_t N = g->t[n->in[0]].shape[0], out = w->shape[0], in = w->shape[1];
        sgemm(c, 0, 0, N, in, out, A, out, B, in, cf(c, 0), Y, in);
    } else { /* dW[out,in] = dy[N,out]^T x[N,in] */
        const sc_tensor *dw = &g->t[n->out[0]];
        int64_t N = g->t[n->in[0]].shape[0], out = dw->shape[0], in = dw->shape[1];
        sgemm(c, 1, 0, out, in, N, A, out, B, in, cf(c, 0), Y, in);
    }
    return res;
}

/* ---- L2 normalisation ---- */

sc_lowered sc_cg_lower_l2norm(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_L2NORM_BWD;
    const sc_tensor *x = &c->g->t[bwd ? n->in[1] : n->in[0]];
    int64_t rows = x->shape[0], d = x->shape[1];
    LLVMValueRef X = tensor(c, bwd ? n->in[1] : n->in[0]);
    LLVMValueRef DY = bwd ? tensor(c, n->in[0]) : NULL;
    LLVMValueRef Y = tensor(c, n->out[0]);
    LLVMValueRef ss = var(c, c->f64, cd(c, 0)), dot = var(c, c->f64, cd(c, 0));
    loop Lr, Lk, Lk2;
    LLVMValueRef r = loop_begin(c, &Lr, rows);
    LLVMValueRef off = imul(c, r, ci(c, d));
    set(c, ss, cd(c, 0));
    set(c, dot, cd(c, 0));
    LLVMValueRef k = loop_begin(c, &Lk, d);
    LLVMValueRef xv = fext(c, ld(c, X, iadd(c, off, k)));
    set(c, ss, fadd(c, get(c, ss, c->f64), fmul(c, xv, xv)));
    if (bwd)
        set(c, dot, fadd(c, get(c, dot, c->f64), fmul(c, xv, fext(c, ld(c, DY, iadd(c, off, k))))));
    loop_end(c, &Lk);
    LLVMValueRef norm = call_intrinsic1(c, "llvm.sqrt", c->f64, get(c, ss, c->f64));
    LLVMValueRef clamped = LLVMBuildFCmp(c->b, LLVMRealOLT, norm, cd(c, 1e-12), "");
    LLVMValueRef den = LLVMBuildSelect(c->b, clamped, cd(c, 1e-12), norm, "");
    LLVMValueRef inv = fdiv(c, cd(c, 1.0), den);
    /* Below the clamp the denominator is a constant: no projection term.
     * dy/n - x (x.dy)/n^3 cancels when dy is nearly parallel to x, so it is
     * formed in double. */
    LLVMValueRef proj = bwd ? LLVMBuildSelect(c->b, clamped, cd(c, 0),
                                              fdiv(c, get(c, dot, c->f64), fmul(c, fmul(c, den, den), den)), "")
                            : NULL;
    LLVMValueRef k2 = loop_begin(c, &Lk2, d);
    LLVMValueRef idx = iadd(c, off, k2);
    if (bwd)
        st(c, Y, idx, ftrunc(c, fsub(c, fmul(c, fext(c, ld(c, DY, idx)), inv), fmul(c, fext(c, ld(c, X, idx)), proj))));
    else
        st(c, Y, idx, ftrunc(c, fmul(c, fext(c, ld(c, X, idx)), inv)));
    loop_end(c, &Lk2);
    loop_end(c, &Lr);
    return res;
}

/* ---- NT-Xent ---- */

/* S = Z Z^T into the workspace; then per row i the log-sum-exp over j != i
 * of S_ij / t. Forward: loss = mean_i (lse_i - S_i,pos(i) / t). Backward:
 * G_ij = (softmax_ij - [j = pos(i)]) / (2N t), and dZ = (G + G^T) Z. */
sc_lowered sc_cg_lower_ntxent(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_NTXENT_BWD;
    const sc_tensor *z = &c->g->t[n->in[0]];
    int64_t rows = z->shape[0], d = z->shape[1], half = rows / 2;
    double inv_t = 1.0 / n->temperature;
    LLVMValueRef Z = tensor(c, n->in[0]), OUT = tensor(c, n->out[0]), S = workspace(c, i);
    if (c->mpi) { /* over all ranks' projections: the communicator's */
        snprintf(res.impl, sizeof res.impl, "all-gather");
        if (bwd) {
            LLVMValueRef a[3] = {OUT, ci(c, rows), ci(c, d)};
            call(c, c->ntxb_t, c->ntxb_fn, a, 3);
        } else {
            LLVMValueRef a[5] = {Z, ci(c, rows), ci(c, d), cd(c, n->temperature), OUT};
            call(c, c->ntx_t, c->ntx_fn, a, 5);
        }
        return res;
    }
    sgemm(c, 0, 1, rows, rows, d, Z, d, Z, d, cf(c, 0), S, rows);
    LLVMValueRef mx = var(c, c->f64, cd(c, 0)), sum = var(c, c->f64, cd(c, 0)), loss = var(c, c->f64, cd(c, 0));
    loop Lr, Lj, Lj2, Lj3;
    LLVMValueRef r = loop_begin(c, &Lr, rows);
    LLVMValueRef srow = gep(c, S, imul(c, r, ci(c, rows)));
    LLVMValueRef pos = LLVMBuildSRem(c->b, iadd(c, r, ci(c, half)), ci(c, rows), "");
    set(c, mx, cd(c, -1e300));
    LLVMValueRef j = loop_begin(c, &Lj, rows);
    LLVMValueRef v = fmul(c, fext(c, ld(c, srow, j)), cd(c, inv_t));
    LLVMValueRef keep = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntNE, j, r, ""),
                                     LLVMBuildFCmp(c->b, LLVMRealOGT, v, get(c, mx, c->f64), ""), "");
    set(c, mx, LLVMBuildSelect(c->b, keep, v, get(c, mx, c->f64), ""));
    loop_end(c, &Lj);
    set(c, sum, cd(c, 0));
    LLVMValueRef m = get(c, mx, c->f64);
    LLVMValueRef j2 = loop_begin(c, &Lj2, rows);
    LLVMValueRef e = call_intrinsic1(c, "llvm.exp", c->f64, fsub(c, fmul(c, fext(c, ld(c, srow, j2)), cd(c, inv_t)), m));
    e = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, j2, r, ""), cd(c, 0), e, "");
    set(c, sum, fadd(c, get(c, sum, c->f64), e));
    loop_end(c, &Lj2);
    LLVMValueRef lse = fadd(c, m, call_intrinsic1(c, "llvm.log", c->f64, get(c, sum, c->f64)));
    if (!bwd) {
        LLVMValueRef sp = fmul(c, fext(c, ld(c, srow, pos)), cd(c, inv_t));
        set(c, loss, fadd(c, get(c, loss, c->f64), fsub(c, lse, sp)));
    } else {
        /* Row i of S becomes row i of G (row i only needs its own S). */
        double scale = 1.0 / ((double)rows * n->temperature);
        LLVMValueRef j3 = loop_begin(c, &Lj3, rows);
        LLVMValueRef p = call_intrinsic1(c, "llvm.exp", c->f64, fsub(c, fmul(c, fext(c, ld(c, srow, j3)), cd(c, inv_t)), lse));
        p = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, j3, r, ""), cd(c, 0), p, "");
        p = fsub(c, p, LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, j3, pos, ""), cd(c, 1), cd(c, 0), ""));
        st(c, srow, j3, ftrunc(c, fmul(c, p, cd(c, scale))));
        loop_end(c, &Lj3);
    }
    loop_end(c, &Lr);
    if (!bwd) {
        st(c, OUT, ci(c, 0), ftrunc(c, fdiv(c, get(c, loss, c->f64), cd(c, (double)rows))));
        return res;
    }
    /* Symmetrise in place: H = G + G^T. */
    loop La, Lb;
    LLVMValueRef a = loop_begin(c, &La, rows);
    LLVMValueRef bcol = loop_range(c, &Lb, a, ci(c, rows));
    LLVMValueRef ab = mad(c, a, rows, bcol), ba = mad(c, bcol, rows, a);
    LLVMValueRef h = fadd(c, ld(c, S, ab), ld(c, S, ba));
    st(c, S, ab, h);
    st(c, S, ba, h);
    loop_end(c, &Lb);
    loop_end(c, &La);
    sgemm(c, 0, 0, rows, d, rows, S, rows, Z, d, cf(c, 0), OUT, d);
    return res;
}

/* ---- softmax cross-entropy (supervised fine-tuning) ---- */

sc_lowered sc_cg_lower_softmax_xent(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_SOFTMAX_XENT_BWD;
    const sc_tensor *lg = &c->g->t[n->in[0]];
    int64_t rows = lg->shape[0], k = lg->shape[1];
    LLVMValueRef L = tensor(c, n->in[0]), LAB = tensor(c, n->in[1]), OUT = tensor(c, n->out[0]);
    LLVMValueRef mx = var(c, c->f64, cd(c, 0)), sum = var(c, c->f64, cd(c, 0)), loss = var(c, c->f64, cd(c, 0));
    loop Lr, Lj, Lj2, Lj3;
    LLVMValueRef r = loop_begin(c, &Lr, rows);
    LLVMValueRef row = gep(c, L, imul(c, r, ci(c, k)));
    LLVMValueRef label = LLVMBuildFPToSI(c->b, ld(c, LAB, r), c->i64, "");
    set(c, mx, fext(c, ld(c, row, ci(c, 0))));
    LLVMValueRef j = loop_begin(c, &Lj, k);
    LLVMValueRef v = fext(c, ld(c, row, j));
    set(c, mx, LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, v, get(c, mx, c->f64), ""), v,
                               get(c, mx, c->f64), ""));
    loop_end(c, &Lj);
    LLVMValueRef m = get(c, mx, c->f64);
    set(c, sum, cd(c, 0));
    LLVMValueRef j2 = loop_begin(c, &Lj2, k);
    set(c, sum, fadd(c, get(c, sum, c->f64), call_intrinsic1(c, "llvm.exp", c->f64, fsub(c, fext(c, ld(c, row, j2)), m))));
    loop_end(c, &Lj2);
    LLVMValueRef lse = fadd(c, m, call_intrinsic1(c, "llvm.log", c->f64, get(c, sum, c->f64)));
    if (!bwd) {
        set(c, loss, fadd(c, get(c, loss, c->f64), fsub(c, lse, fext(c, ld(c, row, label)))));
    } else {
        LLVMValueRef orow = gep(c, OUT, imul(c, r, ci(c, k)));
        LLVMValueRef j3 = loop_begin(c, &Lj3, k);
        LLVMValueRef p = call_intrinsic1(c, "llvm.exp", c->f64, fsub(c, fext(c, ld(c, row, j3)), lse));
        p = fsub(c, p, LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, j3, label, ""), cd(c, 1), cd(c, 0), ""));
        st(c, orow, j3, ftrunc(c, fdiv(c, p, cd(c, (double)rows))));
        loop_end(c, &Lj3);
    }
    loop_end(c, &Lr);
    if (!bwd)
        st(c, OUT, ci(c, 0), ftrunc(c, fdiv(c, get(c, loss, c->f64), cd(c, (double)rows))));
    return res;
}
