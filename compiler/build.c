/* Model description -> forward graph: shape inference, the semantic checks
 * that need shapes, and canonical parameter naming (see ir.h).
 *
 * Every layer function takes the tensor it reads and returns the tensor it
 * writes, or -1 after reporting an error at the layer's line. Activations
 * are named after the layer prefix that made them, so that a graph dump
 * reads like the model file; parameters follow PyTorch's state_dict names. */
#include "build.h"

#include "diag.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest tensor the compiler accepts, in elements: far beyond any sane
 * model, but it keeps every size product inside 64 bits. */
#define MAX_NUMEL (1LL << 40)
/* Largest forward graph, in tensors: a ResNet-1001 needs about 10,000. A
 * stage of two billion blocks stops here, not when memory runs out. */
#define MAX_TENSORS 100000
#define INDEX_SLOTS (1 << 18) /* power of two, > 2 x MAX_TENSORS */

typedef struct {
    const sc_spec *m;
    sc_graph *g;
    int n;      /* views per step, 2 x batch */
    sc_role role; /* of the parameters and buffers being built: the list's */
    const char *ns; /* prefix of every name ("" or "target.", BYOL's target network) */
    int *index; /* open-addressing hash of tensor names: tensor index + 1, 0 free */
} builder;

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot holding name, or the free slot where it would go. */
static int *index_slot(builder *b, const char *name)
{
    uint32_t i = hash_name(name) & (INDEX_SLOTS - 1);
    while (b->index[i] && strcmp(b->g->t[b->index[i] - 1].name, name))
        i = (i + 1) & (INDEX_SLOTS - 1);
    return &b->index[i];
}

static int fail(builder *b, int line, const char *fmt, ...) SC_PRINTF(3, 4);
static int fail(builder *b, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sc_error_at(b->m->path, line, "%s", msg);
    return -1;
}

/* "[512,64,48,48]" */
static const char *dims(const sc_tensor *t, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = 0;
    k += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%d", i ? "," : "", t->shape[i]);
    if (k < len)
        snprintf(buf + k, len - k, "]");
    return buf;
}

/* Adds tensor PREFIX SUFFIX, refusing names that are too long or taken (a
 * layer name may collide with a positional prefix such as encoder.1). */
static int tensor(builder *b, const char *prefix, const char *suffix,
                  sc_tensor_kind kind, int ndim, const long long *shape, int line)
{
    char name[SC_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s%s", prefix, suffix);
    if (len < 0 || len >= (int)sizeof name)
        return fail(b, line, "the tensor name '%s%s' is longer than %d characters",
                    prefix, suffix, SC_NAME_MAX - 1);
    if (b->g->nt >= MAX_TENSORS)
        return fail(b, line, "the model is too large: more than %d tensors", MAX_TENSORS);
    int *slot = index_slot(b, name);
    int old = *slot - 1;
    if (old >= 0) {
        if (b->g->t[old].line > 0)
            return fail(b, line, "the name '%s' is already used by the layer on line %d",
                        name, b->g->t[old].line);
        return fail(b, line, "the name '%s' is reserved", name);
    }
    long long numel = 1;
    int s[SC_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || shape[i] > 0x7fffffff || shape[i] > MAX_NUMEL / numel)
            return fail(b, line, "the tensor '%s' would be too large", name);
        numel *= shape[i];
        s[i] = (int)shape[i];
    }
    int t = sc_graph_tensor(b->g, name, kind, ndim, s, line);
    *slot = t + 1;
    if (kind == SC_T_PARAM || kind == SC_T_BUFFER)
        b->g->t[t].role = b->role;
    return t;
}

/* A parameter: weights decay, biases and batchnorm parameters do not. */
static int param(builder *b, const char *prefix, const char *suffix, int ndim,
                 const long long *shape, sc_init_kind init, long long fan_in,
                 int no_decay, int line)
{
    /* The target network's parameters are state, not trained: its EMA
     * (sc_ema.h) is initialised from the online network, not drawn. */
    int target = b->role == SC_ROLE_TARGET;
    int p = tensor(b, prefix, suffix, target ? SC_T_BUFFER : SC_T_PARAM, ndim, shape, line);
    if (p < 0)
        return -1;
    if (target)
        return p;
    if (fan_in > 0x7fffffff)
        return fail(b, line, "the fan-in of '%s%s' would be too large", prefix, suffix);
    b->g->t[p].init = init;
    b->g->t[p].fan_in = (int)fan_in;
    b->g->t[p].no_decay = no_decay;
    return p;
}

