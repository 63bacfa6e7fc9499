/* test_logreg: the linear probe's logistic regression and standardiser.
 *
 * - the objective's gradient against central differences;
 * - tests/logreg_torch.py's seeded overlapping problem fitted by
 *   torch.optim.LBFGS in float64, for two weight decays: the same loss
 *   (1e-12 relative) and the same W and b (1e-6: both solvers stop at a
 *   gradient of ~1e-9 and the curvature is at least lambda >= 1e-2);
 * - a separable problem is classified perfectly;
 * - the standardiser on known columns, including a dead (constant) one;
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

#include "sc_logreg.h"
#include "sc_rng.h"
#include "sc_safetensors.h"

/* n rows, d features, c classes around random centres (seeded). */
static void draw(int64_t n, int d, int c, double spread, uint64_t seed, double *x, int *y)
{
    sc_rng r;
    sc_rng_seed(&r, seed, 77);
    double *centre = malloc(sizeof *centre * (size_t)(c * d));
    assert_non_null(centre);
    for (int i = 0; i < c * d; i++)
        centre[i] = sc_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int)sc_rng_below(&r, (uint64_t)c);
        for (int j = 0; j < d; j++)
            x[i * d + j] = centre[y[i] * d + j] + spread * sc_rng_normal(&r);
    }
    free(centre);
}

static void test_gradient(void **state)
{
    (void)state;
    enum { N = 30, D = 5, C = 3, P = C * D + C };
    double x[N * D], wb[P], g[P], scratch[N * C];
    int y[N];
    draw(N, D, C, 1.0, 3, x, y);
    sc_rng r;
    sc_rng_seed(&r, 4, 5);
    for (int i = 0; i < P; i++)
        wb[i] = 0.5 * sc_rng_normal(&r);
    const double lam = 0.3;
    double f = sc_logreg_objective(x, y, N, D, C, lam, wb, g, scratch);
    assert_true(isfinite(f) && f > 0);
    /* Without the gradient the value is the same. */
    assert_true(sc_logreg_objective(x, y, N, D, C, lam, wb, NULL, scratch) == f);
    for (int i = 0; i < P; i++) {
        const double h = 1e-5;
        double keep = wb[i];
        wb[i] = keep + h;
        double fp = sc_logreg_objective(x, y, N, D, C, lam, wb, NULL, scratch);
        wb[i] = keep - h;
        double fm = sc_logreg_objective(x, y, N, D, C, lam, wb, NULL, scratch);
        wb[i] = keep;
        double num = (fp - fm) / (2 * h);
        if (fabs(num - g[i]) > 1e-8)
            fail_msg("gradient %d: analytic %.12g, numeric %.12g", i, g[i], num);
    }
}

static const sc_st_tensor *need(const sc_st_file *f, const char *name, const char *dtype)
{
    const sc_st_tensor *t = sc_st_get(f, name);
    if (!t || strcmp(t->dtype, dtype))
        fail_msg("the logreg_torch.py fixture lacks %s of type %s", name, dtype);
    return t;
}

static double meta_double(const sc_st_file *f, const char *key)
{
    const char *v = sc_st_meta(f, key);
    if (!v)
        fail_msg("the logreg_torch.py fixture lacks metadata %s", key);
    return strtod(v, NULL);
}

static void test_torch(void **state)
{
    (void)state;
    const char *src = getenv("SC_SOURCE_DIR"), *py = getenv("SC_PYTHON");
    if (!src || !py)
        fail_msg("SC_SOURCE_DIR and SC_PYTHON must be set (run through CTest)");
    char script[4096], out[512];
    snprintf(script, sizeof script, "%s/tests/logreg_torch.py", src);
    int fd = test_tmpfile("test_logreg", out, sizeof out);
    assert_true(fd >= 0);
    close(fd);
    char *argv[] = {(char *)py, script, out, NULL};
    if (run_log(argv, NULL) != 0) {
        unlink(out);
        fail_msg("%s %s failed", py, script);
    }
    sc_st_file f;
    char err[512];
    int rc = sc_st_read(out, &f, err, sizeof err);
    unlink(out);
    if (rc)
        fail_msg("%s", err);
    const sc_st_tensor *tx = need(&f, "x", "F64"), *ty = need(&f, "y", "I64");
    assert_int_equal(tx->ndim, 2);
    const int64_t n = tx->shape[0];
    const int d = (int)tx->shape[1], c = 4, np = c * d + c;
    double *x = malloc(tx->nbytes);
    int *y = malloc(sizeof *y * (size_t)n);
    double *wb = malloc(sizeof *wb * (size_t)np);
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(wb);
    memcpy(x, tx->data, tx->nbytes);
    for (int64_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const char *)ty->data + i * 8, 8);
        y[i] = (int)v;
    }
    for (int k = 0; k < 2; k++) {
        char name[32];
        snprintf(name, sizeof name, "lambda%d", k);
        double lam = meta_double(&f, name);
        snprintf(name, sizeof name, "loss%d", k);
        double loss = meta_double(&f, name);
        snprintf(name, sizeof name, "wb%d", k);
        const sc_st_tensor *tw = need(&f, name, "F64");
        assert_int_equal(tw->nbytes, sizeof(double) * (size_t)np);
        const double *ref = tw->data;

        sc_logreg_config cfg;
        sc_logreg_config_default(&cfg, lam);
        cfg.grad_tol = 1e-9;   /* torch's solution is that close; the probe needs less */
        sc_logreg_result res;
        memset(wb, 0, sizeof *wb * (size_t)np);
        if (sc_logreg_fit(&cfg, x, y, n, d, c, wb, &res, err, sizeof err))
            fail_msg("%s", err);
        print_message("lambda %g: %d iterations, %d evaluations, loss %.15g (torch %.15g), |g| %.3g\n",
                      lam, res.iterations, res.evaluations, res.loss, loss, res.grad_max);
        assert_true(res.iterations < cfg.max_iter);
        assert_true(res.grad_max < 1e-8);
        assert_true(fabs(res.loss - loss) <= 1e-12 * loss);
        double sum_b = 0;
        for (int j = 0; j < c; j++)
            sum_b += wb[c * d + j];
        assert_true(fabs(sum_b) < 1e-9);
        for (int j = 0; j < np; j++)
            if (fabs(wb[j] - ref[j]) > 1e-6)
                fail_msg("lambda %g: parameter %d is %.10g, torch %.10g", lam, j, wb[j], ref[j]);
        /* The same call gives the same bits. */
        double *again = calloc((size_t)np, sizeof *again);
        assert_non_null(again);
        assert_int_equal(sc_logreg_fit(&cfg, x, y, n, d, c, again, NULL, err, sizeof err), 0);
        assert_memory_equal(again, wb, sizeof *wb * (size_t)np);
        free(again);
    }
    free(x);
    free(y);
    free(wb);
    sc_st_free(&f);
}

