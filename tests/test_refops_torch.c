/* test_refops_torch: the reference kernels against PyTorch itself.
 *
 * Runs every refop forward and backward on fixed pseudo-random inputs,
 * writes inputs and results to a text file, and has tests/refops_torch.py
 * recompute them with torch (float64, autograd for the gradients) and
 * compare. The gradient checks prove each backward matches its forward;
 * this proves the forwards are PyTorch's (maxpool ties, batchnorm's
 * running statistics, the NT-Xent row layout, ...).
 *
 * File format, one item per line: `case NAME KEY=VALUE...` starts a case,
 * then `TENSOR V V V...` lines, all values in %.17g. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "refops.h"

static double pool[1 << 16];
static size_t pool_used;

static double *dalloc(long n)
{
    assert_true(pool_used + (size_t)n <= sizeof pool / sizeof pool[0]);
    double *p = pool + pool_used;
    memset(p, 0, sizeof(double) * (size_t)n);
    pool_used += (size_t)n;
    return p;
}

static unsigned long long rng_state = 0x2545F4914F6CDD1DULL;

static double urand(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    unsigned long long r = rng_state * 2685821657736338717ULL;
    return (double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double *drand_array(long n)
{
    double *p = dalloc(n);
    for (long i = 0; i < n; i++)
        p[i] = urand();
    return p;
}

static void put(FILE *f, const char *name, long n, const double *v)
{
    fprintf(f, "%s", name);
    for (long i = 0; i < n; i++)
        fprintf(f, " %.17g", v[i]);
    fprintf(f, "\n");
}

static sc_window window(int n, int c, int h, int w, int o, int k, int s,
                        int p)
{
    sc_window g = {.n = n, .c = c, .h = h, .w = w, .o = o,
                   .kernel = k, .stride = s, .pad = p};
    g.oh = sc_window_out(h, k, s, p);
    g.ow = sc_window_out(w, k, s, p);
    return g;
}

/* groups gr, dilation d (the window spans d*(k-1)+1 pixels) */
static void dump_conv_gd(FILE *f, int n, int c, int h, int w, int o, int k,
                         int s, int p, int bias, int gr, int d)
{
    sc_window g = window(n, c, h, w, o, k, s, p);
    g.groups = gr;
    g.dilation = d;
    g.oh = sc_window_out(h, d * (k - 1) + 1, s, p);
    g.ow = sc_window_out(w, d * (k - 1) + 1, s, p);
    long nx = (long)n * c * h * w, nw = (long)o * (c / gr) * k * k;
    long ny = (long)n * o * g.oh * g.ow;
    double *x = drand_array(nx), *wt = drand_array(nw);
    double *b = bias ? drand_array(o) : NULL;
    double *y = dalloc(ny), *r = drand_array(ny);
    double *dx = dalloc(nx), *dw = dalloc(nw), *db = dalloc(o);
    sc_ref_conv2d(&g, x, wt, b, y);
    sc_ref_conv2d_bwd_data(&g, r, wt, dx);
    sc_ref_conv2d_bwd_weight(&g, r, x, dw);
    sc_ref_bias_bwd(n, o, g.oh * g.ow, r, db);
    fprintf(f, "case conv2d n=%d c=%d h=%d w=%d o=%d k=%d s=%d p=%d bias=%d g=%d d=%d\n",
            n, c, h, w, o, k, s, p, bias, gr, d);
    put(f, "x", nx, x);
    put(f, "w", nw, wt);
    if (bias)
        put(f, "b", o, b);
    put(f, "r", ny, r);
    put(f, "y", ny, y);
    put(f, "dx", nx, dx);
    put(f, "dw", nw, dw);
    put(f, "db", o, db);
}

static void dump_conv(FILE *f, int n, int c, int h, int w, int o, int k,
                      int s, int p, int bias)
{
    dump_conv_gd(f, n, c, h, w, o, k, s, p, bias, 1, 1);
}

