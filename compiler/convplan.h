/* How each convolution node is computed (convplan.c): the choice of
 * algorithm and its geometry, shared by the memory plan (workspace sizes)
 * and the code generator.
 *
 *   gemm-1x1     a 1x1, stride-1, unpadded convolution of one image per
 *                GEMM: the input already is the GEMM operand.
 *   im2col+gemm  im2col of a chunk of images, one GEMM per chunk.
 *   shift+gemm   stride-1 convolutions as k*k GEMMs over a zero-padded
 *                copy of the input: tap (kh, kw) multiplies the padded
 *                planes shifted by kh*Wp + kw, with output positions on the
 *                padded grid (the columns past the right edge are computed
 *                and dropped). No im2col matrix: each GEMM reads the input
 *                once instead of k*k times over, at the price of the
 *                padding's wasted positions.
 *
 * Policy (simclrc --conv): `im2col` (the default) uses im2col+gemm, or
 * gemm-1x1 where it applies; `shift` uses shift+gemm where it is legal and
 * the padded grid wastes at most SC_SHIFT_WASTE of the output positions
 * (large planes: ResNet's first stages), else im2col. On the machines we
 * measured (OpenBLAS 0.3.21, AVX-512), shift+gemm ran 0.83x to 1.12x the
 * speed of the generated im2col per convolution, so it is not the
 * default; bench/ compares the two. */
#ifndef SC_CONVPLAN_H
#define SC_CONVPLAN_H

#include <stdint.h>

#include "ir.h"

typedef enum { SC_CONV_IM2COL, SC_CONV_GEMM1X1, SC_CONV_SHIFT } sc_conv_algo;

/* Per-node choices measured by simclrc --tune: a convolution node whose
 * label and op match an entry uses its algorithm (where legal). */
typedef struct {
    char label[SC_NAME_MAX];
    sc_opkind op;
    sc_conv_algo algo;
    double ms_im2col, ms_shift;  /* as measured (shift -1: not legal) */
} sc_conv_pick;

typedef struct sc_conv_tuning_ {
    sc_conv_pick *v;
    int n;
} sc_conv_tuning;

/* sc_memplan_opts.conv; FORCE_SHIFT (every legal convolution, whatever
 * the waste) is for tests */
enum { SC_CONV_IM2COL_POLICY, SC_CONV_SHIFT_POLICY, SC_CONV_FORCE_SHIFT };

#define SC_SHIFT_WASTE 1.4

/* The shifted-GEMM geometry of one node: the GEMMs read src (cs channels,
 * h x w, padded by p on each side to hp x wp) and write cd channels of
 * oh x ow. nb images per chunk, stacked along the padded planes. */
typedef struct {
    int64_t n, nb, cs, h, w, p, k, hp, wp, cd, oh, ow;
    int64_t plane;   /* hp * wp */
    int64_t stride;  /* floats per channel row of a chunk: nb * plane */
    int64_t npos;    /* GEMM columns: up to the chunk's last output */
} sc_shift_geom;

/* The algorithm of conv node i (CONV2D, CONV2D_BWD_DATA or
 * CONV2D_BWD_WEIGHT) under the plan's options: the tuning table's pick,
 * else the conv policy. */
struct sc_memplan_opts;
sc_conv_algo sc_conv_choose(const sc_graph *g, int i, const struct sc_memplan_opts *o);
/* The shifted geometry of node i (only for SC_CONV_SHIFT). */
sc_shift_geom sc_conv_shift_geom(const sc_graph *g, int i, int threads);
/* Workspace floats per thread of a shift+gemm node: the padded input, the
 * GEMM output (or, for the weight gradient, the gradient on the padded
 * grid) and the per-tap weights (or per-tap weight gradients). */
int64_t sc_conv_shift_workspace(const sc_graph *g, int i, int threads);

#endif