static int node(builder *b, sc_opkind op, const int *in, int nin, const int *out,
                int nout, int line, const char *label)
{
    return sc_graph_node(b->g, op, in, nin, out, nout, line, label);
}

/* a x b for sizes (>= 0), saturating instead of overflowing. */
static long long mul_sat(long long a, long long b)
{
    if (a > 0 && b > LLONG_MAX / a)
        return LLONG_MAX;
    return a * b;
}

/* Output size of a window sliding over n (+ padding on both sides) with
 * PyTorch's floor rounding; < 1 when the kernel does not fit. */
static long long window_out(long long n, int k, int s, int p)
{
    long long span = n + 2LL * p - k;
    if (span < 0)
        return span / s - (span % s != 0) + 1; /* floor division */
    return span / s + 1;
}

/* Shared by conv and pools: the input must be 4-D and the window must fit. */
static int window_check(builder *b, const char *what, int x, int k, int s, int p,
                        int line, long long *oh, long long *ow)
{
    const sc_tensor *t = &b->g->t[x];
    char buf[96];
    if (t->ndim != 4)
        return fail(b, line, "%s needs a 4-D input [N,C,H,W], but gets %s", what,
                    dims(t, buf, sizeof buf));
    int h = t->shape[2], w = t->shape[3];
    *oh = window_out(h, k, s, p);
    *ow = window_out(w, k, s, p);
    if (*oh < 1 || *ow < 1)
        return fail(b, line,
                    "%s kernel %d is larger than the padded input %lldx%lld (%dx%d, pad %d): "
                    "the output size would be %lldx%lld",
                    what, k, h + 2LL * p, w + 2LL * p, h, w, p, *oh, *ow);
    return 0;
}

/* ------------------------------------------------------------ layers */

/* A convolution of G groups (input and output channels divisible by G)
 * with taps dil apart: its window spans dil*(k-1)+1 pixels. */
static int conv_grouped(builder *b, const char *prefix, int x, int filters, int k, int s,
                        int p, int bias, int groups, int dil, int line)
{
    long long oh, ow;
    if (b->g->t[x].ndim == 4 && (groups < 1 || b->g->t[x].shape[1] % groups || filters % groups))
        return fail(b, line, "conv groups %d must divide its input channels %d and its filters %d",
                    groups, b->g->t[x].shape[1], filters);
    long long span = (long long)dil * (k - 1) + 1;
    if (dil < 1 || span > INT_MAX)
        return fail(b, line, "conv dilation %d with kernel %d spans %lld pixels, out of range",
                    dil, k, span);
    if (window_check(b, "conv", x, (int)span, s, p, line, &oh, &ow) < 0)
        return -1;
    long long n = b->g->t[x].shape[0], c = b->g->t[x].shape[1] / groups;
    long long fan_in = mul_sat(mul_sat(c, k), k);
    long long ws[4] = {filters, c, k, k}, bs[1] = {filters};
    int in[3] = {x, -1, -1};
    in[1] = param(b, prefix, ".weight", 4, ws, SC_INIT_KAIMING_UNIFORM, fan_in, 0, line);
    if (in[1] < 0)
        return -1;
    if (bias) {
        in[2] = param(b, prefix, ".bias", 1, bs, SC_INIT_FAN_IN_UNIFORM, fan_in, 1, line);
        if (in[2] < 0)
            return -1;
    }
    long long ys[4] = {n, filters, oh, ow};
    int y = tensor(b, prefix, "", SC_T_ACT, 4, ys, line);
    if (y < 0)
        return -1;
    int i = node(b, SC_OP_CONV2D, in, bias ? 3 : 2, &y, 1, line, prefix);
    b->g->n[i].kernel = k;
    b->g->n[i].stride = s;
    b->g->n[i].pad = p;
    b->g->n[i].groups = groups;
    b->g->n[i].dilation = dil;
    return y;
}

