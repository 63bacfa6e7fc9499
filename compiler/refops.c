/* refops.c: reference kernels, forward and backward, in double precision.
 *
 * Naive loops on purpose: these are the oracle that generated code is
 * checked against, so every function is the definition written out, with
 * PyTorch's semantics (see refops.h). Sizes that can exceed an int (element
 * counts of activations) are computed in long. */
#include "refops.h"

#include <math.h>
#include <string.h>

/* torch.nn.functional.normalize's default eps. */
#define SC_L2NORM_EPS 1e-12

int sc_window_out(int in, int kernel, int stride, int pad)
{
    return (in + 2 * pad - kernel) / stride + 1;
}

/* ---- conv2d ------------------------------------------------------------ */

/* Index of x[n][c][i][j] in an NCHW tensor with c channels of h x w. */
static long at4(int n, int c, int i, int j, int nc, int h, int w)
{
    return (((long)n * nc + c) * h + i) * w + j;
}

/* The grouped, dilated convolution's geometry: output channel o reads
 * input channels [grp(o) * cg, grp(o) * cg + cg), tap ki at row
 * oi * stride - pad + ki * dil. */
typedef struct {
    int cg, og, dil;
} conv_shape;

static conv_shape conv_shape_of(const sc_window *g)
{
    int groups = g->groups > 0 ? g->groups : 1;
    conv_shape s = {g->c / groups, g->o / groups, g->dilation > 0 ? g->dilation : 1};
    return s;
}

void sc_ref_conv2d(const sc_window *g, const double *x, const double *w,
                   const double *b, double *y)
{
    int k = g->kernel;
    conv_shape s = conv_shape_of(g);
    for (int n = 0; n < g->n; n++)
        for (int o = 0; o < g->o; o++)
            for (int oi = 0; oi < g->oh; oi++)
                for (int oj = 0; oj < g->ow; oj++) {
                    double acc = b ? b[o] : 0.0;
                    int c0 = o / s.og * s.cg;
                    for (int c = 0; c < s.cg; c++)
                        for (int ki = 0; ki < k; ki++) {
                            int i = oi * g->stride - g->pad + ki * s.dil;
                            if (i < 0 || i >= g->h)
                                continue; /* zero padding */
                            for (int kj = 0; kj < k; kj++) {
                                int j = oj * g->stride - g->pad + kj * s.dil;
                                if (j < 0 || j >= g->w)
                                    continue;
                                acc += x[at4(n, c0 + c, i, j, g->c, g->h, g->w)] *
                                       w[at4(o, c, ki, kj, s.cg, k, k)];
                            }
                        }
                    y[at4(n, o, oi, oj, g->o, g->oh, g->ow)] = acc;
                }
}

void sc_ref_conv2d_bwd_data(const sc_window *g, const double *dy,
                            const double *w, double *dx)
{
    int k = g->kernel;
    conv_shape s = conv_shape_of(g);
    memset(dx, 0, sizeof(double) * (size_t)g->n * g->c * g->h * g->w);
    for (int n = 0; n < g->n; n++)
        for (int o = 0; o < g->o; o++)
            for (int oi = 0; oi < g->oh; oi++)
                for (int oj = 0; oj < g->ow; oj++) {
                    double d = dy[at4(n, o, oi, oj, g->o, g->oh, g->ow)];
                    int c0 = o / s.og * s.cg;
                    for (int c = 0; c < s.cg; c++)
                        for (int ki = 0; ki < k; ki++) {
                            int i = oi * g->stride - g->pad + ki * s.dil;
                            if (i < 0 || i >= g->h)
                                continue;
                            for (int kj = 0; kj < k; kj++) {
                                int j = oj * g->stride - g->pad + kj * s.dil;
                                if (j < 0 || j >= g->w)
                                    continue;
                                dx[at4(n, c0 + c, i, j, g->c, g->h, g->w)] +=
                                    d * w[at4(o, c, ki, kj, s.cg, k, k)];
                            }
                        }
                }
}

