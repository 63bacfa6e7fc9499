/* Memory planning: where every tensor of a graph lives (memplan.c).
 *
 * Parameters, their gradients and buffers live in the runtime's flat
 * buffers at canonical offsets; the input and the result (loss or
 * features) are passed in; every other tensor, and each node's scratch
 * workspace (im2col columns, similarity matrices), gets an offset in one
 * activation arena. Tensors whose lifetimes (first definition to last use,
 * in node order) do not overlap may share arena space.
 *
 * In place: the output of an op that computes each output element from
 * the input elements at the same index, reading them before it writes it
 * (relu, relu_bwd, add, add+relu, add+relu_bwd, reshape, batchnorm_eval,
 * silu, gelu, leaky_relu and their backward ops,
 * and dx of batchnorm_bwd and batchnorm+relu_bwd, whose kernels read a
 * channel's dy, x and y for the sums and then each element once before
 * writing dx there), takes the storage of one such input that is in the
 * arena, has the output's size and is read for the last time by this
 * node. The two then overlap only at that node. The plan with in-place
 * sharing is used unless first fit packs the plan without it tighter. */
#ifndef SC_MEMPLAN_H
#define SC_MEMPLAN_H

#include <stdint.h>
#include <stdio.h>

#include "ir.h"

typedef enum {
    SC_REG_PARAMS,
    SC_REG_GRADS,
    SC_REG_BUFFERS,
    SC_REG_ARENA,
    SC_REG_INPUT,
    SC_REG_OUT,      /* the loss of a step, the features of an encoder */
    SC_REG_COUNT
} sc_region;

/* What the generated code will need: kernels that split work over
 * threads get one workspace per thread; MPI builds keep batchnorm sums for
 * the ranks' allreduce. */
struct sc_conv_tuning_;
typedef struct sc_memplan_opts {
    int threads;          /* >= 1 */
    int mpi;
    int conv;             /* convolution policy: SC_CONV_IM2COL_POLICY.. (convplan.h) */
    const struct sc_conv_tuning_ *tuning; /* per-node picks of --tune, or NULL */
} sc_memplan_opts;

/* Offsets are in floats, aligned to 16 floats (64 bytes). */
typedef struct {
    sc_region *region;    /* per tensor */
    int64_t *offset;      /* per tensor */
    int *first, *last;    /* per tensor: node indices of its lifetime */
    int *inplace;         /* per tensor: the input whose storage it takes, or -1 */
    int64_t *ws_offset;   /* per node: workspace offset in the arena */
    int64_t *ws_floats;   /* per node: workspace size, 0 if none */
    int64_t *ws_stride;   /* per node: floats between two threads' workspaces, 0 if not per thread
                           * (or if only the part's `once` tail is used) */
    int64_t params_floats, buffers_floats;
    int64_t arena_floats; /* peak: the arena's size */
    int64_t sum_floats;   /* all arena tensors and workspaces added up */
    sc_memplan_opts opts;
} sc_memplan;

/* The workspace a node needs, in floats: per thread (*per_thread set) or
 * for the whole node. */
int64_t sc_node_workspace(const sc_graph *g, int i, const sc_memplan_opts *o, int *per_thread);
/* Of a per-thread workspace of w floats: *unused, the floats at the end of
 * the last thread's part that it never uses, left out of the arena; *once,
 * the floats at the end of every part that only the last thread's part
 * holds (the parts are w - *once apart, rounded up to 64 bytes). The
 * node's workspace is then (T - 1) parts apart plus w - *unused. */
void sc_node_workspace_tails(const sc_graph *g, int i, const sc_memplan_opts *o, int64_t *unused, int64_t *once);
/* Plans g; out is the tensor placed in SC_REG_OUT (g->loss or the
 * features); o NULL means one thread, no MPI. Returns 0, or -1 when out of
 * memory. */
int sc_memplan_build(const sc_graph *g, int out, const sc_memplan_opts *o, sc_memplan *mp);
/* The same with in-place sharing forced on (inplace 1) or off (0: every
 * tensor its own storage), to measure and test each. */
int sc_memplan_build_with(const sc_graph *g, int out, const sc_memplan_opts *o, int inplace, sc_memplan *mp);
void sc_memplan_free(sc_memplan *mp);
/* Node i's pointer operands (inputs, then outputs, as kernels take them)
 * that share storage with another operand of i: bit k set for operand k.
 * Their kernel must not mark them noalias. */
unsigned sc_memplan_aliases(const sc_graph *g, const sc_memplan *mp, int i);
/* --emit=memplan */
void sc_memplan_print(const sc_graph *g, const sc_memplan *mp, FILE *f);

#endif
