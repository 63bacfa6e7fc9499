/* Greedy, size-ordered first-fit over lifetimes: place the largest arena
 * buffers first, each at the lowest offset that does not overlap a placed
 * buffer whose lifetime overlaps its own. Inputs and outputs of one node
 * always have overlapping lifetimes, so no op ever writes over what it is
 * still reading, except where memplan.h allows it in place: a tensor and
 * the input whose storage it takes form one buffer, whose lifetime is the
 * union of theirs (chains of in-place nodes too). */
#include "memplan.h"

#include "convplan.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 16

static int64_t align_up(int64_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

int64_t sc_node_workspace(const sc_graph *g, int i, const sc_memplan_opts *o, int *per_thread)
{
    const sc_node *n = &g->n[i];
    *per_thread = 0;
    switch (n->op) {
    case SC_OP_CONV2D:
    case SC_OP_CONV2D_STATS:
    case SC_OP_CONV2D_BWD_DATA:
    case SC_OP_CONV2D_BWD_WEIGHT:
        *per_thread = 1;
        return sc_conv_plan_node(g, i, o->threads, o->conv, o->tuning).workspace;
    case SC_OP_BATCHNORM:
    case SC_OP_BATCHNORM_RELU:
    case SC_OP_BATCHNORM_ADD_RELU:
    case SC_OP_BATCHNORM_BWD:
    case SC_OP_BATCHNORM_RELU_BWD:
        /* per-channel sums in double, reduced over the ranks */
        return o->mpi ? 4 * (int64_t)g->t[n->in[0]].shape[1] : 0;
    case SC_OP_NTXENT:
    case SC_OP_NTXENT_BWD: {
        int64_t rows = g->t[n->in[0]].shape[0];
        return rows * rows;
    }
    case SC_OP_BARLOW:
    case SC_OP_BARLOW_BWD:
    case SC_OP_VICREG:
    case SC_OP_VICREG_BWD: {
        /* cg_statloss.c's layout; with MPI the communicator's memory */
        int64_t rows = g->t[n->in[0]].shape[0], d = g->t[n->in[0]].shape[1];
        return o->mpi ? 0 : rows * d + d * d + 2 * d;
    }
    default:
        return 0;
    }
}

void sc_node_workspace_tails(const sc_graph *g, int i, const sc_memplan_opts *o, int64_t *unused, int64_t *once)
{
    *unused = *once = 0;
    sc_opkind op = g->n[i].op;
    if (op != SC_OP_CONV2D_BWD_WEIGHT && op != SC_OP_CONV2D_BWD_DATA && op != SC_OP_CONV2D &&
        op != SC_OP_CONV2D_STATS)
        return;
    sc_conv_plan p = sc_conv_plan_node(g, i, o->threads, o->conv, o->tuning);
    *unused = p.last_unused;
    *once = p.once;
}

typedef struct {
    int64_t size;
    int first, last;
    int64_t offset;
    int tensor;   /* or -1 - node for a workspace */
} item;

/* Input slots of op whose storage out[0] may take (memplan.h): bit k for
 * in[k]. Each is read at the index being written, before the write. */
static unsigned inplace_slots(sc_opkind op)
{
    switch (op) {
    case SC_OP_RELU:
    case SC_OP_RESHAPE:
    case SC_OP_BATCHNORM_EVAL:
    case SC_OP_SILU:
    case SC_OP_GELU:
    case SC_OP_LEAKY_RELU: return 1u;                     /* x */
    case SC_OP_RELU_BWD:                                  /* dy, y */
    case SC_OP_SILU_BWD:                                  /* dy, x */
    case SC_OP_GELU_BWD:
    case SC_OP_LEAKY_RELU_BWD:
    case SC_OP_ADD:                                       /* a, b */
    case SC_OP_ADD_RELU:
    case SC_OP_BATCHNORM_BWD: return 3u;                  /* dy, x */
    case SC_OP_ADD_RELU_BWD:                              /* a, b, y */
    case SC_OP_BATCHNORM_RELU_BWD: return 7u;             /* dy, y, x */
    case SC_OP_BATCHNORM_ADD_RELU: return 8u;             /* r: read only by the apply */
    default: return 0;
    }
}

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
    free(mp->inplace);
    free(mp->ws_offset);
    free(mp->ws_floats);
    free(mp->ws_stride);
    memset(mp, 0, sizeof *mp);
}

/* First fit, in the order given: each item goes to the lowest offset, 0
 * or the end of a placed item whose lifetime overlaps its own, where it
 * overlaps none of them. Placed items are kept sorted by offset, so one
 * walk finds it: a candidate moves past every lifetime-overlapping item
 * that starts before the candidate's end, and the first one that starts
 * at or after it leaves a gap (no later one starts lower). Every offset
 * skipped is covered by an item or too close below one, so the result is
 * the lowest fit, as with trying each candidate against each item, in
 * O(n) per item instead of O(n^2). Lifetimes sit apart from extents so
 * that the walk, mostly skipping, reads little memory. */
