#include "interp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refops.h"
#include "sc_ema.h"
#include "sc_init.h"

int sc_interp_init(sc_interp *it, const sc_graph *g)
{
    it->g = g;
    it->buf = calloc((size_t)g->nt, sizeof *it->buf);
    if (!it->buf)
        goto oom;
    for (int i = 0; i < g->nt; i++) {
        it->buf[i] = calloc((size_t)g->t[i].numel, sizeof(double));
        if (!it->buf[i])
            goto oom;
    }
    return 0;
oom:
    fprintf(stderr, "simclrc: error: out of memory allocating the interpreter's tensors\n");
    sc_interp_free(it);
    return -1;
}

void sc_interp_free(sc_interp *it)
{
    if (it->buf)
        for (int i = 0; i < it->g->nt; i++)
            free(it->buf[i]);
    free(it->buf);
    it->buf = NULL;
}

void sc_interp_init_params(sc_interp *it, unsigned long long seed)
{
    const sc_graph *g = it->g;
    sc_rng r;
    sc_rng_seed(&r, seed, SC_STREAM_PARAMS);
    for (int pass = 0; pass < 2; pass++) {
        const int *list = pass ? g->buffers : g->params;
        int n = pass ? g->nbuffers : g->nparams;
        for (int i = 0; i < n; i++) {
            const sc_tensor *t = &g->t[list[i]];
            float *tmp = malloc((size_t)t->numel * sizeof *tmp);
            if (!tmp) {
                fprintf(stderr, "simclrc: error: out of memory\n");
                exit(3);
            }
            sc_init_tensor(&r, t->init, t->fan_in, t->numel, tmp);
            for (long k = 0; k < t->numel; k++)
                it->buf[list[i]][k] = tmp[k];
            free(tmp);
        }
    }
    /* BYOL's target network starts as a copy of the online one (sc_ema.h). */
    for (int i = 0; i < g->nbuffers; i++) {
        const sc_tensor *t = &g->t[g->buffers[i]];
        int src = t->role == SC_ROLE_TARGET ? sc_graph_find(g, sc_target_source(t->name)) : -1;
        if (src >= 0 && g->t[src].kind == SC_T_PARAM)
            memcpy(it->buf[g->buffers[i]], it->buf[src], sizeof(double) * (size_t)t->numel);
    }
}

/* Window geometry of a conv or pool node: x is the (forward) input tensor,
 * y the (forward) output. */
static sc_window window(const sc_node *n, const sc_tensor *x, const sc_tensor *y)
{
    sc_window w = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], y->shape[1],
                   n->kernel, n->stride, n->pad, y->shape[2], y->shape[3], n->groups, n->dilation};
    return w;
}

/* Elements per channel of an [N, C, ...] tensor. */
static int per_channel(const sc_tensor *t)
{
    return (int)(t->numel / ((long)t->shape[0] * t->shape[1]));
}

