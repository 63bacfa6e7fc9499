/* test_train: the training binary's train and check-data subcommands,
 * end to end. Setup compiles models/resnet-small.xml at batch 32 and
 * converts two slices of the default dataset (fmnist2stl10 --limit 2000
 * and --limit 320) into a temporary directory under SC_BINARY_DIR.
 *
 * test_learns: 4 epochs of the 2000-image slice (248 steps, --threads 1:
 *   on two shared cores OpenBLAS threads cost more than they give). The loss of
 *   the last 20 steps must lie at least 10% below that of the first 20,
 *   and the kNN accuracy after training must beat the random-init
 *   encoder's by 5 points or more (the random-init figure is the run's own
 *   --knn-init measurement before the first step: same binary, same
 *   features, same monitor). metrics.csv must hold every step once.
 * test_kill_resume: on the 320-image slice (10 steps per epoch, 4 epochs,
 *   --threads 1), a run killed with SIGKILL at a random step after the
 *   first epoch's checkpoint and resumed, and a run stopped by SIGINT at a
 *   random step (a checkpoint from mid-epoch) and resumed, must end with
 *   the same checkpoint, tensor for tensor and bit for bit, as an
 *   uninterrupted run, and with the same metrics rows (step, epoch, loss,
 *   lr). So must a run stopped by SIGTERM. SC_TEST_SEED fixes the random
 *   kill points (printed).
 * test_lock: while a run is alive (held by SIGSTOP), a second train on
 *   its directory, fresh or --resume, is refused naming the directory and
 *   the lock; after SIGKILL its lock file stays and --resume goes on, to
 *   the uninterrupted run's checkpoint and metrics.
 * test_deterministic: two runs at --threads 2 give the same checkpoint
 *   and metrics bit for bit; so do two at --deterministic --threads 2,
 *   equal to a run at --threads 1.
 * test_guards: a NaN loss (--lr 1e30) stops with status 1 naming the step
 *   and leaves the checkpoint byte for byte; a checkpoint that cannot be
 *   written (the file size limit stands in for a full disk) stops with
 *   status 1 and leaves the old one byte for byte, no temporary file; an
 *   unwritable --out, a missing --data, --resume without a checkpoint, a
 *   fresh run over an existing one, a resume with another seed, split or
 *   dataset and bad options are clear errors;
 *   check-data accepts good data and rejects a truncated file naming it.
 * SC_KEEP_TMP keeps the temporary directory; SC_TEST_FILTER (a cmocka
 * pattern) selects tests. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sc_safetensors.h"
#include "st_compare.h"
#include "test_util.h"

static char *tmpdir, *binary, *fm_big, *fm_small;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- running programs ---- */

/* Starts argv with stdout to out and stderr to err (files, or inherited
 * when NULL); fsize > 0 limits the size of files it writes (SIGXFSZ
 * ignored, so writes fail with EFBIG). */
