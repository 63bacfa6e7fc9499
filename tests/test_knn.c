/* test_knn: the kNN monitor.
 *
 * - a tiny 2-D case checked by hand, where the temperature decides the
 *   vote, and the tie-breaking rules;
 * - a separable problem (one class per axis) that must score 100%;
 * - tests/knn_torch.py's seeded clustered problem (2000 train, 300 test
 *   rows, 10 classes, k 200) against a plain PyTorch vote in float64: the
 *   same prediction for every test row, whatever the chunking;
 * - bad input gives an error, not a crash. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "sc_knn.h"
#include "sc_rng.h"
#include "sc_safetensors.h"

static double knn(const sc_knn_config *c, const float *tr, const int *ytr, int64_t ntr,
                  const float *te, const int *yte, int64_t nte, int64_t d, int *pred)
{
    double acc = -1;
    char err[256] = "";
    if (sc_knn_accuracy(c, tr, ytr, ntr, te, yte, nte, d, &acc, pred, err, sizeof err))
        fail_msg("sc_knn_accuracy: %s", err);
    return acc;
}

/* Train rows at angles 0, ~37, ~53, 90 and 180 degrees. From the test row
 * (1, 0) the 3 nearest are rows 0 (sim 1, class 0), 1 (0.8, class 1) and
 * 2 (0.6, class 1). At temperature 0.1, class 0 gets e^10 = 22026 and
 * class 1 e^8 + e^6 = 3384: class 0 wins. At temperature 10 the weights
 * are nearly equal and the two class-1 votes win. (0, 1) mirrors it with
 * class 2. */
static void test_hand(void **state)
{
    (void)state;
    const float tr[] = {1, 0, 0.8f, 0.6f, 0.6f, 0.8f, 0, 1, -1, 0};
    const int ytr[] = {0, 1, 1, 2, 0};
    const float te[] = {1, 0, 0, 1};
    const int yte[] = {0, 2};
    int pred[2];
    sc_knn_config c;
    sc_knn_config_default(&c, 3);
    assert_int_equal(c.k, 200);
    assert_true(c.temperature == 0.1);
    c.k = 3;
    assert_true(knn(&c, tr, ytr, 5, te, yte, 2, 2, pred) == 1.0);
    assert_int_equal(pred[0], 0);
    assert_int_equal(pred[1], 2);
    c.temperature = 10;
    assert_true(knn(&c, tr, ytr, 5, te, yte, 2, 2, pred) == 0.0);
    assert_int_equal(pred[0], 1);
    assert_int_equal(pred[1], 1);
    /* k larger than the train set: every row votes; at temperature 0.1
     * class 0 has e^10 + e^-10 against 3384. */
    c.k = 200;
    c.temperature = 0.1;
    assert_true(knn(&c, tr, ytr, 5, te, yte, 1, 2, pred) == 1.0);
    assert_int_equal(pred[0], 0);
}

/* Equal similarities: the lower train index is the nearer neighbour, and
 * equal class totals go to the lower class. */
static void test_ties(void **state)
{
    (void)state;
    const float tr[] = {1, 0, 1, 0, 0, 1};
    const int ytr[] = {2, 1, 0};
    const float te[] = {1, 0};
    int yte[] = {2}, pred[1];
    sc_knn_config c;
    sc_knn_config_default(&c, 3);
    c.k = 1;
    assert_true(knn(&c, tr, ytr, 3, te, yte, 1, 2, pred) == 1.0);
    assert_int_equal(pred[0], 2);
    c.k = 2;   /* rows 0 and 1 tie on weight: classes 2 and 1 tie; 1 wins */
    yte[0] = 1;
    assert_true(knn(&c, tr, ytr, 3, te, yte, 1, 2, pred) == 1.0);
    assert_int_equal(pred[0], 1);
}

static void test_normalize(void **state)
{
    (void)state;
    float x[] = {3, 4, 0, 0, 0, 0, 0, 0, 1e-20f, 0, 0, 0};
    sc_l2_normalize_rows(x, 3, 4);
    assert_true(fabsf(x[0] - 0.6f) < 1e-7f && fabsf(x[1] - 0.8f) < 1e-7f);
    for (int j = 4; j < 8; j++)
        assert_true(x[j] == 0.0f);   /* a zero row stays zero */
    assert_true(x[8] == 1.0f);   /* no underflow: the norm is summed in double */
}

