/* Generated code against the interpreter, without float rounding in the
 * way: every shipped model and test spec is compiled with double-precision
 * tensors (the codegen's test mode), run in memory through LLVM's MCJIT,
 * and compared with the reference interpreter on the same parameters and
 * inputs: the SimCLR step (loss, every gradient, the running statistics it
 * updates), the eval-mode encoder (features), and the fine-tuning step.
 * The graphs are fused, as the driver compiles them; the interpreter runs
 * the fused graphs too (test_fuse shows they give the unfused results).
 * In double precision the two must agree to ~1e-12; the bound is 1e-8 of
 * each tensor's largest magnitude. Float32 parity of the real binaries is
 * test_codegen_parity's job. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <cmocka.h>
#include <llvm-c/Support.h>

#include "codegen.h"
#include "convplan.h"
#include "interp.h"
#include "memplan.h"
#include "model.h"
#include "pipeline.h"
#include "sc_parallel.h"
#include "sc_profile.h"
#include "sc_rng.h"
#include "spec_files.h"
#include "torchvision.h"

#define TOL 1e-8
#define THREADS 2

typedef void (*step_fn)(const double *, double *, double *, double *, const double *, double *);
typedef void (*encode_fn)(const double *, const double *, double *, const double *, double *);

static double max_abs(const double *a, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* |got - want| <= TOL * max|want| (with a floor for all-zero tensors). */
static void compare(const char *model, const char *what, const double *got, const double *want, long n)
{
    /* The floor covers gradients that are mathematically zero (a bias
     * before batchnorm): both sides then hold rounding noise, ~1e-16. */
    double scale = fmax(max_abs(want, n), 1e-6), err = 0;
    for (long i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            fail_msg("%s: %s[%ld] is %g", model, what, i, got[i]);
        err = fmax(err, fabs(got[i] - want[i]));
    }
    if (err > TOL * scale)
        fail_msg("%s: %s: max |compiled - interpreter| = %.3g, max |interpreter| = %.3g", model, what, err, scale);
}

/* Fills the interpreter's parameters (seeded) and inputs; labels, if the
 * graph has them, are classes drawn after the images. */
static void seed_inputs(sc_interp *it, unsigned long long seed)
{
    const sc_graph *g = it->g;
    sc_interp_init_params(it, seed);
    sc_rng r;
    sc_rng_seed(&r, seed, SC_STREAM_INPUT);
    for (long i = 0; i < g->t[g->input].numel; i++)
        it->buf[g->input][i] = (float)sc_rng_normal(&r);
    if (g->labels >= 0) {
        long classes = g->t[g->n[g->t[g->loss].producer].in[0]].shape[1];
        for (long i = 0; i < g->t[g->labels].numel; i++)
            it->buf[g->labels][i] = (double)sc_rng_below(&r, (uint64_t)classes);
    }
}

/* Copies every parameter and buffer of the interpreter into the flat
 * buffers at the plan's offsets (or back, when to_interp). */
static void exchange(sc_interp *it, const sc_memplan *mp, double *params, double *buffers, int to_interp)
{
    const sc_graph *g = it->g;
    for (int pass = 0; pass < 2; pass++) {
        const int *list = pass ? g->buffers : g->params;
        int n = pass ? g->nbuffers : g->nparams;
        double *flat = pass ? buffers : params;
        for (int i = 0; i < n; i++) {
            int t = list[i];
            double *f = flat + mp->offset[t];
            if (to_interp)
                memcpy(it->buf[t], f, (size_t)g->t[t].numel * sizeof(double));
            else
                memcpy(f, it->buf[t], (size_t)g->t[t].numel * sizeof(double));
        }
    }
}

static void copy_input(sc_interp *it, double *input)
{
    const sc_graph *g = it->g;
    long n = g->t[g->input].numel;
    memcpy(input, it->buf[g->input], (size_t)n * sizeof(double));
    if (g->labels >= 0)
        memcpy(input + n, it->buf[g->labels], (size_t)g->t[g->labels].numel * sizeof(double));
}

