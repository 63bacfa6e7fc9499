/* Fusion: a pass over the IR that merges a node with the one node that
 * consumes its output, so that the intermediate tensor is never stored
 * (fuse.c). Every rule is one line of a table; the fused ops' semantics
 * are the composition of their parts (refops.h), so results do not change.
 *
 * Run it last on each graph: after autodiff (it fuses backward nodes too),
 * and after sc_graph_encoder and sc_graph_classifier have copied the
 * training graph, since they expect plain batchnorm nodes. */
#ifndef SC_FUSE_H
#define SC_FUSE_H

#include "ir.h"

/* Rewrites g in place: each fusion replaces two nodes by one and removes
 * the tensor between them; nodes and tensors are compacted and every index
 * (node operands, producers, parameter gradients, params, buffers, input,
 * loss, features, labels, nfwd) is kept valid. Linear in the graph's
 * size. Returns the number of fusions; out of memory, it fuses nothing
 * (fusion never changes results, so the graph stays correct). */
int sc_fuse(sc_graph *g);

/* Gives each forward batchnorm whose input a conv2d makes that input's
 * statistics from the convolution's epilogue (fuse_stats.c): the conv2d
 * becomes conv2d+stats with a second output, the batchnorm reads it as
 * its fourth input. Run after sc_fuse. Returns the number of rewrites. */
int sc_fuse_stats(sc_graph *g);

#endif
