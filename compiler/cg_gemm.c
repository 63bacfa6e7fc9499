/* Generated GEMM kernels (cg_gemm.h): a register-blocked GEMM specialised
 * to its constant shape and the target's vector width.
 *
 * C is computed in blocks of nc columns by kc of the inner dimension. A
 * block's panels are kc rows by nr = nv*vw columns of op(B): B's own rows
 * where B is not transposed (contiguous already), or, for B^T, a copy
 * packed into a bounded stack buffer by vw x vw transposes in registers.
 * For each mr-row tile of A (read in place: it stays in L1 across the
 * block's panels) and each panel, the micro-kernel keeps mr x nv vector
 * accumulators in registers (phi nodes) over the kc loop: per k, nv
 * vector loads of the panel, mr scalar loads of A broadcast, mr*nv FMAs.
 * Tiles at the edges of m and n are emitted as their own, smaller
 * micro-kernels (constant sizes), the last vector loaded and stored under
 * a constant mask. README.md, "Why packed GEMM", has the measurements. */
#include <stdio.h>
#include <string.h>

#include <llvm-c/TargetMachine.h>

#include "cg_builder.h"
#include "cg_gemm.h"

/* The cache sizes the blocking is chosen for (per core; Zen 4/5 and
 * recent Intel have at least these): the packed B block lives in L2, the
 * A tile and one panel of B in L1. */
enum { L1_BYTES = 32 << 10, PACK_BYTES = 256 << 10 };

/* ---- the target's vectors ---- */

/* Whether code generated for c's target machine from a function doing
 * fma on <lanes x float> at that width uses the register class reg
 * ("zmm", "ymm"): asks LLVM itself, which knows every --target-cpu. */
static int emits_reg(sc_codegen *c, int bits, const char *reg)
{
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("probe", ctx);
    char *triple = LLVMGetTargetMachineTriple(c->tm);
    LLVMSetTarget(m, triple);
    LLVMDisposeMessage(triple);
    LLVMTypeRef vt = LLVMVectorType(LLVMFloatTypeInContext(ctx), (unsigned)bits / 32);
    LLVMTypeRef args[3] = {vt, vt, vt};
    LLVMValueRef fn = LLVMAddFunction(m, "probe", LLVMFunctionType(vt, args, 3, 0));
    char w[16];
    snprintf(w, sizeof w, "%d", bits);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, "min-legal-vector-width", 22, w, (unsigned)strlen(w)));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, fn, "entry"));
    unsigned id = LLVMLookupIntrinsicID("llvm.fma", 8);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(m, id, &vt, 1);
    LLVMValueRef x[3] = {LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), LLVMGetParam(fn, 2)};
    LLVMBuildRet(b, LLVMBuildCall2(b, LLVMIntrinsicGetType(ctx, id, &vt, 1), f, x, 3, ""));
    LLVMDisposeBuilder(b);
    LLVMMemoryBufferRef mb = NULL;
    char *msg = NULL;
    int yes = 0;
    if (!LLVMTargetMachineEmitToMemoryBuffer(c->tm, m, LLVMAssemblyFile, &msg, &mb)) {
        size_t n = LLVMGetBufferSize(mb);
        const char *s = LLVMGetBufferStart(mb);
        char *text = malloc(n + 1);
        if (text) {
            memcpy(text, s, n);
            text[n] = 0;
            yes = strstr(text, reg) && strstr(text, "vfmadd");
            free(text);
        }
        LLVMDisposeMemoryBuffer(mb);
    }
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    return yes;
}

/* 512 with AVX-512, 256 with AVX2+FMA, else 128 bits without FMA: the
 * generic path, correct on any target. Asked once per code generator. */
static void target_vectors(sc_codegen *c)
{
    if (c->gemm_vbits)
        return;
    if (emits_reg(c, 512, "zmm"))
        c->gemm_vbits = 512, c->gemm_fma = 1;
    else if (emits_reg(c, 256, "ymm"))
        c->gemm_vbits = 256, c->gemm_fma = 1;
    else
        c->gemm_vbits = 128, c->gemm_fma = 0;
}

/* The register rows evened out over m: as many mr-row tiles as the
 * default needs, each as tall as m then asks (m = 16: two tiles of 8
 * rather than 14 and 2; 32: 11, 11 and 10 rather than 14, 14 and 4). A
 * thin edge tile has too few accumulators to cover the FMA latency and
 * reloads its panel for little work. Measured on resnet-small b32 (CPU
 * time per node, best of 4 runs of 5 steps, one thread, AMD EPYC Zen 5,
 * machine shared): the 16-row implicit GEMMs 1.06x to 1.14x faster, the
 * 32-row ones 1.02x to 1.05x. */
static void balance_rows(sc_gemm_blocking *bl, int64_t m)
{
    if (m <= bl->mr)
        return;
    int64_t tiles = (m + bl->mr - 1) / bl->mr;
    bl->mr = (int)((m + tiles - 1) / tiles);
}

sc_gemm_blocking sc_cg_gemm_blocking(sc_codegen *c, int64_t m, int64_t n, int64_t k)
{
    target_vectors(c);
    int esize = c->f64_elements ? 8 : 4;
    sc_gemm_blocking bl = {.vw = c->gemm_vbits / (8 * esize), .fma = c->gemm_fma};
    /* Registers: 32 with AVX-512 (mr*nv accumulators, nv for the panel's
     * vectors, one broadcast), 16 otherwise. */
    if (c->gemm_vbits == 512)
        bl.mr = 14, bl.nv = 2;
    else
        bl.mr = 6, bl.nv = 2;
    /* --tune's choice (sc_codegen.gemm_mr): fewer rows, never more than
     * the registers hold */
    if (c->gemm_mr > 0 && c->gemm_mr < bl.mr)
        bl.mr = c->gemm_mr;
    else if (c->gemm_mr <= 0)
        balance_rows(&bl, m);
    if (m < bl.mr)
        bl.mr = (int)m;
    int64_t nr = (int64_t)bl.nv * bl.vw;
    /* kc: the A tile (mr x kc) and a panel (kc x nr) in L1. */
    bl.kc = L1_BYTES / (esize * (bl.mr + nr));
    bl.kc = bl.kc < 16 ? 16 : bl.kc / 16 * 16;
    if (c->gemm_kc > 0) /* --tune's choice, one panel within PACK_BYTES */
        bl.kc = c->gemm_kc < PACK_BYTES / (esize * nr) ? c->gemm_kc : PACK_BYTES / (esize * nr);
    if (bl.kc > k)
        bl.kc = k;
    /* nc: the packed block kc x nc within PACK_BYTES, whole panels. */
    int64_t panels = PACK_BYTES / (esize * bl.kc * nr);
    if (panels < 1)
        panels = 1;
    int64_t need = (n + nr - 1) / nr;
    bl.nc = (panels < need ? panels : need) * nr;
    return bl;
}

/* ---- the generated function ---- */

typedef struct {
    int ta, tb;
    int64_t m, n, k, lda, ldb, ldc;
    sc_gemm_blocking bl;
    LLVMTypeRef vt;           /* <vw x elt> */
    LLVMValueRef A, B, C, beta, bp;
    LLVMValueRef scratch;     /* implicit, transposed: the gathered rows before packing */
    int implicit;             /* 0; or B is x's im2col matrix (IM2COL), its transpose (IM2COL_T), or the
                               * transpose with columns tap-major from channels-last x (IM2ROW) */
    sc_conv_geom conv;        /* with implicit: x's geometry, nb images */
    int64_t nb;
} gemm;

enum { IM2COL = 1, IM2COL_T = 2, IM2ROW = 3 };