static void run_node(sc_interp *it, int i)
{
    const sc_graph *g = it->g;
    const sc_node *n = &g->n[i];
    double *const *b = it->buf;
    const int *in = n->in, *out = n->out;
    const sc_tensor *x = &g->t[in[0]];
    const sc_tensor *y = n->nout ? &g->t[out[0]] : NULL;

    switch (n->op) {
    case SC_OP_CONV2D:
    case SC_OP_CONV2D_STATS: {
        sc_window w = window(n, x, y);
        sc_ref_conv2d(&w, b[in[0]], b[in[1]], n->nin > 2 ? b[in[2]] : NULL, b[out[0]]);
        if (n->op == SC_OP_CONV2D_STATS)
            sc_ref_conv_stats(y->shape[0], y->shape[1], per_channel(y), b[out[0]], b[out[1]]);
        break;
    }
    case SC_OP_CONV2D_BWD_DATA: { /* (dy, w) -> dx */
        sc_window w = window(n, y, x);
        sc_ref_conv2d_bwd_data(&w, b[in[0]], b[in[1]], b[out[0]]);
        break;
    }
    case SC_OP_CONV2D_BWD_WEIGHT: { /* (dy, x) -> dw */
        sc_window w = window(n, &g->t[in[1]], x);
        sc_ref_conv2d_bwd_weight(&w, b[in[0]], b[in[1]], b[out[0]]);
        break;
    }
    case SC_OP_BIAS_BWD:
        sc_ref_bias_bwd(x->shape[0], x->shape[1], per_channel(x), b[in[0]], b[out[0]]);
        break;
    case SC_OP_BATCHNORM:
        if (n->nin > 3) { /* (x, gamma, beta, stats) */
            sc_ref_batchnorm_stats(x->shape[0], x->shape[1], per_channel(x), n->eps, b[in[0]], b[in[3]],
                                   b[in[1]], b[in[2]], b[out[0]], b[out[1]], b[out[2]]);
            break;
        }
        sc_ref_batchnorm(x->shape[0], x->shape[1], per_channel(x), n->eps, b[in[0]], b[in[1]],
                         b[in[2]], b[out[0]], b[out[1]], b[out[2]]);
        break;
    case SC_OP_BATCHNORM_EVAL:
        sc_ref_batchnorm_eval(x->shape[0], x->shape[1], per_channel(x), n->eps, b[in[0]], b[in[1]],
                              b[in[2]], b[in[3]], b[in[4]], b[out[0]]);
        break;
    case SC_OP_BATCHNORM_BWD: { /* (dy, x, gamma, mean, var) -> (dx, dgamma, dbeta) */
        sc_ref_batchnorm_bwd(x->shape[0], x->shape[1], per_channel(x), n->eps, b[in[0]], b[in[1]],
                             b[in[2]], b[in[3]], b[in[4]], b[out[0]], b[out[1]], b[out[2]]);
        break;
    }
    case SC_OP_BN_RUNNING: {
        /* The batchnorm that produced the statistics tells the count. */
        const sc_tensor *bx = &g->t[g->n[x->producer].in[0]];
        long count = bx->numel / bx->shape[1];
        sc_ref_bn_running(x->shape[0], count, n->momentum, b[in[0]], b[in[1]], b[in[2]], b[in[3]]);
        break;
    }
    case SC_OP_RELU:
        sc_ref_relu(x->numel, b[in[0]], b[out[0]]);
        break;
    case SC_OP_RELU_BWD:
        sc_ref_relu_bwd(x->numel, b[in[0]], b[in[1]], b[out[0]]);
        break;
    case SC_OP_SILU:
        sc_ref_silu(x->numel, b[in[0]], b[out[0]]);
        break;
    case SC_OP_GELU:
        sc_ref_gelu(x->numel, b[in[0]], b[out[0]]);
        break;
    case SC_OP_LEAKY_RELU:
        sc_ref_leaky_relu(x->numel, n->slope, b[in[0]], b[out[0]]);
        break;
    case SC_OP_SILU_BWD: /* (dy, x) -> dx */
        sc_ref_silu_bwd(x->numel, b[in[0]], b[in[1]], b[out[0]]);
        break;
    case SC_OP_GELU_BWD:
        sc_ref_gelu_bwd(x->numel, b[in[0]], b[in[1]], b[out[0]]);
        break;
    case SC_OP_LEAKY_RELU_BWD:
        sc_ref_leaky_relu_bwd(x->numel, n->slope, b[in[0]], b[in[1]], b[out[0]]);
        break;
    case SC_OP_MAXPOOL: {
        sc_window w = window(n, x, y);
        sc_ref_maxpool(&w, b[in[0]], b[out[0]]);
        break;
    }
    case SC_OP_MAXPOOL_BWD: { /* (dy, x) -> dx */
        sc_window w = window(n, &g->t[in[1]], x);
        sc_ref_maxpool_bwd(&w, b[in[0]], b[in[1]], b[out[0]]);
        break;
    }
    case SC_OP_AVGPOOL: {
        sc_window w = window(n, x, y);
        sc_ref_avgpool(&w, b[in[0]], b[out[0]]);
        break;
    }
    case SC_OP_AVGPOOL_BWD: { /* (dy) -> dx */
        sc_window w = window(n, y, x);
        sc_ref_avgpool_bwd(&w, b[in[0]], b[out[0]]);
        break;
    }
    case SC_OP_GLOBAL_AVGPOOL:
        sc_ref_global_avgpool(x->shape[0], x->shape[1], per_channel(x), b[in[0]], b[out[0]]);
        break;
    case SC_OP_GLOBAL_AVGPOOL_BWD:
        sc_ref_global_avgpool_bwd(y->shape[0], y->shape[1], per_channel(y), b[in[0]], b[out[0]]);
        break;
    case SC_OP_RESHAPE:
        sc_ref_copy(x->numel, b[in[0]], b[out[0]]);
        break;
    case SC_OP_LINEAR: {
        const sc_tensor *w = &g->t[in[1]];
        sc_ref_linear(x->shape[0], w->shape[1], w->shape[0], b[in[0]], b[in[1]],
                      n->nin > 2 ? b[in[2]] : NULL, b[out[0]]);
        break;
    }
    case SC_OP_LINEAR_BWD_DATA: { /* (dy, w) -> dx */
        const sc_tensor *w = &g->t[in[1]];
        sc_ref_linear_bwd_data(x->shape[0], w->shape[1], w->shape[0], b[in[0]], b[in[1]], b[out[0]]);
        break;
    }
    case SC_OP_LINEAR_BWD_WEIGHT: { /* (dy, x) -> dw */
        sc_ref_linear_bwd_weight(x->shape[0], y->shape[1], y->shape[0], b[in[0]], b[in[1]], b[out[0]]);
        break;
    }
    case SC_OP_ADD:
        sc_ref_add(x->numel, b[in[0]], b[in[1]], b[out[0]]);
        break;
    case SC_OP_L2NORM:
        sc_ref_l2norm(x->shape[0], x->shape[1], b[in[0]], b[out[0]]);
        break;
    case SC_OP_L2NORM_BWD:
        sc_ref_l2norm_bwd(x->shape[0], x->shape[1], b[in[0]], b[in[1]], b[out[0]]);
        break;
    case SC_OP_NTXENT:
        b[out[0]][0] = sc_ref_ntxent(x->shape[0], x->shape[1], n->temperature, b[in[0]]);
        break;
    case SC_OP_SOFTMAX_XENT:
        b[out[0]][0] = sc_ref_softmax_xent(x->shape[0], x->shape[1], b[in[0]], b[in[1]]);
        break;
    case SC_OP_SOFTMAX_XENT_BWD:
        sc_ref_softmax_xent_bwd(x->shape[0], x->shape[1], b[in[0]], b[in[1]], b[out[0]]);
        break;
    case SC_OP_NTXENT_BWD:
        sc_ref_ntxent_bwd(x->shape[0], x->shape[1], n->temperature, b[in[0]], b[out[0]]);
        break;
    case SC_OP_BARLOW:
        b[out[0]][0] = sc_ref_barlow(x->shape[0], x->shape[1], n->coef, b[in[0]]);
        break;
    case SC_OP_BARLOW_BWD:
        sc_ref_barlow_bwd(x->shape[0], x->shape[1], n->coef, b[in[0]], b[out[0]]);
        break;
    case SC_OP_VICREG:
        b[out[0]][0] = sc_ref_vicreg(x->shape[0], x->shape[1], n->coef, b[in[0]]);
        break;
    case SC_OP_VICREG_BWD:
        sc_ref_vicreg_bwd(x->shape[0], x->shape[1], n->coef, b[in[0]], b[out[0]]);
        break;
    case SC_OP_BATCHNORM_RELU:
        if (n->nin > 3) {
            sc_ref_batchnorm_stats(x->shape[0], x->shape[1], per_channel(x), n->eps, b[in[0]], b[in[3]],
                                   b[in[1]], b[in[2]], b[out[0]], b[out[1]], b[out[2]]);
            sc_ref_relu(x->numel, b[out[0]], b[out[0]]);
            break;
        }
        sc_ref_batchnorm_relu(x->shape[0], x->shape[1], per_channel(x), n->eps, b[in[0]], b[in[1]],
                              b[in[2]], b[out[0]], b[out[1]], b[out[2]]);
        break;
    case SC_OP_ADD_RELU:
        sc_ref_add_relu(x->numel, b[in[0]], b[in[1]], b[out[0]]);
        break;
    case SC_OP_BATCHNORM_ADD_RELU: /* (x, gamma, beta, r [, stats]) */
        if (n->nin > 4) {
            sc_ref_batchnorm_stats(x->shape[0], x->shape[1], per_channel(x), n->eps, b[in[0]], b[in[4]],
                                   b[in[1]], b[in[2]], b[out[0]], b[out[1]], b[out[2]]);
            sc_ref_add_relu(x->numel, b[out[0]], b[in[3]], b[out[0]]);
            break;
        }
        sc_ref_batchnorm_add_relu(x->shape[0], x->shape[1], per_channel(x), n->eps, b[in[0]], b[in[1]],
                                  b[in[2]], b[in[3]], b[out[0]], b[out[1]], b[out[2]]);
        break;
    case SC_OP_BATCHNORM_RELU_BWD: /* (dy, y, x, gamma, mean, var) -> (dx, dgamma, dbeta) */
        sc_ref_batchnorm_relu_bwd(x->shape[0], x->shape[1], per_channel(x), n->eps, b[in[0]], b[in[1]],
                                  b[in[2]], b[in[3]], b[in[4]], b[in[5]], b[out[0]], b[out[1]],
                                  b[out[2]]);
        break;
    case SC_OP_ADD_RELU_BWD: /* (a, b, y) -> dx */
        sc_ref_add_relu_bwd(x->numel, b[in[0]], b[in[1]], b[in[2]], b[out[0]]);
        break;
    case SC_OP_BYOL:
        b[out[0]][0] = sc_ref_byol(x->shape[0], x->shape[1], b[in[0]], b[in[1]]);
        break;
    case SC_OP_BYOL_BWD: /* (t) -> dq */
        sc_ref_byol_bwd(x->shape[0], x->shape[1], b[in[0]], b[out[0]]);
        break;
    case SC_OP_COUNT:
        break;
    }
}

void sc_interp_run(sc_interp *it, int from, int to)
{
    for (int i = from; i < to; i++)
        run_node(it, i);
}
