/* Lowering the graph IR to LLVM IR with the C API.
 *
 * Every node becomes one internal function ("kernel") taking the six base
 * pointers of the ABI (params, grads, buffers, arena, input, out); tensor
 * addresses are those bases plus constant offsets from the memory plan,
 * and every loop bound is a constant. Matrix products call OpenBLAS's
 * cblas_sgemm; everything else is a generated loop nest. sc_step and
 * sc_encode call the kernels in graph order. Reductions accumulate in
 * double so that results stay within float rounding of the interpreter. */
#include "codegen.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/ExecutionEngine.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "convplan.h"
#include "sc_abi_version.h"

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef struct {
    char *key;
    LLVMValueRef fn, task;    /* task: the sc_parallel_for wrapper, or NULL */
    LLVMTypeRef type;
    int64_t extent;
    int nphases;              /* of the node (the same for every phase) */
    int hook;
    int64_t hook_off, hook_n;
    char *impl;
} kern;

struct sc_codegen {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTargetMachineRef tm;
    LLVMExecutionEngineRef ee;  /* set by sc_codegen_jit; it then owns mod */
    int opt_level;
    char *cpu, *features;
    /* elt is the tensors' element type: float, or double for testing the
     * generated code against the interpreter without float rounding */
    LLVMTypeRef elt, f64, i1, i32, i64, ptr, vd, sgemm_t;
    int f64_elements;
    LLVMValueRef sgemm;
    int mpi;
    /* the kernel being generated: its node, pointer arguments, the slice
     * [lo, hi) of its parallel loop and the thread running it */
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    int node;
    LLVMValueRef arg_in[SC_MAX_IN], arg_out[SC_MAX_OUT], arg_ws, arg_lo, arg_hi, arg_tid;
    /* what lowering tells kernel_for: a node may lower to several phases
     * (kernels called one after the other), each with its parallel extent
     * (1: runs on one thread) and possibly a call into the communicator
     * after it */
    int phase, nphases;
    int64_t par_n;
    int hook;                 /* 1: sc_comm_bn_allreduce(ws + hook_off doubles, hook_n) */
    int64_t hook_off, hook_n;
    char impl[64];
    const sc_graph *g;
    const sc_memplan *mp;
    /* kernels generated so far, by signature: nodes that differ only in
     * where their tensors live share one kernel */
    kern *kern;
    int nk;
    /* the runtime's functions called by generated code */
    LLVMTypeRef par_t, task_t, threads_t, prof_t, bnred_t, ranks_t, ntx_t, ntxb_t, ready_t, end_t;
    LLVMValueRef par_fn, threads_fn, prof_on, prof_fn, bnred_fn, ranks_fn, ntx_fn, ntxb_fn, ready_fn, end_fn;
    /* sc_step's nodes: their phase-0 kernel, for the node table */
    int *step_kern;
};

/* ---- small builders ---- */

static LLVMValueRef ci(sc_codegen *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
static LLVMValueRef cf(sc_codegen *c, double v) { return LLVMConstReal(c->elt, v); }
static LLVMValueRef cd(sc_codegen *c, double v) { return LLVMConstReal(c->f64, v); }

static LLVMValueRef fmf(LLVMValueRef v)
{
    /* Reassociation lets reductions vectorise; contraction allows FMA. No
     * nnan/ninf: a NaN must survive to the loss, where training checks it. */
    if (LLVMCanValueUseFastMathFlags(v))
        LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract |
                                    LLVMFastMathNoSignedZeros);
    return v;
}

static LLVMValueRef fadd(sc_codegen *c, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFAdd(c->b, a, b, "")); }
static LLVMValueRef fsub(sc_codegen *c, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFSub(c->b, a, b, "")); }
static LLVMValueRef fmul(sc_codegen *c, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFMul(c->b, a, b, "")); }
static LLVMValueRef fdiv(sc_codegen *c, LLVMValueRef a, LLVMValueRef b) { return fmf(LLVMBuildFDiv(c->b, a, b, "")); }
/* Between the element type and the double accumulators. */
static LLVMValueRef fext(sc_codegen *c, LLVMValueRef a)
{
    return c->f64_elements ? a : LLVMBuildFPExt(c->b, a, c->f64, "");
}

static LLVMValueRef ftrunc(sc_codegen *c, LLVMValueRef a)
{
    return c->f64_elements ? a : LLVMBuildFPTrunc(c->b, a, c->elt, "");
}

static LLVMValueRef iadd(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef v = LLVMBuildAdd(c->b, a, b, "");
    LLVMSetNSW(v, 1);
    return v;
}

static LLVMValueRef imul(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef v = LLVMBuildMul(c->b, a, b, "");
    LLVMSetNSW(v, 1);
    return v;
}

static LLVMValueRef isub(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef v = LLVMBuildSub(c->b, a, b, "");
    LLVMSetNSW(v, 1);
    return v;
}

/* a * k + b with constants folded by the builder. */
static LLVMValueRef mad(sc_codegen *c, LLVMValueRef a, int64_t k, LLVMValueRef b)
{
    return iadd(c, imul(c, a, ci(c, k)), b);
}

static LLVMValueRef gep(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx)
{
    return LLVMBuildInBoundsGEP2(c->b, c->elt, p, &idx, 1, "");
}

static LLVMValueRef ld(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, c->elt, gep(c, p, idx), "");
    LLVMSetAlignment(v, c->f64_elements ? 8 : 4);
    return v;
}

static void st(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx, LLVMValueRef v)
{
    LLVMValueRef s = LLVMBuildStore(c->b, v, gep(c, p, idx));
    LLVMSetAlignment(s, c->f64_elements ? 8 : 4);
}

static LLVMValueRef call_intrinsic1(sc_codegen *c, const char *name, LLVMTypeRef t, LLVMValueRef x)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, &t, 1);
    LLVMTypeRef ft = LLVMIntrinsicGetType(c->ctx, id, &t, 1);
    return fmf(LLVMBuildCall2(c->b, ft, fn, &x, 1, ""));
}

/* Scalars that live across loop iterations: allocas in the entry block,
 * which mem2reg turns into registers. */
static LLVMValueRef var(sc_codegen *c, LLVMTypeRef t, LLVMValueRef init)
{
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(c->b);
    LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
    if (first)
        LLVMPositionBuilderBefore(c->b, first);
    else
        LLVMPositionBuilderAtEnd(c->b, c->entry);
    LLVMValueRef a = LLVMBuildAlloca(c->b, t, "");
    LLVMPositionBuilderAtEnd(c->b, cur);
    LLVMBuildStore(c->b, init, a);
    return a;
}

static LLVMValueRef get(sc_codegen *c, LLVMValueRef v, LLVMTypeRef t) { return LLVMBuildLoad2(c->b, t, v, ""); }
static void set(sc_codegen *c, LLVMValueRef v, LLVMValueRef x) { LLVMBuildStore(c->b, x, v); }

/* for (i = lo; i < hi; i++): loop_begin returns i; loop_end closes it. */
typedef struct {
    LLVMValueRef i;
    LLVMBasicBlockRef head, exit;
} loop;

static LLVMValueRef loop_range(sc_codegen *c, loop *L, LLVMValueRef lo, LLVMValueRef hi)
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

static LLVMValueRef loop_begin(sc_codegen *c, loop *L, int64_t n)
{
    return loop_range(c, L, ci(c, 0), ci(c, n));
}

static void loop_end(sc_codegen *c, loop *L)
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

static void if_begin(sc_codegen *c, branch *B, LLVMValueRef cond)
{
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "then");
    B->join = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "join");
    LLVMBuildCondBr(c->b, cond, then, B->join);
    LLVMPositionBuilderAtEnd(c->b, then);
}

static void if_end(sc_codegen *c, branch *B)
{
    LLVMBuildBr(c->b, B->join);
    LLVMPositionBuilderAtEnd(c->b, B->join);
}

static LLVMValueRef imin(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef imax(sc_codegen *c, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, a, b, ""), a, b, "");
}

/* ---- tensors ---- */

/* Inside a kernel, tensors are its pointer arguments. */
static LLVMValueRef tensor(sc_codegen *c, int t)
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
static int64_t ws_stride(sc_codegen *c, int node, int64_t *used)
{
    int per_thread;
    int64_t w = sc_node_workspace(c->g, node, &c->mp->opts, &per_thread);
    if (used)
        *used = w;
    return per_thread ? c->mp->ws_floats[node] / c->mp->opts.threads : 0;
}

static LLVMValueRef workspace(sc_codegen *c, int node)
{
    int64_t stride = ws_stride(c, node, NULL);
    return stride ? gep(c, c->arg_ws, imul(c, c->arg_tid, ci(c, stride))) : c->arg_ws;
}

/* The kernel's outermost loop over n work items, split over threads: it
 * runs over the slice [lo, hi) the kernel was called with. */
static LLVMValueRef par_loop(sc_codegen *c, loop *L, int64_t n)
{
    c->par_n = n;
    return loop_range(c, L, c->arg_lo, c->arg_hi);
}

static LLVMValueRef call(sc_codegen *c, LLVMTypeRef t, LLVMValueRef fn, LLVMValueRef *args, unsigned n)
{
    return LLVMBuildCall2(c->b, t, fn, args, n, "");
}

static LLVMValueRef runtime_threads(sc_codegen *c)
{
    return LLVMBuildSExt(c->b, call(c, c->threads_t, c->threads_fn, NULL, 0), c->i64, "");
}

static LLVMValueRef gep64(sc_codegen *c, LLVMValueRef p, LLVMValueRef idx)
{
    return LLVMBuildGEP2(c->b, c->f64, p, &idx, 1, "");
}

static void zero(sc_codegen *c, LLVMValueRef p, int64_t n)
{
    int64_t size = c->f64_elements ? 8 : 4;
    LLVMBuildMemSet(c->b, p, LLVMConstInt(LLVMInt8TypeInContext(c->ctx), 0, 0), ci(c, n * size), (unsigned)size);
}