static LLVMValueRef vconst_mask(sc_codegen *c, int vw, int on)
{
    LLVMValueRef bits[64];
    for (int i = 0; i < vw; i++)
        bits[i] = LLVMConstInt(c->i1, i < on, 0);
    return LLVMConstVector(bits, (unsigned)vw);
}

static LLVMValueRef intrinsic(sc_codegen *c, const char *name, LLVMTypeRef *over, unsigned nover, LLVMValueRef *args,
                              unsigned nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, over, nover);
    return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, over, nover), fn, args, nargs, "");
}

static LLVMValueRef vload(sc_codegen *c, const gemm *g, LLVMValueRef p, int lanes)
{
    unsigned align = c->f64_elements ? 8 : 4;
    if (lanes == g->bl.vw) {
        LLVMValueRef v = LLVMBuildLoad2(c->b, g->vt, p, "");
        LLVMSetAlignment(v, align);
        return v;
    }
    LLVMTypeRef over[2] = {g->vt, c->ptr};
    LLVMValueRef args[4] = {p, LLVMConstInt(c->i32, align, 0), vconst_mask(c, g->bl.vw, lanes), LLVMConstNull(g->vt)};
    return intrinsic(c, "llvm.masked.load", over, 2, args, 4);
}

static void vstore(sc_codegen *c, const gemm *g, LLVMValueRef p, LLVMValueRef v, int lanes)
{
    unsigned align = c->f64_elements ? 8 : 4;
    if (lanes == g->bl.vw) {
        LLVMSetAlignment(LLVMBuildStore(c->b, v, p), align);
        return;
    }
    LLVMTypeRef over[2] = {g->vt, c->ptr};
    LLVMValueRef args[4] = {v, p, LLVMConstInt(c->i32, align, 0), vconst_mask(c, g->bl.vw, lanes)};
    intrinsic(c, "llvm.masked.store", over, 2, args, 4);
}

static LLVMValueRef splat(sc_codegen *c, const gemm *g, LLVMValueRef x)
{
    LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetPoison(g->vt), x, LLVMConstInt(c->i32, 0, 0), "");
    LLVMTypeRef mt = LLVMVectorType(c->i32, (unsigned)g->bl.vw);
    return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(g->vt), LLVMConstNull(mt), "");
}

static LLVMValueRef vfma(sc_codegen *c, const gemm *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc)
{
    LLVMTypeRef t = g->vt;
    LLVMValueRef args[3] = {a, b, acc};
    return intrinsic(c, g->bl.fma ? "llvm.fma" : "llvm.fmuladd", &t, 1, args, 3);
}

enum { MAX_MR = 16, MAX_NV = 4 };

/* The micro-kernel: C tile (mr rows from ct, ldc apart; width columns,
 * width <= nr) = A tile (from at: row i, inner index kk at i*lda + kk,
 * or kk*lda + i when transposed) times the panel from bp (kc rows), plus
 * beta_blk * C where beta_blk is not 0. */
static void micro(sc_codegen *c, const gemm *g, int mr, int64_t width, LLVMValueRef at, LLVMValueRef bp,
                  LLVMValueRef ct, LLVMValueRef kc, LLVMValueRef beta_blk)
{
    /* the panel: packed (rows nr apart, aligned, zero-padded) or B itself
     * (rows ldb apart; the last vector masked at the edge of n) */
    int packed = g->tb;
    int vw = g->bl.vw, nr = g->bl.nv * vw;
    int nv = (int)((width + vw - 1) / vw);
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "k");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "fma");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tile");
    LLVMBuildBr(c->b, head);
    LLVMPositionBuilderAtEnd(c->b, head);
    LLVMValueRef kk = LLVMBuildPhi(c->b, c->i64, "kk");
    LLVMValueRef zero64 = ci(c, 0), zv = LLVMConstNull(g->vt);
    LLVMAddIncoming(kk, &zero64, &pre, 1);
    LLVMValueRef acc[MAX_MR][MAX_NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) {
            acc[i][v] = LLVMBuildPhi(c->b, g->vt, "acc");
            LLVMAddIncoming(acc[i][v], &zv, &pre, 1);
        }
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, kk, kc, ""), body, done);
    LLVMPositionBuilderAtEnd(c->b, body);
    LLVMValueRef bv[MAX_NV];
    LLVMValueRef brow = gep(c, bp, imul(c, kk, ci(c, packed ? nr : g->ldb)));
    for (int v = 0; v < nv; v++) {
        LLVMValueRef p = gep(c, brow, ci(c, (int64_t)v * vw));
        if (packed) {
            bv[v] = LLVMBuildLoad2(c->b, g->vt, p, "");
            LLVMSetAlignment(bv[v], (unsigned)(vw * (c->f64_elements ? 8 : 4)));
        } else {
            int64_t left = width - (int64_t)v * vw;
            bv[v] = vload(c, g, p, (int)(left < vw ? left : vw));
        }
    }
    LLVMValueRef next[MAX_MR][MAX_NV];
    LLVMValueRef acol = g->ta ? gep(c, at, imul(c, kk, ci(c, g->lda))) : gep(c, at, kk);
    for (int i = 0; i < mr; i++) {
        LLVMValueRef a = ld(c, acol, ci(c, g->ta ? i : (int64_t)i * g->lda));
        LLVMValueRef as = splat(c, g, a);
        for (int v = 0; v < nv; v++)
            next[i][v] = vfma(c, g, as, bv[v], acc[i][v]);
    }
    LLVMValueRef k1 = iadd(c, kk, ci(c, 1));
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMBuildBr(c->b, head);
    LLVMAddIncoming(kk, &k1, &latch, 1);
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++)
            LLVMAddIncoming(acc[i][v], &next[i][v], &latch, 1);
    LLVMPositionBuilderAtEnd(c->b, done);
    /* C = acc + beta_blk * C, where C counts as 0 when beta_blk is 0 (it
     * may hold anything then, NaN included). One path for both: the
     * loads cost little next to kc steps, and compile time stays low. */
    LLVMValueRef bz = LLVMBuildFCmp(c->b, LLVMRealOEQ, beta_blk, cf(c, 0), "");
    LLVMValueRef bs = splat(c, g, beta_blk);
    for (int i = 0; i < mr; i++) {
        LLVMValueRef crow = gep(c, ct, ci(c, (int64_t)i * g->ldc));
        for (int v = 0; v < nv; v++) {
            int lanes = (int)(width - (int64_t)v * vw < vw ? width - (int64_t)v * vw : vw);
            LLVMValueRef p = gep(c, crow, ci(c, (int64_t)v * vw));
            LLVMValueRef old = LLVMBuildSelect(c->b, bz, LLVMConstNull(g->vt), vload(c, g, p, lanes), "");
            vstore(c, g, p, vfma(c, g, bs, old, acc[i][v]), lanes);
        }
    }
}

/* rows r[0..n) of n lanes transposed in registers: log2(n) rounds of
 * interleaving row i with row i + n/2 (a perfect shuffle of the index
 * bits each round). */
static void transpose(sc_codegen *c, LLVMValueRef *r, int n)
{
    LLVMValueRef lo[64], hi[64], t[64];
    for (int l = 0; l < n; l++) {
        lo[l] = LLVMConstInt(c->i32, (unsigned long long)(l / 2 + (l % 2) * n), 0);
        hi[l] = LLVMConstInt(c->i32, (unsigned long long)(l / 2 + n / 2 + (l % 2) * n), 0);
    }
    LLVMValueRef mlo = LLVMConstVector(lo, (unsigned)n), mhi = LLVMConstVector(hi, (unsigned)n);
    for (int round = 1; round < n; round *= 2) {
        for (int i = 0; i < n / 2; i++) {
            t[2 * i] = LLVMBuildShuffleVector(c->b, r[i], r[i + n / 2], mlo, "");
            t[2 * i + 1] = LLVMBuildShuffleVector(c->b, r[i], r[i + n / 2], mhi, "");
        }
        memcpy(r, t, (size_t)n * sizeof *r);
    }
}

