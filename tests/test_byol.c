/* test_byol: BYOL training end to end (issue 17). Setup compiles
 * tests/specs/byol.xml (and tests/specs/head-batchnorm.xml, an NT-Xent model)
 * and converts 320 images of the default dataset (fmnist2stl10).
 *
 * test_three_steps: `dump-step --steps 3` (sc_step, the optimizer, the
 *   target's EMA) against tests/byol_torch.py, a PyTorch float64 reference
 *   of online + target + EMA + SGD: every parameter of both networks and
 *   every running statistic after the third step (its tolerance there);
 *   the same reference without the EMA (--control) must fail.
 * test_resume: a run stopped by --max-steps mid-epoch and one stopped by
 *   SIGTERM at a random step, each resumed, end with the uninterrupted
 *   run's checkpoint bit for bit (the target network included: it is in
 *   the checkpoint, it moved away from its initial copy and from the
 *   online network) and its metrics rows. SC_TEST_SEED fixes the SIGTERM
 *   point (printed).
 * test_export: `export` writes the online encoder by default and the
 *   target encoder with --network target, each equal to the checkpoint's
 *   tensors, under the same keys; --network target of an NT-Xent model
 *   is refused with status 1; --network other is a usage error (2). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sc_safetensors.h"
#include "st_compare.h"
#include "test_util.h"

static char *tmpdir, *binary, *ntxent, *data, *log_path;
static unsigned test_seed;

enum { SPE = 106, EPOCHS = 3, TOTAL = SPE * EPOCHS }; /* 320 images, batch 3 */

static char *path(const char *name) { return xprintf("%s/%s", tmpdir, name); }

static void expect_status(char *const argv[], int want)
{
    int got = run_log(argv, log_path);
    if (got != want) {
        char *s = slurp(log_path);
        fail_msg("%s %s: exit status %d, expected %d; output:\n%s", argv[0], argv[1], got, want, s ? s : "");
    }
}