static void sgemm(sc_codegen *c, int ta, int tb, int64_t m, int64_t n, int64_t k, LLVMValueRef a,
                  int64_t lda, LLVMValueRef b, int64_t ldb, LLVMValueRef beta, LLVMValueRef out, int64_t ldc)
{
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

/* ---- convolution pieces ---- */

typedef struct {
    int64_t c, h, w, k, s, p, oh, ow;
} geom;

/* The range of output columns ow whose input column ow*s - p + kw lies in
 * [0, w): [lo, hi), computed in generated code from kw. */
static void valid_cols(sc_codegen *c, const geom *g, LLVMValueRef kw, LLVMValueRef *lo, LLVMValueRef *hi)
{
    /* lo = ceil((p - kw) / s) clamped at 0; hi = floor((w - 1 + p - kw) / s) + 1 clamped at ow.
     * p - kw + s - 1 >= 0 is not guaranteed, so clamp the numerators first. */
    LLVMValueRef num_lo = imax(c, isub(c, ci(c, g->p), kw), ci(c, 0));
    *lo = LLVMBuildSDiv(c->b, iadd(c, num_lo, ci(c, g->s - 1)), ci(c, g->s), "");
    LLVMValueRef num_hi = isub(c, ci(c, g->w - 1 + g->p), kw);
    LLVMValueRef h = iadd(c, LLVMBuildSDiv(c->b, imax(c, num_hi, ci(c, -1)), ci(c, g->s), ""), ci(c, 1));
    /* num_hi = -1 means no valid column: sdiv(-1, s) = 0 gives 1, fix up. */
    h = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, num_hi, ci(c, 0), ""), ci(c, 0), h, "");
    *hi = imax(c, imin(c, h, ci(c, g->ow)), *lo);
}

/* col[(ch*k + kh)*k + kw][oh*ow + ow] = x[ch][oh*s - p + kh][ow*s - p + kw]
 * (0 outside), for one image, col's rows ldc apart; or the reverse,
 * accumulating col into x (col2im), when reverse is set. */
static void im2col(sc_codegen *c, const geom *g, LLVMValueRef x, LLVMValueRef col, int64_t ldc, int reverse)
{
    loop Lc, Lkh, Lkw, Loh, Low;
    LLVMValueRef ch = loop_begin(c, &Lc, g->c);
    LLVMValueRef kh = loop_begin(c, &Lkh, g->k);
    LLVMValueRef kw = loop_begin(c, &Lkw, g->k);
    LLVMValueRef row = mad(c, mad(c, ch, g->k, kh), g->k, kw);
    LLVMValueRef colrow = gep(c, col, imul(c, row, ci(c, ldc)));
    LLVMValueRef xch = gep(c, x, imul(c, ch, ci(c, g->h * g->w)));
    LLVMValueRef lo, hi;
    valid_cols(c, g, kw, &lo, &hi);
    LLVMValueRef oh = loop_begin(c, &Loh, g->oh);
    LLVMValueRef ih = isub(c, mad(c, oh, g->s, kh), ci(c, g->p));
    LLVMValueRef rowok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                      LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, g->h), ""), "");
    LLVMValueRef crow = gep(c, colrow, imul(c, oh, ci(c, g->ow)));
    /* Columns outside [lo, hi) and rows outside the image are padding. */
    LLVMValueRef lo2 = LLVMBuildSelect(c->b, rowok, lo, ci(c, g->ow), "");
    LLVMValueRef hi2 = LLVMBuildSelect(c->b, rowok, hi, ci(c, g->ow), "");
    LLVMValueRef xrow = gep(c, xch, isub(c, imul(c, ih, ci(c, g->w)), ci(c, g->p - 0)));
    /* x index of column ow: ih*w + ow*s - p + kw */
    LLVMValueRef xbase = gep(c, xrow, kw);
    if (!reverse) {
        loop Lz1, Lz2;
        LLVMValueRef z1 = loop_range(c, &Lz1, ci(c, 0), lo2);
        st(c, crow, z1, cf(c, 0));
        loop_end(c, &Lz1);
        LLVMValueRef o = loop_range(c, &Low, lo2, hi2);
        st(c, crow, o, ld(c, xbase, imul(c, o, ci(c, g->s))));
        loop_end(c, &Low);
        LLVMValueRef z2 = loop_range(c, &Lz2, hi2, ci(c, g->ow));
        st(c, crow, z2, cf(c, 0));
        loop_end(c, &Lz2);
    } else {
        LLVMValueRef o = loop_range(c, &Low, lo2, hi2);
        LLVMValueRef xi = imul(c, o, ci(c, g->s));
        st(c, xbase, xi, fadd(c, ld(c, xbase, xi), ld(c, crow, o)));
        loop_end(c, &Low);
    }
    loop_end(c, &Loh);
    loop_end(c, &Lkw);
    loop_end(c, &Lkh);
    loop_end(c, &Lc);
}

static geom conv_geom(const sc_tensor *x, const sc_tensor *y, const sc_node *n)
{
    geom g = {x->shape[1], x->shape[2], x->shape[3], n->kernel, n->stride, n->pad, y->shape[2], y->shape[3]};
    return g;
}

static int direct(const geom *g) { return g->k == 1 && g->s == 1 && g->p == 0; }

/* Convolutions run over chunks of nb images (sc_conv_chunk): im2col puts
 * the chunk's columns side by side, [C*K*K, nb*OH*OW], so that one GEMM
 * covers the chunk even where OH*OW is small (late ResNet stages). GEMM
 * results in that layout are scattered back to NCHW. */
typedef struct {
    geom g;
    int64_t n, o, ckk, ohw, nb, cols;
    int direct;            /* one image, 1x1 stride 1: no copies at all */
    LLVMValueRef col, t;   /* workspace: columns, then [O, cols] */
} conv_plan;

static conv_plan plan_conv(sc_codegen *c, int i, const sc_tensor *x, const sc_tensor *y, int64_t o)
{
    conv_plan p;
    p.g = conv_geom(x, y, &c->g->n[i]);
    p.n = x->shape[0];
    p.o = o;
    p.ckk = p.g.c * p.g.k * p.g.k;
    p.ohw = p.g.oh * p.g.ow;
    p.nb = sc_conv_chunk(x->shape[0], p.ohw, c->mp->opts.threads);
    p.cols = p.nb * p.ohw;
    p.direct = direct(&p.g) && p.nb == 1;
    if (p.direct)
        snprintf(c->impl, sizeof c->impl, "gemm-1x1");
    else if (p.nb == 1)
        snprintf(c->impl, sizeof c->impl, "im2col+gemm");
    else
        snprintf(c->impl, sizeof c->impl, "im2col+gemm x%lld", (long long)p.nb);
    p.col = workspace(c, i);
    p.t = gep(c, p.col, ci(c, p.ckk * p.cols));
    return p;
}

/* dst[o][j*ohw + q] = src_(img0+j)[o][q] for the chunk, or the reverse. */
static void gather_chunk(sc_codegen *c, const conv_plan *p, LLVMValueRef nchw, LLVMValueRef img0, LLVMValueRef t,
                         int to_nchw)
{
    loop Lj, Lo, Lq;
    LLVMValueRef j = loop_begin(c, &Lj, p->nb);
    LLVMValueRef img = gep(c, nchw, imul(c, iadd(c, img0, j), ci(c, p->o * p->ohw)));
    LLVMValueRef o = loop_begin(c, &Lo, p->o);
    LLVMValueRef a = gep(c, img, imul(c, o, ci(c, p->ohw)));
    LLVMValueRef b = gep(c, t, iadd(c, imul(c, o, ci(c, p->cols)), imul(c, j, ci(c, p->ohw))));
    LLVMValueRef q = loop_begin(c, &Lq, p->ohw);
    if (to_nchw)
        st(c, a, q, ld(c, b, q));
    else
        st(c, b, q, ld(c, a, q));
    loop_end(c, &Lq);
    loop_end(c, &Lo);
    loop_end(c, &Lj);
}

/* im2col of every image of the chunk into p->col. */
static void chunk_columns(sc_codegen *c, const conv_plan *p, LLVMValueRef X, LLVMValueRef img0, int reverse)
{
    loop Lj;
    LLVMValueRef j = loop_begin(c, &Lj, p->nb);
    LLVMValueRef xn = gep(c, X, imul(c, iadd(c, img0, j), ci(c, p->g.c * p->g.h * p->g.w)));
    im2col(c, &p->g, xn, gep(c, p->col, imul(c, j, ci(c, p->ohw))), p->cols, reverse);
    loop_end(c, &Lj);
}

/* ---- shift+gemm (convplan.h) ---- */

typedef struct {
    sc_shift_geom s;
    LLVMValueRef xp, t, wt;  /* workspace: padded source, GEMM output, per-tap weights */
} shift_plan;

static shift_plan plan_shift(sc_codegen *c, int i)
{
    shift_plan p;
    p.s = sc_conv_shift_geom(c->g, i, c->mp->opts.threads);
    p.xp = workspace(c, i);
    p.t = gep(c, p.xp, ci(c, p.s.cs * p.s.stride));
    p.wt = gep(c, p.t, ci(c, p.s.cd * p.s.stride));
    snprintf(c->impl, sizeof c->impl, "shift+gemm x%lld", (long long)p.s.nb);
    return p;
}

/* dst[ch][j*plane + (h+p)*wp + p + w] = src_(img0+j)[ch][h][w], zero
 * around: the chunk's images padded, side by side in each channel row. */
static void shift_pad(sc_codegen *c, const sc_shift_geom *s, LLVMValueRef src, LLVMValueRef img0, LLVMValueRef dst)
{
    zero(c, dst, s->cs * s->stride);
    loop Lj, Lc, Lh, Lw;
    LLVMValueRef j = loop_begin(c, &Lj, s->nb);
    LLVMValueRef img = gep(c, src, imul(c, iadd(c, img0, j), ci(c, s->cs * s->h * s->w)));
    LLVMValueRef ch = loop_begin(c, &Lc, s->cs);
    LLVMValueRef from = gep(c, img, imul(c, ch, ci(c, s->h * s->w)));
    LLVMValueRef to = gep(c, dst, iadd(c, imul(c, ch, ci(c, s->stride)), mad(c, j, s->plane, ci(c, s->p * s->wp + s->p))));
    LLVMValueRef h = loop_begin(c, &Lh, s->h);
    LLVMValueRef frow = gep(c, from, imul(c, h, ci(c, s->w)));
    LLVMValueRef trow = gep(c, to, imul(c, h, ci(c, s->wp)));
    LLVMValueRef w = loop_begin(c, &Lw, s->w);
    st(c, trow, w, ld(c, frow, w));
    loop_end(c, &Lw);
    loop_end(c, &Lh);
    loop_end(c, &Lc);
    loop_end(c, &Lj);
}

/* Between NCHW (nchw, images img0..) and the padded grid (grid: cd rows of
 * s->stride, position j*plane + oh*wp + ow). */
