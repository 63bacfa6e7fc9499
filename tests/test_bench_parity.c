/* test_bench_parity: the benchmark's binary, checked at the benchmark's
 * shape. models/resnet18-stl10.xml compiled as bench/step_bench.sh
 * compiles it (`simclrc --batch 32`, float32, the machine's threads), so
 * that the batch decides the GEMM chunks exactly as in the benchmark (8 and
 * 32 images per GEMM in the last stages); its `dump-step` against
 * tests/torch_step.py's float64 step on the same parameters and input (the
 * interpreter would take minutes at this size; test_torch_parity and
 * test_codegen_jit tie it to float64 PyTorch).
 *
 * The input stays 96x96: at a reduced 64x64 the compiled step (seed 1)
 * showed a float32 effect of 7e-3 relative L2 in the gradients of layer2's
 * first block and everything upstream, where PyTorch float32 showed none
 * (5e-6), though double-precision generated code at that shape matched the
 * interpreter (test_codegen_jit's check at batch 32) -- a bound tied to
 * PyTorch float32 cannot cover a float32 effect PyTorch does not have; at
 * 96x96 both have their own (ReLU near-ties in the last stage).
 *
 * At this size float32 flips ReLU and max-pool near-ties (any
 * implementation, in its own places), so single elements of a gradient can
 * be off by percents while the tensor as a whole is close. The bounds are
 * therefore taken from PyTorch's own float32 step on the same inputs,
 * measured in the same run:
 * - every gradient's relative L2 error, ||g - ref|| / ||ref||, within
 *   max(L2_K x PyTorch float32's on that tensor, L2_FLOOR);
 * - the worst element of any gradient (relative to that tensor's largest
 *   magnitude) within MAX_K x PyTorch float32's worst, or MAX_FLOOR;
 * - every gradient's scale error, <g - ref, ref> / <ref, ref>, within
 *   SCALE_K x PyTorch float32's worst (over all gradients), or
 *   SCALE_FLOOR. Near-tie flips scatter errors that hardly project on the
 *   reference, while a kernel that scales its result by 1 + e gives e:
 *   the L2 bound, loose where PyTorch float32 flips, misses a 1% scale
 *   that this one catches;
 * - the loss within LOSS_TOL (relative).
 * The figures behind each constant (AMD EPYC Zen 5, seed 1) are beside
 * it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sc_safetensors.h"
#include "test_util.h"

#define BATCH "32"
#define SEED "1"
/* Relative L2: compiled worst 3.8e-3, PyTorch float32 worst 4.7e-3; the
 * largest ratio on one tensor 1.57 (head.2.bias, 5.8e-6 against 3.7e-6).
 * Tensors with no near-tie upstream: compiled at most 8.2e-6. */
#define L2_K 4.0
#define L2_FLOOR 8e-5
/* Worst element: compiled 3.4e-2, PyTorch float32 8.0e-2. */
#define MAX_K 2.0
#define MAX_FLOOR 1e-4
/* Scale error: compiled worst 7.5e-4, PyTorch float32 worst 8.0e-4 (both
 * on 64-element batchnorm gradients); a 1% scale gives 1e-2. */
#define SCALE_K 2.0
#define SCALE_FLOOR 1e-4
/* Loss: compiled 0, PyTorch float32 1.1e-7. */
#define LOSS_TOL 1e-6

static float at(const sc_st_tensor *t, size_t i)
{
    float v;
    memcpy(&v, (const char *)t->data + i * sizeof v, sizeof v);   /* may be unaligned */
    return v;
}

typedef struct {
    double l2, max;   /* relative L2 error, worst element over max|ref| */
    double scale;     /* <a - ref, ref> / <ref, ref> */
    int finite;
} error;

/* a against ref, both F32 of one shape (checked by the caller). */
static error measure(const sc_st_tensor *a, const sc_st_tensor *ref)
{
    error e = {0, 0, 0, 1};
    double dd = 0, rr = 0, dr = 0, md = 0, mr = 0;
    for (size_t i = 0; i < ref->nbytes / sizeof(float); i++) {
        double x = at(a, i), y = at(ref, i);
        if (!isfinite(x) || !isfinite(y))
            e.finite = 0;
        dd += (x - y) * (x - y);
        dr += (x - y) * y;
        rr += y * y;
        md = fmax(md, fabs(x - y));
        mr = fmax(mr, fabs(y));
    }
    e.l2 = rr > 0 ? sqrt(dd / rr) : sqrt(dd);
    e.scale = rr > 0 ? dr / rr : 0;
    e.max = mr > 0 ? md / mr : md;
    return e;
}