/* C classes, one per axis, 50 train rows each with small noise: each test
 * row's 50 classmates have sim ~1 (weight ~e^10) against ~0 (weight ~1)
 * for the other 150 of the k = 200, so every prediction is right. */
static void test_separable(void **state)
{
    (void)state;
    enum { C = 10, D = 16, PER = 50, NTE = 100 };
    float *tr = malloc(sizeof *tr * C * PER * D), *te = malloc(sizeof *te * NTE * D);
    int *ytr = malloc(sizeof *ytr * C * PER), yte[NTE], pred[NTE];
    assert_non_null(tr);
    assert_non_null(te);
    assert_non_null(ytr);
    sc_rng r;
    sc_rng_seed(&r, 42, 1000);
    for (int i = 0; i < C * PER; i++) {
        ytr[i] = (int)sc_rng_below(&r, C);
        for (int j = 0; j < D; j++)
            tr[i * D + j] = (float)(0.05 * sc_rng_normal(&r)) + (j == ytr[i]);
    }
    for (int i = 0; i < NTE; i++) {
        yte[i] = i % C;
        for (int j = 0; j < D; j++)
            te[i * D + j] = (float)(0.05 * sc_rng_normal(&r)) + (j == yte[i]);
    }
    sc_l2_normalize_rows(tr, C * PER, D);
    sc_l2_normalize_rows(te, NTE, D);
    sc_knn_config c;
    sc_knn_config_default(&c, C);
    assert_true(knn(&c, tr, ytr, C * PER, te, yte, NTE, D, pred) == 1.0);
    /* Shuffled test labels: accuracy is exactly the share that still agrees. */
    int agree = 0;
    for (int i = 0; i < NTE; i++) {
        yte[i] = (yte[i] + (i % 3 == 0)) % C;
        agree += pred[i] == yte[i];
    }
    assert_int_equal(agree, NTE - (NTE + 2) / 3);
    assert_true(fabs(knn(&c, tr, ytr, C * PER, te, yte, NTE, D, NULL) - (double)agree / NTE) < 1e-15);
    free(tr);
    free(te);
    free(ytr);
}

static const sc_st_tensor *need(const sc_st_file *f, const char *name, const char *dtype)
{
    const sc_st_tensor *t = sc_st_get(f, name);
    if (!t || strcmp(t->dtype, dtype))
        fail_msg("the knn_torch.py fixture lacks %s of type %s", name, dtype);
    return t;
}

static int *labels_of(const sc_st_tensor *t)
{
    size_t n = t->nbytes / 8;
    int *y = malloc(sizeof *y * (n ? n : 1));
    assert_non_null(y);
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + i * 8, 8);
        y[i] = (int)v;
    }
    return y;
}

