/* Batchnorm statistics in the convolution's epilogue: a rewrite that the
 * producer/consumer rule table (fuse.c) cannot express, because the
 * convolution's output y stays: batchnorm_bwd reads it too. So instead of
 * merging two nodes into one, it adds an operand to each:
 *
 *     y = conv2d(x, w [, b])                 y, s = conv2d+stats(x, w [, b])
 *     y', m, v = batchnorm(y, g, b')    =>   y', m, v = batchnorm(y, g, b', s)
 *
 * s holds per-chunk statistics of y (count, mean, centred sum of squares;
 * ir.h), written by the convolution while each chunk of its output is
 * still in cache, and merged by the batchnorm in image order instead of a
 * pass over y. The merge order is fixed by the chunks, which the
 * convolution plan sizes for the thread count given when compiling: a
 * binary gives the same results at any runtime thread count; binaries
 * compiled for other thread counts differ by rounding only.
 *
 * It applies where a forward conv2d's output is the input x of a forward
 * batchnorm, batchnorm+relu or batchnorm+add+relu that has no statistics
 * yet.
 * Other readers of y are left as they are. Tensors and nodes keep their
 * indices: s is appended. */
#include "fuse.h"

#include <stdio.h>

int sc_fuse_stats(sc_graph *g)
{
    int fused = 0;
    for (int i = 0; i < g->nfwd; i++) {
        sc_node *bn = &g->n[i];
        int plain = bn->op == SC_OP_BATCHNORM || bn->op == SC_OP_BATCHNORM_RELU;
        if (!(plain && bn->nin == 3) && !(bn->op == SC_OP_BATCHNORM_ADD_RELU && bn->nin == 4))
            continue;
        int y = bn->in[0], p = g->t[y].producer;
        if (p < 0 || p >= i || g->n[p].op != SC_OP_CONV2D || g->n[p].nout != 1 || g->t[y].ndim != 4)
            continue;
        char name[SC_NAME_MAX];
        if (snprintf(name, sizeof name, "%s.stats", g->t[y].name) >= (int)sizeof name)
            continue;
        int shape[3] = {g->t[y].shape[0], g->t[y].shape[1], 3};
        int s = sc_graph_tensor(g, name, SC_T_ACT, 3, shape, g->t[y].line);
        g->t[s].producer = p;
        g->n[p].op = SC_OP_CONV2D_STATS;
        g->n[p].out[g->n[p].nout++] = s;
        g->n[i].in[g->n[i].nin++] = s;
        fused++;
    }
    return fused;
}