static pid_t start(char *const argv[], const char *out, const char *err, long fsize)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (out) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dup2(fd, 1) < 0)
                _exit(127);
            close(fd);
        }
        if (err) {
            int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dup2(fd, 2) < 0)
                _exit(127);
            close(fd);
        }
        if (fsize > 0) {
            struct rlimit r;
            getrlimit(RLIMIT_FSIZE, &r);
            r.rlim_cur = (rlim_t)fsize;
            signal(SIGXFSZ, SIG_IGN);
            if (setrlimit(RLIMIT_FSIZE, &r))
                _exit(127);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Exit status, or 128 + signal. */
static int finish(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static int run(char *const argv[], const char *out, const char *err, long fsize)
{
    return finish(start(argv, out, err, fsize));
}

static void assert_file_contains(const char *path, const char *what)
{
    char *s = slurp(path);
    assert_non_null(s);
    if (!strstr(s, what))
        fail_msg("expected '%s' in %s:\n%s", what, path, s);
    free(s);
}

/* Prints a program's stderr when it failed unexpectedly. */
static void expect_status(int got, int want, const char *errfile)
{
    if (got != want) {
        char *s = errfile ? slurp(errfile) : NULL;
        fail_msg("exit status %d, expected %d; stderr:\n%s", got, want, s ? s : "(none)");
    }
}

/* ---- CSV ---- */

typedef struct {
    int n;
    long long step[4096];
    long long epoch[4096];
    double loss[4096];
    char key[4096][64];   /* "step,epoch,loss,lr" as written: the deterministic columns */
} metrics;

static void read_metrics(const char *path, metrics *m)
{
    char *s = slurp(path);
    assert_non_null(s);
    char *save = NULL, *line = strtok_r(s, "\n", &save);
    assert_non_null(line);
    assert_string_equal(line, "step,epoch,loss,lr,data_wait_s,step_s");
    m->n = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        assert_true(m->n < 4096);
        char lr[32];
        double wait, secs;
        int k = m->n;
        if (sscanf(line, "%lld,%lld,%lf,%31[^,],%lf,%lf", &m->step[k], &m->epoch[k], &m->loss[k], lr, &wait,
                   &secs) != 6)
            fail_msg("%s: malformed row '%s'", path, line);
        const char *c = line;
        for (int commas = 0; *c && commas < 4; c++)
            commas += *c == ',';
        snprintf(m->key[k], sizeof m->key[k], "%.*s", (int)(c - line - 1), line);
        m->n++;
    }
    free(s);
}

/* knn.csv rows: step, epoch, accuracy. */
static int read_knn(const char *path, long long *step, long long *epoch, double *acc, int max)
{
    char *s = slurp(path);
    assert_non_null(s);
    char *save = NULL, *line = strtok_r(s, "\n", &save);
    assert_non_null(line);
    assert_string_equal(line, "step,epoch,knn_top1,seconds");
    int n = 0;
    while ((line = strtok_r(NULL, "\n", &save)) && n < max) {
        double secs;
        if (sscanf(line, "%lld,%lld,%lf,%lf", &step[n], &epoch[n], &acc[n], &secs) != 4)
            fail_msg("%s: malformed row '%s'", path, line);
        n++;
    }
    free(s);
    return n;
}

static int count_lines(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    char buf[65536];
    int n = 0;
    ssize_t k;
    while ((k = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < k; i++)
            n += buf[i] == '\n';
    close(fd);
    return n;
}

/* ---- checkpoints ---- */

static long long ckpt_meta_int(const char *path, const char *key)
{
    sc_st_file f;
    char err[512];
    if (sc_st_read(path, &f, err, sizeof err))
        fail_msg("%s", err);
    const char *v = sc_st_meta(&f, key);
    assert_non_null(v);
    long long x = atoll(v);
    sc_st_free(&f);
    return x;
}

/* The same tensors and run metadata, and the optimizer's state among them. */
static void assert_same_checkpoint(const char *a, const char *b)
{
    static const char *const keys[] = {"model", "step", "epoch", "seed", "optim_step", "kind"};
    assert_true(st_assert_same(a, b, keys, sizeof keys / sizeof *keys, "optim/") > 0);
}

static void assert_same_metrics(const char *a, const char *b)
{
    static metrics ma, mb;
    read_metrics(a, &ma);
    read_metrics(b, &mb);
    assert_int_equal(ma.n, mb.n);
    for (int i = 0; i < ma.n; i++) {
        assert_int_equal(ma.step[i], i + 1);
        if (strcmp(ma.key[i], mb.key[i]))
            fail_msg("row %d: '%s' in %s, '%s' in %s", i + 1, ma.key[i], a, mb.key[i], b);
    }
}

/* Files in dir whose name contains part. */
static int files_named_in(const char *dir, const char *part)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    int n = 0;
    for (struct dirent *e; (e = readdir(dp));)
        n += strstr(e->d_name, part) != NULL;
    closedir(dp);
    return n;
}

static int tmp_files_in(const char *dir)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    int n = 0;
    for (struct dirent *e; (e = readdir(dp));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(dp);
    return n;
}

/* ---- tests ---- */

static void test_learns(void **st)
{
    (void)st;
    char *out = xprintf("%s/learn", tmpdir), *errf = xprintf("%s/learn.err", tmpdir);
    char *argv[] = {binary, "train", "--data", fm_big, "--out", out, "--epochs", "4", "--knn-init",
                    "--knn-every", "4", "--threads", "1", "--log-every", "50", NULL};
    double t0 = now_seconds();
    expect_status(run(argv, NULL, errf, 0), 0, errf);
    double secs = now_seconds() - t0;

    char *mpath = xprintf("%s/metrics.csv", out), *kpath = xprintf("%s/knn.csv", out);
    static metrics m;
    read_metrics(mpath, &m);
    assert_int_equal(m.n, 248); /* 2000 / 32 = 62 steps per epoch */
    double first = 0, last = 0;
    for (int i = 0; i < m.n; i++) {
        assert_int_equal(m.step[i], i + 1);
        assert_int_equal(m.epoch[i], i / 62 + 1);
        assert_true(isfinite(m.loss[i]));
        /* Adam, lr 1e-3, no scaling, constant schedule. */
        assert_string_equal(strrchr(m.key[i], ',') + 1, "0.001");
    }
    for (int i = 0; i < 20; i++) {
        first += m.loss[i] / 20;
        last += m.loss[m.n - 1 - i] / 20;
    }
    long long ks[8], ke[8];
    double acc[8];
    int nk = read_knn(kpath, ks, ke, acc, 8);
    assert_int_equal(nk, 2);
    assert_int_equal(ks[0], 0);
    assert_int_equal(ke[0], 0);
    assert_int_equal(ks[1], 248);
    assert_int_equal(ke[1], 4);
    print_message("resnet-small, batch 32, 2000 images, 248 steps in %.1f s: loss %.4f (first 20 steps) -> "
                  "%.4f (last 20); kNN top-1 %.2f%% (random init) -> %.2f%% (trained)\n",
                  secs, first, last, 100 * acc[0], 100 * acc[1]);
    assert_true(last < 0.9 * first);
    assert_true(acc[1] >= acc[0] + 0.05);

    /* Plain progress lines without a terminal, and the epoch summaries. */
    assert_file_contains(errf, "step 50/248  epoch 1/4 (50/62)  loss ");
    assert_file_contains(errf, "views/s");
    assert_file_contains(errf, "ETA ");
    assert_file_contains(errf, "epoch 4/4: mean loss ");
    assert_file_contains(errf, "kNN top-1 ");
    assert_file_contains(errf, "training complete: 4 epochs, 248 steps");
    char *cpath = xprintf("%s/checkpoint.safetensors", out);
    assert_int_equal(ckpt_meta_int(cpath, "step"), 248);
    assert_int_equal(ckpt_meta_int(cpath, "epoch"), 4);
    free(cpath);
    free(mpath);
    free(kpath);
    free(out);
    free(errf);
}

static unsigned test_seed;

/* Waits until the run's metrics.csv holds `rows` rows, then sends sig.
 * Returns the exit status of the run. */
static int interrupt_at(char *const argv[], const char *out, const char *errf, int rows, int sig)
{
    char *mpath = xprintf("%s/metrics.csv", out);
    pid_t pid = start(argv, NULL, errf, 0);
    assert_true(pid > 0);
    double t0 = now_seconds();
    int st;
    for (;;) {
        if (count_lines(mpath) - 1 >= rows) {
            kill(pid, sig);
            break;
        }
        if (waitpid(pid, &st, WNOHANG) == pid) {
            free(mpath);
            fail_msg("the run ended before it reached step %d", rows);
        }
        if (now_seconds() - t0 > 300) {
            kill(pid, SIGKILL);
            fail_msg("the run did not reach step %d in 300 s", rows);
        }
        usleep(2000);
    }
    free(mpath);
    return finish(pid);
}

/* The runs of test_kill_resume and test_lock: 4 epochs of 10 steps. */
#define TRAIN_ARGS(dir) binary, "train", "--data", fm_small, "--out", dir, "--epochs", "4", "--threads", "1", \
                        "--knn-every", "0", "--log-every", "1000"

/* The uninterrupted run they compare with (made once). */
static char *uninterrupted(void)
{
    char *a = xprintf("%s/uninterrupted", tmpdir), *ca = xprintf("%s/checkpoint.safetensors", a);
    if (access(ca, R_OK)) {
        char *errf = xprintf("%s/uninterrupted.err", tmpdir);
        char *argv_a[] = {TRAIN_ARGS(a), NULL};
        expect_status(run(argv_a, NULL, errf, 0), 0, errf);
        free(errf);
    }
    free(ca);
    return a;
}

static void test_kill_resume(void **st)
{
    (void)st;
    enum { SPE = 10, EPOCHS = 4, TOTAL = SPE * EPOCHS };
    char *a = uninterrupted(), *b = xprintf("%s/killed", tmpdir),
         *c = xprintf("%s/interrupted", tmpdir);
    char *errf = xprintf("%s/resume.err", tmpdir);
    char *ca = xprintf("%s/checkpoint.safetensors", a);
    assert_int_equal(ckpt_meta_int(ca, "step"), TOTAL);

    srand(test_seed);
    /* SIGKILL at a random step after the first epoch's checkpoint: row
     * SPE + 1 is written after that checkpoint. */
    int kill_row = SPE + 1 + rand() % (TOTAL - SPE - 2);
    char *argv_b[] = {TRAIN_ARGS(b), NULL};
    assert_int_equal(interrupt_at(argv_b, b, errf, kill_row, SIGKILL), 128 + SIGKILL);
    char *cb = xprintf("%s/checkpoint.safetensors", b), *mb = xprintf("%s/metrics.csv", b);
    long long at = ckpt_meta_int(cb, "step");
    int rows = count_lines(mb) - 1;
    print_message("SIGKILL after row %d: %d rows written, checkpoint at step %lld\n", kill_row, rows, at);
    assert_true(at >= SPE && at % SPE == 0 && at < TOTAL);
    char *argv_b2[] = {TRAIN_ARGS(b), "--resume", NULL};
    expect_status(run(argv_b2, NULL, errf, 0), 0, errf);
    assert_file_contains(errf, "resuming from ");
    assert_same_checkpoint(ca, cb);
    char *ma = xprintf("%s/metrics.csv", a);
    assert_same_metrics(ma, mb);

    /* SIGINT: a checkpoint where the run stands, usually mid-epoch. */
    int int_row = SPE + 2 + rand() % (TOTAL - SPE - 4);
    char *argv_c[] = {TRAIN_ARGS(c), NULL};
    assert_int_equal(interrupt_at(argv_c, c, errf, int_row, SIGINT), 0);
    assert_file_contains(errf, "interrupted at step ");
    char *cc = xprintf("%s/checkpoint.safetensors", c), *mc = xprintf("%s/metrics.csv", c);
    at = ckpt_meta_int(cc, "step");
    print_message("SIGINT after row %d: checkpoint at step %lld (epoch %lld done)\n", int_row, at,
                  ckpt_meta_int(cc, "epoch"));
    assert_true(at >= int_row && at < TOTAL);
    assert_int_equal(count_lines(mc) - 1, at);
    char *argv_c2[] = {TRAIN_ARGS(c), "--resume", NULL};
    expect_status(run(argv_c2, NULL, errf, 0), 0, errf);
    if (at % SPE)
        assert_file_contains(errf, "skipping ");
    assert_same_checkpoint(ca, cc);
    assert_same_metrics(ma, mc);

    /* SIGTERM (what a batch system sends): the same as SIGINT. */
    char *d = xprintf("%s/terminated", tmpdir);
    int term_row = SPE + 2 + rand() % (TOTAL - SPE - 4);
    char *argv_d[] = {TRAIN_ARGS(d), NULL};
    assert_int_equal(interrupt_at(argv_d, d, errf, term_row, SIGTERM), 0);
    assert_file_contains(errf, "terminated at step ");
    char *cd = xprintf("%s/checkpoint.safetensors", d), *md = xprintf("%s/metrics.csv", d);
    at = ckpt_meta_int(cd, "step");
    print_message("SIGTERM after row %d: checkpoint at step %lld\n", term_row, at);
    assert_true(at >= term_row && at < TOTAL);
    assert_int_equal(count_lines(md) - 1, at);
    char *argv_d2[] = {TRAIN_ARGS(d), "--resume", NULL};
    expect_status(run(argv_d2, NULL, errf, 0), 0, errf);
    assert_same_checkpoint(ca, cd);
    assert_same_metrics(ma, md);
    free(d), free(cd), free(md);

    free(a), free(b), free(c), free(errf), free(ca), free(cb), free(cc), free(ma), free(mb), free(mc);
}

/* The run directory's lock: a second train on a directory whose run is
 * alive (stopped with SIGSTOP, so that it cannot finish first) is
 * refused, naming the directory; once that run is killed, the lock it
 * left behind does not block --resume. */
static void test_lock(void **st)
{
    (void)st;
    char *a = uninterrupted(), *ca = xprintf("%s/checkpoint.safetensors", a), *ma = xprintf("%s/metrics.csv", a);
    char *errf = xprintf("%s/lock-first.err", tmpdir), *errr = xprintf("%s/lock-resume.err", tmpdir);
    char *l = xprintf("%s/locked", tmpdir), *ml = xprintf("%s/metrics.csv", l),
         *cl = xprintf("%s/checkpoint.safetensors", l), *errl = xprintf("%s/lock.err", tmpdir);
    char *argv_l[] = {TRAIN_ARGS(l), NULL};
    pid_t pid = start(argv_l, NULL, errf, 0);
    assert_true(pid > 0);
    double t0 = now_seconds();
    while (count_lines(ml) - 1 < 2) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            fail_msg("the first run ended before its second step");
        if (now_seconds() - t0 > 300) {
            kill(pid, SIGKILL);
            fail_msg("the first run did not reach step 2 in 300 s");
        }
        usleep(2000);
    }
    assert_int_equal(kill(pid, SIGSTOP), 0);
    int second = run(argv_l, NULL, errl, 0);
    char *argv_l2[] = {TRAIN_ARGS(l), "--resume", NULL};
    int third = run(argv_l2, NULL, errr, 0);
    kill(pid, SIGKILL);
    assert_int_equal(finish(pid), 128 + SIGKILL);
    expect_status(second, 1, errl);
    assert_file_contains(errl, l);
    assert_file_contains(errl, "another training run is using this run directory");
    expect_status(third, 1, errr);
    assert_file_contains(errr, "another training run is using this run directory");
    assert_true(files_named_in(l, "lock") > 0);   /* left by the killed run */
    expect_status(run(argv_l2, NULL, errr, 0), 0, errr);
    assert_file_contains(errr, "resuming from ");
    assert_same_checkpoint(ca, cl);
    assert_same_metrics(ma, ml);
    free(l), free(ml), free(cl), free(errl);
    free(a), free(ca), free(ma), free(errf), free(errr);
}
#undef TRAIN_ARGS

