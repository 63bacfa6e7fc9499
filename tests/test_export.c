/* test_export: the encoder's weights out of a training binary.
 *
 * - resnet18-stl10 compiled at batch 2 takes two SimCLR steps on a tiny
 *   dataset (train --max-steps 2); tests/export_torch.py exports the
 *   checkpoint, loads it into torchvision.models.resnet18() with
 *   strict=False (only fc.* missing, nothing unexpected) and compares the
 *   avgpool features of the same images with the binary's `encode` within
 *   1e-4;
 * - resnet-small (three stages: not torchvision-style) keeps canonical
 *   names, and the export holds exactly the checkpoint's encoder tensors,
 *   bit for bit, and no projection head;
 * - bad usage exits with 2, a checkpoint of another model or a forced
 *   --names torchvision that cannot apply with 1. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "sc_safetensors.h"
#include "stl10_files.h"

static char work[512];

/* Runs argv (NULL-terminated) with stdout and stderr into WORK/out.txt
 * (replaced each time); returns the exit status, -1 when it did not exit
 * normally. */
static int run(char *const argv[])
{
    char log[600];
    snprintf(log, sizeof log, "%s/out.txt", work);
    unlink(log);
    return run_log(argv, log);
}

/* The output of the last run. */
static char *last_output(void)
{
    static char buf[65536];
    char log[600];
    snprintf(log, sizeof log, "%s/out.txt", work);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    return buf;
}

static void must_run(char *const argv[])
{
    int rc = run(argv);
    if (rc != 0)
        fail_msg("%s %s exited with %d:\n%s", argv[0], argv[1] ? argv[1] : "", rc, last_output());
}

static char *path(const char *name)
{
    static char bufs[8][600];
    static int k;
    char *p = bufs[k++ % 8];
    snprintf(p, 600, "%s/%s", work, name);
    return p;
}

static void compile(const char *model, const char *out)
{
    const char *simclrc = getenv("SIMCLRC"), *src = getenv("SC_SOURCE_DIR");
    if (!simclrc || !src)
        fail_msg("SIMCLRC and SC_SOURCE_DIR must be set (run through CTest)");
    char spec[600];
    snprintf(spec, sizeof spec, "%s/models/%s", src, model);
    char *argv[] = {(char *)simclrc, spec, "--batch", "2", "-o", (char *)out, NULL};
    must_run(argv);
}

