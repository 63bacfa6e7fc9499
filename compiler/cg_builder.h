/* Builder helpers of the code generator: constants, arithmetic with its
 * fast-math flags, loads and stores, loops and branches, a kernel's
 * tensors and workspace, the GEMM call. Small and called everywhere, so
 * static inline. */
#ifndef SC_CG_BUILDER_H
#define SC_CG_BUILDER_H

#include <stdio.h>
#include <string.h>

#include "codegen_internal.h"
#include "cg_gemm.h"

/* ---- small builders ---- */

static inline LLVMValueRef ci(sc_codegen *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
static inline LLVMValueRef cf(sc_codegen *c, double v) { return LLVMConstReal(c->elt, v); }
static inline LLVMValueRef cd(sc_codegen *c, double v) { return LLVMConstReal(c->f64, v); }

static inline LLVMValueRef fmf(LLVMValueRef v)
{
    /* Reassociation lets reductions vectorise; contraction allows FMA. No
     * nnan/ninf: a NaN must survive to the loss, where training checks it. */
    if (LLVMCanValueUseFastMathFlags(v))
        LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract |
                                    LLVMFastMathNoSignedZeros);
    return v;
}

static inline LLVMValueRef fadd(sc_codegen *c, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFAdd(c->b, a, b, "")); }
static inline LLVMValueRef fsub(sc_codegen *c, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFSub(c->b, a, b, "")); }
static inline LLVMValueRef fmul(sc_codegen *c, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFMul(c->b, a, b, "")); }
static inline LLVMValueRef fdiv(sc_codegen *c, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFDiv(c->b, a, b, "")); }
/* Between the element type and the double accumulators. */
static inline LLVMValueRef fext(sc_codegen *c, LLVMValueRef a)
{
    return c->f64_elements ? a : LLVMBuildFPExt(c->b, a, c->f64, "");
}

static inline LLVMValueRef ftrunc(sc_codegen *c, LLVMValueRef a)
{
    return c->f64_elements ? a : LLVMBuildFPTrunc(c->b, a, c->elt, "");
}

static inline LLVMValueRef iadd(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef v = LLVMBuildAdd(c->b, a, b, "");
    LLVMSetNSW(v, 1);
    return v;
}

static inline LLVMValueRef imul(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef v = LLVMBuildMul(c->b, a, b, "");
    LLVMSetNSW(v, 1);
    return v;
}

static inline LLVMValueRef isub(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef v = LLVMBuildSub(c->b, a, b, "");
    LLVMSetNSW(v, 1);
    return v;
}

/* a * k + b with constants folded by the builder. */
static inline LLVMValueRef mad(sc_codegen *c, LLVMValueRef a, int64_t k, LLVMValueRef b)
{
    return iadd(c, imul(c, a, ci(c, k)), b);
}

static inline LLVMValueRef gep(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx)
{
    return LLVMBuildInBoundsGEP2(c->b, c->elt, p, &idx, 1, "");
}

static inline LLVMValueRef ld(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, c->elt, gep(c, p, idx), "");
    LLVMSetAlignment(v, c->f64_elements ? 8 : 4);
    return v;
}

static inline void st(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx, LLVMValueRef v)
{
    LLVMValueRef s = LLVMBuildStore(c->b, v, gep(c, p, idx));
    LLVMSetAlignment(s, c->f64_elements ? 8 : 4);
}

/* Vectors of w elements (w 1: a scalar) at element idx of p, aligned as
 * one element: the memory-bound kernels' loads and stores. */
static inline LLVMTypeRef vty(LLVMTypeRef t, int w) { return w == 1 ? t : LLVMVectorType(t, (unsigned)w); }

static inline LLVMValueRef vld(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx, int w)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, vty(c->elt, w), gep(c, p, idx), "");
    LLVMSetAlignment(v, c->f64_elements ? 8 : 4);
    return v;
}

static inline void vst(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx, LLVMValueRef v)
{
    LLVMValueRef s = LLVMBuildStore(c->b, v, gep(c, p, idx));
    LLVMSetAlignment(s, c->f64_elements ? 8 : 4);
}

static inline LLVMValueRef call_intrinsic1(sc_codegen *c, const char *name, LLVMTypeRef t, LLVMValueRef x)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, &t, 1);
    LLVMTypeRef ft = LLVMIntrinsicGetType(c->ctx, id, &t, 1);
    return fmf(LLVMBuildCall2(c->b, ft, fn, &x, 1, ""));
}