/* Packs panel p of op(B) = B^T for the block at (pc, jc): bp[p*kc*nr +
 * kk*nr + j] = B[(jc + p*nr + j)*ldb + pc + kk] for kk < kc and the
 * panel's first nvalid columns, zero for the rest of the vectors the
 * micro-kernel reads. Whole vw x vw squares are transposed in registers;
 * the last kc % vw rows one element at a time. */
static void pack_panel(sc_codegen *c, const gemm *g, LLVMValueRef pc, LLVMValueRef kc, LLVMValueRef jc, LLVMValueRef p,
                       int64_t nvalid)
{
    int vw = g->bl.vw;
    int64_t nr = (int64_t)g->bl.nv * vw, nused = (nvalid + vw - 1) / vw * vw;
    LLVMValueRef src0 = gep(c, g->B, iadd(c, imul(c, iadd(c, jc, imul(c, p, ci(c, nr))), ci(c, g->ldb)), pc));
    LLVMValueRef dst0 = gep(c, g->bp, imul(c, p, imul(c, kc, ci(c, nr))));
    LLVMValueRef squares = LLVMBuildSDiv(c->b, kc, ci(c, vw), "");
    loop Ls, Lr;
    LLVMValueRef k0 = imul(c, loop_range(c, &Ls, ci(c, 0), squares), ci(c, vw));
    for (int64_t grp = 0; grp * vw < nused; grp++) {
        LLVMValueRef r[64];
        for (int t = 0; t < vw; t++) {
            int64_t col = grp * vw + t;
            r[t] = col < nvalid ? vload(c, g, gep(c, src0, iadd(c, k0, ci(c, col * g->ldb))), vw) : LLVMConstNull(g->vt);
        }
        transpose(c, r, vw);
        for (int kk = 0; kk < vw; kk++) {
            LLVMValueRef d = gep(c, dst0, iadd(c, imul(c, iadd(c, k0, ci(c, kk)), ci(c, nr)), ci(c, grp * vw)));
            LLVMSetAlignment(LLVMBuildStore(c->b, r[kk], d), (unsigned)(vw * (c->f64_elements ? 8 : 4)));
        }
    }
    loop_end(c, &Ls);
    LLVMValueRef kk = loop_range(c, &Lr, imul(c, squares, ci(c, vw)), kc);
    for (int64_t col = 0; col < nused; col++)
        st(c, dst0, iadd(c, imul(c, kk, ci(c, nr)), ci(c, col)),
           col < nvalid ? ld(c, src0, iadd(c, kk, ci(c, col * g->ldb))) : cf(c, 0));
    loop_end(c, &Lr);
}

/* Packs op(B) = B^T for the block: its whole panels, then the last,
 * partial one. */
static void pack_b(sc_codegen *c, const gemm *g, LLVMValueRef pc, LLVMValueRef kc, LLVMValueRef jc, int64_t ncols)
{
    int64_t nr = (int64_t)g->bl.nv * g->bl.vw, full = ncols / nr;
    if (full) {
        loop Lp;
        pack_panel(c, g, pc, kc, jc, loop_begin(c, &Lp, full), nr);
        loop_end(c, &Lp);
    }
    if (ncols % nr)
        pack_panel(c, g, pc, kc, jc, ci(c, full), ncols % nr);
}

/* ---- implicit GEMM: B gathered from the image ---- */

void sc_cg_conv_valid_cols(sc_codegen *c, const sc_conv_geom *g, LLVMValueRef kw, LLVMValueRef *lo, LLVMValueRef *hi)
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

static LLVMValueRef sdiv(sc_codegen *c, LLVMValueRef a, int64_t b) { return LLVMBuildSDiv(c->b, a, ci(c, b), ""); }
static LLVMValueRef srem(sc_codegen *c, LLVMValueRef a, int64_t b) { return LLVMBuildSRem(c->b, a, ci(c, b), ""); }

/* dst[(r - r0)*rs + (q - q0)*qs] = col[r][q] for im2col rows r in [r0,
 * r0 + nrows) and columns q in [q0, q0 + nq): row r = (ch*k + kh)*k + kw,
 * column q = (img*oh + oy)*ow + ox reads x[img][ch][oy*s - p + kh*d][ox*s
 * - p + kw*d], 0 in the padding. The columns go by output rows, each split
 * into padding, image and padding runs as in im2col. */
static LLVMValueRef splat_i32(sc_codegen *c, int vw, LLVMValueRef x)
{
    LLVMTypeRef iv = LLVMVectorType(c->i32, (unsigned)vw);
    LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetPoison(iv), LLVMBuildTrunc(c->b, x, c->i32, ""),
                                            LLVMConstInt(c->i32, 0, 0), "");
    return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(iv), LLVMConstNull(iv), "");
}

/* dst[t] = src[t*s] for the output row's columns t in [a, b), 0 outside
 * [e1, e2), in vectors (stride s of 1 or 2: x's run is contiguous, or
 * every other element, loaded as two vectors and its even lanes kept).
 * Lanes outside [e1, e2) are masked off the loads, so nothing outside x
 * is read. */
static void gather_vectors(sc_codegen *c, const gemm *g, int s, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef a,
                           LLVMValueRef b, LLVMValueRef e1, LLVMValueRef e2)
{
    int vw = g->bl.vw;
    unsigned align = c->f64_elements ? 8 : 4;
    LLVMTypeRef over[2] = {g->vt, c->ptr};
    LLVMValueRef bv = splat_i32(c, vw, b), e1v = splat_i32(c, vw, e1), e2v = splat_i32(c, vw, e2);
    loop Lv;
    LLVMValueRef nvec = LLVMBuildSDiv(c->b, iadd(c, isub(c, b, a), ci(c, vw - 1)), ci(c, vw), "");
    LLVMValueRef t = iadd(c, a, imul(c, loop_range(c, &Lv, ci(c, 0), nvec), ci(c, vw)));
    LLVMValueRef tv = splat_i32(c, vw, t);
    LLVMValueRef got[2] = {NULL, NULL};
    for (int part = 0; part < s; part++) {
        /* lane j of this load is x element s*t + part*vw + j: column t + (part*vw + j)/s where s divides it */
        LLVMValueRef off[64], on[64];
        for (int j = 0; j < vw; j++) {
            off[j] = LLVMConstInt(c->i32, (unsigned long long)((part * vw + j) / s), 0);
            on[j] = LLVMConstInt(c->i1, (part * vw + j) % s == 0, 0);
        }
        LLVMValueRef ox = LLVMBuildAdd(c->b, tv, LLVMConstVector(off, (unsigned)vw), "");
        LLVMValueRef m = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ox, e1v, ""),
                                      LLVMBuildICmp(c->b, LLVMIntSLT, ox, e2v, ""), "");
        if (s > 1)
            m = LLVMBuildAnd(c->b, m, LLVMConstVector(on, (unsigned)vw), "");
        /* not inbounds: src + s*t lies before x where the row starts in padding (those lanes are off) */
        LLVMValueRef at = iadd(c, imul(c, t, ci(c, s)), ci(c, (int64_t)part * vw));
        LLVMValueRef largs[4] = {LLVMBuildGEP2(c->b, c->elt, src, &at, 1, ""), LLVMConstInt(c->i32, align, 0), m,
                                 LLVMConstNull(g->vt)};
        got[part] = intrinsic(c, "llvm.masked.load", over, 2, largs, 4);
    }
    LLVMValueRef v = got[0];
    if (s == 2) {
        LLVMValueRef even[64];
        for (int j = 0; j < vw; j++)
            even[j] = LLVMConstInt(c->i32, (unsigned long long)(2 * j), 0);
        v = LLVMBuildShuffleVector(c->b, got[0], got[1], LLVMConstVector(even, (unsigned)vw), "");
    }
    LLVMValueRef lane[64];
    for (int j = 0; j < vw; j++)
        lane[j] = LLVMConstInt(c->i32, (unsigned long long)j, 0);
    LLVMValueRef smask = LLVMBuildICmp(c->b, LLVMIntSLT, LLVMBuildAdd(c->b, tv, LLVMConstVector(lane, (unsigned)vw), ""),
                                       bv, "");
    LLVMValueRef sargs[4] = {v, gep(c, dst, t), LLVMConstInt(c->i32, align, 0), smask};
    intrinsic(c, "llvm.masked.store", over, 2, sargs, 4);
    loop_end(c, &Lv);
}

