/* Reference kernels: plain, obviously correct C for every op of the IR,
 * forward and backward, in double precision. The interpreter (interp.c)
 * runs graphs with these; they are the oracle for generated code.
 *
 * Layouts are PyTorch's: activations NCHW (or [N, D] for 2-D), conv weight
 * [O, C, K, K], linear weight [OUT, IN]. Semantics are PyTorch's too:
 * batchnorm in training mode uses biased batch variance; maxpool padding is
 * -inf and ties go to the first maximum in scan order; avgpool counts
 * padding in the divisor; l2norm divides by max(||x||, 1e-12). */
#ifndef SC_REFOPS_H
#define SC_REFOPS_H

typedef struct {
    int n, c, h, w;   /* input */
    int o;            /* output channels (conv only) */
    int kernel, stride, pad;
    int oh, ow;       /* output height and width */
    int groups;       /* conv: channel groups, w is [o, c/groups, k, k]; 0 means 1 */
    int dilation;     /* conv: spacing of the taps; 0 means 1 */
} sc_window;

/* Output size of a window op, PyTorch's floor rule: (in + 2p - k) / s + 1. */
int sc_window_out(int in, int kernel, int stride, int pad);

void sc_ref_conv2d(const sc_window *g, const double *x, const double *w,
                   const double *b, double *y);           /* b may be NULL */
void sc_ref_conv2d_bwd_data(const sc_window *g, const double *dy,
                            const double *w, double *dx);
void sc_ref_conv2d_bwd_weight(const sc_window *g, const double *dy,
                              const double *x, double *dw);
/* db[c] = sum of dy over every index but channel; dy is [n, c, hw]. */
void sc_ref_bias_bwd(int n, int c, int hw, const double *dy, double *db);

/* x is [n, c, hw] (hw = 1 for 2-D input); mean and var (biased) are [c]. */
void sc_ref_batchnorm(int n, int c, int hw, double eps, const double *x,
                      const double *gamma, const double *beta, double *y,
                      double *mean, double *var);
/* dx may be dy itself: each dx element is written after the last read of
 * its dy element (sc_ref_batchnorm_relu_bwd relies on it). */
void sc_ref_batchnorm_bwd(int n, int c, int hw, double eps, const double *dy,
                          const double *x, const double *gamma,
                          const double *mean, const double *var, double *dx,
                          double *dgamma, double *dbeta);
/* running = (1 - momentum) * running + momentum * batch, with the variance
 * made unbiased (count / (count - 1)) as PyTorch does. */
void sc_ref_bn_running(int c, long count, double momentum, const double *mean,
                       const double *var, double *running_mean,
                       double *running_var);

/* Eval mode: normalise with the running statistics. */
void sc_ref_batchnorm_eval(int n, int c, int hw, double eps, const double *x,
                           const double *gamma, const double *beta,
                           const double *running_mean,
                           const double *running_var, double *y);

void sc_ref_relu(long n, const double *x, double *y);
void sc_ref_relu_bwd(long n, const double *dy, const double *y, double *dx);

/* SiLU (x sigmoid(x)), GELU (exact: x Phi(x) with erf) and leaky ReLU;
 * the backward ones take the forward input x. */
void sc_ref_silu(long n, const double *x, double *y);
void sc_ref_silu_bwd(long n, const double *dy, const double *x, double *dx);
void sc_ref_gelu(long n, const double *x, double *y);
void sc_ref_gelu_bwd(long n, const double *dy, const double *x, double *dx);
void sc_ref_leaky_relu(long n, double slope, const double *x, double *y);
void sc_ref_leaky_relu_bwd(long n, double slope, const double *dy,
                           const double *x, double *dx);

void sc_ref_maxpool(const sc_window *g, const double *x, double *y);
void sc_ref_maxpool_bwd(const sc_window *g, const double *dy, const double *x,
                        double *dx);
void sc_ref_avgpool(const sc_window *g, const double *x, double *y);
void sc_ref_avgpool_bwd(const sc_window *g, const double *dy, double *dx);
void sc_ref_global_avgpool(int n, int c, int hw, const double *x, double *y);
void sc_ref_global_avgpool_bwd(int n, int c, int hw, const double *dy,
                               double *dx);

/* x [n, in], w [out, in], b [out] or NULL, y [n, out]. */
void sc_ref_linear(int n, int in, int out, const double *x, const double *w,
                   const double *b, double *y);
void sc_ref_linear_bwd_data(int n, int in, int out, const double *dy,
                            const double *w, double *dx);
