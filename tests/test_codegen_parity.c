/* test_codegen_parity: the compiled training step against the reference
 * interpreter and PyTorch, plus the compiler's and the training binary's
 * command lines.
 *
 * For every spec in tests/specs (at its own batch) and every shipped model
 * in models/ (at batch 2, the interpreter being slow), the test compiles a
 * training binary (`simclrc --emit=exe`), runs `BINARY dump-step`, and runs
 * `simclrc --emit=step-dump` with the same seed and batch ("step" tests).
 * Parameters and input must be bit-identical (same initialisation, same
 * RNG), the loss within GRAD_TOL. Then tests/torch_step.py recomputes the
 * step from the compiled dump in PyTorch, in float64 and in float32
 * ("grads" tests): every gradient of the compiled (float32) step must be
 * within GRAD_TOL of each tensor's largest magnitude, against the
 * interpreter (double) and against float64 PyTorch; the batchnorm running
 * statistics after the step within STATS_TOL of float64 PyTorch.
 *
 * Float32 itself: a ReLU input or a max-pool gap within float rounding of
 * a tie can go the other way in float32, which reroutes gradient upstream;
 * which ties flip depends on the rounding (the seed, the GEMM kernels), so
 * no seed is chosen to avoid them. Where a gradient misses GRAD_TOL, the
 * test generates the same step in float32 in memory, records every ReLU and
 * max-pool decision it takes, and reruns the interpreter in float64 with
 * those decisions imposed (f32_decisions.h): every gradient of the binary
 * must then be within GRAD_TOL of that reference, every flipped decision
 * must be a near-tie (margin within the float32 error the same step shows
 * on the ReLU inputs it kept), and the interpreter within GRAD_TOL of
 * float64 PyTorch. Each model's line gives the flips, their worst margin
 * and the float32 error (resnet18-stl10 at seed 1: one flip in
 * encoder.4.0.relu1, margin 1.2e-7 of the tensor's largest value, errors up
 * to 6.1e-6; with it imposed the worst gradient is 1.1e-5 off, against
 * 8.2e-3 without). Float32 PyTorch's own distance from float64 is printed
 * for every model.
 *
 * Scale floor: a gradient that is mathematically zero (a bias right before
 * a batchnorm) is float rounding noise, about 1e-7 of the gradients that
 * feed it, in the compiled code, and 1e-16 in the double interpreter; its
 * own largest magnitude means nothing. A tensor's scale is therefore at
 * least 1e-3 of the largest gradient in the reference dump.
 *
 * ResNet-50 at batch 2 is compared forward only (loss, running
 * statistics): its 36-sample batchnorms over 50 layers leave float32
 * activations far enough from double that PyTorch float32 itself misses the
 * float64 gradients by 0.26 (encoder.7.0.downsample.0.weight; printed by
 * every run): the float32 values themselves, not its decisions, are that
 * far off. (test_codegen_jit compares the same generated code in
 * double precision, where nothing is in doubt, for every gradient of every
 * model.)
 *
 * SC_PARITY_SEED shifts every seed; SC_KEEP_TMP keeps the files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <cblas.h>

#include "spec_files.h"
#include "test_util.h"
#include "test_skip.h"

#include "convplan.h"
#include "f32_decisions.h"
#include "sc_blascore.h"
#include "sc_safetensors.h"

/* Relative to max(max|reference|, scale floor); the worst error measured
 * (AMD EPYC Zen 5, default run) beside each. */
