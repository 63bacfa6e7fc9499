/* Memory planning: where every tensor of a graph lives (memplan.c).
 *
 * Parameters, their gradients and buffers live in the runtime's flat
 * buffers at canonical offsets; the input and the result (loss or
 * features) are passed in; every other tensor, and each node's scratch
 * workspace (im2col columns, similarity matrices), gets an offset in one
 * activation arena. Tensors whose lifetimes (first definition to last use,
 * in node order) do not overlap may share arena space. */
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

/* Offsets are in floats, aligned to 16 floats (64 bytes). */
typedef struct {
    sc_region *region;    /* per tensor */
    int64_t *offset;      /* per tensor */
    int *first, *last;    /* per tensor: node indices of its lifetime */
    int64_t *ws_offset;   /* per node: workspace offset in the arena */
    int64_t *ws_floats;   /* per node: workspace size, 0 if none */
    int64_t params_floats, buffers_floats;
    int64_t arena_floats; /* peak: the arena's size */
    int64_t sum_floats;   /* all arena tensors and workspaces added up */
} sc_memplan;

/* Images per chunk of a convolution over n images of ohw output pixels:
 * enough that one GEMM has a few hundred columns, a divisor of n. */
int64_t sc_conv_chunk(int64_t n, int64_t ohw);
/* The workspace a node needs, in floats. */
int64_t sc_node_workspace(const sc_graph *g, int i);
/* Plans g; out is the tensor placed in SC_REG_OUT (g->loss or the
 * features). Returns 0, or -1 when out of memory. */
int sc_memplan_build(const sc_graph *g, int out, sc_memplan *mp);
void sc_memplan_free(sc_memplan *mp);
/* --emit=memplan */
void sc_memplan_print(const sc_graph *g, const sc_memplan *mp, FILE *f);

#endif
