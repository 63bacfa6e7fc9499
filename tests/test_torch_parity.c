/* test_torch_parity: one training step of the compiler's reference
 * interpreter against PyTorch.
 *
 * For every model in tests/specs (and models/resnet-small.xml at batch 4),
 * `simclrc --emit=step-dump` runs a step and writes parameters, input, loss
 * and gradients; tests/torch_step.py rebuilds the same model as torch.nn
 * modules from the XML, loads those parameters and that input, and
 * recomputes loss and gradients. One Python process handles every model
 * (torch's import costs seconds). torch_step.py also fails when the dump's
 * parameter names differ from the canonical names it derives itself.
 *
 * PyTorch runs in float64 (--double): the interpreter is double inside, so
 * any difference beyond the float rounding of the dump is semantic. A
 * tensor passes when max|a - b| <= REL_TOL * max|ref|; the floor on max|ref|
 * covers gradients that are mathematically zero (a bias right before a
 * batchnorm), which both sides compute as rounding noise. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sc_safetensors.h"
#include "test_util.h"

/* Measured (AMD EPYC Zen 5): every loss and gradient of every spec and of
 * resnet-small identical after rounding to float (both sides round nearly
 * the same double), except head-batchnorm's head.3.bias, mathematically
 * zero, at 5.3e-8 (5.3e-16 against the floor). A few float ulps (6e-8
 * each) of room: */
#define REL_TOL 5e-7
#define SCALE_FLOOR 1e-8

typedef struct {
    char *spec;        /* model path */
    char *label;       /* file name, for messages */
    char *dump, *ref;  /* outputs of simclrc and of torch_step.py */
    int seed, batch;   /* batch 0: the spec's own */
    int compiled;      /* simclrc exited with 0 */
} job;

static job *jobs;
static int njobs;
static char *tmpdir;
static const char *python_status = "not run";

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_job(const char *spec, int seed, int batch)
{
    job *j = realloc(jobs, sizeof *jobs * (size_t)(njobs + 1));
    if (!j)
        return -1;
    jobs = j;
    j = &jobs[njobs];
    memset(j, 0, sizeof *j);
    const char *base = strrchr(spec, '/');
    j->spec = xprintf("%s", spec);
    j->label = xprintf("%s", base ? base + 1 : spec);
    j->dump = xprintf("%s/%d.dump.st", tmpdir, njobs);
    j->ref = xprintf("%s/%d.ref.st", tmpdir, njobs);
    j->seed = seed;
    j->batch = batch;
    njobs++;
    return j->spec && j->label && j->dump && j->ref ? 0 : -1;
}

/* Lists the specs, runs simclrc on each, then torch_step.py on them all. */
static int setup(void **state)
{
    (void)state;
    const char *src = getenv("SC_SOURCE_DIR"), *bin = getenv("SC_BINARY_DIR");
    const char *simclrc = getenv("SIMCLRC"), *python = getenv("SC_PYTHON");
    if (!src || !bin || !simclrc || !python) {
        fprintf(stderr, "test_torch_parity: SC_SOURCE_DIR, SC_BINARY_DIR, SIMCLRC and SC_PYTHON must be set (run through ctest)\n");
        return -1;
    }
    tmpdir = xprintf("%s/torch_parity.XXXXXX", bin);
    if (!tmpdir || !mkdtemp(tmpdir)) {
        fprintf(stderr, "test_torch_parity: cannot make a temporary directory in %s\n", bin);
        free(tmpdir);
        tmpdir = NULL;
        return -1;
    }

    char *specdir = xprintf("%s/tests/specs", src);
    DIR *d = specdir ? opendir(specdir) : NULL;
    if (!d) {
        fprintf(stderr, "test_torch_parity: cannot list %s\n", specdir ? specdir : "tests/specs");
        free(specdir);
        return -1;
    }
    char **names = NULL;
    int nnames = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) && !rc) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".xml"))
            continue;
        char **nn = realloc(names, sizeof *names * (size_t)(nnames + 1));
        if (!nn || !(nn[nnames] = xprintf("%s/%s", specdir, e->d_name))) {
            names = nn ? nn : names;
            rc = -1;
            break;
        }
        names = nn;
        nnames++;
    }
    closedir(d);
    free(specdir);
    if (names)
        qsort(names, (size_t)nnames, sizeof *names, cmp_str);
    for (int i = 0; i < nnames && !rc; i++)
        rc = add_job(names[i], 1000 + i, 0);
    for (int i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    char *small = xprintf("%s/models/resnet-small.xml", src);
    if (!rc && small && access(small, R_OK) == 0)
        rc = add_job(small, 77, 4);
    free(small);
    if (rc) {
        fprintf(stderr, "test_torch_parity: out of memory\n");
        return -1;
    }
    if (njobs < 6) {
        fprintf(stderr, "test_torch_parity: expected at least 6 specs in tests/specs, found %d\n", njobs);
        return -1;
    }

    char *list = xprintf("%s/jobs.txt", tmpdir);
    FILE *f = list ? fopen(list, "w") : NULL;
    if (!f) {
        free(list);
        return -1;
    }
    for (int i = 0; i < njobs; i++) {
        job *j = &jobs[i];
        char seed[32], batch[32];
        snprintf(seed, sizeof seed, "--seed=%d", j->seed);
        snprintf(batch, sizeof batch, "--batch=%d", j->batch);
        char *argv[8];
        int a = 0;
        argv[a++] = (char *)simclrc;
        argv[a++] = "--emit=step-dump";
        argv[a++] = "-o";
        argv[a++] = j->dump;
        argv[a++] = seed;
        if (j->batch)
            argv[a++] = batch;
        argv[a++] = j->spec;
        argv[a] = NULL;
        j->compiled = run_log(argv, NULL) == 0;
        if (j->compiled)
            fprintf(f, "%s\t%s\t%s\n", j->spec, j->dump, j->ref);
    }
    if (fclose(f)) {
        free(list);
        return -1;
    }

    char *script = xprintf("%s/tests/torch_step.py", src);
    char *argv[] = {(char *)python, script, "--double", "--batch-file", list, NULL};
    int st = script ? run_log(argv, NULL) : -1;
    python_status = st == 0 ? "ok" : "failed (see its messages above)";
    free(script);
    free(list);
    return 0;
}