void sc_ref_conv2d_bwd_weight(const sc_window *g, const double *dy,
                              const double *x, double *dw)
{
    int k = g->kernel;
    conv_shape s = conv_shape_of(g);
    for (int o = 0; o < g->o; o++)
        for (int c = 0; c < s.cg; c++)
            for (int ki = 0; ki < k; ki++)
                for (int kj = 0; kj < k; kj++) {
                    double acc = 0.0;
                    int cx = o / s.og * s.cg + c;
                    for (int n = 0; n < g->n; n++)
                        for (int oi = 0; oi < g->oh; oi++) {
                            int i = oi * g->stride - g->pad + ki * s.dil;
                            if (i < 0 || i >= g->h)
                                continue;
                            for (int oj = 0; oj < g->ow; oj++) {
                                int j = oj * g->stride - g->pad + kj * s.dil;
                                if (j < 0 || j >= g->w)
                                    continue;
                                acc += dy[at4(n, o, oi, oj, g->o, g->oh, g->ow)] *
                                       x[at4(n, cx, i, j, g->c, g->h, g->w)];
                            }
                        }
                    dw[at4(o, c, ki, kj, s.cg, k, k)] = acc;
                }
}

void sc_ref_bias_bwd(int n, int c, int hw, const double *dy, double *db)
{
    for (int ch = 0; ch < c; ch++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++)
                acc += dy[((long)i * c + ch) * hw + k];
        db[ch] = acc;
    }
}

/* ---- batchnorm --------------------------------------------------------- */

void sc_ref_batchnorm(int n, int c, int hw, double eps, const double *x,
                      const double *gamma, const double *beta, double *y,
                      double *mean, double *var)
{
    double m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0.0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++)
                s += x[((long)i * c + ch) * hw + k];
        double mu = s / m;
        /* Two-pass variance: the textbook formula, no cancellation. */
        double ss = 0.0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) {
                double d = x[((long)i * c + ch) * hw + k] - mu;
                ss += d * d;
            }
        double v = ss / m; /* biased, as PyTorch normalises with */
        double istd = 1.0 / sqrt(v + eps);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) {
                long idx = ((long)i * c + ch) * hw + k;
                y[idx] = gamma[ch] * (x[idx] - mu) * istd + beta[ch];
            }
        mean[ch] = mu;
        var[ch] = v;
    }
}

/* With xhat = (x - mean) * istd over the m = n * hw values of a channel:
 * dbeta = sum dy, dgamma = sum dy * xhat, and since mean and var depend on
 * every x, dx = gamma * istd / m * (m * dy - dbeta - xhat * dgamma). */
void sc_ref_batchnorm_bwd(int n, int c, int hw, double eps, const double *dy,
                          const double *x, const double *gamma,
                          const double *mean, const double *var, double *dx,
                          double *dgamma, double *dbeta)
{
    double m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double istd = 1.0 / sqrt(var[ch] + eps);
        double sdy = 0.0, sdyx = 0.0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) {
                long idx = ((long)i * c + ch) * hw + k;
                sdy += dy[idx];
                sdyx += dy[idx] * (x[idx] - mean[ch]) * istd;
            }
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) {
                long idx = ((long)i * c + ch) * hw + k;
                double xhat = (x[idx] - mean[ch]) * istd;
                dx[idx] = gamma[ch] * istd / m *
                          (m * dy[idx] - sdy - xhat * sdyx);
            }
        dgamma[ch] = sdyx;
        dbeta[ch] = sdy;
    }
}

void sc_ref_bn_running(int c, long count, double momentum, const double *mean,
                       const double *var, double *running_mean,
                       double *running_var)
{
    /* PyTorch rejects count < 2 in training mode; the compiler's shape
     * check does too, so the guard only keeps this function total. */
    double unbias = count > 1 ? (double)count / (double)(count - 1) : 1.0;
    for (int ch = 0; ch < c; ch++) {
        running_mean[ch] = (1.0 - momentum) * running_mean[ch] +
                           momentum * mean[ch];
        running_var[ch] = (1.0 - momentum) * running_var[ch] +
                          momentum * var[ch] * unbias;
    }
}

/* ---- relu -------------------------------------------------------------- */