static void shift_grid(sc_codegen *c, const sc_shift_geom *s, LLVMValueRef nchw, LLVMValueRef img0, LLVMValueRef grid,
                       int to_nchw)
{
    loop Lj, Lo, Lh, Lw;
    LLVMValueRef j = loop_begin(c, &Lj, s->nb);
    LLVMValueRef img = gep(c, nchw, imul(c, iadd(c, img0, j), ci(c, s->cd * s->oh * s->ow)));
    LLVMValueRef o = loop_begin(c, &Lo, s->cd);
    LLVMValueRef a = gep(c, img, imul(c, o, ci(c, s->oh * s->ow)));
    LLVMValueRef b = gep(c, grid, iadd(c, imul(c, o, ci(c, s->stride)), imul(c, j, ci(c, s->plane))));
    LLVMValueRef h = loop_begin(c, &Lh, s->oh);
    LLVMValueRef arow = gep(c, a, imul(c, h, ci(c, s->ow)));
    LLVMValueRef brow = gep(c, b, imul(c, h, ci(c, s->wp)));
    LLVMValueRef w = loop_begin(c, &Lw, s->ow);
    if (to_nchw)
        st(c, arow, w, ld(c, brow, w));
    else
        st(c, brow, w, ld(c, arow, w));
    loop_end(c, &Lw);
    loop_end(c, &Lh);
    loop_end(c, &Lo);
    loop_end(c, &Lj);
}

/* wt[tap][d][e] = W[o][ci][kh][kw] for the GEMM's tap = kh*k + kw: the
 * forward pass takes (d, e) = (o, ci); the data gradient, a convolution
 * of dy, takes (d, e) = (ci, o) with the taps flipped. */
static void shift_weights(sc_codegen *c, const sc_shift_geom *s, LLVMValueRef W, LLVMValueRef wt, int flip)
{
    int64_t kk = s->k * s->k, O = flip ? s->cs : s->cd, C = flip ? s->cd : s->cs;
    loop Lo, Lc, Lt;
    LLVMValueRef o = loop_begin(c, &Lo, O);
    LLVMValueRef ch = loop_begin(c, &Lc, C);
    LLVMValueRef wrow = gep(c, W, imul(c, mad(c, o, C, ch), ci(c, kk)));
    LLVMValueRef tap = loop_begin(c, &Lt, kk);
    LLVMValueRef dst = flip ? iadd(c, imul(c, isub(c, ci(c, kk - 1), tap), ci(c, C * O)), mad(c, ch, O, o))
                            : iadd(c, imul(c, tap, ci(c, O * C)), mad(c, o, C, ch));
    st(c, wt, dst, ld(c, wrow, tap));
    loop_end(c, &Lt);
    loop_end(c, &Lc);
    loop_end(c, &Lo);
}

/* out[d][q] = sum over taps of wt[tap] . xp[.][q + kh*wp + kw]: the
 * convolution on the padded grid. */
static void shift_gemms(sc_codegen *c, const shift_plan *p)
{
    const sc_shift_geom *s = &p->s;
    loop Lt;
    LLVMValueRef tap = loop_begin(c, &Lt, s->k * s->k);
    LLVMValueRef kh = LLVMBuildSDiv(c->b, tap, ci(c, s->k), ""), kw = LLVMBuildSRem(c->b, tap, ci(c, s->k), "");
    LLVMValueRef b = gep(c, p->xp, mad(c, kh, s->wp, kw));
    LLVMValueRef a = gep(c, p->wt, imul(c, tap, ci(c, s->cd * s->cs)));
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, tap, ci(c, 0), ""), cf(c, 0), cf(c, 1), "");
    sgemm(c, 0, 0, s->cd, s->npos, s->cs, a, s->cs, b, s->stride, beta, p->t, s->stride);
    loop_end(c, &Lt);
}

/* Forward (flip 0) or data gradient (flip 1) by shifted GEMMs. */
static void lower_conv_shift(sc_codegen *c, int i, int flip)
{
    const sc_node *n = &c->g->n[i];
    shift_plan p = plan_shift(c, i);
    LLVMValueRef SRC = tensor(c, n->in[0]), W = tensor(c, n->in[1]), DST = tensor(c, n->out[0]);
    shift_weights(c, &p.s, W, p.wt, flip);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &Ln, p.s.n / p.s.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.s.nb));
    shift_pad(c, &p.s, SRC, img0, p.xp);
    shift_gemms(c, &p);
    shift_grid(c, &p.s, DST, img0, p.t, 1);
    if (!flip && n->nin > 2) {
        LLVMValueRef B = tensor(c, n->in[2]);
        loop Lj, Lo, Lq;
        LLVMValueRef j = loop_begin(c, &Lj, p.s.nb);
        LLVMValueRef yn = gep(c, DST, imul(c, iadd(c, img0, j), ci(c, p.s.cd * p.s.oh * p.s.ow)));
        LLVMValueRef oc = loop_begin(c, &Lo, p.s.cd);
        LLVMValueRef bv = ld(c, B, oc);
        LLVMValueRef row = gep(c, yn, imul(c, oc, ci(c, p.s.oh * p.s.ow)));
        LLVMValueRef q = loop_begin(c, &Lq, p.s.oh * p.s.ow);
        st(c, row, q, fadd(c, ld(c, row, q), bv));
        loop_end(c, &Lq);
        loop_end(c, &Lo);
        loop_end(c, &Lj);
    }
    loop_end(c, &Ln);
}

/* Weight gradient by shifted GEMMs: dW[tap] += dy_grid . xp_shifted^T per
 * chunk into per-tap sums, then rearranged into target's [O][C][k][k]. */
static void shift_bwd_weight(sc_codegen *c, int i, LLVMValueRef DY, LLVMValueRef X, LLVMValueRef target)
{
    shift_plan p = plan_shift(c, i);
    const sc_shift_geom *s = &p.s; /* src x: cs = C; dst dy: cd = O */
    LLVMValueRef dyg = p.t, acc = p.wt;
    int64_t kk = s->k * s->k;
    loop Ln, Lt;
    LLVMValueRef chunk = par_loop(c, &Ln, s->n / s->nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, s->nb));
    shift_pad(c, s, X, img0, p.xp);
    zero(c, dyg, s->cd * s->stride); /* off-grid positions contribute nothing */
    shift_grid(c, s, DY, img0, dyg, 0);
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, c->arg_lo, ""), cf(c, 0), cf(c, 1), "");
    LLVMValueRef tap = loop_begin(c, &Lt, kk);
    LLVMValueRef kh = LLVMBuildSDiv(c->b, tap, ci(c, s->k), ""), kw = LLVMBuildSRem(c->b, tap, ci(c, s->k), "");
    LLVMValueRef b = gep(c, p.xp, mad(c, kh, s->wp, kw));
    sgemm(c, 0, 1, s->cd, s->cs, s->npos, dyg, s->stride, b, s->stride, beta, gep(c, acc, imul(c, tap, ci(c, s->cd * s->cs))),
          s->cs);
    loop_end(c, &Lt);
    loop_end(c, &Ln);
    branch Bany;
    if_begin(c, &Bany, LLVMBuildICmp(c->b, LLVMIntSLT, c->arg_lo, c->arg_hi, ""));
    loop Lo, Lc, Lk;
    LLVMValueRef o = loop_begin(c, &Lo, s->cd);
    LLVMValueRef ch = loop_begin(c, &Lc, s->cs);
    LLVMValueRef trow = gep(c, target, imul(c, mad(c, o, s->cs, ch), ci(c, kk)));
    LLVMValueRef src = mad(c, o, s->cs, ch);
    LLVMValueRef k = loop_begin(c, &Lk, kk);
    st(c, trow, k, ld(c, acc, iadd(c, imul(c, k, ci(c, s->cd * s->cs)), src)));
    loop_end(c, &Lk);
    loop_end(c, &Lc);
    loop_end(c, &Lo);
    if_end(c, &Bany);
}

static int conv_shift(sc_codegen *c, int i)
{
    return sc_conv_choose(c->g, i, &c->mp->opts) == SC_CONV_SHIFT;
}

static void lower_conv(sc_codegen *c, int i)
{
    if (conv_shift(c, i)) {
        lower_conv_shift(c, i, 0);
        return;
    }
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]], *w = &c->g->t[n->in[1]], *y = &c->g->t[n->out[0]];
    conv_plan p = plan_conv(c, i, x, y, w->shape[0]);
    LLVMValueRef X = tensor(c, n->in[0]), W = tensor(c, n->in[1]), Y = tensor(c, n->out[0]);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &Ln, p.n / p.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.nb));
    if (p.direct) {
        LLVMValueRef xn = gep(c, X, imul(c, img0, ci(c, p.g.c * p.g.h * p.g.w)));
        LLVMValueRef yn = gep(c, Y, imul(c, img0, ci(c, p.o * p.ohw)));
        sgemm(c, 0, 0, p.o, p.ohw, p.g.c, W, p.g.c, xn, p.ohw, cf(c, 0), yn, p.ohw);
    } else if (p.nb == 1) {
        LLVMValueRef yn = gep(c, Y, imul(c, img0, ci(c, p.o * p.ohw)));
        chunk_columns(c, &p, X, img0, 0);
        sgemm(c, 0, 0, p.o, p.ohw, p.ckk, W, p.ckk, p.col, p.ohw, cf(c, 0), yn, p.ohw);
    } else {
        chunk_columns(c, &p, X, img0, 0);
        sgemm(c, 0, 0, p.o, p.cols, p.ckk, W, p.ckk, p.col, p.cols, cf(c, 0), p.t, p.cols);
        gather_chunk(c, &p, Y, img0, p.t, 1);
    }
    if (n->nin > 2) {
        LLVMValueRef B = tensor(c, n->in[2]);
        loop Lj, Lo, Lp;
        LLVMValueRef j = loop_begin(c, &Lj, p.nb);
        LLVMValueRef yn = gep(c, Y, imul(c, iadd(c, img0, j), ci(c, p.o * p.ohw)));
        LLVMValueRef oc = loop_begin(c, &Lo, p.o);
        LLVMValueRef bv = ld(c, B, oc);
        LLVMValueRef row = gep(c, yn, imul(c, oc, ci(c, p.ohw)));
        LLVMValueRef q = loop_begin(c, &Lp, p.ohw);
        st(c, row, q, fadd(c, ld(c, row, q), bv));
        loop_end(c, &Lp);
        loop_end(c, &Lo);
        loop_end(c, &Lj);
    }
    loop_end(c, &Ln);
}