static void gather(sc_codegen *c, const gemm *g, LLVMValueRef to, LLVMValueRef r0, LLVMValueRef nrows, LLVMValueRef q0,
                   LLVMValueRef nq, int64_t rs, int64_t qs)
{
    const sc_conv_geom *v = &g->conv;
    loop Lr, Lo, Lz1, Lx, Lz2;
    LLVMValueRef rl = loop_range(c, &Lr, ci(c, 0), nrows);
    LLVMValueRef r = iadd(c, r0, rl);
    LLVMValueRef ch = sdiv(c, r, v->k * v->k), kh = srem(c, sdiv(c, r, v->k), v->k), kw = srem(c, r, v->k);
    if (v->d > 1) /* dilated: the tap's offsets are d apart */
        kh = imul(c, kh, ci(c, v->d)), kw = imul(c, kw, ci(c, v->d));
    LLVMValueRef lo, hi;
    sc_cg_conv_valid_cols(c, v, kw, &lo, &hi);
    LLVMValueRef drow = gep(c, to, imul(c, rl, ci(c, rs)));
    LLVMValueRef q1 = iadd(c, q0, nq);
    LLVMValueRef orow = loop_range(c, &Lo, sdiv(c, q0, v->ow), sdiv(c, iadd(c, q1, ci(c, v->ow - 1)), v->ow));
    LLVMValueRef img = sdiv(c, orow, v->oh), oy = srem(c, orow, v->oh), rowq = imul(c, orow, ci(c, v->ow));
    /* this output row's columns within [q0, q1): ox in [a, b) */
    LLVMValueRef a = imax(c, isub(c, q0, rowq), ci(c, 0)), b = imin(c, isub(c, q1, rowq), ci(c, v->ow));
    LLVMValueRef ih = isub(c, mad(c, oy, v->s, kh), ci(c, v->p));
    LLVMValueRef rowok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                      LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, v->h), ""), "");
    LLVMValueRef lo2 = LLVMBuildSelect(c->b, rowok, lo, ci(c, v->ow), "");
    LLVMValueRef hi2 = LLVMBuildSelect(c->b, rowok, hi, ci(c, v->ow), "");
    LLVMValueRef e1 = imax(c, a, imin(c, lo2, b)), e2 = imax(c, e1, imin(c, hi2, b));
    LLVMValueRef dst = gep(c, drow, imul(c, isub(c, rowq, q0), ci(c, qs)));
    /* x index of column ox: the image's channel row ih, ox*s - p + kw; used only where valid */
    LLVMValueRef xoff = mad(c, mad(c, mad(c, img, v->c, ch), v->h, ih), v->w, isub(c, kw, ci(c, v->p)));
    if (v->s <= 2 && qs == 1) {
        gather_vectors(c, g, (int)v->s, dst, LLVMBuildGEP2(c->b, c->elt, g->B, &xoff, 1, ""), a, b, e1, e2);
    } else {
        LLVMValueRef o = loop_range(c, &Lz1, a, e1);
        st(c, dst, imul(c, o, ci(c, qs)), cf(c, 0));
        loop_end(c, &Lz1);
        o = loop_range(c, &Lx, e1, e2);
        st(c, dst, imul(c, o, ci(c, qs)), ld(c, g->B, iadd(c, xoff, imul(c, o, ci(c, v->s)))));
        loop_end(c, &Lx);
        o = loop_range(c, &Lz2, e2, b);
        st(c, dst, imul(c, o, ci(c, qs)), cf(c, 0));
        loop_end(c, &Lz2);
    }
    loop_end(c, &Lo);
    loop_end(c, &Lr);
}

/* dst[t] = src[t] for t in [lo, hi), 0 for the rest of [0, len), in
 * vectors under masks (nothing is read outside [lo, hi)). */
static void copy_span(sc_codegen *c, const gemm *g, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef len, LLVMValueRef lo,
                      LLVMValueRef hi)
{
    int vw = g->bl.vw;
    unsigned align = c->f64_elements ? 8 : 4;
    LLVMTypeRef over[2] = {g->vt, c->ptr};
    LLVMValueRef lane[64];
    for (int j = 0; j < vw; j++)
        lane[j] = LLVMConstInt(c->i32, (unsigned long long)j, 0);
    LLVMValueRef lenv = splat_i32(c, vw, len), lov = splat_i32(c, vw, lo), hiv = splat_i32(c, vw, hi);
    loop Lv;
    LLVMValueRef nvec = sdiv(c, iadd(c, len, ci(c, vw - 1)), vw);
    LLVMValueRef t = imul(c, loop_range(c, &Lv, ci(c, 0), nvec), ci(c, vw));
    LLVMValueRef tl = LLVMBuildAdd(c->b, splat_i32(c, vw, t), LLVMConstVector(lane, (unsigned)vw), "");
    LLVMValueRef in = LLVMBuildICmp(c->b, LLVMIntSLT, tl, lenv, "");
    LLVMValueRef on = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, tl, lov, ""),
                                   LLVMBuildICmp(c->b, LLVMIntSLT, tl, hiv, ""), "");
    /* not inbounds: src lies outside x where the pixel is padding (then those lanes are off) */
    LLVMValueRef largs[4] = {LLVMBuildGEP2(c->b, c->elt, src, &t, 1, ""), LLVMConstInt(c->i32, align, 0),
                             LLVMBuildAnd(c->b, in, on, ""), LLVMConstNull(g->vt)};
    LLVMValueRef v = intrinsic(c, "llvm.masked.load", over, 2, largs, 4);
    LLVMValueRef sargs[4] = {v, gep(c, dst, t), LLVMConstInt(c->i32, align, 0), in};
    intrinsic(c, "llvm.masked.store", over, 2, sargs, 4);
    loop_end(c, &Lv);
}

static LLVMValueRef clamp(sc_codegen *c, LLVMValueRef v, int64_t lo, int64_t hi)
{
    return imin(c, imax(c, v, ci(c, lo)), ci(c, hi));
}

/* IM2ROW: bp[kk*ldb + j - jc] = x_nhwc[img][oy*s - p + kh*d][ox*s - p +
 * kw*d][ch] (0 in the padding) for the block's rows kk (output position
 * q = pc + kk = (img*oh + oy)*ow + ox) and columns j in [jc, jc + ncols),
 * j = (kh*k + kw)*c + ch, copied in vectors by runs: undilated, a kernel
 * row's k taps are adjacent pixels, so (position, kh) is one run of k*c
 * floats of x (its taps in the padding masked off); dilated, each
 * (position, tap) is a run of c. Runs of one tap cost resnet-small's
 * 16-channel weight gradients a loop trip per vector. */
