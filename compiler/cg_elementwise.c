/* Lowering of elementwise ops: relu, add and their fused forms and
 * gradients, reshape; silu, gelu, leaky relu and their gradients. */
#include "cg_builder.h"

/* math.h's M_SQRT1_2 and M_2_SQRTPI (math.h itself clashes with the
 * builder's fadd and friends) */
#define SQRT1_2 0.70710678118654752440
#define TWO_OVER_SQRTPI 1.12837916709551257390

/* libm's erf (double): LLVM has no intrinsic for it. The binaries link
 * -lm; a JIT host must make the symbol visible. */
static LLVMValueRef call_erf(sc_codegen *c, LLVMValueRef x)
{
    LLVMTypeRef t = LLVMFunctionType(c->f64, &c->f64, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, "erf");
    if (!fn) {
        fn = LLVMAddFunction(c->mod, "erf", t);
        add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);
    }
    return LLVMBuildCall2(c->b, t, fn, &x, 1, "");
}

/* 1 + exp(-x): sigmoid(x) = 1 / this, silu(x) = x / this */
static LLVMValueRef one_plus_exp_neg(sc_codegen *c, LLVMValueRef x)
{
    return fadd(c, cd(c, 1), call_intrinsic1(c, "llvm.exp", c->f64, fsub(c, cd(c, 0), x)));
}

/* Phi(x) = (1 + erf(x / sqrt 2)) / 2 */
static LLVMValueRef normal_cdf(sc_codegen *c, LLVMValueRef x)
{
    return fmul(c, cd(c, 0.5), fadd(c, cd(c, 1), call_erf(c, fmul(c, x, cd(c, SQRT1_2)))));
}

/* silu, gelu, leaky relu (a = x) and their gradients (a = dy, b = x), in
 * double as refops.c computes them, so that float32 results are the
 * reference's rounded. */
static LLVMValueRef activation(sc_codegen *c, const sc_node *n, LLVMValueRef a, LLVMValueRef b)
{
    int bwd = n->op == SC_OP_SILU_BWD || n->op == SC_OP_GELU_BWD || n->op == SC_OP_LEAKY_RELU_BWD;
    LLVMValueRef x = fext(c, bwd ? b : a), dy = bwd ? fext(c, a) : NULL, v;
    switch (n->op) {
    case SC_OP_SILU:
        v = fdiv(c, x, one_plus_exp_neg(c, x));
        break;
    case SC_OP_SILU_BWD: { /* s (1 + x (1 - s)) */
        LLVMValueRef s = fdiv(c, cd(c, 1), one_plus_exp_neg(c, x));
        v = fmul(c, dy, fmul(c, s, fadd(c, cd(c, 1), fmul(c, x, fsub(c, cd(c, 1), s)))));
        break;
    }
    case SC_OP_GELU:
        v = fmul(c, x, normal_cdf(c, x));
        break;
    case SC_OP_GELU_BWD: { /* Phi(x) + x phi(x) */
        LLVMValueRef pdf = call_intrinsic1(c, "llvm.exp", c->f64, fmul(c, fmul(c, x, x), cd(c, -0.5)));
        pdf = fmul(c, pdf, cd(c, TWO_OVER_SQRTPI * SQRT1_2 * 0.5));
        v = fmul(c, dy, fadd(c, normal_cdf(c, x), fmul(c, x, pdf)));
        break;
    }
    default: { /* leaky relu: x > 0 passes, else scaled by the slope */
        LLVMValueRef pos = LLVMBuildFCmp(c->b, LLVMRealOGT, x, cd(c, 0), "");
        LLVMValueRef g = bwd ? dy : x;
        v = LLVMBuildSelect(c->b, pos, g, fmul(c, g, cd(c, n->slope)), "");
        break;
    }
    }
    return ftrunc(c, v);
}

/* ---- elementwise ---- */

/* Elements per work item of the thread pool: 64 KB of floats. */
enum { BLOCK = 16384 };

/* relu, add, their fused forms and gradients, reshape: one operation per
 * element in the element type, on vectors of w elements at element k. */
static int vector_op(int op)
{
    return op == SC_OP_RELU || op == SC_OP_RELU_BWD || op == SC_OP_ADD || op == SC_OP_ADD_RELU ||
           op == SC_OP_ADD_RELU_BWD || op == SC_OP_RESHAPE;
}

