/* test_checkpoint: runtime/checkpoint.c on a small hand-written model
 * description (a conv, a batchnorm with buffers, a linear), no generated
 * code needed.
 *
 * - Round trip: parameters, buffers, Adam state and position come back bit
 *   for bit; the file holds the documented names and metadata.
 * - Another model (other name, other shape), a missing buffer or missing
 *   optimizer state, a file that is no checkpoint: rejected with a message
 *   naming the file, the caller's buffers untouched.
 * - Truncated files at many lengths: rejected, buffers untouched.
 * - Unwritable destinations: a clear error, nothing created.
 * - A save that fails half-way (the file size limit stands in for a full
 *   disk: the write fails with EFBIG as it would with ENOSPC) leaves the
 *   previous file byte for byte and no temporary file behind.
 * - Fine-tuning tables: entries missing from the file are counted and left
 *   alone. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#include "sc_checkpoint.h"
#include "sc_rng.h"
#include "sc_safetensors.h"
#include "sc_state.h"

static char tmpdir[2048];

/* ---- a small model ---- */

#define NP 5
static const sc_param_info params_tab[NP] = {
    {"encoder.0.weight", NULL, 4, {4, 3, 3, 3}, SC_ROLE_ENCODER, 108, 0, 0, 27, 0, 0},
    {"encoder.1.weight", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 112, 0, 0, 1, 0}, /* a gap before it */
    {"encoder.1.bias", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 116, 0, 0, 1, 0},
    {"head.0.weight", NULL, 2, {2, 4, 0, 0}, SC_ROLE_HEAD, 8, 120, 0, 4, 0, 0},
    {"head.0.bias", NULL, 1, {2, 0, 0, 0}, SC_ROLE_HEAD, 2, 128, 0, 0, 1, 0},
};
#define PFLOATS 130
static const sc_param_info buffers_tab[2] = {
    {"encoder.1.running_mean", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 0, 0, 0, 0, 0},
    {"encoder.1.running_var", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 4, 0, 0, 0, 0},
};
#define BFLOATS 8
/* Fine-tuning: the table above plus a classifier. */
static const sc_param_info ft_tab[NP + 2] = {
    {"encoder.0.weight", NULL, 4, {4, 3, 3, 3}, SC_ROLE_ENCODER, 108, 0, 0, 27, 0, 0},
    {"encoder.1.weight", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 112, 0, 0, 1, 0},
    {"encoder.1.bias", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 116, 0, 0, 1, 0},
    {"head.0.weight", NULL, 2, {2, 4, 0, 0}, SC_ROLE_HEAD, 8, 120, 0, 4, 0, 0},
    {"head.0.bias", NULL, 1, {2, 0, 0, 0}, SC_ROLE_HEAD, 2, 128, 0, 0, 1, 0},
    {"classifier.weight", NULL, 2, {10, 4, 0, 0}, SC_ROLE_CLASSIFIER, 40, 130, 0, 4, 0, 0},
    {"classifier.bias", NULL, 1, {10, 0, 0, 0}, SC_ROLE_CLASSIFIER, 10, 170, 0, 0, 1, 0},
};
#define FTFLOATS 180
/* Same names, one shape differs. */
static const sc_param_info wide_tab[NP] = {
    {"encoder.0.weight", NULL, 4, {4, 3, 3, 3}, SC_ROLE_ENCODER, 108, 0, 0, 27, 0, 0},
    {"encoder.1.weight", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 112, 0, 0, 1, 0},
    {"encoder.1.bias", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 116, 0, 0, 1, 0},
    {"head.0.weight", NULL, 2, {4, 2, 0, 0}, SC_ROLE_HEAD, 8, 120, 0, 2, 0, 0},
    {"head.0.bias", NULL, 1, {2, 0, 0, 0}, SC_ROLE_HEAD, 2, 128, 0, 0, 1, 0},
};

static sc_model_desc model(const char *name, const sc_param_info *tab)
{
    sc_model_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.spec = "<simclr name=\"tiny\" version=\"1\">\n  <!-- \"quotes\", \\ and\ttabs -->\n</simclr>\n";
    d.batch = 8;
    d.nparams = NP;
    d.nbuffers = 2;
    d.params_floats = PFLOATS;
    d.buffers_floats = BFLOATS;
    d.params = tab;
    d.buffers = buffers_tab;
    d.train.optimizer = SC_OPT_ADAM;
    d.train.lr = 1e-3;
    return d;
}

