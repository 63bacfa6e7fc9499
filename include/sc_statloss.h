/* Barlow Twins and VICReg over the projections of a global batch, for the
 * communicators (runtime/statloss.c; runtime/comm_*.c gather the
 * projections and call it).
 *
 * The global batch z [m, d] has the NT-Xent layout (sc_ntxent.h): view 0
 * of every image in rows [0, m/2), view 1 in [m/2, m). The formulas are
 * compiler/ir.h's SC_OP_BARLOW / SC_OP_VICREG, computed in double with
 * BLAS for the d x d products: every rank computes the whole loss and its
 * whole gradient from the same gathered z (the same arithmetic, so the
 * same bits on every rank) and keeps its own rows. Checked against
 * compiler/ref_statloss.c by tests/comm_check.c. */
#ifndef SC_STATLOSS_H
#define SC_STATLOSS_H

#include <stdint.h>

/* Loss over zg [m, d] (kind: sc_comm.h's SC_STATLOSS_*; coef: the four
 * coefficients); keeps z for sc_statloss_global_bwd. 0, or -1 when out of
 * memory. */
int sc_statloss_global_fwd(const float *zg, int64_t m, int64_t d, int kind, const double *coef, float *loss);
/* dz [rows, d] = factor times the gradient's rows of the rank whose first
 * image is global image first (sc_ntxent_global_row). 0, or -1 when out
 * of memory or without a forward of the same d. */
int sc_statloss_global_bwd(int64_t rows, int64_t d, int64_t first, float factor, float *dz);

#endif