static int first_fit(item *items, int n, sc_memplan *mp)
{
    int (*life)[2] = malloc(((size_t)n + 1) * sizeof *life);
    int64_t (*ext)[2] = malloc(((size_t)n + 1) * sizeof *ext);
    if (!life || !ext) {
        free(life);
        free(ext);
        return -1;
    }
    int np = 0;
    for (int i = 0; i < n; i++) {
        item *it = &items[i];
        int64_t cand = 0;
        for (int k = 0; k < np; k++) {
            if (life[k][1] < it->first || life[k][0] > it->last)
                continue;
            if (ext[k][0] >= cand + it->size)
                break;
            if (ext[k][1] > cand)
                cand = ext[k][1];
        }
        it->offset = cand;
        if (cand + it->size > mp->arena_floats)
            mp->arena_floats = cand + it->size;
        if (it->tensor >= 0)
            mp->offset[it->tensor] = cand;
        else
            mp->ws_offset[-1 - it->tensor] = cand;
        /* Insert after the items at lower or equal offsets. */
        int lo = 0, hi = np;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (ext[mid][0] <= cand)
                lo = mid + 1;
            else
                hi = mid;
        }
        memmove(&life[lo + 1], &life[lo], (size_t)(np - lo) * sizeof *life);
        memmove(&ext[lo + 1], &ext[lo], (size_t)(np - lo) * sizeof *ext);
        life[lo][0] = it->first;
        life[lo][1] = it->last;
        ext[lo][0] = cand;
        ext[lo][1] = cand + it->size;
        np++;
    }
    free(life);
    free(ext);
    return 0;
}

/* root[i]: the first tensor of i's chain of in-place tensors, each chain
 * walked once. */
static void chain_roots(const int *inplace, int nt, int *root)
{
    for (int i = 0; i < nt; i++)
        root[i] = -1;
    for (int i = 0; i < nt; i++) {
        int r = i;
        while (root[r] < 0 && inplace[r] >= 0)
            r = inplace[r];
        r = root[r] >= 0 ? root[r] : r;
        for (int k = i; root[k] < 0; k = inplace[k] >= 0 ? inplace[k] : k) {
            root[k] = r;
            if (inplace[k] < 0)
                break;
        }
    }
}