static void gather_rows(sc_codegen *c, const gemm *g, LLVMValueRef pc, LLVMValueRef kc, LLVMValueRef jc, int64_t ncols)
{
    const sc_conv_geom *v = &g->conv;
    int64_t taps = v->d == 1 ? v->k : 1, run = taps * v->c; /* a run's taps and floats */
    loop Lk, Lu;
    LLVMValueRef kk = loop_range(c, &Lk, ci(c, 0), kc);
    LLVMValueRef q = iadd(c, pc, kk);
    LLVMValueRef img = sdiv(c, q, v->oh * v->ow), oy = srem(c, sdiv(c, q, v->ow), v->oh), ox = srem(c, q, v->ow);
    LLVMValueRef iy0 = isub(c, imul(c, oy, ci(c, v->s)), ci(c, v->p)), ix0 = isub(c, imul(c, ox, ci(c, v->s)), ci(c, v->p));
    LLVMValueRef drow = gep(c, g->bp, imul(c, kk, ci(c, g->ldb)));
    LLVMValueRef j1 = iadd(c, jc, ci(c, ncols));
    LLVMValueRef u = loop_range(c, &Lu, sdiv(c, jc, run), sdiv(c, iadd(c, j1, ci(c, run - 1)), run));
    /* run u: kernel row kh from its first tap kw0 (0 undilated) */
    LLVMValueRef kh = taps > 1 ? u : sdiv(c, u, v->k), kw0 = taps > 1 ? ci(c, 0) : srem(c, u, v->k);
    LLVMValueRef iy = mad(c, kh, v->d, iy0), ix = mad(c, kw0, v->d, ix0);
    LLVMValueRef rowok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, iy, ci(c, 0), ""),
                                      LLVMBuildICmp(c->b, LLVMIntSLT, iy, ci(c, v->h), ""), "");
    /* the run's taps inside x's row: [tlo, thi) of its `taps` adjacent pixels */
    LLVMValueRef tlo = clamp(c, isub(c, ci(c, 0), ix), 0, taps), thi = clamp(c, isub(c, ci(c, v->w), ix), 0, taps);
    thi = LLVMBuildSelect(c->b, rowok, imax(c, thi, tlo), tlo, "");
    LLVMValueRef u0 = imul(c, u, ci(c, run));
    LLVMValueRef a = imax(c, isub(c, jc, u0), ci(c, 0)), b = imin(c, isub(c, j1, u0), ci(c, run));
    LLVMValueRef pix = mad(c, mad(c, img, v->h, iy), v->w, ix);
    LLVMValueRef src = LLVMBuildGEP2(c->b, c->elt, g->B, (LLVMValueRef[]){iadd(c, imul(c, pix, ci(c, v->c)), a)}, 1, "");
    copy_span(c, g, gep(c, drow, isub(c, iadd(c, u0, a), jc)), src, isub(c, b, a), isub(c, imul(c, tlo, ci(c, v->c)), a),
              isub(c, imul(c, thi, ci(c, v->c)), a));
    loop_end(c, &Lu);
    loop_end(c, &Lk);
}

/* The block's op(B), kc x ncols: the columns' rows into bp as a
 * row-major matrix nc wide (the micro-kernel reads it as an unpacked B);
 * for the transpose, the rows (op(B)'s columns) into the scratch buffer,
 * kc apart, then packed into panels as B^T is (the gather runs along x's
 * rows either way, in vectors). */
static void gather_b(sc_codegen *c, const gemm *g, LLVMValueRef pc, LLVMValueRef kc, LLVMValueRef jc, int64_t ncols)
{
    if (g->implicit == IM2COL) {
        gather(c, g, g->bp, pc, kc, jc, ci(c, ncols), g->ldb, 1);
        return;
    }
    if (g->implicit == IM2ROW) {
        gather_rows(c, g, pc, kc, jc, ncols);
        return;
    }
    gather(c, g, g->scratch, jc, ci(c, ncols), pc, kc, g->bl.kc, 1);
    gemm h = *g;
    h.B = g->scratch, h.ldb = g->bl.kc;
    pack_b(c, &h, ci(c, 0), kc, ci(c, 0), ncols);
}

/* One block: columns [jc, jc + ncols), inner [pc, pc + kc) (packed), all
 * rows of C. */
static void block(sc_codegen *c, const gemm *g, LLVMValueRef pc, LLVMValueRef kc, LLVMValueRef jc, int64_t ncols,
                  LLVMValueRef beta_blk)
{
    int64_t nr = (int64_t)g->bl.nv * g->bl.vw, full = ncols / nr, rest = ncols % nr;
    int mr = g->bl.mr;
    int64_t tiles = g->m / mr, mrest = g->m % mr;
    /* B^T is packed; B's rows are read in place: a panel's rows are
     * contiguous already, and packing would cost more than it saves where
     * m is small (measured: 64-row GEMMs ran at 2/3 the speed packed). */
    LLVMValueRef bsrc = g->bp;
    int64_t pstep = 0;
    if (g->implicit)
        gather_b(c, g, pc, kc, jc, ncols), pstep = nr;
    else if (g->tb)
        pack_b(c, g, pc, kc, jc, ncols);
    else
        bsrc = gep(c, g->B, iadd(c, imul(c, pc, ci(c, g->ldb)), jc)), pstep = nr;
    LLVMValueRef a0 = g->ta ? gep(c, g->A, imul(c, pc, ci(c, g->lda))) : gep(c, g->A, pc);
    LLVMValueRef c0 = gep(c, g->C, jc);
    for (int edge = 0; edge < 2; edge++) {
        int rows = edge ? (int)mrest : mr;
        if (!rows || (!edge && !tiles))
            continue;
        loop Lt, Lp;
        LLVMValueRef ir = edge ? ci(c, tiles * mr) : imul(c, loop_begin(c, &Lt, tiles), ci(c, mr));
        LLVMValueRef at = gep(c, a0, g->ta ? ir : imul(c, ir, ci(c, g->lda)));
        LLVMValueRef ct = gep(c, c0, imul(c, ir, ci(c, g->ldc)));
        if (full) {
            LLVMValueRef p = loop_begin(c, &Lp, full);
            LLVMValueRef panel = g->tb ? imul(c, p, imul(c, kc, ci(c, nr))) : imul(c, p, ci(c, pstep));
            micro(c, g, rows, nr, at, gep(c, bsrc, panel), gep(c, ct, imul(c, p, ci(c, nr))), kc, beta_blk);
            loop_end(c, &Lp);
        }
        if (rest)
            micro(c, g, rows, rest, at,
                  gep(c, bsrc, g->tb ? imul(c, ci(c, full), imul(c, kc, ci(c, nr))) : ci(c, full * pstep)),
                  gep(c, ct, ci(c, full * nr)), kc, beta_blk);
        if (!edge)
            loop_end(c, &Lt);
    }
}

