#include "sc_logreg.h"
#include "sc_err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <limits.h>

void sc_logreg_config_default(sc_logreg_config *c, double weight_decay)
{
    c->weight_decay = weight_decay;
    c->max_iter = 500;
    c->history = 10;
    c->grad_tol = 1e-6;
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

double sc_logreg_objective(const double *x, const int *y, int64_t n, int dim, int classes,
                           double weight_decay, const double *wb, double *grad, double *scratch)
{
    const double *w = wb, *b = wb + (int64_t)classes * dim;
    double *z = scratch;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, classes, dim, 1.0, x, dim, w, dim,
                0.0, z, classes);
    double loss = 0;
    for (int64_t i = 0; i < n; i++) {
        double *row = z + i * classes;
        double m = -INFINITY;
        for (int k = 0; k < classes; k++) {
            row[k] += b[k];
            if (row[k] > m)
                m = row[k];
        }
        double s = 0;
        for (int k = 0; k < classes; k++)
            s += exp(row[k] - m);
        double lse = m + log(s);
        loss += lse - row[y[i]];
        if (grad) {
            /* row becomes dCE/dlogits / n: softmax minus the one-hot target. */
            for (int k = 0; k < classes; k++)
                row[k] = exp(row[k] - lse) / (double)n;
            row[y[i]] -= 1.0 / (double)n;
        }
    }
    int64_t nw = (int64_t)classes * dim;
    double f = loss / (double)n + 0.5 * weight_decay * dot(w, w, nw);
    if (grad) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, classes, dim, (int)n, 1.0, z, classes,
                    x, dim, 0.0, grad, dim);
        for (int64_t j = 0; j < nw; j++)
            grad[j] += weight_decay * w[j];
        double *gb = grad + nw;
        for (int k = 0; k < classes; k++)
            gb[k] = 0;
        for (int64_t i = 0; i < n; i++)
            for (int k = 0; k < classes; k++)
                gb[k] += z[i * classes + k];
    }
    return f;
}

static double max_abs(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(a[i]) > m)
            m = fabs(a[i]);
    return m;
}