/* Runs a training graph (SimCLR or fine-tuning) both ways and compares
 * loss, gradients and updated buffers. */
static int pool_grads_seen; /* max pools' data gradients compared */

/* Whether tensor t's arena storage still holds it after the step: no
 * tensor or workspace of a later node overlaps it. */
static int survives(const sc_graph *g, const sc_memplan *mp, int t)
{
    int64_t lo = mp->offset[t], hi = lo + g->t[t].numel;
    for (int u = 0; u < g->nt; u++)
        if (u != t && mp->region[u] == SC_REG_ARENA && mp->first[u] > mp->first[t] && mp->offset[u] < hi &&
            mp->offset[u] + g->t[u].numel > lo)
            return 0;
    for (int j = mp->first[t] + 1; j < g->nn; j++)
        if (mp->ws_floats[j] > 0 && mp->ws_offset[j] < hi && mp->ws_offset[j] + mp->ws_floats[j] > lo)
            return 0;
    return 1;
}

/* A max pool's data gradient, where its storage survives the step: the
 * parameters' gradients cannot tell which of equal inputs took the
 * gradient (equal values come from equal receptive fields, or from ReLU
 * zeros whose gradient is dropped), this can. Returns how many it saw. */
static int check_pool_grads(const char *model, const char *label, const sc_graph *g, const sc_memplan *mp,
                            const double *arena, const sc_interp *it)
{
    int seen = 0;
    for (int i = 0; i < g->nn; i++) {
        int t = g->n[i].out[0];
        if (g->n[i].op != SC_OP_MAXPOOL_BWD || mp->region[t] != SC_REG_ARENA || !survives(g, mp, t))
            continue;
        char what[SC_NAME_MAX + 32];
        snprintf(what, sizeof what, "%s %s", label, g->t[t].name);
        compare(model, what, arena + mp->offset[t], it->buf[t], g->t[t].numel);
        seen++;
    }
    return seen;
}

static void check_training(const char *model, const char *label, const sc_graph *g, const sc_memplan *mp,
                           step_fn fn, int64_t params_floats, int64_t buffers_floats, unsigned long long seed)
{
    sc_interp it;
    assert_int_equal(sc_interp_init(&it, g), 0);
    seed_inputs(&it, seed);
    double *params = calloc((size_t)params_floats + 1, sizeof(double));
    double *grads = calloc((size_t)params_floats + 1, sizeof(double));
    double *buffers = calloc((size_t)buffers_floats + 1, sizeof(double));
    double *arena = calloc((size_t)mp->arena_floats + 1, sizeof(double));
    long nin = g->t[g->input].numel + (g->labels >= 0 ? g->t[g->labels].numel : 0);
    double *input = calloc((size_t)nin, sizeof(double));
    double loss = 0;
    assert_non_null(params && grads && buffers && arena && input);
    exchange(&it, mp, params, buffers, 0);
    copy_input(&it, input);

    sc_interp_run(&it, 0, g->nn);
    fn(params, grads, buffers, arena, input, &loss);

    char what[SC_NAME_MAX + 32];
    snprintf(what, sizeof what, "%s loss", label);
    compare(model, what, &loss, it.buf[g->loss], 1);
    for (int p = 0; p < g->nparams; p++) {
        const sc_tensor *t = &g->t[g->params[p]];
        if (t->grad < 0)
            continue; /* not part of this graph's loss (the head, when fine-tuning) */
        snprintf(what, sizeof what, "%s grad/%s", label, t->name);
        compare(model, what, grads + mp->offset[t->grad], it.buf[t->grad], t->numel);
    }
    pool_grads_seen += check_pool_grads(model, label, g, mp, arena, &it);
    for (int b = 0; b < g->nbuffers; b++) {
        const sc_tensor *t = &g->t[g->buffers[b]];
        snprintf(what, sizeof what, "%s %s after the step", label, t->name);
        compare(model, what, buffers + mp->offset[g->buffers[b]], it.buf[g->buffers[b]], t->numel);
    }
    free(params);
    free(grads);
    free(buffers);
    free(arena);
    free(input);
    sc_interp_free(&it);
}

