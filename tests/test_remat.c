/* test_remat: activations made again in the backward pass (remat.c).
 *
 * - It changes no result: the interpreter on resnet-small's fused step
 *   with every batchnorm+relu output made again (threshold 0) and without
 *   any gives the same loss, gradients and running statistics to the bit
 *   (the copy is the same op on the same operands).
 * - Its shape: each copy sits right before the first backward reader of
 *   the y it replaces, no backward node reads a replaced y any more, and
 *   that y's last reader is a forward node.
 * - It pays where the compiler applies it: resnet18-stl10 at batch 32 (the
 *   benchmark's shape, planning only) gets exactly the stem's copy (the
 *   only map of SC_REMAT_MIN_BYTES or more), and its arena on two threads
 *   shrinks by at least 30 MB of the map's 37.7; the step's FLOPs, which
 *   leave the copy out, are those of the graph without it. */
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
#include "memplan.h"
#include "model.h"
#include "pipeline.h"
#include "remat.h"
#include "sc_rng.h"

static char *source_path(const char *rel)
{
    const char *src = getenv("SC_SOURCE_DIR");
    if (!src)
        return NULL;
    size_t n = strlen(src) + strlen(rel) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", src, rel);
    return p;
}

/* The fused SimCLR step of the model at path, as the driver makes it up
 * to fusion but without remat (the `fuse` pass here, not the pipeline's). */
static void load_fused(const char *path, int batch, sc_compiled *c)
{
    sc_spec m;
    assert_int_equal(sc_model_load(path, &m), 0);
    sc_passes_opts o = {.batch = batch, .classes = 10, .last = SC_PASS_FINETUNE};
    assert_int_equal(sc_passes_run(&m, &o, c), 0);
    sc_model_free(&m);
    assert_true(sc_fuse(&c->g) > 0);
}

/* The structure of a graph after sc_remat (see the top). */
static int check_shape(const sc_graph *g)
{
    int copies = 0;
    for (int i = g->nfwd; i < g->nn; i++) {
        const sc_node *n = &g->n[i];
        if (strncmp(g->t[n->out[0]].name, "remat/", 6))
            continue;
        copies++;
        assert_int_equal(n->op, SC_OP_BATCHNORM_RELU);
        int y = sc_graph_find(g, g->t[n->out[0]].name + 6), copy = n->out[0];
        assert_true(y >= 0);
        int first = -1;
        for (int j = 0; j < g->nn; j++)
            for (int k = 0; k < g->n[j].nin; k++) {
                if (g->n[j].in[k] == y && j >= g->nfwd)
                    fail_msg("backward node %d still reads %s", j, g->t[y].name);
                if (g->n[j].in[k] == copy && first < 0)
                    first = j;
            }
        assert_int_equal(first, i + 1);
    }
    return copies;
}

static void seed(sc_interp *it, unsigned long long s)
{
    const sc_graph *g = it->g;
    sc_interp_init_params(it, s);
    sc_rng r;
    sc_rng_seed(&r, s, SC_STREAM_INPUT);
    for (long i = 0; i < g->t[g->input].numel; i++)
        it->buf[g->input][i] = sc_rng_normal(&r);
}

static void same_bits(const char *name, const double *a, const double *b, long n)
{
    if (memcmp(a, b, (size_t)n * sizeof *a))
        fail_msg("%s differs with remat", name);
}

static void test_same_results(void **state)
{
    (void)state;
    char *path = source_path("models/resnet-small.xml");
    if (!path)
        skip();
    sc_compiled a, b;
    load_fused(path, 2, &a);
    load_fused(path, 2, &b);
    int made = sc_remat(&b.g, 0);
    /* the stem and each block's first batchnorm+relu */
    assert_int_equal(made, 4);
    assert_int_equal(check_shape(&b.g), 4);
    assert_int_equal(b.g.nn, a.g.nn + 4);
    sc_interp ia, ib;
    assert_int_equal(sc_interp_init(&ia, &a.g), 0);
    assert_int_equal(sc_interp_init(&ib, &b.g), 0);
    seed(&ia, 11);
    seed(&ib, 11);
    sc_interp_run(&ia, 0, a.g.nn);
    sc_interp_run(&ib, 0, b.g.nn);
    assert_true(isfinite(ia.buf[a.g.loss][0]));
    same_bits("loss", ib.buf[b.g.loss], ia.buf[a.g.loss], 1);
    for (int p = 0; p < a.g.nparams; p++) {
        const sc_tensor *t = &a.g.t[a.g.params[p]];
        same_bits(t->name, ib.buf[b.g.t[b.g.params[p]].grad], ia.buf[t->grad], t->numel);
    }
    for (int k = 0; k < a.g.nbuffers; k++)
        same_bits(a.g.t[a.g.buffers[k]].name, ib.buf[b.g.buffers[k]], ia.buf[a.g.buffers[k]],
                  a.g.t[a.g.buffers[k]].numel);
    sc_interp_free(&ia);
    sc_interp_free(&ib);
    sc_compiled_free(&a);
    sc_compiled_free(&b);
    free(path);
}

static void test_stl10_benchmark_shape(void **state)
{
    (void)state;
    char *path = source_path("models/resnet18-stl10.xml");
    if (!path)
        skip();
    sc_compiled a, b;
    load_fused(path, 32, &a);
    load_fused(path, 32, &b);
    assert_int_equal(sc_remat(&b.g, SC_REMAT_MIN_BYTES), 1);
    assert_int_equal(check_shape(&b.g), 1);
    assert_true(sc_graph_find(&b.g, "remat/encoder.2") >= 0);
    /* the step's FLOPs leave the copy out: the same as without it */
    double fa = 0, fb = 0;
    int copies = 0;
    for (int i = 0; i < a.g.nn; i++)
        fa += sc_node_flops(&a.g, i);
    for (int i = 0; i < b.g.nn; i++) {
        copies += sc_remat_is_copy(&b.g, i);
        fb += sc_remat_is_copy(&b.g, i) ? 0 : sc_node_flops(&b.g, i);
    }
    assert_int_equal(copies, 1);
    assert_true(fa == fb);
    sc_memplan_opts o = {.threads = 2};
    sc_memplan ma, mb;
    assert_int_equal(sc_memplan_build(&a.g, a.g.loss, &o, &ma), 0);
    assert_int_equal(sc_memplan_build(&b.g, b.g.loss, &o, &mb), 0);
    double saved = 4e-6 * (double)(ma.arena_floats - mb.arena_floats);
    print_message("resnet18-stl10 b32, 2 threads: arena %.1f MB, %.1f MB with remat\n", 4e-6 * (double)ma.arena_floats,
                  4e-6 * (double)mb.arena_floats);
    assert_true(saved >= 30.0);
    sc_memplan_free(&ma);
    sc_memplan_free(&mb);
    sc_compiled_free(&a);
    sc_compiled_free(&b);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_results),
        cmocka_unit_test(test_stl10_benchmark_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