#define GRAD_TOL 1e-4      /* loss, gradients: worst enforced 1.7e-5 (head-batchnorm's
                              head.3.bias, against the floor), else 1.1e-5
                              (resnet18-stl10's encoder.6.0.bn2.bias); ResNet-50's
                              loss 1.2e-5 */
#define STATS_TOL 1e-4     /* running statistics: worst 1.9e-5 (ResNet-50), else 1.1e-6 */
#define FLOOR_REL 1e-3
#define SHIPPED_BATCH 2
/* The shipped models' seed: flips are checked, not avoided (above).
 * Swept by hand with SC_PARITY_SEED: resnet18-stl10 seed 1, one ReLU flip
 * (encoder.4.0.relu1, margin 1.2e-7), passes; seed 2, no gradient misses;
 * seed 3, one flip (encoder.5.1.relu1, margin 7.6e-8; 26 of 64 gradients
 * miss float64 without it imposed), passes. */
#define SHIPPED_SEED 1


/* Models whose gradients float32 cannot reproduce (see above). */
static const char *const forward_only[] = {"resnet50-stl10.xml"};

/* Shipped models left to test_codegen_jit (every gradient, in double):
 * BYOL's resnet18-stl10 adds no code path here that tests/specs/byol.xml
 * (the objective, target network included) and resnet18-stl10.xml (the
 * encoder) miss, but a minute of interpreter time; and at batch 2 its
 * 4-sample batchnorms in 4096-wide heads leave float32 up to 2.0e-4 from
 * float64 (head.3.weight, measured), where PyTorch float32 itself misses
 * by 1.1e-4 (predictor.3.weight). */
static const char *const left_to_jit[] = {"resnet18-stl10-byol.xml", "resnet18-stl10-barlow.xml",
                                           "resnet18-stl10-vicreg.xml"};

typedef struct {
    char *spec, *label;
    char *bin, *cdump, *idump, *ref, *ref32, *imposed, *log;
    char *tune, *tune_opt; /* --tune: the table the binary saves (--tune-table), or NULL */
    int batch;           /* 0: the spec's own */
    unsigned seed;
    int grads;           /* compare gradients */
    int dumped;          /* both dumps exist */
    const char *cflag;   /* an extra compiler option, or NULL */
} job;

static job *jobs;
static int njobs;
static char *tmpdir;
static const char *simclrc, *python, *srcdir;
static int torch_ran;    /* 0 not yet, 1 ran */
static int torch_status;

/* ---- running programs ---- */


static void show_log(const char *log)
{
    char *s = slurp(log);
    if (s && *s)
        print_error("---- output ----\n%s---- end ----\n", s);
    free(s);
}

/* ---- the job list ---- */


static int add_job(const char *spec, int batch, unsigned seed, const char *cflag)
{
    job *j = realloc(jobs, sizeof *jobs * (size_t)(njobs + 1));
    if (!j)
        return -1;
    jobs = j;
    j = &jobs[njobs];
    memset(j, 0, sizeof *j);
    const char *base = strrchr(spec, '/');
    base = base ? base + 1 : spec;
    int k = njobs++;
    j->spec = xprintf("%s", spec);
    j->label = xprintf("%s%s%s", base, cflag ? " " : "", cflag ? cflag : "");
    j->cflag = cflag;
    j->bin = xprintf("%s/%d.bin", tmpdir, k);
    j->cdump = xprintf("%s/%d.compiled.st", tmpdir, k);
    j->idump = xprintf("%s/%d.interp.st", tmpdir, k);
    j->ref = xprintf("%s/%d.torch.st", tmpdir, k);
    j->ref32 = xprintf("%s/%d.torch32.st", tmpdir, k);
    j->imposed = xprintf("%s/%d.imposed.st", tmpdir, k);
    j->log = xprintf("%s/%d.log", tmpdir, k);
    if (cflag && !strcmp(cflag, "--tune")) {
        j->tune = xprintf("%s/%d.tune.csv", tmpdir, k);
        j->tune_opt = j->tune ? xprintf("--tune-table=%s", j->tune) : NULL;
        if (!j->tune_opt)
            return -1;
    }
    j->batch = batch;
    j->seed = seed;
    j->grads = 1;
    for (size_t i = 0; i < sizeof forward_only / sizeof *forward_only; i++)
        if (!strcmp(base, forward_only[i]))
            j->grads = 0;
    return j->spec && j->label && j->bin && j->cdump && j->idump && j->ref && j->ref32 && j->imposed && j->log ? 0 : -1;
}

static int setup_jobs(void)
{
    /* SC_PARITY_SEED shifts every seed, to sweep seeds by hand. */
    const char *shift_env = getenv("SC_PARITY_SEED");
    unsigned shift = shift_env ? (unsigned)strtoul(shift_env, NULL, 10) : 0;
    int rc = 0, nspecs = 0, nmodels = 0;
    char *specdir = xprintf("%s/tests/specs", srcdir), *modeldir = xprintf("%s/models", srcdir);
    char **specs = specdir ? sc_spec_list(specdir, &nspecs) : NULL;
    char **models = modeldir ? sc_spec_list(modeldir, &nmodels) : NULL;
    if (!specs || !models || nspecs < 6) {
        fprintf(stderr, "test_codegen_parity: expected at least 6 specs in %s and the models in %s\n",
                specdir ? specdir : "tests/specs", modeldir ? modeldir : "models");
        rc = -1;
    }
    for (int i = 0; !rc && i < nspecs; i++)
        rc = add_job(specs[i], 0, 2000 + (unsigned)i + shift, NULL);
    for (int i = 0; !rc && i < nmodels; i++) {
#ifdef __SANITIZE_ADDRESS__
        /* The sanitizers watch the runtime and the compiler, whose paths
         * are the same for every model; the big ones would only spend the
         * time budget in an instrumented interpreter. */
        if (!strstr(models[i], "/resnet-small.xml")) {
            fprintf(stderr, "test_codegen_parity: sanitizer build: %s left to the plain build\n", models[i]);
            continue;
        }
#endif
        /* resnet18-stl10-byol.xml: its 4-sample batchnorms in 4096-wide
         * heads put float32 up to 2.0e-4 from float64 at batch 2 (PyTorch
         * float32 misses by 1.1e-4); tests/specs/byol.xml covers its code.
         * Objective variants of resnet18-stl10: its encoder, 2048-wide
         * projectors, and losses that tests/specs/barlow.xml and vicreg.xml
         * check at odd sizes. At batch 2 their per-feature statistics are
         * over 2 images (Barlow Twins' standardised features are +-1), so
         * float32 cannot follow float64 there (measured: PyTorch float32
         * misses by 5.6e-3, every gradient excused), and they would add a
         * minute of interpreter time without a code path. */
        int left = 0;
        for (size_t k = 0; k < sizeof left_to_jit / sizeof *left_to_jit; k++)
            left |= !strcmp(strrchr(models[i], '/') + 1, left_to_jit[k]);
        if (left)
            continue;
        rc = add_job(models[i], SHIPPED_BATCH, SHIPPED_SEED + shift, NULL);
        /* The other convolution kernels, and a binary tuned by measuring
         * them, in float32 against the same references. */
        if (!rc && strstr(models[i], "/resnet-small.xml"))
            rc = add_job(models[i], SHIPPED_BATCH, SHIPPED_SEED + shift, "--conv=shift");
        if (!rc && strstr(models[i], "/resnet-small.xml"))
            rc = add_job(models[i], SHIPPED_BATCH, SHIPPED_SEED + shift, "--tune");
        /* batchnorm statistics from conv2d+stats (opt-in) */
        if (!rc && strstr(models[i], "/resnet-small.xml"))
            rc = add_job(models[i], SHIPPED_BATCH, SHIPPED_SEED + shift, "--fuse-stats");
    }
    for (int i = 0; specs && i < nspecs; i++)
        free(specs[i]);
    for (int i = 0; models && i < nmodels; i++)
        free(models[i]);
    free(specs);
    free(models);
    free(specdir);
    free(modeldir);
    return rc;
}

static int setup(void)
{
    srcdir = getenv("SC_SOURCE_DIR");
    const char *bin = getenv("SC_BINARY_DIR");
    simclrc = getenv("SIMCLRC");
    python = getenv("SC_PYTHON");
    if (!srcdir || !bin || !simclrc || !python) {
        fprintf(stderr, "test_codegen_parity: SC_SOURCE_DIR, SC_BINARY_DIR, SIMCLRC and SC_PYTHON must be set (run through ctest)\n");
        return -1;
    }
    tmpdir = xprintf("%s/codegen_parity.XXXXXX", bin);
    if (!tmpdir || !mkdtemp(tmpdir)) {
        fprintf(stderr, "test_codegen_parity: cannot make a temporary directory in %s\n", bin);
        free(tmpdir);
        tmpdir = NULL;
        return -1;
    }
    return setup_jobs();
}

/* Removes tmpdir and what is in it (files only: the test makes no
 * subdirectories). */
static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char *p = xprintf("%s/%s", tmpdir, e->d_name);
            if (p)
                unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
}