/* The eval-mode encoder, with running statistics made non-trivial. */
static void check_encoder(const char *model, const sc_graph *g, const sc_memplan *mp, encode_fn fn,
                          int64_t params_floats, int64_t buffers_floats)
{
    sc_interp it;
    assert_int_equal(sc_interp_init(&it, g), 0);
    seed_inputs(&it, 99);
    sc_rng r;
    sc_rng_seed(&r, 5, 77);
    for (int b = 0; b < g->nbuffers; b++) /* means around 0, variances around 1 */
        for (long k = 0; k < g->t[g->buffers[b]].numel; k++)
            it.buf[g->buffers[b]][k] = strstr(g->t[g->buffers[b]].name, "running_var")
                                           ? 0.5 + sc_rng_uniform(&r)
                                           : 0.2 * sc_rng_normal(&r);
    double *params = calloc((size_t)params_floats + 1, sizeof(double));
    double *buffers = calloc((size_t)buffers_floats + 1, sizeof(double));
    double *arena = calloc((size_t)mp->arena_floats + 1, sizeof(double));
    double *input = calloc((size_t)g->t[g->input].numel, sizeof(double));
    double *features = calloc((size_t)g->t[g->features].numel, sizeof(double));
    assert_non_null(params && buffers && arena && input && features);
    exchange(&it, mp, params, buffers, 0);
    copy_input(&it, input);
    sc_interp_run(&it, 0, g->nn);
    fn(params, buffers, arena, input, features);
    compare(model, "encoder features", features, it.buf[g->features], g->t[g->features].numel);
    free(params);
    free(buffers);
    free(arena);
    free(input);
    free(features);
    sc_interp_free(&it);
}

/* full: also the encoder and the fine-tuning step (the specs check all
 * three; the big models only the SimCLR step, to keep the suite fast). */
/* Convolution algorithms (convplan.h): the default (im2col), or every
 * legal convolution by shifted GEMMs, so each is checked on the specs' odd
 * shapes; the models run with the shift policy's cost model, which mixes
 * the two. */
static int conv_policy = SC_CONV_SHIFT_POLICY;
static int fuse_stats; /* --fuse-stats: batchnorm statistics from conv2d+stats */

/* The JIT's sc_model, read through the C declaration of sc_abi.h: each
 * table row is its tensor (name, shape, place, role, torchvision key). */
static void check_table(const char *model, const sc_graph *g, const sc_memplan *mp, const sc_param_info *rows,
                        const int *list, int n, int s0)
{
    for (int i = 0; i < n; i++) {
        const sc_tensor *t = &g->t[list[i]];
        const sc_param_info *r = &rows[i];
        char key[2 * SC_NAME_MAX];
        if (strcmp(r->name, t->name) || r->ndim != t->ndim || r->numel != t->numel ||
            r->offset != mp->offset[list[i]] || r->role != (int32_t)t->role || r->no_decay != t->no_decay)
            fail_msg("%s: table row %d (%s) is not tensor %s", model, i, r->name, t->name);
        for (int d = 0; d < t->ndim; d++)
            assert_int_equal(r->shape[d], t->shape[d]);
        int has = t->role == SC_ROLE_ENCODER && !sc_torchvision_key(t->name, s0, key, sizeof key);
        if (has ? !r->export_name || strcmp(r->export_name, key) : r->export_name != NULL)
            fail_msg("%s: %s has export name %s", model, t->name, r->export_name ? r->export_name : "NULL");
    }
}

