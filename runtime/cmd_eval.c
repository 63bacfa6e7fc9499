/* eval: the linear probe (cli.md). Frozen eval-mode features of the
 * labeled train and the test split, standardised, and a multinomial
 * logistic regression with weight decay on them (sc_logreg.h). The weight
 * decay is chosen on a validation split carved from the labeled train
 * images (20% of each class, seeded); the probe is then refitted on all of
 * them and scored once on the test split, which nothing else looks at. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "cli.h"
#include "commands.h"
#include "sc_abi.h"
#include "sc_parallel.h"
#include "sc_logreg.h"
#include "sc_model_input.h"
#include "sc_rng.h"
#include "sc_state.h"
#include "sc_stl10.h"
#include "sc_clock.h"

/* Random stream of the labeled subset and the validation split (streams
 * 1-4 and 6-7 are the parameters', inputs', augmentation's, shuffling's
 * and fine-tuning's). */
#define STREAM_PROBE ((uint64_t)5 << 60)

/* The weight decays tried: 10^-6 .. 10^0 in half decades. */
enum { GRID_FIRST = -12, GRID_LAST = 0 };

static void usage(FILE *f)
{
    const char *p = program_invocation_short_name;
    fprintf(f,
            "usage: %s eval --data DIR (--ckpt FILE | --random-init) [options]\n"
            "\n"
            "Linear probe: features of the frozen encoder in eval mode (images resized to\n"
            "the model's input size and normalised as its <normalize> says), standardised;\n"
            "a multinomial logistic regression with weight decay (L-BFGS, deterministic)\n"
            "trained on the labeled train split; prints the test split's top-1 accuracy\n"
            "as a line 'test_accuracy 0.8123'.\n"
            "\n"
            "The weight decay is chosen from 1e-6 .. 1 (half decades) by the accuracy on\n"
            "a validation split of 20%% of every class of the labeled images; the probe is\n"
            "then refitted on all of them. The test split is used once, at the end.\n"
            "\n"
            "options:\n"
            "  --data DIR              dataset in the STL-10 binary layout\n"
            "  --ckpt FILE             encoder from a checkpoint (train or finetune)\n"
            "  --random-init           encoder from the seeded initialisation instead\n"
            "  --labels-per-class K    a seeded balanced subset of K labeled images per class\n"
            "  --weight-decay X        use this weight decay; no validation split\n"
            "  --seed S                seed of the subset, the split and --random-init (0)\n"
            "  --threads T             OpenBLAS threads (default: OpenBLAS's own choice)\n"
            "  -h, --help              show this help\n"
            "\n"
            "exit status: 0 success, 1 bad input (data, checkpoint), 2 bad usage,\n"
            "3 internal error\n",
            p);
}

static void shuffle(uint32_t *a, size_t n, sc_rng *r)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)sc_rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* The labeled images to use, and which of them are held out for
 * validation: per class, the class's indices in a seeded order; the first
 * per_class (all when 0) are used, and of those the first 20% (rounded,
 * at least one) are validation when with_val is set. Fills fit[] and val[] in class order; returns 0, or -1 with
 * a message when a class is too small. */
static int split_labeled(const int *y, size_t n, int classes, size_t per_class, int with_val,
                         uint64_t seed, uint32_t *fit, size_t *nfit, uint32_t *val, size_t *nval,
                         char *err, size_t errlen)
{
    uint32_t *idx = malloc(sizeof *idx * (n ? n : 1));
    if (!idx) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *nfit = *nval = 0;
    int rc = 0;
    for (int c = 0; c < classes && !rc; c++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (y[i] == c)
                idx[m++] = (uint32_t)i;
        sc_rng r;
        sc_rng_seed(&r, seed, STREAM_PROBE ^ (uint64_t)c);
        shuffle(idx, m, &r);
        size_t use = per_class ? per_class : m;
        if (m < use) {
            snprintf(err, errlen, "class %d has %zu labeled images, fewer than --labels-per-class %zu",
                     c, m, use);
            rc = -1;
        } else if (use < (size_t)(with_val ? 2 : 1)) {
            snprintf(err, errlen, "class %d has %zu labeled image%s: too few for a validation split "
                     "and a fit (give --weight-decay to skip the split)", c, use, use == 1 ? "" : "s");
            rc = -1;
        }
        if (rc)
            break;
        size_t v = with_val ? (size_t)floor(0.2 * (double)use + 0.5) : 0;
        if (with_val && v < 1)
            v = 1;
        for (size_t i = 0; i < use; i++) {
            if (i < v)
                val[(*nval)++] = idx[i];
            else
                fit[(*nfit)++] = idx[i];
        }
    }
    free(idx);
    return rc;
}

/* Rows idx of the n x dim features, standardised with a standardiser
 * fitted on them (into s) as doubles, and their labels. */
