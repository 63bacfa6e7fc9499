/* Fusion as one rewrite: a node P (the producer) whose output t has
 * exactly one use, as input `slot` of a node C (the consumer), becomes
 *
 *     F = fused(P.in..., C.in without t) -> (C.out..., P.out without t)
 *
 * at P's place in the node order; C and t disappear. The table below says
 * which (P, C) pairs have a fused op. Operand order follows from the
 * rewrite, and the fused ops in ir.h are declared in that order.
 *
 * A pair fuses only if
 *   - t is used once in the whole graph (forward and backward), by C;
 *   - t is no result of the graph: not the loss, the features, the input,
 *     the labels, a parameter's gradient (kind ACT or GRAD only);
 *   - C is elementwise where it meets t: C's first output has t's shape;
 *   - C's other inputs already exist at P's place (produced before P), so
 *     that F can run there;
 *   - P and C are both forward or both backward;
 *   - the operands fit in a node (SC_MAX_IN, SC_MAX_OUT).
 *
 * Rules apply in table order, each over the whole graph in node order, and
 * a node fuses at most once (fused ops match no rule). Order matters where
 * two rules want one node: a relu_bwd whose gradient is a sum (the relu's
 * output had several consumers) and whose result feeds only a
 * batchnorm_bwd goes to batchnorm+relu_bwd, and the sum stays an add. */
#include "fuse.h"

#include <string.h>

typedef struct {
    sc_opkind producer, consumer, fused;
    int out;          /* which output of the producer is t */
    int slot;         /* at which input the consumer reads t */
    int attrs_of_consumer; /* label, line, eps come from the consumer */
} sc_fuse_rule;

static const sc_fuse_rule rules[] = {
    /* conv -> batchnorm -> relu: one pass normalises and clamps. */
    {SC_OP_BATCHNORM, SC_OP_RELU, SC_OP_BATCHNORM_RELU, 0, 0, 0},
    /* residual join: relu(body + shortcut). */
    {SC_OP_ADD, SC_OP_RELU, SC_OP_ADD_RELU, 0, 0, 0},
    /* the relu's mask applied inside batchnorm backward. */
    {SC_OP_RELU_BWD, SC_OP_BATCHNORM_BWD, SC_OP_BATCHNORM_RELU_BWD, 0, 0, 1},
    /* a gradient sum (a relu output with several consumers) masked at once. */
    {SC_OP_ADD, SC_OP_RELU_BWD, SC_OP_ADD_RELU_BWD, 0, 0, 0},
};

/* The one node reading tensor t, or -1 if none or several; *slot is where. */
static int sole_use(const sc_graph *g, int t, int *slot)
{
    int user = -1;
    for (int i = 0; i < g->nn; i++)
        for (int k = 0; k < g->n[i].nin; k++)
            if (g->n[i].in[k] == t) {
                if (user >= 0)
                    return -1;
                user = i;
                *slot = k;
            }
    return user;
}

static int is_result(const sc_graph *g, int t)
{
    if (g->t[t].kind != SC_T_ACT && g->t[t].kind != SC_T_GRAD)
        return 1;
    if (t == g->loss || t == g->features || t == g->input || t == g->labels)
        return 1;
    for (int p = 0; p < g->nparams; p++)
        if (g->t[g->params[p]].grad == t)
            return 1;
    return 0;
}

static int same_shape(const sc_tensor *a, const sc_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return 1;
}

/* Deletes node i; later nodes move down one place. */
static void remove_node(sc_graph *g, int i)
{
    memmove(&g->n[i], &g->n[i + 1], (size_t)(g->nn - i - 1) * sizeof *g->n);
    g->nn--;
    if (i < g->nfwd)
        g->nfwd--;
    for (int k = 0; k < g->nt; k++)
        if (g->t[k].producer > i)
            g->t[k].producer--;
}

/* Index of tensor k once tensor t is gone. */
static int shift(int k, int t)
{
    return k > t ? k - 1 : k;
}

/* Deletes tensor t, which nothing refers to any more; every tensor index
 * in the graph is renumbered. */
static void remove_tensor(sc_graph *g, int t)
{
    memmove(&g->t[t], &g->t[t + 1], (size_t)(g->nt - t - 1) * sizeof *g->t);
    g->nt--;
    for (int i = 0; i < g->nn; i++) {
        sc_node *n = &g->n[i];
        for (int k = 0; k < n->nin; k++)
            n->in[k] = shift(n->in[k], t);
        for (int k = 0; k < n->nout; k++)
            n->out[k] = shift(n->out[k], t);
    }
    for (int k = 0; k < g->nt; k++)
        if (g->t[k].grad >= 0)
            g->t[k].grad = shift(g->t[k].grad, t);
    for (int k = 0; k < g->nparams; k++)
        g->params[k] = shift(g->params[k], t);
    for (int k = 0; k < g->nbuffers; k++)
        g->buffers[k] = shift(g->buffers[k], t);
    int *roots[] = {&g->input, &g->loss, &g->features, &g->labels};
    for (int k = 0; k < 4; k++)
        if (*roots[k] >= 0)
            *roots[k] = shift(*roots[k], t);
}

/* Applies rule r with node p as the producer, if every condition holds.
 * Returns 1 if it fused. */
static int try_rule(sc_graph *g, const sc_fuse_rule *r, int p)
{
    const sc_node *P = &g->n[p];
    if (P->op != r->producer || r->out >= P->nout)
        return 0;
    int t = P->out[r->out], slot = -1;
    int c = sole_use(g, t, &slot);
    if (c < 0 || slot != r->slot || g->n[c].op != r->consumer || is_result(g, t))
        return 0;
    const sc_node *C = &g->n[c];
    if ((p < g->nfwd) != (c < g->nfwd) || C->nout < 1 || !same_shape(&g->t[t], &g->t[C->out[0]]))
        return 0;
    if (P->nin + C->nin - 1 > SC_MAX_IN || C->nout + P->nout - 1 > SC_MAX_OUT)
        return 0;
    for (int k = 0; k < C->nin; k++)
        if (k != slot && g->t[C->in[k]].producer >= p)
            return 0;

    sc_node f = r->attrs_of_consumer ? *C : *P;
    f.op = r->fused;
    f.nin = 0;
    f.nout = 0;
    for (int k = 0; k < P->nin; k++)
        f.in[f.nin++] = P->in[k];
    for (int k = 0; k < C->nin; k++)
        if (k != slot)
            f.in[f.nin++] = C->in[k];
    for (int k = 0; k < C->nout; k++)
        f.out[f.nout++] = C->out[k];
    for (int k = 0; k < P->nout; k++)
        if (k != r->out)
            f.out[f.nout++] = P->out[k];

    g->n[p] = f;
    for (int k = 0; k < f.nout; k++)
        g->t[f.out[k]].producer = p;
    g->t[t].producer = -1;
    remove_node(g, c);
    remove_tensor(g, t);
    return 1;
}

int sc_fuse(sc_graph *g)
{
    int fused = 0;
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++)
        for (int i = 0; i < g->nn; i++)
            fused += try_rule(g, &rules[r], i);
    return fused;
}