static void teardown(void)
{
    if (tmpdir) {
        if (getenv("SC_KEEP_TMP"))
            fprintf(stderr, "test_codegen_parity: files kept in %s\n", tmpdir);
        else
            remove_tmpdir();
    }
    for (int i = 0; i < njobs; i++) {
        job *j = &jobs[i];
        free(j->spec);
        free(j->label);
        free(j->bin);
        free(j->cdump);
        free(j->idump);
        free(j->ref);
        free(j->ref32);
        free(j->imposed);
        free(j->log);
        free(j->tune);
        free(j->tune_opt);
    }
    free(jobs);
    free(tmpdir);
}

/* ---- comparing dumps ---- */

static int same_shape(const sc_st_tensor *a, const sc_st_tensor *b)
{
    if (a->ndim != b->ndim || strcmp(a->dtype, b->dtype))
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return 1;
}

static float at(const sc_st_tensor *t, size_t i)
{
    float v;
    memcpy(&v, (const char *)t->data + i * sizeof v, sizeof v);   /* may be unaligned */
    return v;
}

static double max_abs(const sc_st_tensor *t)
{
    double m = 0;
    for (size_t i = 0; i < t->nbytes / sizeof(float); i++)
        m = fmax(m, fabs((double)at(t, i)));
    return m;
}

/* The largest gradient magnitude in a dump: the base of the scale floor. */
static double grad_scale(const sc_st_file *f)
{
    double m = 0;
    for (int i = 0; i < f->n; i++)
        if (!strncmp(f->t[i].name, "grad/", 5))
            m = fmax(m, max_abs(&f->t[i]));
    return m;
}

typedef struct {
    const char *label, *what;   /* for messages */
    double floor;               /* scale floor */
    double worst;
    char worst_name[320];
    int bad;
} checker;

/* Compares tensor name of a against ref: max|a - ref| over
 * max(max|ref|, floor), infinite when anything is not finite; counts a
 * failure in c above tol. Returns the relative error. */
static double check_close(checker *c, const sc_st_file *a, const sc_st_file *ref, const char *name, double tol)
{
    const sc_st_tensor *x = sc_st_get(a, name), *y = sc_st_get(ref, name);
    if (!x || !y) {
        print_error("%s: %s is missing from the %s\n", c->label, name, x ? c->what : "compared dump");
        c->bad++;
        return INFINITY;
    }
    if (!same_shape(x, y) || strcmp(x->dtype, "F32")) {
        print_error("%s: %s has a different shape or dtype in the compared dump and the %s\n",
                    c->label, name, c->what);
        c->bad++;
        return INFINITY;
    }
    size_t n = y->nbytes / sizeof(float);
    double md = 0, mr = 0;
    size_t worst_i = 0;
    int nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        double xi = at(x, i), yi = at(y, i);
        if (!isfinite(xi) || !isfinite(yi))
            nonfinite = 1;
        double d = fabs(xi - yi);
        if (d > md) {
            md = d;
            worst_i = i;
        }
        mr = fmax(mr, fabs(yi));
    }
    double scale = fmax(mr, c->floor);
    double rel = nonfinite ? INFINITY : (scale > 0 ? md / scale : md);
    if (rel > c->worst || !c->worst_name[0]) {
        c->worst = rel;
        snprintf(c->worst_name, sizeof c->worst_name, "%s (max|diff| %.3g, max|ref| %.3g)", name, md, mr);
    }
    if (!(rel <= tol)) {
        print_error("%s: %s differs from the %s: max|diff| %.6g at flat index %zu (compared %.9g, "
                    "reference %.9g), max|ref| %.6g, relative %.3g > %g\n",
                    c->label, name, c->what, md, worst_i, n ? (double)at(x, worst_i) : 0.0,
                    n ? (double)at(y, worst_i) : 0.0, mr, rel, tol);
        c->bad++;
    }
    return rel;
}

static int check_identical(const job *j, const sc_st_file *a, const sc_st_file *ref, const char *name)
{
    const sc_st_tensor *x = sc_st_get(a, name), *y = sc_st_get(ref, name);
    if (!x || !y) {
        print_error("%s: %s is missing from the %s dump\n", j->label, name, x ? "interpreter's" : "compiled");
        return 1;
    }
    if (!same_shape(x, y)) {
        print_error("%s: %s has a different shape or dtype in the two dumps\n", j->label, name);
        return 1;
    }
    if (memcmp(x->data, y->data, y->nbytes)) {
        size_t i = 0;
        while (i < y->nbytes / sizeof(float) && at(x, i) == at(y, i))
            i++;
        print_error("%s: %s is not bit-identical: first difference at flat index %zu "
                    "(compiled %.9g, interpreter %.9g)\n",
                    j->label, name, i, (double)at(x, i), (double)at(y, i));
        return 1;
    }
    return 0;
}

