/* Reverse mode: walk the forward nodes backwards; each op's rule emits the
 * nodes for the gradients of those inputs that need one, and accumulate()
 * sums contributions when a tensor has several consumers. A tensor needs a
 * gradient when a parameter flows into it (so the stem conv computes no
 * gradient for the input batch). */
#include "autodiff.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    sc_graph *g;
    int *grad;          /* per forward tensor: its gradient tensor, or -1 */
    char *needs;        /* per forward tensor: a parameter flows into it */
    int *index;         /* hash of tensor names: tensor + 1, 0 for empty */
    size_t cap, used;   /* slots (a power of two), filled slots */
    int oom;
} ad;

static size_t name_hash(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* The slot of name: the tensor's that is named so now, else an empty one.
 * Entries are checked against the tensors' current names. */
static int *name_slot(ad *a, const char *name)
{
    size_t i = name_hash(name) & (a->cap - 1);
    while (a->index[i] && strcmp(a->g->t[a->index[i] - 1].name, name))
        i = (i + 1) & (a->cap - 1);
    return &a->index[i];
}

static int find(ad *a, const char *name)
{
    return *name_slot(a, name) - 1;
}

/* Indexes tensor t under its current name; the table stays at most half
 * full, so lookups stay O(1). */
static void index_tensor(ad *a, int t)
{
    if (2 * (a->used + 1) > a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 1024;
        int *old = a->index;
        size_t ocap = a->cap;
        a->index = calloc(cap, sizeof *a->index);
        if (!a->index) {
            a->index = old;
            a->oom = 1;
            return;
        }
        a->cap = cap;
        a->used = 0;
        for (size_t i = 0; i < ocap; i++)
            if (old[i]) {
                *name_slot(a, a->g->t[old[i] - 1].name) = old[i];
                a->used++;
            }
        free(old);
    }
    int *slot = name_slot(a, a->g->t[t].name);
    if (!*slot)
        a->used++;
    *slot = t + 1;
}

/* A new gradient tensor shaped like forward tensor t. */
static int grad_tensor(ad *a, int t, const char *suffix)
{
    sc_tensor *ft = &a->g->t[t];
    char name[SC_NAME_MAX + 32];
    snprintf(name, sizeof name, "grad/%s%s", ft->name, suffix);
    /* Several contributions to one tensor's gradient: keep names unique. */
    for (int k = 2; find(a, name) >= 0; k++)
        snprintf(name, sizeof name, "grad/%s%s.%d", ft->name, suffix, k);
    int shape[SC_MAX_DIMS];
    memcpy(shape, ft->shape, sizeof shape);
    int gt = sc_graph_tensor(a->g, name, SC_T_GRAD, ft->ndim, shape, ft->line);
    if (gt >= 0)
        index_tensor(a, gt);
    return gt;
}

/* Adds gradient contribution gt to forward tensor t. */
static void accumulate(ad *a, int t, int gt, const sc_node *src)
{
    if (a->grad[t] < 0) {
        a->grad[t] = gt;
        return;
    }
    int sum = grad_tensor(a, t, ".sum");
    int in[2] = {a->grad[t], gt};
    sc_graph_node(a->g, SC_OP_ADD, in, 2, &sum, 1, src->line, src->label);
    a->grad[t] = sum;
}

/* Emits node op(in...) -> one fresh gradient tensor shaped like forward
 * tensor like, and accumulates it into like. */
static void emit1(ad *a, const sc_node *src, sc_opkind op, const int *in, int nin, int like)
{
    int out = grad_tensor(a, like, "");
    int k = sc_graph_node(a->g, op, in, nin, &out, 1, src->line, src->label);
    sc_node *n = &a->g->n[k];
    n->kernel = src->kernel;
    n->stride = src->stride;
    n->pad = src->pad;
    n->groups = src->groups;
    n->dilation = src->dilation;
    n->eps = src->eps;
    n->slope = src->slope;
    n->temperature = src->temperature;
    memcpy(n->coef, src->coef, sizeof n->coef);
    accumulate(a, like, out, src);
}

static void backward_node(ad *a, const sc_node *n)
{
    const int *x = n->in;
    int dy = n->nout ? a->grad[n->out[0]] : -1;

    switch (n->op) {
    case SC_OP_NTXENT:
        /* The loss: its gradient seed is 1, folded into ntxent_bwd. */
        if (a->needs[x[0]])
            emit1(a, n, SC_OP_NTXENT_BWD, x, 1, x[0]);
        return;
    case SC_OP_BARLOW:
    case SC_OP_VICREG:
        if (a->needs[x[0]])
            emit1(a, n, n->op == SC_OP_BARLOW ? SC_OP_BARLOW_BWD : SC_OP_VICREG_BWD, x, 1, x[0]);
        return;
    case SC_OP_BYOL:
        /* the target's projections x[1] get no gradient (stop-gradient) */
        if (a->needs[x[0]])
            emit1(a, n, SC_OP_BYOL_BWD, &x[1], 1, x[0]);
        return;
    case SC_OP_SOFTMAX_XENT:
        if (a->needs[x[0]])
            emit1(a, n, SC_OP_SOFTMAX_XENT_BWD, x, 2, x[0]);
        return;
    case SC_OP_BN_RUNNING:
        return;
    default:
        break;
    }
    if (dy < 0)
        return; /* nothing downstream depends on this node */

    switch (n->op) {
    case SC_OP_CONV2D:
    case SC_OP_LINEAR: {
        int is_conv = n->op == SC_OP_CONV2D;
        if (a->needs[x[0]]) {
            int in[2] = {dy, x[1]};
            emit1(a, n, is_conv ? SC_OP_CONV2D_BWD_DATA : SC_OP_LINEAR_BWD_DATA, in, 2, x[0]);
        }
        int in[2] = {dy, x[0]};
        emit1(a, n, is_conv ? SC_OP_CONV2D_BWD_WEIGHT : SC_OP_LINEAR_BWD_WEIGHT, in, 2, x[1]);
        if (n->nin > 2)
            emit1(a, n, SC_OP_BIAS_BWD, &dy, 1, x[2]);
        break;
    }
    case SC_OP_BATCHNORM: {
        /* One node gives dx, dgamma and dbeta. */
        int in[5] = {dy, x[0], x[1], n->out[1], n->out[2]};
        int out[3] = {grad_tensor(a, x[0], ""), grad_tensor(a, x[1], ""), grad_tensor(a, x[2], "")};
        int k = sc_graph_node(a->g, SC_OP_BATCHNORM_BWD, in, 5, out, 3, n->line, n->label);
        a->g->n[k].eps = n->eps;
        for (int i = 0; i < 3; i++)
            if (a->needs[x[i]])
                accumulate(a, x[i], out[i], n);
        break;
    }
    case SC_OP_RELU: {
        int in[2] = {dy, n->out[0]};
        emit1(a, n, SC_OP_RELU_BWD, in, 2, x[0]);
        break;
    }
    case SC_OP_SILU:
    case SC_OP_GELU:
    case SC_OP_LEAKY_RELU: {
        /* from the input: y = silu(x) or gelu(x) does not give x back */
        int in[2] = {dy, x[0]};
        sc_opkind bwd = n->op == SC_OP_SILU   ? SC_OP_SILU_BWD
                        : n->op == SC_OP_GELU ? SC_OP_GELU_BWD
                                              : SC_OP_LEAKY_RELU_BWD;
        emit1(a, n, bwd, in, 2, x[0]);
        break;
    }
    case SC_OP_MAXPOOL:
    case SC_OP_L2NORM: {
        int in[2] = {dy, x[0]};
        emit1(a, n, n->op == SC_OP_MAXPOOL ? SC_OP_MAXPOOL_BWD : SC_OP_L2NORM_BWD, in, 2, x[0]);
        break;
    }
    case SC_OP_AVGPOOL:
        emit1(a, n, SC_OP_AVGPOOL_BWD, &dy, 1, x[0]);
        break;
    case SC_OP_GLOBAL_AVGPOOL:
        emit1(a, n, SC_OP_GLOBAL_AVGPOOL_BWD, &dy, 1, x[0]);
        break;
    case SC_OP_RESHAPE:
        emit1(a, n, SC_OP_RESHAPE, &dy, 1, x[0]);
        break;
    case SC_OP_ADD:
        /* The sum passes its gradient unchanged to both operands. */
        for (int i = 0; i < 2; i++)
            if (a->needs[x[i]])
                accumulate(a, x[i], dy, n);
        break;
    default:
        break; /* backward ops never appear in the forward graph */
    }
}

int sc_autodiff(sc_graph *g)
{
    if (g->loss < 0)
        return -1;
    g->nfwd = g->nn;
    ad a = {g, NULL, NULL, NULL, 0, 0, 0};
    a.grad = malloc((size_t)g->nt * sizeof *a.grad);
    a.needs = calloc((size_t)g->nt, 1);
    if (!a.grad || !a.needs) {
        free(a.grad);
        free(a.needs);
        return -1;
    }
    for (int i = 0; i < g->nt; i++) {
        a.grad[i] = -1;
        a.needs[i] = g->t[i].kind == SC_T_PARAM;
        index_tensor(&a, i);
    }
    for (int i = 0; i < g->nfwd; i++) {
        const sc_node *n = &g->n[i];
        int any = 0;
        for (int k = 0; k < n->nin; k++)
            any |= a.needs[n->in[k]];
        /* Saved statistics (batchnorm mean/var) are not differentiated. */
        for (int k = 0; k < n->nout; k++)
            a.needs[n->out[k]] = any && (k == 0);
    }

    for (int i = g->nfwd - 1; i >= 0; i--) {
        sc_node n = g->n[i]; /* a copy: emitting nodes may move g->n */
        backward_node(&a, &n);
    }

    /* Parameter gradients get their canonical names. */
    for (int p = 0; p < g->nparams; p++) {
        sc_tensor *pt = &g->t[g->params[p]];
        int gt = a.grad[g->params[p]];
        pt->grad = gt;
        if (gt < 0)
            continue;
        char name[SC_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad/%s", pt->name);
        int old = find(&a, name);
        if (old >= 0 && old != gt) {
            sc_tensor_rename(&g->t[old], "grad/%s.part", pt->name);
            index_tensor(&a, old);
        }
        sc_tensor_rename(&g->t[gt], "%s", name);
        index_tensor(&a, gt);
    }
    int oom = a.oom;
    free(a.grad);
    free(a.needs);
    free(a.index);
    return oom ? -1 : 0;
}
