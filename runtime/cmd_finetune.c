/* finetune: supervised fine-tuning of the encoder and a linear classifier
 * (cli.md), from a checkpoint or from the seeded initialisation, through
 * the model's sc_finetune_step (encoder in training mode, classifier,
 * softmax cross-entropy).
 *
 * Recipe: SGD with Nesterov momentum 0.9 at lr 0.05 (torch.optim.SGD), or
 * with --optimizer adam torch.optim.Adam (betas 0.9/0.999, eps 1e-8) at lr
 * 1e-3; optional L2 weight decay on weights, none on biases and batchnorm;
 * the learning rate cosine-decayed from --lr to 0 over the run. SGD is the
 * default because Adam moves every weight by about lr per step whatever
 * its gradient, which scrambles pretrained features while the classifier
 * is still random (from a SimCLR checkpoint, Adam at 1e-3 scored below
 * random initialisation after the first epoch). Light augmentation:
 * random-resized-crop with scale 0.6..1 and ratio 3/4..4/3 to the input
 * size, horizontal flip with p 0.5, then the model's <normalize>. After
 * each epoch the test split is classified from eval-mode features
 * (sc_encode) and the classifier applied here, and a row appended to
 * RUN/finetune.csv (train_log.h). The result is saved as
 * RUN/finetune.safetensors (a checkpoint of kind "finetune" holding the
 * classifier too). RUN is locked while the run lasts (sc_rundir).
 *
 * Everything random is a function of --seed: the classifier's
 * initialisation, the epoch order and every crop and flip, so a
 * pretrained and a random-init run see identical data. */
#define _GNU_SOURCE
#include <errno.h> /* program_invocation_short_name */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cli.h"
#include "commands.h"
#include "sc_abi.h"
#include "sc_parallel.h"
#include "sc_augment.h"
#include "sc_checkpoint.h"
#include "sc_clock.h"
#include "sc_init.h"
#include "sc_model_input.h"
#include "sc_optim.h"
#include "sc_pipeline.h"
#include "sc_rng.h"
#include "sc_rundir.h"
#include "sc_state.h"
#include "sc_stl10.h"
#include "train_log.h"

/* Random streams, tagged in the top four bits as the others are (1-5
 * belong to parameters, inputs, augmentation, shuffling and the probe).
 * The augmentation of image i in epoch e is stream FINETUNE ^ e << 32 ^ i. */
#define STREAM_CLASSIFIER ((uint64_t)6 << 60)
#define STREAM_FINETUNE ((uint64_t)7 << 60)

#define CROP_SCALE_MIN 0.6
#define DEFAULT_EPOCHS 10
#define DEFAULT_LR_SGD 0.05
#define DEFAULT_LR_ADAM 1e-3
#define SGD_MOMENTUM 0.9
#define CSV_HEADER "epoch,step,lr,train_loss,test_accuracy,seconds"

static void usage(FILE *f)
{
    const char *p = program_invocation_short_name;
    fprintf(f,
            "usage: %s finetune --data DIR (--ckpt FILE | --random-init) [options]\n"
            "\n"
            "Supervised fine-tuning of the encoder and a linear classifier on the labeled\n"
            "train split; after every epoch the test split's top-1 accuracy (eval-mode\n"
            "features) is printed and a row added to RUN/finetune.csv. The result is saved\n"
            "as RUN/finetune.safetensors.\n"
            "\n"
            "SGD with Nesterov momentum 0.9 (or Adam), the learning rate cosine-decayed to 0;\n"
            "augmentation: random-resized-crop (scale 0.6..1) and horizontal flip, then the\n"
            "model's normalisation.\n"
            "\n"
            "options:\n"
            "  --data DIR          dataset in the STL-10 binary layout\n"
            "  --ckpt FILE         start from a checkpoint (its classifier too, if it has one)\n"
            "  --random-init       start from the seeded initialisation\n"
            "  --epochs E          epochs (default %d)\n"
            "  --optimizer NAME    sgd (default) or adam\n"
            "  --lr X              peak learning rate (default %g for sgd, %g for adam)\n"
            "  --weight-decay X    L2 weight decay on weights (default 0)\n"
            "  --out RUN           output directory (default run-finetune)\n"
            "  --seed S            seed of the classifier, data order and augmentation (0)\n"
            "  --threads T         OpenBLAS threads (default: OpenBLAS's own choice)\n"
            "  -h, --help          show this help\n"
            "\n"
            "exit status: 0 success, 1 bad input (data, checkpoint, diverged), 2 bad usage,\n"
            "3 internal error\n",
            p, DEFAULT_EPOCHS, DEFAULT_LR_SGD, DEFAULT_LR_ADAM);
}

