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
 * (sc_encode) and the classifier applied here; the rows so far are
 * rewritten atomically into RUN/finetune.csv. The result is saved as
 * RUN/finetune.safetensors (a checkpoint of kind "finetune" holding the
 * classifier too).
 *
 * Everything random is a function of --seed: the classifier's
 * initialisation, the epoch order and every crop and flip, so a
 * pretrained and a random-init run see identical data. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "cli.h"
#include "commands.h"
#include "sc_abi.h"
#include "sc_parallel.h"
#include "sc_augment.h"
#include "sc_checkpoint.h"
#include "sc_init.h"
#include "sc_model_input.h"
#include "sc_optim.h"
#include "sc_pipeline.h"
#include "sc_rng.h"
#include "sc_state.h"
#include "sc_stl10.h"

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

static void usage(FILE *f)
{
    const char *p = program_invocation_short_name;
    fprintf(f,
            "usage: %s finetune --data DIR (--ckpt FILE | --random-init) [options]\n"
            "\n"
            "Supervised fine-tuning of the encoder and a linear classifier on the labeled\n"
            "train split; after every epoch the test split's top-1 accuracy (eval-mode\n"
            "features) is printed and RUN/finetune.csv rewritten. The result is saved as\n"
            "RUN/finetune.safetensors.\n"
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

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    const char *data, *ckpt, *out;
    int random_init;
    uint64_t epochs, seed, threads;
    double lr, weight_decay;
    int optimizer;      /* SC_OPT_SGD or SC_OPT_ADAM */
    int have_lr;
} ft_opts;

static int parse(int argc, char **argv, ft_opts *o)
{
    enum { OPT_DATA = 256, OPT_CKPT, OPT_RANDOM, OPT_EPOCHS, OPT_LR, OPT_WD, OPT_OPTIM, OPT_OUT, OPT_SEED,
           OPT_THREADS };
    static const struct option longopts[] = {
        {"data", required_argument, 0, OPT_DATA},
        {"ckpt", required_argument, 0, OPT_CKPT},
        {"random-init", no_argument, 0, OPT_RANDOM},
        {"epochs", required_argument, 0, OPT_EPOCHS},
        {"lr", required_argument, 0, OPT_LR},
        {"weight-decay", required_argument, 0, OPT_WD},
        {"optimizer", required_argument, 0, OPT_OPTIM},
        {"out", required_argument, 0, OPT_OUT},
        {"seed", required_argument, 0, OPT_SEED},
        {"threads", required_argument, 0, OPT_THREADS},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->out = "run-finetune";
    o->epochs = DEFAULT_EPOCHS;
    o->optimizer = SC_OPT_SGD;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA: o->data = optarg; break;
        case OPT_CKPT: o->ckpt = optarg; break;
        case OPT_RANDOM: o->random_init = 1; break;
        case OPT_EPOCHS:
            if (sc_arg_u64("--epochs", optarg, 1, 100000, &o->epochs))
                return SC_EXIT_USAGE;
            break;
        case OPT_LR:
            if (sc_arg_double("--lr", optarg, 0, 1e3, &o->lr))
                return SC_EXIT_USAGE;
            o->have_lr = 1;
            break;
        case OPT_OPTIM:
            if (!strcmp(optarg, "sgd"))
                o->optimizer = SC_OPT_SGD;
            else if (!strcmp(optarg, "adam"))
                o->optimizer = SC_OPT_ADAM;
            else {
                sc_cli_error("--optimizer must be sgd or adam, not '%s'", optarg);
                return SC_EXIT_USAGE;
            }
            break;
        case OPT_WD:
            if (sc_arg_double("--weight-decay", optarg, 0, 1e3, &o->weight_decay))
                return SC_EXIT_USAGE;
            break;
        case OPT_OUT: o->out = optarg; break;
        case OPT_SEED:
            if (sc_arg_u64("--seed", optarg, 0, UINT64_MAX, &o->seed))
                return SC_EXIT_USAGE;
            break;
        case OPT_THREADS:
            if (sc_arg_u64("--threads", optarg, 1, 1024, &o->threads))
                return SC_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return -1;
        default: return sc_arg_bad_option("finetune", argv, c);
        }
    }
    int rc = sc_cli_check_source("finetune", argc, argv, o->data, o->ckpt, o->random_init);
    if (rc)
        return rc;
    if (!o->have_lr)
        o->lr = o->optimizer == SC_OPT_SGD ? DEFAULT_LR_SGD : DEFAULT_LR_ADAM;
    if (!*o->out) {
        sc_cli_error("--out needs a directory name");
        return SC_EXIT_USAGE;
    }
    return 0;
}

