/* test_optim: the runtime's optimizers and learning-rate schedules against
 * PyTorch.
 *
 * tests/optim_torch.py writes a fixture: a small parameter set (weights
 * with weight decay, no_decay biases and batchnorm parameters, a tensor
 * that starts at zero, gradients that are zero at some steps), 20 seeded
 * gradients, and for each optimizer case the parameters and optimizer
 * state after 20 updates by torch.optim (SGD, Adam, AdamW) or by a LARS
 * written in PyTorch, under that case's learning-rate schedule; and the
 * schedule's values from its direct formula for several configurations.
 *
 * Here the same updates run through sc_optim over a flat buffer in which
 * the tensors are separated by gaps holding sentinel values (NaN in the
 * gradients), which must stay untouched. A tensor passes when
 * max|c - torch| <= 1e-5 max|torch|. Each case also runs once more with a
 * restart halfway (state copied through the state API into a new
 * optimizer, as a checkpoint would), which must give the same bits. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sc_optim.h"
#include "sc_safetensors.h"
#include "test_util.h"
#include "sc_state.h"

#define REL_TOL 1e-5
#define SCHED_TOL 1e-12
#define MAX_TENSORS 32
#define MAX_CASES 32
#define GAP_VALUE 777.0f

static sc_st_file fx;
static int have_fx;
static char *tmpdir, *fxpath;
static char *names[MAX_TENSORS];
static int no_decay[MAX_TENSORS];
static int ntensors, nsteps;
static char *cases[MAX_CASES];
static int ncases;

/* Splits a comma-separated metadata list into out (strings to free). */
static int split_list(const char *s, char **out, int max)
{
    int n = 0;
    char *copy = xprintf("%s", s);
    if (!copy)
        return -1;
    for (char *save = NULL, *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (n == max || !(out[n] = xprintf("%s", p))) {
            free(copy);
            return -1;
        }
        n++;
    }
    free(copy);
    return n;
}

/* The value of KEY in a "k=v k=v" description, or NULL (static buffer). */
static const char *kv(const char *desc, const char *key)
{
    static char val[64];
    size_t klen = strlen(key);
    for (const char *p = desc; p && *p;) {
        while (*p == ' ')
            p++;
        if (!strncmp(p, key, klen) && p[klen] == '=') {
            size_t n = strcspn(p + klen + 1, " ");
            if (n >= sizeof val)
                return NULL;
            memcpy(val, p + klen + 1, n);
            val[n] = '\0';
            return val;
        }
        p = strchr(p, ' ');
    }
    return NULL;
}

static double kv_num(const char *desc, const char *key)
{
    const char *v = kv(desc, key);
    if (!v)
        fail_msg("fixture description '%s' lacks %s", desc, key);
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end)
        fail_msg("fixture description '%s': %s=%s is not a number", desc, key, v);
    return x;
}

/* A schedule from a fixture description (keys lr, scaling, batch,
 * schedule, warmup, epochs, spe). */
static void sched_from(const char *desc, sc_lr_schedule *s)
{
    sc_train_defaults t;
    memset(&t, 0, sizeof t);
    const char *kind = kv(desc, "schedule");
    assert_non_null(kind);
    t.schedule = !strcmp(kind, "cosine") ? SC_SCHED_COSINE : SC_SCHED_CONSTANT;
    t.lr_scaling_linear = (int)kv_num(desc, "scaling");
    t.warmup_epochs = (int)kv_num(desc, "warmup");
    char err[256];
    if (sc_lr_schedule_init(s, &t, kv_num(desc, "lr"), (int)kv_num(desc, "batch"),
                            (int64_t)kv_num(desc, "epochs"), (int64_t)kv_num(desc, "spe"), err,
                            sizeof err))
        fail_msg("%s: %s", desc, err);
}

static const sc_st_tensor *need(const char *name, const char *dtype, size_t nbytes)
{
    const sc_st_tensor *t = sc_st_get(&fx, name);
    if (!t)
        fail_msg("the fixture lacks %s", name);
    if (strcmp(t->dtype, dtype) || t->nbytes != nbytes)
        fail_msg("fixture tensor %s is %s of %zu bytes, expected %s of %zu", name, t->dtype,
                 t->nbytes, dtype, nbytes);
    return t;
}