typedef struct {
    const char *data, *ckpt, *out;
    int random_init;
    uint64_t epochs, seed, threads;
    double lr, weight_decay;
    int optimizer;      /* SC_OPT_SGD or SC_OPT_ADAM */
    int have_lr;
} ft_opts;

/* 0 to go on, or 1 when finetune must exit with *status (cli.h). */
static int parse(int argc, char **argv, ft_opts *o, int *status)
{
    static const char *const optimizers[] = {"sgd", "adam", NULL};
    static const int optimizer_kind[] = {SC_OPT_SGD, SC_OPT_ADAM};
    int which = 0;
    memset(o, 0, sizeof *o);
    o->out = "run-finetune";
    o->epochs = DEFAULT_EPOCHS;
    const sc_opt opts[] = {
        {"data", .kind = SC_OPT_STR, .dest = &o->data, .required = "--data DIR"},
        {"ckpt", .kind = SC_OPT_STR, .dest = &o->ckpt},
        {"random-init", .kind = SC_OPT_FLAG, .dest = &o->random_init},
        {"epochs", .kind = SC_OPT_U64, .dest = &o->epochs, .min = 1, .max = 100000},
        {"lr", .kind = SC_OPT_NUM, .dest = &o->lr, .given = &o->have_lr, .lo = 0, .hi = 1e3},
        {"weight-decay", .kind = SC_OPT_NUM, .dest = &o->weight_decay, .lo = 0, .hi = 1e3},
        {"optimizer", .kind = SC_OPT_CHOICE, .dest = &which, .choices = optimizers},
        {"out", .kind = SC_OPT_STR, .dest = &o->out, .nonempty = 1},
        {"seed", .kind = SC_OPT_U64, .dest = &o->seed, .max = UINT64_MAX},
        {"threads", .kind = SC_OPT_U64, .dest = &o->threads, .min = 1, .max = 1024},
    };
    const sc_cmdline cl = {"finetune", opts, SC_NOPTS(opts), usage, NULL, 0};
    if (sc_cli_parse(&cl, argc, argv, status) || (*status = sc_cli_check_source("finetune", o->ckpt, o->random_init)))
        return 1;
    o->optimizer = optimizer_kind[which];
    if (!o->have_lr)
        o->lr = o->optimizer == SC_OPT_SGD ? DEFAULT_LR_SGD : DEFAULT_LR_ADAM;
    return 0;
}

/* A fine-tuning run: what it reads, what it trains, what it writes. */
typedef struct {
    ft_opts o;
    const sc_model_desc *d;
    sc_state s;
    const sc_param_info *cw, *cb;  /* the classifier's weight and bias */
    int classes, dim, B;           /* classifier outputs, features, batch */
    int have_classifier;           /* from the checkpoint */
    sc_stl10 *train, *test;
    size_t ntr, nte;
    int *ytr, *yte;
    sc_augment_spec spec;
    sc_augment_ws *ws;
    float *input, *fte;            /* a batch (images, then labels); test features */
    uint32_t *perm;
    uint8_t *pix;
    sc_param_info *table;          /* the optimised tensors */
    sc_optim *opt;                 /* NULL until the first step */
    sc_rundir run;
    sc_train_log csv;
    int have_csv;
    char csv_path[PATH_MAX], ckpt_path[PATH_MAX];
    int64_t spe;                   /* steps per epoch */
    sc_lr_schedule sched;
} finetune;

