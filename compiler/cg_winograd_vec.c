/* The Winograd transforms' vectors over tiles (cg_winograd_vec.h).
 * LLVM's own vectorisation of the scalar per-tile loops used gathers
 * (vgatherdps) and scatters by permutes: the transforms took as long as
 * the GEMMs (bench/wino_bench.c, bench/wino_wgrad_bench.c). */
#include "cg_winograd_vec.h"

#include <string.h>

#include "cg_builder.h"
#include "cg_gemm.h"

sc_wino_vec sc_cg_wino_vec(sc_codegen *c)
{
    sc_wino_vec w;
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

static LLVMValueRef masked_op(sc_codegen *c, const char *name, const sc_wino_vec *w, LLVMValueRef *args)
{
    LLVMTypeRef over[2] = {w->vt, c->ptr};
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, over, 2);
    return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, over, 2), fn, args, 4, "");
}

LLVMValueRef sc_cg_wino_vload(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef p, int on)
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

void sc_cg_wino_vstore(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef p, LLVMValueRef v, int on)
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

/* The n vectors part[] (n a power of 2) as one of n vw elements,
 * concatenated pairwise. */
static LLVMValueRef concat(sc_codegen *c, LLVMValueRef *part, int n)
{
    for (; n > 1; n /= 2)
        for (int h = 0; h < n / 2; h++) {
            int width = (int)LLVMGetVectorSize(LLVMTypeOf(part[2 * h])) * 2;
            LLVMValueRef idx[128];
            for (int l = 0; l < width; l++)
                idx[l] = LLVMConstInt(c->i32, (unsigned long long)l, 0);
            part[h] = LLVMBuildShuffleVector(c->b, part[2 * h], part[2 * h + 1], LLVMConstVector(idx, (unsigned)width), "");
        }
    return part[0];
}

int sc_cg_wino_span_parts(const sc_wino_vec *w, int s, int lanes, int nk)
{
    return (s * (lanes - 1) + nk + w->vw - 1) / w->vw;
}

void sc_cg_wino_load_parts(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef p, int64_t rs, int rows, int s, int lanes,
                           int nk, LLVMValueRef *part)
{
    int span = s * (lanes - 1) + nk, nv = sc_cg_wino_span_parts(w, s, lanes, nk);
    for (int q = 0; q < rows; q++) {
        LLVMValueRef pq = q ? gep(c, p, ci(c, q * rs)) : p;
        for (int h = 0; h < nv; h++) {
            int on = span - h * w->vw;
            part[q * nv + h] = sc_cg_wino_vload(c, w, gep(c, pq, ci(c, (int64_t)h * w->vw)), on < w->vw ? on : w->vw);
        }
    }
}

void sc_cg_wino_pick(sc_codegen *c, const sc_wino_vec *w, const LLVMValueRef *part, int rows, int s, int lanes, int nk,
                     LLVMValueRef *out)
{
    int nv = sc_cg_wino_span_parts(w, s, lanes, nk), np = 1;
    while (np < rows * nv)
        np *= 2;
    LLVMValueRef cat[8];
    for (int h = 0; h < np; h++)
        cat[h] = h < rows * nv ? part[h] : LLVMConstNull(w->vt);
    LLVMValueRef all = concat(c, cat, np);
    for (int k = 0; k < nk; k++) {
        LLVMValueRef idx[64];
        for (int i = 0; i < w->vw; i++) { /* lanes past rows lanes read inside the span or its zeros */
            int q = i / lanes, l = i % lanes;
            idx[i] = LLVMConstInt(c->i32, (unsigned long long)(q < rows ? q * nv * w->vw + s * l + k : 0), 0);
        }
        out[k] = LLVMBuildShuffleVector(c->b, all, LLVMGetPoison(LLVMTypeOf(all)), LLVMConstVector(idx, (unsigned)w->vw),
                                        "");
    }
}

void sc_cg_wino_deinterleave(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef p, int64_t rs, int rows, int s,
                             int lanes, int nk, LLVMValueRef *out)
{
    if (!lanes) {
        for (int k = 0; k < nk; k++)
            out[k] = ld(c, p, ci(c, k));
        return;
    }
    LLVMValueRef part[8];
    sc_cg_wino_load_parts(c, w, p, rs, rows, s, lanes, nk, part);
    sc_cg_wino_pick(c, w, part, rows, s, lanes, nk, out);
}

void sc_cg_wino_interleave(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef *in, int m, LLVMValueRef p, int64_t rs,
                           int rows, int lanes, int width)
{
    if (!lanes) {
        for (int k = 0; k < width; k++)
            st(c, p, ci(c, k), in[k]);
        return;
    }
    int np = 1;
    while (np < m)
        np *= 2;
    LLVMValueRef part[8];
    for (int k = 0; k < np; k++)
        part[k] = k < m ? in[k] : LLVMGetPoison(w->vt);
    LLVMValueRef all = concat(c, part, np);
    for (int q = 0; q < rows; q++) {
        LLVMValueRef pq = q ? gep(c, p, ci(c, q * rs)) : p;
        for (int x0 = 0; x0 < width; x0 += w->vw) {
            int on = width - x0 < w->vw ? width - x0 : w->vw;
            LLVMValueRef idx[64];
            for (int i = 0; i < w->vw; i++) {
                int x = x0 + i;
                idx[i] = i < on ? LLVMConstInt(c->i32, (unsigned long long)((x % m) * w->vw + q * lanes + x / m), 0)
                                : LLVMGetPoison(c->i32);
            }
            LLVMValueRef v =
                LLVMBuildShuffleVector(c->b, all, LLVMGetPoison(LLVMTypeOf(all)), LLVMConstVector(idx, (unsigned)w->vw), "");
            sc_cg_wino_vstore(c, w, x0 ? gep(c, pq, ci(c, x0)) : pq, v, on);
        }
    }
}

void sc_cg_wino_pick_chain(sc_codegen *c, const sc_wino_vec *w, const LLVMValueRef *part, int nv, int s, int lanes,
                           int nk, LLVMValueRef *out)
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