static void test_torch(void **state)
{
    (void)state;
    const char *bin = getenv("SC_BINARY_DIR"), *src = getenv("SC_SOURCE_DIR");
    const char *python = getenv("SC_PYTHON");
    if (!bin || !src || !python)
        fail_msg("SC_SOURCE_DIR, SC_BINARY_DIR and SC_PYTHON must be set (run through ctest)");
    char *path = xprintf("%s/test_knn.%d.safetensors", bin, (int)getpid());
    char *script = xprintf("%s/tests/knn_torch.py", src);
    assert_non_null(path);
    assert_non_null(script);
    char *argv[] = {(char *)python, script, path, NULL};
    int st = run_log(argv, NULL);
    free(script);
    sc_st_file f;
    char err[512];
    int rc = -1;
    if (st)
        snprintf(err, sizeof err, "knn_torch.py failed (status %d)", st);
    else
        rc = sc_st_read(path, &f, err, sizeof err);
    if (!getenv("SC_KEEP_TMP"))
        unlink(path);
    free(path);
    if (rc)
        fail_msg("%s", err);

    const sc_st_tensor *tr = need(&f, "train", "F32"), *te = need(&f, "test", "F32");
    assert_int_equal(tr->ndim, 2);
    assert_int_equal(te->ndim, 2);
    assert_int_equal(tr->shape[1], te->shape[1]);
    int64_t ntr = tr->shape[0], nte = te->shape[0], d = tr->shape[1];
    int *ytr = labels_of(need(&f, "train_labels", "I64"));
    int *yte = labels_of(need(&f, "test_labels", "I64"));
    int *want = labels_of(need(&f, "pred", "I64"));
    const char *k = sc_st_meta(&f, "k"), *temp = sc_st_meta(&f, "temperature");
    const char *classes = sc_st_meta(&f, "classes"), *correct = sc_st_meta(&f, "correct");
    assert_non_null(k);
    assert_non_null(temp);
    assert_non_null(classes);
    assert_non_null(correct);
    float *xtr = malloc(tr->nbytes), *xte = malloc(te->nbytes);
    int *pred = malloc(sizeof *pred * (size_t)nte);
    assert_non_null(xtr);
    assert_non_null(xte);
    assert_non_null(pred);
    memcpy(xtr, tr->data, tr->nbytes);
    memcpy(xte, te->data, te->nbytes);
    sc_l2_normalize_rows(xtr, ntr, d);
    sc_l2_normalize_rows(xte, nte, d);

    sc_knn_config c;
    sc_knn_config_default(&c, atoi(classes));
    assert_int_equal(c.k, atoi(k));
    assert_true(c.temperature == strtod(temp, NULL));
    const int64_t chunks[] = {0, 1, 7, 64, 300};
    for (size_t ci = 0; ci < sizeof chunks / sizeof *chunks; ci++) {
        c.chunk_rows = chunks[ci];
        memset(pred, 0xff, sizeof *pred * (size_t)nte);
        double acc = knn(&c, xtr, ytr, ntr, xte, yte, nte, d, pred);
        int diff = 0;
        for (int64_t i = 0; i < nte; i++)
            if (pred[i] != want[i]) {
                if (diff++ < 5)
                    print_error("chunk %lld: test row %lld: predicted %d, PyTorch %d\n",
                                (long long)chunks[ci], (long long)i, pred[i], want[i]);
            }
        if (diff)
            fail_msg("chunk %lld: %d of %lld predictions differ from PyTorch", (long long)chunks[ci],
                     diff, (long long)nte);
        if (fabs(acc - atof(correct) / (double)nte) > 1e-15)
            fail_msg("chunk %lld: accuracy %.6f, PyTorch %s/%lld", (long long)chunks[ci], acc,
                     correct, (long long)nte);
        if (ci == 0)
            print_message("%lld train, %lld test rows, dim %lld: accuracy %.4f as PyTorch\n",
                          (long long)ntr, (long long)nte, (long long)d, acc);
    }
    free(xtr);
    free(xte);
    free(pred);
    free(ytr);
    free(yte);
    free(want);
    sc_st_free(&f);
}

static void test_errors(void **state)
{
    (void)state;
    const float tr[] = {1, 0, 0, 1};
    int ytr[] = {0, 1};
    const float te[] = {1, 0};
    int yte[] = {1};
    double acc = -1;
    char err[256] = "";
    sc_knn_config c;
    sc_knn_config_default(&c, 2);
    ytr[1] = 2;
    assert_int_equal(sc_knn_accuracy(&c, tr, ytr, 2, te, yte, 1, 2, &acc, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "train label 2"));
    ytr[1] = 1;
    yte[0] = -1;   /* an unlabeled image */
    err[0] = '\0';
    assert_int_equal(sc_knn_accuracy(&c, tr, ytr, 2, te, yte, 1, 2, &acc, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "test label -1"));
    yte[0] = 1;
    c.k = 0;
    err[0] = '\0';
    assert_int_equal(sc_knn_accuracy(&c, tr, ytr, 2, te, yte, 1, 2, &acc, NULL, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    c.k = 200;
    err[0] = '\0';
    assert_int_equal(sc_knn_accuracy(&c, tr, ytr, 0, te, yte, 1, 2, &acc, NULL, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    assert_true(acc == -1);
    assert_int_equal(sc_knn_accuracy(&c, tr, ytr, 2, te, yte, 1, 2, &acc, NULL, err, sizeof err), 0);
    assert_true(acc == 0.0);   /* (1, 0) is nearest to row 0, class 0 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_separable),
        cmocka_unit_test(test_torch),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