static void check_description(const char *model, const sc_spec *m, const sc_compiled *cp, const sc_model_desc *d)
{
    int s0 = sc_torchvision_stage0(m, &cp->g);
    assert_int_equal(d->abi_version, SC_ABI_VERSION);
    assert_int_equal(d->nparams, cp->g.nparams);
    assert_int_equal(d->nbuffers, cp->g.nbuffers);
    assert_int_equal(d->nft_params, cp->ft.nparams);
    assert_int_equal(d->nstep_nodes, cp->g.nn);
    assert_int_equal(d->params_floats, cp->smp.params_floats);
    assert_int_equal(d->ft_params_floats, cp->fmp.params_floats);
    assert_int_equal(d->train.epochs, m->train.epochs);
    assert_int_equal(d->train.seed, m->train.seed);
    assert_int_equal(d->naugs, m->naugs);
    for (int i = 0; i < m->naugs; i++)
        assert_true(d->augs[i].kind == (int32_t)m->augs[i].kind && d->augs[i].std[2] == m->augs[i].std[2]);
    assert_string_equal(d->step_nodes[cp->g.nn - 1].op, sc_op_name(cp->g.n[cp->g.nn - 1].op));
    check_table(model, &cp->g, &cp->smp, d->params, cp->g.params, cp->g.nparams, s0);
    check_table(model, &cp->g, &cp->smp, d->buffers, cp->g.buffers, cp->g.nbuffers, s0);
    check_table(model, &cp->ft, &cp->fmp, d->ft_params, cp->ft.params, cp->ft.nparams, s0);
}

static void check_file(const char *path, int batch, int full)
{
    const char *model = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    sc_spec m;
    assert_int_equal(sc_model_load(path, &m), 0);
    /* The driver's passes; planned and run on two threads, so the split
     * loops and the per-thread partial sums are checked too. */
    sc_passes_opts po = {.batch = batch, .classes = 10, .fuse = 1, .fuse_stats = fuse_stats, .last = SC_PASS_MEMPLAN,
                         .plan = {.threads = THREADS, .conv = conv_policy}};
    sc_compiled cp;
    assert_int_equal(sc_passes_run(&m, &po, &cp), 0);
    const sc_memplan *smp = &cp.smp, *fmp = &cp.fmp;

    char err[1024];
    sc_codegen_options o = {.opt_level = 2, .double_precision = 1};
    sc_codegen *cg = sc_codegen_new(&o, err, sizeof err);
    if (!cg)
        fail_msg("%s", err);
    sc_planned ps = {&cp.g, smp}, pe = {&cp.enc, &cp.emp}, pf = {&cp.ft, fmp};
    if (sc_codegen_module(cg, &m, &ps, &pe, &pf, err, sizeof err) || sc_codegen_optimize(cg, err, sizeof err))
        fail_msg("%s: %s", model, err);
    step_fn step = (step_fn)sc_codegen_jit(cg, "sc_step", err, sizeof err);
    encode_fn encode = (encode_fn)sc_codegen_jit(cg, "sc_encode", err, sizeof err);
    step_fn finetune = (step_fn)sc_codegen_jit(cg, "sc_finetune_step", err, sizeof err);
    const sc_model_desc *desc = sc_codegen_jit(cg, "sc_model", err, sizeof err);
    if (!step || !encode || !finetune || !desc)
        fail_msg("%s: %s", model, err);
    check_description(model, &m, &cp, desc);

    /* The fine-tuning layout extends the SimCLR one, so its sizes serve all. */
    assert_true(fmp->params_floats >= smp->params_floats);
    check_training(model, "simclr", &cp.g, smp, step, fmp->params_floats, smp->buffers_floats, 3);
    if (full) {
        check_encoder(model, &cp.enc, &cp.emp, encode, fmp->params_floats, smp->buffers_floats);
        check_training(model, "finetune", &cp.ft, fmp, finetune, fmp->params_floats, smp->buffers_floats, 4);
    }

    sc_codegen_free(cg);
    sc_compiled_free(&cp);
    sc_model_free(&m);
}

