/* test_eval: the eval (linear probe) and finetune subcommands of a
 * training binary (resnet-small compiled at batch 2), on a tiny dataset
 * whose class is the image's brightness (20 + 22 * class, with a little
 * pixel noise): separable for any encoder that is not constant.
 *
 * - eval --random-init scores at least 90% on the test split, prints the
 *   chosen weight decay and a parseable test_accuracy line, and gives the
 *   same output twice;
 * - --labels-per-class draws a subset (too large a K, or a K that leaves
 *   nothing to fit after the validation split, is bad input unless
 *   --weight-decay skips the split);
 * - finetune (SGD) writes one CSV row per epoch and a checkpoint; a
 *   second run (Adam) from that checkpoint takes its classifier; a file
 *   that is no checkpoint is refused;
 * - bad usage exits with 2. */
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

#include "sc_stl10.h"

static char work[512];
static char bin[600];

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

static char *read_file(const char *p)
{
    static char buf[65536];
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    return buf;
}

static char *last_output(void)
{
    char log[600];
    snprintf(log, sizeof log, "%s/out.txt", work);
    return read_file(log);
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

/* n images, image i of class i % 10 (on disk 1..10). */
static int write_split(const char *dir, const char *images, const char *labels, size_t n, int salt)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, images);
    FILE *f = fopen(p, "wb");
    if (!f)
        return -1;
    static uint8_t img[SC_STL10_IMAGE_BYTES];
    for (size_t i = 0; i < n; i++) {
        int cls = (int)(i % 10);
        for (int k = 0; k < SC_STL10_IMAGE_BYTES; k++)
            img[k] = (uint8_t)(20 + 22 * cls + (int)((k * 7 + i * 13 + (size_t)salt) % 5) - 2);
        fwrite(img, 1, sizeof img, f);
    }
    if (fclose(f))
        return -1;
    if (!labels)
        return 0;
    snprintf(p, sizeof p, "%s/%s", dir, labels);
    f = fopen(p, "wb");
    if (!f)
        return -1;
    for (size_t i = 0; i < n; i++)
        fputc((int)(1 + i % 10), f);
    return fclose(f);
}

static int setup(void **state)
{
    (void)state;
    char *dir = test_tmpdir("test_eval");
    if (!dir || strlen(dir) >= sizeof work) {
        free(dir);
        return -1;
    }
    strcpy(work, dir);
    free(dir);
    char *data = path("data");
    if (mkdir(data, 0755) || write_split(data, "train_X.bin", "train_y.bin", 40, 0) ||
        write_split(data, "test_X.bin", "test_y.bin", 20, 1) ||
        write_split(data, "unlabeled_X.bin", NULL, 8, 2))
        return -1;
    char folds[700];
    snprintf(folds, sizeof folds, "%s/fold_indices.txt", data);
    FILE *f = fopen(folds, "w");
    if (!f)
        return -1;
    for (int k = 0; k < 10; k++)
        fprintf(f, "%d %d\n", k, k + 10);
    if (fclose(f))
        return -1;
    const char *simclrc = getenv("SIMCLRC"), *src = getenv("SC_SOURCE_DIR");
    if (!simclrc || !src)
        return -1;
    char spec[600];
    snprintf(spec, sizeof spec, "%s/models/resnet-small.xml", src);
    snprintf(bin, sizeof bin, "%s/small", work);
    char *argv[] = {(char *)simclrc, spec, "--batch", "2", "-o", bin, NULL};
    return run(argv) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    return system(cmd) == 0 ? 0 : -1;
}

