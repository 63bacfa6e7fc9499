/* Rematerialisation: forward activations that the backward pass computes
 * again instead of keeping them from the forward pass (remat.c).
 *
 * Rule: the output y of a forward batchnorm+relu whose input x the backward
 * pass reads anyway (batchnorm+relu_bwd does) is made again by a copy of
 * that node placed just before y's first backward reader, and every
 * backward reader reads the copy. The copy takes x's batch statistics
 * again with the same kernel, so it is bit for bit the forward's y (its
 * mean and var outputs are unused); y itself then dies with its last
 * forward reader. One pass over x (twice read, once written) buys y's
 * storage for the span between the two: on resnet18-stl10 the stem's
 * 64x48x48 map, 37.7 MB at batch 32, which the whole backward pass held
 * through the arena's peak at its start. Only where y is at least
 * SC_REMAT_MIN_BYTES: small maps save little and cost a kernel launch.
 * Not with MPI (a copy of a global batchnorm would allreduce again). */
#ifndef SC_REMAT_H
#define SC_REMAT_H

#include "ir.h"

#define SC_REMAT_MIN_BYTES (16 << 20)

/* Rewrites g (after sc_fuse, before scheduling) for every y of at least
 * min_bytes (the compiler: SC_REMAT_MIN_BYTES; tests: 0); every index
 * stays valid. Returns the number of activations made again. */
int sc_remat(sc_graph *g, long min_bytes);

/* Whether node i is such a copy (a forward op among the backward nodes):
 * the FLOPs of a step count the model's work, not the copies'. */
int sc_remat_is_copy(const sc_graph *g, int i);

#endif