static void define_gemm(sc_codegen *c, gemm *g)
{
    int64_t kc = g->bl.kc, nc = g->bl.nc;
    if (g->tb || g->implicit) {
        g->bp = LLVMBuildAlloca(c->b, LLVMArrayType2(c->elt, (uint64_t)(kc * nc)), "packed_b");
        LLVMSetAlignment(g->bp, 64);
    }
    if (g->implicit == IM2COL_T) {
        g->scratch = LLVMBuildAlloca(c->b, LLVMArrayType2(c->elt, (uint64_t)(kc * nc)), "gathered_b");
        LLVMSetAlignment(g->scratch, 64);
    }
    LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "start");
    LLVMBuildBr(c->b, start);
    LLVMPositionBuilderAtEnd(c->b, start);
    int64_t kblocks = (g->k + kc - 1) / kc, nfull = g->n / nc, nrest = g->n % nc;
    for (int edge = 0; edge < 2; edge++) {
        int64_t ncols = edge ? nrest : nc;
        if (!ncols || (!edge && !nfull))
            continue;
        loop Lj, Lk;
        LLVMValueRef jc = edge ? ci(c, nfull * nc) : imul(c, loop_begin(c, &Lj, nfull), ci(c, nc));
        LLVMValueRef kb = loop_begin(c, &Lk, kblocks);
        LLVMValueRef pc = imul(c, kb, ci(c, kc));
        LLVMValueRef kcur = imin(c, ci(c, kc), isub(c, ci(c, g->k), pc));
        /* The first k block applies beta, the others add. */
        LLVMValueRef bb = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, kb, ci(c, 0), ""), g->beta, cf(c, 1), "");
        block(c, g, pc, kcur, jc, ncols, bb);
        loop_end(c, &Lk);
        if (!edge)
            loop_end(c, &Lj);
    }
    LLVMBuildRetVoid(c->b);
}

static void str_attr(sc_codegen *c, LLVMValueRef fn, const char *k, const char *v)
{
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(c->ctx, k, (unsigned)strlen(k), v, (unsigned)strlen(v)));
}

/* A blocking --tune chose, where it is not the default rule's: its
 * suffix "r<mr>k<kc>" for the kernel's name and note, else "". */
static void tuned_suffix_for(sc_codegen *c, int64_t m, int64_t n, int64_t k, int rule_mr, char *out, size_t len)
{
    int tuned_mr = c->gemm_mr, tuned_kc = c->gemm_kc;
    c->gemm_mr = tuned_mr ? tuned_mr : rule_mr;
    sc_gemm_blocking bl = sc_cg_gemm_blocking(c, m, n, k);
    c->gemm_mr = rule_mr, c->gemm_kc = 0;
    sc_gemm_blocking dflt = sc_cg_gemm_blocking(c, m, n, k);
    c->gemm_mr = tuned_mr, c->gemm_kc = tuned_kc;
    *out = 0;
    if (bl.mr != dflt.mr || bl.kc != dflt.kc)
        snprintf(out, len, "r%dk%lld", bl.mr, (long long)bl.kc);
}

static void tuned_suffix(sc_codegen *c, int64_t m, int64_t n, int64_t k, char *out, size_t len)
{
    tuned_suffix_for(c, m, n, k, 0, out, len);
}

/* The kernel's name says which GEMMs it calls (info --kernels): kind
 * "nn", "nt".. or, implicit, "in"/"it" (op(B) the im2col matrix or its
 * transpose). */
static void note_shape(sc_codegen *c, const char *kind, int64_t m, int64_t n, int64_t k, const char *tuned)
{
    size_t used = strlen(c->gemm_note);
    char shape[128];
    snprintf(shape, sizeof shape, "%s%s %lldx%lldx%lld%s%s", used ? "+" : "", kind, (long long)m, (long long)n,
             (long long)k, *tuned ? " " : "", tuned);
    if (!strstr(c->gemm_note, shape + (used ? 1 : 0)) && used + strlen(shape) < sizeof c->gemm_note)
        strcat(c->gemm_note, shape);
}

void sc_cg_gemm_note(sc_codegen *c, const char *kind, int64_t m, int64_t n, int64_t k)
{
    char tuned[32];
    tuned_suffix(c, m, n, k, tuned, sizeof tuned);
    note_shape(c, kind, m, n, k, tuned);
}

/* The function called name for the GEMM g (its shape, blocking and B set
 * up), defined on first use. */
static LLVMValueRef gemm_function(sc_codegen *c, const char *name, gemm *g, LLVMTypeRef *ft)
{
    LLVMTypeRef args[4] = {c->ptr, c->ptr, c->ptr, c->elt};
    *ft = LLVMFunctionType(c->vd, args, 4, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
    if (fn)
        return fn;
    fn = LLVMAddFunction(c->mod, name, *ft);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    for (unsigned p = 1; p <= 3; p++) {
        add_attr(c, fn, p, "noalias", 0);
        add_attr(c, fn, p, "nocapture", 0);
    }
    add_attr(c, fn, 1, "readonly", 0);
    add_attr(c, fn, 2, "readonly", 0);
    add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);
    add_attr(c, fn, LLVMAttributeFunctionIndex, "noinline", 0);
    char w[16];
    snprintf(w, sizeof w, "%d", c->gemm_vbits);
    str_attr(c, fn, "min-legal-vector-width", w);
    str_attr(c, fn, "prefer-vector-width", w);
    /* The JIT's target machine is generic x86-64: the function says what
     * it was generated for. */
    str_attr(c, fn, "target-cpu", c->cpu);
    if (*c->features)
        str_attr(c, fn, "target-features", c->features);
    g->vt = LLVMVectorType(c->elt, (unsigned)g->bl.vw);
    /* generate inside it, then come back to the caller's kernel */
    LLVMValueRef saved_fn = c->fn;
    LLVMBasicBlockRef saved_entry = c->entry, saved_at = LLVMGetInsertBlock(c->b);
    c->fn = fn;
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    g->A = LLVMGetParam(fn, 0);
    g->B = LLVMGetParam(fn, 1);
    g->C = LLVMGetParam(fn, 2);
    g->beta = LLVMGetParam(fn, 3);
    define_gemm(c, g);
    c->fn = saved_fn;
    c->entry = saved_entry;
    LLVMPositionBuilderAtEnd(c->b, saved_at);
    return fn;
}

/* out = beta * out where op(A) op(B) is empty (k = 0). */
static void scale_only(sc_codegen *c, int64_t m, int64_t n, LLVMValueRef beta, LLVMValueRef out, int64_t ldc)
{
    loop Li, Lj;
    LLVMValueRef i = loop_begin(c, &Li, m);
    LLVMValueRef j = loop_begin(c, &Lj, n);
    LLVMValueRef idx = mad(c, i, ldc, j);
    LLVMValueRef bz = LLVMBuildFCmp(c->b, LLVMRealOEQ, beta, cf(c, 0), "");
    st(c, out, idx, LLVMBuildSelect(c->b, bz, cf(c, 0), fmul(c, beta, ld(c, out, idx)), ""));
    loop_end(c, &Lj);
    loop_end(c, &Li);
}

void sc_cg_gemm(sc_codegen *c, int ta, int tb, int64_t m, int64_t n, int64_t k, LLVMValueRef a, int64_t lda,
                LLVMValueRef b, int64_t ldb, LLVMValueRef beta, LLVMValueRef out, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        scale_only(c, m, n, beta, out, ldc);
        return;
    }
    char kind[3] = {ta ? 't' : 'n', tb ? 't' : 'n', 0}, name[160], tuned[32];
    tuned_suffix(c, m, n, k, tuned, sizeof tuned);
    note_shape(c, kind, m, n, k, tuned);
    /* sc_gemm.<s|d><n|t><n|t>.MxNxK.<lda>.<ldb>.<ldc>[.r<mr>k<kc>] */
    snprintf(name, sizeof name, "sc_gemm.%c%s.%lldx%lldx%lld.%lld.%lld.%lld%s%s", c->f64_elements ? 'd' : 's', kind,
             (long long)m, (long long)n, (long long)k, (long long)lda, (long long)ldb, (long long)ldc,
             *tuned ? "." : "", tuned);
    gemm g = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
              .bl = sc_cg_gemm_blocking(c, m, n, k)};
    LLVMTypeRef ft;
    LLVMValueRef fn = gemm_function(c, name, &g, &ft);
    LLVMValueRef args[4] = {a, b, out, beta};
    LLVMBuildCall2(c->b, ft, fn, args, 4, "");
}

