/* Graph construction. Arrays grow by doubling; an allocation failure is
 * fatal (exit 3, internal error), since there is no sane way to go on. */
#include "ir.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *grow(void *p, int *cap, size_t elem)
{
    int ncap = *cap ? *cap * 2 : 64;
    void *q = realloc(p, (size_t)ncap * elem);
    if (!q) {
        fprintf(stderr, "simclrc: error: out of memory\n");
        exit(3);
    }
    *cap = ncap;
    return q;
}

void sc_graph_init(sc_graph *g)
{
    memset(g, 0, sizeof *g);
    g->input = -1;
    g->loss = -1;
    g->features = -1;
    g->labels = -1;
}

void sc_graph_free(sc_graph *g)
{
    free(g->t);
    free(g->n);
    free(g->params);
    free(g->buffers);
    sc_graph_init(g);
}

static void list_push(int **list, int *n, int v)
{
    int *q = realloc(*list, (size_t)(*n + 1) * sizeof **list);
    if (!q) {
        fprintf(stderr, "simclrc: error: out of memory\n");
        exit(3);
    }
    *list = q;
    q[(*n)++] = v;
}

int sc_graph_tensor(sc_graph *g, const char *name, sc_tensor_kind kind,
                    int ndim, const int *shape, int line)
{
    if (g->nt == g->capt)
        g->t = grow(g->t, &g->capt, sizeof *g->t);
    sc_tensor *t = &g->t[g->nt];
    memset(t, 0, sizeof *t);
    sc_tensor_rename(t, "%s", name);
    t->kind = kind;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    t->producer = -1;
    t->line = line;
    t->grad = -1;
    if (kind == SC_T_PARAM)
        list_push(&g->params, &g->nparams, g->nt);
    else if (kind == SC_T_BUFFER)
        list_push(&g->buffers, &g->nbuffers, g->nt);
    return g->nt++;
}

void sc_tensor_rename(sc_tensor *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof t->name) {
        fprintf(stderr, "simclrc: error: tensor name '%s...' is longer than %d characters "
                        "(nest fewer layers or use shorter names)\n", t->name, SC_NAME_MAX - 1);
        exit(1);
    }
}

int sc_graph_node(sc_graph *g, sc_opkind op, const int *in, int nin,
                  const int *out, int nout, int line, const char *label)
{
    if (g->nn == g->capn)
        g->n = grow(g->n, &g->capn, sizeof *g->n);
    sc_node *n = &g->n[g->nn];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->nin = nin;
    n->nout = nout;
    for (int i = 0; i < nin; i++)
        n->in[i] = in[i];
    for (int i = 0; i < nout; i++) {
        n->out[i] = out[i];
        g->t[out[i]].producer = g->nn;
    }
    n->groups = n->dilation = 1;
    n->line = line;
    snprintf(n->label, sizeof n->label, "%s", label ? label : "");
    return g->nn++;
}

int sc_graph_find(const sc_graph *g, const char *name)
{
    for (int i = 0; i < g->nt; i++)
        if (!strcmp(g->t[i].name, name))
            return i;
    return -1;
}

long sc_graph_param_count(const sc_graph *g)
{
    long n = 0;
    for (int i = 0; i < g->nparams; i++)
        n += g->t[g->params[i]].numel;
    return n;
}