static void remove_file(const char *p)
{
    if (p)
        unlink(p);
}

static int teardown(void **state)
{
    (void)state;
    int keep = getenv("SC_KEEP_TMP") != NULL;
    for (int i = 0; i < njobs; i++) {
        if (!keep) {
            remove_file(jobs[i].dump);
            remove_file(jobs[i].ref);
        }
        free(jobs[i].spec);
        free(jobs[i].label);
        free(jobs[i].dump);
        free(jobs[i].ref);
    }
    free(jobs);
    jobs = NULL;
    njobs = 0;
    if (tmpdir) {
        if (!keep) {
            char *list = xprintf("%s/jobs.txt", tmpdir);
            remove_file(list);
            free(list);
            rmdir(tmpdir);
        } else {
            fprintf(stderr, "test_torch_parity: files kept in %s\n", tmpdir);
        }
        free(tmpdir);
        tmpdir = NULL;
    }
    return 0;
}

static int same_shape(const sc_st_tensor *a, const sc_st_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return 1;
}

static void shape_str(const sc_st_tensor *t, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim && n < len; d++)
        n += (size_t)snprintf(buf + n, len - n, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
}

/* Relative error of a against ref as defined above; NaN anywhere is
 * infinitely wrong. Sets *maxdiff and *maxref. */
static double rel_error(const sc_st_tensor *a, const sc_st_tensor *ref,
                        double *maxdiff, double *maxref)
{
    size_t n = ref->nbytes / sizeof(float);
    const float *x = a->data, *y = ref->data;
    double md = 0, mr = 0;
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        float xi, yi;
        memcpy(&xi, x + i, sizeof xi);   /* the data may be unaligned */
        memcpy(&yi, y + i, sizeof yi);
        if (isnan(xi) || isnan(yi) || isinf(xi) || isinf(yi))
            nan = 1;
        double diff = fabs((double)xi - (double)yi);
        if (diff > md)
            md = diff;
        if (fabs((double)yi) > mr)
            mr = fabs((double)yi);
    }
    *maxdiff = md;
    *maxref = mr;
    return nan ? INFINITY : md / fmax(mr, SCALE_FLOOR);
}