/* ---- helpers ---- */

static char *path_in(const char *name)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static void fill(float *x, int64_t n, uint64_t seed)
{
    sc_rng r;
    sc_rng_seed(&r, seed, 99);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)sc_rng_normal(&r);
}

static unsigned char *slurp_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A trained-looking state: parameters, buffers and an Adam optimizer that
 * has taken three steps. */
typedef struct {
    float *params, *buffers;
    sc_optim *opt;
} state;

static void state_new(state *s, int64_t pfloats, uint64_t seed, int steps)
{
    s->params = sc_floats_alloc(pfloats);
    s->buffers = sc_floats_alloc(BFLOATS);
    assert_non_null(s->params);
    assert_non_null(s->buffers);
    fill(s->params, pfloats, seed);
    fill(s->buffers, BFLOATS, seed + 1);
    sc_model_desc d = model("tiny", params_tab);
    sc_optim_config c;
    sc_optim_config_from_train(&d.train, &c);
    char err[256];
    s->opt = sc_optim_new(&c, params_tab, NP, PFLOATS, err, sizeof err);
    assert_non_null(s->opt);
    float g[PFLOATS];
    for (int k = 0; k < steps; k++) {
        fill(g, PFLOATS, seed + 10 + (uint64_t)k);
        sc_optim_step(s->opt, s->params, g, 1e-2);
    }
}

static void state_free(state *s)
{
    free(s->params);
    free(s->buffers);
    sc_optim_free(s->opt);
}

static void assert_same_floats(const float *a, const float *b, int64_t n)
{
    assert_memory_equal(a, b, (size_t)n * sizeof(float));
}

static void assert_contains(const char *s, const char *what)
{
    if (!strstr(s, what))
        fail_msg("expected '%s' in the message: %s", what, s);
}

/* ---- tests ---- */

