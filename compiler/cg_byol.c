/* Lowering of BYOL's loss (ir.h, SC_OP_BYOL): rows already l2norm'ed, row
 * r paired with the target's row p(r) = (r + N) mod 2N. Per image, so
 * with MPI each rank's gradient of its own mean, averaged over the ranks
 * with the others, is the global batch's; only the loss value itself is
 * averaged here (sc_comm_loss_mean). */
#include <stdio.h>

#include "cg_builder.h"

sc_lowered sc_cg_lower_byol(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_BYOL_BWD;
    const sc_tensor *x = &c->g->t[n->in[0]];
    int64_t rows = x->shape[0], d = x->shape[1], half = rows / 2;
    LLVMValueRef OUT = tensor(c, n->out[0]);
    LLVMValueRef Q = bwd ? NULL : tensor(c, n->in[0]), T = tensor(c, n->in[bwd ? 0 : 1]);
    LLVMValueRef loss = var(c, c->f64, cd(c, 0));
    loop Lr, Lk;
    LLVMValueRef r = loop_begin(c, &Lr, rows);
    LLVMValueRef p = LLVMBuildSRem(c->b, iadd(c, r, ci(c, half)), ci(c, rows), "");
    LLVMValueRef roff = imul(c, r, ci(c, d)), poff = imul(c, p, ci(c, d));
    LLVMValueRef k = loop_begin(c, &Lk, d);
    LLVMValueRef tv = fext(c, ld(c, T, iadd(c, poff, k)));
    if (bwd)
        st(c, OUT, iadd(c, roff, k), ftrunc(c, fmul(c, tv, cd(c, -2.0 / (double)half))));
    else
        set(c, loss, fadd(c, get(c, loss, c->f64), fmul(c, fext(c, ld(c, Q, iadd(c, roff, k))), tv)));
    loop_end(c, &Lk);
    loop_end(c, &Lr);
    if (bwd)
        return res;
    /* (1/N) sum_r (2 - 2 dot_r) = 4 - (2/N) sum_r dot_r */
    set(c, loss, fsub(c, cd(c, 4.0), fmul(c, get(c, loss, c->f64), cd(c, 2.0 / (double)half))));
    if (c->mpi) {
        snprintf(res.impl, sizeof res.impl, "loop+allreduce");
        call(c, c->lmean_t, c->lmean_fn, &loss, 1);
    }
    st(c, OUT, ci(c, 0), ftrunc(c, get(c, loss, c->f64)));
    return res;
}
