/* train: SimCLR pretraining (cli.md). The input pipeline produces two
 * augmented views of every image; each step runs the compiled sc_step and
 * the runtime's optimizer at the scheduled learning rate. Everything a run
 * leaves lives in its run directory RUN:
 *   checkpoint.safetensors  written atomically at the start, at the end of
 *                           every epoch, at --max-steps and on SIGINT or
 *                           SIGTERM; --resume continues from it
 *   metrics.csv             one row per step
 *   knn.csv                 one row per kNN measurement
 * Resuming is exact: the data of every step is a function of (seed, epoch,
 * image, view), the learning rate of the step count, and the checkpoint
 * holds parameters, batchnorm buffers and optimizer state bit for bit, so a
 * resumed run takes the same steps as an uninterrupted one.
 *
 * Data parallelism (a binary built with simclrc --mpi, under mpirun -np K):
 * the global batch is K times the compiled one; rank r steps on images
 * [r B, (r + 1) B) of every global batch of the epoch's order, and the
 * generated step gathers the projections and averages the gradients
 * (sc_comm.h), so every rank holds the same parameters and optimizer
 * state. Rank 0 alone owns the run directory (lock, logs, checkpoints,
 * kNN monitor, progress); it reads a checkpoint to resume and broadcasts
 * it. The ranks agree on stopping (a signal, an error) once per step, so
 * none is left waiting in a collective. A checkpoint records its position
 * in images (epochs done, images of the current epoch, the global batch),
 * so a run can resume with another number of ranks. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "cli.h"
#include "commands.h"
#include "sc_abi.h"
#include "sc_parallel.h"
#include "sc_checkpoint.h"
#include "sc_ema.h"
#include "sc_clock.h"
#include "sc_comm.h"
#include "sc_knn.h"
#include "sc_model_input.h"
#include "sc_optim.h"
#include "sc_pipeline.h"
#include "sc_rundir.h"
#include "sc_state.h"
#include "sc_stl10.h"
#include "train_log.h"
#include "train_options.h"
#include "train_progress.h"

enum { EXIT_INPUT = SC_EXIT_INPUT, EXIT_USAGE = SC_EXIT_USAGE, EXIT_INTERNAL = SC_EXIT_INTERNAL };

#define CKPT_NAME "checkpoint.safetensors"
#define METRICS_HEADER "step,epoch,loss,lr,data_wait_s,step_s"
#define KNN_HEADER "step,epoch,knn_top1,seconds"


typedef struct {
    const sc_model_desc *d;
    sc_train_options o;
    sc_state s;
    sc_optim *opt;
    sc_ema_plan ema;               /* BYOL's target network (n = 0 without) */
    sc_lr_schedule sched;
    sc_stl10 *data, *knn_train, *knn_test;
    size_t ntr, nte;
    float *ftr, *fte;
    int *ytr, *yte;
    sc_train_log metrics, knn;
    int have_metrics, have_knn;
    sc_progress prog;
    sc_rundir run;
    char ckpt[PATH_MAX], metrics_path[PATH_MAX], knn_path[PATH_MAX];
    int64_t spe, epochs, stop_at;  /* steps per epoch, planned epochs, last step of this run */
    int64_t saved_step;            /* step of the checkpoint on disk */
    double lr;                     /* before lr-scaling */
    double knn_seconds;            /* duration of the last kNN measurement */
    int64_t run_images;            /* resuming: the split size the run trained on */
    int rank, ranks;               /* this process in the MPI job (0 and 1 without) */
    int64_t gbatch;                /* global batch: d->batch * ranks */
    int64_t step_offset;           /* logged step = schedule step + step_offset (resumed
                                      with another global batch) */
    int64_t resume_epoch_images;   /* resuming: images of the current epoch already seen */
    int64_t resume_gbatch;         /* resuming: the global batch of the run */
} trainer;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static const char *prog(void) { return program_invocation_short_name; }