int sc_logreg_fit(const sc_logreg_config *c, const double *x, const int *y, int64_t n, int dim,
                  int classes, double *wb, sc_logreg_result *res, char *err, size_t errlen)
{
    if (n < 1 || dim < 1 || classes < 2 || n > INT_MAX / classes || (int64_t)dim * classes > INT_MAX) {
        sc_errf(err, errlen, "logistic regression: bad sizes (%lld rows, %d features, %d classes)",
               (long long)n, dim, classes);
        return -1;
    }
    if (!(c->weight_decay >= 0 && isfinite(c->weight_decay)) || c->max_iter < 0 || c->history < 1 ||
        !(c->grad_tol >= 0)) {
        sc_errf(err, errlen, "logistic regression: bad configuration");
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= classes) {
            sc_errf(err, errlen, "logistic regression: label %d of row %lld is outside 0..%d", y[i],
                   (long long)i, classes - 1);
            return -1;
        }
    for (int64_t i = 0; i < n * dim; i++)
        if (!isfinite(x[i])) {
            sc_errf(err, errlen, "logistic regression: feature %lld of row %lld is not finite",
                   (long long)(i % dim), (long long)(i / dim));
            return -1;
        }

    const int64_t np = (int64_t)classes * dim + classes;
    const int m = c->history;
    double *g = malloc(sizeof(double) * (size_t)np), *gn = malloc(sizeof(double) * (size_t)np);
    double *d = malloc(sizeof(double) * (size_t)np), *wn = malloc(sizeof(double) * (size_t)np);
    double *S = malloc(sizeof(double) * (size_t)(np * m)), *Y = malloc(sizeof(double) * (size_t)(np * m));
    double *rho = malloc(sizeof(double) * (size_t)m), *alpha = malloc(sizeof(double) * (size_t)m);
    double *scratch = malloc(sizeof(double) * (size_t)(n * classes));
    int rc = 0;
    if (!g || !gn || !d || !wn || !S || !Y || !rho || !alpha || !scratch) {
        sc_errf(err, errlen, "logistic regression: out of memory");
        rc = -1;
        goto done;
    }

    const double lam = c->weight_decay;
    double f = sc_logreg_objective(x, y, n, dim, classes, lam, wb, g, scratch);
    int evals = 1, it = 0, stored = 0, newest = -1;
    for (; it < c->max_iter && max_abs(g, np) >= c->grad_tol; it++) {
        /* Two-loop recursion: d = -H g with the stored correction pairs. */
        memcpy(d, g, sizeof(double) * (size_t)np);
        for (int j = 0; j < stored; j++) {
            int k = (newest - j + m) % m;
            alpha[k] = rho[k] * dot(S + (int64_t)k * np, d, np);
            for (int64_t p = 0; p < np; p++)
                d[p] -= alpha[k] * Y[(int64_t)k * np + p];
        }
        double gamma;
        if (stored) {
            const double *yk = Y + (int64_t)newest * np;
            gamma = 1.0 / (rho[newest] * dot(yk, yk, np));
        } else {
            double gn2 = sqrt(dot(g, g, np));
            gamma = gn2 > 1 ? 1 / gn2 : 1;
        }
        for (int64_t p = 0; p < np; p++)
            d[p] *= gamma;
        for (int j = stored - 1; j >= 0; j--) {
            int k = (newest - j + m) % m;
            double beta = rho[k] * dot(Y + (int64_t)k * np, d, np);
            for (int64_t p = 0; p < np; p++)
                d[p] += (alpha[k] - beta) * S[(int64_t)k * np + p];
        }
        for (int64_t p = 0; p < np; p++)
            d[p] = -d[p];
        double gd = dot(g, d, np);
        if (!(gd < 0)) {
            /* Not a descent direction (rounding): restart from steepest descent. */
            if (!stored)
                break;
            stored = 0;
            continue;
        }

        /* Armijo backtracking from the unit step. */
        double t = 1, fn = f;
        int ok = 0;
        for (int tries = 0; tries < 60 && !ok; tries++, t *= 0.5) {
            for (int64_t p = 0; p < np; p++)
                wn[p] = wb[p] + t * d[p];
            fn = sc_logreg_objective(x, y, n, dim, classes, lam, wn, gn, scratch);
            evals++;
            ok = isfinite(fn) && fn <= f + 1e-4 * t * gd;
        }
        if (!ok) {
            if (!stored)
                break;   /* no progress even along -g: converged to rounding */
            stored = 0;
            continue;
        }

        /* Keep the pair when the curvature is positive (always, for lambda > 0,
         * up to rounding). */
        int k = (newest + 1) % m;
        double *sk = S + (int64_t)k * np, *yk = Y + (int64_t)k * np;
        for (int64_t p = 0; p < np; p++) {
            sk[p] = wn[p] - wb[p];
            yk[p] = gn[p] - g[p];
        }
        double sy = dot(sk, yk, np);
        if (sy > 1e-300 && sy > 1e-12 * dot(yk, yk, np)) {
            rho[k] = 1 / sy;
            newest = k;
            if (stored < m)
                stored++;
        }
        double drop = f - fn;
        memcpy(wb, wn, sizeof(double) * (size_t)np);
        memcpy(g, gn, sizeof(double) * (size_t)np);
        f = fn;
        if (drop <= 1e-15 * (fabs(f) > 1 ? fabs(f) : 1)) {
            it++;
            break;
        }
    }
    if (res) {
        res->iterations = it;
        res->evaluations = evals;
        res->loss = f;
        res->grad_max = max_abs(g, np);
    }
done:
    free(g);
    free(gn);
    free(d);
    free(wn);
    free(S);
    free(Y);
    free(rho);
    free(alpha);
    free(scratch);
    return rc;
}

double sc_logreg_predict(const double *x, int64_t n, int dim, int classes, const double *wb,
                         const int *y, int *pred)
{
    const double *w = wb, *b = wb + (int64_t)classes * dim;
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bv = -INFINITY;
        for (int k = 0; k < classes; k++) {
            double v = b[k] + dot(w + (int64_t)k * dim, x + i * dim, dim);
            if (v > bv) {
                bv = v;
                best = k;
            }
        }
        if (pred)
            pred[i] = best;
        if (y)
            right += best == y[i];
    }
    return y ? (double)right / (double)n : 0.0;
}

int sc_standardizer_fit(sc_standardizer *s, const float *x, int64_t n, int dim)
{
    s->dim = dim;
    s->mean = calloc((size_t)(dim > 0 ? dim : 1), sizeof(double));
    s->std = calloc((size_t)(dim > 0 ? dim : 1), sizeof(double));
    if (!s->mean || !s->std) {
        sc_standardizer_free(s);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < dim; j++)
            s->mean[j] += x[i * dim + j];
    for (int j = 0; j < dim; j++)
        s->mean[j] /= (double)(n > 0 ? n : 1);
    /* Two passes: the variance from deviations, not from E[x^2] - E[x]^2. */
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) {
            double e = x[i * dim + j] - s->mean[j];
            s->std[j] += e * e;
        }
    for (int j = 0; j < dim; j++) {
        double sd = sqrt(s->std[j] / (double)(n > 0 ? n : 1));
        s->std[j] = (sd < 1e-12 || sd <= 1e-6 * fabs(s->mean[j])) ? 1.0 : sd;
    }
    return 0;
}

void sc_standardizer_apply(const sc_standardizer *s, const float *x, int64_t n, double *out)
{
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < s->dim; j++)
            out[i * s->dim + j] = (x[i * s->dim + j] - s->mean[j]) / s->std[j];
}

void sc_standardizer_free(sc_standardizer *s)
{
    free(s->mean);
    free(s->std);
    s->mean = s->std = NULL;
}
