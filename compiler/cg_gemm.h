/* Generated GEMM kernels (cg_gemm.c): C = op(A) op(B) + beta C, row
 * major, every size and leading dimension a compile-time constant. Each
 * distinct shape becomes one internal function "sc_gemm.<shape>" that the
 * caller's kernel calls with the three pointers and beta. */
#ifndef SC_CG_GEMM_H
#define SC_CG_GEMM_H

#include <stdint.h>

#include "codegen_internal.h"

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

#endif