/* Top-1 accuracy of the classifier W [classes, dim], b on feature rows. */
static double classify(const float *w, const float *b, int classes, const float *x, size_t n, int dim,
                       const int *y)
{
    size_t right = 0;
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * (size_t)dim;
        int best = 0;
        double bv = -INFINITY;
        for (int k = 0; k < classes; k++) {
            double v = b[k];
            for (int j = 0; j < dim; j++)
                v += (double)w[(size_t)k * (size_t)dim + (size_t)j] * row[j];
            if (v > bv) {
                bv = v;
                best = k;
            }
        }
        right += best == y[i];
    }
    return n ? (double)right / (double)n : 0.0;
}

/* Finds the fine-tuning table's classifier weight and bias: the entries
 * after the SimCLR parameters, named classifier.weight and .bias. */
static int classifier_entries(const sc_model_desc *d, const sc_param_info **w, const sc_param_info **b)
{
    *w = *b = NULL;
    for (int i = d->nparams; i < d->nft_params; i++) {
        if (!strcmp(d->ft_params[i].name, "classifier.weight"))
            *w = &d->ft_params[i];
        else if (!strcmp(d->ft_params[i].name, "classifier.bias"))
            *b = &d->ft_params[i];
    }
    if (!*w || !*b || (*w)->ndim != 2 || (*w)->shape[1] != d->feature_dim || (*b)->numel != (*w)->shape[0])
        return -1;
    return 0;
}

/* The classifier's table entries, and that it covers the dataset's classes. */
static int check_classifier(finetune *f)
{
    if (classifier_entries(f->d, &f->cw, &f->cb)) {
        sc_cli_error("the model object lacks a usable classifier (classifier.weight, classifier.bias)");
        return SC_EXIT_INTERNAL;
    }
    f->classes = f->cw->shape[0];
    f->dim = f->d->feature_dim;
    f->B = f->d->finetune_batch;
    if (f->classes < SC_STL10_CLASSES) {
        sc_cli_error("the model's classifier has %d classes; the dataset has %d (recompile with "
                     "--classes %d)", f->classes, SC_STL10_CLASSES, SC_STL10_CLASSES);
        return SC_EXIT_USAGE;
    }
    return 0;
}

/* The classifier comes from the checkpoint when it has one, else from
 * its own stream, the same in every run of a seed. */
static int load_classifier(finetune *f)
{
    const sc_model_desc *d = f->d;
    if (f->o.ckpt) {
        char err[1024];
        int missing = 0;
        int nclass = d->nft_params - d->nparams;
        if (sc_ckpt_load(f->o.ckpt, d, d->ft_params + d->nparams, nclass, f->s.params, f->s.buffers, NULL,
                         NULL, &missing, err, sizeof err)) {
            sc_cli_report(err);
            return SC_EXIT_INPUT;
        }
        f->have_classifier = missing == 0;
        if (missing && missing != nclass) {
            fprintf(stderr, "%s: %s: error: the checkpoint has only part of the classifier\n",
                    program_invocation_short_name, f->o.ckpt);
            return SC_EXIT_INPUT;
        }
    }
    if (!f->have_classifier) {
        sc_rng r;
        sc_rng_seed(&r, f->o.seed, STREAM_CLASSIFIER);
        for (int i = d->nparams; i < d->nft_params; i++) {
            const sc_param_info *p = &d->ft_params[i];
            sc_init_tensor(&r, (sc_init_kind)p->init, p->fan_in, (long)p->numel, f->s.params + p->offset);
        }
    }
    return 0;
}

