/* The graph IR: the only thing the compiler's passes share.
 *
 * A graph is a list of tensors (typed values with static shapes) and a list
 * of nodes (ops) in execution order. Each node reads input tensors and
 * writes output tensors; each tensor has at most one producer. Nodes
 * [0, nfwd) are the forward pass (including the loss), the rest the
 * backward pass that autodiff.c appends.
 *
 * Parameter names are canonical (model-format.md): a layer's prefix is its
 * `name` attribute when it has one, otherwise its position: `encoder.I`,
 * `head.I` (I = index in document order, 0-based), inside a residual
 * `PREFIX.body.K` / `PREFIX.shortcut.K`, and inside a stage block J of a
 * stage at PREFIX, torchvision's names: `PREFIX.J.conv1`, `PREFIX.J.bn1`,
 * ..., `PREFIX.J.downsample.0` (conv), `PREFIX.J.downsample.1` (bn).
 * Parameters are `PREFIX.weight`, `PREFIX.bias`; batchnorm buffers
 * `PREFIX.running_mean`, `PREFIX.running_var`. The gradient of parameter P
 * is the tensor `grad/P`. BYOL adds `predictor.I` and the target network,
 * whose tensors are `target.` + the online encoder's and head's names
 * (buffers of role SC_ROLE_TARGET, sc_ema.h). */
#ifndef SC_IR_H
#define SC_IR_H

#include <stdio.h>

#include "sc_init.h"
#include "sc_role.h"

#define SC_MAX_DIMS 4
#define SC_MAX_IN 6
#define SC_MAX_OUT 3
#define SC_NAME_MAX 128

typedef enum {
    SC_T_INPUT,   /* the batch of 2N views, [2N, C, H, W] */
    SC_T_PARAM,   /* trainable parameter */
    SC_T_BUFFER,  /* persistent non-trainable state (batchnorm running stats) */
    SC_T_ACT,     /* forward activation or saved statistic */
    SC_T_GRAD,    /* gradient flowing backward (param gradients included) */
    SC_T_LOSS     /* the scalar loss, [1] */
} sc_tensor_kind;

typedef struct {
    char name[SC_NAME_MAX];
    sc_tensor_kind kind;
    int ndim;
    int shape[SC_MAX_DIMS];
    long numel;
    int producer;        /* node index, -1 for inputs, params, buffers */
    int line;            /* source line of the layer that made it, 0 if none */
    /* parameters and buffers */
    sc_init_kind init;
    int fan_in;
    int no_decay;        /* biases and batchnorm parameters: no weight decay, no LARS */
    sc_role role;        /* which part of the model made it; SC_ROLE_NONE for the rest */
    int grad;            /* PARAM: index of its gradient tensor, else -1 */
} sc_tensor;

