/* test_fuse_stats: batchnorm statistics from the convolution's epilogue
 * (fuse_stats.c, ref_bnstats.c, cg_convstats.c).
 *
 * - The merge is numerically sound: data far off zero (mean 1e4, standard
 *   deviation 1e-2) split into chunks of unequal size gives the two-pass
 *   variance to 1e-9 relative, where sums of squares in double would lose
 *   every digit (their error, ~1e-16 * mean^2 / var = 1e-4, would fail).
 * - The rewrite fires where it should: on resnet-small, every forward
 *   conv2d (each feeds a batchnorm) becomes conv2d+stats, each batchnorm
 *   reads its statistics, and a second run finds nothing.
 * - It changes no result: the interpreter on the rewritten graph and on
 *   the graph fused without it (SimCLR step, fine-tuning step) agree to
 *   1e-12 relative: only the order of the statistics' sums differs.
 * - The driver shows it (--dump-after=fuse) with --fuse-stats, not by
 *   default nor with --no-fuse.
 * Generated code against the interpreter on these graphs is
 * test_codegen_jit's job (the driver's graphs carry the rewrite). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fuse.h"
#include "interp.h"
#include "model.h"
#include "pipeline.h"
#include "refops.h"
#include "sc_rng.h"

#define REL_TOL 1e-12

static void test_merge_sound(void **state)
{
    (void)state;
    enum { N = 5, C = 2, HW = 37 };
    static double x[N * C * HW], stats[N * C * 3];
    sc_rng r;
    sc_rng_seed(&r, 7, SC_STREAM_INPUT);
    for (int i = 0; i < N * C * HW; i++)
        x[i] = 1e4 + 1e-2 * sc_rng_normal(&r);
    sc_ref_conv_stats(N, C, HW, x, stats);
    /* chunks of unequal size: images {0, 1} merged into row 0 by hand, row 1 skipped */
    double *a = stats, *b = stats + C * 3;
    for (int ch = 0; ch < C; ch++) {
        double *p = a + ch * 3, *q = b + ch * 3, tot = p[0] + q[0], d = q[1] - p[1];
        p[2] += q[2] + d * d * p[0] * q[0] / tot;
        p[1] += d * q[0] / tot;
        p[0] = tot;
        q[0] = 0;
    }
    double mean[C], var[C];
    sc_ref_stats_merge(N, C, stats, mean, var);
    for (int ch = 0; ch < C; ch++) {
        double s = 0, ss = 0;
        for (int i = 0; i < N; i++)
            for (int k = 0; k < HW; k++)
                s += x[(i * C + ch) * HW + k];
        double mu = s / (N * HW);
        for (int i = 0; i < N; i++)
            for (int k = 0; k < HW; k++)
                ss += (x[(i * C + ch) * HW + k] - mu) * (x[(i * C + ch) * HW + k] - mu);
        double want = ss / (N * HW);
        assert_true(fabs(mean[ch] - mu) <= 1e-12 * mu);
        /* measured: 2e-13 relative */
        if (fabs(var[ch] - want) > 1e-9 * want)
            fail_msg("channel %d: var %.17g, two-pass %.17g", ch, var[ch], want);
    }
}

static char *source_path(const char *rel)
{
    const char *src = getenv("SC_SOURCE_DIR");
    assert_non_null(src);
    size_t n = strlen(src) + strlen(rel) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", src, rel);
    return p;
}

static int count_op(const sc_graph *g, sc_opkind op)
{
    int k = 0;
    for (int i = 0; i < g->nn; i++)
        k += g->n[i].op == op;
    return k;
}

static void seed_inputs(sc_interp *it, unsigned long long seed)
{
    const sc_graph *g = it->g;
    sc_interp_init_params(it, seed);
    sc_rng r;
    sc_rng_seed(&r, seed, SC_STREAM_INPUT);
    for (long i = 0; i < g->t[g->input].numel; i++)
        it->buf[g->input][i] = 3.0 + sc_rng_normal(&r); /* off zero: the statistics' shift matters */
    if (g->labels >= 0)
        for (long i = 0; i < g->t[g->labels].numel; i++)
            it->buf[g->labels][i] = (double)sc_rng_below(&r, 10);
}

static void compare(const char *what, const char *name, const double *got, const double *want, long n)
{
    double scale = 0, err = 0;
    for (long i = 0; i < n; i++) {
        scale = fmax(scale, fabs(want[i]));
        err = fmax(err, fabs(got[i] - want[i]));
    }
    if (!(err <= REL_TOL * fmax(scale, 1e-300)))
        fail_msg("%s %s: with statistics differs by %.3g (scale %.3g)", what, name, err, scale);
}

/* Interpreter on u (fused without statistics) and f (with): loss, every
 * gradient and buffer (the running statistics). */
