/* The greedy list scheduler of schedule.h: at each step, of the ready
 * nodes of the current pass (forward, then backward), the one whose run
 * grows the live arena least, the earlier on ties. A heap of the ready
 * nodes keyed by (growth, index) makes a step O(log n): a node's growth
 * changes only when another reader of one of its inputs runs, and then it
 * is pushed again with the new key (the stale entry is skipped when it
 * surfaces). O((n + e) log n) for n nodes and e operand references. */
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t d;
    int v;
} entry;

typedef struct {
    const sc_graph *g;
    const sc_region *region; /* per tensor, from a plan of g */
    int *uses;               /* per tensor: reads by nodes not yet scheduled */
    int *pos;                /* per node: place in the order, -1 while unscheduled */
    int *bufdep;             /* per node and input slot: earlier node touching that buffer, or -1 */
    int *pending;            /* per node: dependences (per input slot) not yet scheduled */
    int *dep_start, *deps;   /* per node: the nodes depending on it, deps[dep_start[v] ..] */
    int *rd_start, *rd;      /* per tensor: the nodes reading it */
    entry *heap;
    int nheap, cap;
    int oom;
    int lo, hi;              /* the current pass */
} sched;

static int64_t arena_bytes(const sched *s, int t)
{
    return s->region[t] == SC_REG_ARENA ? (s->g->t[t].numel + 15) / 16 * 16 : 0;
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

static int before(entry a, entry b) { return a.d != b.d ? a.d < b.d : a.v < b.v; }

static void push(sched *s, int v)
{
    if (s->nheap == s->cap) {
        entry *h = realloc(s->heap, (size_t)(s->cap = 2 * s->cap + 64) * sizeof *h);
        if (!h) {
            s->oom = 1;
            return;
        }
        s->heap = h;
    }
    entry e = {growth(s, v), v};
    int i = s->nheap++;
    while (i > 0 && before(e, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
}

static entry pop(sched *s)
{
    entry top = s->heap[0], last = s->heap[--s->nheap];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= s->nheap)
            break;
        if (c + 1 < s->nheap && before(s->heap[c + 1], s->heap[c]))
            c++;
        if (!before(s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->nheap)
        s->heap[i] = last;
    return top;
}

static int in_pass(const sched *s, int v) { return v >= s->lo && v < s->hi; }

/* Runs node v: its readers' growth and its dependents' readiness change. */
static void schedule(sched *s, int v, int *order, int *len)
{
    const sc_node *n = &s->g->n[v];
    s->pos[v] = *len;
    order[(*len)++] = v;
    for (int k = 0; k < n->nin; k++)
        s->uses[n->in[k]]--;
    for (int k = 0; k < n->nin; k++) {
        int t = n->in[k], first = 1;
        for (int j = 0; j < k; j++)
            first &= n->in[j] != t;
        for (int r = s->rd_start[t]; first && r < s->rd_start[t + 1]; r++) {
            int u = s->rd[r];
            if (s->pos[u] < 0 && !s->pending[u] && in_pass(s, u) && (r == s->rd_start[t] || s->rd[r - 1] != u))
                push(s, u);
        }
    }
    for (int e = s->dep_start[v]; e < s->dep_start[v + 1]; e++) {
        int u = s->deps[e];
        if (--s->pending[u] == 0 && s->pos[u] < 0 && in_pass(s, u))
            push(s, u);
    }
}

/* The greedy order of nodes [lo, hi) of g, appended to order at *len. */
static void greedy(sched *s, int lo, int hi, int *order, int *len)
{
    s->lo = lo;
    s->hi = hi;
    s->nheap = 0;
    for (int v = lo; v < hi; v++)
        if (s->pos[v] < 0 && !s->pending[v])
            push(s, v);
    int next = lo; /* for the fallback below */
    for (int step = lo; step < hi; step++) {
        int best = -1;
        while (s->nheap && best < 0) {
            entry e = pop(s);
            if (s->pos[e.v] >= 0)
                continue;
            int64_t d = growth(s, e.v);
            if (d != e.d) { /* stale: its growth changed since the push */
                push(s, e.v);
                continue;
            }
            best = e.v;
        }
        /* Not reached for a graph in dependency order: node lo.. always has
         * a ready node. Fall back to the given order to stay total. */
        if (best < 0) {
            while (s->pos[next] >= 0)
                next++;
            best = next;
        }
        schedule(s, best, order, len);
    }
}

/* Dependences as lists: for each node, the nodes whose input slots wait
 * for it (as producer or as the previous toucher of a buffer); for each
 * tensor, its readers. Returns -1 when out of memory. */
static int link_nodes(sched *s)
{
    const sc_graph *g = s->g;
    size_t ne = (size_t)g->nn * SC_MAX_IN * 2 + 1;
    s->dep_start = calloc((size_t)g->nn + 2, sizeof(int));
    s->deps = malloc(ne * sizeof(int));
    s->rd_start = calloc((size_t)g->nt + 2, sizeof(int));
    s->rd = malloc(((size_t)g->nn * SC_MAX_IN + 1) * sizeof(int));
    s->pending = calloc((size_t)g->nn + 1, sizeof(int));
    if (!s->dep_start || !s->deps || !s->rd_start || !s->rd || !s->pending)
        return -1;
    /* Counts, then prefix sums, then fill (readers in node order). */
    for (int v = 0; v < g->nn; v++)
        for (int k = 0; k < g->n[v].nin; k++) {
            int p = g->t[g->n[v].in[k]].producer, b = s->bufdep[v * SC_MAX_IN + k];
            s->rd_start[g->n[v].in[k] + 1]++;
            if (p >= 0)
                s->dep_start[p + 1]++, s->pending[v]++;
            if (b >= 0)
                s->dep_start[b + 1]++, s->pending[v]++;
        }
    for (int v = 0; v < g->nn; v++)
        s->dep_start[v + 1] += s->dep_start[v];
    for (int t = 0; t < g->nt; t++)
        s->rd_start[t + 1] += s->rd_start[t];
    int *fill = calloc((size_t)g->nn + (size_t)g->nt + 1, sizeof(int));
    if (!fill)
        return -1;
    for (int v = 0; v < g->nn; v++)
        for (int k = 0; k < g->n[v].nin; k++) {
            int t = g->n[v].in[k], p = g->t[t].producer, b = s->bufdep[v * SC_MAX_IN + k];
            s->rd[s->rd_start[t] + fill[g->nn + t]++] = v;
            if (p >= 0)
                s->deps[s->dep_start[p] + fill[p]++] = v;
            if (b >= 0)
                s->deps[s->dep_start[b] + fill[b]++] = v;
        }
    free(fill);
    return 0;
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
               malloc(((size_t)g->nn * SC_MAX_IN + 1) * sizeof(int)), NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0};
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
    if (link_nodes(&s))
        goto done;
    int len = 0;
    greedy(&s, 0, g->nfwd, cand, &len);
    greedy(&s, g->nfwd, g->nn, cand, &len);
    if (s.oom)
        goto done;
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
    free(s.pending);
    free(s.dep_start);
    free(s.deps);
    free(s.rd_start);
    free(s.rd);
    free(s.heap);
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
