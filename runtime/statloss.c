#include "sc_statloss.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sc_comm.h"
#include "sc_ntxent.h"

#define BARLOW_EPS 1e-5 /* compiler/ir.h: the standardisation's */

/* Between the forward and the backward call: the global z in double. */
static struct {
    double *z;
    int64_t m, d, cap;
    int kind;
    double coef[4];
} K;

/* Feature k of the n rows at z: centred into zc, and sqrt(ss / div + eps). */
static double centre(int64_t n, int64_t d, int64_t k, const double *z, double div, double eps, double *zc)
{
    double mean = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
        mean += z[i * d + k];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        double e = z[i * d + k] - mean;
        zc[i * d + k] = e;
        ss += e * e;
    }
    return sqrt(ss / div + eps);
}

/* Barlow Twins: loss, and with dz the whole gradient. w: 2nd + dd + 2d. */
static double barlow(int64_t n, int64_t d, const double *z, double *w, double *dz)
{
    double lambda = K.coef[0], scale = K.coef[1];
    double *zn = w, *c = w + 2 * n * d, *s = c + d * d;
    for (int v = 0; v < 2; v++)
        for (int64_t k = 0; k < d; k++) {
            double *x = zn + v * n * d;
            s[v * d + k] = centre(n, d, k, z + v * n * d, (double)n, BARLOW_EPS, x);
            for (int64_t i = 0; i < n; i++)
                x[i * d + k] /= s[v * d + k];
        }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)n, 1.0 / (double)n, zn, (int)d,
                zn + n * d, (int)d, 0.0, c, (int)d);
    double on = 0, off = 0;
    for (int64_t a = 0; a < d; a++)
        for (int64_t b = 0; b < d; b++) {
            double x = c[a * d + b];
            if (a == b)
                on += (1 - x) * (1 - x);
            else
                off += x * x;
            c[a * d + b] = scale * (a == b ? 2 * (x - 1) : 2 * lambda * x) / (double)n;
        }
    if (dz) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)d, (int)d, 1.0, zn + n * d, (int)d, c,
                    (int)d, 0.0, dz, (int)d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)d, 1.0, zn, (int)d, c, (int)d,
                    0.0, dz + n * d, (int)d);
        for (int v = 0; v < 2; v++)
            for (int64_t k = 0; k < d; k++) {
                double *g = dz + v * n * d, *x = zn + v * n * d, m1 = 0, m2 = 0;
                for (int64_t i = 0; i < n; i++) {
                    m1 += g[i * d + k];
                    m2 += g[i * d + k] * x[i * d + k];
                }
                m1 /= (double)n;
                m2 /= (double)n;
                for (int64_t i = 0; i < n; i++)
                    g[i * d + k] = (g[i * d + k] - m1 - x[i * d + k] * m2) / s[v * d + k];
            }
    }
    return scale * (on + lambda * off);
}

/* VICReg: loss, and with dz the whole gradient. w: nd + dd + 2d. */
static double vicreg(int64_t n, int64_t d, const double *z, double *w, double *dz)
{
    double sim = K.coef[0], stdc = K.coef[1], cov = K.coef[2], eps = K.coef[3];
    double n1 = (double)(n - 1), nd = (double)(n * d), inv = 0, var = 0, cv = 0;
    double *zc = w, *c = w + n * d, *a = c + d * d;
    for (int64_t i = 0; i < n * d; i++) {
        double e = z[i] - z[n * d + i];
        inv += e * e;
        if (dz) {
            dz[i] = 2 * sim * e / nd;
            dz[n * d + i] = -dz[i];
        }
    }
    for (int v = 0; v < 2; v++) {
        for (int64_t k = 0; k < d; k++) {
            double s = centre(n, d, k, z + v * n * d, n1, eps, zc);
            var += s < 1 ? 1 - s : 0;
            a[k] = s < 1 ? -stdc / (2.0 * (double)d) / (n1 * s) : 0;
        }
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)n, 1.0 / n1, zc, (int)d, zc,
                    (int)d, 0.0, c, (int)d);
        for (int64_t p = 0; p < d; p++)
            for (int64_t q = 0; q < d; q++) {
                double x = c[p * d + q];
                cv += p == q ? 0 : x * x;
                c[p * d + q] = p == q ? 0 : 4 * cov * x / ((double)d * n1);
            }
        if (!dz)
            continue;
        double *g = dz + v * n * d;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)d, 1.0, zc, (int)d, c, (int)d,
                    1.0, g, (int)d);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < d; k++)
                g[i * d + k] += a[k] * zc[i * d + k];
    }
    return sim * inv / nd + stdc * var / (2.0 * (double)d) + cov * cv / (double)d;
}

static double run(double *dz, int *ok)
{
    int64_t n = K.m / 2, d = K.d;
    double *w = malloc(sizeof(double) * (size_t)(2 * n * d + d * d + 2 * d));
    *ok = w != NULL;
    if (!w)
        return 0;
    double l = K.kind == SC_STATLOSS_BARLOW ? barlow(n, d, K.z, w, dz) : vicreg(n, d, K.z, w, dz);
    free(w);
    return l;
}

int sc_statloss_global_fwd(const float *zg, int64_t m, int64_t d, int kind, const double *coef, float *loss)
{
    if (m * d > K.cap) {
        free(K.z);
        K.z = malloc(sizeof(double) * (size_t)(m * d));
        K.cap = K.z ? m * d : 0;
        if (!K.z)
            return -1;
    }
    for (int64_t i = 0; i < m * d; i++)
        K.z[i] = zg[i];
    K.m = m;
    K.d = d;
    K.kind = kind;
    memcpy(K.coef, coef, sizeof K.coef);
    int ok;
    *loss = (float)run(NULL, &ok);
    return ok ? 0 : -1;
}

int sc_statloss_global_bwd(int64_t rows, int64_t d, int64_t first, float factor, float *dz)
{
    if (!K.z || d != K.d)
        return -1;
    double *g = malloc(sizeof(double) * (size_t)(K.m * d));
    int ok = g != NULL;
    if (ok)
        run(g, &ok);
    if (ok)
        for (int64_t i = 0; i < rows; i++) {
            const double *src = g + sc_ntxent_global_row(rows, K.m, first, i) * d;
            for (int64_t k = 0; k < d; k++)
                dz[i * d + k] = (float)(factor * src[k]);
        }
    free(g);
    return ok ? 0 : -1;
}