static void dump_bn(FILE *f, int n, int c, int h, int w)
{
    long nx = (long)n * c * h * w;
    double eps = 1e-5, momentum = 0.1;
    double *x = drand_array(nx), *gamma = drand_array(c);
    double *beta = drand_array(c), *r = drand_array(nx);
    double *rm = drand_array(c), *rv = dalloc(c);
    for (int i = 0; i < c; i++)
        rv[i] = 1.5 + urand();
    double *y = dalloc(nx), *mean = dalloc(c), *var = dalloc(c);
    double *dx = dalloc(nx), *dg = dalloc(c), *dbeta = dalloc(c);
    fprintf(f, "case batchnorm n=%d c=%d h=%d w=%d eps=%.17g momentum=%.17g\n",
            n, c, h, w, eps, momentum);
    put(f, "x", nx, x);
    put(f, "gamma", c, gamma);
    put(f, "beta", c, beta);
    put(f, "r", nx, r);
    put(f, "running_mean_in", c, rm);
    put(f, "running_var_in", c, rv);
    sc_ref_batchnorm(n, c, h * w, eps, x, gamma, beta, y, mean, var);
    sc_ref_batchnorm_bwd(n, c, h * w, eps, r, x, gamma, mean, var, dx, dg,
                         dbeta);
    sc_ref_bn_running(c, (long)n * h * w, momentum, mean, var, rm, rv);
    put(f, "y", nx, y);
    put(f, "mean", c, mean);
    put(f, "var", c, var);
    put(f, "dx", nx, dx);
    put(f, "dgamma", c, dg);
    put(f, "dbeta", c, dbeta);
    put(f, "running_mean", c, rm);
    put(f, "running_var", c, rv);
}

static void dump_relu(FILE *f, long n)
{
    double *x = drand_array(n), *r = drand_array(n);
    double *y = dalloc(n), *dx = dalloc(n);
    x[0] = 0.0; /* the kink: PyTorch gives no gradient there */
    sc_ref_relu(n, x, y);
    sc_ref_relu_bwd(n, r, y, dx);
    fprintf(f, "case relu n=%ld\n", n);
    put(f, "x", n, x);
    put(f, "r", n, r);
    put(f, "y", n, y);
    put(f, "dx", n, dx);
}

/* silu, gelu, leaky_relu (kind) over [-6, 6] and the tails, with x = 0
 * (leaky relu's kink: PyTorch gives it the slope's gradient). */
static void dump_activation(FILE *f, const char *kind, long n, double slope)
{
    double *x = drand_array(n), *r = drand_array(n);
    double *y = dalloc(n), *dx = dalloc(n);
    for (long i = 0; i < n; i++)
        x[i] *= 6.0;
    x[0] = 0.0;
    x[1] = -30.0;
    x[2] = 30.0;
    if (!strcmp(kind, "silu")) {
        sc_ref_silu(n, x, y);
        sc_ref_silu_bwd(n, r, x, dx);
    } else if (!strcmp(kind, "gelu")) {
        sc_ref_gelu(n, x, y);
        sc_ref_gelu_bwd(n, r, x, dx);
    } else {
        sc_ref_leaky_relu(n, slope, x, y);
        sc_ref_leaky_relu_bwd(n, slope, r, x, dx);
    }
    fprintf(f, "case %s n=%ld slope=%.17g\n", kind, n, slope);
    put(f, "x", n, x);
    put(f, "r", n, r);
    put(f, "y", n, y);
    put(f, "dx", n, dx);
}

/* ties: inputs from {-1, -0.5, 0, 0.5, 1}, so windows hold equal maxima. */
static void dump_pool(FILE *f, int avg, int n, int c, int h, int w, int k,
                      int s, int p, int ties)
{
    sc_window g = window(n, c, h, w, c, k, s, p);
    long nx = (long)n * c * h * w, ny = (long)n * c * g.oh * g.ow;
    double *x = drand_array(nx), *r = drand_array(ny);
    if (ties)
        for (long i = 0; i < nx; i++)
            x[i] = (double)(long)(x[i] * 2.5) / 2.0;
    double *y = dalloc(ny), *dx = dalloc(nx);
    if (avg) {
        sc_ref_avgpool(&g, x, y);
        sc_ref_avgpool_bwd(&g, r, dx);
    } else {
        sc_ref_maxpool(&g, x, y);
        sc_ref_maxpool_bwd(&g, r, x, dx);
    }
    fprintf(f, "case %s n=%d c=%d h=%d w=%d k=%d s=%d p=%d\n",
            avg ? "avgpool" : "maxpool", n, c, h, w, k, s, p);
    put(f, "x", nx, x);
    put(f, "r", ny, r);
    put(f, "y", ny, y);
    put(f, "dx", nx, dx);
}