static void lower_conv_bwd_data(sc_codegen *c, int i)
{
    if (conv_shift(c, i)) {
        lower_conv_shift(c, i, 1);
        return;
    }
    const sc_node *n = &c->g->n[i];
    const sc_tensor *dy = &c->g->t[n->in[0]], *w = &c->g->t[n->in[1]], *dx = &c->g->t[n->out[0]];
    conv_plan p = plan_conv(c, i, dx, dy, w->shape[0]);
    LLVMValueRef DY = tensor(c, n->in[0]), W = tensor(c, n->in[1]), DX = tensor(c, n->out[0]);
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &Ln, p.n / p.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.nb));
    int64_t chw = p.g.c * p.g.h * p.g.w;
    if (!p.direct) /* col2im accumulates into the chunk's images */
        zero(c, gep(c, DX, imul(c, img0, ci(c, chw))), p.nb * chw);
    if (p.direct) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, p.o * p.ohw)));
        LLVMValueRef dxn = gep(c, DX, imul(c, img0, ci(c, p.g.c * p.g.h * p.g.w)));
        sgemm(c, 1, 0, p.g.c, p.ohw, p.o, W, p.g.c, dyn, p.ohw, cf(c, 0), dxn, p.ohw);
    } else if (p.nb == 1) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, p.o * p.ohw)));
        sgemm(c, 1, 0, p.ckk, p.ohw, p.o, W, p.ckk, dyn, p.ohw, cf(c, 0), p.col, p.ohw);
        chunk_columns(c, &p, DX, img0, 1);
    } else {
        gather_chunk(c, &p, DY, img0, p.t, 0);
        sgemm(c, 1, 0, p.ckk, p.cols, p.o, W, p.ckk, p.t, p.cols, cf(c, 0), p.col, p.cols);
        chunk_columns(c, &p, DX, img0, 1);
    }
    loop_end(c, &Ln);
}

static void lower_conv_bwd_weight(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *dy = &c->g->t[n->in[0]], *x = &c->g->t[n->in[1]], *dw = &c->g->t[n->out[0]];
    int threads = c->mp->opts.threads;
    LLVMValueRef DY = tensor(c, n->in[0]), X = tensor(c, n->in[1]), DW = tensor(c, n->out[0]);
    int64_t used, stride = ws_stride(c, i, &used), part_at = used - dw->numel;
    c->nphases = threads > 1 ? 2 : 1;
    if (c->phase == 1) {
        /* dW += the other threads' partial sums, in blocks over threads */
        enum { BLOCK = 4096 };
        snprintf(c->impl, sizeof c->impl, "sum of partials");
        LLVMValueRef T = runtime_threads(c);
        loop Lb, Lt, Lk;
        LLVMValueRef blk = par_loop(c, &Lb, (dw->numel + BLOCK - 1) / BLOCK);
        LLVMValueRef k0 = imul(c, blk, ci(c, BLOCK));
        LLVMValueRef k1 = imin(c, iadd(c, k0, ci(c, BLOCK)), ci(c, dw->numel));
        LLVMValueRef t = loop_range(c, &Lt, ci(c, 1), T);
        LLVMValueRef part = gep(c, c->arg_ws, iadd(c, imul(c, t, ci(c, stride)), ci(c, part_at)));
        LLVMValueRef k = loop_range(c, &Lk, k0, k1);
        st(c, DW, k, fadd(c, ld(c, DW, k), ld(c, part, k)));
        loop_end(c, &Lk);
        loop_end(c, &Lt);
        loop_end(c, &Lb);
        return;
    }
    conv_plan p = plan_conv(c, i, x, dy, dw->shape[0]);
    /* Thread 0 sums its chunks into dW, the others into their partials. */
    LLVMValueRef target = DW;
    if (threads > 1) {
        LLVMValueRef part = gep(c, workspace(c, i), ci(c, part_at));
        target = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, c->arg_tid, ci(c, 0), ""), DW, part, "");
        branch Be;
        if_begin(c, &Be, LLVMBuildICmp(c->b, LLVMIntEQ, c->arg_lo, c->arg_hi, ""));
        zero(c, target, dw->numel);
        if_end(c, &Be);
    }
    DW = target;
    if (conv_shift(c, i)) {
        shift_bwd_weight(c, i, DY, X, DW);
        return;
    }
    loop Ln;
    LLVMValueRef chunk = par_loop(c, &Ln, p.n / p.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.nb));
    /* The slice's first chunk overwrites, the others accumulate. */
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, c->arg_lo, ""), cf(c, 0), cf(c, 1), "");
    if (p.direct) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, p.o * p.ohw)));
        LLVMValueRef xn = gep(c, X, imul(c, img0, ci(c, p.g.c * p.g.h * p.g.w)));
        sgemm(c, 0, 1, p.o, p.g.c, p.ohw, dyn, p.ohw, xn, p.ohw, beta, DW, p.g.c);
    } else if (p.nb == 1) {
        LLVMValueRef dyn = gep(c, DY, imul(c, img0, ci(c, p.o * p.ohw)));
        chunk_columns(c, &p, X, img0, 0);
        sgemm(c, 0, 1, p.o, p.ckk, p.ohw, dyn, p.ohw, p.col, p.ohw, beta, DW, p.ckk);
    } else {
        gather_chunk(c, &p, DY, img0, p.t, 0);
        chunk_columns(c, &p, X, img0, 0);
        sgemm(c, 0, 1, p.o, p.ckk, p.cols, p.t, p.cols, p.col, p.cols, beta, DW, p.ckk);
    }
    loop_end(c, &Ln);
}

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

static LLVMValueRef relu(sc_codegen *c, LLVMValueRef v)
{
    return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, v, cf(c, 0), ""), v, cf(c, 0), "");
}

/* dy where the mask y is positive, else 0 */
static LLVMValueRef masked(sc_codegen *c, LLVMValueRef dy, LLVMValueRef y)
{
    return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, y, cf(c, 0), ""), dy, cf(c, 0), "");
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
static void lower_batchnorm(sc_codegen *c, int i)
{
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
        c->nphases = 3;
        m = fmul(c, m, call(c, c->ranks_t, c->ranks_fn, NULL, 0));
    }
    LLVMValueRef S = c->arg_ws; /* MPI: [C] sums, [C] squared deviations */
    loop Lc;
    LLVMValueRef ch = par_loop(c, &Lc, C);
    if (!c->mpi || c->phase == 0) {
        set(c, b.acc1, cd(c, 0));
        for_channel(c, N, C, HW, ch, bn_sum, &b);
        if (c->mpi) {
            LLVMBuildStore(c->b, get(c, b.acc1, c->f64), gep64(c, S, ch));
            c->hook = 1, c->hook_off = 0, c->hook_n = C;
            loop_end(c, &Lc);
            return;
        }
        b.mean = fdiv(c, get(c, b.acc1, c->f64), m);
    } else
        b.mean = fdiv(c, LLVMBuildLoad2(c->b, c->f64, gep64(c, S, ch), ""), m);
    if (!c->mpi || c->phase == 1) {
        set(c, b.acc1, cd(c, 0));
        for_channel(c, N, C, HW, ch, bn_sqdev, &b);
        if (c->mpi) {
            LLVMBuildStore(c->b, get(c, b.acc1, c->f64), gep64(c, S, iadd(c, ch, ci(c, C))));
            c->hook = 1, c->hook_off = C, c->hook_n = C;
            loop_end(c, &Lc);
            return;
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
}

static void lower_batchnorm_eval(sc_codegen *c, int i)
{
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
    LLVMValueRef ch = par_loop(c, &Lc, C);
    LLVMValueRef scale = fmul(c, fext(c, ld(c, G, ch)), inv_std(c, fext(c, ld(c, RV, ch)), n->eps));
    b.k1 = ftrunc(c, scale);
    b.k2 = ftrunc(c, fsub(c, fext(c, ld(c, B, ch)), fmul(c, fext(c, ld(c, RM, ch)), scale)));
    for_channel(c, N, C, HW, ch, bn_apply, &b);
    loop_end(c, &Lc);
}

/* dgamma and dbeta are this rank's sums (the ranks' gradients are
 * averaged later); dx uses the sums over all ranks with global batchnorm. */
static void lower_batchnorm_bwd(sc_codegen *c, int i)
{
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
        c->nphases = 2;
        m = fmul(c, m, call(c, c->ranks_t, c->ranks_fn, NULL, 0));
    }
    loop Lc;
    LLVMValueRef ch = par_loop(c, &Lc, C);
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
            c->hook = 1, c->hook_off = 0, c->hook_n = 2 * C;
            loop_end(c, &Lc);
            return;
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
}

static void lower_bn_running(sc_codegen *c, int i)
{
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
}

static void lower_bias_bwd(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *dy = &c->g->t[n->in[0]];
    int64_t N, C, HW;
    nchw(dy, &N, &C, &HW);
    bnctx b = {0};
    b.dy = tensor(c, n->in[0]);
    LLVMValueRef DB = tensor(c, n->out[0]);
    b.acc1 = var(c, c->f64, cd(c, 0));
    loop Lc;
    LLVMValueRef ch = par_loop(c, &Lc, C);
    set(c, b.acc1, cd(c, 0));
    for_channel(c, N, C, HW, ch, bias_sum, &b);
    st(c, DB, ch, ftrunc(c, get(c, b.acc1, c->f64)));
    loop_end(c, &Lc);
}

/* ---- elementwise ---- */

static void lower_elementwise(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]];
    LLVMValueRef A = tensor(c, n->in[0]), Y = tensor(c, n->out[0]);
    LLVMValueRef B = n->nin > 1 ? tensor(c, n->in[1]) : NULL;
    enum { BLOCK = 16384 };
    loop Lb, L;
    LLVMValueRef blk = par_loop(c, &Lb, (x->numel + BLOCK - 1) / BLOCK);
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
}

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
    LLVMValueRef X, DX, best, arg, g;
} poolctx;

static void win_max(sc_codegen *c, LLVMValueRef xi, void *p)
{
    poolctx *q = p;
    LLVMValueRef v = ld(c, q->X, xi), b = get(c, q->best, c->elt);
    set(c, q->best, LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, v, b, ""), v, b, ""));
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