void sc_ref_linear_bwd_weight(int n, int in, int out, const double *dy,
                              const double *x, double *dw);

void sc_ref_add(long n, const double *a, const double *b, double *y);
void sc_ref_copy(long n, const double *x, double *y);

/* Fused ops (fuse.c): each is the composition of the kernels above, in
 * the same order and the same double arithmetic, so a fused graph gives
 * bit-identical results to the unfused one. x is [n, c, hw] as for
 * batchnorm; y is the relu's output; numel elements in all. */
void sc_ref_batchnorm_relu(int n, int c, int hw, double eps, const double *x,
                           const double *gamma, const double *beta, double *y,
                           double *mean, double *var);
/* Batchnorm statistics from a convolution's epilogue (ref_bnstats.c).
 * stats is [n, c, 3]: per image (a chunk of images in generated code,
 * its first image's row; the others' count 0) and channel, the count,
 * the mean and the sum of squared deviations about that mean. */
void sc_ref_conv_stats(int n, int c, int hw, const double *y, double *stats);
/* mean and biased var [c] of the rows of stats with a positive count,
 * merged in image order. */
void sc_ref_stats_merge(int n, int c, const double *stats, double *mean, double *var);
/* sc_ref_batchnorm with the statistics merged from stats, not from x. */
void sc_ref_batchnorm_stats(int n, int c, int hw, double eps, const double *x, const double *stats,
                            const double *gamma, const double *beta, double *y, double *mean, double *var);
void sc_ref_add_relu(long n, const double *a, const double *b, double *y);
/* y = relu(batchnorm(x) + r): a residual block's join (r [n, c, hw]). */
void sc_ref_batchnorm_add_relu(int n, int c, int hw, double eps, const double *x, const double *gamma,
                               const double *beta, const double *r, double *y, double *mean, double *var);
/* Batchnorm backward of the masked gradient (y > 0 ? dy : 0). */
void sc_ref_batchnorm_relu_bwd(int n, int c, int hw, double eps,
                               const double *dy, const double *y,
                               const double *x, const double *gamma,
                               const double *mean, const double *var,
                               double *dx, double *dgamma, double *dbeta);
/* dx = y > 0 ? a + b : 0 */
void sc_ref_add_relu_bwd(long n, const double *a, const double *b,
                         const double *y, double *dx);

/* Rows of x [n, d] scaled to unit L2 norm. */
void sc_ref_l2norm(int n, int d, const double *x, double *y);
void sc_ref_l2norm_bwd(int n, int d, const double *dy, const double *x,
                       double *dx);

/* NT-Xent over z [n2, d] (n2 = 2N rows, view 0 of every image first, then
 * view 1; rows are expected L2-normalised, but any z works): the mean over
 * rows i of -log softmax_j(s_ij)[pos(i)], s_ij = z_i.z_j / t, j != i,
 * pos(i) = (i + N) mod 2N. */
double sc_ref_ntxent(int n2, int d, double temperature, const double *z);
void sc_ref_ntxent_bwd(int n2, int d, double temperature, const double *z,
                       double *dz);

/* Barlow Twins and VICReg over z [n2, d] (n2 = 2N rows in the NT-Xent
 * layout), the formulas of ir.h's SC_OP_BARLOW / SC_OP_VICREG; coef holds
 * model.h's SC_BARLOW_* / SC_VICREG_* slots (compiler/ref_statloss.c). */
double sc_ref_barlow(int n2, int d, const double *coef, const double *z);
void sc_ref_barlow_bwd(int n2, int d, const double *coef, const double *z, double *dz);
double sc_ref_vicreg(int n2, int d, const double *coef, const double *z);
void sc_ref_vicreg_bwd(int n2, int d, const double *coef, const double *z, double *dz);

/* Mean over rows of -log softmax(logits[i])[labels[i]]; logits [n, k],
 * labels hold class indices 0..k-1 as doubles. */
double sc_ref_softmax_xent(int n, int k, const double *logits, const double *labels);
void sc_ref_softmax_xent_bwd(int n, int k, const double *logits, const double *labels,
                             double *dlogits);

/* BYOL's loss on l2norm'ed rows q, t [n2, d] (ir.h, SC_OP_BYOL):
 * (2 / n2) sum_r (2 - 2 q_r . t_p(r)), p(r) = (r + n2/2) mod n2, and its
 * gradient in q (t is the target's: no gradient). refops_byol.c. */
double sc_ref_byol(int n2, int d, const double *q, const double *t);
void sc_ref_byol_bwd(int n2, int d, const double *t, double *dq);

#endif