/* The labeled train and test splits and their labels. */
static int open_data(finetune *f)
{
    char err[1024];
    const char *dir = f->o.data;
    sc_split sp_train = {SC_SPLIT_TRAIN, 0}, sp_test = {SC_SPLIT_TEST, 0};
    if (sc_stl10_open(dir, sp_train, &f->train, err, sizeof err) ||
        sc_stl10_open(dir, sp_test, &f->test, err, sizeof err)) {
        sc_cli_report(err);
        return SC_EXIT_INPUT;
    }
    size_t ntr = f->ntr = sc_stl10_count(f->train), nte = f->nte = sc_stl10_count(f->test);
    if (!nte) {
        sc_cli_error("%s: the test split is empty", dir);
        return SC_EXIT_INPUT;
    }
    if (ntr < (size_t)f->B) {
        sc_cli_error("%s: the train split has %zu images, fewer than one batch (%d)", dir, ntr, f->B);
        return SC_EXIT_INPUT;
    }
    f->ytr = malloc(sizeof *f->ytr * ntr);
    f->yte = malloc(sizeof *f->yte * (nte ? nte : 1));
    if (!f->ytr || !f->yte) {
        sc_cli_error("out of memory");
        return SC_EXIT_INTERNAL;
    }
    for (size_t i = 0; i < ntr + nte; i++) {
        int y = i < ntr ? sc_stl10_label(f->train, i) : sc_stl10_label(f->test, i - ntr);
        if (y < 0 || y >= f->classes) {
            sc_cli_error("%s: image %zu of the %s split has label %d, outside 0..%d", dir,
                         i < ntr ? i : i - ntr, i < ntr ? "train" : "test", y, f->classes - 1);
            return SC_EXIT_INPUT;
        }
        if (i < ntr)
            f->ytr[i] = y;
        else
            f->yte[i - ntr] = y;
    }
    return 0;
}

/* Augmentation: a mild crop and a flip, then the model's normalisation. */
static int make_augment(finetune *f)
{
    char err[1024];
    sc_augment_spec *spec = &f->spec;
    if (sc_desc_augment_spec(f->d, 0, spec, err, sizeof err)) {
        sc_cli_error("%s", err);
        return SC_EXIT_INTERNAL;
    }
    if (spec->nops + 2 > SC_AUGMENT_MAX_OPS) {
        sc_cli_error("the model has too many normalize transforms");
        return SC_EXIT_INTERNAL;
    }
    memmove(spec->ops + 2, spec->ops, sizeof *spec->ops * (size_t)spec->nops);
    memset(spec->ops, 0, sizeof *spec->ops * 2);
    spec->ops[0].kind = SC_AUGMENT_RANDOM_RESIZED_CROP;
    spec->ops[0].size = f->d->in_h;
    spec->ops[0].scale_min = CROP_SCALE_MIN;
    spec->ops[0].scale_max = 1.0;
    spec->ops[0].ratio_min = 3.0 / 4.0;
    spec->ops[0].ratio_max = 4.0 / 3.0;
    spec->ops[1].kind = SC_AUGMENT_HORIZONTAL_FLIP;
    spec->ops[1].p = 0.5;
    spec->nops += 2;
    if (sc_augment_check(spec, SC_STL10_HEIGHT, SC_STL10_WIDTH, err, sizeof err)) {
        sc_cli_error("%s", err);
        return SC_EXIT_INPUT;
    }
    return 0;
}

static int alloc_buffers(finetune *f)
{
    const sc_model_desc *d = f->d;
    const int64_t img = (int64_t)d->in_c * d->in_h * d->in_w;
    f->input = sc_floats_alloc((int64_t)f->B * img + f->B);
    f->fte = malloc(sizeof *f->fte * (f->nte ? f->nte : 1) * (size_t)f->dim);
    f->perm = malloc(sizeof *f->perm * f->ntr);
    f->pix = malloc(SC_STL10_IMAGE_BYTES);
    f->ws = sc_augment_ws_new(&f->spec, SC_STL10_HEIGHT, SC_STL10_WIDTH);
    f->table = malloc(sizeof *f->table * (size_t)d->nft_params);
    if (!f->input || !f->fte || !f->perm || !f->pix || !f->ws || !f->table) {
        sc_cli_error("out of memory");
        return SC_EXIT_INTERNAL;
    }
    return 0;
}

