/* Whole-graph gradient checks: the interpreter's backward graph (autodiff
 * plus every backward op) against central finite differences of the loss,
 * in double precision, on small ResNets with residuals, batchnorm, pooling
 * and NT-Xent. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "autodiff.h"
#include "build.h"
#include "interp.h"
#include "model.h"
#include "sc_rng.h"

static const char *tiny_resnet =
    "<?xml version=\"1.0\"?>\n"
    "<simclr name=\"tiny\" version=\"1\">\n"
    "  <input channels=\"3\" height=\"9\" width=\"8\"/>\n"
    "  <encoder>\n"
    "    <conv filters=\"4\" kernel=\"3\" pad=\"1\" bias=\"true\"/>\n"
    "    <batchnorm/>\n"
    "    <relu/>\n"
    "    <maxpool kernel=\"2\" stride=\"1\"/>\n"
    "    <stage block=\"basic\" filters=\"4\" blocks=\"1\"/>\n"
    "    <stage block=\"basic\" filters=\"6\" blocks=\"2\" stride=\"2\"/>\n"
    "    <residual activation=\"none\">\n"
    "      <body><conv filters=\"6\" kernel=\"1\"/><batchnorm/></body>\n"
    "    </residual>\n"
    "    <avgpool kernel=\"2\" pad=\"1\"/>\n"
    "    <flatten/>\n"
    "  </encoder>\n"
    "  <head>\n"
    "    <linear units=\"8\"/>\n"
    "    <batchnorm/>\n"
    "    <relu/>\n"
    "    <linear units=\"5\" bias=\"false\"/>\n"
    "  </head>\n"
    "  <loss type=\"nt-xent\" temperature=\"0.2\"/>\n"
    "  <train batch=\"3\" epochs=\"1\" optimizer=\"sgd\" lr=\"0.1\"/>\n"
    "</simclr>\n";

static const char *tiny_bottleneck =
    "<?xml version=\"1.0\"?>\n"
    "<simclr name=\"tinyb\" version=\"1\">\n"
    "  <input channels=\"2\" height=\"6\" width=\"6\"/>\n"
    "  <encoder>\n"
    "    <conv filters=\"4\" kernel=\"3\" stride=\"2\" pad=\"1\"/>\n"
    "    <stage block=\"bottleneck\" filters=\"2\" blocks=\"2\" stride=\"1\" expansion=\"2\"/>\n"
    "    <global-avgpool/>\n"
    "  </encoder>\n"
    "  <head><linear units=\"3\"/></head>\n"
    "  <loss type=\"nt-xent\" temperature=\"0.5\"/>\n"
    "  <train batch=\"2\" epochs=\"1\" optimizer=\"adam\" lr=\"0.001\"/>\n"
    "</simclr>\n";

static int load_graph(const char *xml, sc_spec *m, sc_graph *g)
{
    char path[] = "/tmp/sc_autodiff_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
    close(fd);
    int rc = sc_model_load(path, m);
    unlink(path);
    if (rc)
        return -1;
    sc_graph_init(g);
    if (sc_build_graph(m, 0, g) || sc_autodiff(g))
        return -1;
    return 0;
}

static double forward_loss(sc_interp *it)
{
    sc_interp_run(it, 0, it->g->nfwd);
    return it->buf[it->g->loss][0];
}

/* Checks every parameter element (or a random sample of large tensors)
 * against central differences. */
static void check_graph(const char *xml, double tol)
{
    sc_spec m;
    sc_graph g;
    assert_int_equal(load_graph(xml, &m, &g), 0);
    sc_interp it;
    assert_int_equal(sc_interp_init(&it, &g), 0);
    sc_interp_init_params(&it, 7);
    sc_rng r;
    sc_rng_seed(&r, 11, SC_STREAM_INPUT);
    for (long i = 0; i < g.t[g.input].numel; i++)
        it.buf[g.input][i] = sc_rng_normal(&r);
    /* Break the symmetry of batchnorm's gamma = 1, beta = 0 so that their
     * gradients are exercised in general position. */
    for (int p = 0; p < g.nparams; p++)
        for (long k = 0; k < g.t[g.params[p]].numel; k++)
            it.buf[g.params[p]][k] += 0.1 * sc_rng_normal(&r);

    sc_interp_run(&it, 0, g.nn);
    double loss = it.buf[g.loss][0];
    assert_true(isfinite(loss) && loss > 0);

    const double h = 1e-6;
    int checked = 0;
    for (int p = 0; p < g.nparams; p++) {
        const sc_tensor *pt = &g.t[g.params[p]];
        assert_true(pt->grad >= 0);
        double *w = it.buf[g.params[p]];
        /* Copy the analytic gradient: reruns overwrite the buffers. */
        double *an = malloc((size_t)pt->numel * sizeof *an);
        assert_non_null(an);
        memcpy(an, it.buf[pt->grad], (size_t)pt->numel * sizeof *an);
        double gmax = 0, emax = 0;
        for (long k = 0; k < pt->numel; k++)
            gmax = fmax(gmax, fabs(an[k]));
        long n = pt->numel < 40 ? pt->numel : 40;
        for (long s = 0; s < n; s++) {
            long k = pt->numel <= 40 ? s : (long)sc_rng_below(&r, (uint64_t)pt->numel);
            double w0 = w[k];
            w[k] = w0 + h;
            double lp = forward_loss(&it);
            w[k] = w0 - h;
            double lm = forward_loss(&it);
            w[k] = w0;
            double fd = (lp - lm) / (2 * h);
            emax = fmax(emax, fabs(fd - an[k]));
            checked++;
        }
        /* Floor: a zero gradient (conv bias before batchnorm) is checked
         * against the finite differences' own roundoff, ~1e-10 here. */
        if (emax > tol * fmax(gmax, 1e-2))
            fail_msg("%s: max |fd - analytic| = %g, max |grad| = %g", pt->name, emax, gmax);
        free(an);
    }
    assert_true(checked > 50);
    sc_interp_free(&it);
    sc_graph_free(&g);
    sc_model_free(&m);
}

static void test_tiny_resnet(void **state)
{
    (void)state;
    check_graph(tiny_resnet, 1e-6);
}

static void test_tiny_bottleneck(void **state)
{
    (void)state;
    check_graph(tiny_bottleneck, 1e-6);
}

/* The residual's input gets gradient from body and shortcut: autodiff must
 * sum them (an add node in the backward graph). */
static void test_residual_gradients_summed(void **state)
{
    (void)state;
    sc_spec m;
    sc_graph g;
    assert_int_equal(load_graph(tiny_resnet, &m, &g), 0);
    int sums = 0;
    for (int i = g.nfwd; i < g.nn; i++)
        sums += g.n[i].op == SC_OP_ADD;
    assert_true(sums >= 4);
    /* The input batch needs no gradient: the stem conv has no bwd_data. */
    for (int i = g.nfwd; i < g.nn; i++)
        if (g.n[i].op == SC_OP_CONV2D_BWD_DATA)
            assert_int_not_equal(g.t[g.n[i].out[0]].producer, -1);
    assert_int_equal(sc_graph_find(&g, "grad/input"), -1);
    sc_graph_free(&g);
    sc_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_resnet),
        cmocka_unit_test(test_tiny_bottleneck),
        cmocka_unit_test(test_residual_gradients_summed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