/* mkdir -p. 0, or -1 with errno set. */
static int make_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, 0777) && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, 0777) && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

/* Writes text to path atomically: a temporary file in the same
 * directory, fsync, rename over path, fsync of the directory. */
static int write_atomic(const char *dir, const char *path, const char *text, size_t len, char *err,
                        size_t errlen)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp%ld", path, (long)getpid()) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *what = "cannot create";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666), e = errno;
    size_t off = 0;
    while (fd >= 0 && off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            what = "write failed";
            e = w < 0 ? errno : EIO;
            break;
        }
        off += (size_t)w;
    }
    if (fd >= 0 && off == len) {
        int bad = fsync(fd);
        e = errno;
        bad = close(fd) || bad;
        fd = -1;
        what = "cannot sync";
        if (!bad) {
            what = "cannot rename over the old file";
            if (!rename(tmp, path)) {
                free(tmp);
                int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0) {
                    fsync(dfd);
                    close(dfd);
                }
                return 0;
            }
        }
        e = errno;
    }
    if (fd >= 0)
        close(fd);
    snprintf(err, errlen, "%s: error: %s: %s", path, what, strerror(e));
    unlink(tmp);
    free(tmp);
    return -1;
}

/* A growing text buffer for the CSV. */
typedef struct {
    char *s;
    size_t len, cap;
} text;

static int text_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int text_add(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = (t->cap ? 2 * t->cap : 1024) + (size_t)n;
        char *s = realloc(t->s, cap);
        if (!s)
            return -1;
        t->s = s;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
    return 0;
}

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