/* The implicit GEMMs' one body: kind IM2COL, IM2COL_T or IM2ROW. */
static void gemm_conv(sc_codegen *c, int kind, int64_t m, int64_t n, int64_t k, LLVMValueRef a, int64_t lda,
                      const sc_conv_geom *v, int64_t nb, LLVMValueRef x, LLVMValueRef beta, LLVMValueRef out, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        scale_only(c, m, n, beta, out, ldc);
        return;
    }
    const char *kinds[] = {"", "in", "it", "ir"};
    /* IM2ROW's default is 8 register rows, not 14 (--tune may choose
     * others): measured 1.07x the speed on resnet18-stl10 b32's layer-1
     * (64x576x576) and 1.06-1.08x on layer-4 rows/2 (256x4608x288) weight
     * gradients, other shapes within the noise (one core, thread CPU time,
     * best of 15, three runs, machine shared). */
    int rule_mr = kind == IM2ROW ? 8 : 0, tuned_mr = c->gemm_mr;
    char tuned[32];
    tuned_suffix_for(c, m, n, k, rule_mr, tuned, sizeof tuned);
    note_shape(c, kinds[kind], m, n, k, tuned);
    /* sc_gemm.<s|d><in|it|ir>.MxNxK.<lda>.<ldc>.<c>x<h>x<w>.k<k>s<s>p<p>d<d>.<oh>x<ow>x<nb>[.r<mr>k<kc>]:
     * the geometry fixes op(B) */
    char name[240];
    snprintf(name, sizeof name, "sc_gemm.%c%s.%lldx%lldx%lld.%lld.%lld.%lldx%lldx%lld.k%llds%lldp%lldd%lld.%lldx%lldx%lld%s%s",
             c->f64_elements ? 'd' : 's', kinds[kind], (long long)m, (long long)n, (long long)k, (long long)lda,
             (long long)ldc, (long long)v->c, (long long)v->h, (long long)v->w, (long long)v->k, (long long)v->s,
             (long long)v->p, (long long)v->d, (long long)v->oh, (long long)v->ow, (long long)nb, *tuned ? "." : "",
             tuned);
    c->gemm_mr = tuned_mr ? tuned_mr : rule_mr;
    gemm g = {.tb = kind == IM2COL_T, .m = m, .n = n, .k = k, .lda = lda, .ldc = ldc, .bl = sc_cg_gemm_blocking(c, m, n, k),
              .implicit = kind, .conv = *v, .nb = nb};
    c->gemm_mr = tuned_mr;
    g.ldb = g.bl.nc; /* IM2COL, IM2ROW: the gathered block's rows (IM2COL_T: packed panels) */
    LLVMTypeRef ft;
    LLVMValueRef fn = gemm_function(c, name, &g, &ft);
    LLVMValueRef args[4] = {a, x, out, beta};
    LLVMBuildCall2(c->b, ft, fn, args, 4, "");
}

void sc_cg_gemm_conv(sc_codegen *c, int tb, int64_t m, int64_t n, int64_t k, LLVMValueRef a, int64_t lda,
                     const sc_conv_geom *v, int64_t nb, LLVMValueRef x, LLVMValueRef beta, LLVMValueRef out, int64_t ldc)
{
    gemm_conv(c, tb ? IM2COL_T : IM2COL, m, n, k, a, lda, v, nb, x, beta, out, ldc);
}

void sc_cg_gemm_conv_rows(sc_codegen *c, int64_t m, int64_t n, int64_t k, LLVMValueRef a, int64_t lda,
                          const sc_conv_geom *v, int64_t nb, LLVMValueRef x_nhwc, LLVMValueRef beta, LLVMValueRef out,
                          int64_t ldc)
{
    gemm_conv(c, IM2ROW, m, n, k, a, lda, v, nb, x_nhwc, beta, out, ldc);
}

/* ---- NCHW to channels-last ---- */

/* Whether source pixel p = y*w + x of an h x w plane is kept by a
 * subsampling of stride s (y and x multiples of s), and its destination
 * pixel (y/s)*ow + x/s. */
static LLVMValueRef kept_pixel(sc_codegen *c, LLVMValueRef p, int64_t w, int64_t s, int64_t ow, LLVMValueRef *to)
{
    if (s == 1) {
        *to = p;
        return LLVMConstInt(c->i1, 1, 0);
    }
    LLVMValueRef y = LLVMBuildUDiv(c->b, p, ci(c, w), ""), x = LLVMBuildURem(c->b, p, ci(c, w), "");
    *to = mad(c, LLVMBuildUDiv(c->b, y, ci(c, s), ""), ow, LLVMBuildUDiv(c->b, x, ci(c, s), ""));
    return LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, LLVMBuildURem(c->b, y, ci(c, s), ""), ci(c, 0), ""),
                        LLVMBuildICmp(c->b, LLVMIntEQ, LLVMBuildURem(c->b, x, ci(c, s), ""), ci(c, 0), ""), "");
}