static int same_meta(const job *j, const sc_st_file *a, const sc_st_file *b, const char *key)
{
    const char *x = sc_st_meta(a, key), *y = sc_st_meta(b, key);
    if (!x || !y || strcmp(x, y)) {
        print_error("%s: metadata '%s' differs: compiled '%s', interpreter '%s'\n", j->label, key,
                    x ? x : "(none)", y ? y : "(none)");
        return 1;
    }
    return 0;
}

/* ---- the step: compiled and interpreted ---- */

static void test_step(void **state)
{
    job *j = *state;
    char seed[32], batch[32];
    snprintf(seed, sizeof seed, "--seed=%u", j->seed);
    snprintf(batch, sizeof batch, "--batch=%d", j->batch);

    /* The interpreter runs beside the compiler: two cores, two programs. */
    char *iargv[9];
    int a = 0;
    iargv[a++] = (char *)simclrc;
    iargv[a++] = "--emit=step-dump";
    iargv[a++] = "-o";
    iargv[a++] = j->idump;
    iargv[a++] = seed;
    if (j->batch)
        iargv[a++] = batch;
    iargv[a++] = j->spec;
    iargv[a] = NULL;
    pid_t interp = run_start(iargv, j->log);

    char *cargv[10];
    a = 0;
    cargv[a++] = (char *)simclrc;
    cargv[a++] = "--emit=exe";
    cargv[a++] = "-o";
    cargv[a++] = j->bin;
    if (j->batch)
        cargv[a++] = batch;
    if (j->cflag)
        cargv[a++] = (char *)j->cflag;
    if (j->tune_opt)
        cargv[a++] = j->tune_opt;
    cargv[a++] = j->spec;
    cargv[a] = NULL;
    int crc = run_log(cargv, j->log);
    int drc = -1;
    if (crc == 0) {
        char *dargv[] = {j->bin, "dump-step", j->cdump, seed, NULL};
        drc = run_log(dargv, j->log);
    }
    int irc = run_finish(interp);
    unlink(j->bin);
    j->dumped = drc == 0 && irc == 0;
    if (crc || drc || irc) {
        show_log(j->log);
        fail_msg("%s: %s failed (exit status %d)", j->label,
                 crc ? "simclrc --emit=exe" : drc ? "the binary's dump-step" : "simclrc --emit=step-dump",
                 crc ? crc : drc ? drc : irc);
    }

    sc_st_file c, r;
    char err[512];
    if (sc_st_read(j->cdump, &c, err, sizeof err))
        fail_msg("%s: %s", j->label, err);
    if (sc_st_read(j->idump, &r, err, sizeof err)) {
        sc_st_free(&c);
        fail_msg("%s: %s", j->label, err);
    }
    int bad = 0;
    bad += same_meta(j, &c, &r, "format") + same_meta(j, &c, &r, "model") +
           same_meta(j, &c, &r, "seed") + same_meta(j, &c, &r, "params");
    /* Beyond the interpreter's tensors the compiled dump may hold only the
     * running statistics. */
    for (int i = 0; i < c.n; i++) {
        if (!sc_st_get(&r, c.t[i].name) && strncmp(c.t[i].name, "running/", 8)) {
            print_error("%s: the compiled dump has an unexpected tensor %s\n", j->label, c.t[i].name);
            bad++;
        }
    }
    checker ck = {j->label, "interpreter's dump", 0, 0, "", 0};
    int nparams = 0;
    bad += check_identical(j, &c, &r, "input");
    check_close(&ck, &c, &r, "loss", GRAD_TOL);
    for (int i = 0; i < r.n; i++) {
        const char *name = r.t[i].name;
        if (strcmp(name, "input") && strcmp(name, "loss") && strncmp(name, "grad/", 5)) {
            bad += check_identical(j, &c, &r, name);
            nparams++;
        }
    }
    print_message("%-26s batch %-3s seed %-5u %3d params bit-identical, loss off by %.3g\n", j->label,
                  j->batch ? batch + 8 : "own", j->seed, nparams, ck.worst);
    sc_st_free(&c);
    sc_st_free(&r);
    if (bad || ck.bad)
        fail_msg("%s: the compiled step does not match the interpreter (%d tensors differ)", j->label,
                 bad + ck.bad);
}

/* ---- gradients and running statistics ---- */

/* Runs torch_step.py once over every compiled dump (torch's import costs
 * seconds): float64, and float32 beside it. */
static void run_torch(void)
{
    torch_ran = 1;
    char *list = xprintf("%s/torch-jobs.txt", tmpdir);
    char *log = xprintf("%s/torch.log", tmpdir);
    char *script = xprintf("%s/tests/torch_step.py", srcdir);
    FILE *f = list ? fopen(list, "w") : NULL;
    if (!f || !log || !script) {
        torch_status = -1;
        if (f)
            fclose(f);
    } else {
        for (int i = 0; i < njobs; i++)
            if (jobs[i].dumped)
                fprintf(f, "%s\t%s\t%s\t%s\n", jobs[i].spec, jobs[i].cdump, jobs[i].ref, jobs[i].ref32);
        if (fclose(f)) {
            torch_status = -1;
        } else {
            char *argv[] = {(char *)python, script, "--double", "--batch-file", list, NULL};
            torch_status = run_log(argv, log);
            if (torch_status)
                show_log(log);
        }
    }
    free(list);
    free(log);
    free(script);
}

static void unlink_dumps(const job *j)
{
    if (getenv("SC_KEEP_TMP"))
        return;
    unlink(j->cdump);
    unlink(j->idump);
    unlink(j->ref);
    unlink(j->ref32);
    unlink(j->imposed);
    if (j->tune)
        unlink(j->tune);
}

/* The threads simclrc plans for and the binary runs on by default. */
static int default_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;
}

/* Runs the float32 step in memory and the interpreter with its decisions
 * imposed (f32_decisions.h) into j->imposed; reads it into *imp. */