int sc_cmd_finetune(int argc, char **argv)
{
    ft_opts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (o.threads)
        sc_threads_set((int)o.threads);
    const char *prog = program_invocation_short_name;
    const sc_model_desc *d = &sc_model;
    char err[1024];
    sc_state s;
    sc_stl10 *train = NULL, *test = NULL;
    sc_optim *opt = NULL;
    sc_param_info *table = NULL;
    sc_augment_ws *ws = NULL;
    float *input = NULL, *fte = NULL;
    uint32_t *perm = NULL;
    uint8_t *pix = NULL;
    int *ytr = NULL, *yte = NULL;
    char *csv_path = NULL, *ckpt_path = NULL;
    text csv = {0};

    if ((rc = sc_cli_state(&s)))
        return rc;
    const sc_param_info *cw, *cb;
    if (classifier_entries(d, &cw, &cb)) {
        sc_cli_error("the model object lacks a usable classifier (classifier.weight, classifier.bias)");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    const int classes = cw->shape[0], dim = d->feature_dim, B = d->finetune_batch;
    if (classes < SC_STL10_CLASSES) {
        sc_cli_error("the model's classifier has %d classes; the dataset has %d (recompile with "
                     "--classes %d)", classes, SC_STL10_CLASSES, SC_STL10_CLASSES);
        rc = SC_EXIT_USAGE;
        goto done;
    }
    if ((rc = sc_cli_load_model(&s, o.ckpt, o.seed)))
        goto done;

    /* The classifier comes from the checkpoint when it has one, else from
     * its own stream, the same in every run of a seed. */
    int have_classifier = 0;
    if (o.ckpt) {
        int missing = 0;
        int nclass = d->nft_params - d->nparams;
        if (sc_ckpt_load(o.ckpt, d, d->ft_params + d->nparams, nclass, s.params, s.buffers, NULL, NULL,
                         &missing, err, sizeof err)) {
            sc_cli_report(err);
            rc = SC_EXIT_INPUT;
            goto done;
        }
        have_classifier = missing == 0;
        if (missing && missing != nclass) {
            fprintf(stderr, "%s: %s: error: the checkpoint has only part of the classifier\n", prog, o.ckpt);
            rc = SC_EXIT_INPUT;
            goto done;
        }
    }
    if (!have_classifier) {
        sc_rng r;
        sc_rng_seed(&r, o.seed, STREAM_CLASSIFIER);
        for (int i = d->nparams; i < d->nft_params; i++) {
            const sc_param_info *p = &d->ft_params[i];
            sc_init_tensor(&r, (sc_init_kind)p->init, p->fan_in, (long)p->numel, s.params + p->offset);
        }
    }

    sc_split sp_train = {SC_SPLIT_TRAIN, 0}, sp_test = {SC_SPLIT_TEST, 0};
    if (sc_stl10_open(o.data, sp_train, &train, err, sizeof err) ||
        sc_stl10_open(o.data, sp_test, &test, err, sizeof err)) {
        sc_cli_report(err);
        rc = SC_EXIT_INPUT;
        goto done;
    }
    size_t ntr = sc_stl10_count(train), nte = sc_stl10_count(test);
    if (!nte) {
        sc_cli_error("%s: the test split is empty", o.data);
        rc = SC_EXIT_INPUT;
        goto done;
    }
    if (ntr < (size_t)B) {
        sc_cli_error("%s: the train split has %zu images, fewer than one batch (%d)", o.data, ntr, B);
        rc = SC_EXIT_INPUT;
        goto done;
    }
    ytr = malloc(sizeof *ytr * ntr);
    yte = malloc(sizeof *yte * (nte ? nte : 1));
    if (!ytr || !yte) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    for (size_t i = 0; i < ntr + nte; i++) {
        int y = i < ntr ? sc_stl10_label(train, i) : sc_stl10_label(test, i - ntr);
        if (y < 0 || y >= classes) {
            sc_cli_error("%s: image %zu of the %s split has label %d, outside 0..%d", o.data,
                         i < ntr ? i : i - ntr, i < ntr ? "train" : "test", y, classes - 1);
            rc = SC_EXIT_INPUT;
            goto done;
        }
        if (i < ntr)
            ytr[i] = y;
        else
            yte[i - ntr] = y;
    }

    /* Augmentation: a mild crop and a flip, then the model's normalisation. */
    sc_augment_spec spec;
    if (sc_desc_augment_spec(d, 0, &spec, err, sizeof err)) {
        sc_cli_error("%s", err);
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    if (spec.nops + 2 > SC_AUGMENT_MAX_OPS) {
        sc_cli_error("the model has too many normalize transforms");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    memmove(spec.ops + 2, spec.ops, sizeof *spec.ops * (size_t)spec.nops);
    memset(spec.ops, 0, sizeof *spec.ops * 2);
    spec.ops[0].kind = SC_AUGMENT_RANDOM_RESIZED_CROP;
    spec.ops[0].size = d->in_h;
    spec.ops[0].scale_min = CROP_SCALE_MIN;
    spec.ops[0].scale_max = 1.0;
    spec.ops[0].ratio_min = 3.0 / 4.0;
    spec.ops[0].ratio_max = 4.0 / 3.0;
    spec.ops[1].kind = SC_AUGMENT_HORIZONTAL_FLIP;
    spec.ops[1].p = 0.5;
    spec.nops += 2;
    if (sc_augment_check(&spec, SC_STL10_HEIGHT, SC_STL10_WIDTH, err, sizeof err)) {
        sc_cli_error("%s", err);
        rc = SC_EXIT_INPUT;
        goto done;
    }

    /* Optimised tensors: the encoder's and the classifier's (the step
     * leaves the projection head's gradients untouched). */
    const int64_t img = (int64_t)d->in_c * d->in_h * d->in_w;
    const int64_t pf = sc_params_alloc_floats(d);
    input = sc_floats_alloc((int64_t)B * img + B);
    fte = malloc(sizeof *fte * (nte ? nte : 1) * (size_t)dim);
    perm = malloc(sizeof *perm * ntr);
    pix = malloc(SC_STL10_IMAGE_BYTES);
    ws = sc_augment_ws_new(&spec, SC_STL10_HEIGHT, SC_STL10_WIDTH);
    table = malloc(sizeof *table * (size_t)d->nft_params);
    if (!input || !fte || !perm || !pix || !ws || !table) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    if (make_dirs(o.out)) {
        sc_cli_error("%s: cannot create the directory: %s", o.out, strerror(errno));
        rc = SC_EXIT_INPUT;
        goto done;
    }
    if (asprintf(&csv_path, "%s/finetune.csv", o.out) < 0 ||
        asprintf(&ckpt_path, "%s/finetune.safetensors", o.out) < 0) {
        csv_path = ckpt_path = NULL;
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    if (text_add(&csv, "epoch,step,lr,train_loss,test_accuracy,seconds\n")) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }

    const int64_t spe = (int64_t)(ntr / (size_t)B), total = (int64_t)o.epochs * spe;
    sc_lr_schedule sched = {SC_SCHED_COSINE, o.lr, 0, total};
    printf("fine-tuning %s (%s, classifier %s) on %zu labeled images: %" PRIu64 " epochs of %lld "
           "steps of %d, %s lr %g cosine, weight decay %g\n",
           d->name, o.ckpt ? o.ckpt : "random initialisation",
           have_classifier ? "from the checkpoint" : "initialised", ntr, o.epochs, (long long)spe, B,
           o.optimizer == SC_OPT_SGD ? "SGD (Nesterov 0.9)" : "Adam", o.lr, o.weight_decay);
    fflush(stdout);
    double t0 = now_seconds();
    int64_t step = 0;
    for (uint64_t epoch = 0; epoch < o.epochs; epoch++) {
        sc_pipeline_permutation(o.seed, epoch, ntr, perm);
        double loss_sum = 0;
        for (int64_t k = 0; k < spe; k++, step++) {
            for (int i = 0; i < B; i++) {
                uint32_t idx = perm[k * B + i];
                sc_stl10_image_chw(train, idx, pix);
                sc_rng r;
                sc_rng_seed(&r, o.seed, STREAM_FINETUNE ^ (epoch << 32) ^ idx);
                sc_augment_apply(&spec, pix, SC_STL10_HEIGHT, SC_STL10_WIDTH, input + i * img, &r, ws);
                input[(int64_t)B * img + i] = (float)ytr[idx];
            }
            sc_finetune_step(s.params, s.grads, s.buffers, s.arena, input, s.loss);
            if (!isfinite(s.loss[0])) {
                sc_cli_error("the loss is not finite at step %lld (epoch %" PRIu64 "): lower --lr",
                             (long long)step, epoch + 1);
                rc = SC_EXIT_INPUT;
                goto done;
            }
            if (!opt) {
                int n = 0;
                for (int i = 0; i < d->nft_params; i++)
                    if (d->ft_params[i].role != SC_ROLE_HEAD)
                        table[n++] = d->ft_params[i];
                sc_optim_config oc = {0};
                oc.kind = o.optimizer;
                oc.weight_decay = o.weight_decay;
                oc.momentum = SGD_MOMENTUM;
                oc.nesterov = 1;
                oc.beta1 = 0.9;
                oc.beta2 = 0.999;
                oc.eps = 1e-8;
                if (!(opt = sc_optim_new(&oc, table, n, pf, err, sizeof err))) {
                    sc_cli_error("%s", err);
                    rc = SC_EXIT_INTERNAL;
                    goto done;
                }
            }
            loss_sum += s.loss[0];
            sc_optim_step(opt, s.params, s.grads, sc_lr_at(&sched, step));
        }
        if (sc_encode_split(d, sc_encode, s.params, s.buffers, s.arena, test, 0, fte, err, sizeof err)) {
            sc_cli_error("%s", err);
            rc = SC_EXIT_INTERNAL;
            goto done;
        }
        double acc = classify(s.params + cw->offset, s.params + cb->offset, classes, fte, nte, dim, yte);
        double secs = now_seconds() - t0, lr_end = sc_lr_at(&sched, step);
        printf("epoch %" PRIu64 "/%" PRIu64 "  train_loss %.4f  test_accuracy %.4f  lr %.3g  (%.0f s)\n",
               epoch + 1, o.epochs, loss_sum / (double)spe, acc, lr_end, secs);
        fflush(stdout);
        if (text_add(&csv, "%" PRIu64 ",%lld,%.6g,%.6f,%.6f,%.1f\n", epoch + 1, (long long)step, lr_end,
                     loss_sum / (double)spe, acc, secs)) {
            sc_cli_error("out of memory");
            rc = SC_EXIT_INTERNAL;
            goto done;
        }
        if (write_atomic(o.out, csv_path, csv.s, csv.len, err, sizeof err)) {
            sc_cli_report(err);
            rc = SC_EXIT_INPUT;
            goto done;
        }
    }
    sc_ckpt_pos pos = {step, (int64_t)o.epochs, o.seed, "finetune"};
    if (sc_ckpt_save(ckpt_path, d, d->ft_params, d->nft_params, s.params, s.buffers, NULL, &pos, err,
                     sizeof err)) {
        sc_cli_report(err);
        rc = SC_EXIT_INPUT;
        goto done;
    }
    printf("wrote %s and %s\n", csv_path, ckpt_path);
done:
    free(csv.s);
    free(csv_path);
    free(ckpt_path);
    sc_optim_free(opt);
    free(table);
    sc_augment_ws_free(ws);
    free(input);
    free(fte);
    free(perm);
    free(pix);
    free(ytr);
    free(yte);
    sc_stl10_close(train);
    sc_stl10_close(test);
    sc_state_free(&s);
    return rc;
}
