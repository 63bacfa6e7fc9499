/* STL-10 reader: pixel order and labels on small files written in the exact
 * layout, every split, and each malformed case reported against its file. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stl10_files.h"

enum { NTRAIN = 6, NTEST = 4, NUNL = 5 };

static char root[256];
static char good[300];

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/sc_stl10_XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        return -1;
    snprintf(good, sizeof good, "%s/good", root);
    if (mkdir(good, 0777) != 0)
        return -1;
    return stl10_write_dataset(good, NTRAIN, NTEST, NUNL);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    if (root[0])
        nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static sc_stl10 *open_split(const char *dir, const char *name)
{
    sc_split s;
    sc_stl10 *d = NULL;
    char err[1024];
    assert_int_equal(sc_split_parse(name, &s, err, sizeof err), 0);
    if (sc_stl10_open(dir, s, &d, err, sizeof err) != 0)
        fail_msg("%s", err);
    return d;
}

/* Image i of split d must be pattern image `src`, labelled `label`. */
static void expect_image(const sc_stl10 *d, size_t i, size_t src, int label)
{
    uint8_t chw[SC_STL10_IMAGE_BYTES], hwc[SC_STL10_IMAGE_BYTES];
    const uint8_t *raw = sc_stl10_raw(d, i);
    sc_stl10_image_chw(d, i, chw);
    sc_stl10_image_hwc(d, i, hwc);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 96; y++)
            for (int x = 0; x < 96; x++) {
                uint8_t v = stl10_pixel(src, c, y, x);
                assert_int_equal(raw[(c * 96 + x) * 96 + y], v);
                assert_int_equal(chw[(c * 96 + y) * 96 + x], v);
                assert_int_equal(hwc[(y * 96 + x) * 3 + c], v);
            }
    assert_int_equal(sc_stl10_label(d, i), label);
}

static void pixel_order_and_labels(void **state)
{
    (void)state;
    sc_stl10 *d = open_split(good, "train");
    assert_int_equal(sc_stl10_count(d), NTRAIN);
    for (size_t i = 0; i < NTRAIN; i++)
        expect_image(d, i, i, (int)((i * 3) % 10)); /* disk 1..10 -> 0..9 */
    sc_stl10_close(d);

    d = open_split(good, "test");
    assert_int_equal(sc_stl10_count(d), NTEST);
    for (size_t i = 0; i < NTEST; i++)
        expect_image(d, i, 500 + i, (int)((i * 3) % 10));
    sc_stl10_close(d);

    d = open_split(good, "unlabeled");
    assert_int_equal(sc_stl10_count(d), NUNL);
    for (size_t i = 0; i < NUNL; i++)
        expect_image(d, i, 1000 + i, -1);
    sc_stl10_close(d);

    d = open_split(good, "train+unlabeled");
    assert_int_equal(sc_stl10_count(d), NTRAIN + NUNL);
    for (size_t i = 0; i < NTRAIN; i++)
        expect_image(d, i, i, (int)((i * 3) % 10));
    for (size_t i = 0; i < NUNL; i++)
        expect_image(d, NTRAIN + i, 1000 + i, -1);
    sc_stl10_close(d);

    for (int k = 0; k < 10; k++) {
        char name[16];
        snprintf(name, sizeof name, "fold%d", k);
        d = open_split(good, name);
        assert_int_equal(sc_stl10_count(d), NTRAIN / 2);
        for (size_t j = 0; j < NTRAIN / 2; j++) {
            size_t src = ((size_t)k + j) % NTRAIN;
            expect_image(d, j, src, (int)((src * 3) % 10));
        }
        sc_stl10_close(d);
    }
}

static void split_names(void **state)
{
    (void)state;
    const char *ok[] = {"unlabeled", "train", "test", "train+unlabeled", "fold0", "fold9"};
    char err[256], buf[16];
    for (int i = 0; i < 6; i++) {
        sc_split s;
        assert_int_equal(sc_split_parse(ok[i], &s, err, sizeof err), 0);
        assert_string_equal(sc_split_name(s, buf, sizeof buf), ok[i]);
    }
    const char *bad[] = {"fold10", "fold", "Train", "", "unlabelled", "fold-1"};
    for (int i = 0; i < 6; i++) {
        sc_split s;
        assert_int_equal(sc_split_parse(bad[i], &s, err, sizeof err), -1);
        assert_non_null(strstr(err, "unknown split"));
    }
}