static void error(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void error(trainer *t, const char *fmt, ...)
{
    if (t)
        sc_progress_end(&t->prog);
    va_list ap;
    fprintf(stderr, "%s: ", prog());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s || *s == ' ' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---- the run directory ---- */

static int run_path(char *buf, const char *dir, const char *name)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return n < 0 || n >= PATH_MAX ? -1 : 0;
}

/* Creates RUN, takes its lock (one run per directory) and removes the
 * temporary files of a writer that was killed mid-save. */
static int open_run_dir(trainer *t)
{
    char err[PATH_MAX + 256];
    int r = sc_rundir_open(&t->run, t->o.out, err, sizeof err);
    if (r) {
        error(t, "%s", err);
        return r == SC_RUNDIR_TOO_LONG ? EXIT_USAGE : r == SC_RUNDIR_NO_MEMORY ? EXIT_INTERNAL : EXIT_INPUT;
    }
    if (sc_rundir_path(&t->run, CKPT_NAME, t->ckpt, sizeof t->ckpt) ||
        sc_rundir_path(&t->run, "metrics.csv", t->metrics_path, sizeof t->metrics_path) ||
        sc_rundir_path(&t->run, "knn.csv", t->knn_path, sizeof t->knn_path)) {
        error(t, "%s: error: path too long", t->o.out);
        return EXIT_USAGE;
    }
    sc_rundir_remove_stale(&t->run, CKPT_NAME);
    return 0;
}

/* ---- data ---- */

static int file_exists(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    return !run_path(p, dir, name) && stat(p, &st) == 0;
}

static int open_data(trainer *t)
{
    char err[1024];
    struct stat st;
    if (stat(t->o.data, &st)) {
        error(t, "%s: error: cannot open the dataset directory: %s", t->o.data, strerror(errno));
        return EXIT_INPUT;
    }
    if (!S_ISDIR(st.st_mode)) {
        error(t, "%s: error: not a directory (--data needs a dataset directory)", t->o.data);
        return EXIT_INPUT;
    }
    if (sc_stl10_open(t->o.data, t->o.split, &t->data, err, sizeof err)) {
        error(t, "%s", err);
        return EXIT_INPUT;
    }
    if ((t->o.knn_every == 0 && !t->o.knn_init) || t->rank != 0)
        return 0; /* the kNN monitor runs on rank 0 */
    static const char *const labeled[] = {"train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"};
    for (int i = 0; i < 4; i++) {
        if (!file_exists(t->o.data, labeled[i])) {
            sc_progress_message(&t->prog, "note: no kNN monitor: %s has no labeled train and test splits "
                                "(%s is missing)", t->o.data, labeled[i]);
            t->o.knn_every = 0;
            t->o.knn_init = 0;
            return 0;
        }
    }
    if (sc_stl10_open(t->o.data, (sc_split){SC_SPLIT_TRAIN, 0}, &t->knn_train, err, sizeof err) ||
        sc_stl10_open(t->o.data, (sc_split){SC_SPLIT_TEST, 0}, &t->knn_test, err, sizeof err)) {
        error(t, "%s", err);
        return EXIT_INPUT;
    }
    const sc_model_desc *d = t->d;
    t->ntr = sc_stl10_count(t->knn_train);
    t->nte = sc_stl10_count(t->knn_test);
    t->ftr = sc_floats_alloc((int64_t)t->ntr * d->feature_dim);
    t->fte = sc_floats_alloc((int64_t)t->nte * d->feature_dim);
    t->ytr = malloc((t->ntr ? t->ntr : 1) * sizeof *t->ytr);
    t->yte = malloc((t->nte ? t->nte : 1) * sizeof *t->yte);
    if (!t->ftr || !t->fte || !t->ytr || !t->yte) {
        error(t, "error: out of memory for the kNN monitor's features");
        return EXIT_INTERNAL;
    }
    for (size_t i = 0; i < t->ntr; i++)
        t->ytr[i] = sc_stl10_label(t->knn_train, i);
    for (size_t i = 0; i < t->nte; i++)
        t->yte[i] = sc_stl10_label(t->knn_test, i);
    return 0;
}

/* ---- kNN monitor ---- */

static int knn_measure(trainer *t, int64_t step, int64_t epoch, double *acc)
{
    const sc_model_desc *d = t->d;
    char err[1024];
    double t0 = sc_now_seconds();
    sc_progress_status_line(&t->prog, "kNN monitor: encoding %zu train and %zu test images...", t->ntr, t->nte);
    if (sc_encode_split(d, sc_encode, t->s.params, t->s.buffers, t->s.arena, t->knn_train, 1, t->ftr, err,
                        sizeof err) ||
        sc_encode_split(d, sc_encode, t->s.params, t->s.buffers, t->s.arena, t->knn_test, 1, t->fte, err,
                        sizeof err)) {
        error(t, "error: kNN monitor: %s", err);
        return EXIT_INTERNAL;
    }
    sc_knn_config c;
    sc_knn_config_default(&c, SC_STL10_CLASSES);
    sc_blas_wide(1);
    int bad = sc_knn_accuracy(&c, t->ftr, t->ytr, (int64_t)t->ntr, t->fte, t->yte, (int64_t)t->nte, d->feature_dim,
                              acc, NULL, err, sizeof err);
    sc_blas_wide(0);
    if (bad) {
        error(t, "error: kNN monitor: %s", err);
        return EXIT_INTERNAL;
    }
    t->knn_seconds = sc_now_seconds() - t0;
    if (sc_train_log_row(&t->knn, err, sizeof err, "%" PRId64 ",%" PRId64 ",%.6f,%.3f", step, epoch, *acc,
                         t->knn_seconds)) {
        error(t, "%s", err);
        return EXIT_INPUT;
    }
    return 0;
}

static int knn_due(const trainer *t, int64_t epoch)
{
    return t->o.knn_every > 0 && (epoch % t->o.knn_every == 0 || epoch == t->epochs);
}

/* ---- checkpoints ---- */

static int all_finite(const float *x, const sc_param_info *table, int n, const char **bad)
{
    for (int i = 0; i < n; i++) {
        const float *p = x + table[i].offset;
        for (int64_t k = 0; k < table[i].numel; k++)
            if (!isfinite(p[k])) {
                *bad = table[i].name;
                return 0;
            }
    }
    return 1;
}

static int save_checkpoint(trainer *t, int64_t step, int64_t epoch)
{
    const sc_model_desc *d = t->d;
    const char *bad;
    char err[1024];
    if (!all_finite(t->s.params, d->params, d->nparams, &bad) ||
        !all_finite(t->s.buffers, d->buffers, d->nbuffers, &bad)) {
        error(t, "error: step %" PRId64 ": %s is not finite; not saving. The last good checkpoint, %s "
              "(step %" PRId64 "), is intact", step + t->step_offset, bad, t->ckpt, t->saved_step);
        return EXIT_INPUT;
    }
    /* The logs first, so that they hold every row the checkpoint has seen. */
    if ((t->have_metrics && sc_train_log_sync(&t->metrics, err, sizeof err)) ||
        (t->have_knn && sc_train_log_sync(&t->knn, err, sizeof err))) {
        error(t, "%s", err);
        return EXIT_INPUT;
    }
    char epochs[32], lr[40], split[16], images[32], spe[32], gb[32], ranks[16], eimg[32];
    snprintf(epochs, sizeof epochs, "%" PRId64, t->epochs);
    snprintf(lr, sizeof lr, "%.17g", t->lr);
    sc_split_name(t->o.split, split, sizeof split);
    snprintf(images, sizeof images, "%zu", sc_stl10_count(t->data));
    snprintf(spe, sizeof spe, "%" PRId64, t->spe);
    snprintf(gb, sizeof gb, "%" PRId64, t->gbatch);
    snprintf(ranks, sizeof ranks, "%d", t->ranks);
    snprintf(eimg, sizeof eimg, "%" PRId64, (step - epoch * t->spe) * t->gbatch);
    const char *keys[] = {"train/epochs", "train/lr", "train/split", "train/images", "train/steps_per_epoch",
                          "train/global_batch", "train/ranks", "train/epoch_images", "train/global_bn"};
    const char *vals[] = {epochs, lr, split, images, spe, gb, ranks, eimg, t->o.global_bn ? "1" : "0"};
    sc_ckpt_pos pos = {step + t->step_offset, epoch, t->o.seed, "simclr"};
    if (sc_ckpt_save_meta(t->ckpt, d, d->params, d->nparams, t->s.params, t->s.buffers, t->opt, &pos, 9, keys,
                          vals, err, sizeof err)) {
        if (t->saved_step >= 0)
            error(t, "%s\n%s: the previous checkpoint (step %" PRId64 ") is intact", err, prog(), t->saved_step);
        else
            error(t, "%s", err);
        return EXIT_INPUT;
    }
    t->saved_step = step + t->step_offset;
    return 0;
}

/* Restores the run from RUN/checkpoint.safetensors. */
static int resume(trainer *t, sc_ckpt_pos *pos)
{
    const sc_model_desc *d = t->d;
    char err[1024];
    const char *keys[] = {"train/epochs", "train/lr", "train/split", "train/images", "batch",
                          "train/steps_per_epoch", "train/global_batch", "train/epoch_images"};
    char *vals[8] = {0};
    int missing = 0;
    int rc = EXIT_INPUT;
    struct stat st;
    if (stat(t->ckpt, &st)) {
        error(t, "%s: error: cannot resume: %s", t->ckpt, strerror(errno));
        return EXIT_INPUT;
    }
    if (sc_ckpt_load_meta(t->ckpt, d, d->params, d->nparams, t->s.params, t->s.buffers, t->opt, pos,
                          &missing, 8, keys, vals, err, sizeof err)) {
        error(t, "%s", err);
        goto done;
    }
    if (strcmp(pos->kind, "simclr")) {
        error(t, "%s: error: a %s checkpoint; train resumes SimCLR pretraining checkpoints only", t->ckpt,
              pos->kind);
        goto done;
    }
    if (missing) {
        error(t, "%s: error: %d parameters of the model are missing", t->ckpt, missing);
        goto done;
    }
    int64_t epochs = 0, images = 0, batch = 0;
    char *end = NULL;
    double lr = vals[1] ? strtod(vals[1], &end) : 0;
    sc_split split;
    if (!vals[0] || !vals[1] || !vals[2] || !vals[3] || !vals[4] || parse_i64(vals[0], 0, 1000000, &epochs) ||
        *end || !(lr > 0 && isfinite(lr)) || parse_i64(vals[3], 0, INT64_MAX, &images) ||
        parse_i64(vals[4], 1, INT32_MAX, &batch) || sc_split_parse(vals[2], &split, err, sizeof err)) {
        error(t, "%s: error: not a checkpoint of train (its train/ metadata is missing or malformed)", t->ckpt);
        goto done;
    }
    if (t->o.have_seed && t->o.seed != pos->seed) {
        error(t, "error: --seed %" PRIu64 " differs from the run's seed %" PRIu64 "; a resumed run keeps its seed",
              t->o.seed, pos->seed);
        rc = EXIT_USAGE;
        goto done;
    }
    if (t->o.have_split && (split.kind != t->o.split.kind || split.fold != t->o.split.fold)) {
        error(t, "error: --split differs from the run's split %s; a resumed run keeps its split", vals[2]);
        rc = EXIT_USAGE;
        goto done;
    }
    /* The position in images: written since data parallelism, else
     * derived from the steps of one rank at the compiled batch. */
    int64_t gb = batch, spe_run = 0, eimg = -1;
    if ((vals[6] && parse_i64(vals[6], 1, INT32_MAX, &gb)) ||
        (vals[7] && parse_i64(vals[7], 0, images, &eimg)) ||
        (!vals[7] && (!vals[5] || parse_i64(vals[5], 1, SC_CKPT_MAX_STEP, &spe_run)))) {
        error(t, "%s: error: its train/ position metadata is malformed", t->ckpt);
        goto done;
    }
    /* epoch <= 10^6 and spe_run <= 2^40 (checkpoint.h): only the last
     * product can overflow. */
    if (!vals[7] && __builtin_mul_overflow(pos->step - pos->epoch * spe_run, gb, &eimg))
        eimg = -1;
    if (eimg < 0) {
        error(t, "%s: error: its position (step %" PRId64 ", %" PRId64 " epochs done) is inconsistent", t->ckpt,
              pos->step, pos->epoch);
        goto done;
    }
    t->resume_epoch_images = eimg;
    t->resume_gbatch = gb;
    t->o.seed = pos->seed;
    t->o.split = split;
    if (!t->o.have_epochs)
        t->o.epochs = epochs;
    if (!t->o.have_lr)
        t->o.lr = lr;
    if ((t->o.have_epochs && t->o.epochs != epochs) || (t->o.have_lr && t->o.lr != lr))
        sc_progress_message(&t->prog, "note: the learning-rate schedule changes: the run had %" PRId64
                            " epochs at lr %g, it continues with %" PRId64 " at lr %g", epochs, lr,
                            t->o.epochs, t->o.lr);
    t->o.have_epochs = t->o.have_lr = 1;
    t->saved_step = pos->step;
    t->run_images = images; /* checked once the data is open */
    rc = 0;
done:
    for (int i = 0; i < 8; i++)
        free(vals[i]);
    return rc;
}

/* ---- the loop ---- */

static int nonfinite_stop(trainer *t, int64_t step, int epoch, int batch, const char *what)
{
    error(t, "error: step %" PRId64 " (epoch %d, batch %d of %" PRId64 "): %s; stopping without saving "
          "(a lower --lr may help). The last good checkpoint, %s (step %" PRId64 "), is intact",
          step + t->step_offset, epoch, batch, t->spe, what, t->ckpt, t->saved_step);
    return EXIT_INPUT;
}

/* Every rank's status, agreed: the worst of them (0 all fine). Ranks other
 * than 0 return it without a message; the rank that failed printed one. */
static int agree(const trainer *t, int rc)
{
    return t->ranks > 1 ? sc_comm_max_int(rc) : rc;
}

/* Without global batchnorm every rank's running statistics followed its
 * own shard; the checkpoint and the kNN monitor get their mean. */
static void sync_buffers(trainer *t)
{
    if (t->ranks == 1 || t->o.global_bn)
        return;
    if (!t->ema.n) {
        sc_comm_average_floats(t->s.buffers, t->d->buffers_floats);
        return;
    }
    /* BYOL's target parameters are the same on every rank already (a float
     * sum of 3 identical copies, divided by 3, need not give them back):
     * the rest, tensor by tensor (checkpoints only, so not often). */
    const sc_model_desc *d = t->d;
    for (int i = 0; i < d->nbuffers; i++) {
        int target = 0;
        for (int k = 0; k < t->ema.n && !target; k++)
            target = t->ema.pairs[k].target == d->buffers[i].offset;
        if (!target)
            sc_comm_average_floats(t->s.buffers + d->buffers[i].offset, d->buffers[i].numel);
    }
}

/* With several ranks, whether BYOL's target network is the same bit for
 * bit on every rank (it must be: the same online parameters, the same
 * update); checked at every checkpoint, which holds rank 0's only. */
static int targets_agree(trainer *t)
{
    if (t->ranks == 1 || !t->ema.n)
        return 1;
    uint32_t h = 2166136261u; /* FNV-1a over the target parameters' bytes */
    for (int k = 0; k < t->ema.n; k++) {
        const unsigned char *p = (const unsigned char *)(t->s.buffers + t->ema.pairs[k].target);
        for (int64_t i = 0; i < t->ema.pairs[k].numel * (int64_t)sizeof(float); i++)
            h = (h ^ p[i]) * 16777619u;
    }
    int v = (int)(h & 0x7fffffff);
    return sc_comm_max_int(v) == -sc_comm_max_int(-v);
}

/* Checkpoint on rank 0; every rank learns whether it worked. */
static int save_all(trainer *t, int64_t step, int64_t epoch)
{
    if (!targets_agree(t)) {
        error(t, "internal error: BYOL's target network differs between the ranks at step %" PRId64,
              step + t->step_offset);
        return EXIT_INTERNAL;
    }
    sync_buffers(t);
    int rc = t->rank == 0 ? save_checkpoint(t, step, epoch) : 0;
    rc = agree(t, rc);
    if (t->rank != 0 && !rc)
        t->saved_step = step + t->step_offset;
    return rc;
}

static int epoch_end(trainer *t, int64_t step, double loss_sum, int64_t loss_n, double epoch_t0)
{
    int64_t e = step / t->spe;
    double acc = -1;
    int rc = 0;
    if (knn_due(t, e)) {
        sync_buffers(t);
        if (t->rank == 0)
            rc = knn_measure(t, step + t->step_offset, e, &acc);
        if ((rc = agree(t, rc)))
            return rc;
    }
    double t0 = sc_now_seconds();
    if ((rc = save_all(t, step, e)))
        return rc;
    double ckpt_s = sc_now_seconds() - t0;
    char knn[64] = "";
    if (acc >= 0)
        snprintf(knn, sizeof knn, ", kNN top-1 %.2f%% (%.1f s)", 100 * acc, t->knn_seconds);
    double secs = t0 - epoch_t0 - (acc >= 0 ? t->knn_seconds : 0);
    sc_progress_message(&t->prog, "epoch %" PRId64 "/%" PRId64 ": mean loss %.4f over %" PRId64
                        " steps, %.1f s (%.0f views/s)%s, checkpoint %.2f s",
                        e, t->epochs, loss_n ? loss_sum / (double)loss_n : NAN, loss_n, secs,
                        secs > 0 ? 2.0 * t->gbatch * (double)loss_n / secs : 0, knn, ckpt_s);
    return 0;
}

/* step counts the schedule's steps (global batches); rows, messages and
 * checkpoints show step + step_offset. */
static int train_loop(trainer *t, sc_pipeline *pl, int64_t step)
{
    const sc_model_desc *d = t->d;
    sc_state *s = &t->s;
    char err[1024];
    double t_prev = sc_now_seconds(), ema_dt = 0, ema_wait = 0, loss_sum = 0, epoch_t0 = t_prev;
    int64_t loss_n = 0, off = t->step_offset;
    int failed = 0;  /* rank 0 could not write a metrics row */
    int stopped = 0;
    sc_batch b;
    while (step < t->stop_at) {
        /* 2: a rank failed, 1: a rank got a signal */
        int status = agree(t, failed ? 2 : stop_signal ? 1 : 0);
        if (status == 2)
            return EXIT_INPUT;
        if (status == 1) {
            stopped = 1;
            break;
        }
        int r = sc_pipeline_next(pl, &b);
        if (r <= 0) {
            error(t, r < 0 ? "error: the input pipeline ran out of memory"
                           : "error: the input pipeline ended before step %" PRId64, step + off + 1);
            if (t->ranks > 1)
                sc_comm_abort(EXIT_INTERNAL); /* the others wait in the step's collectives */
            return EXIT_INTERNAL;
        }
        double t0 = sc_now_seconds();
        sc_step(s->params, s->grads, s->buffers, s->arena, b.views, s->loss);
        float loss = s->loss[0];
        const char *bad = NULL;
        char what[256];
        /* The loss and the averaged gradients are the same on every rank. */
        if (!isfinite(loss)) {
            snprintf(what, sizeof what, "the loss is %s", isnan(loss) ? "NaN" : "infinite");
            return nonfinite_stop(t, step + 1, b.epoch + 1, b.step + 1, what);
        }
        if (!all_finite(s->grads, d->params, d->nparams, &bad)) {
            snprintf(what, sizeof what, "the gradient of %s is not finite", bad);
            return nonfinite_stop(t, step + 1, b.epoch + 1, b.step + 1, what);
        }
        double lr = sc_lr_at(&t->sched, step);
        sc_optim_step(t->opt, s->params, s->grads, lr);
        /* BYOL: the target follows the updated online network, at the
         * schedule's step k of K (the same on every rank, and on resume). */
        if (t->ema.n)
            sc_ema_apply(&t->ema, s->params, s->buffers, sc_ema_tau(d->tau_base, step, t->epochs * t->spe));
        step++;
        double t1 = sc_now_seconds();
        if (t->rank == 0 &&
            sc_train_log_row(&t->metrics, err, sizeof err, "%" PRId64 ",%d,%.9g,%.9g,%.6f,%.6f", step + off,
                             b.epoch + 1, (double)loss, lr, b.wait_seconds, t1 - t0)) {
            error(t, "%s", err);
            if (t->ranks == 1)
                return EXIT_INPUT;
            failed = 1; /* the ranks stop together at the next agreement */
        }
        loss_sum += loss;
        loss_n++;
        double dt = t1 - t_prev;
        t_prev = t1;
        ema_dt = ema_dt > 0 ? 0.9 * ema_dt + 0.1 * dt : dt;
        ema_wait = loss_n > 1 ? 0.9 * ema_wait + 0.1 * b.wait_seconds : b.wait_seconds;
        int64_t epochs_left = t->stop_at / t->spe - step / t->spe, knn_left = 0;
        for (int64_t e = step / t->spe + 1; e <= step / t->spe + epochs_left; e++)
            knn_left += knn_due(t, e);
        sc_progress_status st = {
            .step = step + off, .total = t->stop_at + off, .epoch = b.epoch + 1, .epochs = t->epochs,
            .epoch_step = b.step + 1, .epoch_steps = t->spe, .loss = loss, .lr = lr,
            .views_per_s = ema_dt > 0 ? 2.0 * t->gbatch / ema_dt : 0,
            .eta_s = (double)(t->stop_at - step) * ema_dt + (double)knn_left * t->knn_seconds,
            .wait_frac = ema_dt > 0 ? fmin(1, ema_wait / ema_dt) : 0,
        };
        sc_progress_update(&t->prog, &st, step % t->spe == 0 || step == t->stop_at);
        if (step % t->spe == 0) {
            if (agree(t, failed ? 2 : 0))
                return EXIT_INPUT;
            int rc = epoch_end(t, step, loss_sum, loss_n, epoch_t0);
            if (rc)
                return rc;
            loss_sum = 0;
            loss_n = 0;
            t_prev = epoch_t0 = sc_now_seconds(); /* the rate counts steps, not kNN or saving */
        }
    }
    if (!stopped && agree(t, failed ? 2 : 0))
        return EXIT_INPUT;
    if (t->saved_step != step + off) {
        int rc = save_all(t, step, step / t->spe);
        if (rc)
            return rc;
    }
    sc_progress_end(&t->prog);
    char where[96];
    if (step % t->spe == 0)
        snprintf(where, sizeof where, "end of epoch %" PRId64, step / t->spe);
    else
        snprintf(where, sizeof where, "epoch %" PRId64 ", batch %" PRId64 " of %" PRId64, step / t->spe + 1,
                 step % t->spe, t->spe);
    if (stopped)
        sc_progress_message(&t->prog, "%s at step %" PRId64 " (%s): checkpoint %s written; continue with "
                            "--resume", stop_signal == SIGTERM ? "terminated" : stop_signal ? "interrupted"
                            : "stopped by another rank", step + off, where, t->ckpt);
    else if (step < t->epochs * t->spe)
        sc_progress_message(&t->prog, "stopped at step %" PRId64 " (--max-steps); checkpoint %s; continue with "
                            "--resume", step + off, t->ckpt);
    else
        sc_progress_message(&t->prog, "training complete: %" PRId64 " epochs, %" PRId64 " steps; checkpoint %s",
                            t->epochs, step + off, t->ckpt);
    return 0;
}

static void trainer_free(trainer *t)
{
    if (t->have_metrics)
        sc_train_log_close(&t->metrics);
    if (t->have_knn)
        sc_train_log_close(&t->knn);
    sc_optim_free(t->opt);
    sc_ema_plan_free(&t->ema);
    sc_stl10_close(t->data);
    sc_stl10_close(t->knn_train);
    sc_stl10_close(t->knn_test);
    free(t->ftr);
    free(t->fte);
    free(t->ytr);
    free(t->yte);
    sc_rundir_close(&t->run);
    sc_state_free(&t->s);
}

/* What rank 0 learned from the run directory, for the other ranks. */
typedef struct {
    int rc;
    int have_epochs, have_lr, have_seed;
    int64_t epochs;
    double lr;
    uint64_t seed;
    sc_split split;
    int64_t saved_step, run_images, epoch_images, gbatch, optim_steps;
    sc_ckpt_pos pos;
} shared_start;

/* Rank 0's parameters, buffers, optimizer state and start to every rank
 * (collective). Returns the agreed status of rank 0's part. */
static int share_start(trainer *t, sc_ckpt_pos *pos, int rc)
{
    if (t->ranks == 1)
        return rc;
    shared_start h = {
        .rc = rc, .have_epochs = t->o.have_epochs, .have_lr = t->o.have_lr, .have_seed = t->o.have_seed,
        .epochs = t->o.epochs, .lr = t->o.lr, .seed = t->o.seed, .split = t->o.split,
        .saved_step = t->saved_step, .run_images = t->run_images, .epoch_images = t->resume_epoch_images,
        .gbatch = t->resume_gbatch, .optim_steps = sc_optim_step_count(t->opt), .pos = *pos,
    };
    sc_comm_bcast(&h, sizeof h);
    if (h.rc)
        return h.rc;
    if (t->rank != 0) {
        t->o.have_epochs = h.have_epochs, t->o.have_lr = h.have_lr, t->o.have_seed = h.have_seed;
        t->o.epochs = h.epochs, t->o.lr = h.lr, t->o.seed = h.seed, t->o.split = h.split;
        t->saved_step = h.saved_step, t->run_images = h.run_images;
        t->resume_epoch_images = h.epoch_images, t->resume_gbatch = h.gbatch;
        *pos = h.pos;
        sc_optim_set_step_count(t->opt, h.optim_steps);
    }
    if (t->o.resume) {
        const sc_model_desc *d = t->d;
        sc_comm_bcast(t->s.params, sizeof(float) * (size_t)d->params_floats);
        sc_comm_bcast(t->s.buffers, sizeof(float) * (size_t)d->buffers_floats);
        for (int i = 0; i < sc_optim_state_count(t->opt); i++)
            sc_comm_bcast(sc_optim_state_ptr(t->opt, i), sizeof(float) * (size_t)sc_optim_state_floats(t->opt));
    }
    return 0;
}

static int run(trainer *t)
{
    const sc_model_desc *d = t->d;
    char err[1024];
    int rc;
    if (sc_desc_check(d, err, sizeof err)) {
        error(t, "error: %s", err);
        return EXIT_INTERNAL;
    }
    if (sc_state_alloc(&t->s, d, err, sizeof err)) {
        error(t, "error: %s", err);
        return agree(t, EXIT_INTERNAL);
    }
    if ((rc = agree(t, 0)))
        return rc;
    sc_threads_set(t->o.deterministic ? 1 : t->o.threads);
    sc_optim_config oc;
    sc_optim_config_from_train(&d->train, &oc);
    if (!(t->opt = sc_optim_new(&oc, d->params, d->nparams, d->params_floats, err, sizeof err))) {
        error(t, "error: %s", err);
        return EXIT_INTERNAL;
    }
    if (sc_ema_plan_init(&t->ema, d, err, sizeof err)) {
        error(t, "error: %s", err);
        return EXIT_INTERNAL;
    }
    /* Rank 0 owns the run directory: lock, checkpoint, logs. */
    sc_ckpt_pos pos = {0, 0, 0, "simclr"};
    struct stat st;
    rc = 0;
    if (t->rank == 0) {
        if ((rc = open_run_dir(t)))
            ;
        else if (t->o.resume)
            rc = resume(t, &pos);
        else if (stat(t->ckpt, &st) == 0) {
            error(t, "%s: error: the run directory already holds a checkpoint; continue it with --resume, or "
                  "choose another --out", t->ckpt);
            rc = EXIT_INPUT;
        }
    }
    if ((rc = share_start(t, &pos, rc)))
        return rc;
    if (!t->o.have_epochs)
        t->o.epochs = d->train.epochs;
    if (!t->o.have_lr)
        t->o.lr = d->train.lr;
    if (!t->o.have_seed && !t->o.resume)
        t->o.seed = d->train.seed;
    t->epochs = t->o.epochs;
    t->lr = t->o.lr;
    if ((rc = agree(t, open_data(t))))
        return rc;
    if (t->ranks > 1) {
        /* Rank 0 may have turned the kNN monitor off (no labeled splits). */
        int64_t knn[2] = {t->o.knn_every, t->o.knn_init};
        sc_comm_bcast(knn, sizeof knn);
        t->o.knn_every = knn[0];
        t->o.knn_init = (int)knn[1];
    }
    size_t n = sc_stl10_count(t->data);
    char split[16];
    sc_split_name(t->o.split, split, sizeof split);
    if (n < (size_t)t->gbatch) {
        error(t, "%s: error: the %s split holds %zu images, fewer than one batch of %" PRId64 "%s", t->o.data,
              split, n, t->gbatch, t->ranks > 1 ? " (the global batch of all ranks)" : "");
        return EXIT_INPUT;
    }
    if (t->o.resume && (size_t)t->run_images != n) {
        error(t, "%s: error: the run trained on a %s split of %" PRId64 " images, this one holds %zu: "
              "resume on the same data", t->o.data, split, t->run_images, n);
        return EXIT_INPUT;
    }
    t->spe = (int64_t)(n / (size_t)t->gbatch);
    if (sc_lr_schedule_init(&t->sched, &d->train, t->lr, (int)t->gbatch, t->epochs, t->spe, err, sizeof err)) {
        error(t, "error: %s", err);
        return EXIT_USAGE;
    }
    int64_t total = t->epochs * t->spe;
    /* Where the schedule resumes: the checkpoint's epoch, and in it the
     * global batch that holds its next image (the start of a batch unless
     * the global batch changed). */
    int64_t start = 0;
    if (t->o.resume) {
        start = pos.epoch * t->spe + t->resume_epoch_images / t->gbatch;
        t->step_offset = pos.step - start;
    }
    t->stop_at = total;
    int64_t max_at;
    if (t->o.max_steps && !__builtin_sub_overflow(t->o.max_steps, t->step_offset, &max_at) && max_at < total)
        t->stop_at = max_at;

    if (t->rank == 0) {
        if ((rc = sc_train_log_open(&t->metrics, t->metrics_path, METRICS_HEADER, t->o.resume ? pos.step : -1,
                                    err, sizeof err))) {
            error(t, "%s", err);
            rc = EXIT_INPUT;
        } else {
            t->have_metrics = 1;
            if ((rc = sc_train_log_open(&t->knn, t->knn_path, KNN_HEADER, t->o.resume ? pos.step : -1, err,
                                        sizeof err))) {
                error(t, "%s", err);
                rc = EXIT_INPUT;
            } else {
                t->have_knn = 1;
            }
        }
    }
    if ((rc = agree(t, rc)))
        return rc;

    const char *oname = sc_optim_kind_name(d->train.optimizer);
    if (t->ranks > 1)
        sc_progress_message(&t->prog, "%s: %d ranks x batch %d = global batch %" PRId64 " (%" PRId64 " views), "
                            "%s batchnorm; %s split of %s: %zu images, %" PRId64 " steps per epoch", d->name,
                            t->ranks, d->batch, t->gbatch, 2 * t->gbatch, t->o.global_bn ? "global" : "per-rank",
                            split, t->o.data, n, t->spe);
    else
        sc_progress_message(&t->prog, "%s: batch %d (%d views); %s split of %s: %zu images, %" PRId64
                            " steps per epoch", d->name, d->batch, 2 * d->batch, split, t->o.data, n, t->spe);
    sc_progress_message(&t->prog, "%" PRId64 " epochs (%" PRId64 " steps), %s lr %g%s (%s%s), seed %" PRIu64
                        ", %d threads%s%s", t->epochs, total, oname, t->sched.base_lr,
                        d->train.lr_scaling_linear ? " scaled" : "",
                        d->train.schedule == SC_SCHED_COSINE ? "cosine" : "constant",
                        d->train.warmup_epochs ? ", warmup" : "", t->o.seed, t->o.threads,
                        t->ranks > 1 ? " per rank" : "", t->o.deterministic ? ", deterministic" : "");
    if (t->o.resume) {
        if (start >= t->stop_at) {
            sc_progress_message(&t->prog, "nothing to do: %s is at step %" PRId64 " of %" PRId64, t->ckpt,
                                pos.step, t->stop_at + t->step_offset);
            return 0;
        }
        if (start - pos.epoch * t->spe >= t->spe) {
            error(t, "%s: error: its position (%" PRId64 " epochs done, %" PRId64 " images into the next) does "
                  "not fit epochs of %" PRId64 " steps", t->ckpt, pos.epoch, t->resume_epoch_images, t->spe);
            return EXIT_INPUT;
        }
        if (t->resume_gbatch != t->gbatch)
            sc_progress_message(&t->prog, "note: the run had a global batch of %" PRId64 ", it continues with %"
                                PRId64 " (lr scaled to it): %" PRId64 " of the epoch's %" PRId64 " images seen "
                                "are kept, %" PRId64 " seen again", t->resume_gbatch, t->gbatch,
                                t->resume_epoch_images, n, t->resume_epoch_images % t->gbatch);
        sc_progress_message(&t->prog, "resuming from %s at step %" PRId64 " (epoch %" PRId64 ", batch %" PRId64
                            " of %" PRId64 ")", t->ckpt, pos.step, pos.epoch + 1, start - pos.epoch * t->spe,
                            t->spe);
    } else {
        sc_params_init(d, t->s.params, t->s.buffers, t->o.seed);
        pos.seed = t->o.seed;
        t->saved_step = -1;
        double acc = 0;
        if (t->o.knn_init) {
            rc = t->rank == 0 ? knn_measure(t, 0, 0, &acc) : 0;
            if ((rc = agree(t, rc)))
                return rc;
            sc_progress_message(&t->prog, "initial encoder: kNN top-1 %.2f%% (%.1f s)", 100 * acc, t->knn_seconds);
        }
        if ((rc = save_all(t, 0, 0)))
            return rc;
        if (t->epochs == 0) {
            sc_progress_message(&t->prog, "0 epochs: initial checkpoint %s written", t->ckpt);
            return 0;
        }
    }

    sc_augment_spec spec;
    if (sc_desc_augment_spec(d, 1, &spec, err, sizeof err)) {
        error(t, "error: %s", err);
        return EXIT_INTERNAL;
    }
    sc_pipeline_config pc = {
        .data = t->data, .aug = &spec, .batch = d->batch, .threads = t->o.threads, .depth = 0,
        .seed = t->o.seed, .first_epoch = (int)pos.epoch, .epochs = (int)t->epochs,
        .rank = t->rank, .ranks = t->ranks,
    };
    sc_pipeline *pl;
    if (sc_pipeline_start(&pl, &pc, err, sizeof err)) {
        error(t, "error: %s", err);
        return agree(t, EXIT_INTERNAL);
    }
    if ((rc = agree(t, 0))) {
        sc_pipeline_stop(pl);
        return rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_RESETHAND; /* a second signal acts as usual */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A checkpoint from the middle of an epoch (a signal, --max-steps):
     * the batches before it are produced again and dropped, which gives
     * exactly the data an uninterrupted run would see next. */
    int64_t skip = start - pos.epoch * t->spe;
    if (skip > 0)
        sc_progress_message(&t->prog, "skipping %" PRId64 " batches to the checkpoint's place in epoch %" PRId64,
                            skip, pos.epoch + 1);
    sc_batch b;
    rc = 0;
    for (int64_t k = 0; k < skip && !rc; k++) {
        if (sc_pipeline_next(pl, &b) <= 0) {
            error(t, "error: the input pipeline failed while skipping to the checkpoint's position");
            rc = EXIT_INTERNAL;
        }
    }
    if (!(rc = agree(t, rc)))
        rc = train_loop(t, pl, start);
    sc_pipeline_stop(pl);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    return rc;
}

int sc_cmd_train(int argc, char **argv)
{
    trainer t;
    memset(&t, 0, sizeof t);
    t.d = &sc_model;
    t.run.lock_fd = -1;
    t.saved_step = -1;
    t.ranks = 1;
    int rc;
    if (sc_train_parse_options(argc, argv, &t.o, &rc))
        return rc;
    FILE *progress = stderr;
    if (t.d->mpi) {
        sc_comm_init();
        t.rank = sc_comm_rank();
        t.ranks = sc_comm_size();
        sc_comm_set_global_bn(t.o.global_bn);
        sc_comm_set_grad_floats(sc_param_count(t.d));
        if (!t.o.have_threads) {
            int per = sc_cpus() / sc_comm_local_size();
            t.o.threads = per > 0 ? per : 1;
        }
        /* Progress and notes come from rank 0; errors from any rank. */
        if (t.rank != 0 && !(progress = fopen("/dev/null", "w")))
            progress = stderr;
    }
    if (t.o.threads == 1)
        t.o.deterministic = 1;
    t.gbatch = (int64_t)t.d->batch * t.ranks;
    t.resume_gbatch = t.gbatch;
    sc_progress_init(&t.prog, progress, t.rank == 0 && isatty(STDERR_FILENO), t.o.log_every);
    rc = run(&t);
    sc_progress_end(&t.prog);
    trainer_free(&t);
    if (progress != stderr)
        fclose(progress);
    return rc;
}