static void lower_pool(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_MAXPOOL_BWD || n->op == SC_OP_AVGPOOL_BWD;
    int max = n->op == SC_OP_MAXPOOL || n->op == SC_OP_MAXPOOL_BWD;
    /* forward x/y shapes */
    const sc_tensor *x = bwd ? &c->g->t[n->out[0]] : &c->g->t[n->in[0]];
    const sc_tensor *y = bwd ? &c->g->t[n->in[0]] : &c->g->t[n->out[0]];
    int64_t H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3], K = n->kernel;
    poolctx q = {0};
    q.X = max && bwd ? tensor(c, n->in[1]) : bwd ? NULL : tensor(c, n->in[0]);
    LLVMValueRef Y = bwd ? tensor(c, n->in[0]) : tensor(c, n->out[0]); /* y or dy */
    q.DX = bwd ? tensor(c, n->out[0]) : NULL;
    q.best = var(c, c->elt, cf(c, 0));
    q.arg = var(c, c->i64, ci(c, 0));
    loop Lp, Loh, Low;
    LLVMValueRef plane = par_loop(c, &Lp, (int64_t)x->shape[0] * x->shape[1]);
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
        /* Start from the first in-bounds element (pad <= kernel/2 makes
         * one exist). */
        LLVMValueRef first = iadd(c, xoff, mad(c, imax(c, h0, ci(c, 0)), W, imax(c, w0, ci(c, 0))));
        set(c, q.best, ld(c, q.X, first));
        for_window(c, xoff, h0, w0, K, H, W, win_max, &q);
        if (bwd) {
            /* The first element equal to the maximum, in straight-line
             * code: taps in reverse scan order, each a select, so no
             * branch depends on the data; out-of-bounds taps read the
             * first element and never hit. NaN equals nothing: its
             * gradient goes to the first element. */
            LLVMValueRef a = first, best = get(c, q.best, c->elt);
            for (int64_t t = K * K - 1; t >= 0; t--) {
                LLVMValueRef ih = iadd(c, h0, ci(c, t / K)), iw = iadd(c, w0, ci(c, t % K));
                LLVMValueRef ok = LLVMBuildAnd(
                    c->b,
                    LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                 LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, H), ""), ""),
                    LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, iw, ci(c, 0), ""),
                                 LLVMBuildICmp(c->b, LLVMIntSLT, iw, ci(c, W), ""), ""),
                    "");
                LLVMValueRef xi = LLVMBuildSelect(c->b, ok, iadd(c, xoff, mad(c, ih, W, iw)), first, "");
                LLVMValueRef hit = LLVMBuildAnd(c->b, ok, LLVMBuildFCmp(c->b, LLVMRealOEQ, ld(c, q.X, xi), best, ""), "");
                a = LLVMBuildSelect(c->b, hit, xi, a, "");
            }
            st(c, q.DX, a, fadd(c, ld(c, q.DX, a), ld(c, Y, yi)));
        } else
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
}

static void lower_global_avgpool(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_GLOBAL_AVGPOOL_BWD;
    const sc_tensor *x = bwd ? &c->g->t[n->out[0]] : &c->g->t[n->in[0]];
    int64_t planes = (int64_t)x->shape[0] * x->shape[1], hw = x->numel / planes;
    LLVMValueRef A = tensor(c, n->in[0]), Y = tensor(c, n->out[0]);
    LLVMValueRef acc = var(c, c->f64, cd(c, 0));
    loop Lp, Lk;
    LLVMValueRef p = par_loop(c, &Lp, planes);
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
}

/* ---- linear ---- */

static void lower_linear(sc_codegen *c, int i)
{
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
}

/* ---- L2 normalisation ---- */

static void lower_l2norm(sc_codegen *c, int i)
{
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
}

/* ---- NT-Xent ---- */

/* S = Z Z^T into the workspace; then per row i the log-sum-exp over j != i
 * of S_ij / t. Forward: loss = mean_i (lse_i - S_i,pos(i) / t). Backward:
 * G_ij = (softmax_ij - [j = pos(i)]) / (2N t), and dZ = (G + G^T) Z. */
static void lower_ntxent(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_NTXENT_BWD;
    const sc_tensor *z = &c->g->t[n->in[0]];
    int64_t rows = z->shape[0], d = z->shape[1], half = rows / 2;
    double inv_t = 1.0 / n->temperature;
    LLVMValueRef Z = tensor(c, n->in[0]), OUT = tensor(c, n->out[0]), S = workspace(c, i);
    if (c->mpi) { /* over all ranks' projections: the communicator's */
        snprintf(c->impl, sizeof c->impl, "all-gather");
        if (bwd) {
            LLVMValueRef a[3] = {OUT, ci(c, rows), ci(c, d)};
            call(c, c->ntxb_t, c->ntxb_fn, a, 3);
        } else {
            LLVMValueRef a[5] = {Z, ci(c, rows), ci(c, d), cd(c, n->temperature), OUT};
            call(c, c->ntx_t, c->ntx_fn, a, 5);
        }
        return;
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
        return;
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
}

/* ---- softmax cross-entropy (supervised fine-tuning) ---- */

static void lower_softmax_xent(sc_codegen *c, int i)
{
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
}

/* ---- kernels and entry points ---- */

static void lower_node(sc_codegen *c, int i)
{
    switch (c->g->n[i].op) {
    case SC_OP_CONV2D: lower_conv(c, i); break;
    case SC_OP_CONV2D_BWD_DATA: lower_conv_bwd_data(c, i); break;
    case SC_OP_CONV2D_BWD_WEIGHT: lower_conv_bwd_weight(c, i); break;
    case SC_OP_BIAS_BWD: lower_bias_bwd(c, i); break;
    case SC_OP_BATCHNORM:
    case SC_OP_BATCHNORM_RELU: lower_batchnorm(c, i); break;
    case SC_OP_BATCHNORM_EVAL: lower_batchnorm_eval(c, i); break;
    case SC_OP_BATCHNORM_BWD:
    case SC_OP_BATCHNORM_RELU_BWD: lower_batchnorm_bwd(c, i); break;
    case SC_OP_BN_RUNNING: lower_bn_running(c, i); break;
    case SC_OP_RELU:
    case SC_OP_RELU_BWD:
    case SC_OP_ADD:
    case SC_OP_ADD_RELU:
    case SC_OP_ADD_RELU_BWD:
    case SC_OP_RESHAPE: lower_elementwise(c, i); break;
    case SC_OP_MAXPOOL:
    case SC_OP_MAXPOOL_BWD:
    case SC_OP_AVGPOOL:
    case SC_OP_AVGPOOL_BWD: lower_pool(c, i); break;
    case SC_OP_GLOBAL_AVGPOOL:
    case SC_OP_GLOBAL_AVGPOOL_BWD: lower_global_avgpool(c, i); break;
    case SC_OP_LINEAR:
    case SC_OP_LINEAR_BWD_DATA:
    case SC_OP_LINEAR_BWD_WEIGHT: lower_linear(c, i); break;
    case SC_OP_L2NORM:
    case SC_OP_L2NORM_BWD: lower_l2norm(c, i); break;
    case SC_OP_NTXENT:
    case SC_OP_NTXENT_BWD: lower_ntxent(c, i); break;
    case SC_OP_SOFTMAX_XENT:
    case SC_OP_SOFTMAX_XENT_BWD: lower_softmax_xent(c, i); break;
    case SC_OP_COUNT: break;
    }
}

static void add_attr(sc_codegen *c, LLVMValueRef fn, unsigned idx, const char *name, uint64_t val)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(c->ctx, kind, val));
}

/* What makes two nodes' kernels identical: the op, its attributes, the
 * shapes of every operand, the workspace, the phase, and which operands
 * share storage (in place: no noalias on those). */
static void kernel_key(const sc_graph *g, const sc_memplan *mp, int i, int phase, char *key, size_t len)
{
    const sc_node *n = &g->n[i];
    size_t k = (size_t)snprintf(key, len, "%d:%d,%d,%d:%.17g,%.17g,%.17g:%lld:p%d:a%x", n->op, n->kernel, n->stride,
                                n->pad, n->eps, n->momentum, n->temperature, (long long)mp->ws_floats[i], phase,
                                sc_memplan_aliases(g, mp, i));
    for (int s = 0; s < n->nin + n->nout && k < len; s++) {
        const sc_tensor *t = &g->t[s < n->nin ? n->in[s] : n->out[s - n->nin]];
        k += (size_t)snprintf(key + k, len - k, "|");
        for (int d = 0; d < t->ndim && k < len; d++)
            k += (size_t)snprintf(key + k, len - k, "%d,", t->shape[d]);
    }
    if (n->op == SC_OP_BN_RUNNING && k < len) {
        /* the element count per channel behind the statistics */
        const sc_tensor *bx = &g->t[g->n[g->t[n->in[0]].producer].in[0]];
        snprintf(key + k, len - k, "#%ld", bx->numel);
    }
}

static void oom(void)
{
    fprintf(stderr, "simclrc: error: out of memory\n");
    exit(3);
}

/* The sc_parallel_for wrapper of kernel k: task(ctx, lo, hi, tid) loads
 * the kernel's pointer arguments from the array ctx and calls it. */
static LLVMValueRef task_for(sc_codegen *c, const kern *k, int nptr, const char *name)
{
    char tname[SC_NAME_MAX + 80];
    snprintf(tname, sizeof tname, "%s.task", name);
    LLVMValueRef fn = LLVMAddFunction(c->mod, tname, c->task_t);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, bb);
    LLVMValueRef args[SC_MAX_IN + SC_MAX_OUT + 4];
    LLVMValueRef ctx = LLVMGetParam(fn, 0);
    for (int j = 0; j < nptr; j++) {
        LLVMValueRef idx = ci(c, j);
        args[j] = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildGEP2(c->b, c->ptr, ctx, &idx, 1, ""), "");
    }
    for (int j = 0; j < 3; j++)
        args[nptr + j] = LLVMGetParam(fn, (unsigned)(j + 1));
    call(c, k->type, k->fn, args, (unsigned)nptr + 3);
    LLVMBuildRetVoid(c->b);
    return fn;
}

/* The kernel of phase `phase` of node i (found by signature, or
 * generated); sets *nphases. Returns its index in c->kern. */