/* An alloca of type t at the top of the entry block (so it is one slot
 * of the frame, not one per loop iteration), aligned to align bytes (0:
 * the type's). */
static inline LLVMValueRef entry_alloca(sc_codegen *c, LLVMTypeRef t, unsigned align)
{
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(c->b);
    LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
    if (first)
        LLVMPositionBuilderBefore(c->b, first);
    else
        LLVMPositionBuilderAtEnd(c->b, c->entry);
    LLVMValueRef a = LLVMBuildAlloca(c->b, t, "");
    if (align)
        LLVMSetAlignment(a, align);
    LLVMPositionBuilderAtEnd(c->b, cur);
    return a;
}

/* Scalars that live across loop iterations: allocas in the entry block,
 * which mem2reg turns into registers. */
static inline LLVMValueRef var(sc_codegen *c, LLVMTypeRef t, LLVMValueRef init)
{
    LLVMValueRef a = entry_alloca(c, t, 0);
    LLVMBuildStore(c->b, init, a);
    return a;
}

static inline LLVMValueRef get(sc_codegen *c, LLVMValueRef v, LLVMTypeRef t) { return LLVMBuildLoad2(c->b, t, v, ""); }
static inline void set(sc_codegen *c, LLVMValueRef v, LLVMValueRef x) { LLVMBuildStore(c->b, x, v); }

/* for (i = lo; i < hi; i++): loop_begin returns i; loop_end closes it. */
typedef struct {
    LLVMValueRef i;
    LLVMBasicBlockRef head, exit;
} loop;

static inline LLVMValueRef loop_range(sc_codegen *c, loop *L, LLVMValueRef lo, LLVMValueRef hi)
{
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
    L->head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "loop");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "body");
    L->exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "done");
    LLVMBuildBr(c->b, L->head);
    LLVMPositionBuilderAtEnd(c->b, L->head);
    L->i = LLVMBuildPhi(c->b, c->i64, "i");
    LLVMAddIncoming(L->i, &lo, &pre, 1);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, L->i, hi, ""), body, L->exit);
    LLVMPositionBuilderAtEnd(c->b, body);
    return L->i;
}

static inline LLVMValueRef loop_begin(sc_codegen *c, loop *L, int64_t n)
{
    return loop_range(c, L, ci(c, 0), ci(c, n));
}

static inline void loop_end(sc_codegen *c, loop *L)
{
    LLVMValueRef next = LLVMBuildAdd(c->b, L->i, ci(c, 1), "");
    LLVMSetNSW(next, 1);
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMBuildBr(c->b, L->head);
    LLVMAddIncoming(L->i, &next, &latch, 1);
    LLVMPositionBuilderAtEnd(c->b, L->exit);
}

/* if (cond) { ... } */
typedef struct {
    LLVMBasicBlockRef join;
} branch;

static inline void if_begin(sc_codegen *c, branch *B, LLVMValueRef cond)
{
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "then");
    B->join = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "join");
    LLVMBuildCondBr(c->b, cond, then, B->join);
    LLVMPositionBuilderAtEnd(c->b, then);
}

static inline void if_end(sc_codegen *c, branch *B)
{
    LLVMBuildBr(c->b, B->join);
    LLVMPositionBuilderAtEnd(c->b, B->join);
}

static inline LLVMValueRef imin(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, "");
}

static inline LLVMValueRef imax(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, a, b, ""), a, b, "");
}

/* What a kernel that does not say otherwise is: one phase, one thread. */
static inline sc_lowered lowered(const char *impl)
{
    sc_lowered r = {.nphases = 1, .extent = 1};
    snprintf(r.impl, sizeof r.impl, "%s", impl);
    return r;
}

/* ---- tensors ---- */

/* Inside a kernel, tensors are its pointer arguments. */
static inline LLVMValueRef tensor(sc_codegen *c, int t)
{
    const sc_node *n = &c->g->n[c->node];
    for (int k = 0; k < n->nin; k++)
        if (n->in[k] == t)
            return c->arg_in[k];
    for (int k = 0; k < n->nout; k++)
        if (n->out[k] == t)
            return c->arg_out[k];
    return LLVMConstNull(c->ptr); /* not reached: lowering only uses its node's tensors */
}

