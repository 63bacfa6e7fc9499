/* References of the batchnorm statistics taken in a convolution's
 * epilogue (fuse.c, "conv2d+stats"): the convolution writes, per chunk of
 * images, each channel's count, mean and sum of squared deviations about
 * that mean (centred, so no cancellation); the batchnorm merges the
 * chunks in image order (Chan et al.'s pairwise update, in double) instead
 * of reading its input for the statistics. The reference's chunk is one
 * image; generated code uses its convolution plan's chunks. */
#include "refops.h"

#include <math.h>

void sc_ref_conv_stats(int n, int c, int hw, const double *y, double *stats)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const double *row = y + ((long)i * c + ch) * hw;
            double s = 0.0, ss = 0.0;
            for (int k = 0; k < hw; k++)
                s += row[k];
            double mu = s / hw;
            for (int k = 0; k < hw; k++)
                ss += (row[k] - mu) * (row[k] - mu);
            double *st = stats + ((long)i * c + ch) * 3;
            st[0] = hw, st[1] = mu, st[2] = ss;
        }
}

void sc_ref_stats_merge(int n, int c, const double *stats, double *mean, double *var)
{
    for (int ch = 0; ch < c; ch++) {
        double cnt = 0.0, mu = 0.0, m2 = 0.0;
        for (int i = 0; i < n; i++) {
            const double *st = stats + ((long)i * c + ch) * 3;
            if (st[0] <= 0.0)
                continue;
            double tot = cnt + st[0], d = st[1] - mu;
            mu += d * st[0] / tot;
            m2 += st[2] + d * d * cnt * st[0] / tot;
            cnt = tot;
        }
        mean[ch] = mu;
        var[ch] = cnt > 0.0 ? m2 / cnt : 0.0;
    }
}

void sc_ref_batchnorm_stats(int n, int c, int hw, double eps, const double *x, const double *stats,
                            const double *gamma, const double *beta, double *y, double *mean, double *var)
{
    sc_ref_stats_merge(n, c, stats, mean, var);
    for (int ch = 0; ch < c; ch++) {
        double scale = gamma[ch] / sqrt(var[ch] + eps);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) {
                long idx = ((long)i * c + ch) * hw + k;
                y[idx] = (x[idx] - mean[ch]) * scale + beta[ch];
            }
    }
}
