/* Reference Barlow Twins and VICReg (refops.h): plain loops in double,
 * written from the formulas of ir.h, not for speed. z [2N, D] holds view 0
 * of every image in rows [0, N), view 1 in [N, 2N). */
#include "refops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The reference is the oracle of tests and of --emit=step-dump: out of
 * memory there is fatal. */
static double *scratch(long n)
{
    double *p = calloc((size_t)n, sizeof *p);
    if (!p) {
        fprintf(stderr, "simclrc: out of memory in the reference loss (%ld doubles)\n", n);
        exit(1);
    }
    return p;
}

/* Per feature k of the n rows at z: the mean, and s_k = sqrt(var_k + eps)
 * with the variance's divisor div (n: biased, n - 1: unbiased). zc gets
 * the centred rows. */
static void centre(int n, int d, const double *z, double div, double eps, double *zc, double *s)
{
    for (int k = 0; k < d; k++) {
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++)
            mean += z[(long)i * d + k];
        mean /= n;
        for (int i = 0; i < n; i++) {
            double c = z[(long)i * d + k] - mean;
            zc[(long)i * d + k] = c;
            var += c * c;
        }
        s[k] = sqrt(var / div + eps);
    }
}

/* c[a, b] = sum_i x[i, a] y[i, b] / div */
static void cross(int n, int d, const double *x, const double *y, double div, double *c)
{
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += x[(long)i * d + a] * y[(long)i * d + b];
            c[(long)a * d + b] = s / div;
        }
}

/* ---- Barlow Twins ---- */

#define BARLOW_EPS 1e-5 /* the standardisation's, as BatchNorm1d's default */

/* zn: both views standardised; s: their 2D deviations; c: C [D, D]. */
static void barlow_parts(int n, int d, const double *z, double *zn, double *s, double *c)
{
    for (int v = 0; v < 2; v++) {
        centre(n, d, z + (long)v * n * d, n, BARLOW_EPS, zn + (long)v * n * d, s + v * d);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < d; k++)
                zn[((long)v * n + i) * d + k] /= s[v * d + k];
    }
    cross(n, d, zn, zn + (long)n * d, n, c);
}

double sc_ref_barlow(int n2, int d, const double *coef, const double *z)
{
    int n = n2 / 2;
    double *zn = scratch((long)n2 * d), *s = scratch(2L * d), *c = scratch((long)d * d);
    barlow_parts(n, d, z, zn, s, c);
    double on = 0, off = 0;
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double x = c[(long)a * d + b];
            if (a == b)
                on += (1 - x) * (1 - x);
            else
                off += x * x;
        }
    free(zn), free(s), free(c);
    return coef[1] * (on + coef[0] * off);
}

void sc_ref_barlow_bwd(int n2, int d, const double *coef, const double *z, double *dz)
{
    int n = n2 / 2;
    double *zn = scratch((long)n2 * d), *s = scratch(2L * d), *c = scratch((long)d * d);
    double *dzn = scratch((long)n2 * d);
    barlow_parts(n, d, z, zn, s, c);
    /* G = dLoss/dC / N, in place */
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double *x = &c[(long)a * d + b];
            *x = coef[1] * (a == b ? 2 * (*x - 1) : 2 * coef[0] * *x) / n;
        }
    /* dz1n = z2n G^T, dz2n = z1n G */
    for (int i = 0; i < n; i++)
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) {
                double g = c[(long)a * d + b];
                dzn[(long)i * d + a] += g * zn[((long)n + i) * d + b];
                dzn[((long)n + i) * d + b] += g * zn[(long)i * d + a];
            }
    /* through the standardisation: (dzn - mean dzn - zn mean(dzn zn)) / s */
    for (int v = 0; v < 2; v++)
        for (int k = 0; k < d; k++) {
            double m1 = 0, m2 = 0;
            for (int i = 0; i < n; i++) {
                long at = ((long)v * n + i) * d + k;
                m1 += dzn[at];
                m2 += dzn[at] * zn[at];
            }
            m1 /= n;
            m2 /= n;
            for (int i = 0; i < n; i++) {
                long at = ((long)v * n + i) * d + k;
                dz[at] = (dzn[at] - m1 - zn[at] * m2) / s[v * d + k];
            }
        }
    free(zn), free(s), free(c), free(dzn);
}

/* ---- VICReg ---- */

double sc_ref_vicreg(int n2, int d, const double *coef, const double *z)
{
    int n = n2 / 2;
    double inv = 0, var = 0, cov = 0;
    for (long i = 0; i < (long)n * d; i++) {
        double e = z[i] - z[(long)n * d + i];
        inv += e * e;
    }
    inv /= (double)n * d;
    double *zc = scratch((long)n * d), *s = scratch(d), *c = scratch((long)d * d);
    for (int v = 0; v < 2; v++) {
        centre(n, d, z + (long)v * n * d, n - 1, coef[3], zc, s);
        for (int k = 0; k < d; k++)
            var += (s[k] < 1 ? 1 - s[k] : 0) / d / 2;
        cross(n, d, zc, zc, n - 1, c);
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++)
                if (a != b)
                    cov += c[(long)a * d + b] * c[(long)a * d + b] / d;
    }
    free(zc), free(s), free(c);
    return coef[0] * inv + coef[1] * var + coef[2] * cov;
}

void sc_ref_vicreg_bwd(int n2, int d, const double *coef, const double *z, double *dz)
{
    int n = n2 / 2;
    long nd = (long)n * d;
    for (long i = 0; i < nd; i++) {
        double g = 2 * coef[0] * (z[i] - z[nd + i]) / (double)nd;
        dz[i] = g;
        dz[nd + i] = -g;
    }
    double *zc = scratch(nd), *s = scratch(d), *c = scratch((long)d * d);
    for (int v = 0; v < 2; v++) {
        double *out = dz + v * nd;
        centre(n, d, z + v * nd, n - 1, coef[3], zc, s);
        /* variance: d s_k / d z_ik = zc_ik / ((N - 1) s_k); the centring's
         * term vanishes, the column of zc sums to 0 */
        for (int k = 0; k < d; k++) {
            double a = s[k] < 1 ? -coef[1] / (2.0 * d) / ((n - 1) * s[k]) : 0;
            for (int i = 0; i < n; i++)
                out[(long)i * d + k] += a * zc[(long)i * d + k];
        }
        /* covariance: dz = zc H, H = 4 cov C_offdiag / (D (N - 1)) */
        cross(n, d, zc, zc, n - 1, c);
        for (int i = 0; i < n; i++)
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++)
                    if (a != b)
                        out[(long)i * d + b] += zc[(long)i * d + a] * 4 * coef[2] * c[(long)a * d + b] / d / (n - 1);
    }
    free(zc), free(s), free(c);
}
