/* Lowering of elementwise ops: relu, add and their fused forms and
 * gradients, reshape. */
#include "cg_builder.h"

/* ---- elementwise ---- */

sc_lowered sc_cg_lower_elementwise(sc_codegen *c, int i)
{
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]];
    LLVMValueRef A = tensor(c, n->in[0]), Y = tensor(c, n->out[0]);
    LLVMValueRef B = n->nin > 1 ? tensor(c, n->in[1]) : NULL;
    enum { BLOCK = 16384 };
    loop Lb, L;
    LLVMValueRef blk = par_loop(c, &res, &Lb, (x->numel + BLOCK - 1) / BLOCK);
    LLVMValueRef k0 = imul(c, blk, ci(c, BLOCK));
    LLVMValueRef k = loop_range(c, &L, k0, imin(c, iadd(c, k0, ci(c, BLOCK)), ci(c, x->numel)));
    LLVMValueRef a = ld(c, A, k), v;
    switch (n->op) {
    case SC_OP_RELU:
        v = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, a, cf(c, 0), ""), a, cf(c, 0), "");
        break;
    case SC_OP_RELU_BWD: /* (dy, y) */
        v = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, ld(c, B, k), cf(c, 0), ""), a, cf(c, 0), "");
        break;
    case SC_OP_ADD:
        v = fadd(c, a, ld(c, B, k));
        break;
    case SC_OP_ADD_RELU:
        v = relu(c, fadd(c, a, ld(c, B, k)));
        break;
    case SC_OP_ADD_RELU_BWD: /* (a, b, y) */
        v = masked(c, fadd(c, a, ld(c, B, k)), ld(c, tensor(c, n->in[2]), k));
        break;
    default: /* reshape */
        v = a;
        break;
    }
    st(c, Y, k, v);
    loop_end(c, &L);
    loop_end(c, &Lb);
    return res;
}