static int gather_fit(const float *f, const int *y, int dim, const uint32_t *idx, size_t n,
                      sc_standardizer *s, double **x_out, int **y_out)
{
    float *rows = malloc(sizeof *rows * (n ? n : 1) * (size_t)dim);
    double *x = malloc(sizeof *x * (n ? n : 1) * (size_t)dim);
    int *yy = malloc(sizeof *yy * (n ? n : 1));
    if (!rows || !x || !yy) {
        free(rows);
        free(x);
        free(yy);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(rows + i * (size_t)dim, f + (size_t)idx[i] * (size_t)dim, sizeof *rows * (size_t)dim);
        yy[i] = y[idx[i]];
    }
    int rc = sc_standardizer_fit(s, rows, (int64_t)n, dim);
    if (!rc)
        sc_standardizer_apply(s, rows, (int64_t)n, x);
    free(rows);
    if (rc) {
        free(x);
        free(yy);
        return -1;
    }
    *x_out = x;
    *y_out = yy;
    return 0;
}

/* Rows idx (all n rows when idx is NULL) standardised with s. */
static double *gather_apply(const float *f, int dim, const uint32_t *idx, size_t n,
                            const sc_standardizer *s)
{
    float *rows = malloc(sizeof *rows * (n ? n : 1) * (size_t)dim);
    double *x = malloc(sizeof *x * (n ? n : 1) * (size_t)dim);
    if (!rows || !x) {
        free(rows);
        free(x);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(rows + i * (size_t)dim, f + (size_t)(idx ? idx[i] : i) * (size_t)dim,
               sizeof *rows * (size_t)dim);
    sc_standardizer_apply(s, rows, (int64_t)n, x);
    free(rows);
    return x;
}

static int *labels_of(const sc_stl10 *d, size_t n, int classes, const char *what, char *err,
                      size_t errlen)
{
    int *y = malloc(sizeof *y * (n ? n : 1));
    if (!y) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        y[i] = sc_stl10_label(d, i);
        if (y[i] < 0 || y[i] >= classes) {
            snprintf(err, errlen, "image %zu of the %s split has label %d, outside 0..%d", i, what, y[i],
                     classes - 1);
            free(y);
            return NULL;
        }
    }
    return y;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

typedef struct {
    const char *data, *ckpt;
    int random_init;
    uint64_t per_class, seed, threads;
    double weight_decay;    /* < 0: choose on the validation split */
} eval_opts;

/* 0 to go on, or 1 when eval must exit with *status (cli.h). */
static int parse(int argc, char **argv, eval_opts *o, int *status)
{
    memset(o, 0, sizeof *o);
    o->weight_decay = -1;
    const sc_opt opts[] = {
        {"data", .kind = SC_OPT_STR, .dest = &o->data, .required = "--data DIR"},
        {"ckpt", .kind = SC_OPT_STR, .dest = &o->ckpt},
        {"random-init", .kind = SC_OPT_FLAG, .dest = &o->random_init},
        {"labels-per-class", .kind = SC_OPT_U64, .dest = &o->per_class, .min = 1, .max = 100000000},
        {"weight-decay", .kind = SC_OPT_NUM, .dest = &o->weight_decay, .lo = 0, .hi = 1e6},
        {"seed", .kind = SC_OPT_U64, .dest = &o->seed, .max = UINT64_MAX},
        {"threads", .kind = SC_OPT_U64, .dest = &o->threads, .min = 1, .max = 1024},
    };
    const sc_cmdline cl = {"eval", opts, SC_NOPTS(opts), usage, NULL, 0};
    if (sc_cli_parse(&cl, argc, argv, status))
        return 1;
    return (*status = sc_cli_check_source("eval", o->ckpt, o->random_init)) != 0;
}

int sc_cmd_eval(int argc, char **argv)
{
    eval_opts o;
    int rc;
    if (parse(argc, argv, &o, &rc))
        return rc;
    if (o.threads)
        sc_threads_set((int)o.threads);

    const sc_model_desc *d = &sc_model;
    const int dim = d->feature_dim, classes = SC_STL10_CLASSES;
    char err[1024];
    sc_state s;
    sc_stl10 *train = NULL, *test = NULL;
    float *ftr = NULL, *fte = NULL;
    int *ytr = NULL, *yte = NULL;
    uint32_t *fit = NULL, *val = NULL;
    double *xfit = NULL, *xval = NULL, *xte = NULL, *wb = NULL;
    int *yfit = NULL, *yval = NULL;
    sc_standardizer st = {0};
    memset(&s, 0, sizeof s);

    if ((rc = sc_cli_state(&s)))
        return rc;
    if ((rc = sc_cli_load_model(&s, o.ckpt, o.seed)))
        goto done;

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
    if (!(ytr = labels_of(train, ntr, classes, "train", err, sizeof err)) ||
        !(yte = labels_of(test, nte, classes, "test", err, sizeof err))) {
        sc_cli_error("%s: %s", o.data, err);
        rc = SC_EXIT_INPUT;
        goto done;
    }

    /* Which labeled images: decided before any feature is computed. */
    int with_val = o.weight_decay < 0;
    fit = malloc(sizeof *fit * (ntr ? ntr : 1));
    val = malloc(sizeof *val * (ntr ? ntr : 1));
    if (!fit || !val) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    size_t nfit, nval;
    if (split_labeled(ytr, ntr, classes, (size_t)o.per_class, with_val, o.seed, fit, &nfit, val, &nval,
                      err, sizeof err)) {
        sc_cli_error("%s: %s", o.data, err);
        rc = SC_EXIT_INPUT;
        goto done;
    }

    printf("linear probe of %s (%s), %d features\n", d->name,
           o.ckpt ? o.ckpt : "random initialisation", dim);
    fflush(stdout);
    double t0 = sc_now_seconds();
    ftr = malloc(sizeof *ftr * (ntr ? ntr : 1) * (size_t)dim);
    fte = malloc(sizeof *fte * (nte ? nte : 1) * (size_t)dim);
    if (!ftr || !fte) {
        sc_cli_error("out of memory for the features");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    if (sc_encode_split(d, sc_encode, s.params, s.buffers, s.arena, train, 0, ftr, err, sizeof err) ||
        sc_encode_split(d, sc_encode, s.params, s.buffers, s.arena, test, 0, fte, err, sizeof err)) {
        sc_cli_error("%s", err);
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    if (!all_finite(ftr, ntr * (size_t)dim) || !all_finite(fte, nte * (size_t)dim)) {
        sc_cli_error("the encoder's features are not finite (a diverged checkpoint?)");
        rc = SC_EXIT_INPUT;
        goto done;
    }
    printf("features of %zu train and %zu test images in %.1f s\n", ntr, nte, sc_now_seconds() - t0);

    /* Only the probe's own GEMMs from here on: all cores to OpenBLAS. */
    sc_blas_wide(1);
    const int64_t np = (int64_t)classes * dim + classes;
    wb = calloc((size_t)np, sizeof *wb);
    if (!wb) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    sc_logreg_config cfg;
    sc_logreg_result res;
    double lambda = o.weight_decay;
    if (with_val) {
        printf("weight decay on a validation split: %zu images fit, %zu validate\n", nfit, nval);
        if (gather_fit(ftr, ytr, dim, fit, nfit, &st, &xfit, &yfit) ||
            !(xval = gather_apply(ftr, dim, val, nval, &st)) ||
            !(yval = malloc(sizeof *yval * nval))) {
            sc_cli_error("out of memory");
            rc = SC_EXIT_INTERNAL;
            goto done;
        }
        for (size_t i = 0; i < nval; i++)
            yval[i] = ytr[val[i]];
        /* Strongest decay first, each fit warm-started from the previous
         * one; ties go to the stronger decay. */
        double best = -1;
        for (int k = GRID_LAST; k >= GRID_FIRST; k--) {
            double lam = pow(10.0, 0.5 * k);
            sc_logreg_config_default(&cfg, lam);
            if (sc_logreg_fit(&cfg, xfit, yfit, (int64_t)nfit, dim, classes, wb, &res, err, sizeof err)) {
                sc_cli_error("%s", err);
                rc = SC_EXIT_INTERNAL;
                goto done;
            }
            double acc = sc_logreg_predict(xval, (int64_t)nval, dim, classes, wb, yval, NULL);
            printf("  weight_decay %-8.2g val_accuracy %.4f  (loss %.4f, %d iterations)\n", lam, acc,
                   res.loss, res.iterations);
            if (acc > best) {
                best = acc;
                lambda = lam;
            }
        }
        printf("chosen weight_decay %.2g (val_accuracy %.4f)\n", lambda, best);
        sc_standardizer_free(&st);
        memcpy(fit + nfit, val, sizeof *val * nval);   /* refit on all labeled images */
        nfit += nval;
        free(xfit);
        free(yfit);
        xfit = NULL;
        yfit = NULL;
    }
    if (gather_fit(ftr, ytr, dim, fit, nfit, &st, &xfit, &yfit) ||
        !(xte = gather_apply(fte, dim, NULL, nte, &st))) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    memset(wb, 0, sizeof *wb * (size_t)np);
    sc_logreg_config_default(&cfg, lambda);
    if (sc_logreg_fit(&cfg, xfit, yfit, (int64_t)nfit, dim, classes, wb, &res, err, sizeof err)) {
        sc_cli_error("%s", err);
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    double train_acc = sc_logreg_predict(xfit, (int64_t)nfit, dim, classes, wb, yfit, NULL);
    double test_acc = sc_logreg_predict(xte, (int64_t)nte, dim, classes, wb, yte, NULL);
    printf("probe on %zu labeled images (weight_decay %.2g, %d iterations): train_accuracy %.4f\n", nfit,
           lambda, res.iterations, train_acc);
    printf("test_accuracy %.4f\n", test_acc);
    printf("eval took %.1f s\n", sc_now_seconds() - t0);
    if (fflush(stdout)) {
        sc_cli_error("writing standard output failed");
        rc = SC_EXIT_INTERNAL;
    }
done:
    sc_standardizer_free(&st);
    free(xfit);
    free(yfit);
    free(xval);
    free(yval);
    free(xte);
    free(wb);
    free(fit);
    free(val);
    free(ftr);
    free(fte);
    free(ytr);
    free(yte);
    sc_stl10_close(train);
    sc_stl10_close(test);
    sc_state_free(&s);
    return rc;
}
