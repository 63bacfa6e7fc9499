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

#include "sc_abi_version.h"

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

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
    /* the kernel being generated: its node and pointer arguments */
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    int node;
    LLVMValueRef arg_in[SC_MAX_IN], arg_out[SC_MAX_OUT], arg_ws;
    const sc_graph *g;
    const sc_memplan *mp;
    /* kernels generated so far, by signature: nodes that differ only in
     * where their tensors live share one kernel */
    char **kkeys;
    LLVMValueRef *kfns;
    LLVMTypeRef *ktypes;
    int nk;
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

static LLVMValueRef workspace(sc_codegen *c, int node)
{
    (void)node;
    return c->arg_ws;
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
    p.nb = sc_conv_chunk(x->shape[0], p.ohw);
    p.cols = p.nb * p.ohw;
    p.direct = direct(&p.g) && p.nb == 1;
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

static void lower_conv(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]], *w = &c->g->t[n->in[1]], *y = &c->g->t[n->out[0]];
    conv_plan p = plan_conv(c, i, x, y, w->shape[0]);
    LLVMValueRef X = tensor(c, n->in[0]), W = tensor(c, n->in[1]), Y = tensor(c, n->out[0]);
    loop Ln;
    LLVMValueRef chunk = loop_begin(c, &Ln, p.n / p.nb);
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
    const sc_node *n = &c->g->n[i];
    const sc_tensor *dy = &c->g->t[n->in[0]], *w = &c->g->t[n->in[1]], *dx = &c->g->t[n->out[0]];
    conv_plan p = plan_conv(c, i, dx, dy, w->shape[0]);
    LLVMValueRef DY = tensor(c, n->in[0]), W = tensor(c, n->in[1]), DX = tensor(c, n->out[0]);
    if (!p.direct)
        zero(c, DX, dx->numel);
    loop Ln;
    LLVMValueRef chunk = loop_begin(c, &Ln, p.n / p.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.nb));
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
    conv_plan p = plan_conv(c, i, x, dy, dw->shape[0]);
    LLVMValueRef DY = tensor(c, n->in[0]), X = tensor(c, n->in[1]), DW = tensor(c, n->out[0]);
    loop Ln;
    LLVMValueRef chunk = loop_begin(c, &Ln, p.n / p.nb);
    LLVMValueRef img0 = imul(c, chunk, ci(c, p.nb));
    /* The first chunk overwrites dW, the others accumulate. */
    LLVMValueRef beta = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, chunk, ci(c, 0), ""), cf(c, 0), cf(c, 1), "");
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
    LLVMValueRef x, dy, y, dx;          /* pointers */
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
    st(c, b->y, idx, fadd(c, fmul(c, ld(c, b->x, idx), b->k1), b->k2));
}

static void bn_bwd_sums(sc_codegen *c, LLVMValueRef idx, void *p)
{
    bnctx *b = p;
    LLVMValueRef dy = fext(c, ld(c, b->dy, idx));
    LLVMValueRef d = fsub(c, fext(c, ld(c, b->x, idx)), b->mean);
    set(c, b->acc1, fadd(c, get(c, b->acc1, c->f64), dy));
    set(c, b->acc2, fadd(c, get(c, b->acc2, c->f64), fmul(c, dy, d)));
}

static void bn_bwd_apply(sc_codegen *c, LLVMValueRef idx, void *p)
{
    bnctx *b = p; /* dx = k1 * (dy - k2 - (x - mean) * k3) */
    LLVMValueRef d = fsub(c, ld(c, b->x, idx), b->mean);
    LLVMValueRef v = fsub(c, fsub(c, ld(c, b->dy, idx), b->k2), fmul(c, d, b->k3));
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

static void lower_batchnorm(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[0]];
    int64_t N, C, HW;
    nchw(x, &N, &C, &HW);
    double m = (double)(N * HW);
    bnctx b = {0};
    b.x = tensor(c, n->in[0]);
    b.y = tensor(c, n->out[0]);
    LLVMValueRef G = tensor(c, n->in[1]), B = tensor(c, n->in[2]);
    LLVMValueRef MEAN = tensor(c, n->out[1]), VAR = tensor(c, n->out[2]);
    b.acc1 = var(c, c->f64, cd(c, 0));
    loop Lc;
    LLVMValueRef ch = loop_begin(c, &Lc, C);
    set(c, b.acc1, cd(c, 0));
    for_channel(c, N, C, HW, ch, bn_sum, &b);
    b.mean = fdiv(c, get(c, b.acc1, c->f64), cd(c, m));
    set(c, b.acc1, cd(c, 0));
    for_channel(c, N, C, HW, ch, bn_sqdev, &b);
    LLVMValueRef v = fdiv(c, get(c, b.acc1, c->f64), cd(c, m));
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
    LLVMValueRef ch = loop_begin(c, &Lc, C);
    LLVMValueRef scale = fmul(c, fext(c, ld(c, G, ch)), inv_std(c, fext(c, ld(c, RV, ch)), n->eps));
    b.k1 = ftrunc(c, scale);
    b.k2 = ftrunc(c, fsub(c, fext(c, ld(c, B, ch)), fmul(c, fext(c, ld(c, RM, ch)), scale)));
    for_channel(c, N, C, HW, ch, bn_apply, &b);
    loop_end(c, &Lc);
}