typedef enum {
    /* forward */
    SC_OP_CONV2D,          /* (x, w [, b]) -> y                         */
    SC_OP_BATCHNORM,       /* (x, gamma, beta [, stats]) -> (y, mean, var)   var biased;
                              stats (fuse_stats.c): its input's statistics from the conv2d+stats
                              that made x, merged instead of read from x */
    SC_OP_BN_RUNNING,      /* (mean, var, running_mean, running_var) -> ()  in place */
    SC_OP_RELU,            /* (x) -> y */
    SC_OP_MAXPOOL,         /* (x) -> y */
    SC_OP_AVGPOOL,         /* (x) -> y */
    SC_OP_GLOBAL_AVGPOOL,  /* (x) -> y   [N,C,H,W] -> [N,C] */
    SC_OP_RESHAPE,         /* (x) -> y   same data, new shape (flatten and its gradient) */
    SC_OP_LINEAR,          /* (x, w [, b]) -> y */
    SC_OP_ADD,             /* (a, b) -> y   also sums gradients */
    SC_OP_L2NORM,          /* (x) -> y   rows scaled to unit norm */
    SC_OP_NTXENT,          /* (z) -> loss[1] */
    SC_OP_BATCHNORM_EVAL,  /* (x, gamma, beta, running_mean, running_var) -> y */
    SC_OP_SOFTMAX_XENT,    /* (logits [N,K], labels [N]) -> loss[1]   labels hold class indices */
    /* forward, made by fusion (fuse.c) only */
    SC_OP_BATCHNORM_RELU,  /* (x, gamma, beta [, stats]) -> (y, mean, var)   y = relu(batchnorm(x)) */
    SC_OP_ADD_RELU,        /* (a, b) -> y   y = relu(a + b) */
    /* backward */
    SC_OP_CONV2D_BWD_DATA,   /* (dy, w) -> dx */
    SC_OP_CONV2D_BWD_WEIGHT, /* (dy, x) -> dw */
    SC_OP_BIAS_BWD,          /* (dy) -> db   sum over every dim but 1 */
    SC_OP_BATCHNORM_BWD,     /* (dy, x, gamma, mean, var) -> (dx, dgamma, dbeta) */
    SC_OP_RELU_BWD,          /* (dy, y) -> dx */
    SC_OP_MAXPOOL_BWD,       /* (dy, x) -> dx */
    SC_OP_AVGPOOL_BWD,       /* (dy) -> dx */
    SC_OP_GLOBAL_AVGPOOL_BWD,/* (dy) -> dx */
    SC_OP_LINEAR_BWD_DATA,   /* (dy, w) -> dx */
    SC_OP_LINEAR_BWD_WEIGHT, /* (dy, x) -> dw */
    SC_OP_L2NORM_BWD,        /* (dy, x) -> dx */
    SC_OP_NTXENT_BWD,        /* (z) -> dz   gradient of the loss itself */
    SC_OP_SOFTMAX_XENT_BWD,  /* (logits, labels) -> dlogits   gradient of the loss itself */
    /* backward, made by fusion (fuse.c) only; y is a relu's output */
    SC_OP_BATCHNORM_RELU_BWD,/* (dy, y, x, gamma, mean, var) -> (dx, dgamma, dbeta)
                                batchnorm_bwd of (y > 0 ? dy : 0) */
    SC_OP_ADD_RELU_BWD,      /* (a, b, y) -> dx   dx = y > 0 ? a + b : 0 */
    /* smooth and leaky activations, PyTorch's formulas; their backward
     * reads the forward input x (y does not determine the slope) */
    SC_OP_SILU,              /* (x) -> y   y = x sigmoid(x) */
    SC_OP_GELU,              /* (x) -> y   y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 */
    SC_OP_LEAKY_RELU,        /* (x) -> y   y = x > 0 ? x : slope x */
    SC_OP_SILU_BWD,          /* (dy, x) -> dx */
    SC_OP_GELU_BWD,          /* (dy, x) -> dx */
    SC_OP_LEAKY_RELU_BWD,    /* (dy, x) -> dx   dx = x > 0 ? dy : slope dy */
    /* losses over the statistics of the whole batch; z [2N, D] holds view
     * 0 of every image, then view 1 (z1 = rows [0, N), z2 = [N, 2N));
     * coef holds model.h's SC_BARLOW_* / SC_VICREG_* slots */
    SC_OP_BARLOW,            /* (z) -> loss[1]   Barlow Twins: zvn = z_v standardised per
                                feature (biased variance, eps 1e-5), C = z1n^T z2n / N,
                                scale (sum_i (1 - C_ii)^2 + lambda sum_{i!=j} C_ij^2) */
    SC_OP_VICREG,            /* (z) -> loss[1]   VICReg: sim mean (z1 - z2)^2
                                + std (mean_k relu(1 - std1_k) + mean_k relu(1 - std2_k)) / 2
                                + cov sum_v sum_{i!=j} Cv_ij^2 / D, std_k = sqrt(var_k + eps)
                                (unbiased), Cv = zvc^T zvc / (N - 1) of the centred zv */
    SC_OP_BARLOW_BWD,        /* (z) -> dz   gradient of the loss itself */
    SC_OP_VICREG_BWD,        /* (z) -> dz   gradient of the loss itself */
    /* BYOL (build.c, build_byol): q the online predictor's rows, t the target
     * network's projections, both [2N, D] and l2norm'ed before; row r's
     * partner is p(r) = (r + N) mod 2N, the other view of the image */
    SC_OP_BYOL,              /* (q, t) -> loss[1]   loss = (1/N) sum_r (2 - 2 q_r . t_p(r)) */
    SC_OP_BYOL_BWD,          /* (t) -> dq   dq_r = -(2/N) t_p(r); t gets no gradient */
    /* forward, made by fusion (fuse.c) only: a convolution that also takes
     * its output's batchnorm statistics while the output is in cache */
    SC_OP_CONV2D_STATS,      /* (x, w [, b]) -> (y, stats)   y = conv2d; stats [N, C, 3]: per
                                chunk of images, at the chunk's first image (the other rows'
                                count 0), per channel: count, mean, sum of squared deviations
                                about that mean (refops.h, sc_ref_conv_stats) */
    /* forward, made by fusion (fuse.c) only: a residual block's second
     * batchnorm, its join and the relu in one pass over the output */
    SC_OP_BATCHNORM_ADD_RELU,/* (x, gamma, beta, r [, stats]) -> (y, mean, var)
                                y = relu(batchnorm(x) + r); stats as batchnorm's */
    SC_OP_COUNT
} sc_opkind;