static void test_round_trip(void **st)
{
    (void)st;
    sc_model_desc d = model("tiny", params_tab);
    state a, b;
    state_new(&a, PFLOATS, 1, 3);
    state_new(&b, PFLOATS, 2, 0);
    const char *path = path_in("rt.safetensors");
    sc_ckpt_pos pos = {1234, 5, 0xfedcba9876543210ull, "simclr"};
    char err[512];
    assert_int_equal(sc_ckpt_save(path, &d, d.params, NP, a.params, a.buffers, a.opt, &pos, err, sizeof err), 0);

    sc_ckpt_pos got = {0};
    int missing = -1;
    /* The gap between tensors is not part of the file: it keeps b's value. */
    float gap_b = b.params[108];
    assert_int_equal(sc_ckpt_load(path, &d, d.params, NP, b.params, b.buffers, b.opt, &got, &missing, err,
                                  sizeof err), 0);
    assert_int_equal(missing, 0);
    assert_int_equal(got.step, 1234);
    assert_int_equal(got.epoch, 5);
    assert_true(got.seed == 0xfedcba9876543210ull);
    assert_string_equal(got.kind, "simclr");
    for (int i = 0; i < NP; i++)
        assert_same_floats(a.params + params_tab[i].offset, b.params + params_tab[i].offset,
                           params_tab[i].numel);
    assert_same_floats(a.buffers, b.buffers, BFLOATS);
    assert_int_equal(sc_optim_step_count(b.opt), 3);
    for (int s = 0; s < sc_optim_state_count(a.opt); s++)
        for (int i = 0; i < NP; i++)
            assert_same_floats(sc_optim_state_ptr(a.opt, s) + params_tab[i].offset,
                               sc_optim_state_ptr(b.opt, s) + params_tab[i].offset, params_tab[i].numel);
    assert_true(b.params[108] == gap_b);

    /* The same next update from both: the state is complete. */
    float g[PFLOATS];
    fill(g, PFLOATS, 77);
    sc_optim_step(a.opt, a.params, g, 1e-2);
    sc_optim_step(b.opt, b.params, g, 1e-2);
    for (int i = 0; i < NP; i++)
        assert_same_floats(a.params + params_tab[i].offset, b.params + params_tab[i].offset,
                           params_tab[i].numel);

    /* The documented layout. */
    sc_st_file f;
    assert_int_equal(sc_st_read(path, &f, err, sizeof err), 0);
    assert_string_equal(sc_st_meta(&f, "format"), "simclrc-ckpt-1");
    assert_string_equal(sc_st_meta(&f, "model"), "tiny");
    assert_string_equal(sc_st_meta(&f, "spec"), d.spec);
    assert_string_equal(sc_st_meta(&f, "step"), "1234");
    assert_string_equal(sc_st_meta(&f, "epoch"), "5");
    assert_string_equal(sc_st_meta(&f, "seed"), "18364758544493064720");
    assert_string_equal(sc_st_meta(&f, "optimizer"), "adam");
    assert_string_equal(sc_st_meta(&f, "optim_step"), "3");
    assert_string_equal(sc_st_meta(&f, "kind"), "simclr");
    assert_int_equal(f.n, NP + 2 + 2 * NP);
    const sc_st_tensor *t = sc_st_get(&f, "head.0.weight");
    assert_non_null(t);
    assert_string_equal(t->dtype, "F32");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 4);
    assert_non_null(sc_st_get(&f, "encoder.1.running_var"));
    t = sc_st_get(&f, "optim/exp_avg_sq/encoder.0.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 4);
    assert_non_null(sc_st_get(&f, "optim/exp_avg/head.0.bias"));
    sc_st_free(&f);

    /* Without an optimizer: no state tensors, "none". */
    const char *p2 = path_in("noopt.safetensors");
    assert_int_equal(sc_ckpt_save(p2, &d, d.params, NP, a.params, a.buffers, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(sc_st_read(p2, &f, err, sizeof err), 0);
    assert_string_equal(sc_st_meta(&f, "optimizer"), "none");
    assert_int_equal(f.n, NP + 2);
    sc_st_free(&f);
    /* ... which an optimizer cannot be restored from. */
    memcpy(b.params, a.params, sizeof(float) * PFLOATS);
    int rc = sc_ckpt_load(p2, &d, d.params, NP, b.params, b.buffers, b.opt, NULL, NULL, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_contains(err, p2);
    assert_contains(err, "optimizer state");

    /* Extra metadata. */
    const char *keys[] = {"train/epochs", "train/split"}, *vals[] = {"12", "unlabeled"};
    assert_int_equal(sc_ckpt_save_meta(p2, &d, d.params, NP, a.params, a.buffers, a.opt, &pos, 2, keys, vals,
                                       err, sizeof err), 0);
    const char *want[] = {"train/split", "nope", "train/epochs"};
    char *got_vals[3];
    assert_int_equal(sc_ckpt_load_meta(p2, &d, d.params, NP, b.params, b.buffers, b.opt, NULL, NULL, 3, want,
                                       got_vals, err, sizeof err), 0);
    assert_string_equal(got_vals[0], "unlabeled");
    assert_null(got_vals[1]);
    assert_string_equal(got_vals[2], "12");
    for (int i = 0; i < 3; i++)
        free(got_vals[i]);
    state_free(&a);
    state_free(&b);
}

/* Loads that must fail: the message names the file, and b is untouched. */
static void expect_reject(const char *path, const sc_model_desc *d, const char *what)
{
    state b;
    state_new(&b, PFLOATS, 9, 1);
    float p0[PFLOATS], b0[BFLOATS], m0[PFLOATS];
    memcpy(p0, b.params, sizeof p0);
    memcpy(b0, b.buffers, sizeof b0);
    memcpy(m0, sc_optim_state_ptr(b.opt, 0), sizeof m0);
    sc_ckpt_pos pos = {77, 7, 7, "x"};
    int missing = 77;
    char err[512] = "";
    int rc = sc_ckpt_load(path, d, d->params, d->nparams, b.params, b.buffers, b.opt, &pos, &missing, err,
                          sizeof err);
    assert_int_equal(rc, -1);
    assert_contains(err, path);
    assert_contains(err, "error:");
    if (what)
        assert_contains(err, what);
    assert_memory_equal(p0, b.params, sizeof p0);
    assert_memory_equal(b0, b.buffers, sizeof b0);
    assert_memory_equal(m0, sc_optim_state_ptr(b.opt, 0), sizeof m0);
    assert_int_equal(sc_optim_step_count(b.opt), 1);
    assert_int_equal(pos.step, 77);
    assert_int_equal(missing, 77);
    state_free(&b);
}

static void test_other_model(void **st)
{
    (void)st;
    sc_model_desc d = model("tiny", params_tab);
    state a;
    state_new(&a, PFLOATS, 3, 2);
    const char *path = path_in("other.safetensors");
    sc_ckpt_pos pos = {10, 1, 0, "simclr"};
    char err[512];
    assert_int_equal(sc_ckpt_save(path, &d, d.params, NP, a.params, a.buffers, a.opt, &pos, err, sizeof err), 0);

    sc_model_desc other = model("resnet-other", params_tab);
    expect_reject(path, &other, "'tiny', not of 'resnet-other'");
    sc_model_desc wide = model("tiny", wide_tab);
    expect_reject(path, &wide, "another model");

    /* A buffer the model has and the file lacks. */
    const sc_param_info more_buffers[2] = {
        {"encoder.1.running_mean", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 0, 0, 0, 0, 0},
        {"encoder.9.running_var", NULL, 1, {4, 0, 0, 0}, SC_ROLE_ENCODER, 4, 4, 0, 0, 0, 0},
    };
    sc_model_desc nb = model("tiny", params_tab);
    nb.buffers = more_buffers;
    expect_reject(path, &nb, "encoder.9.running_var");

    /* A safetensors file that is no checkpoint (no format metadata). */
    sc_st_writer *w = sc_st_writer_new();
    int64_t shape[1] = {2};
    float x[2] = {1, 2};
    sc_st_writer_f32(w, "x", 1, shape, x);
    const char *plain = path_in("plain.safetensors");
    assert_int_equal(sc_st_writer_save(w, plain, err, sizeof err), 0);
    sc_st_writer_free(w);
    expect_reject(plain, &d, "not a simclrc checkpoint");
    /* Not a file at all. */
    expect_reject(path_in("does-not-exist.safetensors"), &d, "No such file");
    state_free(&a);
}

static void test_truncated(void **st)
{
    (void)st;
    sc_model_desc d = model("tiny", params_tab);
    state a;
    state_new(&a, PFLOATS, 4, 2);
    const char *path = path_in("full.safetensors");
    char err[512];
    assert_int_equal(sc_ckpt_save(path, &d, d.params, NP, a.params, a.buffers, a.opt, NULL, err, sizeof err), 0);
    size_t n;
    unsigned char *bytes = slurp_bytes(path, &n);
    assert_non_null(bytes);
    const char *cut = path_in("cut.safetensors");
    size_t lens[] = {0, 4, 8, 9, 100, n / 2, n - 4, n - 1};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        spit(cut, bytes, lens[i]);
        expect_reject(cut, &d, lens[i] >= 8 ? "truncated" : "too short");
    }
    /* The whole file still loads (the cut copies were the problem). */
    spit(cut, bytes, n);
    state b;
    state_new(&b, PFLOATS, 5, 0);
    assert_int_equal(sc_ckpt_load(cut, &d, d.params, NP, b.params, b.buffers, b.opt, NULL, NULL, err, sizeof err),
                     0);
    state_free(&b);
    free(bytes);
    state_free(&a);
}

static int tmp_files_in(const char *dir)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    int n = 0;
    for (struct dirent *e; (e = readdir(dp));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(dp);
    return n;
}

static void test_unwritable(void **st)
{
    (void)st;
    sc_model_desc d = model("tiny", params_tab);
    state a;
    state_new(&a, PFLOATS, 6, 1);
    char err[512];
    /* A directory that does not exist. */
    const char *p1 = path_in("no-such-dir/ckpt.safetensors");
    assert_int_equal(sc_ckpt_save(p1, &d, d.params, NP, a.params, a.buffers, a.opt, NULL, err, sizeof err), -1);
    assert_contains(err, p1);
    assert_contains(err, "No such file or directory");
    /* A "directory" that is a regular file. */
    spit(path_in("a-file"), (const unsigned char *)"x", 1);
    const char *p2 = path_in("a-file/ckpt.safetensors");
    assert_int_equal(sc_ckpt_save(p2, &d, d.params, NP, a.params, a.buffers, a.opt, NULL, err, sizeof err), -1);
    assert_contains(err, p2);
    assert_contains(err, "Not a directory");
    /* A destination that is a directory: the rename fails, nothing left. */
    const char *p3 = path_in("is-a-dir");
    assert_int_equal(mkdir(p3, 0755), 0);
    assert_int_equal(sc_ckpt_save(p3, &d, d.params, NP, a.params, a.buffers, a.opt, NULL, err, sizeof err), -1);
    assert_contains(err, p3);
    assert_int_equal(tmp_files_in(tmpdir), 0);
    /* Permissions (meaningless for root, who may write anywhere). */
    if (geteuid() != 0) {
        const char *ro = path_in("read-only");
        assert_int_equal(mkdir(ro, 0555), 0);
        char p4[4200];
        snprintf(p4, sizeof p4, "%s/ckpt.safetensors", ro);
        assert_int_equal(sc_ckpt_save(p4, &d, d.params, NP, a.params, a.buffers, a.opt, NULL, err, sizeof err),
                         -1);
        assert_contains(err, "Permission denied");
    }
    state_free(&a);
}

static void test_failed_save_keeps_old(void **st)
{
    (void)st;
    sc_model_desc d = model("tiny", params_tab);
    state a, b;
    state_new(&a, PFLOATS, 7, 2);
    state_new(&b, PFLOATS, 8, 5);
    const char *path = path_in("keep.safetensors");
    sc_ckpt_pos pos = {20, 2, 0, "simclr"};
    char err[512];
    assert_int_equal(sc_ckpt_save(path, &d, d.params, NP, a.params, a.buffers, a.opt, &pos, err, sizeof err), 0);
    size_t n;
    unsigned char *before = slurp_bytes(path, &n);
    assert_non_null(before);

    /* Writes beyond half the file fail (EFBIG, as ENOSPC would). */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = n / 2;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    pos.step = 30;
    int rc = sc_ckpt_save(path, &d, d.params, NP, b.params, b.buffers, b.opt, &pos, err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, -1);
    assert_contains(err, path);
    assert_contains(err, "File too large");

    size_t m;
    unsigned char *after = slurp_bytes(path, &m);
    assert_non_null(after);
    assert_int_equal(m, n);
    assert_memory_equal(before, after, n);
    assert_int_equal(tmp_files_in(tmpdir), 0);
    /* And it still loads as the old checkpoint. */
    sc_ckpt_pos got;
    assert_int_equal(sc_ckpt_load(path, &d, d.params, NP, b.params, b.buffers, b.opt, &got, NULL, err, sizeof err),
                     0);
    assert_int_equal(got.step, 20);
    assert_same_floats(a.params, b.params, 108);
    free(before);
    free(after);
    state_free(&a);
    state_free(&b);
}

static void test_finetune_table(void **st)
{
    (void)st;
    sc_model_desc d = model("tiny", params_tab);
    state a;
    state_new(&a, PFLOATS, 10, 1);
    const char *path = path_in("pre.safetensors");
    char err[512];
    assert_int_equal(sc_ckpt_save(path, &d, d.params, NP, a.params, a.buffers, a.opt, NULL, err, sizeof err), 0);
    /* A pretraining checkpoint into the fine-tuning table: the classifier
     * is missing and keeps its values. */
    float *ft = sc_floats_alloc(FTFLOATS);
    float *buf = sc_floats_alloc(BFLOATS);
    fill(ft, FTFLOATS, 11);
    float cls[50];
    memcpy(cls, ft + 130, sizeof cls);
    int missing = -1;
    sc_ckpt_pos pos;
    assert_int_equal(sc_ckpt_load(path, &d, ft_tab, NP + 2, ft, buf, NULL, &pos, &missing, err, sizeof err), 0);
    assert_int_equal(missing, 2);
    assert_memory_equal(cls, ft + 130, sizeof cls);
    assert_same_floats(a.params, ft, 108);
    /* A fine-tuning checkpoint (kind finetune, classifier included) back
     * into the pretraining table: the extra tensors are ignored. */
    const char *p2 = path_in("ft.safetensors");
    sc_ckpt_pos fpos = {3, 1, 5, "finetune"};
    assert_int_equal(sc_ckpt_save(p2, &d, ft_tab, NP + 2, ft, buf, NULL, &fpos, err, sizeof err), 0);
    float *p = sc_floats_alloc(PFLOATS);
    assert_int_equal(sc_ckpt_load(p2, &d, d.params, NP, p, buf, NULL, &pos, &missing, err, sizeof err), 0);
    assert_int_equal(missing, 0);
    assert_string_equal(pos.kind, "finetune");
    assert_same_floats(ft, p, 108);
    free(p);
    free(ft);
    free(buf);
    state_free(&a);
}

static int setup(void **st)
{
    (void)st;
    char *dir = test_tmpdir("tmp-checkpoint");
    int ok = dir && strlen(dir) < sizeof tmpdir;
    if (ok)
        strcpy(tmpdir, dir);
    free(dir);
    return ok ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    if (getenv("SC_KEEP_TMP"))
        return 0;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_other_model),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_unwritable),
        cmocka_unit_test(test_failed_save_keeps_old),
        cmocka_unit_test(test_finetune_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
