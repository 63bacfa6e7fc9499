/* test_gradcheck: the reference kernels (refops.c) against central finite
 * differences, and their forward semantics against hand-computed answers;
 * the fused kernels also against their parts.
 *
 * Every backward function is checked on L = sum(r * f(x)) with a random
 * upstream gradient r: the analytic gradient must match
 * (L(x + h) - L(x - h)) / 2h to 1e-6 of the largest gradient entry. In
 * double precision with h = 1e-6 the finite difference is good to ~1e-9,
 * so a real bug (even a wrong sign on one term) is far above that. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "refops.h"

#define H 1e-6
#define TOL 1e-6

/* ---- helpers ------------------------------------------------------------ */

/* A bump allocator over a static pool, reset by each test: no frees, so a
 * failing assertion (which longjmps out) cannot leak. */
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

static int reset_pool(void **state)
{
    (void)state;
    pool_used = 0;
    return 0;
}

/* Deterministic uniform numbers in [-1, 1) (xorshift64*). */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;

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

static double dot(long n, const double *a, const double *b)
{
    double s = 0.0;
    for (long i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Largest |numeric - analytic| over p[0, n), relative to the largest
 * gradient entry. p is perturbed in place and restored. */
static double grad_error(loss_fn f, void *ctx, double *p, long n,
                         const double *analytic, double h)
{
    double maxerr = 0.0, scale = 0.0;
    for (long i = 0; i < n; i++) {
        double save = p[i];
        p[i] = save + h;
        double lp = f(ctx);
        p[i] = save - h;
        double lm = f(ctx);
        p[i] = save;
        double num = (lp - lm) / (2.0 * h);
        double err = fabs(num - analytic[i]);
        if (err > maxerr)
            maxerr = err;
        if (fabs(num) > scale)
            scale = fabs(num);
        if (fabs(analytic[i]) > scale)
            scale = fabs(analytic[i]);
    }
    /* A check on an all-zero gradient would prove nothing. */
    assert_true(scale > 1e-3);
    return maxerr / scale;
}

static void check_grad(const char *what, loss_fn f, void *ctx, double *p,
                       long n, const double *analytic, double h)
{
    double err = grad_error(f, ctx, p, n, analytic, h);
    if (!(err <= TOL))
        fail_msg("%s: relative gradient error %.3g > %.1g", what, err, TOL);
}

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("got %.17g, want %.17g", got, want);
}

static void assert_array_close(long n, const double *got, const double *want,
                               double tol)
{
    for (long i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol))
            fail_msg("[%ld]: got %.17g, want %.17g", i, got[i], want[i]);
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

/* ---- conv2d ------------------------------------------------------------- */

typedef struct {
    sc_window g;
    double *x, *w, *b, *y, *r;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    sc_ref_conv2d(&c->g, c->x, c->w, c->b, c->y);
    return dot((long)c->g.n * c->g.o * c->g.oh * c->g.ow, c->r, c->y);
}

/* groups gr, dilation d: the window spans d*(k-1)+1 pixels */
static void gradcheck_conv_gd(int n, int ch, int h, int w, int o, int k, int s,
                              int p, int gr, int d)
{
    conv_ctx c = {.g = window(n, ch, h, w, o, k, s, p)};
    c.g.groups = gr;
    c.g.dilation = d;
    c.g.oh = sc_window_out(h, d * (k - 1) + 1, s, p);
    c.g.ow = sc_window_out(w, d * (k - 1) + 1, s, p);
    long nx = (long)n * ch * h * w, nw = (long)o * (ch / gr) * k * k;
    long ny = (long)n * o * c.g.oh * c.g.ow;
    c.x = drand_array(nx);
    c.w = drand_array(nw);
    c.b = drand_array(o);
    c.y = dalloc(ny);
    c.r = drand_array(ny);
    double *dx = dalloc(nx), *dw = dalloc(nw), *db = dalloc(o);
    sc_ref_conv2d_bwd_data(&c.g, c.r, c.w, dx);
    sc_ref_conv2d_bwd_weight(&c.g, c.r, c.x, dw);
    sc_ref_bias_bwd(n, o, c.g.oh * c.g.ow, c.r, db);
    check_grad("conv2d dx", conv_loss, &c, c.x, nx, dx, H);
    check_grad("conv2d dw", conv_loss, &c, c.w, nw, dw, H);
    check_grad("conv2d db", conv_loss, &c, c.b, o, db, H);
}

static void gradcheck_conv(int n, int ch, int h, int w, int o, int k, int s,
                           int p)
{
    gradcheck_conv_gd(n, ch, h, w, o, k, s, p, 1, 1);
}

static void test_conv2d_grad(void **state)
{
    (void)state;
    gradcheck_conv(2, 3, 7, 6, 4, 3, 2, 1);  /* stride 2, pad, non-square */
    gradcheck_conv(1, 3, 11, 10, 2, 7, 2, 3); /* a ResNet stem */
    gradcheck_conv(2, 1, 9, 7, 2, 5, 3, 2);  /* floor drops a row */
    gradcheck_conv(1, 2, 5, 8, 3, 1, 1, 0);  /* 1x1 */
    gradcheck_conv(2, 4, 5, 5, 3, 3, 1, 1);  /* same-size 3x3 */
    gradcheck_conv(1, 2, 6, 5, 3, 1, 2, 0);  /* 1x1 stride 2: downsample */
}

static void test_conv2d_grouped_dilated_grad(void **state)
{
    (void)state;
    gradcheck_conv_gd(2, 4, 7, 6, 4, 3, 1, 1, 4, 1); /* depthwise */
    gradcheck_conv_gd(2, 3, 7, 6, 6, 3, 2, 1, 3, 1); /* depthwise, 2 filters per channel, stride 2 */
    gradcheck_conv_gd(2, 4, 9, 7, 6, 3, 1, 2, 2, 2); /* grouped, dilation 2 */
    gradcheck_conv_gd(1, 6, 9, 8, 3, 2, 2, 1, 3, 3); /* grouped, dilation 3, stride 2, odd sizes */
    gradcheck_conv_gd(2, 4, 5, 5, 4, 1, 1, 0, 2, 1); /* grouped 1x1 */
    gradcheck_conv_gd(1, 2, 8, 7, 2, 3, 1, 0, 1, 2); /* dense, dilation 2, unpadded */
}

/* Hand-computed: pins the zero padding, the stride, the bias and the
 * [O, C, K, K] weight layout, which a gradient check cannot. */
static void test_conv2d_known(void **state)
{
    (void)state;
    double x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    double w[4] = {1, 0, 0, -1};
    double b[1] = {0.5};
    double y[4];
    sc_window g = window(1, 1, 3, 3, 1, 2, 1, 0);
    assert_int_equal(g.oh, 2);
    sc_ref_conv2d(&g, x, w, b, y);
    const double want1[4] = {-3.5, -3.5, -3.5, -3.5};
    assert_array_close(4, y, want1, 0.0);

    g = window(1, 1, 3, 3, 1, 2, 2, 1);
    assert_int_equal(g.oh, 2);
    sc_ref_conv2d(&g, x, w, b, y);
    const double want2[4] = {-0.5, -2.5, -6.5, -3.5};
    assert_array_close(4, y, want2, 0.0);

    /* 1x1, C = 2 -> O = 3: y[o] = sum_c w[o][c] x[c], no bias. */
    double x2[2] = {1, 2};
    double w2[6] = {1, 10, 100, 1000, 0, -1};
    double y2[3];
    g = window(1, 2, 1, 1, 3, 1, 1, 0);
    sc_ref_conv2d(&g, x2, w2, NULL, y2);
    const double want3[3] = {21, 2100, -2};
    assert_array_close(3, y2, want3, 0.0);

    double db[3], dy[3 * 2] = {1, 2, 3, 4, 5, 6}; /* n = 2, c = 3, hw = 1 */
    sc_ref_bias_bwd(2, 3, 1, dy, db);
    const double want4[3] = {5, 7, 9};
    assert_array_close(3, db, want4, 0.0);
}

static void test_window_out(void **state)
{
    (void)state;
    assert_int_equal(sc_window_out(96, 7, 2, 3), 48);
    assert_int_equal(sc_window_out(48, 3, 2, 1), 24);
    assert_int_equal(sc_window_out(5, 2, 2, 0), 2); /* floor */
    assert_int_equal(sc_window_out(7, 3, 2, 1), 4);
    assert_int_equal(sc_window_out(3, 3, 1, 0), 1);
}

/* ---- batchnorm ---------------------------------------------------------- */

typedef struct {
    int n, c, hw;
    double eps;
    double *x, *gamma, *beta, *y, *mean, *var, *r;
} bn_ctx;

static double bn_loss(void *p)
{
    bn_ctx *b = p;
    sc_ref_batchnorm(b->n, b->c, b->hw, b->eps, b->x, b->gamma, b->beta,
                     b->y, b->mean, b->var);
    return dot((long)b->n * b->c * b->hw, b->r, b->y);
}

static void gradcheck_bn(int n, int c, int hw)
{
    long nx = (long)n * c * hw;
    bn_ctx b = {.n = n, .c = c, .hw = hw, .eps = 1e-5};
    b.x = drand_array(nx);
    b.gamma = drand_array(c);
    b.beta = drand_array(c);
    b.y = dalloc(nx);
    b.mean = dalloc(c);
    b.var = dalloc(c);
    b.r = drand_array(nx);
    double *dx = dalloc(nx), *dg = dalloc(c), *dbeta = dalloc(c);
    bn_loss(&b); /* fills mean and var */
    sc_ref_batchnorm_bwd(n, c, hw, b.eps, b.r, b.x, b.gamma, b.mean, b.var,
                         dx, dg, dbeta);
    check_grad("batchnorm dx", bn_loss, &b, b.x, nx, dx, H);
    check_grad("batchnorm dgamma", bn_loss, &b, b.gamma, c, dg, H);
    check_grad("batchnorm dbeta", bn_loss, &b, b.beta, c, dbeta, H);
}

static void test_batchnorm_grad(void **state)
{
    (void)state;
    gradcheck_bn(3, 2, 5);  /* 4-D: [n, c, h * w] */
    gradcheck_bn(2, 3, 12);
    gradcheck_bn(6, 4, 1);  /* 2-D */
    gradcheck_bn(3, 1, 1);  /* (two values normalise to +-1 whatever x is) */
}

static void test_batchnorm_known(void **state)
{
    (void)state;
    /* One channel, four values: mean 2.5, biased variance 1.25. */
    double x[4] = {1, 2, 3, 4}, gamma[1] = {2}, beta[1] = {1};
    double y[4], mean[1], var[1];
    sc_ref_batchnorm(4, 1, 1, 1e-5, x, gamma, beta, y, mean, var);
    assert_close(mean[0], 2.5, 1e-15);
    assert_close(var[0], 1.25, 1e-15);
    double s = sqrt(1.25 + 1e-5);
    for (int i = 0; i < 4; i++)
        assert_close(y[i], 2.0 * (x[i] - 2.5) / s + 1.0, 1e-14);

    /* Channels are separate: [n = 2, c = 2, hw = 2]. */
    double x2[8] = {0, 2, 10, 10, 4, 6, 20, 20};
    double g2[2] = {1, 1}, b2[2] = {0, 0}, y2[8], m2[2], v2[2];
    sc_ref_batchnorm(2, 2, 2, 0.0, x2, g2, b2, y2, m2, v2);
    assert_close(m2[0], 3.0, 1e-15);   /* 0 2 4 6 */
    assert_close(v2[0], 5.0, 1e-15);   /* (9 + 1 + 1 + 9) / 4 */
    assert_close(m2[1], 15.0, 1e-15);  /* 10 10 20 20 */
    assert_close(v2[1], 25.0, 1e-15);
    assert_close(y2[2], -1.0, 1e-15);  /* (10 - 15) / 5 */
    assert_close(y2[7], 1.0, 1e-15);
}

static void test_bn_running_known(void **state)
{
    (void)state;
    /* count 4: unbiased variance = 3 * 4 / 3 = 4. */
    double mean[2] = {2, -1}, var[2] = {3, 0.75};
    double rm[2] = {1, 0}, rv[2] = {1, 2};
    sc_ref_bn_running(2, 4, 0.1, mean, var, rm, rv);
    assert_close(rm[0], 0.9 * 1 + 0.1 * 2, 1e-15);
    assert_close(rv[0], 0.9 * 1 + 0.1 * 4, 1e-15);
    assert_close(rm[1], -0.1, 1e-15);
    assert_close(rv[1], 0.9 * 2 + 0.1 * 1, 1e-15);
    /* momentum 1 replaces the running stats outright. */
    sc_ref_bn_running(2, 4, 1.0, mean, var, rm, rv);
    assert_close(rm[0], 2.0, 1e-15);
    assert_close(rv[0], 4.0, 1e-15);
}

/* ---- relu --------------------------------------------------------------- */

typedef struct {
    long n;
    double *x, *y, *r;
} relu_ctx;

static double relu_loss(void *p)
{
    relu_ctx *c = p;
    sc_ref_relu(c->n, c->x, c->y);
    return dot(c->n, c->r, c->y);
}

static void test_relu_grad(void **state)
{
    (void)state;
    relu_ctx c = {.n = 40};
    c.x = dalloc(c.n);
    for (long i = 0; i < c.n; i++) { /* |x| >= 0.1: away from the kink */
        double u = urand();
        c.x[i] = u < 0 ? u - 0.1 : u + 0.1;
    }
    c.y = dalloc(c.n);
    c.r = drand_array(c.n);
    double *dx = dalloc(c.n);
    relu_loss(&c);
    sc_ref_relu_bwd(c.n, c.r, c.y, dx);
    check_grad("relu dx", relu_loss, &c, c.x, c.n, dx, H);
}

static void test_relu_known(void **state)
{
    (void)state;
    double x[4] = {-1, 0, 2, -0.0}, y[4], dy[4] = {5, 6, 7, 8}, dx[4];
    sc_ref_relu(4, x, y);
    const double wy[4] = {0, 0, 2, 0};
    assert_array_close(4, y, wy, 0.0);
    sc_ref_relu_bwd(4, dy, y, dx);
    const double wdx[4] = {0, 0, 7, 0}; /* y > 0 only: none at x = 0 */
    assert_array_close(4, dx, wdx, 0.0);
}

/* ---- silu, gelu, leaky relu ---------------------------------------------- */

typedef enum { ACT_SILU, ACT_GELU, ACT_LEAKY } act_kind;

typedef struct {
    act_kind kind;
    double slope;
    long n;
    double *x, *y, *r;
} act_ctx;

static void act_fwd(const act_ctx *c, const double *x, double *y)
{
    if (c->kind == ACT_SILU)
        sc_ref_silu(c->n, x, y);
    else if (c->kind == ACT_GELU)
        sc_ref_gelu(c->n, x, y);
    else
        sc_ref_leaky_relu(c->n, c->slope, x, y);
}

static void act_bwd(const act_ctx *c, const double *dy, const double *x, double *dx)
{
    if (c->kind == ACT_SILU)
        sc_ref_silu_bwd(c->n, dy, x, dx);
    else if (c->kind == ACT_GELU)
        sc_ref_gelu_bwd(c->n, dy, x, dx);
    else
        sc_ref_leaky_relu_bwd(c->n, c->slope, dy, x, dx);
}

static double act_loss(void *p)
{
    act_ctx *c = p;
    act_fwd(c, c->x, c->y);
    return dot(c->n, c->r, c->y);
}

/* x over [-4, 4], where both smooth curves bend; leaky relu's kink kept
 * 0.1 away. The backward ops also run in place (dx over dy, y over x), as
 * memory planning may place them, and must give the same values. */
static void gradcheck_act(const char *what, act_kind kind, double slope)
{
    act_ctx c = {.kind = kind, .slope = slope, .n = 48};
    c.x = dalloc(c.n);
    for (long i = 0; i < c.n; i++) {
        double u = 4.0 * urand();
        c.x[i] = kind != ACT_LEAKY ? u : u < 0 ? u - 0.1 : u + 0.1;
    }
    c.y = dalloc(c.n);
    c.r = drand_array(c.n);
    double *dx = dalloc(c.n), *buf = dalloc(c.n);
    act_loss(&c);
    act_bwd(&c, c.r, c.x, dx);
    check_grad(what, act_loss, &c, c.x, c.n, dx, H);
    memcpy(buf, c.r, sizeof(double) * (size_t)c.n);
    act_bwd(&c, buf, c.x, buf);
    assert_array_close(c.n, buf, dx, 0.0);
    act_loss(&c); /* y of the unperturbed x again */
    memcpy(buf, c.x, sizeof(double) * (size_t)c.n);
    act_fwd(&c, buf, buf);
    assert_array_close(c.n, buf, c.y, 0.0);
}

static void test_activation_grad(void **state)
{
    (void)state;
    gradcheck_act("silu dx", ACT_SILU, 0);
    gradcheck_act("gelu dx", ACT_GELU, 0);
    gradcheck_act("leaky_relu dx", ACT_LEAKY, 0.01);
    gradcheck_act("leaky_relu(0.2) dx", ACT_LEAKY, 0.2);
    gradcheck_act("leaky_relu(-0.5) dx", ACT_LEAKY, -0.5);
}

/* Hand-computed: sigmoid(1) = 0.7310585786300049, Phi(1) =
 * 0.8413447460685429, phi(1) = 0.24197072451914337; far tails stay
 * finite; leaky relu at 0 takes the slope's gradient (PyTorch's x > 0). */
static void test_activation_known(void **state)
{
    (void)state;
    double x[5] = {-1, 0, 1, -800, 800}, y[5], dy[5] = {1, 1, 1, 1, 1}, dx[5];
    sc_ref_silu(5, x, y);
    const double sy[5] = {-0.2689414213699951, 0, 0.7310585786300049, 0, 800};
    assert_array_close(5, y, sy, 1e-15);
    sc_ref_silu_bwd(5, dy, x, dx);
    const double sdx[5] = {0.07232948812851325, 0.5, 0.9276705118714869, 0, 1};
    assert_array_close(5, dx, sdx, 1e-15);
    sc_ref_gelu(5, x, y);
    const double gy[5] = {-0.15865525393145707, 0, 0.8413447460685429, 0, 800};
    assert_array_close(5, y, gy, 1e-15);
    sc_ref_gelu_bwd(5, dy, x, dx);
    const double gdx[5] = {-0.0833154705876863, 0.5, 1.0833154705876864, 0, 1};
    assert_array_close(5, dx, gdx, 1e-15);
    sc_ref_leaky_relu(5, 0.25, x, y);
    const double ly[5] = {-0.25, 0, 1, -200, 800};
    assert_array_close(5, y, ly, 0.0);
    sc_ref_leaky_relu_bwd(5, 0.25, dy, x, dx);
    const double ldx[5] = {0.25, 0.25, 1, 0.25, 1};
    assert_array_close(5, dx, ldx, 0.0);
}

/* ---- pooling ------------------------------------------------------------ */

typedef struct {
    sc_window g;
    int avg;
    double *x, *y, *r;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    if (c->avg)
        sc_ref_avgpool(&c->g, c->x, c->y);
    else
        sc_ref_maxpool(&c->g, c->x, c->y);
    return dot((long)c->g.n * c->g.c * c->g.oh * c->g.ow, c->r, c->y);
}

/* Distinct values 0.01 apart, both signs, shuffled: no ties, so the argmax
 * cannot move under a perturbation of 1e-6. */
static double *distinct_array(long n)
{
    double *p = dalloc(n);
    for (long i = 0; i < n; i++)
        p[i] = (double)(i - n / 2) * 0.01;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)((urand() + 1.0) * 0.5 * (double)(i + 1));
        if (j > i)
            j = i;
        double t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

static void gradcheck_pool(int avg, int n, int ch, int h, int w, int k,
                           int s, int p)
{
    pool_ctx c = {.g = window(n, ch, h, w, ch, k, s, p), .avg = avg};
    long nx = (long)n * ch * h * w, ny = (long)n * ch * c.g.oh * c.g.ow;
    c.x = avg ? drand_array(nx) : distinct_array(nx);
    c.y = dalloc(ny);
    c.r = drand_array(ny);
    double *dx = dalloc(nx);
    if (avg)
        sc_ref_avgpool_bwd(&c.g, c.r, dx);
    else
        sc_ref_maxpool_bwd(&c.g, c.r, c.x, dx);
    check_grad(avg ? "avgpool dx" : "maxpool dx", pool_loss, &c, c.x, nx, dx,
               H);
}

static void test_maxpool_grad(void **state)
{
    (void)state;
    gradcheck_pool(0, 2, 2, 7, 6, 3, 2, 1); /* the ResNet stem pool */
    gradcheck_pool(0, 1, 3, 5, 5, 2, 2, 0); /* floor drops the last row */
    gradcheck_pool(0, 2, 1, 4, 6, 3, 1, 1); /* overlapping windows */
}

static void test_avgpool_grad(void **state)
{
    (void)state;
    gradcheck_pool(1, 2, 2, 7, 6, 3, 2, 1);
    gradcheck_pool(1, 1, 3, 5, 5, 2, 2, 0);
    gradcheck_pool(1, 2, 1, 4, 6, 3, 1, 1);
}

static void test_maxpool_known(void **state)
{
    (void)state;
    /* Padding is -inf, not 0: an all-negative input keeps its values. */
    double x[4] = {-4, -3, -2, -1}, y[9];
    sc_window g = window(1, 1, 2, 2, 1, 2, 1, 1);
    assert_int_equal(g.oh, 3);
    sc_ref_maxpool(&g, x, y);
    const double wy[9] = {-4, -3, -3, -2, -1, -1, -2, -1, -1};
    assert_array_close(9, y, wy, 0.0);

    /* A tie goes to the first maximum in scan order. */
    double t[4] = {7, 7, 7, 7}, dy1[1] = {1}, dx[4];
    g = window(1, 1, 2, 2, 1, 2, 2, 0);
    sc_ref_maxpool_bwd(&g, dy1, t, dx);
    const double wdx1[4] = {1, 0, 0, 0};
    assert_array_close(4, dx, wdx1, 0.0);

    /* Ties in padded windows: each window's first in-bounds element. */
    double m[4] = {-1, -1, -1, -1}, dy9[9];
    for (int i = 0; i < 9; i++)
        dy9[i] = 1;
    g = window(1, 1, 2, 2, 1, 2, 1, 1);
    sc_ref_maxpool_bwd(&g, dy9, m, dx);
    const double wdx2[4] = {4, 2, 2, 1};
    assert_array_close(4, dx, wdx2, 0.0);

    /* A later, larger value wins over an earlier one. */
    double u[4] = {1, 3, 2, 3};
    g = window(1, 1, 2, 2, 1, 2, 2, 0);
    sc_ref_maxpool_bwd(&g, dy1, u, dx);
    const double wdx3[4] = {0, 1, 0, 0};
    assert_array_close(4, dx, wdx3, 0.0);
}

static void test_avgpool_known(void **state)
{
    (void)state;
    /* count_include_pad: the divisor is always kernel * kernel = 4. */
    double x[4] = {1, 2, 3, 4}, y[9];
    sc_window g = window(1, 1, 2, 2, 1, 2, 1, 1);
    sc_ref_avgpool(&g, x, y);
    const double wy[9] = {0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1};
    assert_array_close(9, y, wy, 1e-15);
}

typedef struct {
    int n, c, hw;
    double *x, *y, *r;
} gap_ctx;

static double gap_loss(void *p)
{
    gap_ctx *c = p;
    sc_ref_global_avgpool(c->n, c->c, c->hw, c->x, c->y);
    return dot((long)c->n * c->c, c->r, c->y);
}

static void test_global_avgpool(void **state)
{
    (void)state;
    gap_ctx c = {.n = 2, .c = 3, .hw = 10};
    long nx = 2 * 3 * 10;
    c.x = drand_array(nx);
    c.y = dalloc(6);
    c.r = drand_array(6);
    double *dx = dalloc(nx);
    sc_ref_global_avgpool_bwd(c.n, c.c, c.hw, c.r, dx);
    check_grad("global avgpool dx", gap_loss, &c, c.x, nx, dx, H);

    double x[2 * 2 * 2] = {1, 2, 3, 5, -1, -1, 0, 10}, y[4];
    sc_ref_global_avgpool(2, 2, 2, x, y);
    const double wy[4] = {1.5, 4, -1, 5};
    assert_array_close(4, y, wy, 0.0);
}

/* ---- linear ------------------------------------------------------------- */

typedef struct {
    int n, in, out;
    double *x, *w, *b, *y, *r;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *c = p;
    sc_ref_linear(c->n, c->in, c->out, c->x, c->w, c->b, c->y);
    return dot((long)c->n * c->out, c->r, c->y);
}

static void gradcheck_linear(int n, int in, int out)
{
    lin_ctx c = {.n = n, .in = in, .out = out};
    c.x = drand_array((long)n * in);
    c.w = drand_array((long)out * in);
    c.b = drand_array(out);
    c.y = dalloc((long)n * out);
    c.r = drand_array((long)n * out);
    double *dx = dalloc((long)n * in), *dw = dalloc((long)out * in);
    double *db = dalloc(out);
    sc_ref_linear_bwd_data(n, in, out, c.r, c.w, dx);
    sc_ref_linear_bwd_weight(n, in, out, c.r, c.x, dw);
    sc_ref_bias_bwd(n, out, 1, c.r, db);
    check_grad("linear dx", lin_loss, &c, c.x, (long)n * in, dx, H);
    check_grad("linear dw", lin_loss, &c, c.w, (long)out * in, dw, H);
    check_grad("linear db", lin_loss, &c, c.b, out, db, H);
}

static void test_linear_grad(void **state)
{
    (void)state;
    gradcheck_linear(4, 5, 3);
    gradcheck_linear(3, 2, 7);
    gradcheck_linear(1, 6, 1);
}

static void test_linear_known(void **state)
{
    (void)state;
    /* W is [out, in]: y = x W^T + b. */
    double x[4] = {1, 2, 3, 4}; /* n = 2, in = 2 */
    double w[6] = {1, 10, 100, 1000, 0, -1};
    double b[3] = {0.5, 0, 1};
    double y[6];
    sc_ref_linear(2, 2, 3, x, w, b, y);
    const double wy[6] = {21.5, 2100, -1, 43.5, 4300, -3};
    assert_array_close(6, y, wy, 0.0);
    sc_ref_linear(2, 2, 3, x, w, NULL, y);
    const double wy0[6] = {21, 2100, -2, 43, 4300, -4};
    assert_array_close(6, y, wy0, 0.0);
}

static void test_add_copy(void **state)
{
    (void)state;
    double a[3] = {1, -2, 0.5}, b[3] = {3, 2, 0.25}, y[3];
    sc_ref_add(3, a, b, y);
    const double wy[3] = {4, 0, 0.75};
    assert_array_close(3, y, wy, 0.0);
    sc_ref_copy(3, a, y);
    assert_array_close(3, y, a, 0.0);
}

/* ---- l2norm ------------------------------------------------------------- */

typedef struct {
    int n, d;
    double *x, *y, *r;
} l2_ctx;

static double l2_loss(void *p)
{
    l2_ctx *c = p;
    sc_ref_l2norm(c->n, c->d, c->x, c->y);
    return dot((long)c->n * c->d, c->r, c->y);
}

static void test_l2norm_grad(void **state)
{
    (void)state;
    l2_ctx c = {.n = 4, .d = 5};
    long nx = 20;
    c.x = drand_array(nx);
    c.y = dalloc(nx);
    c.r = drand_array(nx);
    double *dx = dalloc(nx);
    sc_ref_l2norm_bwd(c.n, c.d, c.r, c.x, dx);
    check_grad("l2norm dx", l2_loss, &c, c.x, nx, dx, H);

    /* Below the 1e-12 clamp the denominator is constant; step inside it. */
    l2_ctx t = {.n = 2, .d = 3};
    t.x = dalloc(6);
    for (int i = 0; i < 6; i++)
        t.x[i] = urand() * 1e-14;
    t.y = dalloc(6);
    t.r = drand_array(6);
    double *tdx = dalloc(6);
    sc_ref_l2norm_bwd(t.n, t.d, t.r, t.x, tdx);
    check_grad("l2norm dx (clamped)", l2_loss, &t, t.x, 6, tdx, 1e-17);
}

static void test_l2norm_known(void **state)
{
    (void)state;
    double x[6] = {3, 4, 0, 3e-13, 4e-13, 0}, y[6];
    sc_ref_l2norm(2, 3, x, y);
    const double wy[6] = {0.6, 0.8, 0, 0.3, 0.4, 0}; /* second row clamped */
    assert_array_close(6, y, wy, 1e-15);

    double z[3] = {0, 0, 0}, zy[3], dy[3] = {1, -2, 3}, dx[3];
    sc_ref_l2norm(1, 3, z, zy);
    const double zero[3] = {0, 0, 0};
    assert_array_close(3, zy, zero, 0.0);
    sc_ref_l2norm_bwd(1, 3, dy, z, dx);
    const double wdx[3] = {1e12, -2e12, 3e12};
    assert_array_close(3, dx, wdx, 1e-3);

    /* On the unit sphere the gradient is dy minus its radial part. */
    double u[2] = {0.6, 0.8}, du[2] = {1, 0}, dxu[2];
    sc_ref_l2norm_bwd(1, 2, du, u, dxu);
    const double wdxu[2] = {1 - 0.36, -0.48};
    assert_array_close(2, dxu, wdxu, 1e-15);
}

/* ---- BYOL --------------------------------------------------------------- */

typedef struct {
    int n2, d;
    double *q, *t;
    double *qn, *tn; /* scratch for the l2norm chain */
    int chain;
} byol_ctx;

static double byol_loss(void *p)
{
    byol_ctx *c = p;
    if (!c->chain)
        return sc_ref_byol(c->n2, c->d, c->q, c->t);
    sc_ref_l2norm(c->n2, c->d, c->q, c->qn);
    sc_ref_l2norm(c->n2, c->d, c->t, c->tn);
    return sc_ref_byol(c->n2, c->d, c->qn, c->tn);
}

/* byol_bwd alone (any q, t), and chained through q's l2norm as the graph
 * does; t is the target's: the loss is not differentiated in it. */
static void gradcheck_byol(int n2, int d, int chain)
{
    long nz = (long)n2 * d;
    byol_ctx c = {n2, d, drand_array(nz), drand_array(nz), dalloc(nz), dalloc(nz), chain};
    double *dqn = dalloc(nz), *dq = dalloc(nz);
    if (chain) {
        byol_loss(&c); /* fills tn */
        sc_ref_byol_bwd(n2, d, c.tn, dqn);
        sc_ref_l2norm_bwd(n2, d, dqn, c.q, dq);
    } else {
        sc_ref_byol_bwd(n2, d, c.t, dq);
    }
    check_grad(chain ? "l2norm+byol dq" : "byol dq", byol_loss, &c, c.q, nz, dq, H);
}

static void test_byol_grad(void **state)
{
    (void)state;
    gradcheck_byol(6, 7, 0);
    gradcheck_byol(6, 7, 1);
    gradcheck_byol(10, 3, 1);
    gradcheck_byol(2, 1, 0);
}

/* Identical views give the minimum 0; opposite ones the maximum 8 (each
 * image's two terms are 4 at most). Row r pairs with row (r + N) mod 2N. */
static void test_byol_known(void **state)
{
    (void)state;
    double q[4] = {1, 0, 0, 1}, same[4] = {1, 0, 0, 1}, swapped[4] = {0, 1, 1, 0};
    double opposite[4] = {0, -1, -1, 0};
    assert_close(sc_ref_byol(2, 2, q, swapped), 0.0, 1e-15);
    assert_close(sc_ref_byol(2, 2, q, same), 4.0, 1e-15);
    assert_close(sc_ref_byol(2, 2, q, opposite), 8.0, 1e-15);
    double dq[4];
    sc_ref_byol_bwd(2, 2, swapped, dq);
    double want[4] = {-2, 0, 0, -2}; /* -(2/N) t_p(r), N = 1 */
    assert_array_close(4, dq, want, 1e-15);
}

/* ---- NT-Xent ------------------------------------------------------------ */

typedef struct {
    int n2, d;
    double t;
    double *z;
    double *zn; /* scratch for the l2norm + ntxent chain */
    int chain;
} nt_ctx;

static double nt_loss(void *p)
{
    nt_ctx *c = p;
    if (c->chain) {
        sc_ref_l2norm(c->n2, c->d, c->z, c->zn);
        return sc_ref_ntxent(c->n2, c->d, c->t, c->zn);
    }
    return sc_ref_ntxent(c->n2, c->d, c->t, c->z);
}

static void gradcheck_ntxent(int n2, int d, double t, int normalise)
{
    nt_ctx c = {.n2 = n2, .d = d, .t = t};
    long nz = (long)n2 * d;
    c.z = drand_array(nz);
    if (normalise) {
        double *zn = dalloc(nz);
        sc_ref_l2norm(n2, d, c.z, zn);
        c.z = zn;
    }
    double *dz = dalloc(nz);
    sc_ref_ntxent_bwd(n2, d, t, c.z, dz);
    check_grad("ntxent dz", nt_loss, &c, c.z, nz, dz, H);
}

static void test_ntxent_grad(void **state)
{
    (void)state;
    double temps[3] = {0.07, 0.5, 1.0};
    for (int i = 0; i < 3; i++) {
        gradcheck_ntxent(8, 5, temps[i], 1);
        gradcheck_ntxent(6, 3, temps[i], 0); /* any z, not only unit rows */
    }
    gradcheck_ntxent(4, 1, 0.5, 0);
    gradcheck_ntxent(10, 4, 0.2, 1);
}

/* The loss head as the graph uses it: ntxent(l2norm(x)), chained by hand. */
static void test_ntxent_l2norm_chain(void **state)
{
    (void)state;
    nt_ctx c = {.n2 = 6, .d = 4, .t = 0.1, .chain = 1};
    long nz = 24;
    c.z = drand_array(nz);
    c.zn = dalloc(nz);
    double *dzn = dalloc(nz), *dx = dalloc(nz);
    sc_ref_l2norm(c.n2, c.d, c.z, c.zn);
    sc_ref_ntxent_bwd(c.n2, c.d, c.t, c.zn, dzn);
    sc_ref_l2norm_bwd(c.n2, c.d, dzn, c.z, dx);
    check_grad("l2norm+ntxent dx", nt_loss, &c, c.z, nz, dx, H);
}

static void test_ntxent_known(void **state)
{
    (void)state;
    /* Two images, identical views: every row has one positive with
     * s = 1/t and two negatives with s = 0, the diagonal left out. */
    double z[8] = {1, 0, 0, 1, 1, 0, 0, 1};
    assert_close(sc_ref_ntxent(4, 2, 1.0, z), log(2 + exp(1.0)) - 1, 1e-15);
    assert_close(sc_ref_ntxent(4, 2, 0.5, z), log(2 + exp(2.0)) - 2, 1e-15);

    /* d = 1, z = (1, 2, 3, -1), t = 1: s_ij = z_i z_j, pos(i) = i + 2
     * mod 4. Row by row: -s_i,pos + log sum_{j != i} exp(s_ij). */
    double z1[4] = {1, 2, 3, -1};
    double want = (-3 + log(exp(2) + exp(3) + exp(-1)) +
                   2 + log(exp(2) + exp(6) + exp(-2)) +
                   -3 + log(exp(3) + exp(6) + exp(-3)) +
                   2 + log(exp(-1) + exp(-2) + exp(-3))) / 4;
    assert_close(sc_ref_ntxent(4, 1, 1.0, z1), want, 1e-14);

    /* N = 1: the only other row is the positive, so the loss is 0. */
    double z2[4] = {0.3, -0.2, 0.9, 0.1};
    assert_close(sc_ref_ntxent(2, 2, 0.5, z2), 0.0, 1e-15);
    double dz2[4];
    sc_ref_ntxent_bwd(2, 2, 0.5, z2, dz2);
    const double zero[4] = {0, 0, 0, 0};
    assert_array_close(4, dz2, zero, 1e-15);

    /* Similarities far past exp's range: stable, and the loss -> 0. */
    double big[8] = {10, 0, 0, 10, 10, 0, 0, 10}, dbig[8];
    double l = sc_ref_ntxent(4, 2, 0.07, big);
    assert_true(isfinite(l));
    assert_close(l, 0.0, 1e-12);
    sc_ref_ntxent_bwd(4, 2, 0.07, big, dbig);
    for (int i = 0; i < 8; i++)
        assert_true(isfinite(dbig[i]));
}

/* ---- fused ops ------------------------------------------------------------ */

/* The fused kernels (fuse.c's ops) against finite differences of the fused
 * forward ops, and against their parts, bit for bit. Inputs stay 1e-3 or
 * more from relu's kink, so that no perturbation flips the mask. */

typedef struct {
    int n, c, hw;
    double eps;
    double *x, *gamma, *beta, *y, *mean, *var, *r;
} bnr_ctx;

static double bnr_loss(void *p)
{
    bnr_ctx *b = p;
    sc_ref_batchnorm_relu(b->n, b->c, b->hw, b->eps, b->x, b->gamma, b->beta,
                          b->y, b->mean, b->var);
    return dot((long)b->n * b->c * b->hw, b->r, b->y);
}

/* Smallest |batchnorm output| of b's current x, before the relu. */
static double bn_kink_distance(const bnr_ctx *b)
{
    long nx = (long)b->n * b->c * b->hw;
    double *z = dalloc(nx), *m = dalloc(b->c), *v = dalloc(b->c);
    sc_ref_batchnorm(b->n, b->c, b->hw, b->eps, b->x, b->gamma, b->beta, z, m,
                     v);
    double d = INFINITY;
    for (long i = 0; i < nx; i++)
        d = fmin(d, fabs(z[i]));
    return d;
}

static void gradcheck_bn_relu(int n, int c, int hw)
{
    long nx = (long)n * c * hw;
    bnr_ctx b = {.n = n, .c = c, .hw = hw, .eps = 1e-5};
    b.gamma = drand_array(c);
    b.beta = drand_array(c);
    b.r = drand_array(nx);
    /* Redraw x until every pre-relu value is clear of the kink. */
    for (int tries = 0;; tries++) {
        assert_true(tries < 100);
        b.x = drand_array(nx);
        if (bn_kink_distance(&b) > 1e-3)
            break;
    }
    b.y = dalloc(nx);
    b.mean = dalloc(c);
    b.var = dalloc(c);
    double *dx = dalloc(nx), *dg = dalloc(c), *dbeta = dalloc(c);
    bnr_loss(&b);
    long zeros = 0; /* the mask must cut something, or this is bn alone */
    for (long i = 0; i < nx; i++)
        zeros += b.y[i] == 0.0;
    assert_true(zeros > 0 && zeros < nx);
    sc_ref_batchnorm_relu_bwd(n, c, hw, b.eps, b.r, b.y, b.x, b.gamma, b.mean,
                              b.var, dx, dg, dbeta);
    check_grad("batchnorm+relu dx", bnr_loss, &b, b.x, nx, dx, H);
    check_grad("batchnorm+relu dgamma", bnr_loss, &b, b.gamma, c, dg, H);
    check_grad("batchnorm+relu dbeta", bnr_loss, &b, b.beta, c, dbeta, H);
}

static void test_batchnorm_relu_grad(void **state)
{
    (void)state;
    gradcheck_bn_relu(3, 2, 5);
    gradcheck_bn_relu(2, 3, 12);
    gradcheck_bn_relu(6, 4, 1); /* 2-D: a head's linear -> batchnorm -> relu */
}

/* y = relu(batchnorm(x) + s), a residual block's join: its gradient is
 * the graph's (the fused op has no backward of its own), d = relu_bwd(r,
 * y) to the shortcut s and through batchnorm_bwd to x, gamma and beta. */
typedef struct {
    bnr_ctx b;
    double *s;
} bnar_ctx;

static double bnar_loss(void *p)
{
    bnar_ctx *a = p;
    bnr_ctx *b = &a->b;
    sc_ref_batchnorm_add_relu(b->n, b->c, b->hw, b->eps, b->x, b->gamma, b->beta, a->s, b->y, b->mean, b->var);
    return dot((long)b->n * b->c * b->hw, b->r, b->y);
}

static void gradcheck_bn_add_relu(int n, int c, int hw)
{
    long nx = (long)n * c * hw;
    bnar_ctx a = {.b = {.n = n, .c = c, .hw = hw, .eps = 1e-5}};
    bnr_ctx *b = &a.b;
    b->gamma = drand_array(c);
    b->beta = drand_array(c);
    b->r = drand_array(nx);
    b->x = drand_array(nx);
    double *z = dalloc(nx), *m = dalloc(c), *v = dalloc(c);
    sc_ref_batchnorm(n, c, hw, b->eps, b->x, b->gamma, b->beta, z, m, v);
    a.s = dalloc(nx);
    for (long i = 0; i < nx; i++) { /* |batchnorm(x) + s| >= 0.1: away from the kink */
        double u = urand();
        a.s[i] = (u < 0 ? u - 0.1 : u + 0.1) - z[i];
    }
    b->y = dalloc(nx);
    b->mean = dalloc(c);
    b->var = dalloc(c);
    double *d = dalloc(nx), *dx = dalloc(nx), *dg = dalloc(c), *dbeta = dalloc(c);
    bnar_loss(&a);
    long zeros = 0;
    for (long i = 0; i < nx; i++)
        zeros += b->y[i] == 0.0;
    assert_true(zeros > 0 && zeros < nx);
    sc_ref_relu_bwd(nx, b->r, b->y, d);
    sc_ref_batchnorm_bwd(n, c, hw, b->eps, d, b->x, b->gamma, b->mean, b->var, dx, dg, dbeta);
    check_grad("batchnorm+add+relu dx", bnar_loss, &a, b->x, nx, dx, H);
    check_grad("batchnorm+add+relu dgamma", bnar_loss, &a, b->gamma, c, dg, H);
    check_grad("batchnorm+add+relu dbeta", bnar_loss, &a, b->beta, c, dbeta, H);
    check_grad("batchnorm+add+relu ds", bnar_loss, &a, a.s, nx, d, H);
}

static void test_batchnorm_add_relu_grad(void **state)
{
    (void)state;
    gradcheck_bn_add_relu(3, 2, 5);
    gradcheck_bn_add_relu(2, 3, 12);
}

/* y = relu(a + b) read by two consumers, with upstream gradients r1 and
 * r2: dL/da = dL/db = add+relu_bwd(r1, r2, y), the gradient sum and the
 * mask in one kernel, as autodiff's graph has them around a residual. */
typedef struct {
    long n;
    double *a, *b, *y, *r1, *r2;
} addr_ctx;

static double addr_loss(void *p)
{
    addr_ctx *c = p;
    sc_ref_add_relu(c->n, c->a, c->b, c->y);
    return dot(c->n, c->r1, c->y) + dot(c->n, c->r2, c->y);
}

static void test_add_relu_grad(void **state)
{
    (void)state;
    addr_ctx c = {.n = 40};
    c.a = drand_array(c.n);
    c.b = dalloc(c.n);
    for (long i = 0; i < c.n; i++) { /* |a + b| >= 0.1: away from the kink */
        double u = urand();
        c.b[i] = (u < 0 ? u - 0.1 : u + 0.1) - c.a[i];
    }
    c.y = dalloc(c.n);
    c.r1 = drand_array(c.n);
    c.r2 = drand_array(c.n);
    double *da = dalloc(c.n), *db = dalloc(c.n);
    addr_loss(&c);
    sc_ref_add_relu_bwd(c.n, c.r1, c.r2, c.y, da);
    check_grad("add+relu da", addr_loss, &c, c.a, c.n, da, H);
    /* Same for b: the add passes its gradient to both operands. */
    memcpy(db, da, sizeof(double) * (size_t)c.n);
    check_grad("add+relu db", addr_loss, &c, c.b, c.n, db, H);
}

/* The fused kernels are their parts composed: equal to the last bit,
 * which is what lets the interpreter give a fused graph the unfused
 * graph's exact results. */
static void test_fused_equal_parts(void **state)
{
    (void)state;
    int n = 4, c = 3, hw = 5;
    long nx = (long)n * c * hw;
    double eps = 1e-5;
    double *x = drand_array(nx), *gamma = drand_array(c), *beta = drand_array(c);
    double *dy = drand_array(nx), *b = drand_array(nx);
    double *y1 = dalloc(nx), *m1 = dalloc(c), *v1 = dalloc(c);
    double *y2 = dalloc(nx), *m2 = dalloc(c), *v2 = dalloc(c), *t = dalloc(nx);
    sc_ref_batchnorm(n, c, hw, eps, x, gamma, beta, t, m1, v1);
    sc_ref_relu(nx, t, y1);
    sc_ref_batchnorm_relu(n, c, hw, eps, x, gamma, beta, y2, m2, v2);
    assert_array_close(nx, y2, y1, 0.0);
    assert_array_close(c, m2, m1, 0.0);
    assert_array_close(c, v2, v1, 0.0);

    double *dx1 = dalloc(nx), *dg1 = dalloc(c), *db1 = dalloc(c);
    double *dx2 = dalloc(nx), *dg2 = dalloc(c), *db2 = dalloc(c);
    sc_ref_relu_bwd(nx, dy, y1, t);
    sc_ref_batchnorm_bwd(n, c, hw, eps, t, x, gamma, m1, v1, dx1, dg1, db1);
    sc_ref_batchnorm_relu_bwd(n, c, hw, eps, dy, y1, x, gamma, m1, v1, dx2,
                              dg2, db2);
    assert_array_close(nx, dx2, dx1, 0.0);
    assert_array_close(c, dg2, dg1, 0.0);
    assert_array_close(c, db2, db1, 0.0);

    sc_ref_add(nx, x, b, t);
    sc_ref_relu(nx, t, y1);
    sc_ref_add_relu(nx, x, b, y2);
    assert_array_close(nx, y2, y1, 0.0);

    sc_ref_batchnorm(n, c, hw, eps, x, gamma, beta, t, m1, v1);
    sc_ref_add_relu(nx, t, b, y1);
    sc_ref_batchnorm_add_relu(n, c, hw, eps, x, gamma, beta, b, y2, m2, v2);
    assert_array_close(nx, y2, y1, 0.0);
    assert_array_close(c, m2, m1, 0.0);
    assert_array_close(c, v2, v1, 0.0);
    sc_ref_add(nx, dy, b, t);
    sc_ref_relu_bwd(nx, t, y1, dx1);
    sc_ref_add_relu_bwd(nx, dy, b, y1, dx2);
    assert_array_close(nx, dx2, dx1, 0.0);
}

/* Hand-computed: the mask is y > 0, so a sum that is exactly zero (or a
 * negative zero) passes no gradient. */
static void test_add_relu_known(void **state)
{
    (void)state;
    double a[5] = {1, -2, 0.5, 3, -0.0}, b[5] = {-1, 1, 0.25, -4, 0}, y[5];
    sc_ref_add_relu(5, a, b, y);
    const double wy[5] = {0, 0, 0.75, 0, 0};
    assert_array_close(5, y, wy, 0.0);
    double g1[5] = {1, 2, 3, 4, 5}, g2[5] = {10, 20, 30, 40, 50}, dx[5];
    sc_ref_add_relu_bwd(5, g1, g2, y, dx);
    const double wdx[5] = {0, 0, 33, 0, 0};
    assert_array_close(5, dx, wdx, 0.0);
}

/* ---- the checker itself ------------------------------------------------- */

/* The checks above are only worth something if grad_error sees a wrong
 * gradient: a single entry off by 1e-4 of the scale, and the classic
 * batchnorm bug of forgetting the statistics' dependence on x. */
static void test_checker_catches_errors(void **state)
{
    (void)state;
    conv_ctx c = {.g = window(1, 2, 5, 4, 2, 3, 2, 1)};
    long nw = 2 * 2 * 9, ny = 2L * c.g.oh * c.g.ow;
    c.x = drand_array(2 * 5 * 4);
    c.w = drand_array(nw);
    c.b = NULL;
    c.y = dalloc(ny);
    c.r = drand_array(ny);
    double *dw = dalloc(nw);
    sc_ref_conv2d_bwd_weight(&c.g, c.r, c.x, dw);
    assert_true(grad_error(conv_loss, &c, c.w, nw, dw, H) <= TOL);
    double maxg = 0;
    for (long i = 0; i < nw; i++)
        maxg = fmax(maxg, fabs(dw[i]));
    dw[nw / 2] += 1e-4 * maxg;
    assert_true(grad_error(conv_loss, &c, c.w, nw, dw, H) > TOL);

    bn_ctx b = {.n = 4, .c = 2, .hw = 3, .eps = 1e-5};
    long nx = 24;
    b.x = drand_array(nx);
    b.gamma = drand_array(2);
    b.beta = drand_array(2);
    b.y = dalloc(nx);
    b.mean = dalloc(2);
    b.var = dalloc(2);
    b.r = drand_array(nx);
    bn_loss(&b);
    double *naive = dalloc(nx);
    for (long i = 0; i < nx; i++) {
        int ch = (int)(i / b.hw % b.c);
        naive[i] = b.r[i] * b.gamma[ch] / sqrt(b.var[ch] + b.eps);
    }
    assert_true(grad_error(bn_loss, &b, b.x, nx, naive, H) > TOL);
}

typedef struct {
    int n, k;
    double *logits, *labels;
} xent_ctx;

static double xent_loss(void *p)
{
    xent_ctx *c = p;
    return sc_ref_softmax_xent(c->n, c->k, c->logits, c->labels);
}

static void test_softmax_xent_grad(void **state)
{
    (void)state;
    xent_ctx c = {.n = 5, .k = 4};
    c.logits = drand_array(20);
    c.labels = dalloc(5);
    for (int i = 0; i < 5; i++)
        c.labels[i] = (i * 3) % 4;
    double *d = dalloc(20);
    sc_ref_softmax_xent_bwd(5, 4, c.logits, c.labels, d);
    check_grad("softmax_xent dlogits", xent_loss, &c, c.logits, 20, d, H);
}

/* Hand-computed: one row of equal logits gives log(k); a confident right
 * answer gives almost 0; large logits stay finite. */
static void test_softmax_xent_known(void **state)
{
    (void)state;
    double lg[3 * 4] = {1, 1, 1, 1, 0, 50, 0, 0, 1000, 0, 0, 0};
    double lab[3] = {2, 1, 1};
    double want = (log(4.0) + log(1 + 3 * exp(-50.0)) + (1000 + log(1 + 3 * exp(-1000.0)))) / 3;
    assert_close(sc_ref_softmax_xent(3, 4, lg, lab), want, 1e-12);
}

/* ---- Barlow Twins and VICReg ------------------------------------------ */

typedef struct {
    int n2, d, vicreg;
    double coef[4];
    double *z;
} stat_ctx;

static double stat_loss(void *p)
{
    stat_ctx *c = p;
    return c->vicreg ? sc_ref_vicreg(c->n2, c->d, c->coef, c->z) : sc_ref_barlow(c->n2, c->d, c->coef, c->z);
}

/* Odd sizes; the columns k % 3 == 0 scaled by 4 so that VICReg's hinge
 * sees deviations on both sides of 1 (uniform [-1, 1] alone: 0.58). */
static void gradcheck_stat(int vicreg, int n2, int d, const double *coef)
{
    stat_ctx c = {.n2 = n2, .d = d, .vicreg = vicreg};
    memcpy(c.coef, coef, sizeof c.coef);
    long nz = (long)n2 * d;
    c.z = drand_array(nz);
    for (long i = 0; i < nz; i++)
        if (i % d % 3 == 0)
            c.z[i] *= 4;
    double *dz = dalloc(nz);
    if (vicreg)
        sc_ref_vicreg_bwd(n2, d, c.coef, c.z, dz);
    else
        sc_ref_barlow_bwd(n2, d, c.coef, c.z, dz);
    check_grad(vicreg ? "vicreg dz" : "barlow dz", stat_loss, &c, c.z, nz, dz, H);
}

static void test_barlow_grad(void **state)
{
    (void)state;
    const double paper[4] = {0.0051, 1}, heavy[4] = {0.5, 0.3}, diag[4] = {0, 2};
    gradcheck_stat(0, 10, 7, paper);
    gradcheck_stat(0, 6, 3, heavy);
    gradcheck_stat(0, 14, 5, diag);
    gradcheck_stat(0, 6, 1, paper); /* one feature (with N = 2, zn is +-1: no gradient) */
}

static void test_vicreg_grad(void **state)
{
    (void)state;
    const double paper[4] = {25, 25, 1, 1e-4}, cov[4] = {0, 0, 3, 1e-2}, std[4] = {0, 7, 0, 1e-4};
    gradcheck_stat(1, 10, 7, paper);
    gradcheck_stat(1, 6, 3, paper);
    gradcheck_stat(1, 14, 5, cov);
    gradcheck_stat(1, 8, 4, std);
}

/* Hand-computed: two images, one feature, the views equal. */
static void test_stat_known(void **state)
{
    (void)state;
    double z[4] = {1, -1, 1, -1}, h[4] = {0.5, -0.5, 0.5, -0.5};
    const double bt[4] = {0.0051, 3}, vr[4] = {25, 2, 1, 1e-4};
    /* zn = z / sqrt(1 + 1e-5), C = 1 / (1 + 1e-5) */
    double c = 1 / (1 + 1e-5);
    assert_close(sc_ref_barlow(4, 1, bt, z), 3 * (1 - c) * (1 - c), 1e-18);
    /* unbiased variance 2: std above 1, no invariance or covariance term */
    assert_close(sc_ref_vicreg(4, 1, vr, z), 0, 1e-15);
    /* variance 0.5: each view's hinge 1 - sqrt(0.5001), halved and summed */
    assert_close(sc_ref_vicreg(4, 1, vr, h), 2 * (1 - sqrt(0.5001)), 1e-15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_window_out, reset_pool),
        cmocka_unit_test_setup(test_conv2d_known, reset_pool),
        cmocka_unit_test_setup(test_conv2d_grad, reset_pool),
        cmocka_unit_test_setup(test_conv2d_grouped_dilated_grad, reset_pool),
        cmocka_unit_test_setup(test_batchnorm_known, reset_pool),
        cmocka_unit_test_setup(test_batchnorm_grad, reset_pool),
        cmocka_unit_test_setup(test_bn_running_known, reset_pool),
        cmocka_unit_test_setup(test_relu_known, reset_pool),
        cmocka_unit_test_setup(test_relu_grad, reset_pool),
        cmocka_unit_test_setup(test_activation_known, reset_pool),
        cmocka_unit_test_setup(test_activation_grad, reset_pool),
        cmocka_unit_test_setup(test_maxpool_known, reset_pool),
        cmocka_unit_test_setup(test_maxpool_grad, reset_pool),
        cmocka_unit_test_setup(test_avgpool_known, reset_pool),
        cmocka_unit_test_setup(test_avgpool_grad, reset_pool),
        cmocka_unit_test_setup(test_global_avgpool, reset_pool),
        cmocka_unit_test_setup(test_linear_known, reset_pool),
        cmocka_unit_test_setup(test_linear_grad, reset_pool),
        cmocka_unit_test_setup(test_add_copy, reset_pool),
        cmocka_unit_test_setup(test_l2norm_known, reset_pool),
        cmocka_unit_test_setup(test_l2norm_grad, reset_pool),
        cmocka_unit_test_setup(test_ntxent_known, reset_pool),
        cmocka_unit_test_setup(test_ntxent_grad, reset_pool),
        cmocka_unit_test_setup(test_ntxent_l2norm_chain, reset_pool),
        cmocka_unit_test_setup(test_batchnorm_relu_grad, reset_pool),
        cmocka_unit_test_setup(test_batchnorm_add_relu_grad, reset_pool),
        cmocka_unit_test_setup(test_add_relu_grad, reset_pool),
        cmocka_unit_test_setup(test_add_relu_known, reset_pool),
        cmocka_unit_test_setup(test_fused_equal_parts, reset_pool),
        cmocka_unit_test_setup(test_checker_catches_errors, reset_pool),
        cmocka_unit_test_setup(test_softmax_xent_known, reset_pool),
        cmocka_unit_test_setup(test_softmax_xent_grad, reset_pool),
        cmocka_unit_test_setup(test_barlow_grad, reset_pool),
        cmocka_unit_test_setup(test_vicreg_grad, reset_pool),
        cmocka_unit_test_setup(test_stat_known, reset_pool),
        /* last: they draw from the shared stream, which the others' data follows */
        cmocka_unit_test_setup(test_byol_known, reset_pool),
        cmocka_unit_test_setup(test_byol_grad, reset_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