static int setup(void)
{
    const char *src = getenv("SC_SOURCE_DIR"), *bin = getenv("SC_BINARY_DIR");
    const char *python = getenv("SC_PYTHON");
    if (!src || !bin || !python) {
        fprintf(stderr, "test_optim: SC_SOURCE_DIR, SC_BINARY_DIR and SC_PYTHON must be set (run through ctest)\n");
        return -1;
    }
    tmpdir = xprintf("%s/optim.XXXXXX", bin);
    if (!tmpdir || !mkdtemp(tmpdir)) {
        fprintf(stderr, "test_optim: cannot make a temporary directory in %s\n", bin);
        free(tmpdir);
        tmpdir = NULL;
        return -1;
    }
    fxpath = xprintf("%s/fixture.safetensors", tmpdir);
    char *script = xprintf("%s/tests/optim_torch.py", src);
    if (!fxpath || !script) {
        free(script);
        return -1;
    }
    char *argv[] = {(char *)python, script, fxpath, NULL};
    int st = run_log(argv, NULL);
    free(script);
    if (st) {
        fprintf(stderr, "test_optim: optim_torch.py failed (status %d)\n", st);
        return -1;
    }
    char err[512];
    if (sc_st_read(fxpath, &fx, err, sizeof err)) {
        fprintf(stderr, "test_optim: %s\n", err);
        return -1;
    }
    have_fx = 1;
    const char *plist = sc_st_meta(&fx, "params"), *flist = sc_st_meta(&fx, "no_decay");
    const char *clist = sc_st_meta(&fx, "cases"), *steps = sc_st_meta(&fx, "steps");
    if (!plist || !flist || !clist || !steps) {
        fprintf(stderr, "test_optim: the fixture's metadata is incomplete\n");
        return -1;
    }
    char *flags[MAX_TENSORS];
    ntensors = split_list(plist, names, MAX_TENSORS);
    int nflags = split_list(flist, flags, MAX_TENSORS);
    for (int i = 0; i < nflags; i++) {
        if (i < MAX_TENSORS)
            no_decay[i] = atoi(flags[i]);
        free(flags[i]);
    }
    ncases = split_list(clist, cases, MAX_CASES);
    nsteps = atoi(steps);
    if (ntensors <= 0 || nflags != ntensors || ncases <= 0 || nsteps <= 0) {
        fprintf(stderr, "test_optim: bad fixture metadata (%d tensors, %d flags, %d cases, %d steps)\n",
                ntensors, nflags, ncases, nsteps);
        return -1;
    }
    return 0;
}

static void teardown(void)
{
    if (have_fx)
        sc_st_free(&fx);
    for (int i = 0; i < ntensors; i++)
        free(names[i]);
    for (int i = 0; i < ncases; i++)
        free(cases[i]);
    if (fxpath && !getenv("SC_KEEP_TMP"))
        unlink(fxpath);
    if (tmpdir && !getenv("SC_KEEP_TMP"))
        rmdir(tmpdir);
    else if (tmpdir)
        fprintf(stderr, "test_optim: files kept in %s\n", tmpdir);
    free(fxpath);
    free(tmpdir);
}

/* The parameter table: the fixture's tensors with gaps of 3, 4, 5, ...
 * floats before each one and after the last. Returns the buffer size. */
static int64_t make_table(sc_param_info *t)
{
    int64_t off = 0;
    memset(t, 0, sizeof *t * (size_t)ntensors);
    for (int i = 0; i < ntensors; i++) {
        char key[300];
        snprintf(key, sizeof key, "init/%s", names[i]);
        const sc_st_tensor *x = sc_st_get(&fx, key);
        if (!x)
            fail_msg("the fixture lacks %s", key);
        off += 3 + i;
        t[i].name = names[i];
        t[i].numel = (int64_t)(x->nbytes / sizeof(float));
        t[i].offset = off;
        t[i].no_decay = no_decay[i];
        off += t[i].numel;
    }
    return off + 3 + ntensors;
}

/* Copies fixture tensor KEY (F32 of t->numel) into buf at t->offset. */
static void load(float *buf, const sc_param_info *t, const char *key)
{
    const sc_st_tensor *x = need(key, "F32", (size_t)t->numel * sizeof(float));
    memcpy(buf + t->offset, x->data, x->nbytes);
}

static int in_gap(const sc_param_info *t, int64_t i)
{
    for (int k = 0; k < ntensors; k++)
        if (i >= t[k].offset && i < t[k].offset + t[k].numel)
            return 0;
    return 1;
}