void sc_cg_to_channels_last(sc_codegen *c, int64_t nb, int64_t ch, int64_t h, int64_t w, int64_t s, LLVMValueRef x,
                            LLVMValueRef dst)
{
    target_vectors(c);
    int esize = c->f64_elements ? 8 : 4, vw = c->gemm_vbits / (8 * esize);
    int64_t hw = h * w, oh = (h - 1) / s + 1, ow = (w - 1) / s + 1, ohw = oh * ow;
    int64_t kfull = ch / vw * vw, pfull = hw / vw * vw;
    gemm g = {.bl = {.vw = vw}};
    g.vt = LLVMVectorType(c->elt, (unsigned)vw);
    LLVMTypeRef over[2] = {g.vt, c->ptr};
    loop Lj, Lk, Lp, Lr, Lc, Lq;
    LLVMValueRef j = loop_begin(c, &Lj, nb);
    LLVMValueRef xn = gep(c, x, imul(c, j, ci(c, ch * hw))), dn = gep(c, dst, imul(c, j, ci(c, ch * ohw)));
    if (kfull) {
        /* vw channels by vw pixels: vw row loads, a transpose in
         * registers, vw stores of a pixel's vw channels (at a stride
         * that does not divide vw, each under a mask of all or none of
         * its lanes) */
        LLVMValueRef k0 = imul(c, loop_begin(c, &Lk, kfull / vw), ci(c, vw));
        LLVMValueRef xk = gep(c, xn, imul(c, k0, ci(c, hw))), dk = gep(c, dn, k0);
        if (s > 1 && vw % s == 0) {
            /* subsampled: the kept rows only, in squares along each (the
             * last one's lanes past w masked off); a kept pixel's lane t
             * is a multiple of s, known here */
            LLVMValueRef y = loop_begin(c, &Lp, oh);
            LLVMValueRef xrow = gep(c, xk, imul(c, y, ci(c, s * w))), drow = gep(c, dk, imul(c, y, ci(c, ow * ch)));
            for (int part = 0; part < 2; part++) {
                int64_t lanes = part ? w % vw : vw, blocks = part ? (w % vw != 0) : w / vw;
                if (!blocks)
                    continue;
                LLVMValueRef x0 = part ? ci(c, w / vw * vw) : imul(c, loop_begin(c, &Lr, blocks), ci(c, vw));
                LLVMValueRef r[64];
                for (int t = 0; t < vw; t++)
                    r[t] = vload(c, &g, gep(c, xrow, iadd(c, x0, ci(c, (int64_t)t * hw))), (int)lanes);
                transpose(c, r, vw);
                LLVMValueRef d0 = gep(c, drow, imul(c, LLVMBuildSDiv(c->b, x0, ci(c, s), ""), ci(c, ch)));
                for (int t = 0; t < lanes; t += (int)s)
                    vstore(c, &g, gep(c, d0, ci(c, t / s * ch)), r[t], vw);
                if (!part)
                    loop_end(c, &Lr);
            }
            loop_end(c, &Lp);
            loop_end(c, &Lk);
        } else {
            if (pfull) {
                LLVMValueRef p0 = imul(c, loop_begin(c, &Lp, pfull / vw), ci(c, vw));
                LLVMValueRef r[64];
                for (int t = 0; t < vw; t++)
                    r[t] = vload(c, &g, gep(c, xk, iadd(c, p0, ci(c, (int64_t)t * hw))), vw);
                transpose(c, r, vw);
                for (int t = 0; t < vw; t++) {
                    LLVMValueRef to, keep = kept_pixel(c, iadd(c, p0, ci(c, t)), w, s, ow, &to);
                    LLVMValueRef d = LLVMBuildGEP2(c->b, c->elt, dk, (LLVMValueRef[]){imul(c, to, ci(c, ch))}, 1, "");
                    if (s == 1) {
                        vstore(c, &g, d, r[t], vw);
                        continue;
                    }
                    LLVMValueRef ins = LLVMBuildInsertElement(c->b, LLVMGetPoison(LLVMVectorType(c->i1, (unsigned)vw)), keep,
                                                              LLVMConstInt(c->i32, 0, 0), "");
                    LLVMValueRef mask = LLVMBuildShuffleVector(c->b, ins, LLVMGetPoison(LLVMTypeOf(ins)),
                                                               LLVMConstNull(LLVMVectorType(c->i32, (unsigned)vw)), "");
                    LLVMValueRef args[4] = {r[t], d, LLVMConstInt(c->i32, (unsigned)esize, 0), mask};
                    intrinsic(c, "llvm.masked.store", over, 2, args, 4);
                }
                loop_end(c, &Lp);
            }
            if (pfull < hw) { /* the last pixels, one channel at a time */
                LLVMValueRef p = loop_range(c, &Lr, ci(c, pfull), ci(c, hw));
                LLVMValueRef to, keep = kept_pixel(c, p, w, s, ow, &to);
                branch Bk;
                if_begin(c, &Bk, keep);
                LLVMValueRef d = gep(c, dk, imul(c, to, ci(c, ch)));
                LLVMValueRef k = loop_begin(c, &Lc, vw);
                st(c, d, k, ld(c, xk, mad(c, k, hw, p)));
                loop_end(c, &Lc);
                if_end(c, &Bk);
                loop_end(c, &Lr);
            }
            loop_end(c, &Lk);
        }
    }
    if (kfull < ch) { /* the last channels, by destination pixel */
        LLVMValueRef q = loop_begin(c, &Lq, ohw);
        LLVMValueRef src = mad(c, LLVMBuildUDiv(c->b, q, ci(c, ow), ""), s * w,
                               imul(c, LLVMBuildURem(c->b, q, ci(c, ow), ""), ci(c, s)));
        LLVMValueRef d = gep(c, dn, imul(c, q, ci(c, ch)));
        LLVMValueRef k = loop_range(c, &Lc, ci(c, kfull), ci(c, ch));
        st(c, d, k, ld(c, xn, mad(c, k, hw, src)));
        loop_end(c, &Lc);
        loop_end(c, &Lq);
    }
    loop_end(c, &Lj);
}

/* ---- col2im ---- */

void sc_cg_scatter_add(sc_codegen *c, int64_t s, LLVMValueRef x, LLVMValueRef col, LLVMValueRef lo, LLVMValueRef hi)
{
    target_vectors(c);
    int esize = c->f64_elements ? 8 : 4, vw = c->gemm_vbits / (8 * esize);
    loop Lt;
    if (vw % s) { /* a vector's lanes would not start on a column: one at a time */
        LLVMValueRef t = loop_range(c, &Lt, lo, hi);
        LLVMValueRef xi = imul(c, t, ci(c, s));
        st(c, x, xi, fadd(c, ld(c, x, xi), ld(c, col, t)));
        loop_end(c, &Lt);
        return;
    }
    /* a vector of x's row covers vw/s columns: column t0 + j in lane j*s */
    int per = vw / (int)s;
    LLVMTypeRef vt = LLVMVectorType(c->elt, (unsigned)vw);
    LLVMTypeRef over[2] = {vt, c->ptr};
    LLVMValueRef lanes[64], spread[64], cols[64];
    for (int l = 0; l < vw; l++) {
        lanes[l] = LLVMConstInt(c->i32, (unsigned long long)l, 0);
        /* lane l of x takes column l/s where s divides l, else a lane the
         * masked load left 0 (lane vw-1: per < vw where s > 1) */
        spread[l] = LLVMConstInt(c->i32, (unsigned long long)(l % s ? vw - 1 : l / s), 0);
        cols[l] = LLVMConstInt(c->i32, (unsigned long long)(l % s ? 1 << 30 : l / s), 0);
    }
    LLVMValueRef lanev = LLVMConstVector(lanes, (unsigned)vw), colv = LLVMConstVector(cols, (unsigned)vw);
    LLVMValueRef nvec = LLVMBuildSDiv(c->b, iadd(c, isub(c, hi, lo), ci(c, per - 1)), ci(c, per), "");
    LLVMValueRef t0 = iadd(c, lo, imul(c, loop_range(c, &Lt, ci(c, 0), nvec), ci(c, per)));
    /* the columns left from t0: lanes of col below them (and below per), lanes of x whose column is */
    LLVMTypeRef iv = LLVMVectorType(c->i32, (unsigned)vw);
    LLVMValueRef left = LLVMBuildTrunc(c->b, isub(c, hi, t0), c->i32, "");
    left = LLVMBuildShuffleVector(c->b, LLVMBuildInsertElement(c->b, LLVMGetPoison(iv), left, LLVMConstInt(c->i32, 0, 0), ""),
                                  LLVMGetPoison(iv), LLVMConstNull(iv), "");
    LLVMValueRef cmask = LLVMBuildICmp(c->b, LLVMIntSLT, lanev, left, "");
    if (per < vw) {
        LLVMValueRef pl[64];
        for (int l = 0; l < vw; l++)
            pl[l] = LLVMConstInt(c->i1, l < per, 0);
        cmask = LLVMBuildAnd(c->b, cmask, LLVMConstVector(pl, (unsigned)vw), "");
    }
    LLVMValueRef xmask = LLVMBuildICmp(c->b, LLVMIntSLT, colv, left, "");
    unsigned align = (unsigned)esize;
    LLVMValueRef largs[4] = {gep(c, col, t0), LLVMConstInt(c->i32, align, 0), cmask, LLVMConstNull(vt)};
    LLVMValueRef v = intrinsic(c, "llvm.masked.load", over, 2, largs, 4);
    if (s > 1)
        v = LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(vt), LLVMConstVector(spread, (unsigned)vw), "");
    LLVMValueRef xp = gep(c, x, imul(c, t0, ci(c, s)));
    LLVMValueRef xargs[4] = {xp, LLVMConstInt(c->i32, align, 0), xmask, LLVMConstNull(vt)};
    LLVMValueRef sum = fadd(c, intrinsic(c, "llvm.masked.load", over, 2, xargs, 4), v);
    LLVMValueRef sargs[4] = {sum, xp, LLVMConstInt(c->i32, align, 0), xmask};
    intrinsic(c, "llvm.masked.store", over, 2, sargs, 4);
    loop_end(c, &Lt);
}