static int conv(builder *b, const char *prefix, int x, int filters, int k, int s,
                int p, int bias, int line)
{
    return conv_grouped(b, prefix, x, filters, k, s, p, bias, 1, 1, line);
}

static int batchnorm(builder *b, const char *prefix, int x, double momentum,
                     double eps, int line)
{
    const sc_tensor *t = &b->g->t[x];
    char buf[96];
    if (t->ndim != 4 && t->ndim != 2)
        return fail(b, line, "batchnorm needs a 4-D [N,C,H,W] or 2-D [N,C] input, but gets %s",
                    dims(t, buf, sizeof buf));
    int ndim = t->ndim;
    long long shape[4], cs[1] = {t->shape[1]};
    for (int i = 0; i < ndim; i++)
        shape[i] = t->shape[i];
    int gamma = param(b, prefix, ".weight", 1, cs, SC_INIT_ONES, 0, 1, line);
    int beta = gamma < 0 ? -1 : param(b, prefix, ".bias", 1, cs, SC_INIT_ZEROS, 0, 1, line);
    int rmean = beta < 0 ? -1 : tensor(b, prefix, ".running_mean", SC_T_BUFFER, 1, cs, line);
    int rvar = rmean < 0 ? -1 : tensor(b, prefix, ".running_var", SC_T_BUFFER, 1, cs, line);
    if (rvar < 0)
        return -1;
    b->g->t[rmean].init = SC_INIT_ZEROS;
    b->g->t[rvar].init = SC_INIT_ONES;
    int y = tensor(b, prefix, "", SC_T_ACT, ndim, shape, line);
    int mean = y < 0 ? -1 : tensor(b, prefix, ".mean", SC_T_ACT, 1, cs, line);
    int var = mean < 0 ? -1 : tensor(b, prefix, ".var", SC_T_ACT, 1, cs, line);
    if (var < 0)
        return -1;
    int in[3] = {x, gamma, beta}, out[3] = {y, mean, var};
    int i = node(b, SC_OP_BATCHNORM, in, 3, out, 3, line, prefix);
    b->g->n[i].eps = eps;
    b->g->n[i].momentum = momentum;
    int rin[4] = {mean, var, rmean, rvar};
    i = node(b, SC_OP_BN_RUNNING, rin, 4, NULL, 0, line, prefix);
    b->g->n[i].eps = eps;
    b->g->n[i].momentum = momentum;
    return y;
}

/* An op whose output has the shape of its input (relu). */
static int same_shape(builder *b, sc_opkind op, const char *prefix, const char *suffix,
                      const int *in, int nin, int line)
{
    const sc_tensor *t = &b->g->t[in[0]];
    long long shape[SC_MAX_DIMS];
    int ndim = t->ndim;
    for (int i = 0; i < ndim; i++)
        shape[i] = t->shape[i];
    int y = tensor(b, prefix, suffix, SC_T_ACT, ndim, shape, line);
    if (y < 0)
        return -1;
    node(b, op, in, nin, &y, 1, line, prefix);
    return y;
}

static int relu(builder *b, const char *prefix, const char *suffix, int x, int line)
{
    return same_shape(b, SC_OP_RELU, prefix, suffix, &x, 1, line);
}

/* silu, gelu, leaky-relu: elementwise like relu; leaky-relu's slope rides
 * on the node. */
static int activation(builder *b, const sc_layer *l, const char *prefix, int x)
{
    sc_opkind op = l->kind == SC_L_SILU   ? SC_OP_SILU
                   : l->kind == SC_L_GELU ? SC_OP_GELU
                                          : SC_OP_LEAKY_RELU;
    int y = same_shape(b, op, prefix, "", &x, 1, l->line);
    if (y >= 0)
        b->g->n[b->g->t[y].producer].slope = l->slope;
    return y;
}