static int imposed_reference(const job *j, sc_st_file *imp, f32_flips *fl, char *err, size_t errlen)
{
    int conv = j->cflag && !strcmp(j->cflag, "--conv=shift") ? SC_CONV_SHIFT_POLICY : SC_CONV_IM2COL_POLICY;
    int gemm_openblas = j->cflag && !strcmp(j->cflag, "--gemm=openblas");
    int fuse_stats = j->cflag && !strcmp(j->cflag, "--fuse-stats");
    if (f32_imposed_step(j->spec, j->batch, conv, gemm_openblas, fuse_stats, default_threads(), j->tune, j->seed,
                         j->imposed, fl, err, errlen))
        return -1;
    return sc_st_read(j->imposed, imp, err, errlen);
}

/* Every gradient of the compiled step against the interpreter and float64
 * PyTorch at GRAD_TOL; running statistics against float64 PyTorch at
 * STATS_TOL. Where a gradient misses, the float32 step may have decided a
 * near-tie the other way: then its decisions are imposed on the
 * interpreter (f32_decisions.h), every gradient must match that reference
 * at GRAD_TOL, every flipped decision must be a near-tie (its margin within the
 * float32 error measured on the kept ReLU inputs), and
 * the interpreter itself must match float64 PyTorch at GRAD_TOL. */
static void test_grads(void **state)
{
    job *j = *state;
    if (!j->dumped)
        fail_msg("%s: no compiled dump (see the step test)", j->label);
    if (!torch_ran)
        run_torch();
    sc_st_file c, in, r, r32;
    char err[512];
    const char *failed = NULL;
    if (sc_st_read(j->cdump, &c, err, sizeof err))
        fail_msg("%s: %s", j->label, err);
    if (sc_st_read(j->idump, &in, err, sizeof err)) {
        failed = "the interpreter's dump";
    } else if (sc_st_read(j->ref, &r, err, sizeof err)) {
        sc_st_free(&in);
        failed = "float64 PyTorch";
    } else if (sc_st_read(j->ref32, &r32, err, sizeof err)) {
        sc_st_free(&in);
        sc_st_free(&r);
        failed = "float32 PyTorch";
    }
    if (failed) {
        sc_st_free(&c);
        unlink_dumps(j);
        fail_msg("%s: no reference from %s (torch_step.py exit status %d): %s", j->label, failed,
                 torch_status, err);
    }
    double floor_t = FLOOR_REL * grad_scale(&r), floor_i = FLOOR_REL * grad_scale(&in);
    checker vi = {j->label, "interpreter's dump", floor_i, 0, "", 0};
    checker vt = {j->label, "float64 PyTorch reference", floor_t, 0, "", 0};
    checker t32 = {j->label, "float32 PyTorch", floor_t, 0, "", 0};
    checker st = {j->label, "float64 PyTorch reference", 0, 0, "", 0};
    check_close(&vt, &c, &r, "loss", GRAD_TOL);
    /* First pass, quiet: does any gradient miss the float64 references? */
    int nrunning = 0, ngrads = 0, nmissed = 0;
    for (int i = 0; i < r.n; i++) {
        const char *name = r.t[i].name;
        if (!strncmp(name, "running/", 8)) {
            /* Running statistics have their own scale; no floor. */
            check_close(&st, &c, &r, name, STATS_TOL);
            nrunning++;
            continue;
        }
        if (strncmp(name, "grad/", 5))
            continue;
        /* PyTorch float32's own miss, measured here, for every model. */
        check_close(&t32, &r32, &r, name, INFINITY);
        if (!j->grads)
            continue;
        ngrads++;
        checker probe = vi;
        nmissed += !(fmax(check_close(&probe, &c, &in, name, INFINITY), check_close(&probe, &c, &r, name, INFINITY)) <=
                     GRAD_TOL);
    }
    sc_st_file imp;
    f32_flips fl = {0};
    checker vd = {j->label, "interpreter with the float32 decisions", floor_i, 0, "", 0};
    checker sem = {j->label, "float64 PyTorch reference (the interpreter's step)", floor_t, 0, "", 0};
    checker same = {j->label, "in-memory float32 step", floor_i, 0, "", 0};
    int imposed = 0;
    if (nmissed) {
        if (imposed_reference(j, &imp, &fl, err, sizeof err)) {
            print_error("%s: the float32 decisions could not be imposed: %s\n", j->label, err);
            vd.bad++;
        } else
            imposed = 1;
    }
    for (int i = 0; j->grads && i < r.n; i++) {
        const char *name = r.t[i].name;
        if (strncmp(name, "grad/", 5))
            continue;
        if (!imposed) {
            check_close(&vi, &c, &in, name, GRAD_TOL);
            check_close(&vt, &c, &r, name, GRAD_TOL);
            continue;
        }
        check_close(&vd, &c, &imp, name, GRAD_TOL);
        check_close(&sem, &in, &r, name, GRAD_TOL);
        char f32name[SC_NAME_MAX + 16];
        snprintf(f32name, sizeof f32name, "f32/%s", name);
        const sc_st_tensor *x = sc_st_get(&imp, f32name);
        if (x) {
            /* The in-memory float32 step is the binary's code: report how
             * far it is from the binary (0 when bit-identical). */
            sc_st_tensor alias = *x;
            alias.name = (char *)name;
            sc_st_file one = {.n = 1, .t = &alias};
            check_close(&same, &c, &one, name, INFINITY);
        }
    }
    if (imposed) {
        /* A flip is a near-tie when its margin is within the float32
         * error that the same step shows on the ReLU inputs it kept
         * (measured on the same scale: relative to the tensor's largest
         * |value|). At resnet18-stl10 seed 1: one flip, margin 1.2e-7,
         * against errors up to 6.1e-6 (rms 2.6e-7). */
        int flips_bad = !(fl.worst_margin <= fl.max_error);
        if (flips_bad)
            print_error("%s: the float32 step decides %s the other way from float64 by a margin of %.3g of "
                        "the tensor's largest value, above its largest float32 error %.3g: not a near-tie\n",
                        j->label, fl.worst_at, fl.worst_margin, fl.max_error);
        vd.bad += flips_bad;
        /* The decisions are the binary's only if the in-memory step is its
         * code: bit for bit (measured: 0 on every model; a --tune binary's
         * in-memory step takes the picks of the table the binary saved:
         * from the untuned plan, its rounding flipped a near-tie of
         * resnet-small's the binary did not, 2.2e-2 off in 9 gradients). */
        if (!(same.worst == 0)) {
            print_error("%s: the in-memory float32 step is not bit-identical to the binary (%.3g): its decisions "
                        "need not be the binary's\n", j->label, same.worst);
            vd.bad++;
        }
        print_message("%-26s %d of %d gradients miss float64 at %g: the float32 step decided %ld ReLU elements "
                      "and %ld max-pool windows of %ld the other way, worst margin %.3g (%s); float32 error of "
                      "the ReLU inputs kept: max %.3g, rms %.3g\n",
                      j->label, nmissed, ngrads, GRAD_TOL, fl.relu_flips, fl.pool_flips, fl.decisions,
                      fl.worst_margin, fl.worst_at[0] ? fl.worst_at : "-", fl.max_error,
                      fl.positives ? sqrt(fl.sum_sq_error / (double)fl.positives) : 0.0);
        print_message("%-26s with those decisions imposed on the interpreter, worst %s: %.3g; the interpreter "
                      "against float64 PyTorch, worst %s: %.3g; in-memory float32 step against the binary %.3g\n",
                      j->label, vd.worst_name, vd.worst, sem.worst_name, sem.worst, same.worst);
        sc_st_free(&imp);
    } else if (j->grads)
        print_message("%-26s %d gradients within %g, worst against the interpreter %s: %.3g, against PyTorch "
                      "%s: %.3g\n",
                      j->label, ngrads, GRAD_TOL, vi.worst_name, vi.worst, vt.worst_name, vt.worst);
    else
        print_message("%-26s forward only: loss off by %.3g\n", j->label, vt.worst);
    print_message("%-26s PyTorch float32 against float64: worst gradient %s: %.3g\n", j->label, t32.worst_name,
                  t32.worst);
    print_message("%-26s %d running statistics, worst %s: %.3g\n", j->label, nrunning, st.worst_name, st.worst);
    sc_st_free(&c);
    sc_st_free(&in);
    sc_st_free(&r);
    sc_st_free(&r32);
    unlink_dumps(j);
    int bad = vi.bad + vt.bad + vd.bad + sem.bad + st.bad;
    if (bad)
        fail_msg("%s: the compiled step does not match its references (%d tensors differ)", j->label, bad);
}

