#include "convplan.h"

#include <string.h>

#include "memplan.h"

/* src is the tensor the GEMMs read (x, or dy for the data gradient), dst
 * the one they write; pad the padding of src. */
static void roles(const sc_graph *g, int i, const sc_tensor **src, const sc_tensor **dst, int64_t *pad)
{
    const sc_node *n = &g->n[i];
    switch (n->op) {
    case SC_OP_CONV2D:
        *src = &g->t[n->in[0]], *dst = &g->t[n->out[0]], *pad = n->pad;
        break;
    case SC_OP_CONV2D_BWD_DATA: /* a stride-1 conv of dy, padded k-1-p, with flipped taps */
        *src = &g->t[n->in[0]], *dst = &g->t[n->out[0]], *pad = n->kernel - 1 - n->pad;
        break;
    default: /* weight gradient: x padded as in the forward pass, dy on its grid */
        *src = &g->t[n->in[1]], *dst = &g->t[n->in[0]], *pad = n->pad;
        break;
    }
}

sc_shift_geom sc_conv_shift_geom(const sc_graph *g, int i, int threads)
{
    const sc_tensor *src, *dst;
    sc_shift_geom s;
    roles(g, i, &src, &dst, &s.p);
    s.n = src->shape[0];
    s.cs = src->shape[1], s.h = src->shape[2], s.w = src->shape[3];
    s.cd = dst->shape[1], s.oh = dst->shape[2], s.ow = dst->shape[3];
    s.k = g->n[i].kernel;
    s.hp = s.h + 2 * s.p, s.wp = s.w + 2 * s.p;
    s.plane = s.hp * s.wp;
    s.nb = sc_conv_chunk(s.n, s.plane, threads);
    s.stride = s.nb * s.plane;
    s.npos = (s.nb - 1) * s.plane + (s.oh - 1) * s.wp + s.ow;
    return s;
}

sc_conv_algo sc_conv_choose(const sc_graph *g, int i, const sc_memplan_opts *o)
{
    const sc_node *n = &g->n[i];
    int conv = o->conv, threads = o->threads;
    if (n->kernel == 1 && n->stride == 1 && n->pad == 0)
        return SC_CONV_GEMM1X1;
    /* Shifting needs unit stride and, for the data gradient's flipped
     * padding, pad <= kernel - 1. */
    int legal = n->stride == 1 && n->kernel > 1 && n->pad >= 0 && n->pad <= n->kernel - 1;
    if (!legal)
        return SC_CONV_IM2COL;
    for (int k = 0; o->tuning && k < o->tuning->n; k++) {
        const sc_conv_pick *p = &o->tuning->v[k];
        if (p->op == n->op && !strcmp(p->label, n->label))
            return p->algo == SC_CONV_SHIFT ? SC_CONV_SHIFT : SC_CONV_IM2COL;
    }
    if (conv == SC_CONV_IM2COL_POLICY)
        return SC_CONV_IM2COL;
    if (conv == SC_CONV_FORCE_SHIFT)
        return SC_CONV_SHIFT;
    sc_shift_geom s = sc_conv_shift_geom(g, i, threads);
    return (double)s.plane <= SC_SHIFT_WASTE * (double)(s.oh * s.ow) ? SC_CONV_SHIFT : SC_CONV_IM2COL;
}

int64_t sc_conv_shift_workspace(const sc_graph *g, int i, int threads)
{
    sc_shift_geom s = sc_conv_shift_geom(g, i, threads);
    int64_t taps = s.k * s.k * s.cs * s.cd;
    return s.cs * s.stride + s.cd * s.stride + taps;
}