static int pool(builder *b, const sc_layer *l, const char *prefix, int x)
{
    const char *what = sc_layer_kind_name(l->kind);
    if (l->pad > l->kernel / 2)
        return fail(b, l->line,
                    "%s pad %d is more than half the kernel %d (PyTorch rejects it)",
                    what, l->pad, l->kernel);
    long long oh, ow;
    if (window_check(b, what, x, l->kernel, l->stride, l->pad, l->line, &oh, &ow) < 0)
        return -1;
    const sc_tensor *t = &b->g->t[x];
    long long ys[4] = {t->shape[0], t->shape[1], oh, ow};
    int y = tensor(b, prefix, "", SC_T_ACT, 4, ys, l->line);
    if (y < 0)
        return -1;
    int i = node(b, l->kind == SC_L_MAXPOOL ? SC_OP_MAXPOOL : SC_OP_AVGPOOL, &x, 1, &y, 1,
                 l->line, prefix);
    b->g->n[i].kernel = l->kernel;
    b->g->n[i].stride = l->stride;
    b->g->n[i].pad = l->pad;
    return y;
}

static int global_avgpool(builder *b, const char *prefix, int x, int line)
{
    const sc_tensor *t = &b->g->t[x];
    char buf[96];
    if (t->ndim != 4)
        return fail(b, line, "global-avgpool needs a 4-D input [N,C,H,W], but gets %s",
                    dims(t, buf, sizeof buf));
    long long ys[2] = {t->shape[0], t->shape[1]};
    int y = tensor(b, prefix, "", SC_T_ACT, 2, ys, line);
    if (y < 0)
        return -1;
    node(b, SC_OP_GLOBAL_AVGPOOL, &x, 1, &y, 1, line, prefix);
    return y;
}

static int flatten(builder *b, const char *prefix, int x, int line)
{
    const sc_tensor *t = &b->g->t[x];
    char buf[96];
    if (t->ndim == 2)
        return x; /* already [N, D]: nothing to do */
    if (t->ndim != 4)
        return fail(b, line, "flatten needs a 4-D input [N,C,H,W], but gets %s",
                    dims(t, buf, sizeof buf));
    long long ys[2] = {t->shape[0], (long long)t->shape[1] * t->shape[2] * t->shape[3]};
    int y = tensor(b, prefix, "", SC_T_ACT, 2, ys, line);
    if (y < 0)
        return -1;
    node(b, SC_OP_RESHAPE, &x, 1, &y, 1, line, prefix);
    return y;
}

static int linear(builder *b, const sc_layer *l, const char *prefix, int x)
{
    const sc_tensor *t = &b->g->t[x];
    char buf[96];
    if (t->ndim != 2)
        return fail(b, l->line,
                    "linear needs a 2-D input [N,D], but gets the %d-D %s; "
                    "add <flatten/> or <global-avgpool/> before it",
                    t->ndim, dims(t, buf, sizeof buf));
    long long n = t->shape[0], in_f = t->shape[1];
    long long ws[2] = {l->units, in_f}, bs[1] = {l->units};
    int in[3] = {x, -1, -1};
    in[1] = param(b, prefix, ".weight", 2, ws, SC_INIT_KAIMING_UNIFORM, in_f, 0, l->line);
    if (in[1] < 0)
        return -1;
    if (l->bias) {
        in[2] = param(b, prefix, ".bias", 1, bs, SC_INIT_FAN_IN_UNIFORM, in_f, 1, l->line);
        if (in[2] < 0)
            return -1;
    }
    long long ys[2] = {n, l->units};
    int y = tensor(b, prefix, "", SC_T_ACT, 2, ys, l->line);
    if (y < 0)
        return -1;
    node(b, SC_OP_LINEAR, in, l->bias ? 3 : 2, &y, 1, l->line, prefix);
    return y;
}

/* out = act(a + c), checking that the two branches agree. */
static int add_branches(builder *b, const char *prefix, int a, int c, int relu_after,
                        const char *what, int line)
{
    const sc_tensor *ta = &b->g->t[a], *tc = &b->g->t[c];
    int same = ta->ndim == tc->ndim;
    for (int i = 0; same && i < ta->ndim; i++)
        same = ta->shape[i] == tc->shape[i];
    if (!same) {
        char ba[96], bc[96];
        return fail(b, line, "%s: the body gives %s but the shortcut gives %s", what,
                    dims(ta, ba, sizeof ba), dims(tc, bc, sizeof bc));
    }
    int in[2] = {a, c};
    int y = same_shape(b, SC_OP_ADD, prefix, relu_after ? ".add" : "", in, 2, line);
    if (y < 0 || !relu_after)
        return y;
    return relu(b, prefix, "", y, line);
}