/* ---- the compiler's command line ---- */

static char *spec_path(const char *rel)
{
    char *p = xprintf("%s/%s", srcdir, rel);
    assert_non_null(p);
    return p;
}

static const char *find_opt(void)
{
    static const char *const cand[] = {"/usr/lib/llvm-19/bin/opt", "/usr/bin/opt-19"};
    const char *env = getenv("SC_OPT");
    if (env && *env)
        return env;
    for (size_t i = 0; i < sizeof cand / sizeof *cand; i++)
        if (access(cand[i], X_OK) == 0)
            return cand[i];
    return NULL;
}

static void test_llvm_verify(void **state)
{
    (void)state;
    const char *opt = find_opt();
    if (!opt)
        fail_msg("opt-19 not found in /usr/lib/llvm-19/bin or /usr/bin (set SC_OPT)");
    static const char *const specs[] = {"models/resnet-small.xml", "tests/specs/bottleneck.xml",
                                        "tests/specs/head-batchnorm.xml"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        char *spec = spec_path(specs[i]), *ll = xprintf("%s/verify%zu.ll", tmpdir, i),
             *log = xprintf("%s/verify%zu.log", tmpdir, i);
        assert_non_null(ll);
        assert_non_null(log);
        char *argv[] = {(char *)simclrc, "--emit=llvm", "-o", ll, spec, NULL};
        int rc = run_log(argv, log);
        if (rc) {
            show_log(log);
            fail_msg("simclrc --emit=llvm %s: exit status %d", specs[i], rc);
        }
        char *vargv[] = {(char *)opt, "-passes=verify", "-disable-output", ll, NULL};
        rc = run_log(vargv, log);
        if (rc) {
            show_log(log);
            fail_msg("%s -passes=verify rejects the IR of %s (exit status %d)", opt, specs[i], rc);
        }
        unlink(ll);
        unlink(log);
        free(spec);
        free(ll);
        free(log);
    }
}

static int host_has_avx512(void)
{
    char *s = slurp("/proc/cpuinfo");
    int yes = s && strstr(s, " avx512f") != NULL;
    free(s);
    return yes;
}

static void test_asm_avx512(void **state)
{
    (void)state;
    if (!host_has_avx512()) {
        test_skip("the host CPU has no AVX-512; nothing to check\n");
    }
    char *spec = spec_path("models/resnet-small.xml"), *s = xprintf("%s/small.s", tmpdir),
         *log = xprintf("%s/asm.log", tmpdir);
    assert_non_null(s);
    assert_non_null(log);
    char *argv[] = {(char *)simclrc, "--emit=asm", "-o", s, spec, NULL};
    int rc = run_log(argv, log);
    if (rc) {
        show_log(log);
        fail_msg("simclrc --emit=asm: exit status %d", rc);
    }
    char *text = slurp(s);
    assert_non_null(text);
    /* A 512-bit register in a vector floating-point instruction. */
    int zmm = 0;
    for (char *p = text; (p = strstr(p, "%zmm")); p++)
        zmm++;
    print_message("resnet-small: %d zmm operands in the assembly\n", zmm);
    free(text);
    unlink(s);
    unlink(log);
    free(spec);
    free(s);
    free(log);
    assert_true(zmm > 0);
}