/* Training gives the same bits from run to run at the same thread count:
 * the pool splits every kernel statically and sums partials in a fixed
 * order (the main job runs at --threads 2 on this machine), and in the
 * deterministic mode (--deterministic: kernels and OpenBLAS on one
 * thread, the input pipeline on --threads workers) the result is that of
 * --threads 1. Five steps of the 320-image slice each. */
static void test_deterministic(void **st)
{
    (void)st;
    static const char *const names[] = {"threads2-a", "threads2-b", "det-a", "det-b", "threads1"};
    char *dirs[5], *ckpts[5], *mets[5];
    char *errf = xprintf("%s/det.err", tmpdir);
    for (int i = 0; i < 5; i++) {
        dirs[i] = xprintf("%s/%s", tmpdir, names[i]);
        ckpts[i] = xprintf("%s/checkpoint.safetensors", dirs[i]);
        mets[i] = xprintf("%s/metrics.csv", dirs[i]);
        char *argv[] = {binary, "train", "--data", fm_small, "--out", dirs[i], "--epochs", "1", "--max-steps", "5",
                        "--knn-every", "0", "--threads", i == 4 ? "1" : "2", i == 2 || i == 3 ? "--deterministic"
                        : NULL, NULL};
        expect_status(run(argv, NULL, errf, 0), 0, errf);
        assert_int_equal(ckpt_meta_int(ckpts[i], "step"), 5);
    }
    assert_same_checkpoint(ckpts[0], ckpts[1]);
    assert_same_metrics(mets[0], mets[1]);
    assert_same_checkpoint(ckpts[2], ckpts[3]);
    assert_same_metrics(mets[2], mets[3]);
    assert_same_checkpoint(ckpts[2], ckpts[4]);
    assert_same_metrics(mets[2], mets[4]);
    for (int i = 0; i < 5; i++)
        free(dirs[i]), free(ckpts[i]), free(mets[i]);
    free(errf);
}