static int kernel_for(sc_codegen *c, int i, int phase, const char *prefix, int *nphases)
{
    char key[512];
    kernel_key(c->g, c->mp, i, phase, key, sizeof key);
    for (int k = 0; k < c->nk; k++)
        if (!strcmp(c->kern[k].key, key)) {
            *nphases = c->kern[k].nphases;
            return k;
        }
    const sc_node *n = &c->g->n[i];
    int nptr = n->nin + n->nout + 1;
    LLVMTypeRef args[SC_MAX_IN + SC_MAX_OUT + 4];
    for (int k = 0; k < nptr; k++)
        args[k] = c->ptr;
    for (int k = 0; k < 3; k++)
        args[nptr + k] = c->i64;
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, (unsigned)nptr + 3, 0);
    char name[SC_NAME_MAX + 64];
    snprintf(name, sizeof name, "%s%s.%s%s", prefix, sc_op_name(n->op), n->label, phase ? (phase == 1 ? ".1" : ".2") : "");
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, ft);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    /* Operands do not overlap (the memory plan keeps simultaneously live
     * tensors apart), so pointers are noalias, except those that share
     * storage with another operand (in place, memplan.h). */
    unsigned aliased = sc_memplan_aliases(c->g, c->mp, i);
    for (unsigned k = 1; k <= (unsigned)nptr; k++) {
        if (!(aliased >> (k - 1) & 1u))
            add_attr(c, fn, k, "noalias", 0);
        add_attr(c, fn, k, "nocapture", 0);
    }
    add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);

    c->fn = fn;
    c->node = i;
    c->phase = phase;
    c->nphases = 1;
    c->par_n = 1;
    c->hook = 0;
    snprintf(c->impl, sizeof c->impl, "%s", n->op == SC_OP_LINEAR || n->op == SC_OP_LINEAR_BWD_DATA ||
                                                     n->op == SC_OP_LINEAR_BWD_WEIGHT ? "gemm" : "loop");
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    LLVMBuildBr(c->b, body);
    LLVMPositionBuilderAtEnd(c->b, body);
    for (int k = 0; k < n->nin; k++)
        c->arg_in[k] = LLVMGetParam(fn, (unsigned)k);
    for (int k = 0; k < n->nout; k++)
        c->arg_out[k] = LLVMGetParam(fn, (unsigned)(n->nin + k));
    c->arg_ws = LLVMGetParam(fn, (unsigned)(nptr - 1));
    c->arg_lo = LLVMGetParam(fn, (unsigned)nptr);
    c->arg_hi = LLVMGetParam(fn, (unsigned)nptr + 1);
    c->arg_tid = LLVMGetParam(fn, (unsigned)nptr + 2);
    lower_node(c, i);
    LLVMBuildRetVoid(c->b);
    *nphases = c->nphases;

    kern *kk = realloc(c->kern, (size_t)(c->nk + 1) * sizeof *kk);
    if (!kk)
        oom();
    c->kern = kk;
    kern *k = &c->kern[c->nk];
    *k = (kern){strdup(key), fn, NULL, ft, c->par_n, c->nphases, c->hook, c->hook_off, c->hook_n, strdup(c->impl)};
    if (!k->key || !k->impl)
        oom();
    if (k->extent > 1 && c->mp->opts.threads > 1)
        k->task = task_for(c, k, nptr, name);
    return c->nk++;
}

/* if (sc_prof_on) sc_prof_node(i) */
static void prof_mark(sc_codegen *c, LLVMValueRef fn, int i)
{
    LLVMValueRef on = LLVMBuildLoad2(c->b, c->i32, c->prof_on, "");
    LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(c->ctx, fn, "prof");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, on, LLVMConstInt(c->i32, 0, 0), ""), yes, next);
    LLVMPositionBuilderAtEnd(c->b, yes);
    LLVMValueRef a = LLVMConstInt(c->i32, (unsigned long long)i, 1);
    call(c, c->prof_t, c->prof_fn, &a, 1);
    LLVMBuildBr(c->b, next);
    LLVMPositionBuilderAtEnd(c->b, next);
}

/* Graphs of more nodes than ENTRY_SPLIT_NODES (the shipped models have
 * at most 367) get their entry point in parts of ENTRY_PART_NODES. */
#define ENTRY_SPLIT_NODES 1024
#define ENTRY_PART_NODES 256

/* Opens fn's entry block; base gets each region's pointer (map: fn's
 * parameter number per region, -1 for none). */
static void begin_part(sc_codegen *c, LLVMValueRef fn, const int *map, LLVMValueRef *base)
{
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    for (int r = 0; r < SC_REG_COUNT; r++)
        base[r] = map[r] < 0 ? LLVMConstNull(c->ptr) : LLVMGetParam(fn, (unsigned)map[r]);
}

/* The calls of nodes [lo, hi) of c->g into fn, at the builder. */
static void emit_nodes(sc_codegen *c, LLVMValueRef fn, const LLVMValueRef *base, int lo, int hi, int (*ks)[3],
                       const int *np, int step)
{
    const sc_graph *g = c->g;
    const sc_memplan *mp = c->mp;
    LLVMValueRef ctxarr = LLVMBuildAlloca(c->b, LLVMArrayType2(c->ptr, SC_MAX_IN + SC_MAX_OUT + 1), "ctx");
    int hooks = step && c->mpi;
    for (int i = lo; i < hi; i++) {
        const sc_node *n = &g->n[i];
        if (step)
            prof_mark(c, fn, i);
        LLVMValueRef args[SC_MAX_IN + SC_MAX_OUT + 4];
        int k = 0;
        for (int s = 0; s < n->nin + n->nout; s++) {
            int t = s < n->nin ? n->in[s] : n->out[s - n->nin];
            args[k++] = gep(c, base[mp->region[t]], ci(c, mp->offset[t]));
        }
        LLVMValueRef ws = mp->ws_floats[i] ? gep(c, base[SC_REG_ARENA], ci(c, mp->ws_offset[i])) : LLVMConstNull(c->ptr);
        args[k++] = ws;
        for (int p = 0; p < np[i]; p++) {
            const kern *kn = &c->kern[ks[i][p]];
            if (kn->task) {
                for (int j = 0; j < k; j++) {
                    LLVMValueRef idx[2] = {ci(c, 0), ci(c, j)};
                    LLVMBuildStore(c->b, args[j], LLVMBuildGEP2(c->b, LLVMArrayType2(c->ptr, SC_MAX_IN + SC_MAX_OUT + 1),
                                                                ctxarr, idx, 2, ""));
                }
                LLVMValueRef pa[3] = {kn->task, ctxarr, ci(c, kn->extent)};
                call(c, c->par_t, c->par_fn, pa, 3);
            } else {
                args[k] = ci(c, 0);
                args[k + 1] = ci(c, kn->extent);
                args[k + 2] = ci(c, 0);
                call(c, kn->type, kn->fn, args, (unsigned)k + 3);
            }
            if (kn->hook) {
                LLVMValueRef ha[2] = {gep64(c, ws, ci(c, kn->hook_off)), ci(c, kn->hook_n)};
                call(c, c->bnred_t, c->bnred_fn, ha, 2);
            }
        }
        for (int s = 0; hooks && s < n->nout; s++) {
            int t = n->out[s];
            if (mp->region[t] != SC_REG_GRADS)
                continue;
            LLVMValueRef ra[3] = {base[SC_REG_GRADS], ci(c, mp->offset[t]), ci(c, g->t[t].numel)};
            call(c, c->ready_t, c->ready_fn, ra, 3);
        }
    }
}

/* An entry point: sc_step(params, grads, buffers, arena, input, loss) or
 * sc_encode(params, buffers, arena, input, features); map gives, for each
 * region, the entry's parameter number (-1: none). It runs every phase of
 * every node: split over the thread pool (sc_parallel_for) or called
 * directly. The training step also marks nodes for the profiler and, in
 * data-parallel builds, hands finished gradients to the communicator. */
static void define_entry(sc_codegen *c, const sc_graph *g, const sc_memplan *mp, const char *name,
                         const char *prefix, int nparams, const int *map)
{
    int step = !strcmp(name, "sc_step");
    c->g = g;
    c->mp = mp;
    int (*ks)[3] = calloc((size_t)g->nn + 1, sizeof *ks);
    int *np = calloc((size_t)g->nn + 1, sizeof *np);
    if (!ks || !np)
        oom();
    for (int i = 0; i < g->nn; i++) {
        ks[i][0] = kernel_for(c, i, 0, prefix, &np[i]);
        for (int p = 1; p < np[i]; p++) {
            int dummy;
            ks[i][p] = kernel_for(c, i, p, prefix, &dummy);
        }
    }
    if (step) {
        free(c->step_kern);
        c->step_kern = malloc(((size_t)g->nn + 1) * sizeof *c->step_kern);
        if (!c->step_kern)
            oom();
        for (int i = 0; i < g->nn; i++)
            c->step_kern[i] = ks[i][0];
    }

    LLVMTypeRef pargs[SC_REG_COUNT];
    for (int k = 0; k < SC_REG_COUNT; k++)
        pargs[k] = c->ptr;
    LLVMTypeRef fty = LLVMFunctionType(c->vd, pargs, (unsigned)nparams, 0);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, fty);
    add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);
    LLVMValueRef base[SC_REG_COUNT];
    if (g->nn <= ENTRY_SPLIT_NODES) {
        begin_part(c, fn, map, base);
        emit_nodes(c, fn, base, 0, g->nn, ks, np, step);
    } else {
        /* Big graphs: parts of ENTRY_PART_NODES nodes, each its own
         * function that is never inlined, since LLVM's optimisation of one
         * function of tens of thousands of blocks grows faster than
         * linearly (ten minutes for 20,000 nodes). */
        int nparts = (g->nn + ENTRY_PART_NODES - 1) / ENTRY_PART_NODES;
        /* Nor the kernels: inlined, each call site's copy is optimised
         * again (most of the time for thousands of nodes). */
        for (int i = 0; i < g->nn; i++)
            for (int p = 0; p < np[i]; p++) {
                const kern *kn = &c->kern[ks[i][p]];
                if (!kn->task) /* tasks are called through the pool, never inlined */
                    add_attr(c, kn->fn, LLVMAttributeFunctionIndex, "noinline", 0);
            }
        LLVMValueRef *parts = malloc((size_t)nparts * sizeof *parts);
        if (!parts)
            oom();
        for (int p = 0; p < nparts; p++) {
            char pname[96];
            snprintf(pname, sizeof pname, "%s.part%d", name, p);
            parts[p] = LLVMAddFunction(c->mod, pname, fty);
            LLVMSetLinkage(parts[p], LLVMInternalLinkage);
            add_attr(c, parts[p], LLVMAttributeFunctionIndex, "nounwind", 0);
            add_attr(c, parts[p], LLVMAttributeFunctionIndex, "noinline", 0);
            /* A part is a list of calls: nothing to optimise, and not
             * optimising it keeps compile time linear. */
            add_attr(c, parts[p], LLVMAttributeFunctionIndex, "optnone", 0);
            LLVMValueRef pbase[SC_REG_COUNT];
            begin_part(c, parts[p], map, pbase);
            int lo = p * ENTRY_PART_NODES, hi = lo + ENTRY_PART_NODES < g->nn ? lo + ENTRY_PART_NODES : g->nn;
            emit_nodes(c, parts[p], pbase, lo, hi, ks, np, step);
            LLVMBuildRetVoid(c->b);
        }
        begin_part(c, fn, map, base);
        LLVMValueRef args[SC_REG_COUNT];
        for (int k = 0; k < nparams; k++)
            args[k] = LLVMGetParam(fn, (unsigned)k);
        for (int p = 0; p < nparts; p++)
            call(c, fty, parts[p], args, (unsigned)nparams);
        free(parts);
    }
    if (step && c->mpi)
        call(c, c->end_t, c->end_fn, &base[SC_REG_GRADS], 1);
    if (step)
        prof_mark(c, fn, -1);
    LLVMBuildRetVoid(c->b);
    free(ks);
    free(np);
}

