/* NT-Xent over the projections of a global batch, for one rank's rows
 * (runtime/ntxent.c; the communicators in runtime/comm_*.c gather the
 * projections and call it).
 *
 * The global batch has m = 2NK rows: view 0 of every image, then view 1,
 * so row i's positive is row (i + m/2) mod m. A rank holds rows = 2N of
 * them: its local rows [0, N) are global rows [first, first + N) and its
 * local rows [N, 2N) are global rows [m/2 + first, m/2 + first + N).
 * With s_ij = z_i . z_j / t (self excluded) and lse_i = log sum_j!=i
 * exp(s_ij), the loss is (1/m) sum_i (lse_i - s_i,pos(i)); its gradient
 * is dL/dz_r = sum_j (G_rj + G_jr) z_j / t with G_ij = (softmax_i(j) -
 * [j = pos(i)]) / m. The same math as compiler/refops.c (sc_ref_ntxent)
 * and the generated kernel: float similarities from sgemm, double
 * accumulation. */
#ifndef SC_NTXENT_H
#define SC_NTXENT_H

#include <stdint.h>

/* The row index of local row i in the global layout. */
int64_t sc_ntxent_global_row(int64_t rows, int64_t m, int64_t first, int64_t i);

/* Forward for a rank's rows: zl [rows, d] its projections, zg [m, d] all
 * of them. Writes sim [rows, m] (z_i . z_j, unscaled) and, per local row,
 * lse[i] and term[i] = lse_i - s_i,pos(i). */
void sc_ntxent_rows_fwd(int64_t rows, int64_t m, int64_t d, double t, int64_t first, const float *zl,
                        const float *zg, float *sim, double *lse, double *term);

/* Backward for the same rows: from sim of the forward and every global
 * row's lse (lse_g [m]), dz [rows, d] = scale * dL/dz of the local rows.
 * h [rows, m] is scratch. */
void sc_ntxent_rows_bwd(int64_t rows, int64_t m, int64_t d, double t, int64_t first, const float *zg,
                        const float *sim, const double *lse_g, float scale, float *h, float *dz);

#endif