/* The value of the line "KEY VALUE" in text, or -1. */
static double value_of(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; (p = strstr(p, key)); p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static void test_probe(void **state)
{
    (void)state;
    char *argv[] = {bin, "eval", "--data", path("data"), "--random-init", "--threads", "1", NULL};
    must_run(argv);
    char first[65536];
    snprintf(first, sizeof first, "%s", last_output());
    const char *tail = strstr(first, "chosen");
    print_message("%s", tail ? tail : first);
    double acc = value_of(first, "test_accuracy");
    assert_true(acc >= 0.9 && acc <= 1.0);
    assert_non_null(strstr(first, "chosen weight_decay"));
    assert_non_null(strstr(first, "30 images fit, 10 validate"));
    /* Deterministic: the same lines again (the timings aside). */
    must_run(argv);
    const char *second = last_output();
    assert_true(value_of(second, "test_accuracy") == acc);
    const char *a = strstr(first, "weight decay on"), *b = strstr(second, "weight decay on");
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(a, b, (size_t)(strstr(a, "test_accuracy") - a));
}

static void test_labels_per_class(void **state)
{
    (void)state;
    char *two[] = {bin, "eval", "--data", path("data"), "--random-init", "--labels-per-class", "2", NULL};
    must_run(two);
    assert_non_null(strstr(last_output(), "10 images fit, 10 validate"));
    assert_true(value_of(last_output(), "test_accuracy") >= 0);
    char *five[] = {bin, "eval", "--data", path("data"), "--random-init", "--labels-per-class", "5", NULL};
    assert_int_equal(run(five), 1);
    assert_non_null(strstr(last_output(), "fewer than --labels-per-class 5"));
    char *one[] = {bin, "eval", "--data", path("data"), "--random-init", "--labels-per-class", "1", NULL};
    assert_int_equal(run(one), 1);
    assert_non_null(strstr(last_output(), "--weight-decay"));
    char *fixed[] = {bin, "eval", "--data", path("data"), "--random-init", "--labels-per-class", "1",
                     "--weight-decay", "1e-3", NULL};
    must_run(fixed);
    assert_non_null(strstr(last_output(), "probe on 10 labeled images"));
}

static void test_finetune(void **state)
{
    (void)state;
    char *argv[] = {bin, "finetune", "--data", path("data"), "--random-init", "--epochs", "2",
                    "--out", path("ft"), "--threads", "1", NULL};
    must_run(argv);
    const char *out = last_output();
    assert_non_null(strstr(out, "classifier initialised"));
    assert_non_null(strstr(out, "SGD (Nesterov 0.9) lr 0.05 cosine"));
    /* "2 epochs of S steps of B": S = 40 / B, the last partial batch dropped. */
    const char *e = strstr(out, "2 epochs of ");
    assert_non_null(e);
    int steps = 0, batch = 0;
    assert_int_equal(sscanf(e, "2 epochs of %d steps of %d", &steps, &batch), 2);
    assert_true(batch >= 2 && steps == 40 / batch);
    out = NULL;   /* read_file reuses the buffer */
    const char *csv = read_file(path("ft/finetune.csv"));
    int lines = 0;
    for (const char *p = csv; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3);
    char want[128];
    snprintf(want, sizeof want, "epoch,step,lr,train_loss,test_accuracy,seconds\n1,%d,", steps);
    assert_true(!strncmp(csv, want, strlen(want)));
    snprintf(want, sizeof want, "\n2,%d,0,", 2 * steps);   /* the cosine ends at 0 */
    assert_non_null(strstr(csv, want));
    assert_int_equal(access(path("ft/finetune.safetensors"), R_OK), 0);

    char *again[] = {bin, "finetune", "--data", path("data"), "--ckpt", path("ft/finetune.safetensors"),
                     "--epochs", "1", "--out", path("ft2"), "--optimizer", "adam", NULL};
    must_run(again);
    assert_non_null(strstr(last_output(), "classifier from the checkpoint"));
    assert_non_null(strstr(last_output(), "Adam lr 0.001 cosine"));
    char *probe[] = {bin, "eval", "--data", path("data"), "--ckpt", path("ft/finetune.safetensors"), NULL};
    must_run(probe);
    assert_true(value_of(last_output(), "test_accuracy") >= 0);
}

static void test_bad(void **state)
{
    (void)state;
    char *no_data[] = {bin, "eval", "--random-init", NULL};
    assert_int_equal(run(no_data), 2);
    char *both[] = {bin, "eval", "--data", path("data"), "--random-init", "--ckpt", "x", NULL};
    assert_int_equal(run(both), 2);
    assert_non_null(strstr(last_output(), "exclude each other"));
    char *neither[] = {bin, "finetune", "--data", path("data"), NULL};
    assert_int_equal(run(neither), 2);
    char *epochs[] = {bin, "finetune", "--data", path("data"), "--random-init", "--epochs", "0", NULL};
    assert_int_equal(run(epochs), 2);
    char *optim[] = {bin, "finetune", "--data", path("data"), "--random-init", "--optimizer", "lars", NULL};
    assert_int_equal(run(optim), 2);
    assert_non_null(strstr(last_output(), "sgd or adam"));
    char *nodata[] = {bin, "eval", "--data", path("nowhere"), "--random-init", NULL};
    assert_int_equal(run(nodata), 1);
    char *notckpt[] = {bin, "finetune", "--data", path("data"), "--ckpt", path("data/train_y.bin"), NULL};
    assert_int_equal(run(notckpt), 1);
    assert_non_null(strstr(last_output(), "train_y.bin"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_labels_per_class),
        cmocka_unit_test(test_finetune),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