static void test_guards(void **st)
{
    (void)st;
    char *run_dir = xprintf("%s/guards", tmpdir), *errf = xprintf("%s/guards.err", tmpdir),
         *outf = xprintf("%s/guards.out", tmpdir);
    char *ckpt = xprintf("%s/checkpoint.safetensors", run_dir), *mpath = xprintf("%s/metrics.csv", run_dir);
    char *argv1[] = {binary, "train", "--data", fm_small, "--out", run_dir, "--epochs", "1", "--threads", "1",
                     "--knn-every", "0", NULL};
    expect_status(run(argv1, NULL, errf, 0), 0, errf);
    size_t n;
    char *good = slurp_len(ckpt, &n);
    assert_non_null(good);

    /* NaN: the first step at lr 1e30 is finite, the next one is not. */
    char *argv_nan[] = {binary, "train", "--data", fm_small, "--out", run_dir, "--resume", "--epochs", "3",
                        "--lr", "1e30", "--threads", "1", "--knn-every", "0", NULL};
    expect_status(run(argv_nan, NULL, errf, 0), 1, errf);
    static metrics m;
    read_metrics(mpath, &m);
    assert_true(m.n >= 11);
    char *want = xprintf("error: step %d (epoch 2, batch %d of 10): ", m.n + 1, m.n + 1 - 10);
    assert_file_contains(errf, want);
    assert_file_contains(errf, "): the loss is NaN; stopping without saving");
    assert_file_contains(errf, "The last good checkpoint, ");
    free(want);
    size_t n2;
    char *now = slurp_len(ckpt, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(good, now, n);
    free(now);

    /* A checkpoint that cannot be written (EFBIG as a full disk's ENOSPC):
     * the epoch 2 save fails, the epoch 1 checkpoint stays. */
    char *argv_full[] = {binary, "train", "--data", fm_small, "--out", run_dir, "--resume", "--epochs", "3",
                         "--threads", "1", "--knn-every", "0", NULL};
    expect_status(run(argv_full, NULL, errf, (long)n - 1), 1, errf);
    assert_file_contains(errf, "File too large");
    assert_file_contains(errf, "the previous checkpoint (step 10) is intact");
    now = slurp_len(ckpt, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(good, now, n);
    free(now);
    assert_int_equal(tmp_files_in(run_dir), 0);
    /* ... and the run goes on from it once there is room. */
    expect_status(run(argv_full, NULL, errf, 0), 0, errf);
    assert_int_equal(ckpt_meta_int(ckpt, "step"), 30);
    read_metrics(mpath, &m);
    assert_int_equal(m.n, 30);

    /* A fresh run over an existing one. */
    expect_status(run(argv1, NULL, errf, 0), 1, errf);
    assert_file_contains(errf, "already holds a checkpoint; continue it with --resume");

    /* A resumed run keeps its seed, split and data. */
    char *argv_seed[] = {binary, "train", "--data", fm_small, "--out", run_dir, "--resume", "--seed", "7", NULL};
    expect_status(run(argv_seed, NULL, errf, 0), 2, errf);
    assert_file_contains(errf, "differs from the run's seed");
    char *argv_split[] = {binary, "train", "--data", fm_small, "--out", run_dir, "--resume", "--split", "train",
                          NULL};
    expect_status(run(argv_split, NULL, errf, 0), 2, errf);
    assert_file_contains(errf, "a resumed run keeps its split");
    char *argv_data[] = {binary, "train", "--data", fm_big, "--out", run_dir, "--resume", "--knn-every", "0", NULL};
    expect_status(run(argv_data, NULL, errf, 0), 1, errf);
    assert_file_contains(errf, "resume on the same data");

    /* An --out under a regular file. */
    char *file = xprintf("%s/a-file", tmpdir), *bad_out = xprintf("%s/a-file/run", tmpdir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    char *argv_out[] = {binary, "train", "--data", fm_small, "--out", bad_out, "--epochs", "1", NULL};
    expect_status(run(argv_out, NULL, errf, 0), 1, errf);
    assert_file_contains(errf, bad_out);
    assert_file_contains(errf, "cannot create the run directory: Not a directory");

    /* Missing data. */
    char *nodata = xprintf("%s/no-such-data", tmpdir), *out2 = xprintf("%s/run2", tmpdir);
    char *argv_nd[] = {binary, "train", "--data", nodata, "--out", out2, NULL};
    expect_status(run(argv_nd, NULL, errf, 0), 1, errf);
    assert_file_contains(errf, nodata);
    assert_file_contains(errf, "No such file or directory");

    /* --resume with nothing to resume. */
    char *argv_nr[] = {binary, "train", "--data", fm_small, "--out", out2, "--resume", NULL};
    expect_status(run(argv_nr, NULL, errf, 0), 1, errf);
    assert_file_contains(errf, "cannot resume");

    /* Usage errors. */
    char *argv_u1[] = {binary, "train", "--data", fm_small, "--epochs", "-1", NULL};
    expect_status(run(argv_u1, NULL, errf, 0), 2, errf);
    assert_file_contains(errf, "--epochs");
    char *argv_u2[] = {binary, "train", "--out", out2, NULL};
    expect_status(run(argv_u2, NULL, errf, 0), 2, errf);
    assert_file_contains(errf, "--data");
    char *argv_u3[] = {binary, "train", "--data", fm_small, "--lr", "nan", NULL};
    expect_status(run(argv_u3, NULL, errf, 0), 2, errf);

    /* check-data: good, then a test_X.bin cut short. */
    char *argv_cd[] = {binary, "check-data", "--data", fm_small, NULL};
    expect_status(run(argv_cd, outf, errf, 0), 0, errf);
    assert_file_contains(outf, "320 images");
    char *bad = xprintf("%s/bad-data", tmpdir);
    assert_int_equal(mkdir(bad, 0755), 0);
    static const char *const files[] = {"train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin",
                                        "unlabeled_X.bin", "fold_indices.txt"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *from = xprintf("%s/%s", fm_small, files[i]), *to = xprintf("%s/%s", bad, files[i]);
        size_t len;
        char *bytes = slurp_len(from, &len);
        assert_non_null(bytes);
        if (!strcmp(files[i], "test_X.bin"))
            len -= 1000;
        FILE *g = fopen(to, "wb");
        assert_non_null(g);
        assert_int_equal(fwrite(bytes, 1, len, g), len);
        fclose(g);
        free(bytes);
        free(from);
        free(to);
    }
    char *argv_bad[] = {binary, "check-data", "--data", bad, NULL};
    expect_status(run(argv_bad, outf, errf, 0), 1, errf);
    char *bad_file = xprintf("%s/test_X.bin: error: ", bad);
    assert_file_contains(errf, bad_file);
    free(bad_file);
    free(bad);
    free(good);
    free(file), free(bad_out), free(nodata), free(out2);
    free(run_dir), free(errf), free(outf), free(ckpt), free(mpath);
}

/* ---- setup ---- */

static int setup(void **st)
{
    (void)st;
    const char *bin = getenv("SC_BINARY_DIR"), *simclrc = getenv("SIMCLRC"), *src = getenv("SC_SOURCE_DIR");
    if (!bin || !simclrc || !src) {
        fprintf(stderr, "test_train: SC_SOURCE_DIR, SC_BINARY_DIR and SIMCLRC must be set (run through ctest)\n");
        return -1;
    }
    const char *seed = getenv("SC_TEST_SEED");
    test_seed = seed ? (unsigned)strtoul(seed, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("test_train: SC_TEST_SEED=%u\n", test_seed);
    tmpdir = xprintf("%s/tmp-train-XXXXXX", bin);
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "test_train: cannot make a directory in %s: %s\n", bin, strerror(errno));
        return -1;
    }
    binary = xprintf("%s/resnet-small", tmpdir);
    fm_big = xprintf("%s/fm2000", tmpdir);
    fm_small = xprintf("%s/fm320", tmpdir);
    char *model = xprintf("%s/models/resnet-small.xml", src), *conv = xprintf("%s/tools/fmnist2stl10", bin);
    char *errf = xprintf("%s/setup.err", tmpdir);
    char *cc[] = {(char *)simclrc, model, "-o", binary, "--batch", "32", NULL};
    char *c1[] = {conv, "--limit", "2000", fm_big, NULL};
    char *c2[] = {conv, "--limit", "320", fm_small, NULL};
    int rc = 0;
    double t0 = now_seconds();
    if (run(cc, NULL, errf, 0) || run(c1, "/dev/null", errf, 0) || run(c2, "/dev/null", errf, 0)) {
        char *s = slurp(errf);
        fprintf(stderr, "test_train: setup failed:\n%s\n", s ? s : "");
        free(s);
        rc = -1;
    }
    printf("test_train: compiled the model and converted the data in %.1f s\n", now_seconds() - t0);
    free(model);
    free(conv);
    free(errf);
    return rc;
}

static int teardown(void **st)
{
    (void)st;
    if (!getenv("SC_KEEP_TMP") && tmpdir) {
        char *cmd = xprintf("rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_train: could not remove %s\n", tmpdir);
        free(cmd);
    }
    free(tmpdir), free(binary), free(fm_big), free(fm_small);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_kill_resume),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_guards),
    };
    if (getenv("SC_TEST_FILTER"))   /* a cmocka pattern, e.g. "test_lock" */
        cmocka_set_test_filter(getenv("SC_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