static void dump_gap(FILE *f, int n, int c, int h, int w)
{
    long nx = (long)n * c * h * w;
    double *x = drand_array(nx), *r = drand_array((long)n * c);
    double *y = dalloc((long)n * c), *dx = dalloc(nx);
    sc_ref_global_avgpool(n, c, h * w, x, y);
    sc_ref_global_avgpool_bwd(n, c, h * w, r, dx);
    fprintf(f, "case global_avgpool n=%d c=%d h=%d w=%d\n", n, c, h, w);
    put(f, "x", nx, x);
    put(f, "r", (long)n * c, r);
    put(f, "y", (long)n * c, y);
    put(f, "dx", nx, dx);
}

static void dump_linear(FILE *f, int n, int in, int out, int bias)
{
    double *x = drand_array((long)n * in), *w = drand_array((long)out * in);
    double *b = bias ? drand_array(out) : NULL;
    double *r = drand_array((long)n * out), *y = dalloc((long)n * out);
    double *dx = dalloc((long)n * in), *dw = dalloc((long)out * in);
    double *db = dalloc(out);
    sc_ref_linear(n, in, out, x, w, b, y);
    sc_ref_linear_bwd_data(n, in, out, r, w, dx);
    sc_ref_linear_bwd_weight(n, in, out, r, x, dw);
    sc_ref_bias_bwd(n, out, 1, r, db);
    fprintf(f, "case linear n=%d in=%d out=%d bias=%d\n", n, in, out, bias);
    put(f, "x", (long)n * in, x);
    put(f, "w", (long)out * in, w);
    if (bias)
        put(f, "b", out, b);
    put(f, "r", (long)n * out, r);
    put(f, "y", (long)n * out, y);
    put(f, "dx", (long)n * in, dx);
    put(f, "dw", (long)out * in, dw);
    put(f, "db", out, db);
}

static void dump_l2norm(FILE *f, int n, int d)
{
    long nx = (long)n * d;
    double *x = drand_array(nx), *r = drand_array(nx);
    double *y = dalloc(nx), *dx = dalloc(nx);
    for (int k = 0; k < d; k++) { /* row 1 below the clamp, row 2 zero */
        x[d + k] *= 1e-13;
        x[2 * d + k] = 0.0;
    }
    sc_ref_l2norm(n, d, x, y);
    sc_ref_l2norm_bwd(n, d, r, x, dx);
    fprintf(f, "case l2norm n=%d d=%d\n", n, d);
    put(f, "x", nx, x);
    put(f, "r", nx, r);
    put(f, "y", nx, y);
    put(f, "dx", nx, dx);
}

static void dump_ntxent(FILE *f, int n2, int d, double t, int normalise)
{
    long nz = (long)n2 * d;
    double *z = drand_array(nz), *dz = dalloc(nz);
    if (normalise) {
        double *zn = dalloc(nz);
        sc_ref_l2norm(n2, d, z, zn);
        z = zn;
    }
    double loss = sc_ref_ntxent(n2, d, t, z);
    sc_ref_ntxent_bwd(n2, d, t, z, dz);
    fprintf(f, "case ntxent n2=%d d=%d t=%.17g\n", n2, d, t);
    put(f, "z", nz, z);
    put(f, "loss", 1, &loss);
    put(f, "dz", nz, dz);
}

/* Barlow Twins or VICReg on z [n2, d]; every third feature scaled by 4 so
 * that VICReg's hinge sees deviations on both sides of 1. */
