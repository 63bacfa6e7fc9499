/* Generated GEMM kernels (cg_gemm.c): C = op(A) op(B) + beta C, row
 * major, every size and leading dimension a compile-time constant. Each
 * distinct shape becomes one internal function "sc_gemm.<shape>" that the
 * caller's kernel calls with the three pointers and beta. */
#ifndef SC_CG_GEMM_H
#define SC_CG_GEMM_H

#include <stdint.h>

#include "codegen_internal.h"
#include "convplan.h"

/* The blocking of one GEMM: a register block of mr rows by nv vectors of
 * vw elements, k in blocks of kc, the packed B block nc columns wide. */
typedef struct {
    int vw, mr, nv;
    int64_t kc, nc;
    int fma;                  /* the target has vector FMA (else fmuladd) */
} sc_gemm_blocking;

/* The blocking sc_cg_gemm uses for this shape on c's target. */
sc_gemm_blocking sc_cg_gemm_blocking(sc_codegen *c, int64_t m, int64_t n, int64_t k);

/* Emits (once per shape) the function and, at the builder's position, a
 * call: out[m x n] (ldc) = op(a) op(b) + beta out, op(a) m x k (a^T when
 * ta, a's rows lda apart), op(b) k x n (likewise). beta is an element
 * value; where it is 0, out's old values are ignored (NaN included). */
void sc_cg_gemm(sc_codegen *c, int ta, int tb, int64_t m, int64_t n, int64_t k, LLVMValueRef a, int64_t lda,
                LLVMValueRef b, int64_t ldb, LLVMValueRef beta, LLVMValueRef out, int64_t ldc);

/* Implicit GEMM of a convolution (no im2col matrix): as sc_cg_gemm with
 * op(A) = a (m x k, not transposed) and op(B) the im2col matrix of the nb
 * images at x (geometry g, groups 1; rows c*k*k, columns nb*oh*ow, image
 * by image), or its transpose when tb. Each k x n block of op(B) is
 * gathered from x into a stack buffer that stays in cache, instead of the
 * whole matrix into a workspace. */
void sc_cg_gemm_conv(sc_codegen *c, int tb, int64_t m, int64_t n, int64_t k, LLVMValueRef a, int64_t lda,
                     const sc_conv_geom *g, int64_t nb, LLVMValueRef x, LLVMValueRef beta, LLVMValueRef out, int64_t ldc);

/* Adds "kind MxNxK" to the running kernel's name (info --kernels) as
 * sc_cg_gemm and sc_cg_gemm_conv do, for a phase of a kernel whose GEMM
 * runs in another phase. */
void sc_cg_gemm_note(sc_codegen *c, const char *kind, int64_t m, int64_t n, int64_t k);

/* The weight gradient's implicit GEMM with channels-last taps ("ir"):
 * as sc_cg_gemm_conv with tb, but op(B)'s columns tap-major, j = (kh*k +
 * kw)*c + ch, and x_nhwc the nb images channels-last ([img][h][w][c]).
 * op(B)[q][j] = x_nhwc[img][oy*s - p + kh*d][ox*s - p + kw*d][ch] (0 in
 * the padding): each gathered block row is a few contiguous channel runs,
 * and op(B) is read in place as an untransposed B (no transposing pack). */
void sc_cg_gemm_conv_rows(sc_codegen *c, int64_t m, int64_t n, int64_t k, LLVMValueRef a, int64_t lda,
                          const sc_conv_geom *g, int64_t nb, LLVMValueRef x_nhwc, LLVMValueRef beta, LLVMValueRef out,
                          int64_t ldc);

/* dst[((j*oh + y)*ow + x)*ch + k] = x[j][k][y*s][x*s] for the nb images
 * of ch channels of h x w at x (NCHW), oh = (h-1)/s + 1, ow = (w-1)/s + 1:
 * the images channels-last, subsampled at stride s (1: all pixels; s > 1:
 * the input a 1x1 unpadded convolution of stride s reads). In vw x vw
 * squares transposed in registers (a scalar copy reads x's channel rows
 * h*w floats apart, one float each, and took 40% of resnet18-cifar's
 * layer-2 3x3 stride-2 weight gradient), the last pixels and channels
 * one at a time. */
void sc_cg_to_channels_last(sc_codegen *c, int64_t nb, int64_t ch, int64_t h, int64_t w, int64_t s, LLVMValueRef x,
                            LLVMValueRef dst);

/* x[t*s] += col[t] for t in [lo, hi): a row of col2im, in vectors of x's
 * row where s divides the vector width (lanes of the columns between s
 * taps masked off, nothing outside [lo*s, hi*s) read or written), else
 * one column at a time. The scalar loop of stride 2 took 3 ms of the 13
 * of resnet18-cifar's layer-2 3x3 stride-2 data gradient (one thread). */
void sc_cg_scatter_add(sc_codegen *c, int64_t s, LLVMValueRef x, LLVMValueRef col, LLVMValueRef lo, LLVMValueRef hi);

/* The output columns ow of a convolution whose input column ow*s - p + kw
 * lies in [0, w): [lo, hi), in generated code from kw (the tap's column
 * offset, kw*d when dilated). */
void sc_cg_conv_valid_cols(sc_codegen *c, const sc_conv_geom *g, LLVMValueRef kw, LLVMValueRef *lo, LLVMValueRef *hi);

#endif
