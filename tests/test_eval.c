/* test_eval: the eval (linear probe) and finetune subcommands of a
 * training binary (resnet-small compiled at batch 2), on a small dataset
 * of shapes (draw_shape: bars in four orientations, a checkerboard, disk,
 * square, ring, plus, frame; random size, place and phase, 200 train and
 * 100 test images) whose brightness is random and independent of the
 * class, so only an encoder that sees shape can separate them.
 *
 * - eval --random-init: test accuracy at least PROBE_MIN_ACCURACY (chance
 *   0.1), the chosen weight decay and a parseable test_accuracy line, the
 *   same output twice;
 * - --labels-per-class draws a subset that still beats chance by far (too
 *   large a K, or a K that leaves nothing to fit after the validation
 *   split, is bad input unless --weight-decay skips the split);
 * - finetune (SGD) from random init reaches FT_MIN_ACCURACY, writes one CSV
 *   row per epoch and a checkpoint whose classifier has moved away from
 *   its initialisation; a run from that checkpoint at --lr 0 keeps every
 *   parameter, the classifier's included, bit for bit (so it was loaded);
 *   a linear probe on the fine-tuned encoder beats the random-init one;
 *   Adam from the checkpoint runs; a file that is no checkpoint is refused;
 * - bad usage exits with 2.
 * SC_KEEP_TMP keeps the temporary directory. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#include "sc_stl10.h"

/* Images of the train and test splits (10 classes, balanced). */
enum { NTRAIN = 200, NTEST = 100 };

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