static void vector_body(sc_codegen *c, const sc_node *n, LLVMValueRef k, int w)
{
    LLVMValueRef a = vld(c, tensor(c, n->in[0]), k, w), v;
    LLVMValueRef b = n->nin > 1 ? vld(c, tensor(c, n->in[1]), k, w) : NULL;
    switch (n->op) {
    case SC_OP_RELU:
        v = relu(c, a);
        break;
    case SC_OP_RELU_BWD: /* (dy, y) */
        v = masked(c, a, b);
        break;
    case SC_OP_ADD:
        v = fadd(c, a, b);
        break;
    case SC_OP_ADD_RELU:
        v = relu(c, fadd(c, a, b));
        break;
    case SC_OP_ADD_RELU_BWD: /* (a, b, y) */
        v = masked(c, fadd(c, a, b), vld(c, tensor(c, n->in[2]), k, w));
        break;
    default: /* reshape */
        v = a;
        break;
    }
    vst(c, tensor(c, n->out[0]), k, v);
}

/* Explicit vectors, not the loop vectoriser's: the memory plan runs these
 * in place (add+relu over its first input, the gradients' sums), and the
 * vectoriser's overlap check then takes its scalar loop. Element k is
 * read before it is written, so in place is safe. Blocks of BLOCK
 * elements in vectors of VL (four of the target's registers); the last
 * block also takes the tail past the last whole vector, in halving
 * widths. */
static sc_lowered lower_vector(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    int64_t numel = c->g->t[n->in[0]].numel;
    int vl = 4 * sc_cg_gemm_blocking(c, 1, 1, 1).vw;
    int64_t nblk = (numel + BLOCK - 1) / BLOCK, whole = numel / vl * vl;
    sc_lowered res = lowered("loop");
    snprintf(res.impl, sizeof res.impl, "vector x%d", vl);
    loop Lb, L;
    LLVMValueRef blk = par_loop(c, &res, &Lb, nblk);
    LLVMValueRef v0 = imul(c, blk, ci(c, BLOCK / vl));
    LLVMValueRef v = loop_range(c, &L, v0, imin(c, iadd(c, v0, ci(c, BLOCK / vl)), ci(c, whole / vl)));
    vector_body(c, n, imul(c, v, ci(c, vl)), vl);
    loop_end(c, &L);
    if (whole < numel) {
        branch B;
        if_begin(c, &B, LLVMBuildICmp(c->b, LLVMIntEQ, blk, ci(c, nblk - 1), ""));
        for (int64_t w = vl / 2, at = whole; w >= 1; w /= 2)
            if ((numel - whole) & w) {
                vector_body(c, n, ci(c, at), (int)w);
                at += w;
            }
        if_end(c, &B);
    }
    loop_end(c, &Lb);
    return res;
}

sc_lowered sc_cg_lower_elementwise(sc_codegen *c, int i)
{
    if (vector_op(c->g->n[i].op))
        return lower_vector(c, i);
    sc_lowered res = lowered("loop");
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]];
    LLVMValueRef A = tensor(c, n->in[0]), Y = tensor(c, n->out[0]);
    LLVMValueRef B = n->nin > 1 ? tensor(c, n->in[1]) : NULL;
    loop Lb, L;
    LLVMValueRef blk = par_loop(c, &res, &Lb, (x->numel + BLOCK - 1) / BLOCK);
    LLVMValueRef k0 = imul(c, blk, ci(c, BLOCK));
    LLVMValueRef k = loop_range(c, &L, k0, imin(c, iadd(c, k0, ci(c, BLOCK)), ci(c, x->numel)));
    LLVMValueRef a = ld(c, A, k), v;
    switch (n->op) {
    case SC_OP_SILU:
    case SC_OP_GELU:
    case SC_OP_LEAKY_RELU:
        v = activation(c, n, a, NULL);
        break;
    default: /* silu, gelu, leaky relu's gradients: (dy, x) */
        v = activation(c, n, a, ld(c, B, k));
        break;
    }
    st(c, Y, k, v);
    loop_end(c, &L);
    loop_end(c, &Lb);
    return res;
}
