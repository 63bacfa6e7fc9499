/* winograd F(2,3)'s weight gradient (convplan.h, cg_winograd_wgrad.c):
 * the pieces of its kernel, callable on their own for tests. v is the
 * geometry of x's C channels (v->cin) into one slice of ms = v->cout of
 * dW's O rows, over chunks of v->t / v->tt images. */
#ifndef SC_CG_WINOGRAD_WGRAD_H
#define SC_CG_WINOGRAD_WGRAD_H

#include "codegen_internal.h"
#include "convplan.h"

/* dU[e][o0 + r][ch] (dU [16][O][C], O = o_total) = sum over the n images' tiles of Z[e][r][tile] V[e][ch][tile], for the slice's rows
 * r < v->cout: Z = A dy A^T of dy's 2x2 tiles, V = B^T d B of x's input
 * tiles. dU's first chunk overwrites. ws is the slice's workspace (V, Z and
 * the plane as sc_wino_geom places them; the plane's border zero). */
void sc_cg_winograd_wgrad_slice(sc_codegen *c, const sc_wino_geom *v, int64_t o_total, int64_t n, LLVMValueRef DY,
                                LLVMValueRef X, LLVMValueRef o0, LLVMValueRef ws, LLVMValueRef dU);

/* dW[o][ch] = G^T dU[.][o][ch] G for every ch < c_total: row o of dW
 * ([O][C][3][3]) from dU ([16][O][C]). */
void sc_cg_winograd_wgrad_row(sc_codegen *c, int64_t o_total, int64_t c_total, LLVMValueRef dU, LLVMValueRef o,
                              LLVMValueRef DW);

/* The whole weight gradient on one thread (tests): `slices` slices of
 * O / slices rows one after the other, then dW. dU at ws + v->at_u. */
void sc_cg_winograd_wgrad_serial(sc_codegen *c, const sc_wino_geom *v, int64_t o_total, int64_t n, int64_t slices,
                                 LLVMValueRef DY, LLVMValueRef X, LLVMValueRef DW, LLVMValueRef ws);

/* The node's kernel (both phases) from its plan. */
void sc_cg_lower_winograd_wgrad(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *cp);

#endif