/* ---- the model description (sc_model) ---- */

static LLVMValueRef cstr(sc_codegen *c, const char *s, const char *name)
{
    LLVMValueRef init = LLVMConstStringInContext(c->ctx, s, (unsigned)strlen(s), 0);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
    return gv;
}

/* A private constant global holding a table. */
static LLVMValueRef private_table(sc_codegen *c, LLVMValueRef arr, const char *name)
{
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(arr), name);
    LLVMSetInitializer(gv, arr);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

static LLVMValueRef i32v(sc_codegen *c, int64_t v) { return LLVMConstInt(c->i32, (unsigned long long)v, 1); }

static LLVMTypeRef param_info_type(sc_codegen *c)
{
    LLVMTypeRef f[] = {c->ptr, c->i32, LLVMArrayType2(c->i32, 4), c->i64, c->i64, c->i32, c->i32, c->i32, c->i32};
    return LLVMStructTypeInContext(c->ctx, f, 9, 0);
}

static LLVMValueRef param_table(sc_codegen *c, const sc_graph *g, const sc_memplan *mp, const int *list, int n,
                                const char *name)
{
    LLVMTypeRef pt = param_info_type(c);
    LLVMValueRef *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rows)
        return LLVMConstNull(c->ptr);
    for (int i = 0; i < n; i++) {
        const sc_tensor *t = &g->t[list[i]];
        char gname[64];
        snprintf(gname, sizeof gname, "%s.name.%d", name, i);
        LLVMValueRef dims[4];
        for (int d = 0; d < 4; d++)
            dims[d] = i32v(c, d < t->ndim ? t->shape[d] : 0);
        LLVMValueRef f[] = {cstr(c, t->name, gname), i32v(c, t->ndim), LLVMConstArray2(c->i32, dims, 4),
                            ci(c, t->numel), ci(c, mp->offset[list[i]]), i32v(c, t->init),
                            i32v(c, t->fan_in), i32v(c, t->no_decay), i32v(c, 0)};
        rows[i] = LLVMConstNamedStruct(pt, f, 9);
    }
    LLVMValueRef arr = LLVMConstArray2(pt, rows, (uint64_t)n);
    free(rows);
    return private_table(c, arr, name);
}

static LLVMValueRef aug_table(sc_codegen *c, const sc_model *m)
{
    LLVMTypeRef d3 = LLVMArrayType2(c->f64, 3);
    LLVMTypeRef f[] = {c->i32, c->i32, c->i32, c->i32, c->f64, c->f64, c->f64, c->f64, c->f64, c->f64,
                       c->f64, c->f64, c->f64, c->f64, c->f64, d3, d3};
    LLVMTypeRef at = LLVMStructTypeInContext(c->ctx, f, 17, 0);
    LLVMValueRef *rows = calloc((size_t)m->naugs + 1, sizeof *rows);
    if (!rows)
        return LLVMConstNull(c->ptr);
    for (int i = 0; i < m->naugs; i++) {
        const sc_aug *a = &m->augs[i];
        LLVMValueRef mean[3], sd[3];
        for (int k = 0; k < 3; k++) {
            mean[k] = cd(c, a->mean[k]);
            sd[k] = cd(c, a->std[k]);
        }
        LLVMValueRef v[] = {i32v(c, a->kind), i32v(c, a->size), i32v(c, a->kernel), i32v(c, 0),
                            cd(c, a->p), cd(c, a->scale_min), cd(c, a->scale_max), cd(c, a->ratio_min),
                            cd(c, a->ratio_max), cd(c, a->brightness), cd(c, a->contrast), cd(c, a->saturation),
                            cd(c, a->hue), cd(c, a->sigma_min), cd(c, a->sigma_max),
                            LLVMConstArray2(c->f64, mean, 3), LLVMConstArray2(c->f64, sd, 3)};
        rows[i] = LLVMConstNamedStruct(at, v, 17);
    }
    LLVMValueRef arr = LLVMConstArray2(at, rows, (uint64_t)m->naugs);
    free(rows);
    return private_table(c, arr, "sc.augs");
}

/* sc_step's nodes in call order, with the kernel chosen for each. */
static LLVMValueRef node_table(sc_codegen *c, const sc_graph *g)
{
    LLVMTypeRef f[] = {c->ptr, c->ptr, c->ptr, c->f64, c->i64};
    LLVMTypeRef nt = LLVMStructTypeInContext(c->ctx, f, 5, 0);
    LLVMValueRef *rows = calloc((size_t)g->nn + 1, sizeof *rows);
    if (!rows)
        oom();
    for (int i = 0; i < g->nn; i++) {
        const kern *k = &c->kern[c->step_kern[i]];
        char gname[64];
        snprintf(gname, sizeof gname, "sc.node.%d", i);
        LLVMValueRef label = cstr(c, g->n[i].label, gname);
        snprintf(gname, sizeof gname, "sc.node.%d.op", i);
        LLVMValueRef op = cstr(c, sc_op_name(g->n[i].op), gname);
        snprintf(gname, sizeof gname, "sc.node.%d.impl", i);
        LLVMValueRef v[] = {label, op, cstr(c, k->impl, gname), cd(c, sc_node_flops(g, i)), ci(c, k->extent)};
        rows[i] = LLVMConstNamedStruct(nt, v, 5);
    }
    LLVMValueRef arr = LLVMConstArray2(nt, rows, (uint64_t)g->nn);
    free(rows);
    return private_table(c, arr, "sc.nodes");
}

static void define_description(sc_codegen *c, const sc_model *m, const sc_planned *sp, const sc_planned *ep,
                               const sc_planned *fp)
{
    const sc_graph *step = sp->g, *enc = ep->g, *ft = fp->g;
    const sc_memplan *smp = sp->mp, *emp = ep->mp, *fmp = fp->mp;
    double flops = 0;
    for (int i = 0; i < step->nn; i++)
        flops += sc_node_flops(step, i);
    const sc_tensor *feat = &enc->t[enc->features];
    const sc_tensor *z = &step->t[step->n[step->t[step->loss].producer].in[0]];
    const sc_train *tr = &m->train;

    LLVMTypeRef tf[] = {c->i32, c->i32, c->f64, c->i32, c->i32, c->f64, c->f64, c->i32, c->i32, c->i64};
    LLVMTypeRef tt = LLVMStructTypeInContext(c->ctx, tf, 10, 0);
    LLVMValueRef tv[] = {i32v(c, tr->epochs), i32v(c, tr->optimizer), cd(c, tr->lr), i32v(c, tr->lr_scaling_linear),
                         i32v(c, tr->warmup_epochs), cd(c, tr->momentum), cd(c, tr->weight_decay),
                         i32v(c, tr->schedule), i32v(c, 0), LLVMConstInt(c->i64, tr->seed, 0)};

    LLVMTypeRef df[] = {c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->i32,
                        c->i32, c->i32, c->i64, c->i64, c->i64, c->i64, c->f64, c->f64, c->ptr, c->ptr,
                        c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, tt,
                        c->i32, c->i32, c->i32, c->i32, c->i64, c->i64, c->ptr,
                        c->i32, c->i32, c->ptr, c->i32, c->i32};
    LLVMTypeRef dt = LLVMStructTypeInContext(c->ctx, df, 39, 0);
    LLVMValueRef dv[] = {
        i32v(c, SC_ABI_VERSION), i32v(c, step->batch), i32v(c, m->in_c), i32v(c, m->in_h), i32v(c, m->in_w),
        i32v(c, feat->numel / feat->shape[0]), i32v(c, z->shape[1]), i32v(c, feat->shape[0]), i32v(c, step->nparams),
        i32v(c, step->nbuffers), i32v(c, m->naugs), i32v(c, 0), ci(c, smp->params_floats),
        ci(c, smp->buffers_floats), ci(c, smp->arena_floats), ci(c, emp->arena_floats), cd(c, flops),
        cd(c, m->temperature), cstr(c, m->name, "sc.name"), cstr(c, SC_VERSION, "sc.version"),
        cstr(c, c->cpu, "sc.cpu"), cstr(c, c->features, "sc.features"), cstr(c, m->text ? m->text : "", "sc.spec"),
        param_table(c, step, smp, step->params, step->nparams, "sc.params"),
        param_table(c, step, smp, step->buffers, step->nbuffers, "sc.buffers"), aug_table(c, m),
        LLVMConstNamedStruct(tt, tv, 10),
        i32v(c, ft->t[ft->input].shape[0]), i32v(c, ft->t[ft->n[ft->t[ft->loss].producer].in[0]].shape[1]),
        i32v(c, ft->nparams), i32v(c, 0), ci(c, fmp->params_floats), ci(c, fmp->arena_floats),
        param_table(c, ft, fmp, ft->params, ft->nparams, "sc.ft_params"),
        i32v(c, smp->opts.threads), i32v(c, step->nn), node_table(c, step), i32v(c, c->mpi), i32v(c, 0)};
    LLVMValueRef init = LLVMConstNamedStruct(dt, dv, 39);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, dt, "sc_model");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
}

/* ---- target setup, passes, emission ---- */

/* The C API cannot ask whether a CPU name is valid: LLVM only warns ("...
 * is not a recognized processor ...") on stderr when it builds the
 * subtarget, and may then abort in code generation. So compile an empty
 * function in a child process with stderr captured. */
static void probe_child(LLVMTargetRef target, const char *triple, const char *cpu)
{
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, "", LLVMCodeGenLevelNone,
                                                      LLVMRelocPIC, LLVMCodeModelDefault);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("probe", ctx);
    LLVMSetTarget(m, triple);
    LLVMValueRef fn = LLVMAddFunction(m, "probe", LLVMFunctionType(LLVMVoidTypeInContext(ctx), NULL, 0, 0));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, fn, "entry"));
    LLVMBuildRetVoid(b);
    LLVMMemoryBufferRef mb = NULL;
    char *msg = NULL;
    int rc = LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &mb);
    fflush(stderr);
    _exit(rc ? 1 : 0);
}

static int cpu_known(LLVMTargetRef target, const char *triple, const char *cpu)
{
    int fds[2];
    if (pipe(fds))
        return 1; /* cannot check: let LLVM decide later */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        probe_child(target, triple, cpu);
    }
    close(fds[1]);
    char text[4096];
    size_t n = 0;
    ssize_t k;
    while ((k = read(fds[0], text + n, sizeof text - 1 - n)) > 0 && n + (size_t)k < sizeof text - 1)
        n += (size_t)k;
    text[n] = 0;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strstr(text, "not a recognized processor");
}

const char *sc_codegen_cpu(const sc_codegen *c) { return c->cpu; }

