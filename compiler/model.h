/* The model description: what the XML front end reads (model.c).
 *
 * This is a plain tree of what the file says, with every element's source
 * line, so that later stages (build.c's shape inference) can report
 * FILE:LINE errors. Defaults from model-format.md are already filled in. */
#ifndef SC_MODEL_H
#define SC_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SC_L_CONV,
    SC_L_BATCHNORM,
    SC_L_RELU,
    SC_L_MAXPOOL,
    SC_L_AVGPOOL,
    SC_L_GLOBAL_AVGPOOL,
    SC_L_FLATTEN,
    SC_L_LINEAR,
    SC_L_RESIDUAL,
    SC_L_STAGE,
    SC_L_SILU,
    SC_L_GELU,
    SC_L_LEAKY_RELU
} sc_layer_kind;

typedef struct sc_layer sc_layer;

typedef struct {
    sc_layer *items;
    int n;
} sc_layer_list;

struct sc_layer {
    sc_layer_kind kind;
    int line;
    char name[64];        /* "" when the file gives none */
    /* conv, maxpool, avgpool */
    int filters, kernel, stride, pad;
    int bias;             /* conv (default 0), linear (default 1) */
    int groups, dilation; /* conv (default 1 each) */
    /* batchnorm */
    double momentum, eps;
    /* linear */
    int units;
    /* leaky-relu: y = slope x for x <= 0 (default 0.01) */
    double slope;
    /* residual: out = act(body(x) + shortcut(x)); shortcut empty = identity */
    int relu_after;
    sc_layer_list body, shortcut;
    /* stage */
    int bottleneck, blocks, expansion;
    int width;            /* bottleneck: base width per group (default 64); groups above */
};

typedef enum {
    SC_AUG_RANDOM_RESIZED_CROP,
    SC_AUG_HORIZONTAL_FLIP,
    SC_AUG_COLOR_JITTER,
    SC_AUG_GRAYSCALE,
    SC_AUG_GAUSSIAN_BLUR,
    SC_AUG_NORMALIZE
} sc_aug_kind;

typedef struct {
    sc_aug_kind kind;
    int line;
    double p;                         /* flip, jitter, grayscale, blur */
    int size;                         /* crop */
    double scale_min, scale_max, ratio_min, ratio_max;
    double brightness, contrast, saturation, hue;
    int kernel;                       /* blur */
    double sigma_min, sigma_max;
    double mean[3], std[3];
} sc_aug;

typedef enum { SC_OPT_SGD, SC_OPT_ADAM, SC_OPT_ADAMW, SC_OPT_LARS } sc_optimizer;
typedef enum { SC_SCHED_CONSTANT, SC_SCHED_COSINE } sc_schedule;

typedef struct {
    int line;
    int batch, epochs;
    sc_optimizer optimizer;
    double lr;
    int lr_scaling_linear;
    double momentum, weight_decay;
    int warmup_epochs;
    sc_schedule schedule;
    uint64_t seed;
} sc_train;

/* The objective (<loss type=...>). */
typedef enum {
    SC_LOSS_NTXENT,        /* temperature */
    SC_LOSS_BARLOW,        /* loss_coef: SC_BARLOW_* */
    SC_LOSS_VICREG,        /* loss_coef: SC_VICREG_* */
    SC_LOSS_BYOL,          /* tau_base, predictor */
} sc_loss_kind;

/* Slots of loss_coef (and of sc_node.coef) for each loss kind. */
enum { SC_BARLOW_LAMBDA, SC_BARLOW_SCALE };
enum { SC_VICREG_SIM, SC_VICREG_STD, SC_VICREG_COV, SC_VICREG_EPS };
#define SC_LOSS_COEFS 4

typedef struct {
    char *path;               /* as given on the command line */
    char *text;               /* the whole file, for checkpoint metadata */
    char name[128];
    int line;                 /* of <simclr> */
    int in_c, in_h, in_w, input_line;
    sc_layer_list encoder, head;
    int encoder_line, head_line;
    sc_loss_kind loss_kind;
    double temperature;       /* nt-xent */
    double loss_coef[SC_LOSS_COEFS]; /* barlow-twins, vicreg: see sc_loss_kind */
    int loss_line;
    /* byol: the online network's predictor (an MLP like the head) and the
     * target network's EMA base rate */
    sc_layer_list predictor;
    int predictor_line;
    double tau_base;
    sc_aug *augs;
    int naugs;
    sc_train train;
} sc_spec;

/* Reads, schema-validates and checks PATH. On error prints
 * "simclrc: FILE:LINE: error: MESSAGE" lines to stderr and returns -1;
 * the model is then empty and safe to free. */
int sc_model_load(const char *path, sc_spec *m);
void sc_model_free(sc_spec *m);

const char *sc_layer_kind_name(sc_layer_kind k);
/* "TYPE, NAME VALUE, ..." of the spec's <loss>, e.g. "nt-xent, temperature 0.5". */
void sc_loss_describe(const sc_spec *m, char *buf, size_t len);

#endif