static void config_from(const char *desc, sc_optim_config *c)
{
    const char *kind = kv(desc, "kind");
    assert_non_null(kind);
    sc_train_defaults t;
    memset(&t, 0, sizeof t);
    t.optimizer = !strcmp(kind, "sgd") ? SC_OPT_SGD : !strcmp(kind, "adam") ? SC_OPT_ADAM
                  : !strcmp(kind, "adamw") ? SC_OPT_ADAMW : !strcmp(kind, "lars") ? SC_OPT_LARS : -1;
    if (t.optimizer < 0)
        fail_msg("unknown optimizer kind %s", kind);
    t.momentum = kv_num(desc, "momentum");
    t.weight_decay = kv_num(desc, "wd");
    sc_optim_config_from_train(&t, c);
    c->nesterov = (int)kv_num(desc, "nesterov");
}

/* Runs steps [from, to) of the case on params. */
static void run_steps(sc_optim *o, const sc_lr_schedule *s, const sc_param_info *t,
                      float *params, float *grads, int from, int to)
{
    for (int step = from; step < to; step++) {
        for (int i = 0; i < ntensors; i++) {
            char key[300];
            snprintf(key, sizeof key, "grad/%d/%s", step, names[i]);
            load(grads, &t[i], key);
        }
        sc_optim_step(o, params, grads, sc_lr_at(s, step));
    }
}

/* Relative error of n floats a against the fixture's ref (see above). */
static double rel_err(const float *a, const sc_st_tensor *ref, int64_t n, double *md, double *mr)
{
    double d = 0, m = 0;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float y;
        memcpy(&y, (const char *)ref->data + i * (int64_t)sizeof y, sizeof y);
        if (!isfinite(a[i]) || !isfinite(y))
            bad = 1;
        d = fmax(d, fabs((double)a[i] - y));
        m = fmax(m, fabs((double)y));
    }
    *md = d;
    *mr = m;
    return bad ? INFINITY : m > 0 ? d / m : (d > 0 ? INFINITY : 0);
}