/* RUN, locked, and the CSV log in it. */
static int open_outputs(finetune *f)
{
    char err[1024];
    int r = sc_rundir_open(&f->run, f->o.out, err, sizeof err);
    if (r) {
        sc_cli_report(err);
        return r == SC_RUNDIR_NO_MEMORY ? SC_EXIT_INTERNAL : r == SC_RUNDIR_TOO_LONG ? SC_EXIT_USAGE : SC_EXIT_INPUT;
    }
    if (sc_rundir_path(&f->run, "finetune.csv", f->csv_path, sizeof f->csv_path) ||
        sc_rundir_path(&f->run, "finetune.safetensors", f->ckpt_path, sizeof f->ckpt_path)) {
        sc_cli_error("%s: path too long", f->o.out);
        return SC_EXIT_USAGE;
    }
    sc_rundir_remove_stale(&f->run, "finetune.safetensors");
    if (sc_train_log_open(&f->csv, f->csv_path, CSV_HEADER, -1, err, sizeof err)) {
        sc_cli_report(err);
        return SC_EXIT_INPUT;
    }
    f->have_csv = 1;
    return 0;
}

/* Batch k of the epoch: augmented images, then their labels. */
static void load_batch(finetune *f, uint64_t epoch, int64_t k)
{
    const sc_model_desc *d = f->d;
    const int64_t img = (int64_t)d->in_c * d->in_h * d->in_w;
    for (int i = 0; i < f->B; i++) {
        uint32_t idx = f->perm[k * f->B + i];
        sc_stl10_image_chw(f->train, idx, f->pix);
        sc_rng r;
        sc_rng_seed(&r, f->o.seed, STREAM_FINETUNE ^ (epoch << 32) ^ idx);
        sc_augment_apply(&f->spec, f->pix, SC_STL10_HEIGHT, SC_STL10_WIDTH, f->input + i * img, &r, f->ws);
        f->input[(int64_t)f->B * img + i] = (float)f->ytr[idx];
    }
}

/* The optimizer over the tensors fine-tuning trains: the encoder's and
 * the classifier's (the ABI's roles; the projection head and BYOL's
 * predictor are not used). */
static int new_optimizer(finetune *f)
{
    const sc_model_desc *d = f->d;
    int n = 0;
    for (int i = 0; i < d->nft_params; i++)
        if (d->ft_params[i].role != SC_ROLE_HEAD && d->ft_params[i].role != SC_ROLE_PREDICTOR)
            f->table[n++] = d->ft_params[i];
    char err[1024];
    sc_optim_config oc = {0};
    oc.kind = f->o.optimizer;
    oc.weight_decay = f->o.weight_decay;
    oc.momentum = SGD_MOMENTUM;
    oc.nesterov = 1;
    oc.beta1 = 0.9;
    oc.beta2 = 0.999;
    oc.eps = 1e-8;
    if (!(f->opt = sc_optim_new(&oc, f->table, n, sc_params_alloc_floats(f->d), err, sizeof err))) {
        sc_cli_error("%s", err);
        return SC_EXIT_INTERNAL;
    }
    return 0;
}

/* One step on the batch in f->input: gradients, then the update. */
static int train_step(finetune *f, int64_t step, uint64_t epoch, double *loss_sum)
{
    sc_state *s = &f->s;
    int rc;
    if (!f->opt && (rc = new_optimizer(f)))
        return rc;
    sc_finetune_step(s->params, s->grads, s->buffers, s->arena, f->input, s->loss);
    if (!isfinite(s->loss[0])) {
        sc_cli_error("the loss is not finite at step %lld (epoch %" PRIu64 "): lower --lr", (long long)step,
                     epoch + 1);
        return SC_EXIT_INPUT;
    }
    *loss_sum += s->loss[0];
    sc_optim_step(f->opt, s->params, s->grads, sc_lr_at(&f->sched, step));
    return 0;
}

/* The test split's accuracy after an epoch, printed and logged. */
static int report_epoch(finetune *f, uint64_t epoch, int64_t step, double loss_sum, double t0)
{
    char err[1024];
    const sc_model_desc *d = f->d;
    sc_state *s = &f->s;
    if (sc_encode_split(d, sc_encode, s->params, s->buffers, s->arena, f->test, 0, f->fte, err, sizeof err)) {
        sc_cli_error("%s", err);
        return SC_EXIT_INTERNAL;
    }
    double acc = classify(s->params + f->cw->offset, s->params + f->cb->offset, f->classes, f->fte, f->nte,
                          f->dim, f->yte);
    double secs = sc_now_seconds() - t0, lr_end = sc_lr_at(&f->sched, step);
    double loss = loss_sum / (double)f->spe;
    printf("epoch %" PRIu64 "/%" PRIu64 "  train_loss %.4f  test_accuracy %.4f  lr %.3g  (%.0f s)\n",
           epoch + 1, f->o.epochs, loss, acc, lr_end, secs);
    fflush(stdout);
    if (sc_train_log_row(&f->csv, err, sizeof err, "%" PRIu64 ",%lld,%.6g,%.6f,%.6f,%.1f", epoch + 1,
                         (long long)step, lr_end, loss, acc, secs) ||
        sc_train_log_sync(&f->csv, err, sizeof err)) {
        sc_cli_report(err);
        return SC_EXIT_INPUT;
    }
    return 0;
}