static void check_timed(const char *path, const char *name, void *ctx)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    check_file(path, *(const int *)ctx, 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("  %-32s %6.2f s\n", name, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
}

/* Every .xml in a directory, at the given batch (0: the file's own). */
static void check_dir(const char *sub, int batch)
{
    assert_true(sc_for_each_spec(sub, check_timed, &batch) >= 5);
}

static void test_specs(void **state)
{
    (void)state;
    conv_policy = SC_CONV_SHIFT_POLICY;
    pool_grads_seen = 0;
    check_dir("tests/specs", 0);
    assert_true(pool_grads_seen > 0); /* tests/specs/maxpool-ties.xml has some */
}

/* Under the sanitizers the two passes below, which run the same compiler
 * and runtime paths with other convolution plans, are left to the plain
 * build: the three passes over tests/specs took over CI's 600 s limit in
 * the ASan build once the generated GEMM kernels and the objective specs
 * came in (the plain build: 160 s on a loaded machine). */
static int sanitizer_skip(const char *pass)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
    printf("  sanitizer build: the %s pass is left to the plain build\n", pass);
    return 1;
#else
    (void)pass;
    return 0;
#endif
}

static void test_specs_im2col(void **state)
{
    (void)state;
    if (sanitizer_skip("im2col"))
        return;
    conv_policy = SC_CONV_IM2COL_POLICY;
    check_dir("tests/specs", 0);
}

static void test_specs_shift(void **state)
{
    (void)state;
    if (sanitizer_skip("forced-shift"))
        return;
    conv_policy = SC_CONV_FORCE_SHIFT;
    check_dir("tests/specs", 0);
}

/* With --fuse-stats: the specs whose convolutions feed batchnorms through
 * every plan: implicit-gemm at strides 1 and 2 with odd sizes and chunks
 * of several images (conv-edges, residual), gemm-1x1 (bottleneck),
 * im2col+gemm grouped and dilated (grouped), shift+gemm (residual, forced),
 * winograd F(2,3) with a bias (winograd), F(3,3) and F(4,3) (winograd-tiles). */
static void test_specs_fuse_stats(void **state)
{
    (void)state;
    static const char *const specs[] = {"conv-edges.xml", "residual.xml", "bottleneck.xml", "grouped.xml",
                                        "winograd.xml", "winograd-tiles.xml"};
    const char *src = getenv("SC_SOURCE_DIR");
    assert_non_null(src);
    char path[4096];
    int batch = 0;
    fuse_stats = 1;
    for (int policy = 0; policy < 2; policy++) {
        conv_policy = policy ? SC_CONV_FORCE_SHIFT : SC_CONV_SHIFT_POLICY;
        for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
            if (policy && strcmp(specs[k], "residual.xml"))
                continue;
            snprintf(path, sizeof path, "%s/tests/specs/%s", src, specs[k]);
            check_timed(path, specs[k], &batch);
        }
    }
    fuse_stats = 0;
    conv_policy = SC_CONV_SHIFT_POLICY;
}

/* One shipped model (argv), SimCLR step at batch 2: CTest runs one test
 * per model so that they spread over the cores. */
static const char *model_path;

static void test_model(void **state)
{
    (void)state;
    check_file(model_path, 2, 0);
}

int main(int argc, char **argv)
{
    /* The JIT finds symbols of loaded libraries only if the process
     * references them; register the BLAS routines generated code calls. */
    LLVMAddSymbol("cblas_dgemm", (void *)cblas_dgemm);
    LLVMAddSymbol("cblas_sgemm", (void *)cblas_sgemm);
    /* libm's erf, which gelu's kernels call */
    LLVMAddSymbol("erf", (void *)erf);
    /* and the runtime's thread pool and profiler hooks */
    LLVMAddSymbol("sc_parallel_for", (void *)sc_parallel_for);
    LLVMAddSymbol("sc_threads", (void *)sc_threads);
    LLVMAddSymbol("sc_prof_on", (void *)&sc_prof_on);
    LLVMAddSymbol("sc_prof_node", (void *)sc_prof_node);
    if (sc_threads_set(THREADS) != THREADS)
        return 1;
    if (argc > 1) {
        model_path = argv[1];
        const struct CMUnitTest one[] = {cmocka_unit_test(test_model)};
        return cmocka_run_group_tests(one, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specs),
        cmocka_unit_test(test_specs_im2col),
        cmocka_unit_test(test_specs_shift),
        cmocka_unit_test(test_specs_fuse_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
