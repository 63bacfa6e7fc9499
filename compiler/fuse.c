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
 * Rules apply in table order, each over the whole graph in node order. A
 * producer fuses at most once (fused ops are no rule's producer); a fused
 * op may be a later rule's consumer (add+relu taking the batchnorm before
 * it). Order matters where
 * two rules want one node: a relu_bwd whose gradient is a sum (the relu's
 * output had several consumers) and whose result feeds only a
 * batchnorm_bwd goes to batchnorm+relu_bwd, and the sum stays an add. */
#include "fuse.h"

#include <stdlib.h>
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
    /* ... and the body's last batchnorm applied in the same pass, the
     * shortcut at either input of the join (a downsampling shortcut's
     * batchnorm where the body's comes later in node order). */
    {SC_OP_BATCHNORM, SC_OP_ADD_RELU, SC_OP_BATCHNORM_ADD_RELU, 0, 0, 0},
    {SC_OP_BATCHNORM, SC_OP_ADD_RELU, SC_OP_BATCHNORM_ADD_RELU, 0, 1, 0},
    /* the relu's mask applied inside batchnorm backward. */
    {SC_OP_RELU_BWD, SC_OP_BATCHNORM_BWD, SC_OP_BATCHNORM_RELU_BWD, 0, 0, 1},
    /* a gradient sum (a relu output with several consumers) masked at once. */
    {SC_OP_ADD, SC_OP_RELU_BWD, SC_OP_ADD_RELU_BWD, 0, 0, 0},
};

/* The pass's bookkeeping, so that each rule application is O(1): fused
 * nodes and tensors are marked dead and the graph is compacted once at
 * the end, which gives the same graph as deleting them one at a time. */
typedef struct {
    int *uses;       /* per tensor: reads by live nodes (a node reading it twice counts 2) */
    int *user, *slot;/* per tensor read once: the reader and the input slot */
    char *result;    /* per tensor: a result of the graph, never fused away */
    char *dead_n, *dead_t;
    int nfwd;        /* the forward nodes' count before any fusion */
} fusion;