static void dump_statloss(FILE *f, int vicreg, int n2, int d, const double *coef)
{
    long nz = (long)n2 * d;
    double *z = drand_array(nz), *dz = dalloc(nz);
    for (long i = 0; i < nz; i++)
        if (i % d % 3 == 0)
            z[i] *= 4;
    double loss = vicreg ? sc_ref_vicreg(n2, d, coef, z) : sc_ref_barlow(n2, d, coef, z);
    if (vicreg)
        sc_ref_vicreg_bwd(n2, d, coef, z, dz);
    else
        sc_ref_barlow_bwd(n2, d, coef, z, dz);
    fprintf(f, "case %s n2=%d d=%d c0=%.17g c1=%.17g c2=%.17g c3=%.17g\n", vicreg ? "vicreg" : "barlow", n2, d,
            coef[0], coef[1], coef[2], coef[3]);
    put(f, "z", nz, z);
    put(f, "loss", 1, &loss);
    put(f, "dz", nz, dz);
}

/* BYOL's loss as the graph chains it: q and t l2norm'ed, byol, and the
 * gradient back through q's l2norm; t gets none (the target's). */
static void dump_byol(FILE *f, int n2, int d)
{
    long nz = (long)n2 * d;
    double *q = drand_array(nz), *t = drand_array(nz);
    double *qn = dalloc(nz), *tn = dalloc(nz), *dqn = dalloc(nz), *dq = dalloc(nz);
    sc_ref_l2norm(n2, d, q, qn);
    sc_ref_l2norm(n2, d, t, tn);
    double loss = sc_ref_byol(n2, d, qn, tn);
    sc_ref_byol_bwd(n2, d, tn, dqn);
    sc_ref_l2norm_bwd(n2, d, dqn, q, dq);
    fprintf(f, "case byol n2=%d d=%d\n", n2, d);
    put(f, "q", nz, q);
    put(f, "t", nz, t);
    put(f, "loss", 1, &loss);
    put(f, "dq", nz, dq);
}

/* Fused ops: batchnorm+relu with its backward (the mask inside batchnorm
 * backward), and add+relu read twice, so that the gradient reaching a and
 * b is add+relu_bwd(r1, r2, y). One pre-relu value is exactly zero (the
 * kink: no gradient in PyTorch either). */
static void dump_bn_relu(FILE *f, int n, int c, int h, int w)
{
    long nx = (long)n * c * h * w;
    double eps = 1e-5;
    double *x = drand_array(nx), *gamma = drand_array(c);
    double *beta = drand_array(c), *r = drand_array(nx);
    double *y = dalloc(nx), *mean = dalloc(c), *var = dalloc(c);
    double *dx = dalloc(nx), *dg = dalloc(c), *dbeta = dalloc(c);
    sc_ref_batchnorm_relu(n, c, h * w, eps, x, gamma, beta, y, mean, var);
    sc_ref_batchnorm_relu_bwd(n, c, h * w, eps, r, y, x, gamma, mean, var, dx,
                              dg, dbeta);
    fprintf(f, "case batchnorm_relu n=%d c=%d h=%d w=%d eps=%.17g\n", n, c, h,
            w, eps);
    put(f, "x", nx, x);
    put(f, "gamma", c, gamma);
    put(f, "beta", c, beta);
    put(f, "r", nx, r);
    put(f, "y", nx, y);
    put(f, "mean", c, mean);
    put(f, "var", c, var);
    put(f, "dx", nx, dx);
    put(f, "dgamma", c, dg);
    put(f, "dbeta", c, dbeta);
}

static void dump_add_relu(FILE *f, long n)
{
    double *a = drand_array(n), *b = drand_array(n);
    double *r1 = drand_array(n), *r2 = drand_array(n);
    double *y = dalloc(n), *dx = dalloc(n);
    b[0] = -a[0];
    sc_ref_add_relu(n, a, b, y);
    sc_ref_add_relu_bwd(n, r1, r2, y, dx);
    fprintf(f, "case add_relu n=%ld\n", n);
    put(f, "a", n, a);
    put(f, "b", n, b);
    put(f, "r1", n, r1);
    put(f, "r2", n, r2);
    put(f, "y", n, y);
    put(f, "da", n, dx);
    put(f, "db", n, dx);
}