/* Checks one tensor pair; returns 0 if it passes. Tracks the worst one. */
static int compare(const job *j, const sc_st_file *dump, const sc_st_file *ref,
                   const char *name, double *worst, char *worst_name, size_t wlen)
{
    const sc_st_tensor *a = sc_st_get(dump, name), *b = sc_st_get(ref, name);
    if (!a || !b) {
        print_error("%s: %s is missing from the %s\n", j->label, name, a ? "PyTorch reference" : "step dump");
        return -1;
    }
    if (strcmp(a->dtype, "F32") || strcmp(b->dtype, "F32")) {
        print_error("%s: %s is %s in the dump and %s in the reference, expected F32\n", j->label, name, a->dtype, b->dtype);
        return -1;
    }
    if (!same_shape(a, b)) {
        char sa[96], sb[96];
        shape_str(a, sa, sizeof sa);
        shape_str(b, sb, sizeof sb);
        print_error("%s: %s has shape %s in the dump, %s in PyTorch\n", j->label, name, sa, sb);
        return -1;
    }
    double md, mr, rel = rel_error(a, b, &md, &mr);
    if (rel > *worst || worst_name[0] == '\0') {
        *worst = rel;
        snprintf(worst_name, wlen, "%s (max|diff| %.3g, max|ref| %.3g)", name, md, mr);
    }
    if (!(rel <= REL_TOL)) {
        print_error("%s: %s differs: max|diff| %.6g, max|ref| %.6g, relative %.3g > %g\n",
                    j->label, name, md, mr, rel, REL_TOL);
        return -1;
    }
    return 0;
}

static void test_parity(void **state)
{
    const job *j = *state;
    if (!j->compiled)
        fail_msg("%s: simclrc --emit=step-dump failed (see its messages above)", j->label);
    sc_st_file dump, ref;
    char err[512];
    if (sc_st_read(j->dump, &dump, err, sizeof err))
        fail_msg("%s: %s", j->label, err);
    if (sc_st_read(j->ref, &ref, err, sizeof err)) {
        sc_st_free(&dump);
        fail_msg("%s: no PyTorch reference (torch_step.py %s): %s", j->label, python_status, err);
    }

    int bad = 0;
    const char *fmt = sc_st_meta(&dump, "format");
    const char *plist = sc_st_meta(&dump, "params");
    const char *rlist = sc_st_meta(&ref, "params");
    if (!fmt || strcmp(fmt, "simclrc-step-1")) {
        print_error("%s: dump format is '%s', expected 'simclrc-step-1'\n", j->label, fmt ? fmt : "(none)");
        bad = 1;
    }
    if (!plist || !rlist || strcmp(plist, rlist)) {
        print_error("%s: parameter lists differ:\n  dump:    %s\n  PyTorch: %s\n", j->label,
                    plist ? plist : "(none)", rlist ? rlist : "(none)");
        bad = 1;
    }

    double worst = 0;
    char worst_name[256] = "";
    int nparams = 0;
    char *names = xprintf("%s", plist && !bad ? plist : "");
    assert_non_null(names);
    bad |= compare(j, &dump, &ref, "loss", &worst, worst_name, sizeof worst_name) != 0;
    for (char *save = NULL, *p = strtok_r(names, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char g[300];
        snprintf(g, sizeof g, "grad/%s", p);
        const sc_st_tensor *pt = sc_st_get(&dump, p), *gt = sc_st_get(&dump, g);
        if (!pt || !gt || !same_shape(pt, gt)) {
            print_error("%s: the dump lacks %s or its gradient, or their shapes differ\n", j->label, p);
            bad = 1;
            continue;
        }
        bad |= compare(j, &dump, &ref, g, &worst, worst_name, sizeof worst_name) != 0;
        nparams++;
    }
    free(names);
    if (!sc_st_get(&dump, "input")) {
        print_error("%s: the dump has no input\n", j->label);
        bad = 1;
    }
    print_message("%-20s %3d params, worst %s: relative error %.3g\n", j->label, nparams,
                  worst_name, worst);
    sc_st_free(&dump);
    sc_st_free(&ref);
    if (bad)
        fail_msg("%s: the step dump does not match PyTorch", j->label);
}

int main(void)
{
    /* Setup decides how many tests there are, so it runs before cmocka,
     * and teardown after it. */
    if (setup(NULL)) {
        teardown(NULL);
        fprintf(stderr, "test_torch_parity: setup failed\n");
        return 1;
    }
    struct CMUnitTest *tests = calloc((size_t)njobs, sizeof *tests);
    if (!tests) {
        teardown(NULL);
        return 1;
    }
    for (int i = 0; i < njobs; i++) {
        tests[i].name = jobs[i].label;
        tests[i].test_func = test_parity;
        tests[i].initial_state = &jobs[i];
    }
    int failed = _cmocka_run_group_tests("torch_parity", tests, (size_t)njobs, NULL, NULL);
    free(tests);   /* cmocka's summary names tests by their labels: free after */
    teardown(NULL);
    return failed ? 1 : 0;
}