/* A node's workspace: the running thread's own part where the memory
 * plan gave one per thread. */
static inline int64_t ws_stride(sc_codegen *c, int node) { return c->mp->ws_stride[node]; }

static inline LLVMValueRef workspace(sc_codegen *c, int node)
{
    int64_t stride = ws_stride(c, node);
    return stride ? gep(c, c->arg_ws, imul(c, c->arg_tid, ci(c, stride))) : c->arg_ws;
}

/* The kernel's outermost loop over n work items, split over threads: it
 * runs over the slice [lo, hi) the kernel was called with. */
static inline LLVMValueRef par_loop(sc_codegen *c, sc_lowered *r, loop *L, int64_t n)
{
    r->extent = n;
    return loop_range(c, L, c->arg_lo, c->arg_hi);
}

static inline LLVMValueRef call(sc_codegen *c, LLVMTypeRef t, LLVMValueRef fn, LLVMValueRef *args, unsigned n)
{
    return LLVMBuildCall2(c->b, t, fn, args, n, "");
}

static inline LLVMValueRef runtime_threads(sc_codegen *c)
{
    return LLVMBuildSExt(c->b, call(c, c->threads_t, c->threads_fn, NULL, 0), c->i64, "");
}

static inline LLVMValueRef gep64(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx)
{
    return LLVMBuildGEP2(c->b, c->f64, p, &idx, 1, "");
}

static inline void zero(sc_codegen *c, LLVMValueRef p, int64_t n)
{
    int64_t size = c->f64_elements ? 8 : 4;
    LLVMBuildMemSet(c->b, p, LLVMConstInt(LLVMInt8TypeInContext(c->ctx), 0, 0), ci(c, n * size), (unsigned)size);
}

/* Every matrix product of the step: a generated kernel (cg_gemm.h), or
 * with --gemm=openblas a call to cblas_sgemm (cblas_dgemm for doubles).
 * NT-Xent's two products stay cblas calls either way: the --mpi step
 * computes them in the communicator (runtime/ntxent.c) with cblas_sgemm,
 * and a run resumed on another number of ranks must round as the run it
 * continues (test_mpi: 9.6e-7 apart alike, 2.3e-3 with the loss's
 * products generated on one side); they are 0.003 of resnet18-stl10's
 * 126 GFLOP. */
static inline void sgemm(sc_codegen *c, int ta, int tb, int64_t m, int64_t n, int64_t k, LLVMValueRef a,
                  int64_t lda, LLVMValueRef b, int64_t ldb, LLVMValueRef beta, LLVMValueRef out, int64_t ldc)
{
    sc_opkind op = c->g->n[c->node].op;
    if (!c->gemm_openblas && op != SC_OP_NTXENT && op != SC_OP_NTXENT_BWD) {
        sc_cg_gemm(c, ta, tb, m, n, k, a, lda, b, ldb, beta, out, ldc);
        return;
    }
    LLVMValueRef i32c[6];
    int64_t v[6] = {CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS, tb ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, k};
    for (int i = 0; i < 6; i++)
        i32c[i] = LLVMConstInt(c->i32, (unsigned long long)v[i], 1);
    LLVMValueRef args[14] = {i32c[0], i32c[1], i32c[2], i32c[3], i32c[4], i32c[5],
                             cf(c, 1.0), a, LLVMConstInt(c->i32, (unsigned long long)lda, 0),
                             b, LLVMConstInt(c->i32, (unsigned long long)ldb, 0),
                             beta, out, LLVMConstInt(c->i32, (unsigned long long)ldc, 0)};
    LLVMBuildCall2(c->b, c->sgemm_t, c->sgemm, args, 14, "");
}

/* relu and the relu mask, on scalars or vectors */
static inline LLVMValueRef relu(sc_codegen *c, LLVMValueRef v)
{
    LLVMValueRef z = LLVMConstNull(LLVMTypeOf(v));
    return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, v, z, ""), v, z, "");
}

/* dy where the mask y is positive, else 0 */
static inline LLVMValueRef masked(sc_codegen *c, LLVMValueRef dy, LLVMValueRef y)
{
    LLVMValueRef z = LLVMConstNull(LLVMTypeOf(dy));
    return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, y, z, ""), dy, z, "");
}

static inline void add_attr(sc_codegen *c, LLVMValueRef fn, unsigned idx, const char *name, uint64_t val)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(c->ctx, kind, val));
}

#endif