static void test_case(void **state)
{
    const char *cname = *state;
    char key[300];
    snprintf(key, sizeof key, "case/%s", cname);
    const char *desc = sc_st_meta(&fx, key);
    if (!desc)
        fail_msg("the fixture lacks the description of case %s", cname);

    sc_param_info table[MAX_TENSORS];
    int64_t floats = make_table(table);
    sc_optim_config cfg;
    config_from(desc, &cfg);
    sc_lr_schedule sched;
    sched_from(desc, &sched);

    /* The learning rates torch used, as a direct check of the schedule. */
    snprintf(key, sizeof key, "lr/%s", cname);
    const sc_st_tensor *lrs = need(key, "F64", (size_t)nsteps * sizeof(double));
    for (int s = 0; s < nsteps; s++) {
        double want;
        memcpy(&want, (const char *)lrs->data + s * (int)sizeof want, sizeof want);
        double got = sc_lr_at(&sched, s);
        if (!(fabs(got - want) <= SCHED_TOL * sched.base_lr))
            fail_msg("%s: lr at step %d is %.17g, torch used %.17g", cname, s, got, want);
    }

    float *params = sc_floats_alloc(floats), *grads = sc_floats_alloc(floats);
    float *params2 = sc_floats_alloc(floats);
    assert_non_null(params);
    assert_non_null(grads);
    assert_non_null(params2);
    for (int64_t i = 0; i < floats; i++) {
        params[i] = GAP_VALUE;
        grads[i] = NAN;
    }
    for (int i = 0; i < ntensors; i++) {
        snprintf(key, sizeof key, "init/%s", names[i]);
        load(params, &table[i], key);
    }
    memcpy(params2, params, sizeof *params * (size_t)floats);

    char err[256] = "";
    sc_optim *o = sc_optim_new(&cfg, table, ntensors, floats, err, sizeof err);
    if (!o)
        fail_msg("%s: sc_optim_new: %s", cname, err);
    run_steps(o, &sched, table, params, grads, 0, nsteps);
    assert_int_equal(sc_optim_step_count(o), nsteps);
    assert_int_equal(sc_optim_state_floats(o), floats);

    /* Compare parameters and state with torch. */
    int bad = 0;
    double worst = 0;
    char worst_name[300] = "";
    int nstate = sc_optim_state_count(o);
    for (int i = 0; i < ntensors; i++) {
        for (int k = -1; k < nstate; k++) {
            const float *mine;
            if (k < 0) {
                snprintf(key, sizeof key, "final/%s/%s", cname, names[i]);
                mine = params + table[i].offset;
            } else {
                snprintf(key, sizeof key, "state/%s/%s/%s", cname, sc_optim_state_name(o, k), names[i]);
                mine = sc_optim_state_ptr(o, k) + table[i].offset;
            }
            const sc_st_tensor *ref = need(key, "F32", (size_t)table[i].numel * sizeof(float));
            double md, mr, rel = rel_err(mine, ref, table[i].numel, &md, &mr);
            if (rel >= worst) {
                worst = rel;
                snprintf(worst_name, sizeof worst_name, "%s", key);
            }
            if (!(rel <= REL_TOL)) {
                print_error("%s: %s differs: max|diff| %.6g, max|torch| %.6g, relative %.3g > %g\n",
                            cname, key, md, mr, rel, REL_TOL);
                bad = 1;
            }
        }
    }
    /* torch has exactly the state we have. */
    snprintf(key, sizeof key, "state/%s/", cname);
    int torch_state = 0;
    for (int i = 0; i < fx.n; i++)
        torch_state += !strncmp(fx.t[i].name, key, strlen(key));
    if (torch_state != nstate * ntensors) {
        print_error("%s: torch keeps %d state tensors, sc_optim %d states x %d tensors\n", cname,
                    torch_state, nstate, ntensors);
        bad = 1;
    }
    /* Gaps untouched, in parameters and state. */
    for (int64_t i = 0; i < floats; i++) {
        if (!in_gap(table, i))
            continue;
        int ok = params[i] == GAP_VALUE;
        for (int k = 0; k < nstate; k++)
            ok &= sc_optim_state_ptr(o, k)[i] == 0.0f;
        if (!ok) {
            print_error("%s: float %lld between tensors was written\n", cname, (long long)i);
            bad = 1;
            break;
        }
    }
    print_message("%-15s %d state buffers, worst %s: relative error %.3g\n", cname, nstate,
                  worst_name, worst);

    /* Restart halfway through the state API: the same bits. */
    int half = nsteps / 2;
    sc_optim *a = sc_optim_new(&cfg, table, ntensors, floats, err, sizeof err);
    assert_non_null(a);
    run_steps(a, &sched, table, params2, grads, 0, half);
    sc_optim *b = sc_optim_new(&cfg, table, ntensors, floats, err, sizeof err);
    assert_non_null(b);
    assert_int_equal(sc_optim_state_count(b), nstate);
    for (int k = 0; k < nstate; k++) {
        assert_string_equal(sc_optim_state_name(a, k), sc_optim_state_name(b, k));
        memcpy(sc_optim_state_ptr(b, k), sc_optim_state_ptr(a, k), sizeof(float) * (size_t)floats);
    }
    sc_optim_set_step_count(b, sc_optim_step_count(a));
    sc_optim_free(a);
    run_steps(b, &sched, table, params2, grads, half, nsteps);
    if (memcmp(params, params2, sizeof *params * (size_t)floats)) {
        print_error("%s: a run restarted at step %d through the state API differs from an uninterrupted one\n",
                    cname, half);
        bad = 1;
    }
    for (int k = 0; k < nstate; k++)
        if (memcmp(sc_optim_state_ptr(o, k), sc_optim_state_ptr(b, k), sizeof(float) * (size_t)floats)) {
            print_error("%s: state %s after the restart differs\n", cname, sc_optim_state_name(o, k));
            bad = 1;
        }
    sc_optim_free(b);
    sc_optim_free(o);
    free(params);
    free(params2);
    free(grads);
    if (bad)
        fail_msg("%s: sc_optim differs from PyTorch", cname);
}