static void check_prints_sizes(void **state)
{
    (void)state;
    char *buf = NULL, err[1024];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    int rc = sc_stl10_check(good, f, err, sizeof err);
    fclose(f);
    if (rc != 0)
        fail_msg("%s", err);
    const char *want[] = {"train                   6 images", "test                    4 images",
                          "unlabeled               5 images", "train+unlabeled        11 images",
                          "10 folds of 3 3 3 3 3 3 3 3 3 3"};
    for (int i = 0; i < 5; i++)
        if (!strstr(buf, want[i]))
            fail_msg("'%s' missing from:\n%s", want[i], buf);
    free(buf);
}

/* A fresh copy of the good dataset in ROOT/NAME, for breaking one file. */
static const char *fresh(const char *name)
{
    static char dir[300];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(stl10_write_dataset(dir, NTRAIN, NTEST, NUNL), 0);
    return dir;
}

/* Opening `split` in dir fails with "DIR/FILE[:LINE]: error: ...WANT...";
 * sc_stl10_check fails so too, or (check_passes) succeeds. */
static void expect_open_error(const char *dir, const char *split, const char *file, const char *want,
                              int check_passes)
{
    sc_split s;
    sc_stl10 *d = (sc_stl10 *)1;
    char err[1024], prefix[512];
    assert_int_equal(sc_split_parse(split, &s, err, sizeof err), 0);
    assert_int_equal(sc_stl10_open(dir, s, &d, err, sizeof err), -1);
    assert_null(d);
    snprintf(prefix, sizeof prefix, "%s/%s", dir, file);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, ": error: ") ||
        !strstr(err, want))
        fail_msg("opening %s: got '%s', want '%s...%s'", split, err, prefix, want);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    int rc = sc_stl10_check(dir, out, err, sizeof err);
    fclose(out);
    if (check_passes) {
        assert_int_equal(rc, 0);
        if (!strstr(text, "absent"))
            fail_msg("check: want the folds reported absent, got:\n%s", text);
        free(text);
        return;
    }
    free(text);
    assert_int_equal(rc, -1);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, want))
        fail_msg("check: got '%s', want '%s...%s'", err, prefix, want);
}

static void expect_error(const char *dir, const char *split, const char *file, const char *want)
{
    expect_open_error(dir, split, file, want, 0);
}

static void missing_files(void **state)
{
    (void)state;
    const char *files[] = {"train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin",
                           "unlabeled_X.bin", "fold_indices.txt"};
    const char *splits[] = {"train", "train", "test", "test", "unlabeled", "fold2"};
    for (int i = 0; i < 6; i++) {
        char name[32], path[512];
        snprintf(name, sizeof name, "missing%d", i);
        const char *dir = fresh(name);
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        assert_int_equal(unlink(path), 0);
        /* Folds are optional: check-data reports them absent. */
        expect_open_error(dir, splits[i], files[i], "cannot open: No such file or directory", i == 5);
    }
    /* A split that does not need the missing file still opens. */
    const char *dir = fresh("missing_unl");
    char path[512];
    snprintf(path, sizeof path, "%s/unlabeled_X.bin", dir);
    assert_int_equal(unlink(path), 0);
    sc_stl10 *d = open_split(dir, "train");
    sc_stl10_close(d);
    expect_error(dir, "train+unlabeled", "unlabeled_X.bin", "cannot open");
}

static void partial_images(void **state)
{
    (void)state;
    const char *dir = fresh("partial");
    assert_int_equal(stl10_write_images(dir, "train_X.bin", 0, NTRAIN, 5), 0);
    expect_error(dir, "train", "train_X.bin",
                 "size 165893 bytes is not a whole number of 27648-byte images");
    dir = fresh("partial_unl");
    assert_int_equal(stl10_write_images(dir, "unlabeled_X.bin", 0, 0, 27647), 0);
    expect_error(dir, "unlabeled", "unlabeled_X.bin", "not a whole number");
    dir = fresh("empty");
    assert_int_equal(stl10_write_images(dir, "test_X.bin", 0, 0, 0), 0);
    expect_error(dir, "test", "test_X.bin", "file is empty");
}

