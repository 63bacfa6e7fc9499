#include "evalgraph.h"

#include <stdlib.h>
#include <string.h>

/* A copy of train tensor t, with dim 0 resized when it is the batch. */
static int copy_tensor(const sc_graph *train, int t, int views, sc_graph *out)
{
    const sc_tensor *s = &train->t[t];
    int shape[SC_MAX_DIMS];
    memcpy(shape, s->shape, sizeof shape);
    int batch_dim = s->kind == SC_T_INPUT || s->kind == SC_T_ACT;
    if (batch_dim && s->ndim > 1 && shape[0] == 2 * train->batch)
        shape[0] = views;
    int k = sc_graph_tensor(out, s->name, s->kind, s->ndim, shape, s->line);
    sc_tensor *d = &out->t[k];
    d->init = s->init;
    d->fan_in = s->fan_in;
    d->no_decay = s->no_decay;
    return k;
}

/* The bn_running_update node that consumes batchnorm node i's mean. */
static const sc_node *running_update(const sc_graph *g, int i)
{
    int mean = g->n[i].out[1];
    for (int k = 0; k < g->nfwd; k++)
        if (g->n[k].op == SC_OP_BN_RUNNING && g->n[k].in[0] == mean)
            return &g->n[k];
    return NULL;
}

int sc_graph_encoder(const sc_graph *train, int views, sc_graph *out)
{
    if (train->features < 0 || views < 1)
        return -1;
    int *map = malloc((size_t)train->nt * sizeof *map);
    if (!map)
        return -1;
    for (int i = 0; i < train->nt; i++)
        map[i] = -1;
    snprintf(out->name, sizeof out->name, "%s", train->name);
    out->batch = train->batch;
    for (int p = 0; p < train->nparams; p++)
        map[train->params[p]] = copy_tensor(train, train->params[p], views, out);
    for (int b = 0; b < train->nbuffers; b++)
        map[train->buffers[b]] = copy_tensor(train, train->buffers[b], views, out);
    map[train->input] = copy_tensor(train, train->input, views, out);
    out->input = map[train->input];

    int rc = -1;
    for (int i = 0; i < train->nfwd && map[train->features] < 0; i++) {
        const sc_node *n = &train->n[i];
        if (n->op == SC_OP_BN_RUNNING)
            continue;
        int in[SC_MAX_IN], out_t[SC_MAX_OUT], nin = n->nin, nout = n->nout;
        for (int k = 0; k < nin; k++)
            in[k] = map[n->in[k]];
        sc_opkind op = n->op;
        if (op == SC_OP_BATCHNORM) {
            const sc_node *r = running_update(train, i);
            if (!r)
                goto done;
            op = SC_OP_BATCHNORM_EVAL;
            in[3] = map[r->in[2]];
            in[4] = map[r->in[3]];
            nin = 5;
            nout = 1;
        }
        for (int k = 0; k < nout; k++)
            out_t[k] = map[n->out[k]] = copy_tensor(train, n->out[k], views, out);
        int j = sc_graph_node(out, op, in, nin, out_t, nout, n->line, n->label);
        sc_node *d = &out->n[j];
        d->kernel = n->kernel;
        d->stride = n->stride;
        d->pad = n->pad;
        d->eps = n->eps;
        d->momentum = n->momentum;
        d->temperature = n->temperature;
    }
    out->features = map[train->features];
    out->nfwd = out->nn;
    rc = out->features >= 0 ? 0 : -1;
done:
    free(map);
    return rc;
}