static int lines_in(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void read_st(const char *file, sc_st_file *f)
{
    char err[512];
    if (sc_st_read(file, f, err, sizeof err))
        fail_msg("%s", err);
}

/* Tensor name of a (a checkpoint or an export) against tensor bname of b:
 * same shape and bytes; returns memcmp's answer. */
static int compare(const sc_st_file *a, const char *name, const sc_st_file *b, const char *bname)
{
    const sc_st_tensor *x = sc_st_get(a, name), *y = sc_st_get(b, bname);
    if (!x || !y)
        fail_msg("missing tensor %s or %s", name, bname);
    assert_int_equal(x->nbytes, y->nbytes);
    return memcmp(x->data, y->data, x->nbytes);
}

/* The same tensors and counters, the target network among them. */
static void assert_same_checkpoint(const char *a, const char *b)
{
    static const char *const keys[] = {"step", "epoch", "optim_step"};
    /* byol.xml's target: 8 parameters, 4 running statistics */
    assert_true(st_assert_same(a, b, keys, sizeof keys / sizeof *keys, "target.") >= 12);
}

static void assert_same_file(const char *a, const char *b)
{
    char *x = slurp(a), *y = slurp(b);
    assert_non_null(x);
    assert_non_null(y);
    /* metrics.csv: the last two columns are timings */
    for (char *p = x, *q = y; *p && *q;) {
        char *pe = strchr(p, '\n'), *qe = strchr(q, '\n');
        assert_non_null(pe);
        assert_non_null(qe);
        int commas = 0;
        char *pk = p, *qk = q;
        while (pk < pe && commas < 4)
            commas += *pk++ == ',';
        commas = 0;
        while (qk < qe && commas < 4)
            commas += *qk++ == ',';
        if (pk - p != qk - q || memcmp(p, q, (size_t)(pk - p)))
            fail_msg("metrics differ: '%.*s' in %s, '%.*s' in %s", (int)(pe - p), p, a, (int)(qe - q), q, b);
        p = pe + 1;
        q = qe + 1;
    }
    assert_int_equal(lines_in(a), lines_in(b));
    free(x);
    free(y);
}

#define TRAIN_ARGS(dir) binary, "train", "--data", data, "--out", dir, "--epochs", "3", "--threads", "1", \
                        "--knn-every", "0", "--log-every", "100000"

static char *uninterrupted(void)
{
    char *a = path("uninterrupted"), *ca = xprintf("%s/checkpoint.safetensors", a);
    if (access(ca, R_OK)) {
        char *argv[] = {TRAIN_ARGS(a), NULL};
        expect_status(argv, 0);
    }
    free(ca);
    return a;
}

static void test_three_steps(void **st)
{
    (void)st;
    const char *py = getenv("SC_PYTHON"), *src = getenv("SC_SOURCE_DIR");
    char *dump = path("steps.safetensors");
    char *argv[] = {binary, "dump-step", dump, "--steps", "3", "--seed", "7", NULL};
    expect_status(argv, 0);
    char *script = xprintf("%s/tests/byol_torch.py", src), *model = xprintf("%s/tests/specs/byol.xml", src);
    char *ref[] = {(char *)py, script, model, dump, NULL};
    int rc = run_log(ref, log_path);
    char *out = slurp(log_path);
    print_message("%s", out ? out : "");
    free(out);
    assert_int_equal(rc, 0);
    /* the control: a reference without the target's update must fail */
    char *ctl[] = {(char *)py, script, model, dump, "--control", NULL};
    assert_int_equal(run_log(ctl, log_path), 1);
    free(dump), free(script), free(model);
}

static void test_resume(void **st)
{
    (void)st;
    char *a = uninterrupted(), *ca = xprintf("%s/checkpoint.safetensors", a);
    char *ma = xprintf("%s/metrics.csv", a);

    /* The target network trained: not its initial copy of the online
     * network, not the online network either. */
    sc_st_file f;
    read_st(ca, &f);
    assert_true(compare(&f, "stem.weight", &f, "target.stem.weight") != 0);
    assert_true(compare(&f, "head.3.bias", &f, "target.head.3.bias") != 0);
    sc_st_free(&f);

    /* --max-steps in the middle of epoch 2, then --resume */
    char *b = path("stopped"), *cb = xprintf("%s/checkpoint.safetensors", b), *mb = xprintf("%s/metrics.csv", b);
    char *argv_b[] = {TRAIN_ARGS(b), "--max-steps", "150", NULL};
    expect_status(argv_b, 0);
    char *argv_b2[] = {TRAIN_ARGS(b), "--resume", NULL};
    expect_status(argv_b2, 0);
    assert_same_checkpoint(ca, cb);
    assert_same_file(ma, mb);

    /* SIGTERM at a random step after the first epoch, then --resume */
    srand(test_seed);
    int row = SPE + 2 + rand() % (TOTAL - SPE - 40);
    char *c = path("terminated"), *cc = xprintf("%s/checkpoint.safetensors", c), *mc = xprintf("%s/metrics.csv", c);
    char *argv_c[] = {TRAIN_ARGS(c), NULL};
    pid_t pid = run_start(argv_c, log_path);
    assert_true(pid > 0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (lines_in(mc) - 1 >= row) {
            kill(pid, SIGTERM);
            break;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 120) {
            kill(pid, SIGKILL);
            fail_msg("the run did not reach step %d in 120 s", row);
        }
        usleep(200);
    }
    assert_int_equal(run_finish(pid), 0);
    sc_st_file fc;
    read_st(cc, &fc);
    long long at = atoll(sc_st_meta(&fc, "step"));
    sc_st_free(&fc);
    print_message("SIGTERM after row %d: checkpoint at step %lld of %d\n", row, at, TOTAL);
    if (at >= TOTAL)
        fail_msg("the run finished before SIGTERM arrived: nothing was resumed");
    char *argv_c2[] = {TRAIN_ARGS(c), "--resume", NULL};
    expect_status(argv_c2, 0);
    assert_same_checkpoint(ca, cc);
    assert_same_file(ma, mc);
    free(a), free(ca), free(ma), free(b), free(cb), free(mb), free(c), free(cc), free(mc);
}

static void test_export(void **st)
{
    (void)st;
    char *a = uninterrupted(), *ca = xprintf("%s/checkpoint.safetensors", a);
    char *on = path("online.safetensors"), *tg = path("target.safetensors");
    char *argv_o[] = {binary, "export", "--ckpt", ca, "-o", on, NULL};
    char *argv_t[] = {binary, "export", "--ckpt", ca, "-o", tg, "--network", "target", NULL};
    expect_status(argv_o, 0);
    expect_status(argv_t, 0);
    sc_st_file fc, fo, ft;
    read_st(ca, &fc);
    read_st(on, &fo);
    read_st(tg, &ft);
    /* the encoder of byol.xml: stem, encoder.1 (batchnorm) */
    static const char *const keys[] = {"stem.weight", "encoder.1.weight", "encoder.1.bias",
                                       "encoder.1.running_mean", "encoder.1.running_var"};
    assert_int_equal(fo.n, 5);
    assert_int_equal(ft.n, 5);
    assert_string_equal(sc_st_meta(&fo, "network"), "online");
    assert_string_equal(sc_st_meta(&ft, "network"), "target");
    for (int k = 0; k < 5; k++) {
        char tname[64];
        snprintf(tname, sizeof tname, "target.%s", keys[k]);
        if (compare(&fo, keys[k], &fc, keys[k]))
            fail_msg("the online export's %s is not the checkpoint's", keys[k]);
        if (compare(&ft, keys[k], &fc, tname))
            fail_msg("the target export's %s is not the checkpoint's %s", keys[k], tname);
    }
    assert_true(compare(&fo, "stem.weight", &ft, "stem.weight") != 0);
    sc_st_free(&fc);
    sc_st_free(&fo);
    sc_st_free(&ft);

    /* an NT-Xent model has no target network */
    char *nrun = path("ntxent-run"), *nck = xprintf("%s/checkpoint.safetensors", nrun);
    char *argv_n[] = {ntxent, "train", "--data", data, "--out", nrun, "--epochs", "1", "--max-steps", "2",
                      "--threads", "1", "--knn-every", "0", NULL};
    expect_status(argv_n, 0);
    char *argv_nt[] = {ntxent, "export", "--ckpt", nck, "-o", tg, "--network", "target", NULL};
    expect_status(argv_nt, 1);
    char *out = slurp(log_path);
    assert_non_null(out);
    assert_non_null(strstr(out, "has no target network"));
    free(out);
    char *argv_bad[] = {binary, "export", "--ckpt", ca, "-o", tg, "--network", "teacher", NULL};
    expect_status(argv_bad, 2);
    free(a), free(ca), free(on), free(tg), free(nrun), free(nck);
}

static int setup(void **st)
{
    (void)st;
    const char *bin = getenv("SC_BINARY_DIR"), *simclrc = getenv("SIMCLRC"), *src = getenv("SC_SOURCE_DIR");
    const char *py = getenv("SC_PYTHON");
    if (!bin || !simclrc || !src || !py) {
        fprintf(stderr, "test_byol: SC_SOURCE_DIR, SC_BINARY_DIR, SIMCLRC and SC_PYTHON must be set (run through ctest)\n");
        return -1;
    }
    const char *seed = getenv("SC_TEST_SEED");
    test_seed = seed ? (unsigned)strtoul(seed, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("test_byol: SC_TEST_SEED=%u\n", test_seed);
    tmpdir = xprintf("%s/tmp-byol-XXXXXX", bin);
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "test_byol: cannot make a directory in %s: %s\n", bin, strerror(errno));
        return -1;
    }
    binary = path("byol");
    ntxent = path("head-batchnorm");
    data = path("fm320");
    log_path = path("log");
    char *model = xprintf("%s/tests/specs/byol.xml", src), *nmodel = xprintf("%s/tests/specs/head-batchnorm.xml", src);
    char *conv = xprintf("%s/tools/fmnist2stl10", bin);
    char *c1[] = {(char *)simclrc, model, "-o", binary, NULL};
    char *c2[] = {(char *)simclrc, nmodel, "-o", ntxent, NULL};
    char *c3[] = {conv, "--limit", "320", data, NULL};
    int rc = 0;
    if (run_log(c1, log_path) || run_log(c2, log_path) || run_log(c3, log_path)) {
        char *s = slurp(log_path);
        fprintf(stderr, "test_byol: setup failed:\n%s\n", s ? s : "");
        free(s);
        rc = -1;
    }
    free(model), free(nmodel), free(conv);
    return rc;
}

static int teardown(void **st)
{
    (void)st;
    if (!getenv("SC_KEEP_TMP") && tmpdir) {
        char *cmd = xprintf("rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_byol: could not remove %s\n", tmpdir);
        free(cmd);
    }
    free(tmpdir), free(binary), free(ntxent), free(data), free(log_path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_steps),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_export),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
