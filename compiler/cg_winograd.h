/* winograd F(m,3), m = 2, 3, 4 (convplan.h, cg_winograd.c; the tile size
 * is the geometry's m): the pieces of its kernel, callable on their own
 * for tests. */
#ifndef SC_CG_WINOGRAD_H
#define SC_CG_WINOGRAD_H

#include "codegen_internal.h"
#include "convplan.h"

/* U[e][a][b] = (G g G^T)[e] for the GEMMs' rows a < v->cout and
 * columns b < v->cin. g is W[a][b] ([cout][cin][3][3]) for the forward
 * convolution, the loop over a split as par_loop ([c->arg_lo,
 * c->arg_hi), res->extent cout); with flip W is [cin][cout][3][3], g[kh][kw] =
 * W[b][a][2-kh][2-kw] (the data gradient as a forward convolution of
 * dy), and U is stored transposed, U[e][b][a] (the GEMMs' A^T: contiguous
 * over a as W is), the loop over b split (extent cin). */
void sc_cg_winograd_weights(sc_codegen *c, sc_lowered *res, const sc_wino_geom *v, LLVMValueRef W, LLVMValueRef U,
                            int flip);

/* F(2,3)'s transform of four values by B^T: d0-d2, d1+d2, d2-d1, d1-d3
 * (the forward's input tiles and the weight gradient's). */
void sc_cg_winograd_bt4(sc_codegen *c, LLVMValueRef d[4], LLVMValueRef out[4]);
/* its row r alone (0 <= r < 4) */
LLVMValueRef sc_cg_winograd_bt4_row(sc_codegen *c, LLVMValueRef d[4], int r);

/* P[(y+1)*wp + x+1] = src[y][x]: an h x w plane into the interior of
 * the zero-bordered plane P (its border, zeroed once per call by
 * sc_cg_winograd_clear, left zero). */
void sc_cg_winograd_plane(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef src, LLVMValueRef P);

/* Zeroes the input plane of the workspace ws (its border must stay zero
 * across chunks). */
void sc_cg_winograd_clear(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef ws);

/* One chunk: images img0 .. img0+nb-1 of X (NCHW, v->cin channels of h x
 * w) into Y's (v->cout channels, overwritten, + bias[o] unless bias is
 * NULL), with the transformed weights U (transposed where flip, as
 * sc_cg_winograd_weights leaves them) and the workspace ws
 * (sc_wino_geom's parts V, M, plane). */
void sc_cg_winograd_chunk(sc_codegen *c, const sc_wino_geom *v, int64_t nb, LLVMValueRef X, LLVMValueRef img0,
                          LLVMValueRef U, LLVMValueRef ws, LLVMValueRef Y, LLVMValueRef bias, int flip);

/* The chunk's two transforms on their own (bench/wino_bench.c): the
 * input tiles of images img0 .. img0+nb-1 of X into V (through the
 * plane P), and M's output tiles into Y (+ bias B[o] unless NULL). */
void sc_cg_winograd_inputs(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef X, LLVMValueRef img0, int64_t nb,
                           LLVMValueRef P, LLVMValueRef V);
void sc_cg_winograd_outputs(sc_codegen *c, const sc_wino_geom *v, LLVMValueRef M, LLVMValueRef Y, LLVMValueRef B,
                            LLVMValueRef img0, int64_t nb);

/* The whole convolution of n images on one thread (tests): the weights
 * W into ws's U, then each chunk of nb; by rows (v->rb; nb = n): every
 * image's input tiles into ws's V, then each block of rb output channels. */
void sc_cg_winograd_serial(sc_codegen *c, const sc_wino_geom *v, int64_t n, int64_t nb, LLVMValueRef W, LLVMValueRef X,
                           LLVMValueRef Y, LLVMValueRef ws, LLVMValueRef bias, int flip);

/* F(m,3)'s B^T (a x a, a = m+2), G (a x 3) and A^T (m x a) as the
 * forward uses them (the weight gradient's larger tiles,
 * cg_winograd_wgrad.c). */
void sc_cg_winograd_mats(int m, double bt[6][6], double g[6][3], double at[4][6]);

/* out[r] = sum over j < cols of M[r][j] x[j] for r < rows, M's rows
 * `stride` apart: the nonzero terms only, the +-1 ones as additions. */
void sc_cg_winograd_matvec(sc_codegen *c, const double *M, int stride, int rows, int cols, LLVMValueRef *x,
                           LLVMValueRef *out);

/* The node's kernel (both phases) from its plan; flip: the data gradient. */
void sc_cg_lower_winograd(sc_codegen *c, int i, sc_lowered *res, const sc_conv_plan *cp, int flip);

#endif