static int plan(const sc_graph *g, int out, const sc_memplan_opts *o, int inplace, sc_memplan *mp)
{
    static const sc_memplan_opts serial = {.threads = 1};
    memset(mp, 0, sizeof *mp);
    mp->opts = o ? *o : serial;
    if (mp->opts.threads < 1)
        mp->opts.threads = 1;
    mp->region = calloc((size_t)g->nt, sizeof *mp->region);
    mp->offset = calloc((size_t)g->nt, sizeof *mp->offset);
    mp->first = calloc((size_t)g->nt, sizeof *mp->first);
    mp->last = calloc((size_t)g->nt, sizeof *mp->last);
    mp->inplace = malloc(((size_t)g->nt + 1) * sizeof *mp->inplace);
    int *glast = malloc(((size_t)g->nt + 1) * sizeof *glast); /* per group root: the group's last use */
    int *root = malloc(((size_t)g->nt + 1) * sizeof *root);
    mp->ws_offset = calloc((size_t)g->nn + 1, sizeof *mp->ws_offset);
    mp->ws_floats = calloc((size_t)g->nn + 1, sizeof *mp->ws_floats);
    mp->ws_stride = calloc((size_t)g->nn + 1, sizeof *mp->ws_stride);
    item *items = calloc((size_t)(g->nt + g->nn) + 1, sizeof *items);
    if (!mp->region || !mp->offset || !mp->first || !mp->last || !mp->inplace || !glast || !root ||
        !mp->ws_offset || !mp->ws_floats || !mp->ws_stride || !items) {
        free(items);
        free(glast);
        free(root);
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

    /* In place: out[0] takes an eligible input that dies here. */
    for (int i = 0; i < g->nt; i++)
        mp->inplace[i] = -1;
    for (int i = 0; i < g->nn; i++) {
        const sc_node *nd = &g->n[i];
        unsigned slots = inplace_slots(nd->op);
        if (!slots || !inplace || nd->nout < 1 || mp->region[nd->out[0]] != SC_REG_ARENA)
            continue;
        for (int k = 0; k < nd->nin; k++) {
            int s = nd->in[k];
            if ((slots >> k & 1u) && mp->region[s] == SC_REG_ARENA && mp->last[s] == i &&
                g->t[s].numel == g->t[nd->out[0]].numel) {
                mp->inplace[nd->out[0]] = s;
                break;
            }
        }
    }
    /* One buffer per chain of in-place tensors, named by its first. */
    chain_roots(mp->inplace, g->nt, root);
    for (int i = 0; i < g->nt; i++)
        glast[i] = mp->last[i];
    for (int i = 0; i < g->nt; i++)
        if (glast[root[i]] < mp->last[i])
            glast[root[i]] = mp->last[i];
    int n = 0;
    for (int i = 0; i < g->nt; i++)
        if (mp->region[i] == SC_REG_ARENA) {
            mp->sum_floats += align_up(g->t[i].numel);
            if (mp->inplace[i] < 0)
                items[n++] = (item){align_up(g->t[i].numel), mp->first[i], glast[i], 0, i};
        }
    free(glast);
    for (int i = 0; i < g->nn; i++) {
        int per_thread;
        mp->ws_floats[i] = sc_node_workspace(g, i, &mp->opts, &per_thread);
        if (per_thread && mp->ws_floats[i]) {
            int64_t unused, once;
            sc_node_workspace_tails(g, i, &mp->opts, &unused, &once);
            mp->ws_stride[i] = align_up(mp->ws_floats[i] - once);
            mp->ws_floats[i] = mp->ws_stride[i] * (mp->opts.threads - 1) + mp->ws_floats[i] - unused;
        }
        if (mp->ws_floats[i]) {
            items[n++] = (item){align_up(mp->ws_floats[i]), i, i, 0, -1 - i};
            mp->sum_floats += align_up(mp->ws_floats[i]);
        }
    }
    qsort(items, (size_t)n, sizeof *items, by_size_desc);
    int rc = first_fit(items, n, mp);
    free(items);
    if (rc) {
        free(root);
        sc_memplan_free(mp);
        return -1;
    }
    /* Tensors in place: at their chain's first tensor (placed above). */
    for (int i = 0; i < g->nt; i++)
        mp->offset[i] = mp->offset[root[i]];
    free(root);
    return 0;
}

/* First fit is a heuristic: merging tensors into one buffer can pack
 * worse, so the plan with sharing is kept only if its arena is no larger. */
int sc_memplan_build(const sc_graph *g, int out, const sc_memplan_opts *o, sc_memplan *mp)
{
    if (plan(g, out, o, 1, mp))
        return -1;
    int shared = 0;
    for (int i = 0; i < g->nt && !shared; i++)
        shared = mp->inplace[i] >= 0;
    if (!shared)
        return 0;
    sc_memplan sep;
    if (plan(g, out, o, 0, &sep)) {
        sc_memplan_free(mp);
        return -1;
    }
    if (sep.arena_floats < mp->arena_floats) {
        sc_memplan_free(mp);
        *mp = sep;
    } else {
        sc_memplan_free(&sep);
    }
    return 0;
}

int sc_memplan_build_with(const sc_graph *g, int out, const sc_memplan_opts *o, int inplace, sc_memplan *mp)
{
    return plan(g, out, o, inplace, mp);
}

unsigned sc_memplan_aliases(const sc_graph *g, const sc_memplan *mp, int i)
{
    const sc_node *n = &g->n[i];
    int ops[SC_MAX_IN + SC_MAX_OUT], m = 0;
    for (int k = 0; k < n->nin; k++)
        ops[m++] = n->in[k];
    for (int k = 0; k < n->nout; k++)
        ops[m++] = n->out[k];
    unsigned mask = 0;
    for (int a = 0; a < m; a++)
        for (int b = a + 1; b < m; b++) {
            int ta = ops[a], tb = ops[b];
            if (mp->region[ta] == mp->region[tb] && mp->offset[ta] < mp->offset[tb] + g->t[tb].numel &&
                mp->offset[tb] < mp->offset[ta] + g->t[ta].numel)
                mask |= 1u << a | 1u << b;
        }
    return mask;
}

void sc_memplan_print(const sc_graph *g, const sc_memplan *mp, FILE *f)
{
    static const char *const regions[] = {"params", "grads", "buffers", "arena", "input", "out"};
    char sh[64];
    int nin = 0;
    long long in_bytes = 0;
    fprintf(f, "memory plan %s: offsets and sizes in bytes, lifetimes in node indices\n", g->name);
    fprintf(f, "%-44s %-18s %-8s %14s %14s  %s\n", "tensor", "shape", "region", "offset", "bytes", "lifetime");
    for (int i = 0; i < g->nt; i++) {
        const sc_tensor *t = &g->t[i];
        sc_shape_str(t, sh, sizeof sh);
        fprintf(f, "%-44s %-18s %-8s %14lld %14lld  [%d, %d]", t->name, sh, regions[mp->region[i]],
                (long long)mp->offset[i] * 4, (long long)t->numel * 4, mp->first[i], mp->last[i]);
        if (mp->inplace[i] >= 0) {
            fprintf(f, "  in place of %s", g->t[mp->inplace[i]].name);
            nin++;
            in_bytes += align_up(t->numel) * 4;
        }
        fputc('\n', f);
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
    fprintf(f, "in place: %d tensors (%lld bytes) share an input's storage\n", nin, in_bytes);
}