static void test_schedules(void **state)
{
    (void)state;
    const char *n = sc_st_meta(&fx, "scheds");
    assert_non_null(n);
    int count = atoi(n);
    assert_true(count > 0);
    for (int i = 0; i < count; i++) {
        char key[64];
        snprintf(key, sizeof key, "sched/%d", i);
        const char *desc = sc_st_meta(&fx, key);
        if (!desc)
            fail_msg("the fixture lacks %s", key);
        sc_lr_schedule s;
        sched_from(desc, &s);
        const sc_st_tensor *t = sc_st_get(&fx, key);
        if (!t || strcmp(t->dtype, "F64") || t->nbytes != (size_t)(s.total_steps + 3) * sizeof(double))
            fail_msg("fixture %s: missing or not F64 of %lld steps", key, (long long)s.total_steps + 3);
        int64_t steps = (int64_t)(t->nbytes / sizeof(double));
        for (int64_t k = 0; k < steps; k++) {
            double want, got = sc_lr_at(&s, k);
            memcpy(&want, (const char *)t->data + k * (int64_t)sizeof want, sizeof want);
            if (!(fabs(got - want) <= SCHED_TOL * s.base_lr))
                fail_msg("schedule '%s': step %lld: %.17g, the formula gives %.17g", desc,
                         (long long)k, got, want);
        }
    }
    /* lr-scaling and the end of the cosine, by hand. */
    assert_true(fabs(sc_lr_scaled(0.3, 1, 4096) - 4.8) < 1e-15);
    assert_true(sc_lr_scaled(0.3, 0, 4096) == 0.3);
    sc_train_defaults t;
    memset(&t, 0, sizeof t);
    t.schedule = SC_SCHED_COSINE;
    t.warmup_epochs = 1;
    sc_lr_schedule s;
    char err[128];
    assert_int_equal(sc_lr_schedule_init(&s, &t, 1.0, 256, 3, 10, err, sizeof err), 0);
    assert_true(sc_lr_at(&s, 0) == 0.0);
    assert_true(fabs(sc_lr_at(&s, 5) - 0.5) < 1e-15);
    assert_true(sc_lr_at(&s, 10) == 1.0);
    assert_true(fabs(sc_lr_at(&s, 20) - 0.5) < 1e-15);
    assert_true(fabs(sc_lr_at(&s, 30)) < 1e-15);
}

static void test_errors(void **state)
{
    (void)state;
    sc_param_info t[2];
    memset(t, 0, sizeof t);
    t[0].name = "a";
    t[0].numel = 4;
    t[1].name = "b";
    t[1].offset = 8;
    t[1].numel = 4;
    sc_train_defaults d;
    memset(&d, 0, sizeof d);
    d.optimizer = SC_OPT_SGD;
    sc_optim_config c;
    sc_optim_config_from_train(&d, &c);
    char err[256] = "";
    sc_optim *o = sc_optim_new(&c, t, 2, 12, err, sizeof err);
    assert_non_null(o);
    assert_int_equal(sc_optim_state_count(o), 0);   /* no momentum: no buffer */
    assert_null(sc_optim_state_name(o, 0));
    sc_optim_free(o);

    err[0] = '\0';
    assert_null(sc_optim_new(&c, t, 2, 11, err, sizeof err));
    assert_non_null(strstr(err, "b"));
    assert_non_null(strstr(err, "outside"));

    c.nesterov = 1;
    err[0] = '\0';
    assert_null(sc_optim_new(&c, t, 2, 12, err, sizeof err));
    assert_non_null(strstr(err, "Nesterov"));

    d.optimizer = 7;
    sc_optim_config_from_train(&d, &c);
    err[0] = '\0';
    assert_null(sc_optim_new(&c, t, 2, 12, err, sizeof err));
    assert_true(err[0] != '\0');

    d.optimizer = SC_OPT_ADAMW;
    d.weight_decay = -1;
    sc_optim_config_from_train(&d, &c);
    err[0] = '\0';
    assert_null(sc_optim_new(&c, t, 2, 12, err, sizeof err));
    assert_non_null(strstr(err, "weight decay"));

    sc_lr_schedule s;
    err[0] = '\0';
    assert_int_equal(sc_lr_schedule_init(&s, &d, NAN, 256, 1, 1, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    d.warmup_epochs = -1;
    err[0] = '\0';
    assert_int_equal(sc_lr_schedule_init(&s, &d, 0.1, 256, 1, 1, err, sizeof err), -1);
    assert_true(err[0] != '\0');
}

int main(void)
{
    if (setup()) {
        teardown();
        fprintf(stderr, "test_optim: setup failed\n");
        return 1;
    }
    struct CMUnitTest *tests = calloc((size_t)ncases + 2, sizeof *tests);
    if (!tests) {
        teardown();
        return 1;
    }
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_schedules);
    tests[1] = (struct CMUnitTest)cmocka_unit_test(test_errors);
    for (int i = 0; i < ncases; i++) {
        tests[i + 2].name = cases[i];
        tests[i + 2].test_func = test_case;
        tests[i + 2].initial_state = cases[i];
    }
    int rc = _cmocka_run_group_tests("optim", tests, (size_t)ncases + 2, NULL, NULL);
    free(tests);
    teardown();
    return rc;
}