static void mark_results(const sc_graph *g, fusion *f)
{
    for (int t = 0; t < g->nt; t++)
        f->result[t] = (g->t[t].kind != SC_T_ACT && g->t[t].kind != SC_T_GRAD) || t == g->loss ||
                       t == g->features || t == g->input || t == g->labels;
    for (int p = 0; p < g->nparams; p++)
        if (g->t[g->params[p]].grad >= 0)
            f->result[g->t[g->params[p]].grad] = 1;
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

/* Removes the dead nodes and tensors, keeping the others' order, and
 * renumbers every index that refers to them. */
static void compact(sc_graph *g, const fusion *f, int *newn, int *newt)
{
    int nn = 0, nt = 0, nfwd = 0;
    for (int i = 0; i < g->nn; i++) {
        newn[i] = f->dead_n[i] ? -1 : nn++;
        nfwd += !f->dead_n[i] && i < g->nfwd;
    }
    for (int t = 0; t < g->nt; t++)
        newt[t] = f->dead_t[t] ? -1 : nt++;
    for (int i = 0; i < g->nn; i++) {
        if (f->dead_n[i])
            continue;
        sc_node *n = &g->n[newn[i]];
        *n = g->n[i];
        for (int k = 0; k < n->nin; k++)
            n->in[k] = newt[n->in[k]];
        for (int k = 0; k < n->nout; k++)
            n->out[k] = newt[n->out[k]];
    }
    for (int t = 0; t < g->nt; t++) {
        if (f->dead_t[t])
            continue;
        sc_tensor *x = &g->t[newt[t]];
        *x = g->t[t];
        if (x->producer >= 0)
            x->producer = newn[x->producer];
        if (x->grad >= 0)
            x->grad = newt[x->grad];
    }
    for (int k = 0; k < g->nparams; k++)
        g->params[k] = newt[g->params[k]];
    for (int k = 0; k < g->nbuffers; k++)
        g->buffers[k] = newt[g->buffers[k]];
    int *roots[] = {&g->input, &g->loss, &g->features, &g->labels};
    for (int k = 0; k < 4; k++)
        if (*roots[k] >= 0)
            *roots[k] = newt[*roots[k]];
    g->nn = nn;
    g->nt = nt;
    g->nfwd = nfwd;
}

/* Applies rule r with node p as the producer, if every condition holds.
 * Returns 1 if it fused. */
static int try_rule(sc_graph *g, fusion *f, const sc_fuse_rule *r, int p)
{
    const sc_node *P = &g->n[p];
    if (P->op != r->producer || r->out >= P->nout)
        return 0;
    int t = P->out[r->out];
    if (f->uses[t] != 1)
        return 0;
    int c = f->user[t], slot = f->slot[t];
    if (slot != r->slot || g->n[c].op != r->consumer || f->result[t])
        return 0;
    const sc_node *C = &g->n[c];
    if ((p < f->nfwd) != (c < f->nfwd) || C->nout < 1 || !same_shape(&g->t[t], &g->t[C->out[0]]))
        return 0;
    if (P->nin + C->nin - 1 > SC_MAX_IN || C->nout + P->nout - 1 > SC_MAX_OUT)
        return 0;
    for (int k = 0; k < C->nin; k++)
        if (k != slot && g->t[C->in[k]].producer >= p)
            return 0;

    sc_node F = r->attrs_of_consumer ? *C : *P;
    F.op = r->fused;
    F.nin = 0;
    F.nout = 0;
    for (int k = 0; k < P->nin; k++)
        F.in[F.nin++] = P->in[k];
    for (int k = 0; k < C->nin; k++)
        if (k != slot)
            F.in[F.nin++] = C->in[k];
    for (int k = 0; k < C->nout; k++)
        F.out[F.nout++] = C->out[k];
    for (int k = 0; k < P->nout; k++)
        if (k != r->out)
            F.out[F.nout++] = P->out[k];

    g->n[p] = F;
    for (int k = 0; k < F.nout; k++)
        g->t[F.out[k]].producer = p;
    /* F's inputs keep their counts of reads; those read once now are read by F. */
    for (int k = 0; k < F.nin; k++)
        if (f->uses[F.in[k]] == 1) {
            f->user[F.in[k]] = p;
            f->slot[F.in[k]] = k;
        }
    g->t[t].producer = -1;
    f->uses[t] = 0;
    f->dead_n[c] = 1;
    f->dead_t[t] = 1;
    return 1;
}

int sc_fuse(sc_graph *g)
{
    size_t nt = (size_t)g->nt + 1, nn = (size_t)g->nn + 1;
    fusion f = {calloc(nt, sizeof(int)), malloc(nt * sizeof(int)), malloc(nt * sizeof(int)), calloc(nt, 1),
                calloc(nn, 1), calloc(nt, 1), g->nfwd};
    int *newn = malloc(nn * sizeof(int)), *newt = malloc(nt * sizeof(int));
    int fused = 0;
    if (f.uses && f.user && f.slot && f.result && f.dead_n && f.dead_t && newn && newt) {
        for (int i = 0; i < g->nn; i++)
            for (int k = 0; k < g->n[i].nin; k++) {
                int t = g->n[i].in[k];
                f.uses[t]++;
                f.user[t] = i;
                f.slot[t] = k;
            }
        mark_results(g, &f);
        for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++)
            for (int i = 0; i < g->nn; i++)
                if (!f.dead_n[i])
                    fused += try_rule(g, &f, &rules[r], i);
        if (fused)
            compact(g, &f, newn, newt);
    }
    free(f.uses);
    free(f.user);
    free(f.slot);
    free(f.result);
    free(f.dead_n);
    free(f.dead_t);
    free(newn);
    free(newt);
    return fused;
}
