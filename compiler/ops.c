/* Op metadata: names and the arithmetic cost of each op. */
#include "ir.h"

static const char *const names[SC_OP_COUNT] = {
    [SC_OP_CONV2D] = "conv2d",
    [SC_OP_BATCHNORM] = "batchnorm",
    [SC_OP_BN_RUNNING] = "bn_running_update",
    [SC_OP_RELU] = "relu",
    [SC_OP_MAXPOOL] = "maxpool",
    [SC_OP_AVGPOOL] = "avgpool",
    [SC_OP_GLOBAL_AVGPOOL] = "global_avgpool",
    [SC_OP_RESHAPE] = "reshape",
    [SC_OP_LINEAR] = "linear",
    [SC_OP_ADD] = "add",
    [SC_OP_L2NORM] = "l2norm",
    [SC_OP_NTXENT] = "ntxent",
    [SC_OP_BATCHNORM_EVAL] = "batchnorm_eval",
    [SC_OP_SOFTMAX_XENT] = "softmax_xent",
    [SC_OP_SOFTMAX_XENT_BWD] = "softmax_xent_bwd",
    [SC_OP_CONV2D_BWD_DATA] = "conv2d_bwd_data",
    [SC_OP_CONV2D_BWD_WEIGHT] = "conv2d_bwd_weight",
    [SC_OP_BIAS_BWD] = "bias_bwd",
    [SC_OP_BATCHNORM_BWD] = "batchnorm_bwd",
    [SC_OP_RELU_BWD] = "relu_bwd",
    [SC_OP_MAXPOOL_BWD] = "maxpool_bwd",
    [SC_OP_AVGPOOL_BWD] = "avgpool_bwd",
    [SC_OP_GLOBAL_AVGPOOL_BWD] = "global_avgpool_bwd",
    [SC_OP_LINEAR_BWD_DATA] = "linear_bwd_data",
    [SC_OP_LINEAR_BWD_WEIGHT] = "linear_bwd_weight",
    [SC_OP_L2NORM_BWD] = "l2norm_bwd",
    [SC_OP_NTXENT_BWD] = "ntxent_bwd",
    [SC_OP_BATCHNORM_RELU] = "batchnorm+relu",
    [SC_OP_ADD_RELU] = "add+relu",
    [SC_OP_BATCHNORM_RELU_BWD] = "batchnorm+relu_bwd",
    [SC_OP_ADD_RELU_BWD] = "add+relu_bwd",
    [SC_OP_SILU] = "silu",
    [SC_OP_GELU] = "gelu",
    [SC_OP_LEAKY_RELU] = "leaky_relu",
    [SC_OP_SILU_BWD] = "silu_bwd",
    [SC_OP_GELU_BWD] = "gelu_bwd",
    [SC_OP_BARLOW] = "barlow",
    [SC_OP_VICREG] = "vicreg",
    [SC_OP_BARLOW_BWD] = "barlow_bwd",
    [SC_OP_VICREG_BWD] = "vicreg_bwd",
    [SC_OP_LEAKY_RELU_BWD] = "leaky_relu_bwd",
    [SC_OP_BYOL] = "byol",
    [SC_OP_BYOL_BWD] = "byol_bwd",
    [SC_OP_CONV2D_STATS] = "conv2d+stats",
    [SC_OP_BATCHNORM_ADD_RELU] = "batchnorm+add+relu",
};

const char *sc_op_name(sc_opkind op)
{
    return op >= 0 && op < SC_OP_COUNT && names[op] ? names[op] : "?";
}

int sc_op_is_fused(sc_opkind op)
{
    return op == SC_OP_BATCHNORM_RELU || op == SC_OP_ADD_RELU || op == SC_OP_BATCHNORM_RELU_BWD || op == SC_OP_CONV2D_STATS ||
           op == SC_OP_ADD_RELU_BWD || op == SC_OP_BATCHNORM_ADD_RELU;
}

/* Counts follow the usual convention: a multiply-add is 2 FLOPs; cheap
 * per-element work counts its arithmetic operations roughly. */
