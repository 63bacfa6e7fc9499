/* The greedy list scheduler of schedule.h. Graphs have hundreds of nodes,
 * so each step simply scans the unscheduled nodes of the current pass
 * (forward, then backward) for ready ones: quadratic, and plain. */
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const sc_graph *g;
    const sc_region *region; /* per tensor, from a plan of g */
    int *uses;               /* per tensor: reads by nodes not yet scheduled */
    int *pos;                /* per node: place in the order, -1 while unscheduled */
    int *bufdep;             /* per node and input slot: earlier node touching that buffer, or -1 */
} sched;

static int64_t arena_bytes(const sched *s, int t)
{
    return s->region[t] == SC_REG_ARENA ? (s->g->t[t].numel + 15) / 16 * 16 : 0;
}

static int ready(const sched *s, int v)
{
    const sc_node *n = &s->g->n[v];
    for (int k = 0; k < n->nin; k++) {
        int p = s->g->t[n->in[k]].producer;
        if ((p >= 0 && s->pos[p] < 0) || (s->bufdep[v * SC_MAX_IN + k] >= 0 && s->pos[s->bufdep[v * SC_MAX_IN + k]] < 0))
            return 0;
    }
    return 1;
}

/* How many times node n reads tensor t. */
static int reads(const sc_node *n, int t)
{
    int c = 0;
    for (int k = 0; k < n->nin; k++)
        c += n->in[k] == t;
    return c;
}

/* Arena bytes live after node v runs minus before: outputs that someone
 * reads later, less inputs that v reads last. */
static int64_t growth(const sched *s, int v)
{
    const sc_node *n = &s->g->n[v];
    int64_t d = 0;
    for (int k = 0; k < n->nout; k++)
        if (s->uses[n->out[k]] > 0)
            d += arena_bytes(s, n->out[k]);
    for (int k = 0; k < n->nin; k++) {
        int t = n->in[k], first = 1;
        for (int j = 0; j < k; j++)
            first &= n->in[j] != t;
        if (first && s->uses[t] == reads(n, t))
            d -= arena_bytes(s, t);
    }
    return d;
}

/* The greedy order of nodes [lo, hi) of g, appended to order at *len. */
static void greedy(sched *s, int lo, int hi, int *order, int *len)
{
    for (int step = lo; step < hi; step++) {
        int best = -1;
        int64_t bestd = 0;
        for (int v = lo; v < hi; v++) {
            if (s->pos[v] >= 0 || !ready(s, v))
                continue;
            int64_t d = growth(s, v);
            if (best < 0 || d < bestd) /* ties: the earlier node */
                best = v, bestd = d;
        }
        /* Not reached for a graph in dependency order: node lo.. always has
         * a ready node. Fall back to the given order to stay total. */
        if (best < 0)
            for (best = lo; s->pos[best] >= 0; best++)
                ;
        const sc_node *n = &s->g->n[best];
        for (int k = 0; k < n->nin; k++)
            s->uses[n->in[k]]--;
        s->pos[best] = *len;
        order[(*len)++] = best;
    }
}

/* g's nodes in order, with the producers renumbered, into n and t. */
static void permute(const sc_graph *g, const int *order, sc_node *n, sc_tensor *t, int *pos)
{
    for (int k = 0; k < g->nn; k++) {
        n[k] = g->n[order[k]];
        pos[order[k]] = k;
    }
    memcpy(t, g->t, (size_t)g->nt * sizeof *t);
    for (int i = 0; i < g->nt; i++)
        if (t[i].producer >= 0)
            t[i].producer = pos[t[i].producer];
}

/* The arena of g run in order; -1 when out of memory. */
static int64_t arena_of(const sc_graph *g, const int *order, int out, const sc_memplan_opts *o)
{
    sc_graph c = *g;
    c.n = malloc((size_t)g->nn * sizeof *c.n + 1);
    c.t = malloc((size_t)g->nt * sizeof *c.t + 1);
    int *pos = malloc((size_t)g->nn * sizeof *pos + 1);
    int64_t a = -1;
    sc_memplan mp;
    if (c.n && c.t && pos) {
        permute(g, order, c.n, c.t, pos);
        if (!sc_memplan_build(&c, out, o, &mp)) {
            a = mp.arena_floats;
            sc_memplan_free(&mp);
        }
    }
    free(c.n);
    free(c.t);
    free(pos);
    return a;
}

int sc_schedule_order(const sc_graph *g, int out, const sc_memplan_opts *o, int *order)
{
    for (int k = 0; k < g->nn; k++)
        order[k] = k;
    sc_memplan base;
    if (sc_memplan_build(g, out, o, &base))
        return -1;
    sched s = {g, base.region, calloc((size_t)g->nt + 1, sizeof(int)), malloc(((size_t)g->nn + 1) * sizeof(int)),
               malloc(((size_t)g->nn * SC_MAX_IN + 1) * sizeof(int))};
    int *cand = malloc(((size_t)g->nn + 1) * sizeof *cand);
    int *last = malloc(((size_t)g->nt + 1) * sizeof *last); /* per buffer: last node touching it */
    int rc = -1;
    if (!s.uses || !s.pos || !s.bufdep || !cand || !last)
        goto done;
    for (int i = 0; i < g->nt; i++)
        last[i] = -1;
    for (int v = 0; v < g->nn; v++) {
        const sc_node *n = &g->n[v];
        s.pos[v] = -1;
        for (int k = 0; k < n->nin; k++) {
            int t = n->in[k];
            s.uses[t]++;
            s.bufdep[v * SC_MAX_IN + k] = -1;
            if (g->t[t].kind == SC_T_BUFFER) {
                s.bufdep[v * SC_MAX_IN + k] = last[t];
                last[t] = v;
            }
        }
    }
    int len = 0;
    greedy(&s, 0, g->nfwd, cand, &len);
    greedy(&s, g->nfwd, g->nn, cand, &len);
    int64_t a = arena_of(g, cand, out, o);
    if (a < 0)
        goto done;
    if (a < base.arena_floats)
        memcpy(order, cand, (size_t)g->nn * sizeof *order);
    rc = 0;
done:
    sc_memplan_free(&base);
    free(s.uses);
    free(s.pos);
    free(s.bufdep);
    free(cand);
    free(last);
    return rc;
}

int sc_schedule_apply(sc_graph *g, const int *order)
{
    sc_node *n = malloc((size_t)g->nn * sizeof *n + 1);
    sc_tensor *t = malloc((size_t)g->nt * sizeof *t + 1);
    int *pos = malloc((size_t)g->nn * sizeof *pos + 1);
    int rc = -1;
    if (n && t && pos) {
        permute(g, order, n, t, pos);
        memcpy(g->n, n, (size_t)g->nn * sizeof *n);
        memcpy(g->t, t, (size_t)g->nt * sizeof *t);
        rc = 0;
    }
    free(n);
    free(t);
    free(pos);
    return rc;
}

int sc_schedule_nodes(sc_graph *g, int out, const sc_memplan_opts *o)
{
    int *order = malloc((size_t)g->nn * sizeof *order + 1);
    int rc = order && !sc_schedule_order(g, out, o, order) ? sc_schedule_apply(g, order) : -1;
    free(order);
    return rc;
}