static void same_results(const char *what, const sc_graph *u, const sc_graph *f)
{
    sc_interp iu, i_f;
    assert_int_equal(sc_interp_init(&iu, u), 0);
    assert_int_equal(sc_interp_init(&i_f, f), 0);
    seed_inputs(&iu, 11);
    seed_inputs(&i_f, 11);
    sc_interp_run(&iu, 0, u->nn);
    sc_interp_run(&i_f, 0, f->nn);
    compare(what, "loss", i_f.buf[f->loss], iu.buf[u->loss], 1);
    for (int p = 0; p < u->nparams; p++) {
        const sc_tensor *tu = &u->t[u->params[p]], *tf = &f->t[f->params[p]];
        if (tu->grad >= 0)
            compare(what, u->t[tu->grad].name, i_f.buf[tf->grad], iu.buf[tu->grad], tu->numel);
    }
    for (int b = 0; b < u->nbuffers; b++)
        compare(what, u->t[u->buffers[b]].name, i_f.buf[f->buffers[b]], iu.buf[u->buffers[b]],
                u->t[u->buffers[b]].numel);
    sc_interp_free(&iu);
    sc_interp_free(&i_f);
}

static void test_resnet_small(void **state)
{
    (void)state;
    char *path = source_path("models/resnet-small.xml");
    sc_spec m;
    assert_int_equal(sc_model_load(path, &m), 0);
    sc_passes_opts o = {.batch = 2, .classes = 10, .fuse = 1, .last = SC_PASS_FUSE};
    sc_compiled u, f;
    assert_int_equal(sc_passes_run(&m, &o, &u), 0);
    o.fuse_stats = 1;
    assert_int_equal(sc_passes_run(&m, &o, &f), 0);
    /* resnet-small: the stem, 3 blocks of 2 convs, 2 downsamples */
    int convs = count_op(&u.g, SC_OP_CONV2D);
    assert_int_equal(convs, 9);
    assert_int_equal(count_op(&f.g, SC_OP_CONV2D_STATS), convs);
    assert_int_equal(count_op(&f.g, SC_OP_CONV2D), 0);
    assert_int_equal(count_op(&f.ft, SC_OP_CONV2D_STATS), convs);
    assert_int_equal(count_op(&f.enc, SC_OP_CONV2D_STATS), 0); /* eval: running statistics */
    assert_int_equal(f.g.nt, u.g.nt + convs);
    assert_int_equal(f.g.nn, u.g.nn);
    for (int i = 0; i < f.g.nn; i++) {
        const sc_node *n = &f.g.n[i];
        if (n->op != SC_OP_CONV2D_STATS)
            continue;
        assert_true(i < f.g.nfwd && n->nout == 2);
        const sc_tensor *y = &f.g.t[n->out[0]], *s = &f.g.t[n->out[1]];
        assert_int_equal(s->producer, i);
        assert_true(s->ndim == 3 && s->shape[0] == y->shape[0] && s->shape[1] == y->shape[1] && s->shape[2] == 3);
        int readers = 0;
        for (int j = 0; j < f.g.nn; j++)
            for (int k = 0; k < f.g.n[j].nin; k++)
                if (f.g.n[j].in[k] == n->out[1]) {
                    readers++;
                    sc_opkind op = f.g.n[j].op;
                    assert_true(k == (op == SC_OP_BATCHNORM_ADD_RELU ? 4 : 3) && f.g.n[j].in[0] == n->out[0]);
                    assert_true(op == SC_OP_BATCHNORM || op == SC_OP_BATCHNORM_RELU || op == SC_OP_BATCHNORM_ADD_RELU);
                }
        assert_int_equal(readers, 1);
    }
    assert_int_equal(sc_fuse_stats(&f.g), 0);
    same_results("resnet-small simclr", &u.g, &f.g);
    same_results("resnet-small finetune", &u.ft, &f.ft);
    sc_compiled_free(&u);
    sc_compiled_free(&f);
    sc_model_free(&m);
    free(path);
}

static long count_in(const char *args)
{
    const char *simclrc = getenv("SIMCLRC");
    char *model = source_path("models/resnet-small.xml");
    assert_non_null(simclrc);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s --emit=graph -o /dev/null --dump-after=fuse '%s' 2>&1", simclrc, args, model);
    free(model);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[4096];
    long n = 0;
    while (fgets(line, sizeof line, p))
        n += strstr(line, "= conv2d+stats(") != NULL;
    assert_int_equal(pclose(p), 0);
    return n;
}

static void test_driver(void **state)
{
    (void)state;
    assert_int_equal(count_in("--fuse-stats"), 2 * 9); /* simclr and finetune graphs */
    assert_int_equal(count_in(""), 0);
    assert_int_equal(count_in("--fuse-stats --no-fuse"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_sound),
        cmocka_unit_test(test_resnet_small),
        cmocka_unit_test(test_driver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