void sc_ref_relu(long n, const double *x, double *y)
{
    for (long i = 0; i < n; i++)
        y[i] = x[i] > 0.0 ? x[i] : 0.0;
}

/* PyTorch's threshold_backward on the output: the gradient passes where
 * y > 0, so x == 0 gets none. */
void sc_ref_relu_bwd(long n, const double *dy, const double *y, double *dx)
{
    for (long i = 0; i < n; i++)
        dx[i] = y[i] > 0.0 ? dy[i] : 0.0;
}

/* ---- silu, gelu, leaky relu --------------------------------------------- */

/* PyTorch's CPU formulas, term for term, so that float64 results agree to
 * rounding. Each element is read before it is written: y may be x, dx dy. */
void sc_ref_silu(long n, const double *x, double *y)
{
    for (long i = 0; i < n; i++)
        y[i] = x[i] / (1.0 + exp(-x[i]));
}

void sc_ref_silu_bwd(long n, const double *dy, const double *x, double *dx)
{
    for (long i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-x[i]));
        dx[i] = dy[i] * s * (1.0 + x[i] * (1.0 - s));
    }
}

void sc_ref_gelu(long n, const double *x, double *y)
{
    for (long i = 0; i < n; i++)
        y[i] = x[i] * 0.5 * (1.0 + erf(x[i] * M_SQRT1_2));
}