static int setup(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_export");
    if (!dir || strlen(dir) >= sizeof work) {
        free(dir);
        return -1;
    }
    strcpy(work, dir);
    free(dir);
    char *data = path("data");
    if (mkdir(data, 0755) || stl10_write_images(data, "train_X.bin", 0, 8, 0) ||
        stl10_write_labels(data, "train_y.bin", 8) || stl10_write_images(data, "test_X.bin", 100, 4, 0) ||
        stl10_write_labels(data, "test_y.bin", 4) || stl10_write_images(data, "unlabeled_X.bin", 200, 8, 0) ||
        stl10_write_folds(data, 8))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_resnet18_torchvision(void **state)
{
    (void)state;
    char *bin = path("r18");
    compile("resnet18-stl10.xml", bin);
    char *train[] = {bin, "train", "--data", path("data"), "--out", path("run18"), "--epochs", "1",
                     "--max-steps", "2", "--threads", "2", "--knn-every", "0", NULL};
    must_run(train);
    const char *py = getenv("SC_PYTHON"), *src = getenv("SC_SOURCE_DIR");
    if (!py || !src)
        fail_msg("SC_PYTHON and SC_SOURCE_DIR must be set (run through CTest)");
    char script[600];
    snprintf(script, sizeof script, "%s/tests/export_torch.py", src);
    char *argv[] = {(char *)py, script, bin, path("run18/checkpoint.safetensors"), work, NULL};
    int rc = run(argv);
    print_message("%s", last_output());
    assert_int_equal(rc, 0);

    /* A resnet18 checkpoint is not a resnet-small one. */
    char *small = path("small");
    compile("resnet-small.xml", small);
    char *other[] = {small, "export", "--ckpt", path("run18/checkpoint.safetensors"), "-o",
                     path("x.safetensors"), NULL};
    assert_int_equal(run(other), 1);
    assert_non_null(strstr(last_output(), "resnet18-stl10"));
}

static void test_resnet_small_canonical(void **state)
{
    (void)state;
    char *bin = path("small");
    if (access(bin, X_OK))
        compile("resnet-small.xml", bin);
    char *train[] = {bin, "train", "--data", path("data"), "--out", path("runs"), "--epochs", "1",
                     "--max-steps", "1", "--threads", "1", "--knn-every", "0", NULL};
    must_run(train);
    char *ckpt = path("runs/checkpoint.safetensors"), *out = path("small.safetensors");
    char *exp[] = {bin, "export", "--ckpt", ckpt, "-o", out, NULL};
    must_run(exp);
    assert_non_null(strstr(last_output(), "canonical names"));

    sc_st_file e, c;
    char err[512];
    if (sc_st_read(out, &e, err, sizeof err) || sc_st_read(ckpt, &c, err, sizeof err))
        fail_msg("%s", err);
    assert_string_equal(sc_st_meta(&e, "names"), "canonical");
    int encoder_tensors = 0;
    for (int i = 0; i < c.n; i++)
        encoder_tensors += !strncmp(c.t[i].name, "encoder.", 8);
    assert_int_equal(e.n, encoder_tensors);
    int buffers = 0;
    for (int i = 0; i < e.n; i++) {
        const sc_st_tensor *t = &e.t[i], *u = sc_st_get(&c, t->name);
        if (strncmp(t->name, "encoder.", 8) || !u)
            fail_msg("exported tensor %s is not an encoder tensor of the checkpoint", t->name);
        assert_int_equal(t->nbytes, u->nbytes);
        assert_memory_equal(t->data, u->data, t->nbytes);
        buffers += strstr(t->name, "running_") != NULL;
    }
    assert_int_equal(buffers, 2 * 9);   /* nine batchnorms: stem, 2 + 3 + 3 in the stages */
    sc_st_free(&e);
    sc_st_free(&c);

    char *forced[] = {bin, "export", "--ckpt", ckpt, "-o", out, "--names", "torchvision", NULL};
    assert_int_equal(run(forced), 1);
    assert_non_null(strstr(last_output(), "not a torchvision-style ResNet"));
}

static void test_bad_usage(void **state)
{
    (void)state;
    char *bin = path("small");
    if (access(bin, X_OK))
        compile("resnet-small.xml", bin);
    char *no_ckpt[] = {bin, "export", "-o", path("y.safetensors"), NULL};
    assert_int_equal(run(no_ckpt), 2);
    assert_non_null(strstr(last_output(), "export needs --ckpt"));
    char *bad_names[] = {bin, "export", "--ckpt", "x", "-o", "y", "--names", "pytorch", NULL};
    assert_int_equal(run(bad_names), 2);
    char *missing[] = {bin, "export", "--ckpt", path("nonexistent.safetensors"), "-o", path("y.safetensors"),
                       NULL};
    assert_int_equal(run(missing), 1);
    assert_non_null(strstr(last_output(), "nonexistent.safetensors"));
    char *enc_bad[] = {bin, "encode", "--random-init", "--input", path("data/train_y.bin"), "-o",
                       path("f.safetensors"), NULL};
    assert_int_equal(run(enc_bad), 1);
    char *enc_usage[] = {bin, "encode", "--input", "x", "-o", "y", NULL};
    assert_int_equal(run(enc_usage), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet18_torchvision),
        cmocka_unit_test(test_resnet_small_canonical),
        cmocka_unit_test(test_bad_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