static LLVMValueRef declare(sc_codegen *c, const char *name, LLVMTypeRef *t, LLVMTypeRef ret, LLVMTypeRef *args,
                            unsigned n)
{
    *t = LLVMFunctionType(ret, args, n, 0);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, *t);
    add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);
    return fn;
}

/* The runtime functions generated code calls (sc_parallel.h,
 * sc_profile.h, sc_comm.h). */
static void declare_runtime(sc_codegen *c)
{
    LLVMTypeRef p = c->ptr, i64 = c->i64, f64 = c->f64, i32 = c->i32;
    LLVMTypeRef task[4] = {p, i64, i64, i64};
    c->task_t = LLVMFunctionType(c->vd, task, 4, 0);
    LLVMTypeRef par[3] = {p, p, i64};
    c->par_fn = declare(c, "sc_parallel_for", &c->par_t, c->vd, par, 3);
    c->threads_fn = declare(c, "sc_threads", &c->threads_t, i32, NULL, 0);
    c->prof_on = LLVMAddGlobal(c->mod, i32, "sc_prof_on");
    c->prof_fn = declare(c, "sc_prof_node", &c->prof_t, c->vd, &i32, 1);
    LLVMTypeRef red[2] = {p, i64};
    c->bnred_fn = declare(c, "sc_comm_bn_allreduce", &c->bnred_t, c->vd, red, 2);
    c->ranks_fn = declare(c, "sc_comm_bn_ranks", &c->ranks_t, f64, NULL, 0);
    LLVMTypeRef ntx[5] = {p, i64, i64, f64, p};
    c->ntx_fn = declare(c, "sc_comm_ntxent", &c->ntx_t, c->vd, ntx, 5);
    LLVMTypeRef ntxb[3] = {p, i64, i64};
    c->ntxb_fn = declare(c, "sc_comm_ntxent_bwd", &c->ntxb_t, c->vd, ntxb, 3);
    LLVMTypeRef ready[3] = {p, i64, i64};
    c->ready_fn = declare(c, "sc_comm_grad_ready", &c->ready_t, c->vd, ready, 3);
    c->end_fn = declare(c, "sc_comm_step_end", &c->end_t, c->vd, &p, 1);
}

sc_codegen *sc_codegen_new(const sc_codegen_options *o, char *err, size_t errlen)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    sc_codegen *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->opt_level = o->opt_level;
    char *triple = LLVMGetDefaultTargetTriple();
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
        snprintf(err, errlen, "no LLVM target for %s: %s", triple, msg ? msg : "?");
        LLVMDisposeMessage(msg);
        LLVMDisposeMessage(triple);
        free(c);
        return NULL;
    }
    int host = !o->target_cpu || !strcmp(o->target_cpu, "native");
    if (host) {
        char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
        c->cpu = strdup(cpu);
        c->features = strdup(feat);
        LLVMDisposeMessage(cpu);
        LLVMDisposeMessage(feat);
    } else {
        c->cpu = strdup(!strcmp(o->target_cpu, "generic") ? "x86-64" : o->target_cpu);
        c->features = strdup("");
    }
    if (!c->cpu || !c->features) {
        snprintf(err, errlen, "out of memory");
        LLVMDisposeMessage(triple);
        sc_codegen_free(c);
        return NULL;
    }
    if (!host && !cpu_known(target, triple, c->cpu)) {
        snprintf(err, errlen, "unknown --target-cpu '%s' (try 'generic', 'native', or a name from llc-19 -mcpu=help)",
                 o->target_cpu);
        LLVMDisposeMessage(triple);
        sc_codegen_free(c);
        return NULL;
    }
    LLVMCodeGenOptLevel lvl = o->opt_level == 0 ? LLVMCodeGenLevelNone
                              : o->opt_level == 1 ? LLVMCodeGenLevelLess
                              : o->opt_level == 2 ? LLVMCodeGenLevelDefault
                                                  : LLVMCodeGenLevelAggressive;
    c->tm = LLVMCreateTargetMachine(target, triple, c->cpu, c->features, lvl, LLVMRelocPIC, LLVMCodeModelDefault);
    c->ctx = LLVMContextCreate();
    c->mod = LLVMModuleCreateWithNameInContext("simclrc", c->ctx);
    LLVMSetTarget(c->mod, triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(c->tm);
    LLVMSetModuleDataLayout(c->mod, dl);
    LLVMDisposeTargetData(dl);
    LLVMDisposeMessage(triple);
    c->b = LLVMCreateBuilderInContext(c->ctx);
    c->f64_elements = o->double_precision;
    c->elt = c->f64_elements ? LLVMDoubleTypeInContext(c->ctx) : LLVMFloatTypeInContext(c->ctx);
    c->f64 = LLVMDoubleTypeInContext(c->ctx);
    c->i1 = LLVMInt1TypeInContext(c->ctx);
    c->i32 = LLVMInt32TypeInContext(c->ctx);
    c->i64 = LLVMInt64TypeInContext(c->ctx);
    c->ptr = LLVMPointerTypeInContext(c->ctx, 0);
    c->vd = LLVMVoidTypeInContext(c->ctx);
    LLVMTypeRef sargs[14] = {c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->elt,
                             c->ptr, c->i32, c->ptr, c->i32, c->elt, c->ptr, c->i32};
    c->sgemm_t = LLVMFunctionType(c->vd, sargs, 14, 0);
    c->sgemm = LLVMAddFunction(c->mod, c->f64_elements ? "cblas_dgemm" : "cblas_sgemm", c->sgemm_t);
    c->mpi = o->mpi;
    declare_runtime(c);
    return c;
}

void sc_codegen_free(sc_codegen *c)
{
    if (!c)
        return;
    if (c->b)
        LLVMDisposeBuilder(c->b);
    if (c->ee)
        LLVMDisposeExecutionEngine(c->ee);
    else if (c->mod)
        LLVMDisposeModule(c->mod);
    if (c->ctx)
        LLVMContextDispose(c->ctx);
    if (c->tm)
        LLVMDisposeTargetMachine(c->tm);
    for (int k = 0; k < c->nk; k++) {
        free(c->kern[k].key);
        free(c->kern[k].impl);
    }
    free(c->kern);
    free(c->step_kern);
    free(c->cpu);
    free(c->features);
    free(c);
}

int sc_codegen_module(sc_codegen *c, const sc_model *m, const sc_planned *step, const sc_planned *enc,
                      const sc_planned *ft, char *err, size_t errlen)
{
    static const int step_map[SC_REG_COUNT] = {0, 1, 2, 3, 4, 5};
    define_entry(c, step->g, step->mp, "sc_step", "step.", 6, step_map);
    static const int enc_map[SC_REG_COUNT] = {0, -1, 1, 2, 3, 4};
    define_entry(c, enc->g, enc->mp, "sc_encode", "encode.", 5, enc_map);
    define_entry(c, ft->g, ft->mp, "sc_finetune_step", "finetune.", 6, step_map);

    define_description(c, m, step, enc, ft);

    char *msg = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
        snprintf(err, errlen, "internal error: generated module fails verification: %.400s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return -1;
    }
    LLVMDisposeMessage(msg);
    return 0;
}

int sc_codegen_optimize(sc_codegen *c, char *err, size_t errlen)
{
    char passes[32];
    snprintf(passes, sizeof passes, "default<O%d>", c->opt_level);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(opts, c->opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(opts, c->opt_level >= 2);
    LLVMErrorRef e = LLVMRunPasses(c->mod, passes, c->tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        snprintf(err, errlen, "internal error: LLVM passes failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        return -1;
    }
    return 0;
}

int sc_codegen_emit(sc_codegen *c, const char *kind, const char *path, char *err, size_t errlen)
{
    char *msg = NULL;
    if (!strcmp(kind, "llvm")) {
        if (!strcmp(path, "-")) {
            char *s = LLVMPrintModuleToString(c->mod);
            int bad = fputs(s, stdout) < 0 || fflush(stdout);
            LLVMDisposeMessage(s);
            if (bad)
                snprintf(err, errlen, "writing standard output failed");
            return bad ? -1 : 0;
        }
        if (LLVMPrintModuleToFile(c->mod, path, &msg)) {
            snprintf(err, errlen, "cannot write %s: %s", path, msg ? msg : "?");
            LLVMDisposeMessage(msg);
            return -1;
        }
        return 0;
    }
    LLVMCodeGenFileType ft = !strcmp(kind, "asm") ? LLVMAssemblyFile : LLVMObjectFile;
    if (!strcmp(path, "-")) {
        LLVMMemoryBufferRef mb;
        if (LLVMTargetMachineEmitToMemoryBuffer(c->tm, c->mod, ft, &msg, &mb)) {
            snprintf(err, errlen, "code generation failed: %s", msg ? msg : "?");
            LLVMDisposeMessage(msg);
            return -1;
        }
        size_t n = LLVMGetBufferSize(mb);
        int bad = fwrite(LLVMGetBufferStart(mb), 1, n, stdout) != n || fflush(stdout);
        LLVMDisposeMemoryBuffer(mb);
        if (bad)
            snprintf(err, errlen, "writing standard output failed");
        return bad ? -1 : 0;
    }
    /* LLVMTargetMachineEmitToFile takes a non-const path. */
    char *p = strdup(path);
    int rc = !p || LLVMTargetMachineEmitToFile(c->tm, c->mod, p, ft, &msg);
    free(p);
    if (rc) {
        snprintf(err, errlen, "cannot write %s: %s", path, msg ? msg : "out of memory");
        LLVMDisposeMessage(msg);
        return -1;
    }
    return 0;
}

void *sc_codegen_jit(sc_codegen *c, const char *symbol, char *err, size_t errlen)
{
    if (!c->ee) {
        LLVMLinkInMCJIT();
        struct LLVMMCJITCompilerOptions o;
        LLVMInitializeMCJITCompilerOptions(&o, sizeof o);
        o.OptLevel = (unsigned)c->opt_level;
        char *msg = NULL;
        if (LLVMCreateMCJITCompilerForModule(&c->ee, c->mod, &o, sizeof o, &msg)) {
            snprintf(err, errlen, "cannot create the JIT: %s", msg ? msg : "?");
            LLVMDisposeMessage(msg);
            c->ee = NULL;
            return NULL;
        }
    }
    uint64_t addr = LLVMGetFunctionAddress(c->ee, symbol);
    if (!addr) {
        addr = LLVMGetGlobalValueAddress(c->ee, symbol);
        if (!addr) {
            snprintf(err, errlen, "the JIT has no symbol %s", symbol);
            return NULL;
        }
    }
    return (void *)(uintptr_t)addr;
}