/* torchvision's BasicBlock / Bottleneck, number j of a stage at prefix. */
static int block(builder *b, const sc_layer *l, const char *stage, int j, int x)
{
    char p[SC_NAME_MAX], q[SC_NAME_MAX + 32];
    int line = l->line;
    if (snprintf(p, sizeof p, "%s.%d", stage, j) >= (int)sizeof p)
        return fail(b, line, "the layer name '%s' is too long", stage);
    int stride = j == 0 ? l->stride : 1;
    long long in_c = b->g->t[x].shape[1];
    long long out_c = (long long)l->filters * l->expansion;
    if (out_c > 0x7fffffff)
        return fail(b, line, "stage filters x expansion is too large");
    const double mom = 0.1, eps = 1e-5; /* torchvision's BatchNorm2d defaults */
#define SUB(name) (snprintf(q, sizeof q, "%s." name, p), q)
    int h = x;
    if (!l->bottleneck) {
        h = conv(b, SUB("conv1"), h, l->filters, 3, stride, 1, 0, line);
        if (h >= 0) h = batchnorm(b, SUB("bn1"), h, mom, eps, line);
        if (h >= 0) h = relu(b, p, ".relu1", h, line);
        if (h >= 0) h = conv(b, SUB("conv2"), h, l->filters, 3, 1, 1, 0, line);
        if (h >= 0) h = batchnorm(b, SUB("bn2"), h, mom, eps, line);
    } else {
        /* torchvision: width = int(planes * base_width / 64) * groups */
        long long width = mul_sat(mul_sat(l->filters, l->width) / 64, l->groups);
        if (width < 1 || width > 0x7fffffff)
            return fail(b, line, "stage width: filters %d x width %d / 64 x groups %d is %lld, out of range",
                        l->filters, l->width, l->groups, width);
        h = conv(b, SUB("conv1"), h, (int)width, 1, 1, 0, 0, line);
        if (h >= 0) h = batchnorm(b, SUB("bn1"), h, mom, eps, line);
        if (h >= 0) h = relu(b, p, ".relu1", h, line);
        if (h >= 0) h = conv_grouped(b, SUB("conv2"), h, (int)width, 3, stride, 1, 0, l->groups, 1, line);
        if (h >= 0) h = batchnorm(b, SUB("bn2"), h, mom, eps, line);
        if (h >= 0) h = relu(b, p, ".relu2", h, line);
        if (h >= 0) h = conv(b, SUB("conv3"), h, (int)out_c, 1, 1, 0, 0, line);
        if (h >= 0) h = batchnorm(b, SUB("bn3"), h, mom, eps, line);
    }
    if (h < 0)
        return -1;
    int sc = x;
    if (stride != 1 || in_c != out_c) {
        sc = conv(b, SUB("downsample.0"), x, (int)out_c, 1, stride, 0, 0, line);
        if (sc >= 0)
            sc = batchnorm(b, SUB("downsample.1"), sc, mom, eps, line);
        if (sc < 0)
            return -1;
    }
#undef SUB
    return add_branches(b, p, h, sc, 1, "stage block", line);
}

static int build_list(builder *b, const sc_layer_list *list, const char *base, int x);

/* The prefix of item i of a list at base: its name, or base.i. */
static int prefix_of(builder *b, const sc_layer *l, const char *base, int i, char *out)
{
    int len = l->name[0] ? snprintf(out, SC_NAME_MAX, "%s%s", b->ns, l->name)
                         : snprintf(out, SC_NAME_MAX, "%s.%d", base, i);
    if (len < 0 || len >= SC_NAME_MAX)
        return fail(b, l->line, "the layer prefix '%s.%d' is too long (nested too deep)",
                    base, i);
    return 0;
}