typedef struct {
    sc_opkind op;
    int nin, nout;
    int in[SC_MAX_IN];
    int out[SC_MAX_OUT];
    /* attributes (which ones matter depends on op) */
    int kernel, stride, pad;
    /* convolutions: groups G splits input and output channels into G
     * slices, output slice g reads input slice g only (weight [O, C/G, K, K]);
     * dilation D spaces the kernel taps D apart. Both 1 for a dense conv
     * (sc_graph_node's default). */
    int groups, dilation;
    double eps, momentum, temperature;
    double slope;            /* leaky_relu and its backward: the negative slope */
    double coef[4];          /* barlow, vicreg and their backward: model.h's SC_LOSS_COEFS */
    int line;                /* source line of the layer */
    char label[SC_NAME_MAX]; /* layer prefix, for printing */
} sc_node;

typedef struct {
    sc_tensor *t;
    int nt, capt;
    sc_node *n;
    int nn, capn;
    int nfwd;        /* nodes [0, nfwd) are forward */
    int input;       /* tensor index of the input batch */
    int loss;        /* tensor index of the loss, -1 before build */
    int features;    /* tensor index of the encoder's output [2B, F] */
    int labels;      /* classifier graphs: the labels input [N], else -1 */
    int *params;     /* parameter tensors, canonical order */
    int nparams;
    int *buffers;    /* buffer tensors, canonical order */
    int nbuffers;
    char name[128];
    int batch;       /* images per step; the input holds 2 * batch views */
} sc_graph;

void sc_graph_init(sc_graph *g);
void sc_graph_free(sc_graph *g);

/* Adds a tensor; returns its index. shape has ndim entries. */
int sc_graph_tensor(sc_graph *g, const char *name, sc_tensor_kind kind,
                    int ndim, const int *shape, int line);
/* Adds a node with the given inputs and outputs; returns its index and
 * records it as the producer of its outputs. */
int sc_graph_node(sc_graph *g, sc_opkind op, const int *in, int nin,
                  const int *out, int nout, int line, const char *label);
/* Sets a tensor's name from a format. A name longer than SC_NAME_MAX - 1
 * is an error (exit 1): truncating would make names collide. */
void sc_tensor_rename(sc_tensor *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Looks a tensor up by name; -1 when absent. */
int sc_graph_find(const sc_graph *g, const char *name);

/* Op metadata (ops.c). */
const char *sc_op_name(sc_opkind op);
/* Whether op is made by fusion (fuse.c), not by the builder or autodiff. */
int sc_op_is_fused(sc_opkind op);
/* Floating point operations of one execution of node i (multiply-add = 2). */
double sc_node_flops(const sc_graph *g, int i);
long sc_graph_param_count(const sc_graph *g);

/* Printers (print.c). */
void sc_graph_print(const sc_graph *g, FILE *f);
void sc_graph_print_dot(const sc_graph *g, FILE *f);
void sc_shape_str(const sc_tensor *t, char *buf, int len);

#endif
