#include "remat.h"

#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>

/* The first backward node reading tensor t, or -1. */
static int first_bwd_reader(const sc_graph *g, int t)
{
    for (int j = g->nfwd; j < g->nn; j++)
        for (int k = 0; k < g->n[j].nin; k++)
            if (g->n[j].in[k] == t)
                return j;
    return -1;
}

/* Node f qualifies (remat.h): batchnorm+relu without epilogue statistics,
 * y of min_bytes or more and read backward, x read backward too. */
static int worth_it(const sc_graph *g, int f, long min_bytes)
{
    const sc_node *n = &g->n[f];
    if (n->op != SC_OP_BATCHNORM_RELU || n->nin != 3 || n->nout != 3)
        return 0;
    const sc_tensor *y = &g->t[n->out[0]];
    return y->kind == SC_T_ACT && y->numel * 4 >= min_bytes && first_bwd_reader(g, n->out[0]) >= 0 &&
           first_bwd_reader(g, n->in[0]) >= 0;
}

/* Appends the copy of node f and points y's backward readers at its
 * output; returns the copy's index. */
static int add_copy(sc_graph *g, int f)
{
    int y = g->n[f].out[0], out[3];
    for (int k = 0; k < 3; k++) {
        const sc_tensor *t = &g->t[g->n[f].out[k]];
        int shape[SC_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++)
            shape[d] = t->shape[d];
        char name[SC_NAME_MAX + 8];
        snprintf(name, sizeof name, "remat/%s", t->name);
        out[k] = sc_graph_tensor(g, name, SC_T_ACT, t->ndim, shape, t->line);
    }
    for (int j = g->nfwd; j < g->nn; j++)
        for (int k = 0; k < g->n[j].nin; k++)
            if (g->n[j].in[k] == y)
                g->n[j].in[k] = out[0];
    sc_node src = g->n[f];
    int c = sc_graph_node(g, src.op, src.in, src.nin, out, 3, src.line, src.label);
    g->n[c].eps = src.eps;
    g->n[c].momentum = src.momentum;
    return c;
}

int sc_remat(sc_graph *g, long min_bytes)
{
    int nn = g->nn, made = 0;
    int *before = malloc(((size_t)nn + 1) * sizeof *before); /* per node: the copy to run before it, or -1 */
    if (!before)
        return 0;
    for (int j = 0; j < nn; j++)
        before[j] = -1;
    for (int f = 0; f < g->nfwd; f++) {
        if (!worth_it(g, f, min_bytes))
            continue;
        int at = first_bwd_reader(g, g->n[f].out[0]);
        if (before[at] >= 0)
            continue; /* two copies before one node: not in any model we have; keep it simple */
        before[at] = add_copy(g, f);
        made++;
    }
    /* the copies sit at the end and their readers already read them: the
     * graph is only valid once they run before those readers */
    int *order = malloc(((size_t)g->nn + 1) * sizeof *order);
    int k = 0;
    for (int j = 0; order && j < nn; j++) {
        if (before[j] >= 0)
            order[k++] = before[j];
        order[k++] = j;
    }
    if (!order || (made && sc_schedule_apply(g, order))) {
        fprintf(stderr, "simclrc: error: out of memory placing recomputed activations\n");
        exit(3);
    }
    free(order);
    free(before);
    return made;
}

int sc_remat_is_copy(const sc_graph *g, int i)
{
    return i >= g->nfwd && g->n[i].op == SC_OP_BATCHNORM_RELU;
}