static int layer(builder *b, const sc_layer *l, const char *prefix, int x)
{
    switch (l->kind) {
    case SC_L_CONV:
        return conv_grouped(b, prefix, x, l->filters, l->kernel, l->stride, l->pad, l->bias,
                            l->groups, l->dilation, l->line);
    case SC_L_BATCHNORM:
        return batchnorm(b, prefix, x, l->momentum, l->eps, l->line);
    case SC_L_RELU:
        return relu(b, prefix, "", x, l->line);
    case SC_L_SILU:
    case SC_L_GELU:
    case SC_L_LEAKY_RELU:
        return activation(b, l, prefix, x);
    case SC_L_MAXPOOL:
    case SC_L_AVGPOOL:
        return pool(b, l, prefix, x);
    case SC_L_GLOBAL_AVGPOOL:
        return global_avgpool(b, prefix, x, l->line);
    case SC_L_FLATTEN:
        return flatten(b, prefix, x, l->line);
    case SC_L_LINEAR:
        return linear(b, l, prefix, x);
    case SC_L_RESIDUAL: {
        char base[SC_NAME_MAX + 16];
        snprintf(base, sizeof base, "%s.body", prefix);
        int body = build_list(b, &l->body, base, x);
        if (body < 0)
            return -1;
        int sc = x;
        if (l->shortcut.n > 0) {
            snprintf(base, sizeof base, "%s.shortcut", prefix);
            sc = build_list(b, &l->shortcut, base, x);
            if (sc < 0)
                return -1;
        }
        return add_branches(b, prefix, body, sc, l->relu_after, "residual", l->line);
    }
    case SC_L_STAGE: {
        char buf[96];
        if (b->g->t[x].ndim != 4)
            return fail(b, l->line, "stage needs a 4-D input [N,C,H,W], but gets %s",
                        dims(&b->g->t[x], buf, sizeof buf));
        for (int j = 0; j < l->blocks && x >= 0; j++)
            x = block(b, l, prefix, j, x);
        return x;
    }
    }
    return fail(b, l->line, "internal error: unknown layer kind %d", (int)l->kind);
}

static int build_list(builder *b, const sc_layer_list *list, const char *base, int x)
{
    for (int i = 0; i < list->n && x >= 0; i++) {
        char prefix[SC_NAME_MAX];
        if (prefix_of(b, &list->items[i], base, i, prefix) < 0)
            return -1;
        x = layer(b, &list->items[i], prefix, x);
    }
    return x;
}

_Static_assert(sizeof(((sc_node *)0)->coef) == sizeof(((sc_spec *)0)->loss_coef),
               "a node carries the spec's loss coefficients");

/* The objective over the projections x [2N, D]: NT-Xent on the L2
 * normalised rows; Barlow Twins and VICReg on the projections themselves.
 * Returns the loss tensor, or -1. */
static int loss_node(builder *b, int x)
{
    const sc_spec *m = b->m;
    long long ls[1] = {1};
    int z = x;
    if (m->loss_kind == SC_LOSS_NTXENT) {
        long long zs[2] = {b->g->t[x].shape[0], b->g->t[x].shape[1]};
        z = tensor(b, "z_norm", "", SC_T_ACT, 2, zs, m->loss_line);
        if (z < 0)
            return -1;
        node(b, SC_OP_L2NORM, &x, 1, &z, 1, m->loss_line, "loss");
    }
    int loss = tensor(b, "loss", "", SC_T_LOSS, 1, ls, m->loss_line);
    if (loss < 0)
        return -1;
    static const sc_opkind ops[] = {
        [SC_LOSS_NTXENT] = SC_OP_NTXENT, [SC_LOSS_BARLOW] = SC_OP_BARLOW, [SC_LOSS_VICREG] = SC_OP_VICREG};
    int i = node(b, ops[m->loss_kind], &z, 1, &loss, 1, m->loss_line, "loss");
    b->g->n[i].temperature = m->temperature;
    memcpy(b->g->n[i].coef, m->loss_coef, sizeof b->g->n[i].coef);
    return loss;
}

/* l2norm(x) named name, for the loss at the <loss> line. */
static int normalised(builder *b, const char *name, int x)
{
    const sc_tensor *z = &b->g->t[x];
    long long zs[2] = {z->shape[0], z->shape[1]};
    int y = tensor(b, name, "", SC_T_ACT, 2, zs, b->m->loss_line);
    if (y >= 0)
        node(b, SC_OP_L2NORM, &x, 1, &y, 1, b->m->loss_line, "loss");
    return y;
}

