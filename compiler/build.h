/* Building the forward graph from a model description: shape inference and
 * the semantic checks that need shapes (build.c). */
#ifndef SC_BUILD_H
#define SC_BUILD_H

#include "ir.h"
#include "model.h"

/* Builds the forward graph of one training step of m into g (initialised by
 * the caller with sc_graph_init): input [2B, C, H, W] -> encoder -> head ->
 * L2 normalise -> NT-Xent loss; for BYOL, head -> predictor and the target
 * network (encoder and head again, forward only) -> L2 normalise both ->
 * byol loss. B is m->train.batch, or batch when > 0.
 * Canonical parameter order and names as documented in ir.h. On a semantic
 * error prints "simclrc: FILE:LINE: error: MESSAGE" (via diag.h) and
 * returns -1. */
int sc_build_graph(const sc_spec *m, int batch, sc_graph *g);

#endif
