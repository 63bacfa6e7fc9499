#include "derive.h"

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
    d->role = s->role;
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

/* Copies the encoder: eval selects batchnorm with running statistics. */
static int copy_encoder(const sc_graph *train, int views, int eval, sc_graph *out)
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
    for (int i = 0; i < train->nfwd; i++) {
        const sc_node *n = &train->n[i];
        if (n->op == SC_OP_BN_RUNNING && eval)
            continue;
        /* Past the features, only the running-statistics update of the
         * encoder's last batchnorm still belongs to the encoder. */
        if (map[train->features] >= 0 && n->op != SC_OP_BN_RUNNING)
            break;
        int in[SC_MAX_IN], out_t[SC_MAX_OUT], nin = n->nin, nout = n->nout, ok = 1;
        for (int k = 0; k < nin; k++)
            ok &= (in[k] = map[n->in[k]]) >= 0;
        if (!ok)
            break;
        sc_opkind op = n->op;
        if (op == SC_OP_BATCHNORM && eval) {
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
        d->groups = n->groups;
        d->dilation = n->dilation;
        d->eps = n->eps;
        d->slope = n->slope;
        d->momentum = n->momentum;
        d->temperature = n->temperature;
        memcpy(d->coef, n->coef, sizeof d->coef);
    }
    out->features = map[train->features];
    out->nfwd = out->nn;
    rc = out->features >= 0 ? 0 : -1;
done:
    free(map);
    return rc;
}

int sc_graph_encoder(const sc_graph *train, int views, sc_graph *out)
{
    return copy_encoder(train, views, 1, out);
}

int sc_graph_classifier(const sc_graph *train, int images, int nclasses, sc_graph *out)
{
    if (nclasses < 2 || copy_encoder(train, images, 0, out))
        return -1;
    int x = out->features;
    const sc_tensor *f = &out->t[x];
    int dim = (int)(f->numel / f->shape[0]);
    if (f->ndim != 2) {
        int shape[2] = {images, dim};
        int y = sc_graph_tensor(out, "classifier.flatten", SC_T_ACT, 2, shape, 0);
        sc_graph_node(out, SC_OP_RESHAPE, &x, 1, &y, 1, 0, "classifier");
        x = y;
    }
    int ws[2] = {nclasses, dim}, bs[1] = {nclasses};
    int w = sc_graph_tensor(out, "classifier.weight", SC_T_PARAM, 2, ws, 0);
    out->t[w].init = SC_INIT_KAIMING_UNIFORM;
    out->t[w].fan_in = dim;
    out->t[w].role = SC_ROLE_CLASSIFIER;
    int b = sc_graph_tensor(out, "classifier.bias", SC_T_PARAM, 1, bs, 0);
    out->t[b].init = SC_INIT_FAN_IN_UNIFORM;
    out->t[b].fan_in = dim;
    out->t[b].no_decay = 1;
    out->t[b].role = SC_ROLE_CLASSIFIER;
    int ls[2] = {images, nclasses};
    int logits = sc_graph_tensor(out, "classifier", SC_T_ACT, 2, ls, 0);
    int in[3] = {x, w, b};
    sc_graph_node(out, SC_OP_LINEAR, in, 3, &logits, 1, 0, "classifier");
    int labels_shape[1] = {images};
    out->labels = sc_graph_tensor(out, "labels", SC_T_INPUT, 1, labels_shape, 0);
    int one[1] = {1};
    out->loss = sc_graph_tensor(out, "loss", SC_T_LOSS, 1, one, 0);
    int xin[2] = {logits, out->labels};
    sc_graph_node(out, SC_OP_SOFTMAX_XENT, xin, 2, &out->loss, 1, 0, "classifier");
    out->nfwd = out->nn;
    return 0;
}