/* d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density. */
void sc_ref_gelu_bwd(long n, const double *dy, const double *x, double *dx)
{
    const double beta = M_2_SQRTPI * M_SQRT1_2 * 0.5; /* 1 / sqrt(2 pi) */
    for (long i = 0; i < n; i++) {
        double cdf = 0.5 * (1.0 + erf(x[i] * M_SQRT1_2));
        double pdf = beta * exp(x[i] * x[i] * -0.5);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
}

void sc_ref_leaky_relu(long n, double slope, const double *x, double *y)
{
    for (long i = 0; i < n; i++)
        y[i] = x[i] > 0.0 ? x[i] : x[i] * slope;
}

/* At x = 0 the gradient is slope's, as in PyTorch (x > 0 passes dy). */
void sc_ref_leaky_relu_bwd(long n, double slope, const double *dy,
                           const double *x, double *dx)
{
    for (long i = 0; i < n; i++)
        dx[i] = x[i] > 0.0 ? dy[i] : dy[i] * slope;
}

/* ---- pooling ----------------------------------------------------------- */

/* Index in x (one n, c plane) of the maximum of output cell (oi, oj), as
 * PyTorch's CPU kernel picks it: start at the first in-bounds element with
 * max = -inf, move on strictly greater (or NaN), so ties go to the first
 * in scan order and padding never wins. */
static long maxpool_argmax(const sc_window *g, const double *plane, int oi,
                           int oj)
{
    int i0 = oi * g->stride - g->pad, j0 = oj * g->stride - g->pad;
    int i1 = i0 + g->kernel < g->h ? i0 + g->kernel : g->h;
    int j1 = j0 + g->kernel < g->w ? j0 + g->kernel : g->w;
    if (i0 < 0)
        i0 = 0;
    if (j0 < 0)
        j0 = 0;
    long best = (long)i0 * g->w + j0;
    double maxv = -INFINITY;
    for (int i = i0; i < i1; i++)
        for (int j = j0; j < j1; j++) {
            double v = plane[(long)i * g->w + j];
            if (v > maxv || isnan(v)) {
                maxv = v;
                best = (long)i * g->w + j;
            }
        }
    return best;
}

void sc_ref_maxpool(const sc_window *g, const double *x, double *y)
{
    long in_plane = (long)g->h * g->w, out_plane = (long)g->oh * g->ow;
    for (long p = 0; p < (long)g->n * g->c; p++) {
        const double *xp = x + p * in_plane;
        for (int oi = 0; oi < g->oh; oi++)
            for (int oj = 0; oj < g->ow; oj++)
                y[p * out_plane + (long)oi * g->ow + oj] =
                    xp[maxpool_argmax(g, xp, oi, oj)];
    }
}

void sc_ref_maxpool_bwd(const sc_window *g, const double *dy, const double *x,
                        double *dx)
{
    long in_plane = (long)g->h * g->w, out_plane = (long)g->oh * g->ow;
    memset(dx, 0, sizeof(double) * (size_t)g->n * g->c * in_plane);
    for (long p = 0; p < (long)g->n * g->c; p++) {
        const double *xp = x + p * in_plane;
        for (int oi = 0; oi < g->oh; oi++)
            for (int oj = 0; oj < g->ow; oj++)
                dx[p * in_plane + maxpool_argmax(g, xp, oi, oj)] +=
                    dy[p * out_plane + (long)oi * g->ow + oj];
    }
}

/* count_include_pad: every window divides by kernel * kernel (with the
 * floor output rule no window reaches past the padding). */
void sc_ref_avgpool(const sc_window *g, const double *x, double *y)
{
    long in_plane = (long)g->h * g->w, out_plane = (long)g->oh * g->ow;
    double div = (double)g->kernel * g->kernel;
    for (long p = 0; p < (long)g->n * g->c; p++)
        for (int oi = 0; oi < g->oh; oi++)
            for (int oj = 0; oj < g->ow; oj++) {
                double acc = 0.0;
                for (int ki = 0; ki < g->kernel; ki++) {
                    int i = oi * g->stride - g->pad + ki;
                    if (i < 0 || i >= g->h)
                        continue;
                    for (int kj = 0; kj < g->kernel; kj++) {
                        int j = oj * g->stride - g->pad + kj;
                        if (j < 0 || j >= g->w)
                            continue;
                        acc += x[p * in_plane + (long)i * g->w + j];
                    }
                }
                y[p * out_plane + (long)oi * g->ow + oj] = acc / div;
            }
}

void sc_ref_avgpool_bwd(const sc_window *g, const double *dy, double *dx)
{
    long in_plane = (long)g->h * g->w, out_plane = (long)g->oh * g->ow;
    double div = (double)g->kernel * g->kernel;
    memset(dx, 0, sizeof(double) * (size_t)g->n * g->c * in_plane);
    for (long p = 0; p < (long)g->n * g->c; p++)
        for (int oi = 0; oi < g->oh; oi++)
            for (int oj = 0; oj < g->ow; oj++) {
                double d = dy[p * out_plane + (long)oi * g->ow + oj] / div;
                for (int ki = 0; ki < g->kernel; ki++) {
                    int i = oi * g->stride - g->pad + ki;
                    if (i < 0 || i >= g->h)
                        continue;
                    for (int kj = 0; kj < g->kernel; kj++) {
                        int j = oj * g->stride - g->pad + kj;
                        if (j < 0 || j >= g->w)
                            continue;
                        dx[p * in_plane + (long)i * g->w + j] += d;
                    }
                }
            }
}

void sc_ref_global_avgpool(int n, int c, int hw, const double *x, double *y)
{
    for (long p = 0; p < (long)n * c; p++) {
        double acc = 0.0;
        for (int k = 0; k < hw; k++)
            acc += x[p * hw + k];
        y[p] = acc / hw;
    }
}

void sc_ref_global_avgpool_bwd(int n, int c, int hw, const double *dy,
                               double *dx)
{
    for (long p = 0; p < (long)n * c; p++)
        for (int k = 0; k < hw; k++)
            dx[p * hw + k] = dy[p] / hw;
}

/* ---- linear ------------------------------------------------------------ */

void sc_ref_linear(int n, int in, int out, const double *x, const double *w,
                   const double *b, double *y)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0.0;
            for (int k = 0; k < in; k++)
                acc += x[(long)i * in + k] * w[(long)o * in + k];
            y[(long)i * out + o] = acc;
        }
}

void sc_ref_linear_bwd_data(int n, int in, int out, const double *dy,
                            const double *w, double *dx)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) {
            double acc = 0.0;
            for (int o = 0; o < out; o++)
                acc += dy[(long)i * out + o] * w[(long)o * in + k];
            dx[(long)i * in + k] = acc;
        }
}