static const sc_st_tensor *get(const sc_st_file *f, const char *name, const char *what)
{
    const sc_st_tensor *t = sc_st_get(f, name);
    if (!t || strcmp(t->dtype, "F32"))
        print_error("%s is missing from the %s or not F32\n", name, what);
    return t;
}

static int same_shape(const sc_st_tensor *a, const sc_st_tensor *b)
{
    if (a->ndim != b->ndim || a->nbytes != b->nbytes)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return 1;
}

/* Compares the compiled dump c and PyTorch's float32 step t32 with the
 * float64 step r; returns the number of failures. */
static int compare(const sc_st_file *c, const sc_st_file *r, const sc_st_file *t32)
{
    int bad = 0, ngrads = 0;
    double worst_ratio = 0, c_l2 = 0, t_l2 = 0, c_max = 0, t_max = 0, c_scale = 0, t_scale = 0;
    char worst_ratio_name[300] = "", c_max_name[300] = "", c_scale_name[300] = "";
    for (int i = 0; i < r->n; i++) {
        const char *name = r->t[i].name;
        int loss = !strcmp(name, "loss");
        if (!loss && strncmp(name, "grad/", 5))
            continue;
        const sc_st_tensor *x = get(c, name, "compiled dump"), *y = &r->t[i], *z = get(t32, name, "float32 step");
        if (!x || !z || !same_shape(x, y) || !same_shape(z, y)) {
            print_error("%s: missing or of another shape\n", name);
            bad++;
            continue;
        }
        error ec = measure(x, y), et = measure(z, y);
        if (!ec.finite || !et.finite) {
            print_error("%s: not finite (compiled %d, PyTorch float32 %d)\n", name, !ec.finite, !et.finite);
            bad++;
            continue;
        }
        if (loss) {
            print_message("loss: relative error %.3g (PyTorch float32 %.3g), bound %g\n", ec.max, et.max, LOSS_TOL);
            if (!(ec.max <= LOSS_TOL)) {
                print_error("loss: relative error %.3g > %g\n", ec.max, LOSS_TOL);
                bad++;
            }
            continue;
        }
        ngrads++;
        double bound = fmax(L2_K * et.l2, L2_FLOOR);
        if (!(ec.l2 <= bound)) {
            print_error("%s: relative L2 error %.3g > %.3g (PyTorch float32 %.3g)\n", name, ec.l2, bound, et.l2);
            bad++;
        }
        if (ec.l2 / fmax(et.l2, 1e-30) > worst_ratio) {
            worst_ratio = ec.l2 / fmax(et.l2, 1e-30);
            snprintf(worst_ratio_name, sizeof worst_ratio_name, "%s (%.3g against %.3g)", name + 5, ec.l2, et.l2);
        }
        c_l2 = fmax(c_l2, ec.l2);
        t_l2 = fmax(t_l2, et.l2);
        if (ec.max > c_max) {
            c_max = ec.max;
            snprintf(c_max_name, sizeof c_max_name, "%s", name + 5);
        }
        t_max = fmax(t_max, et.max);
        if (fabs(ec.scale) > c_scale) {
            c_scale = fabs(ec.scale);
            snprintf(c_scale_name, sizeof c_scale_name, "%s", name + 5);
        }
        t_scale = fmax(t_scale, fabs(et.scale));
    }
    double max_bound = fmax(MAX_K * t_max, MAX_FLOOR);
    print_message("%d gradients; relative L2 error: compiled worst %.3g, PyTorch float32 worst %.3g; "
                  "largest ratio %s\n", ngrads, c_l2, t_l2, worst_ratio_name);
    print_message("worst element (of max|ref|): compiled %.3g (%s), PyTorch float32 %.3g; bound %.3g\n", c_max,
                  c_max_name, t_max, max_bound);
    double scale_bound = fmax(SCALE_K * t_scale, SCALE_FLOOR);
    print_message("scale error: compiled worst %.3g (%s), PyTorch float32 %.3g; bound %.3g\n", c_scale,
                  c_scale_name, t_scale, scale_bound);
    if (!(c_scale <= scale_bound)) {
        print_error("scale error %.3g in %s > %.3g\n", c_scale, c_scale_name, scale_bound);
        bad++;
    }
    if (!(c_max <= max_bound)) {
        print_error("worst element %.3g in %s > %.3g\n", c_max, c_max_name, max_bound);
        bad++;
    }
    if (ngrads < 64) {
        print_error("only %d gradients in the float64 step (ResNet-18 has 64)\n", ngrads);
        bad++;
    }
    return bad;
}