/* Runs simclrc with extra arguments; expects exit 1 or 2 and an error
 * message that mentions needle. */
static void expect_usage_error(const char *what, char **argv, const char *needle)
{
    char *log = xprintf("%s/err.log", tmpdir);
    assert_non_null(log);
    unlink(log);
    int rc = run_log(argv, log);
    char *msg = slurp(log);
    print_message("%s: exit %d: %s", what, rc, msg ? msg : "(no output)\n");
    int ok = (rc == 1 || rc == 2) && msg && strstr(msg, "simclrc:") && strstr(msg, "error") &&
             strstr(msg, needle);
    free(msg);
    unlink(log);
    free(log);
    if (!ok)
        fail_msg("%s: expected exit status 1 or 2 and an error naming '%s'", what, needle);
}

static void test_bad_output_path(void **state)
{
    (void)state;
    char *spec = spec_path("tests/specs/flatten.xml");
    char *exe[] = {(char *)simclrc, "-o", "/nonexistent/dir/x", spec, NULL};
    expect_usage_error("--emit=exe -o /nonexistent/dir/x", exe, "/nonexistent/dir/x");
    char *obj[] = {(char *)simclrc, "--emit=obj", "-o", "/nonexistent/dir/x.o", spec, NULL};
    expect_usage_error("--emit=obj -o /nonexistent/dir/x.o", obj, "/nonexistent/dir/x.o");
    char *dir[] = {(char *)simclrc, "-o", tmpdir, spec, NULL};
    expect_usage_error("--emit=exe -o DIRECTORY", dir, tmpdir);
    free(spec);
}

static void test_unknown_target_cpu(void **state)
{
    (void)state;
    char *spec = spec_path("tests/specs/flatten.xml"), *o = xprintf("%s/cpu.o", tmpdir);
    assert_non_null(o);
    char *obj[] = {(char *)simclrc, "--emit=obj", "--target-cpu=nosuchcpu", "-o", o, spec, NULL};
    expect_usage_error("--target-cpu=nosuchcpu --emit=obj", obj, "nosuchcpu");
    char *exe[] = {(char *)simclrc, "--target-cpu=nosuchcpu", "-o", o, spec, NULL};
    expect_usage_error("--target-cpu=nosuchcpu --emit=exe", exe, "nosuchcpu");
    assert_int_not_equal(access(o, F_OK), 0);
    free(spec);
    free(o);
}

/* ---- the training binary's command line ---- */

typedef struct {
    const char *bin, *log, *prog;
} binctx;

/* Runs the binary with up to 4 arguments; returns its exit status and its
 * output (malloc'd) in *out. */