static void count_mismatch(void **state)
{
    (void)state;
    const char *dir = fresh("short_labels");
    assert_int_equal(stl10_write_labels(dir, "train_y.bin", NTRAIN - 1), 0);
    expect_error(dir, "train", "train_y.bin", "5 labels for 6 images in train_X.bin");
    dir = fresh("long_labels");
    assert_int_equal(stl10_write_labels(dir, "test_y.bin", NTEST + 2), 0);
    expect_error(dir, "test", "test_y.bin", "6 labels for 4 images in test_X.bin");
}

static void label_range(void **state)
{
    (void)state;
    const int bad[] = {0, 11, 255};
    for (int k = 0; k < 3; k++) {
        char name[32], text[NTRAIN];
        snprintf(name, sizeof name, "label%d", bad[k]);
        const char *dir = fresh(name);
        for (int i = 0; i < NTRAIN; i++)
            text[i] = (char)(1 + i);
        text[2] = (char)bad[k];
        char path[512];
        snprintf(path, sizeof path, "%s/train_y.bin", dir);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, NTRAIN, f), NTRAIN);
        fclose(f);
        char want[64];
        snprintf(want, sizeof want, "label %d of image 2 is out of range 1..10", bad[k]);
        expect_error(dir, "train", "train_y.bin", want);
    }
}

static void bad_folds(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"0 1\n1 2\n2 3\n3 4\n4 5\n5 0\n0 1\n1 2\n2 3\n", "9 folds, expected 10"},
        {"0 1\n1 2\n2 3\n3 4\n4 5\n5 0\n0 1\n1 2\n2 3\n3 4\n4 5\n", ":11: error: more than 10 folds"},
        {"0 1\n1 2\n2 6\n3 4\n4 5\n5 0\n0 1\n1 2\n2 3\n3 4\n", ":3: error: index 6 is out of range 0..5"},
        {"0 1\n1 x\n2 3\n3 4\n4 5\n5 0\n0 1\n1 2\n2 3\n3 4\n", ":2: error: 'x' is not an index"},
        {"0 1\n1 2\n2 3\n3 4\n4 -1\n5 0\n0 1\n1 2\n2 3\n3 4\n", ":5: error: '-1' is not an index"},
        {"0 1\n1 2\n2 3\n3 4\n4 5\n5 0\n0 1\n1 2\n2 3\n3 3.5\n", ":10: error: '3.5' is not an index"},
        {"0 1\n1 2\n2 3\n3 3\n4 5\n5 0\n0 1\n1 2\n2 3\n3 4\n", ":4: error: index 3 appears twice"},
        {"0 1\n1 2\n\n2 3\n3 4\n4 5\n5 0\n0 1\n1 2\n2 3\n3 4\n", ":3: error: empty fold"},
        {"", "0 folds, expected 10"},
        {"0 99999999999999999999999\n", ":1: error: '99999999999999999999999' is not an index"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char name[32];
        snprintf(name, sizeof name, "folds%zu", k);
        const char *dir = fresh(name);
        assert_int_equal(stl10_write_text(dir, "fold_indices.txt", cases[k].text), 0);
        expect_error(dir, "fold0", "fold_indices.txt", cases[k].want);
    }
    /* Trailing blank lines, CRLF and tabs are fine. */
    const char *dir = fresh("folds_ok");
    assert_int_equal(stl10_write_text(dir, "fold_indices.txt",
                                      "0\t1 \r\n1 2\n2 3\n3 4\n4 5\n5 0\n0 1\n1 2\n2 3\n3 4\n\n\n"),
                     0);
    sc_stl10 *d = open_split(dir, "fold0");
    assert_int_equal(sc_stl10_count(d), 2);
    expect_image(d, 1, 1, 3);
    sc_stl10_close(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pixel_order_and_labels), cmocka_unit_test(split_names),
        cmocka_unit_test(check_prints_sizes),     cmocka_unit_test(missing_files),
        cmocka_unit_test(partial_images),         cmocka_unit_test(count_mismatch),
        cmocka_unit_test(label_range),            cmocka_unit_test(bad_folds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