static void test_bench_shape(void **state)
{
    (void)state;
    const char *src = getenv("SC_SOURCE_DIR"), *simclrc = getenv("SIMCLRC"), *python = getenv("SC_PYTHON");
    if (!src || !simclrc || !python)
        fail_msg("SC_SOURCE_DIR, SIMCLRC and SC_PYTHON must be set (run through ctest)");
    char *dir = test_tmpdir("bench_parity");
    assert_non_null(dir);
    char *model = xprintf("%s/models/resnet18-stl10.xml", src), *script = xprintf("%s/tests/torch_step.py", src),
         *bin = xprintf("%s/bin", dir), *dump = xprintf("%s/compiled.st", dir), *r64 = xprintf("%s/f64.st", dir),
         *r32 = xprintf("%s/f32.st", dir), *list = xprintf("%s/jobs.txt", dir), *log = xprintf("%s/log", dir);
    assert_true(model && script && bin && dump && r64 && r32 && list && log);

    char *cargv[] = {(char *)simclrc, "--emit=exe", "--batch=" BATCH, "-o", bin, model, NULL};
    char *dargv[] = {bin, "dump-step", dump, "--seed", SEED, NULL};
    char *targv[] = {(char *)python, script, "--double", "--batch-file", list, NULL};
    const char *failed = NULL;
    int rc = run_log(cargv, log);
    if (rc)
        failed = "simclrc --emit=exe";
    else if ((rc = run_log(dargv, log)))
        failed = "dump-step";
    if (!failed) {
        FILE *f = fopen(list, "w");
        rc = !f || fprintf(f, "%s\t%s\t%s\t%s\n", model, dump, r64, r32) < 0;
        rc |= f && fclose(f);
        if (rc || (rc = run_log(targv, log)))
            failed = "torch_step.py";
    }
    sc_st_file c, r, t;
    char err[512] = "";
    int have = 0;
    if (!failed) {
        if (sc_st_read(dump, &c, err, sizeof err) == 0) {
            have = 1;
            if (sc_st_read(r64, &r, err, sizeof err) == 0) {
                have = 2;
                if (sc_st_read(r32, &t, err, sizeof err) == 0)
                    have = 3;
            }
        }
    }
    int bad = have == 3 ? compare(&c, &r, &t) : 0;
    if (have >= 1)
        sc_st_free(&c);
    if (have >= 2)
        sc_st_free(&r);
    if (have >= 3)
        sc_st_free(&t);
    if (failed || have < 3) {
        char *out = slurp(log);
        print_error("---- output ----\n%s---- end ----\n", out ? out : "");
        free(out);
    }
    const char *keep = getenv("SC_KEEP_TMP");
    if (keep)
        print_message("files kept in %s\n", dir);
    else {
        char *files[] = {bin, dump, r64, r32, list, log};
        for (size_t i = 0; i < sizeof files / sizeof *files; i++)
            unlink(files[i]);
        rmdir(dir);
    }
    char *all[] = {dir, model, script, bin, dump, r64, r32, list, log};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    if (failed)
        fail_msg("%s failed (exit status %d)", failed, rc);
    if (have < 3)
        fail_msg("cannot read a dump: %s", err);
    if (bad)
        fail_msg("the batch-%s float32 step does not match float64 PyTorch (%d failures)", BATCH, bad);
}

int main(void)
{
#ifdef __SANITIZE_ADDRESS__
    /* The sanitizers watch the compiler and the runtime, whose paths
     * test_codegen_parity's resnet-small already takes; this size would
     * only spend the time budget in instrumented code. */
    fprintf(stderr, "test_bench_parity: sanitizer build: skipped (left to the plain build)\n");
    return 77;
#endif
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bench_shape)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