/* Every epoch, then the checkpoint. */
static int run(finetune *f)
{
    const sc_model_desc *d = f->d;
    f->spe = (int64_t)(f->ntr / (size_t)f->B);
    const int64_t total = (int64_t)f->o.epochs * f->spe;
    f->sched = (sc_lr_schedule){SC_SCHED_COSINE, f->o.lr, 0, total};
    printf("fine-tuning %s (%s, classifier %s) on %zu labeled images: %" PRIu64 " epochs of %lld "
           "steps of %d, %s lr %g cosine, weight decay %g\n",
           d->name, f->o.ckpt ? f->o.ckpt : "random initialisation",
           f->have_classifier ? "from the checkpoint" : "initialised", f->ntr, f->o.epochs, (long long)f->spe,
           f->B, f->o.optimizer == SC_OPT_SGD ? "SGD (Nesterov 0.9)" : "Adam", f->o.lr, f->o.weight_decay);
    fflush(stdout);
    double t0 = sc_now_seconds();
    int64_t step = 0;
    int rc;
    for (uint64_t epoch = 0; epoch < f->o.epochs; epoch++) {
        sc_pipeline_permutation(f->o.seed, epoch, f->ntr, f->perm);
        double loss_sum = 0;
        for (int64_t k = 0; k < f->spe; k++, step++) {
            load_batch(f, epoch, k);
            if ((rc = train_step(f, step, epoch, &loss_sum)))
                return rc;
        }
        if ((rc = report_epoch(f, epoch, step, loss_sum, t0)))
            return rc;
    }
    char err[1024];
    sc_ckpt_pos pos = {step, (int64_t)f->o.epochs, f->o.seed, "finetune"};
    if (sc_ckpt_save(f->ckpt_path, d, d->ft_params, d->nft_params, f->s.params, f->s.buffers, NULL, &pos, err,
                     sizeof err)) {
        sc_cli_report(err);
        return SC_EXIT_INPUT;
    }
    printf("wrote %s and %s\n", f->csv_path, f->ckpt_path);
    return 0;
}

static void finetune_free(finetune *f)
{
    if (f->have_csv)
        sc_train_log_close(&f->csv);
    sc_rundir_close(&f->run);
    sc_optim_free(f->opt);
    free(f->table);
    sc_augment_ws_free(f->ws);
    free(f->input);
    free(f->fte);
    free(f->perm);
    free(f->pix);
    free(f->ytr);
    free(f->yte);
    sc_stl10_close(f->train);
    sc_stl10_close(f->test);
    sc_state_free(&f->s);
}

int sc_cmd_finetune(int argc, char **argv)
{
    finetune f;
    memset(&f, 0, sizeof f);
    f.run.lock_fd = -1;
    int rc;
    if (parse(argc, argv, &f.o, &rc))
        return rc;
    if (f.o.threads)
        sc_threads_set((int)f.o.threads);
    f.d = &sc_model;
    if ((rc = sc_cli_state(&f.s)))
        return rc;
    if (!(rc = check_classifier(&f)) && !(rc = sc_cli_load_model(&f.s, f.o.ckpt, f.o.seed)) &&
        !(rc = load_classifier(&f)) && !(rc = open_data(&f)) && !(rc = make_augment(&f)) &&
        !(rc = alloc_buffers(&f)) && !(rc = open_outputs(&f)))
        rc = run(&f);
    finetune_free(&f);
    return rc;
}
