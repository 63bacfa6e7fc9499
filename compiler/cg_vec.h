/* Explicit vectors of the target's GEMM width for the transforms around
 * generated GEMMs (cg_winograd.c, cg_winograd_wgrad.c): masked loads and
 * stores of the first elements of a vector, and a strided deinterleave by
 * constant shuffles (LLVM's own vectorisation of such scalar loops uses
 * gathers, the slow part of the transforms it was measured in). */
#ifndef SC_CG_VEC_H
#define SC_CG_VEC_H

#include "codegen_internal.h"

typedef struct {
    int vw;         /* elements per vector */
    LLVMTypeRef vt; /* <vw x elt> */
} sc_vec;

/* The vectors of sc_cg_gemm_blocking's width on c's target. */
sc_vec sc_vec_of(sc_codegen *c);

/* The first `on` elements at p (0 < on <= vw), zeros after. */
LLVMValueRef sc_vload_n(sc_codegen *c, const sc_vec *w, LLVMValueRef p, int on);

/* The first `on` lanes of v to p (0 < on <= vw); on 0: v a scalar. */
void sc_vstore_n(sc_codegen *c, const sc_vec *w, LLVMValueRef p, LLVMValueRef v, int on);

/* out[k][l] = the element s l + k of the nv vectors part[] one after
 * the other, for l < lanes, k < nk (0 past `lanes`): for each k, a chain
 * of two-source constant shuffles, one per further part its lanes read
 * (one vpermt2ps each on AVX-512). A single shuffle of the parts'
 * concatenation, as this was first written, took LLVM 70 shuffles, blends
 * and masked moves instead of 36 for the weights transform's 9 taps of 16
 * filters (cg_winograd.c). */
void sc_vpick(sc_codegen *c, const sc_vec *w, LLVMValueRef *part, int nv, int s, int lanes, int nk,
              LLVMValueRef *out);

/* out[k][l] = p[s l + k] for l < lanes, k < nk: the span of s (lanes-1)
 * + nk elements from p in masked loads of whole vectors (nothing past
 * the span read), put together and picked apart by constant shuffles;
 * lanes 0: the scalars p[k]. The span at most 8 vectors. */
void sc_vdeinterleave(sc_codegen *c, const sc_vec *w, LLVMValueRef p, int s, int lanes, int nk, LLVMValueRef *out);

#endif
