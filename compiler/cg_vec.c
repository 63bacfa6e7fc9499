/* Explicit vectors for the transforms around generated GEMMs (cg_vec.h),
 * first written for the weight gradient's tiles (cg_winograd_wgrad.c). */
#include "cg_vec.h"

#include <string.h>

#include "cg_builder.h"
#include "cg_gemm.h"

sc_vec sc_vec_of(sc_codegen *c)
{
    sc_vec w;
    w.vw = sc_cg_gemm_blocking(c, 1, 1, 1).vw;
    w.vt = LLVMVectorType(c->elt, (unsigned)w.vw);
    return w;
}

static LLVMValueRef lane_mask(sc_codegen *c, int vw, int on)
{
    LLVMValueRef bits[64];
    for (int i = 0; i < vw; i++)
        bits[i] = LLVMConstInt(c->i1, i < on, 0);
    return LLVMConstVector(bits, (unsigned)vw);
}

static LLVMValueRef masked_op(sc_codegen *c, const char *name, const sc_vec *w, LLVMValueRef *args)
{
    LLVMTypeRef over[2] = {w->vt, c->ptr};
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, over, 2);
    return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, over, 2), fn, args, 4, "");
}

LLVMValueRef sc_vload_n(sc_codegen *c, const sc_vec *w, LLVMValueRef p, int on)
{
    if (on == w->vw) {
        LLVMValueRef v = LLVMBuildLoad2(c->b, w->vt, p, "");
        LLVMSetAlignment(v, c->f64_elements ? 8 : 4);
        return v;
    }
    LLVMValueRef args[4] = {p, LLVMConstInt(c->i32, c->f64_elements ? 8 : 4, 0), lane_mask(c, w->vw, on),
                            LLVMConstNull(w->vt)};
    return masked_op(c, "llvm.masked.load", w, args);
}

void sc_vstore_n(sc_codegen *c, const sc_vec *w, LLVMValueRef p, LLVMValueRef v, int on)
{
    if (!on) {
        st(c, p, ci(c, 0), v);
        return;
    }
    if (on == w->vw) {
        LLVMSetAlignment(LLVMBuildStore(c->b, v, p), c->f64_elements ? 8 : 4);
        return;
    }
    LLVMValueRef args[4] = {v, p, LLVMConstInt(c->i32, c->f64_elements ? 8 : 4, 0), lane_mask(c, w->vw, on)};
    masked_op(c, "llvm.masked.store", w, args);
}

void sc_vpick(sc_codegen *c, const sc_vec *w, LLVMValueRef *part, int nv, int s, int lanes, int nk,
              LLVMValueRef *out)
{
    LLVMValueRef zero = LLVMConstNull(w->vt);
    for (int k = 0; k < nk; k++) {
        LLVMValueRef acc = NULL;
        int filled[64] = {0};
        for (int h = 0; h < nv; h++) {
            LLVMValueRef idx[64];
            int any = 0;
            for (int l = 0; l < w->vw; l++) {
                int e = s * l + k, from = l < lanes && e / w->vw == h, at = from ? e % w->vw : -1;
                any |= from;
                if (!acc) /* part[h] and zeros: the lanes past `lanes` zero */
                    at = from ? at : l >= lanes ? w->vw : -1;
                else /* the vector so far and part[h] */
                    at = from ? w->vw + at : filled[l] || l >= lanes ? l : -1;
                idx[l] = at < 0 ? LLVMGetPoison(c->i32) : LLVMConstInt(c->i32, (unsigned long long)at, 0);
                filled[l] |= from;
            }
            if (!any)
                continue;
            LLVMValueRef m = LLVMConstVector(idx, (unsigned)w->vw);
            acc = LLVMBuildShuffleVector(c->b, acc ? acc : part[h], acc ? part[h] : zero, m, "");
        }
        out[k] = acc ? acc : zero;
    }
}

void sc_vdeinterleave(sc_codegen *c, const sc_vec *w, LLVMValueRef p, int s, int lanes, int nk, LLVMValueRef *out)
{
    if (!lanes) {
        for (int k = 0; k < nk; k++)
            out[k] = ld(c, p, ci(c, k));
        return;
    }
    int span = s * (lanes - 1) + nk, nv = (span + w->vw - 1) / w->vw;
    LLVMValueRef part[8];
    for (int h = 0; h < nv; h++) {
        int on = span - h * w->vw;
        part[h] = sc_vload_n(c, w, gep(c, p, ci(c, (int64_t)h * w->vw)), on < w->vw ? on : w->vw);
    }
    sc_vpick(c, w, part, nv, s, lanes, nk, out);
}
