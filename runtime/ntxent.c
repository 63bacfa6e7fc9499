#include "sc_ntxent.h"

#include <math.h>

#include <cblas.h>

int64_t sc_ntxent_global_row(int64_t rows, int64_t m, int64_t first, int64_t i)
{
    int64_t n = rows / 2;
    return i < n ? first + i : m / 2 + first + (i - n);
}

void sc_ntxent_rows_fwd(int64_t rows, int64_t m, int64_t d, double t, int64_t first, const float *zl,
                        const float *zg, float *sim, double *lse, double *term)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)m, (int)d, 1.0f, zl, (int)d, zg,
                (int)d, 0.0f, sim, (int)m);
    double inv_t = 1.0 / t;
    for (int64_t i = 0; i < rows; i++) {
        int64_t g = sc_ntxent_global_row(rows, m, first, i), pos = (g + m / 2) % m;
        const float *s = sim + i * m;
        double mx = -INFINITY;
        for (int64_t j = 0; j < m; j++)
            if (j != g && s[j] * inv_t > mx)
                mx = s[j] * inv_t;
        double sum = 0.0;
        for (int64_t j = 0; j < m; j++)
            if (j != g)
                sum += exp(s[j] * inv_t - mx);
        lse[i] = mx + log(sum);
        term[i] = lse[i] - s[pos] * inv_t;
    }
}

void sc_ntxent_rows_bwd(int64_t rows, int64_t m, int64_t d, double t, int64_t first, const float *zg,
                        const float *sim, const double *lse_g, float scale, float *h, float *dz)
{
    double inv_t = 1.0 / t, k = (double)scale / ((double)m * t);
    for (int64_t i = 0; i < rows; i++) {
        int64_t g = sc_ntxent_global_row(rows, m, first, i), pos = (g + m / 2) % m;
        const float *s = sim + i * m;
        float *hr = h + i * m;
        /* H_gj = G_gj + G_jg; s_jg = s_gj, and pos is an involution, so
         * [g = pos(j)] = [j = pos(g)]. */
        for (int64_t j = 0; j < m; j++) {
            if (j == g) {
                hr[j] = 0.0f;
                continue;
            }
            double v = s[j] * inv_t;
            double p = exp(v - lse_g[g]) + exp(v - lse_g[j]) - (j == pos ? 2.0 : 0.0);
            hr[j] = (float)(p * k);
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)d, (int)m, 1.0f, h, (int)m, zg,
                (int)d, 0.0f, dz, (int)d);
}