static void test_against_torch(void **state)
{
    (void)state;
    const char *bin = getenv("SC_BINARY_DIR"), *src = getenv("SC_SOURCE_DIR");
    const char *py = getenv("SC_PYTHON");
    assert_non_null(bin);
    assert_non_null(src);
    assert_non_null(py);
    char path[4096], cmd[3 * 4096];
    snprintf(path, sizeof path, "%s/refops_torch.txt", bin);
    FILE *f = fopen(path, "w");
    assert_non_null(f);

    dump_conv(f, 2, 3, 7, 6, 4, 3, 2, 1, 1);
    dump_conv(f, 1, 3, 11, 10, 2, 7, 2, 3, 0);
    dump_conv(f, 2, 2, 9, 7, 3, 5, 3, 2, 1);
    dump_conv(f, 2, 4, 6, 5, 3, 1, 2, 0, 0);
    dump_conv_gd(f, 2, 4, 7, 6, 4, 3, 1, 1, 1, 4, 1);  /* depthwise */
    dump_conv_gd(f, 2, 3, 7, 6, 6, 3, 2, 1, 0, 3, 1);  /* depthwise x2, stride 2 */
    dump_conv_gd(f, 2, 4, 9, 7, 6, 3, 1, 2, 1, 2, 2);  /* grouped, dilation 2 */
    dump_conv_gd(f, 1, 6, 9, 8, 3, 2, 2, 1, 0, 3, 3);  /* dilation 3, stride 2, odd */
    dump_conv_gd(f, 2, 4, 5, 5, 4, 1, 1, 0, 0, 2, 1);  /* grouped 1x1 */
    dump_bn(f, 3, 2, 4, 5);
    dump_bn(f, 6, 4, 1, 1);
    dump_relu(f, 30);
    dump_pool(f, 0, 2, 2, 7, 6, 3, 2, 1, 0);
    dump_pool(f, 0, 2, 3, 8, 7, 3, 2, 1, 1);
    dump_pool(f, 0, 1, 2, 5, 5, 2, 2, 0, 1);
    dump_pool(f, 0, 1, 2, 6, 6, 3, 1, 1, 1);
    dump_pool(f, 1, 2, 2, 7, 6, 3, 2, 1, 0);
    dump_pool(f, 1, 1, 3, 5, 5, 2, 2, 0, 0);
    dump_gap(f, 2, 3, 4, 5);
    dump_linear(f, 4, 5, 3, 1);
    dump_linear(f, 3, 6, 2, 0);
    dump_l2norm(f, 4, 5);
    dump_ntxent(f, 8, 5, 0.07, 1);
    dump_ntxent(f, 8, 5, 0.5, 1);
    dump_ntxent(f, 6, 3, 0.2, 0);
    static const double barlow_paper[4] = {0.0051, 1}, barlow_heavy[4] = {0.7, 0.25};
    static const double vicreg_paper[4] = {25, 25, 1, 1e-4}, vicreg_other[4] = {3, 11, 0.5, 1e-2};
    dump_statloss(f, 0, 10, 7, barlow_paper);
    dump_statloss(f, 0, 6, 3, barlow_heavy);
    dump_statloss(f, 0, 18, 13, barlow_paper);
    dump_statloss(f, 1, 10, 7, vicreg_paper);
    dump_statloss(f, 1, 14, 5, vicreg_other);
    dump_statloss(f, 1, 18, 13, vicreg_paper);
    dump_byol(f, 6, 7);
    dump_byol(f, 10, 3);
    dump_byol(f, 2, 1);
    dump_bn_relu(f, 3, 2, 4, 5);
    dump_bn_relu(f, 6, 4, 1, 1);
    dump_add_relu(f, 30);
    dump_activation(f, "silu", 41, 0);
    dump_activation(f, "gelu", 41, 0);
    dump_activation(f, "leaky_relu", 41, 0.01);
    dump_activation(f, "leaky_relu", 41, -0.3);
    assert_int_equal(fclose(f), 0);

    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/refops_torch.py' '%s'", py, src,
             path);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_torch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