static void lower_batchnorm_bwd(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *x = &c->g->t[n->in[1]];
    int64_t N, C, HW;
    nchw(x, &N, &C, &HW);
    double m = (double)(N * HW);
    bnctx b = {0};
    b.dy = tensor(c, n->in[0]);
    b.x = tensor(c, n->in[1]);
    b.dx = tensor(c, n->out[0]);
    LLVMValueRef G = tensor(c, n->in[2]), MEAN = tensor(c, n->in[3]), VAR = tensor(c, n->in[4]);
    LLVMValueRef DG = tensor(c, n->out[1]), DB = tensor(c, n->out[2]);
    b.acc1 = var(c, c->f64, cd(c, 0));
    b.acc2 = var(c, c->f64, cd(c, 0));
    loop Lc;
    LLVMValueRef ch = loop_begin(c, &Lc, C);
    set(c, b.acc1, cd(c, 0));
    set(c, b.acc2, cd(c, 0));
    LLVMValueRef mean32 = ld(c, MEAN, ch);
    b.mean = fext(c, mean32);
    for_channel(c, N, C, HW, ch, bn_bwd_sums, &b);
    LLVMValueRef sdy = get(c, b.acc1, c->f64), sdyx = get(c, b.acc2, c->f64);
    LLVMValueRef istd = inv_std(c, fext(c, ld(c, VAR, ch)), n->eps);
    st(c, DG, ch, ftrunc(c, fmul(c, sdyx, istd)));
    st(c, DB, ch, ftrunc(c, sdy));
    b.k1 = ftrunc(c, fmul(c, fext(c, ld(c, G, ch)), istd));
    b.k2 = ftrunc(c, fdiv(c, sdy, cd(c, m)));
    b.k3 = ftrunc(c, fdiv(c, fmul(c, fmul(c, istd, istd), sdyx), cd(c, m)));
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
    double count = (double)(bx->numel / bx->shape[1]);
    double unbias = count > 1 ? count / (count - 1) : 1.0;
    LLVMValueRef M = tensor(c, n->in[0]), V = tensor(c, n->in[1]);
    LLVMValueRef RM = tensor(c, n->in[2]), RV = tensor(c, n->in[3]);
    loop L;
    LLVMValueRef k = loop_begin(c, &L, mean->numel);
    LLVMValueRef keep = cf(c, 1.0 - n->momentum), mom = cf(c, n->momentum);
    st(c, RM, k, fadd(c, fmul(c, keep, ld(c, RM, k)), fmul(c, mom, ld(c, M, k))));
    st(c, RV, k, fadd(c, fmul(c, keep, ld(c, RV, k)), fmul(c, mom, fmul(c, ld(c, V, k), cf(c, unbias)))));
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
    LLVMValueRef ch = loop_begin(c, &Lc, C);
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
    loop L;
    LLVMValueRef k = loop_begin(c, &L, x->numel);
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
    default: /* reshape */
        v = a;
        break;
    }
    st(c, Y, k, v);
    loop_end(c, &L);
}

/* ---- pooling ---- */

