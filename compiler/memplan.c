/* Greedy, size-ordered first-fit over lifetimes: place the largest arena
 * buffers first, each at the lowest offset that does not overlap a placed
 * buffer whose lifetime overlaps its own. Inputs and outputs of one node
 * always have overlapping lifetimes, so no op ever writes over what it is
 * still reading. */
#include "memplan.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 16

static int64_t align_up(int64_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

int64_t sc_conv_chunk(int64_t n, int64_t ohw)
{
    int64_t want = (512 + ohw - 1) / ohw, best = 1;
    for (int64_t d = 1; d <= n && d <= want; d++)
        if (n % d == 0)
            best = d;
    return best;
}

int64_t sc_node_workspace(const sc_graph *g, int i)
{
    const sc_node *n = &g->n[i];
    switch (n->op) {
    case SC_OP_CONV2D:
    case SC_OP_CONV2D_BWD_DATA:
    case SC_OP_CONV2D_BWD_WEIGHT: {
        /* A chunk's im2col matrix [C*K*K, nb*OH*OW] and, for nb > 1, the
         * GEMM result [O, nb*OH*OW] before it is scattered to NCHW; a 1x1,
         * stride-1, unpadded conv of one image at a time needs neither. */
        const sc_tensor *x, *y;
        if (n->op == SC_OP_CONV2D) {
            x = &g->t[n->in[0]];
            y = &g->t[n->out[0]];
        } else if (n->op == SC_OP_CONV2D_BWD_DATA) {
            x = &g->t[n->out[0]];
            y = &g->t[n->in[0]];
        } else {
            x = &g->t[n->in[1]];
            y = &g->t[n->in[0]];
        }
        int64_t ohw = (int64_t)y->shape[2] * y->shape[3];
        int64_t nb = sc_conv_chunk(x->shape[0], ohw);
        int one_by_one = n->kernel == 1 && n->stride == 1 && n->pad == 0;
        if (one_by_one && nb == 1)
            return 0;
        int64_t cols = nb * ohw, o = y->shape[1];
        return (int64_t)x->shape[1] * n->kernel * n->kernel * cols + (nb > 1 ? o * cols : 0);
    }
    case SC_OP_NTXENT:
    case SC_OP_NTXENT_BWD: {
        int64_t rows = g->t[n->in[0]].shape[0];
        return rows * rows;
    }
    default:
        return 0;
    }
}

typedef struct {
    int64_t size;
    int first, last;
    int64_t offset;
    int tensor;   /* or -1 - node for a workspace */
} item;

static int by_size_desc(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->first - y->first;
}

void sc_memplan_free(sc_memplan *mp)
{
    free(mp->region);
    free(mp->offset);
    free(mp->first);
    free(mp->last);
    free(mp->ws_offset);
    free(mp->ws_floats);
    memset(mp, 0, sizeof *mp);
}

int sc_memplan_build(const sc_graph *g, int out, sc_memplan *mp)
{
    memset(mp, 0, sizeof *mp);
    mp->region = calloc((size_t)g->nt, sizeof *mp->region);
    mp->offset = calloc((size_t)g->nt, sizeof *mp->offset);
    mp->first = calloc((size_t)g->nt, sizeof *mp->first);
    mp->last = calloc((size_t)g->nt, sizeof *mp->last);
    mp->ws_offset = calloc((size_t)g->nn + 1, sizeof *mp->ws_offset);
    mp->ws_floats = calloc((size_t)g->nn + 1, sizeof *mp->ws_floats);
    item *items = calloc((size_t)(g->nt + g->nn) + 1, sizeof *items);
    if (!mp->region || !mp->offset || !mp->first || !mp->last || !mp->ws_offset ||
        !mp->ws_floats || !items) {
        free(items);
        sc_memplan_free(mp);
        return -1;
    }

    /* Persistent regions: canonical order, each tensor 64-byte aligned. */
    for (int i = 0; i < g->nt; i++)
        mp->region[i] = SC_REG_ARENA;
    for (int p = 0; p < g->nparams; p++) {
        int t = g->params[p];
        mp->region[t] = SC_REG_PARAMS;
        mp->offset[t] = mp->params_floats;
        if (g->t[t].grad >= 0) {
            mp->region[g->t[t].grad] = SC_REG_GRADS;
            mp->offset[g->t[t].grad] = mp->params_floats;
        }
        mp->params_floats += align_up(g->t[t].numel);
    }
    for (int b = 0; b < g->nbuffers; b++) {
        int t = g->buffers[b];
        mp->region[t] = SC_REG_BUFFERS;
        mp->offset[t] = mp->buffers_floats;
        mp->buffers_floats += align_up(g->t[t].numel);
    }
    if (g->input >= 0)
        mp->region[g->input] = SC_REG_INPUT;
    if (g->labels >= 0) { /* the input buffer holds the images, then the labels */
        mp->region[g->labels] = SC_REG_INPUT;
        mp->offset[g->labels] = g->t[g->input].numel;
    }
    if (out >= 0)
        mp->region[out] = SC_REG_OUT;

    /* Lifetimes in node order. */
    for (int i = 0; i < g->nt; i++) {
        mp->first[i] = g->t[i].producer >= 0 ? g->t[i].producer : 0;
        mp->last[i] = mp->first[i];
    }
    for (int i = 0; i < g->nn; i++)
        for (int k = 0; k < g->n[i].nin; k++)
            if (mp->last[g->n[i].in[k]] < i)
                mp->last[g->n[i].in[k]] = i;

    int n = 0;
    for (int i = 0; i < g->nt; i++)
        if (mp->region[i] == SC_REG_ARENA)
            items[n++] = (item){align_up(g->t[i].numel), mp->first[i], mp->last[i], 0, i};
    for (int i = 0; i < g->nn; i++) {
        mp->ws_floats[i] = sc_node_workspace(g, i);
        if (mp->ws_floats[i])
            items[n++] = (item){align_up(mp->ws_floats[i]), i, i, 0, -1 - i};
    }
    qsort(items, (size_t)n, sizeof *items, by_size_desc);

    /* First fit among the placed items whose lifetimes overlap: try
     * offset 0, then the end of each of them; keep the lowest that fits. */
    int *live = malloc((size_t)n * sizeof *live + 1);
    if (!live) {
        free(items);
        sc_memplan_free(mp);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        item *it = &items[i];
        int nl = 0;
        for (int k = 0; k < i; k++)
            if (!(items[k].last < it->first || items[k].first > it->last))
                live[nl++] = k;
        int64_t best = -1;
        for (int c = -1; c < nl; c++) {
            int64_t cand = c < 0 ? 0 : items[live[c]].offset + items[live[c]].size;
            if (best >= 0 && cand >= best)
                continue;
            int ok = 1;
            for (int k = 0; k < nl && ok; k++) {
                const item *o = &items[live[k]];
                ok = !(cand < o->offset + o->size && o->offset < cand + it->size);
            }
            if (ok)
                best = cand;
        }
        it->offset = best;
        if (best + it->size > mp->arena_floats)
            mp->arena_floats = best + it->size;
        mp->sum_floats += it->size;
        if (it->tensor >= 0)
            mp->offset[it->tensor] = best;
        else
            mp->ws_offset[-1 - it->tensor] = best;
    }
    free(live);
    free(items);
    return 0;
}

void sc_memplan_print(const sc_graph *g, const sc_memplan *mp, FILE *f)
{
    static const char *const regions[] = {"params", "grads", "buffers", "arena", "input", "out"};
    char sh[64];
    fprintf(f, "memory plan %s: offsets and sizes in bytes, lifetimes in node indices\n", g->name);
    fprintf(f, "%-44s %-18s %-8s %14s %14s  %s\n", "tensor", "shape", "region", "offset", "bytes", "lifetime");
    for (int i = 0; i < g->nt; i++) {
        const sc_tensor *t = &g->t[i];
        sc_shape_str(t, sh, sizeof sh);
        fprintf(f, "%-44s %-18s %-8s %14lld %14lld  [%d, %d]\n", t->name, sh, regions[mp->region[i]],
                (long long)mp->offset[i] * 4, (long long)t->numel * 4, mp->first[i], mp->last[i]);
    }
    for (int i = 0; i < g->nn; i++)
        if (mp->ws_floats[i])
            fprintf(f, "%-44s %-18s %-8s %14lld %14lld  [%d, %d]\n", g->n[i].label[0] ? g->n[i].label : "?",
                    sc_op_name(g->n[i].op), "work", (long long)mp->ws_offset[i] * 4,
                    (long long)mp->ws_floats[i] * 4, i, i);
    fprintf(f, "\nparameters %lld bytes, buffers %lld bytes\n", (long long)mp->params_floats * 4,
            (long long)mp->buffers_floats * 4);
    fprintf(f, "arena peak %lld bytes; all arena buffers added up %lld bytes (%.1f%%)\n",
            (long long)mp->arena_floats * 4, (long long)mp->sum_floats * 4,
            mp->sum_floats ? 100.0 * (double)mp->arena_floats / (double)mp->sum_floats : 0.0);
}
