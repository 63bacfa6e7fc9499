/* The Winograd transforms' vectors over tiles (cg_winograd_vec.c), for
 * the forward and data gradient (cg_winograd.c) and the weight gradient
 * (cg_winograd_wgrad.c): a tile's element e of a row of tiles is
 * contiguous over the tiles (V, M, Z: [e][ch][j*tt + ty*tw + tx]), but
 * the plane's (or output's) values of consecutive tiles are m apart, so
 * vectors of tiles are loaded as whole vectors of the plane picked apart
 * by constant shuffles (and put back together the same way), instead of
 * the gathers and scatters LLVM makes of the scalar loops. */
#ifndef SC_CG_WINOGRAD_VEC_H
#define SC_CG_WINOGRAD_VEC_H

#include "codegen_internal.h"

typedef struct {
    int vw;          /* elements per vector: the GEMMs' vector width */
    LLVMTypeRef vt;  /* <vw x elt> */
} sc_wino_vec;

sc_wino_vec sc_cg_wino_vec(sc_codegen *c);

/* The first `on` elements at p (0 < on <= vw), zeros after. */
LLVMValueRef sc_cg_wino_vload(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef p, int on);

/* The first `on` lanes of v to p (a masked store where on < vw); on 0:
 * v is a scalar. */
void sc_cg_wino_vstore(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef p, LLVMValueRef v, int on);

/* out[k] lane q lanes + l = p[q rs + s l + k] for l < lanes, q < rows,
 * k < nk (rows lanes <= vw; the other lanes hold values of the span or
 * zeros): each row's span of s (lanes-1) + nk elements in masked loads
 * of whole vectors, put together and picked apart by constant shuffles.
 * lanes 0: the scalars p[k] (rows 1). */
void sc_cg_wino_deinterleave(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef p, int64_t rs, int rows, int s,
                             int lanes, int nk, LLVMValueRef *out);

/* sc_cg_wino_deinterleave in two steps, for arithmetic on P's rows
 * between them (cg_winograd.c): the vectors each row's span takes (at
 * most 8 for the rows), the rows' parts (rows x that many, row by row)
 * loaded, and the lanes picked from parts of those. */
int sc_cg_wino_span_parts(const sc_wino_vec *w, int s, int lanes, int nk);
void sc_cg_wino_load_parts(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef p, int64_t rs, int rows, int s, int lanes,
                           int nk, LLVMValueRef *part);
void sc_cg_wino_pick(sc_codegen *c, const sc_wino_vec *w, const LLVMValueRef *part, int rows, int s, int lanes, int nk,
                     LLVMValueRef *out);

/* out[k][l] = the element s l + k of the nv vectors part[] one after
 * the other, for l < lanes, k < nk (0 past `lanes`): for each k, a chain
 * of two-source constant shuffles, one per further part its lanes read
 * (one vpermt2ps each on AVX-512). For the weights transform's 9 taps of
 * 16 filters (cg_winograd.c) a single shuffle of the parts'
 * concatenation, as sc_cg_wino_pick does for rows of tiles, took LLVM 70
 * shuffles, blends and masked moves instead of 36. The other way round,
 * the chain for the input transform's rows of tiles measured slower
 * (bench/wino_bench.c, one core, AMD EPYC Zen 5, 4 alternating runs:
 * cifar 16x16 1.03-1.40 ms against 0.95-1.02, 8x8 0.87-1.43 against
 * 0.68-0.93), so both stay. */
void sc_cg_wino_pick_chain(sc_codegen *c, const sc_wino_vec *w, const LLVMValueRef *part, int nv, int s, int lanes,
                           int nk, LLVMValueRef *out);

/* The inverse for m values a tile: p[q rs + m l + k] = in[k] lane q lanes
 * + l for k < m, l < lanes, q < rows, only the first `width` (<= m lanes)
 * columns of each row: in[] put together and picked apart into the rows'
 * vectors by constant shuffles, stored whole or masked. lanes 0: the
 * scalars in[k] to p[k] for k < width (rows 1). */
void sc_cg_wino_interleave(sc_codegen *c, const sc_wino_vec *w, LLVMValueRef *in, int m, LLVMValueRef p, int64_t rs,
                           int rows, int lanes, int width);

#endif
