/* winograd F(2,3)'s weight gradient (convplan.h, cg_winograd_wgrad.c):
 * the pieces of its kernel, callable on their own for tests. v is
 * sc_conv_wino_wgrad_geom's: x's C channels (v->cin), dy's O (v->cout),
 * chunks of v->t / v->tt images. */
#ifndef SC_CG_WINOGRAD_WGRAD_H
#define SC_CG_WINOGRAD_WGRAD_H

#include "codegen_internal.h"
#include "convplan.h"

/* dU[e][o][ch] (dU [a*a][O][C], a = v->m + 2: F(m,3), m = 2, 3, 4) =
 * sum over the n images' tiles of Z[e][o][tile] V[e][ch][tile] for the
 * elements e of group `group` of `groups` ([g a*a/groups, (g+1)
 * a*a/groups); F(2,3): groups 1, 2 or 4, whole rows of the 4x4), Z =
 * A dy A^T of dy's m x m tiles, V = B^T d B of x's input tiles. dU's first chunk
 * overwrites. ws is the group's workspace (V, Z and the plane as
 * sc_conv_wino_wgrad_geom places them; the plane's border zero). */
void sc_cg_winograd_wgrad_group(sc_codegen *c, const sc_wino_geom *v, int64_t n, int group, int groups,
                                LLVMValueRef DY, LLVMValueRef X, LLVMValueRef ws, LLVMValueRef dU);

/* dW[o][ch] = G^T dU[.][o][ch] G for every ch < c_total: row o of dW
 * ([O][C][3][3]) from dU ([a*a][O][C], a = m+2) of F(m,3). */
void sc_cg_winograd_wgrad_row(sc_codegen *c, int64_t m, int64_t o_total, int64_t c_total, LLVMValueRef dU,
                              LLVMValueRef o, LLVMValueRef DW);

/* The whole weight gradient on one thread (tests): the groups one
 * after the other, then dW. dU at ws + v->at_u. */
void sc_cg_winograd_wgrad_serial(sc_codegen *c, const sc_wino_geom *v, int64_t n, int groups, LLVMValueRef DY,
                                 LLVMValueRef X, LLVMValueRef DW, LLVMValueRef ws);

/* The node's kernel (both phases) from its plan. */
void sc_cg_lower_winograd_wgrad(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *cp);

#endif