double sc_node_flops(const sc_graph *g, int i)
{
    const sc_node *n = &g->n[i];
    const sc_tensor *in0 = &g->t[n->in[0]];
    const sc_tensor *out0 = n->nout ? &g->t[n->out[0]] : NULL;
    switch (n->op) {
    case SC_OP_CONV2D:
    case SC_OP_CONV2D_STATS: { /* the statistics' few per element stay the batchnorm's count */
        const sc_tensor *w = &g->t[n->in[1]];
        double macs = (double)out0->numel * w->shape[1] * w->shape[2] * w->shape[3];
        return 2 * macs + (n->nin > 2 ? (double)out0->numel : 0);
    }
    case SC_OP_CONV2D_BWD_DATA: {
        const sc_tensor *w = &g->t[n->in[1]];
        return 2.0 * in0->numel * w->shape[1] * w->shape[2] * w->shape[3];
    }
    case SC_OP_CONV2D_BWD_WEIGHT: {
        const sc_tensor *w = out0;
        return 2.0 * in0->numel * w->shape[1] * w->shape[2] * w->shape[3];
    }
    case SC_OP_LINEAR: {
        const sc_tensor *w = &g->t[n->in[1]];
        return 2.0 * out0->numel * w->shape[1] + (n->nin > 2 ? (double)out0->numel : 0);
    }
    case SC_OP_LINEAR_BWD_DATA:
    case SC_OP_LINEAR_BWD_WEIGHT: {
        /* dy [N, out] times W [out, in] or x [N, in] */
        const sc_tensor *other = &g->t[n->in[1]];
        return 2.0 * in0->numel * other->shape[1];
    }
    case SC_OP_BATCHNORM: return 7.0 * in0->numel;
    case SC_OP_BATCHNORM_EVAL: return 2.0 * in0->numel;
    case SC_OP_BATCHNORM_BWD: return 9.0 * in0->numel;
    case SC_OP_BN_RUNNING: return 6.0 * in0->numel;
    case SC_OP_MAXPOOL:
    case SC_OP_AVGPOOL: return (double)out0->numel * n->kernel * n->kernel;
    case SC_OP_MAXPOOL_BWD:
    case SC_OP_AVGPOOL_BWD: return (double)in0->numel * n->kernel * n->kernel;
    case SC_OP_GLOBAL_AVGPOOL: return (double)in0->numel;
    case SC_OP_GLOBAL_AVGPOOL_BWD: return (double)out0->numel;
    case SC_OP_RELU:
    case SC_OP_RELU_BWD:
    case SC_OP_ADD:
    case SC_OP_BIAS_BWD: return (double)in0->numel;
    case SC_OP_L2NORM: return 3.0 * in0->numel;
    case SC_OP_SOFTMAX_XENT:
    case SC_OP_SOFTMAX_XENT_BWD: return 4.0 * in0->numel;
    case SC_OP_L2NORM_BWD: return 5.0 * in0->numel;
    case SC_OP_NTXENT:
    case SC_OP_NTXENT_BWD: {
        double rows = in0->shape[0], d = in0->shape[1];
        double sim = 2 * rows * rows * d;
        return n->op == SC_OP_NTXENT ? sim + 4 * rows * rows : 2 * sim + 4 * rows * rows;
    }
    /* The D x D products dominate: C (and for VICReg one per view); the
     * backward recomputes the forward's, then two more. */
    case SC_OP_BARLOW:
    case SC_OP_VICREG:
    case SC_OP_BARLOW_BWD:
    case SC_OP_VICREG_BWD: {
        double rows = in0->shape[0], d = in0->shape[1];
        double gemm = 2 * (rows / 2) * d * d;
        int bwd = n->op == SC_OP_BARLOW_BWD || n->op == SC_OP_VICREG_BWD;
        return (bwd ? 3 : 1) * (n->op == SC_OP_BARLOW || n->op == SC_OP_BARLOW_BWD ? 1 : 2) * gemm +
               10 * rows * d + 3 * d * d;
    }
    /* Fused ops: the sum of their parts (fusion saves memory traffic, not
     * arithmetic). */
    case SC_OP_BATCHNORM_RELU: return 8.0 * in0->numel;
    case SC_OP_BATCHNORM_ADD_RELU: return 9.0 * in0->numel;
    case SC_OP_BATCHNORM_RELU_BWD: return 10.0 * in0->numel;
    case SC_OP_ADD_RELU:
    case SC_OP_ADD_RELU_BWD: return 2.0 * in0->numel;
    /* exp or erf counted as one operation */
    case SC_OP_LEAKY_RELU:
    case SC_OP_LEAKY_RELU_BWD: return 2.0 * in0->numel;
    case SC_OP_SILU:
    case SC_OP_GELU: return 4.0 * in0->numel;
    case SC_OP_SILU_BWD:
    case SC_OP_GELU_BWD: return 8.0 * in0->numel;
    case SC_OP_BYOL: return 2.0 * in0->numel;
    case SC_OP_BYOL_BWD: return (double)in0->numel;
    case SC_OP_RESHAPE:
    case SC_OP_COUNT: return 0;
    }
    return 0;
}