static void test_separable(void **state)
{
    (void)state;
    enum { N = 500, D = 8, C = 5, P = C * D + C };
    double *x = malloc(sizeof *x * N * D), wb[P] = {0};
    int y[N], pred[N];
    assert_non_null(x);
    draw(N, D, C, 0.05, 11, x, y);
    sc_logreg_config cfg;
    sc_logreg_config_default(&cfg, 1e-4);
    char err[256];
    assert_int_equal(sc_logreg_fit(&cfg, x, y, N, D, C, wb, NULL, err, sizeof err), 0);
    assert_true(sc_logreg_predict(x, N, D, C, wb, y, pred) == 1.0);
    for (int i = 0; i < N; i++)
        assert_int_equal(pred[i], y[i]);
    /* Without labels: predictions only. */
    assert_true(sc_logreg_predict(x, N, D, C, wb, NULL, pred) == 0.0);
    free(x);
}

static void test_standardizer(void **state)
{
    (void)state;
    /* Columns: 1, 2, 3, 4 (mean 2.5, std sqrt(1.25)); constant 7 (dead);
     * 0 (dead); -2, 2, -2, 2 (mean 0, std 2). */
    const float x[] = {1, 7, 0, -2, 2, 7, 0, 2, 3, 7, 0, -2, 4, 7, 0, 2};
    sc_standardizer s;
    assert_int_equal(sc_standardizer_fit(&s, x, 4, 4), 0);
    assert_true(fabs(s.mean[0] - 2.5) < 1e-15 && fabs(s.std[0] - sqrt(1.25)) < 1e-15);
    assert_true(s.mean[1] == 7 && s.std[1] == 1);
    assert_true(s.mean[2] == 0 && s.std[2] == 1);
    assert_true(s.mean[3] == 0 && s.std[3] == 2);
    double z[16];
    sc_standardizer_apply(&s, x, 4, z);
    assert_true(fabs(z[0] + 1.5 / sqrt(1.25)) < 1e-15);
    for (int i = 0; i < 4; i++) {
        assert_true(z[i * 4 + 1] == 0 && z[i * 4 + 2] == 0);
        assert_true(z[i * 4 + 3] == (i % 2 ? 1 : -1));
    }
    sc_standardizer_free(&s);
}

static void test_bad(void **state)
{
    (void)state;
    double x[6] = {0, 1, 2, 3, 4, 5}, wb[6] = {0};
    int y[3] = {0, 1, 2};
    sc_logreg_config cfg;
    sc_logreg_config_default(&cfg, 0.1);
    char err[256] = "";
    assert_int_equal(sc_logreg_fit(&cfg, x, y, 3, 1, 2, wb, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "label 2"));
    y[2] = 1;
    x[1] = NAN;
    assert_int_equal(sc_logreg_fit(&cfg, x, y, 3, 1, 2, wb, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "not finite"));
    x[1] = 1;
    assert_int_equal(sc_logreg_fit(&cfg, x, y, 0, 1, 2, wb, NULL, err, sizeof err), -1);
    cfg.weight_decay = -1;
    assert_int_equal(sc_logreg_fit(&cfg, x, y, 3, 1, 2, wb, NULL, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_torch),
        cmocka_unit_test(test_separable),
        cmocka_unit_test(test_standardizer),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