/* BYOL, from the online head's output z: the predictor gives q; the
 * target network (the encoder and head again, "target." names, role
 * SC_ROLE_TARGET, buffers) gives t from the same views; the loss pairs
 * each view's q with the other view's t (ir.h, SC_OP_BYOL). Nothing of
 * the target needs a gradient, so autodiff emits no backward for it and
 * memory planning frees its activations once the loss has read t. */
static int build_byol(builder *b, int z)
{
    const sc_spec *m = b->m;
    sc_graph *g = b->g;
    b->role = SC_ROLE_PREDICTOR;
    int q = build_list(b, &m->predictor, "predictor", z);
    b->role = SC_ROLE_TARGET;
    b->ns = "target.";
    int t = q < 0 ? -1 : build_list(b, &m->encoder, "target.encoder", g->input);
    if (t >= 0)
        t = build_list(b, &m->head, "target.head", t);
    b->ns = "";
    b->role = SC_ROLE_NONE;
    if (t < 0)
        return -1;
    const sc_tensor *qt = &g->t[q], *tt = &g->t[t];
    char bq[96], bt[96];
    if (qt->ndim != 2 || tt->ndim != 2 || qt->shape[1] != tt->shape[1])
        return fail(b, m->predictor_line,
                    "the predictor gives %s but the byol loss pairs it with the target's projections %s: "
                    "its last layer needs %d units",
                    dims(qt, bq, sizeof bq), dims(tt, bt, sizeof bt), tt->ndim == 2 ? tt->shape[1] : 0);
    int qn = normalised(b, "q_norm", q);
    int tn = qn < 0 ? -1 : normalised(b, "t_norm", t);
    long long ls[1] = {1};
    int loss = tn < 0 ? -1 : tensor(b, "loss", "", SC_T_LOSS, 1, ls, m->loss_line);
    if (loss < 0)
        return -1;
    int in[2] = {qn, tn};
    node(b, SC_OP_BYOL, in, 2, &loss, 1, m->loss_line, "loss");
    g->loss = loss;
    g->nfwd = g->nn;
    return 0;
}

static int build(builder *b, int batch)
{
    const sc_spec *m = b->m;
    sc_graph *g = b->g;
    int B = batch > 0 ? batch : m->train.batch;
    if (B < 2 || B > (1 << 20))
        return fail(b, batch > 0 ? 0 : m->train.line,
                    "batch %d: NT-Xent needs at least 2 images per step (at most %d)", B,
                    1 << 20);
    if (m->encoder.n == 0)
        return fail(b, m->encoder_line, "the encoder has no layers");
    b->n = 2 * B;
    snprintf(g->name, sizeof g->name, "%s", m->name);
    g->batch = B;

    long long is[4] = {b->n, m->in_c, m->in_h, m->in_w};
    int x = tensor(b, "input", "", SC_T_INPUT, 4, is, m->input_line);
    if (x < 0)
        return -1;
    g->input = x;
    b->role = SC_ROLE_ENCODER;
    x = build_list(b, &m->encoder, "encoder", x);
    g->features = x;
    b->role = SC_ROLE_HEAD;
    if (x >= 0)
        x = build_list(b, &m->head, "head", x);
    if (x < 0)
        return -1;

    if (m->loss_kind == SC_LOSS_BYOL)
        return build_byol(b, x);
    const sc_tensor *z = &g->t[x];
    char buf[96];
    if (z->ndim != 2)
        return fail(b, m->loss_line,
                    "the loss needs 2-D projections [2N,D], but the %s gives the %d-D %s; "
                    "end it with <global-avgpool/> or <flatten/>",
                    m->head.n ? "head" : "encoder", z->ndim, dims(z, buf, sizeof buf));
    int loss = loss_node(b, x);
    if (loss < 0)
        return -1;
    g->loss = loss;
    g->nfwd = g->nn;
    return 0;
}

int sc_build_graph(const sc_spec *m, int batch, sc_graph *g)
{
    builder b = {m, g, 0, SC_ROLE_NONE, "", calloc(INDEX_SLOTS, sizeof(int))};
    if (!b.index)
        return fail(&b, 0, "out of memory");
    /* Names the caller's graph may already hold. */
    for (int i = 0; i < g->nt; i++)
        *index_slot(&b, g->t[i].name) = i + 1;
    int rc = build(&b, batch);
    free(b.index);
    return rc;
}
