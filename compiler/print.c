/* Readable printers of the graph: --emit=graph and --emit=dot. */
#include "ir.h"
#include "remat.h"

#include <string.h>

void sc_shape_str(const sc_tensor *t, char *buf, int len)
{
    int k = snprintf(buf, (size_t)len, "[");
    for (int i = 0; i < t->ndim && k < len; i++)
        k += snprintf(buf + k, (size_t)(len - k), "%s%d", i ? "," : "", t->shape[i]);
    if (k < len)
        snprintf(buf + k, (size_t)(len - k), "]");
}

/* 11504832 -> "11,504,832" */
static const char *grouped(double v, char *buf)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.0f", v);
    int n = (int)strlen(tmp), k = 0;
    for (int i = 0; i < n; i++) {
        buf[k++] = tmp[i];
        if (tmp[i] != '-' && (n - i - 1) % 3 == 0 && i != n - 1)
            buf[k++] = ',';
    }
    buf[k] = 0;
    return buf;
}

static void print_attrs(const sc_node *n, FILE *f)
{
    switch (n->op) {
    case SC_OP_CONV2D:
    case SC_OP_CONV2D_STATS:
    case SC_OP_CONV2D_BWD_DATA:
    case SC_OP_CONV2D_BWD_WEIGHT:
    case SC_OP_MAXPOOL:
    case SC_OP_MAXPOOL_BWD:
    case SC_OP_AVGPOOL:
    case SC_OP_AVGPOOL_BWD:
        fprintf(f, " kernel=%d stride=%d pad=%d", n->kernel, n->stride, n->pad);
        if (n->groups > 1)
            fprintf(f, " groups=%d", n->groups);
        if (n->dilation > 1)
            fprintf(f, " dilation=%d", n->dilation);
        break;
    case SC_OP_BATCHNORM:
    case SC_OP_BATCHNORM_EVAL:
    case SC_OP_BATCHNORM_BWD:
    case SC_OP_BATCHNORM_RELU:
    case SC_OP_BATCHNORM_RELU_BWD:
    case SC_OP_BATCHNORM_ADD_RELU:
        fprintf(f, " eps=%g", n->eps);
        break;
    case SC_OP_BN_RUNNING:
        fprintf(f, " momentum=%g", n->momentum);
        break;
    case SC_OP_NTXENT:
    case SC_OP_NTXENT_BWD:
        fprintf(f, " temperature=%g", n->temperature);
        break;
    case SC_OP_LEAKY_RELU:
    case SC_OP_LEAKY_RELU_BWD:
        fprintf(f, " slope=%g", n->slope);
        break;
    case SC_OP_BARLOW:
    case SC_OP_BARLOW_BWD:
        fprintf(f, " lambda=%g scale=%g", n->coef[0], n->coef[1]);
        break;
    case SC_OP_VICREG:
    case SC_OP_VICREG_BWD:
        fprintf(f, " sim=%g std=%g cov=%g eps=%g", n->coef[0], n->coef[1], n->coef[2], n->coef[3]);
        break;
    default:
        break;
    }
}

static void print_node(const sc_graph *g, int i, FILE *f)
{
    const sc_node *n = &g->n[i];
    char sh[64];
    fprintf(f, "  ");
    for (int o = 0; o < n->nout; o++) {
        const sc_tensor *t = &g->t[n->out[o]];
        sc_shape_str(t, sh, sizeof sh);
        fprintf(f, "%s%%%s%s", o ? ", " : "", t->name, sh);
    }
    fprintf(f, "%s%s(", n->nout ? " = " : "", sc_op_name(n->op));
    for (int k = 0; k < n->nin; k++)
        fprintf(f, "%s%%%s", k ? ", " : "", g->t[n->in[k]].name);
    fprintf(f, ")");
    print_attrs(n, f);
    if (n->line)
        fprintf(f, "  ; line %d", n->line);
    fprintf(f, "\n");
}

static double tensor_bytes(const sc_graph *g, sc_tensor_kind kind)
{
    double b = 0;
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].kind == kind)
            b += 4.0 * g->t[i].numel;
    return b;
}