static int run_bin(const binctx *b, char **out, const char *a1, const char *a2, const char *a3,
                   const char *a4)
{
    char *argv[] = {(char *)b->bin, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    unlink(b->log);
    int rc = run_log(argv, b->log);
    *out = slurp(b->log);
    if (!*out)
        *out = calloc(1, 1);
    return rc;
}

/* Expects exit status want and an output containing every needle; the
 * needle list ends with NULL. */
static int expect_bin(const binctx *b, int want, const char *a1, const char *a2, const char *a3,
                      const char *a4, ...)
{
    char *out;
    int rc = run_bin(b, &out, a1, a2, a3, a4);
    int bad = rc != want;
    va_list ap;
    va_start(ap, a4);
    for (const char *n; (n = va_arg(ap, const char *));)
        if (!strstr(out, n)) {
            print_error("output lacks '%s'\n", n);
            bad = 1;
        }
    va_end(ap);
    if (bad)
        print_error("%s %s %s %s %s: exit status %d (expected %d), output:\n%s\n", b->prog,
                    a1 ? a1 : "", a2 ? a2 : "", a3 ? a3 : "", a4 ? a4 : "", rc, want, out);
    free(out);
    return bad;
}

/* The line `info` prints of the OpenBLAS core, in this test's own
 * environment as found (the binary's OpenBLAS detects what this process's
 * did; when the chooser would have it execute again, it runs the chosen
 * core and says so). */
static char *blas_core_line(void)
{
    sc_cpu_simd cpu;
    sc_cpu_simd_probe(&cpu);
    const char *detected = openblas_get_corename(), *env = getenv("OPENBLAS_CORETYPE"),
               *marker = getenv(SC_BLASCORE_MARKER);
    const char *chosen = sc_blascore_choose(&cpu, detected, strstr(openblas_get_config(), "DYNAMIC_ARCH") != NULL,
                                            env, marker);
    char why[256];
    if (chosen)
        sc_blascore_reason(chosen, chosen, detected, why, sizeof why);
    else
        sc_blascore_reason(detected, env, marker, why, sizeof why);
    return xprintf("OpenBLAS core      %s (%s)\n", chosen ? chosen : detected, why);
}

static void test_binary_cli(void **state)
{
    (void)state;
    char *spec = spec_path("tests/specs/flatten.xml");
    char *bin = xprintf("%s/flatten", tmpdir), *log = xprintf("%s/cli.log", tmpdir),
         *dump = xprintf("%s/cli.st", tmpdir), *errprefix = xprintf("flatten: error:");
    assert_non_null(bin);
    assert_non_null(log);
    assert_non_null(dump);
    assert_non_null(errprefix);
    char *argv[] = {(char *)simclrc, "-o", bin, spec, NULL};
    int rc = run_log(argv, log);
    if (rc) {
        show_log(log);
        fail_msg("simclrc -o %s %s: exit status %d", bin, spec, rc);
    }
    binctx b = {bin, log, "flatten"};
    int bad = 0;
    bad += expect_bin(&b, 0, "dump-step", dump, "--seed", "5", NULL);

    /* info: every field of cli.md, and the parameter count of the dump. */
    sc_st_file f;
    char err[512], count[64] = "?";
    if (sc_st_read(dump, &f, err, sizeof err) == 0) {
        long long n = 0;
        for (int i = 0; i < f.n; i++) {
            if (strncmp(f.t[i].name, "grad/", 5) && strncmp(f.t[i].name, "running/", 8) &&
                strcmp(f.t[i].name, "input") && strcmp(f.t[i].name, "loss"))
                n += (long long)(f.t[i].nbytes / sizeof(float));
        }
        /* As info prints it: digits grouped by commas. */
        char digits[32];
        int nd = snprintf(digits, sizeof digits, "%lld", n), o = 0;
        count[o++] = ' ';
        for (int i = 0; i < nd; i++) {
            if (i && (nd - i) % 3 == 0)
                count[o++] = ',';
            count[o++] = digits[i];
        }
        snprintf(count + o, sizeof count - (size_t)o, " in ");
        sc_st_free(&f);
    } else {
        print_error("%s\n", err);
        bad++;
    }
    bad += expect_bin(&b, 0, "info", NULL, NULL, NULL, "flatten", "parameters", count, "FLOPs per step",
                      "activation arena", "3 images", "1 x 20 x 20",
                      "simclrc", "target CPU", NULL);
    bad += expect_bin(&b, 0, "info", "--params", NULL, NULL, "encoder.0.weight", "[4, 1, 5, 5]", NULL);
    char *core = blas_core_line();
    assert_non_null(core);
    bad += expect_bin(&b, 0, "info", NULL, NULL, NULL, core, NULL);
    free(core);
    bad += expect_bin(&b, 0, "--help", NULL, NULL, NULL, "usage:", "dump-step", "bench-step", NULL);
    bad += expect_bin(&b, 0, "--version", NULL, NULL, NULL, "simclrc", NULL);
    bad += expect_bin(&b, 0, "dump-step", "--help", NULL, NULL, "usage:", "--seed", NULL);
    bad += expect_bin(&b, 0, "bench-step", "--help", NULL, NULL, "usage:", "--threads", NULL);
    bad += expect_bin(&b, 0, "info", "-h", NULL, NULL, "usage:", NULL);
    bad += expect_bin(&b, 0, "bench-step", "--steps", "2", "--threads=1", "images/s", "ms/step", "FLOPs per step",
                      "SGD update", "RSS before the model's tensors", "RSS before the first step", NULL);
    /* Usage errors: exit 2 with PROGRAM: error: ... */
    bad += expect_bin(&b, 2, NULL, NULL, NULL, NULL, errprefix, NULL);
    bad += expect_bin(&b, 2, "frobnicate", NULL, NULL, NULL, errprefix, "frobnicate", NULL);
    bad += expect_bin(&b, 2, "dump-step", NULL, NULL, NULL, errprefix, NULL);
    bad += expect_bin(&b, 2, "dump-step", dump, "--seed", "-3", errprefix, "--seed", NULL);
    bad += expect_bin(&b, 2, "dump-step", dump, "--seed", NULL, errprefix, "--seed", NULL);
    bad += expect_bin(&b, 2, "bench-step", "--steps", "0", NULL, errprefix, "--steps", NULL);
    bad += expect_bin(&b, 2, "bench-step", "--threads", "x", NULL, errprefix, "--threads", NULL);
    bad += expect_bin(&b, 2, "info", "--bogus", NULL, NULL, errprefix, "--bogus", NULL);
    bad += expect_bin(&b, 2, "--bogus", NULL, NULL, NULL, errprefix, "--bogus", NULL);
    /* Bad input: an unwritable dump path is exit 1. */
    bad += expect_bin(&b, 1, "dump-step", "/nonexistent/dir/x.st", NULL, NULL, errprefix,
                      "/nonexistent/dir/x.st", NULL);
    unlink(bin);
    unlink(dump);
    unlink(log);
    free(spec);
    free(bin);
    free(log);
    free(dump);
    free(errprefix);
    if (bad)
        fail_msg("%d training binary command lines misbehaved", bad);
}

int main(void)
{
    /* Setup decides how many tests there are, so it runs before cmocka. */
    if (setup()) {
        teardown();
        fprintf(stderr, "test_codegen_parity: setup failed\n");
        return 1;
    }
    size_t n = 2 * (size_t)njobs + 5, k = 0;
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    char **names = calloc(n, sizeof *names);
    if (!tests || !names) {
        free(tests);
        free(names);
        teardown();
        return 1;
    }
    static const struct {
        const char *name;
        CMUnitTestFunction f;
    } fixed[] = {
        {"binary_cli", test_binary_cli},
        {"llvm_verify", test_llvm_verify},
        {"asm_avx512", test_asm_avx512},
        {"bad_output_path", test_bad_output_path},
        {"unknown_target_cpu", test_unknown_target_cpu},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        tests[k].name = fixed[i].name;
        tests[k++].test_func = fixed[i].f;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < njobs; i++) {
            names[k] = xprintf("%s %s", pass ? "grads" : "step", jobs[i].label);
            tests[k].name = names[k] ? names[k] : jobs[i].label;
            tests[k].test_func = pass ? test_grads : test_step;
            tests[k++].initial_state = &jobs[i];
        }
    }
    /* SC_PARITY_FILTER and SC_PARITY_SKIP (cmocka patterns, e.g.
     * "*resnet-small*") select tests by hand. */
    if (getenv("SC_PARITY_FILTER"))
        cmocka_set_test_filter(getenv("SC_PARITY_FILTER"));
    if (getenv("SC_PARITY_SKIP"))
        cmocka_set_skip_filter(getenv("SC_PARITY_SKIP"));
    int failed = _cmocka_run_group_tests("codegen_parity", tests, k, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(tests);
    teardown();
    return test_exit(failed);
}