/* splitmix64, for the test images. */
static uint32_t next_u32(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
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

/* Shapes: class k of 10 is a pattern on a 96x96 grey image, drawn with a
 * random size, position or phase. */
static int in_shape(int cls, int x, int y, int cx, int cy, int r, int period)
{
    int dx = x - cx, dy = y - cy, ax = abs(dx), ay = abs(dy), d2 = dx * dx + dy * dy;
    switch (cls) {
    case 0: return (y + cy) % period < period / 2;                 /* horizontal bars */
    case 1: return (x + cx) % period < period / 2;                 /* vertical bars */
    case 2: return (x + y + cx) % period < period / 2;             /* diagonal bars / */
    case 3: return (x - y + 192 + cx) % period < period / 2;       /* diagonal bars \ */
    case 4: return ((x + cx) / (period / 2) + (y + cy) / (period / 2)) % 2; /* checkerboard */
    case 5: return d2 <= r * r;                                    /* disk */
    case 6: return ax <= r * 8 / 10 && ay <= r * 8 / 10;           /* square */
    case 7: return d2 <= r * r && d2 >= (r * 6 / 10) * (r * 6 / 10); /* ring */
    case 8: return (ax <= r / 4 && ay <= r) || (ay <= r / 4 && ax <= r); /* plus */
    default: return ax <= r && ay <= r && (ax >= r * 7 / 10 || ay >= r * 7 / 10); /* frame */
    }
}

/* Image i of class i % 10: shape in_shape, whose foreground covers a
 * fraction f of the pixels. Foreground and background levels are set so
 * that the mean is a random m in [100, 150] and their difference a random
 * c in [60, 100] (fg = m + c(1 - f), bg = m - c f), whatever the class:
 * the brightness says nothing of the class. Plus noise of +-2. */
static void draw_shape(uint8_t *img, size_t i, uint64_t *rng)
{
    enum { H = SC_STL10_HEIGHT, W = SC_STL10_WIDTH };
    static uint8_t mask[H * W];
    int cls = (int)(i % 10);
    int cx = 40 + (int)(next_u32(rng) % 17), cy = 40 + (int)(next_u32(rng) % 17);
    int r = 22 + (int)(next_u32(rng) % 9), period = 12 + 2 * (int)(next_u32(rng) % 4);
    size_t fg = 0;
    for (int x = 0; x < W; x++)
        for (int y = 0; y < H; y++)
            fg += mask[x * H + y] = (uint8_t)in_shape(cls, x, y, cx, cy, r, period);
    double f = (double)fg / (H * W), m = 100 + next_u32(rng) % 51, c = 60 + next_u32(rng) % 41;
    double lv[2] = {m - c * f, m + c * (1 - f)};
    for (int k = 0; k < H * W; k++) {
        int v = (int)lround(lv[mask[k]]) + (int)(next_u32(rng) % 5) - 2;
        img[k] = img[H * W + k] = img[2 * H * W + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* n images of draw_shape, image i of class i % 10 (on disk 1..10). */
static int write_split(const char *dir, const char *images, const char *labels, size_t n, uint64_t seed)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, images);
    FILE *f = fopen(p, "wb");
    if (!f)
        return -1;
    static uint8_t img[SC_STL10_IMAGE_BYTES];
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++) {
        draw_shape(img, i, &rng);
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
    if (mkdir(data, 0755) || write_split(data, "train_X.bin", "train_y.bin", NTRAIN, 1) ||
        write_split(data, "test_X.bin", "test_y.bin", NTEST, 2) ||
        write_split(data, "unlabeled_X.bin", NULL, 8, 3))
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
    if (getenv("SC_KEEP_TMP")) {
        printf("test_eval: kept %s\n", work);
        return 0;
    }
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

/* A linear probe on the random-init encoder's features: test accuracy at
 * least this (chance 0.1; measured 0.71 on AMD EPYC Zen 5). */
#define PROBE_MIN_ACCURACY 0.5
/* ... on 5 labeled images per class (measured 0.43). */
#define PROBE_FEW_MIN_ACCURACY 0.25

static void test_probe(void **state)
{
    (void)state;
    char *argv[] = {bin, "eval", "--data", path("data"), "--random-init", "--threads", "2", NULL};
    must_run(argv);
    char first[65536];
    snprintf(first, sizeof first, "%s", last_output());
    const char *tail = strstr(first, "chosen");
    print_message("%s", tail ? tail : first);
    double acc = value_of(first, "test_accuracy");
    assert_true(acc >= PROBE_MIN_ACCURACY && acc <= 1.0);
    assert_non_null(strstr(first, "chosen weight_decay"));
    assert_non_null(strstr(first, "160 images fit, 40 validate"));
    /* The same lines again at the same thread count (the timings aside). */
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
    char *five[] = {bin, "eval", "--data", path("data"), "--random-init", "--labels-per-class", "5", NULL};
    must_run(five);
    assert_non_null(strstr(last_output(), "40 images fit, 10 validate"));
    double acc = value_of(last_output(), "test_accuracy");
    print_message("probe on 5 images per class: test_accuracy %.4f\n", acc);
    assert_true(acc >= PROBE_FEW_MIN_ACCURACY);
    char *many[] = {bin, "eval", "--data", path("data"), "--random-init", "--labels-per-class", "21", NULL};
    assert_int_equal(run(many), 1);
    assert_non_null(strstr(last_output(), "fewer than --labels-per-class 21"));
    char *one[] = {bin, "eval", "--data", path("data"), "--random-init", "--labels-per-class", "1", NULL};
    assert_int_equal(run(one), 1);
    assert_non_null(strstr(last_output(), "--weight-decay"));
    char *fixed[] = {bin, "eval", "--data", path("data"), "--random-init", "--labels-per-class", "1",
                     "--weight-decay", "1e-3", NULL};
    must_run(fixed);
    assert_non_null(strstr(last_output(), "probe on 10 labeled images"));
}

static void read_st(const char *p, sc_st_file *f)
{
    char err[512];
    if (sc_st_read(p, f, err, sizeof err))
        fail_msg("%s", err);
}

/* The largest |a - b| over the tensor name of two checkpoints, relative
 * to max |b|; fails when either lacks it or the shapes differ. */
static double tensor_diff(const sc_st_file *fa, const sc_st_file *fb, const char *name)
{
    const sc_st_tensor *x = sc_st_get(fa, name), *y = sc_st_get(fb, name);
    if (!x || !y)
        fail_msg("%s is missing from a checkpoint", name);
    assert_string_equal(x->dtype, "F32");
    assert_string_equal(y->dtype, "F32");
    assert_int_equal(x->nbytes, y->nbytes);
    double md = 0, my = 0;
    for (size_t k = 0; k < x->nbytes / 4; k++) {
        float u, v;
        memcpy(&u, (const char *)x->data + 4 * k, 4);
        memcpy(&v, (const char *)y->data + 4 * k, 4);
        md = fmax(md, fabs((double)u - v));
        my = fmax(my, fabs((double)v));
    }
    return my > 0 ? md / my : md;
}

/* The last row's test_accuracy in RUN/finetune.csv. */
static double finetune_accuracy(const char *run)
{
    char p[700];
    snprintf(p, sizeof p, "%s/finetune.csv", run);
    const char *csv = read_file(p), *last = NULL;
    for (const char *q = csv; (q = strchr(q, '\n')) && q[1]; q++)
        last = q + 1;
    double acc = -1;
    if (!last || sscanf(last, "%*[^,],%*[^,],%*[^,],%*[^,],%lf", &acc) != 1)
        fail_msg("no accuracy in %s:\n%s", p, csv);
    return acc;
}

/* Fine-tuning from the seeded initialisation must learn the shapes: the
 * classifier moves away from its initialisation (a run at --lr 0 leaves
 * it there) and the test accuracy after 3 epochs is at least
 * FT_MIN_ACCURACY (chance is 0.1; measured 0.72 on AMD EPYC Zen 5, 0.70
 * and 0.82 at seeds 1 and 2; with no optimizer update at all 0.xx). */
#define FT_MIN_ACCURACY 0.5
/* The trained classifier must differ from the initial one by at least
 * this much of its largest initial weight (measured 6.4 after 5 epochs; 0
 * when the classifier is left out of the update). */
#define FT_MIN_CLASSIFIER_MOVE 1.0
/* A linear probe on the fine-tuned encoder's features (measured 0.95;
 * 0.71 on the random-init encoder's, test_probe). */
#define FT_PROBE_MIN_ACCURACY 0.8

static void test_finetune(void **state)
{
    (void)state;
    char *argv[] = {bin, "finetune", "--data", path("data"), "--random-init", "--epochs", "5",
                    "--out", path("ft"), "--threads", "1", NULL};
    must_run(argv);
    const char *out = last_output();
    assert_non_null(strstr(out, "classifier initialised"));
    assert_non_null(strstr(out, "SGD (Nesterov 0.9) lr 0.05 cosine"));
    /* "5 epochs of S steps of B": S = NTRAIN / B, the last partial batch dropped. */
    const char *e = strstr(out, "5 epochs of ");
    assert_non_null(e);
    int steps = 0, batch = 0;
    assert_int_equal(sscanf(e, "5 epochs of %d steps of %d", &steps, &batch), 2);
    assert_true(batch >= 2 && steps == NTRAIN / batch);
    out = NULL;   /* read_file reuses the buffer */
    const char *csv = read_file(path("ft/finetune.csv"));
    int lines = 0;
    for (const char *p = csv; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 6);
    char want[128];
    snprintf(want, sizeof want, "epoch,step,lr,train_loss,test_accuracy,seconds\n1,%d,", steps);
    assert_true(!strncmp(csv, want, strlen(want)));
    snprintf(want, sizeof want, "\n5,%d,0,", 5 * steps);   /* the cosine ends at 0 */
    assert_non_null(strstr(csv, want));
    double acc = finetune_accuracy(path("ft"));
    print_message("fine-tuned from random init, 5 epochs: test_accuracy %.4f\n", acc);
    assert_true(acc >= FT_MIN_ACCURACY);

    /* The initial classifier: the same seed at --lr 0. */
    char *init[] = {bin, "finetune", "--data", path("data"), "--random-init", "--epochs", "1", "--lr", "0",
                    "--out", path("ft0"), "--threads", "1", NULL};
    must_run(init);
    /* From the checkpoint at --lr 0: its parameters, the classifier's
     * included, come out bit for bit (the batchnorm statistics move). */
    char *same[] = {bin, "finetune", "--data", path("data"), "--ckpt", path("ft/finetune.safetensors"),
                    "--epochs", "1", "--lr", "0", "--out", path("ft1"), "--threads", "1", NULL};
    must_run(same);
    char said[128];
    snprintf(said, sizeof said, "%s", strstr(last_output(), "classifier from the checkpoint") ? "yes" : "no");
    sc_st_file f0, ft, f1;
    read_st(path("ft0/finetune.safetensors"), &f0);
    read_st(path("ft/finetune.safetensors"), &ft);
    read_st(path("ft1/finetune.safetensors"), &f1);
    int params = 0;
    for (int i = 0; i < ft.n; i++) {
        const char *name = ft.t[i].name;
        if (strstr(name, "running_") || strstr(name, "num_batches"))
            continue;
        double d = tensor_diff(&f1, &ft, name);
        if (d != 0)
            fail_msg("%s loaded from the checkpoint and kept at lr 0 differs by %.3g", name, d);
        params++;
    }
    assert_true(params >= 3);
    assert_string_equal(said, "yes");   /* and it says so */
    double dw = tensor_diff(&ft, &f0, "classifier.weight"), db = tensor_diff(&ft, &f0, "classifier.bias");
    print_message("%d parameter tensors kept exactly; the classifier moved by %.3g (weight), %.3g (bias)\n",
                  params, dw, db);
    assert_true(dw >= FT_MIN_CLASSIFIER_MOVE);
    sc_st_free(&f0);
    sc_st_free(&ft);
    sc_st_free(&f1);

    char *again[] = {bin, "finetune", "--data", path("data"), "--ckpt", path("ft/finetune.safetensors"),
                     "--epochs", "1", "--out", path("ft2"), "--optimizer", "adam", NULL};
    must_run(again);
    assert_non_null(strstr(last_output(), "classifier from the checkpoint"));
    assert_non_null(strstr(last_output(), "Adam lr 0.001 cosine"));
    char *probe[] = {bin, "eval", "--data", path("data"), "--ckpt", path("ft/finetune.safetensors"), NULL};
    must_run(probe);
    double pacc = value_of(last_output(), "test_accuracy");
    print_message("linear probe on the fine-tuned encoder: test_accuracy %.4f\n", pacc);
    assert_true(pacc >= FT_PROBE_MIN_ACCURACY);
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