void sc_ref_linear_bwd_weight(int n, int in, int out, const double *dy,
                              const double *x, double *dw)
{
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++) {
            double acc = 0.0;
            for (int i = 0; i < n; i++)
                acc += dy[(long)i * out + o] * x[(long)i * in + k];
            dw[(long)o * in + k] = acc;
        }
}

/* ---- elementwise ------------------------------------------------------- */

void sc_ref_add(long n, const double *a, const double *b, double *y)
{
    for (long i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

void sc_ref_copy(long n, const double *x, double *y)
{
    /* memmove: well defined even if the caller passes overlapping buffers. */
    memmove(y, x, sizeof(double) * (size_t)n);
}

/* ---- fused ops ---------------------------------------------------------- */

/* Each runs its parts in place in the output buffer: the relu kernels and
 * the final pass of batchnorm_bwd touch each element once, reading it
 * before writing it. */
void sc_ref_batchnorm_relu(int n, int c, int hw, double eps, const double *x,
                           const double *gamma, const double *beta, double *y,
                           double *mean, double *var)
{
    sc_ref_batchnorm(n, c, hw, eps, x, gamma, beta, y, mean, var);
    sc_ref_relu((long)n * c * hw, y, y);
}

void sc_ref_add_relu(long n, const double *a, const double *b, double *y)
{
    sc_ref_add(n, a, b, y);
    sc_ref_relu(n, y, y);
}

void sc_ref_batchnorm_add_relu(int n, int c, int hw, double eps, const double *x, const double *gamma,
                               const double *beta, const double *r, double *y, double *mean, double *var)
{
    sc_ref_batchnorm(n, c, hw, eps, x, gamma, beta, y, mean, var);
    sc_ref_add_relu((long)n * c * hw, y, r, y);
}

void sc_ref_batchnorm_relu_bwd(int n, int c, int hw, double eps,
                               const double *dy, const double *y,
                               const double *x, const double *gamma,
                               const double *mean, const double *var,
                               double *dx, double *dgamma, double *dbeta)
{
    sc_ref_relu_bwd((long)n * c * hw, dy, y, dx);
    sc_ref_batchnorm_bwd(n, c, hw, eps, dx, x, gamma, mean, var, dx, dgamma,
                         dbeta);
}

void sc_ref_add_relu_bwd(long n, const double *a, const double *b,
                         const double *y, double *dx)
{
    sc_ref_add(n, a, b, dx);
    sc_ref_relu_bwd(n, dx, y, dx);
}

/* ---- l2norm ------------------------------------------------------------ */

static double row_norm(int d, const double *x)
{
    double ss = 0.0;
    for (int k = 0; k < d; k++)
        ss += x[k] * x[k];
    return sqrt(ss);
}

void sc_ref_l2norm(int n, int d, const double *x, double *y)
{
    for (int i = 0; i < n; i++) {
        const double *xi = x + (long)i * d;
        double nrm = row_norm(d, xi);
        double den = nrm > SC_L2NORM_EPS ? nrm : SC_L2NORM_EPS;
        for (int k = 0; k < d; k++)
            y[(long)i * d + k] = xi[k] / den;
    }
}

/* y = x / r with r = max(||x||, eps). Where the norm passes the clamp
 * (PyTorch's clamp_min lets the gradient through when ||x|| >= eps),
 * dx = (dy - x (x.dy) / r^2) / r; below it r is a constant: dx = dy / eps. */
void sc_ref_l2norm_bwd(int n, int d, const double *dy, const double *x,
                       double *dx)
{
    for (int i = 0; i < n; i++) {
        const double *xi = x + (long)i * d, *dyi = dy + (long)i * d;
        double *dxi = dx + (long)i * d;
        double nrm = row_norm(d, xi);
        if (nrm >= SC_L2NORM_EPS) {
            double dot = 0.0;
            for (int k = 0; k < d; k++)
                dot += xi[k] * dyi[k];
            for (int k = 0; k < d; k++)
                dxi[k] = (dyi[k] - xi[k] * dot / (nrm * nrm)) / nrm;
        } else {
            for (int k = 0; k < d; k++)
                dxi[k] = dyi[k] / SC_L2NORM_EPS;
        }
    }
}

/* ---- NT-Xent ----------------------------------------------------------- */

static double dot_scaled(int d, const double *a, const double *b, double t)
{
    double s = 0.0;
    for (int k = 0; k < d; k++)
        s += a[k] * b[k];
    return s / t;
}

/* log sum_{j != i} exp(s_ij) for row i, by the streaming max-shift, so no
 * temperature overflows exp and no scratch memory is needed. */
static double row_logsumexp(int n2, int d, double t, const double *z, int i)
{
    double m = -INFINITY, sum = 0.0;
    for (int j = 0; j < n2; j++) {
        if (j == i)
            continue;
        double s = dot_scaled(d, z + (long)i * d, z + (long)j * d, t);
        if (s > m) {
            sum = sum * exp(m - s) + 1.0;
            m = s;
        } else {
            sum += exp(s - m);
        }
    }
    return m + log(sum);
}

double sc_ref_ntxent(int n2, int d, double temperature, const double *z)
{
    int half = n2 / 2;
    double loss = 0.0;
    for (int i = 0; i < n2; i++) {
        int pos = (i + half) % n2;
        double spos = dot_scaled(d, z + (long)i * d, z + (long)pos * d,
                                 temperature);
        loss += row_logsumexp(n2, d, temperature, z, i) - spos;
    }
    return loss / n2;
}

/* dL/ds_ij = (softmax_i(j) - [j == pos(i)]) / n2 for j != i, and
 * s_ij = z_i.z_j / t feeds both z_i and z_j. */
void sc_ref_ntxent_bwd(int n2, int d, double temperature, const double *z,
                       double *dz)
{
    int half = n2 / 2;
    memset(dz, 0, sizeof(double) * (size_t)n2 * d);
    for (int i = 0; i < n2; i++) {
        int pos = (i + half) % n2;
        double lse = row_logsumexp(n2, d, temperature, z, i);
        const double *zi = z + (long)i * d;
        for (int j = 0; j < n2; j++) {
            if (j == i)
                continue;
            const double *zj = z + (long)j * d;
            double s = dot_scaled(d, zi, zj, temperature);
            double gs = (exp(s - lse) - (j == pos ? 1.0 : 0.0)) / n2;
            for (int k = 0; k < d; k++) {
                dz[(long)i * d + k] += gs * zj[k] / temperature;
                dz[(long)j * d + k] += gs * zi[k] / temperature;
            }
        }
    }
}

void sc_ref_batchnorm_eval(int n, int c, int hw, double eps, const double *x,
                           const double *gamma, const double *beta,
                           const double *running_mean,
                           const double *running_var, double *y)
{
    for (int ch = 0; ch < c; ch++) {
        double inv = 1.0 / sqrt(running_var[ch] + eps);
        for (int i = 0; i < n; i++) {
            long base = ((long)i * c + ch) * hw;
            for (int k = 0; k < hw; k++)
                y[base + k] = (x[base + k] - running_mean[ch]) * inv * gamma[ch] + beta[ch];
        }
    }
}

/* log-sum-exp of row x[0..k), stabilised by the row maximum. */
static double row_lse(int k, const double *x)
{
    double m = x[0];
    for (int j = 1; j < k; j++)
        m = x[j] > m ? x[j] : m;
    double s = 0;
    for (int j = 0; j < k; j++)
        s += exp(x[j] - m);
    return m + log(s);
}

double sc_ref_softmax_xent(int n, int k, const double *logits, const double *labels)
{
    double loss = 0;
    for (int i = 0; i < n; i++) {
        const double *row = logits + (long)i * k;
        loss += row_lse(k, row) - row[(int)labels[i]];
    }
    return loss / n;
}

void sc_ref_softmax_xent_bwd(int n, int k, const double *logits, const double *labels,
                             double *dlogits)
{
    for (int i = 0; i < n; i++) {
        const double *row = logits + (long)i * k;
        double lse = row_lse(k, row);
        for (int j = 0; j < k; j++)
            dlogits[(long)i * k + j] = (exp(row[j] - lse) - (j == (int)labels[i])) / n;
    }
}