static void lower_pool(sc_codegen *c, int i)
{
    const sc_node *n = &c->g->n[i];
    int bwd = n->op == SC_OP_MAXPOOL_BWD || n->op == SC_OP_AVGPOOL_BWD;
    int max = n->op == SC_OP_MAXPOOL || n->op == SC_OP_MAXPOOL_BWD;
    /* forward x/y shapes */
    const sc_tensor *x = bwd ? &c->g->t[n->out[0]] : &c->g->t[n->in[0]];
    const sc_tensor *y = bwd ? &c->g->t[n->in[0]] : &c->g->t[n->out[0]];
    int64_t H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3], K = n->kernel;
    LLVMValueRef X = max && bwd ? tensor(c, n->in[1]) : bwd ? NULL : tensor(c, n->in[0]);
    LLVMValueRef Y = bwd ? tensor(c, n->in[0]) : tensor(c, n->out[0]); /* y or dy */
    LLVMValueRef DX = bwd ? tensor(c, n->out[0]) : NULL;
    if (bwd)
        zero(c, DX, x->numel);
    LLVMValueRef best = var(c, c->elt, cf(c, 0)), arg = var(c, c->i64, ci(c, 0));
    loop Lp, Loh, Low, Lkh, Lkw;
    LLVMValueRef plane = loop_begin(c, &Lp, (int64_t)x->shape[0] * x->shape[1]);
    LLVMValueRef xoff = imul(c, plane, ci(c, H * W));
    LLVMValueRef yoff = imul(c, plane, ci(c, OH * OW));
    LLVMValueRef oh = loop_begin(c, &Loh, OH);
    LLVMValueRef ow = loop_begin(c, &Low, OW);
    LLVMValueRef yi = iadd(c, yoff, mad(c, oh, OW, ow));
    LLVMValueRef h0 = isub(c, imul(c, oh, ci(c, n->stride)), ci(c, n->pad));
    LLVMValueRef w0 = isub(c, imul(c, ow, ci(c, n->stride)), ci(c, n->pad));
    if (max) {
        /* Start from the first in-bounds element (pad <= kernel/2 makes
         * one exist), then take strictly greater values: ties go to the
         * first maximum in scan order, as PyTorch does. */
        LLVMValueRef first = iadd(c, xoff, mad(c, imax(c, h0, ci(c, 0)), W, imax(c, w0, ci(c, 0))));
        set(c, arg, first);
        set(c, best, ld(c, X ? X : Y, first));
    } else
        set(c, best, cf(c, 0));
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
    LLVMValueRef xi = iadd(c, xoff, mad(c, ih, W, iw));
    if (max) {
        LLVMValueRef v = ld(c, X, xi);
        LLVMValueRef gt = LLVMBuildFCmp(c->b, LLVMRealOGT, v, get(c, best, c->elt), "");
        set(c, best, LLVMBuildSelect(c->b, gt, v, get(c, best, c->elt), ""));
        set(c, arg, LLVMBuildSelect(c->b, gt, xi, get(c, arg, c->i64), ""));
    } else if (!bwd) {
        set(c, best, fadd(c, get(c, best, c->elt), ld(c, X, xi)));
    } else {
        st(c, DX, xi, fadd(c, ld(c, DX, xi), fmul(c, ld(c, Y, yi), cf(c, 1.0 / (double)(K * K)))));
    }
    if_end(c, &Bok);
    loop_end(c, &Lkw);
    loop_end(c, &Lkh);
    if (max && bwd) {
        LLVMValueRef a = get(c, arg, c->i64);
        st(c, DX, a, fadd(c, ld(c, DX, a), ld(c, Y, yi)));
    } else if (max)
        st(c, Y, yi, get(c, best, c->elt));
    else if (!bwd)
        st(c, Y, yi, fmul(c, get(c, best, c->elt), cf(c, 1.0 / (double)(K * K))));
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
    LLVMValueRef p = loop_begin(c, &Lp, planes);
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
    case SC_OP_BATCHNORM: lower_batchnorm(c, i); break;
    case SC_OP_BATCHNORM_EVAL: lower_batchnorm_eval(c, i); break;
    case SC_OP_BATCHNORM_BWD: lower_batchnorm_bwd(c, i); break;
    case SC_OP_BN_RUNNING: lower_bn_running(c, i); break;
    case SC_OP_RELU:
    case SC_OP_RELU_BWD:
    case SC_OP_ADD:
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
 * shapes of every operand and the workspace. */