void sc_graph_print(const sc_graph *g, FILE *f)
{
    char a[48], b[48], sh[64];
    const sc_tensor *in = &g->t[g->input];
    sc_shape_str(in, sh, sizeof sh);
    fprintf(f, "graph %s: batch %d (%d views), input %%%s%s\n", g->name, g->batch,
            2 * g->batch, in->name, sh);

    fprintf(f, "\nparameters (%d tensors, %s values):\n", g->nparams,
            grouped((double)sc_graph_param_count(g), a));
    for (int i = 0; i < g->nparams; i++) {
        const sc_tensor *t = &g->t[g->params[i]];
        sc_shape_str(t, sh, sizeof sh);
        fprintf(f, "  %%%s%s%s\n", t->name, sh, t->no_decay ? " no-decay" : "");
    }
    if (g->nbuffers) {
        long nb = 0;
        for (int i = 0; i < g->nbuffers; i++)
            nb += g->t[g->buffers[i]].numel;
        fprintf(f, "buffers (%d tensors, %s values)\n", g->nbuffers, grouped((double)nb, a));
    }

    double ff = 0, fb = 0;
    fprintf(f, "\nforward:\n");
    for (int i = 0; i < g->nn; i++) {
        if (i == g->nfwd)
            fprintf(f, "\nbackward:\n");
        print_node(g, i, f);
        if (i < g->nfwd)
            ff += sc_node_flops(g, i);
        else if (!sc_remat_is_copy(g, i))
            fb += sc_node_flops(g, i);
    }

    fprintf(f, "\nsummary:\n");
    fprintf(f, "  parameters: %s\n", grouped((double)sc_graph_param_count(g), a));
    fprintf(f, "  FLOPs per training step: %s (forward %s, backward %s)\n",
            grouped(ff + fb, a), grouped(ff, b), grouped(fb, sh));
    fprintf(f, "  nodes: %d forward, %d backward; tensors: %d\n", g->nfwd, g->nn - g->nfwd, g->nt);
    /* What fusion made, by op: each fused node stands for two. */
    int counts[SC_OP_COUNT] = {0}, any = 0;
    for (int i = 0; i < g->nn; i++)
        if (sc_op_is_fused(g->n[i].op))
            counts[g->n[i].op]++;
    for (int op = 0; op < SC_OP_COUNT; op++)
        any |= counts[op] > 0;
    if (any) {
        fprintf(f, "  fused nodes:");
        for (int op = 0; op < SC_OP_COUNT; op++)
            if (counts[op])
                fprintf(f, " %s %d", sc_op_name((sc_opkind)op), counts[op]);
        fprintf(f, "\n");
    }
    fprintf(f, "  activation bytes (f32): forward %s, backward %s\n",
            grouped(tensor_bytes(g, SC_T_ACT) + tensor_bytes(g, SC_T_INPUT), a),
            grouped(tensor_bytes(g, SC_T_GRAD), b));
}

/* Graphviz: ops as boxes, tensors as edges between them; parameters and the
 * input as small ellipses. */
void sc_graph_print_dot(const sc_graph *g, FILE *f)
{
    char sh[64];
    fprintf(f, "digraph \"%s\" {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n", g->name);
    for (int i = 0; i < g->nt; i++) {
        const sc_tensor *t = &g->t[i];
        if (t->producer >= 0)
            continue;
        sc_shape_str(t, sh, sizeof sh);
        fprintf(f, "  t%d [shape=ellipse, label=\"%s\\n%s\", style=filled, fillcolor=\"%s\"];\n", i,
                t->name, sh, t->kind == SC_T_PARAM ? "#e8f0ff" : t->kind == SC_T_BUFFER ? "#f0f0f0" : "#fff0d0");
    }
    for (int i = 0; i < g->nn; i++) {
        const sc_node *n = &g->n[i];
        fprintf(f, "  n%d [shape=box, style=filled, fillcolor=\"%s\", label=\"%s\\n%s\"];\n", i,
                i < g->nfwd ? "#d8f0d8" : "#f8dada", sc_op_name(n->op), n->label);
    }
    for (int i = 0; i < g->nn; i++) {
        const sc_node *n = &g->n[i];
        for (int k = 0; k < n->nin; k++) {
            const sc_tensor *t = &g->t[n->in[k]];
            sc_shape_str(t, sh, sizeof sh);
            if (t->producer >= 0)
                fprintf(f, "  n%d -> n%d [label=\"%s\"];\n", t->producer, i, sh);
            else
                fprintf(f, "  t%d -> n%d;\n", n->in[k], i);
        }
    }
    /* The results: the loss and every parameter's gradient. */
    for (int i = 0; i < g->nt; i++) {
        const sc_tensor *t = &g->t[i];
        int result = t->kind == SC_T_LOSS;
        for (int p = 0; p < g->nparams && !result; p++)
            result = g->t[g->params[p]].grad == i;
        if (!result || t->producer < 0)
            continue;
        sc_shape_str(t, sh, sizeof sh);
        fprintf(f, "  t%d [shape=ellipse, label=\"%s\\n%s\"];\n  n%d -> t%d;\n", i, t->name, sh,
                t->producer, i);
    }
    fprintf(f, "}\n");
}