static void kernel_key(const sc_graph *g, const sc_memplan *mp, int i, char *key, size_t len)
{
    const sc_node *n = &g->n[i];
    size_t k = (size_t)snprintf(key, len, "%d:%d,%d,%d:%.17g,%.17g,%.17g:%lld", n->op, n->kernel, n->stride, n->pad,
                                n->eps, n->momentum, n->temperature, (long long)mp->ws_floats[i]);
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

/* The kernel of node i: found by signature, or generated. */
static LLVMValueRef kernel_for(sc_codegen *c, int i, const char *prefix, LLVMTypeRef *type)
{
    char key[512];
    kernel_key(c->g, c->mp, i, key, sizeof key);
    for (int k = 0; k < c->nk; k++)
        if (!strcmp(c->kkeys[k], key)) {
            *type = c->ktypes[k];
            return c->kfns[k];
        }
    const sc_node *n = &c->g->n[i];
    int nargs = n->nin + n->nout + 1;
    LLVMTypeRef args[SC_MAX_IN + SC_MAX_OUT + 1];
    for (int k = 0; k < nargs; k++)
        args[k] = c->ptr;
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, (unsigned)nargs, 0);
    char name[SC_NAME_MAX + 64];
    snprintf(name, sizeof name, "%s%s.%s", prefix, sc_op_name(n->op), n->label);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, ft);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    /* Operands never overlap (the memory plan keeps simultaneously live
     * tensors apart), so every pointer is noalias. */
    for (unsigned k = 1; k <= (unsigned)nargs; k++) {
        add_attr(c, fn, k, "noalias", 0);
        add_attr(c, fn, k, "nocapture", 0);
    }
    add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);

    c->fn = fn;
    c->node = i;
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    LLVMBuildBr(c->b, body);
    LLVMPositionBuilderAtEnd(c->b, body);
    for (int k = 0; k < n->nin; k++)
        c->arg_in[k] = LLVMGetParam(fn, (unsigned)k);
    for (int k = 0; k < n->nout; k++)
        c->arg_out[k] = LLVMGetParam(fn, (unsigned)(n->nin + k));
    c->arg_ws = LLVMGetParam(fn, (unsigned)(nargs - 1));
    lower_node(c, i);
    LLVMBuildRetVoid(c->b);

    char **kk = realloc(c->kkeys, (size_t)(c->nk + 1) * sizeof *kk);
    if (kk)
        c->kkeys = kk;
    LLVMValueRef *kf = realloc(c->kfns, (size_t)(c->nk + 1) * sizeof *kf);
    if (kf)
        c->kfns = kf;
    LLVMTypeRef *kt = realloc(c->ktypes, (size_t)(c->nk + 1) * sizeof *kt);
    if (kt)
        c->ktypes = kt;
    char *dup = strdup(key);
    if (kk && kf && kt && dup) {
        c->kkeys[c->nk] = dup;
        c->kfns[c->nk] = fn;
        c->ktypes[c->nk] = ft;
        c->nk++;
    } else
        free(dup); /* out of memory: the next identical node gets its own kernel */
    *type = ft;
    return fn;
}

/* An entry point: sc_step(params, grads, buffers, arena, input, loss) or
 * sc_encode(params, buffers, arena, input, features); map gives, for each
 * region, the entry's parameter number (-1: none). It calls the kernel of
 * every node with its operands' addresses. */
static void define_entry(sc_codegen *c, const sc_graph *g, const sc_memplan *mp, const char *name,
                         const char *prefix, int nparams, const int *map)
{
    c->g = g;
    c->mp = mp;
    LLVMValueRef *fns = calloc((size_t)g->nn + 1, sizeof *fns);
    LLVMTypeRef *types = calloc((size_t)g->nn + 1, sizeof *types);
    if (!fns || !types) {
        fprintf(stderr, "simclrc: error: out of memory\n");
        exit(3);
    }
    for (int i = 0; i < g->nn; i++)
        fns[i] = kernel_for(c, i, prefix, &types[i]);

    LLVMTypeRef pargs[SC_REG_COUNT];
    for (int k = 0; k < SC_REG_COUNT; k++)
        pargs[k] = c->ptr;
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->vd, pargs, (unsigned)nparams, 0));
    add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, bb);
    LLVMValueRef base[SC_REG_COUNT];
    for (int r = 0; r < SC_REG_COUNT; r++)
        base[r] = map[r] < 0 ? LLVMConstNull(c->ptr) : LLVMGetParam(fn, (unsigned)map[r]);
    for (int i = 0; i < g->nn; i++) {
        const sc_node *n = &g->n[i];
        LLVMValueRef args[SC_MAX_IN + SC_MAX_OUT + 1];
        int k = 0;
        for (int s = 0; s < n->nin + n->nout; s++) {
            int t = s < n->nin ? n->in[s] : n->out[s - n->nin];
            args[k++] = gep(c, base[mp->region[t]], ci(c, mp->offset[t]));
        }
        args[k++] = mp->ws_floats[i] ? gep(c, base[SC_REG_ARENA], ci(c, mp->ws_offset[i])) : LLVMConstNull(c->ptr);
        LLVMBuildCall2(c->b, types[i], fns[i], args, (unsigned)k, "");
    }
    LLVMBuildRetVoid(c->b);
    free(fns);
    free(types);
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
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(arr), name);
    LLVMSetInitializer(gv, arr);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
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
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(arr), "sc.augs");
    LLVMSetInitializer(gv, arr);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
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
                        c->i32, c->i32, c->i32, c->i32, c->i64, c->i64, c->ptr};
    LLVMTypeRef dt = LLVMStructTypeInContext(c->ctx, df, 34, 0);
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
        param_table(c, ft, fmp, ft->params, ft->nparams, "sc.ft_params")};
    LLVMValueRef init = LLVMConstNamedStruct(dt, dv, 34);
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
    for (int k = 0; k < c->nk; k++)
        free(c->kkeys[k]);
    free(c->kkeys);
    free(c->kfns);
    free(c->ktypes);
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
