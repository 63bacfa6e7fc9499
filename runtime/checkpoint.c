/* Checkpoints as safetensors files (see sc_checkpoint.h for the layout).
 * Saving builds the whole file through the safetensors writer, which
 * writes a temporary file and renames it over the old one only when every
 * byte is on disk; loading reads and validates everything before the
 * first float of the caller's buffers is touched, so a bad file leaves
 * the caller's state as it was. */
#include "sc_checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_err.h"
#include "sc_safetensors.h"

#define FORMAT "simclrc-ckpt-1"

/* The safetensors code says "PATH: what"; checkpoints say "PATH: error:
 * what", the form the programs print after their name. */
static void file_error(const char *path, const char *msg, char *err, size_t errlen)
{
    size_t pl = strlen(path);
    const char *what = !strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2) ? msg + pl + 2 : msg;
    sc_errf(err, errlen, "%s: error: %s", path, what);
}

/* The optimizer's name for the metadata. sc_optim does not expose its
 * kind, so it is the model's optimizer when the state buffers fit it (the
 * training run), else the family the state buffers belong to. */
static const char *optim_name(const sc_optim *opt, const sc_model_desc *d)
{
    if (!opt)
        return "none";
    int k = d->train.optimizer;
    int adam_state = sc_optim_state_count(opt) == 2;
    int model_adam = k == SC_OPT_ADAM || k == SC_OPT_ADAMW;
    if (k >= 0 && k <= SC_OPT_LARS && adam_state == model_adam)
        return sc_optim_kind_name(k);
    return adam_state ? "adam" : "sgd";
}

static void shape_of(const sc_param_info *p, int64_t shape[4])
{
    for (int k = 0; k < p->ndim && k < 4; k++)
        shape[k] = p->shape[k];
}

/* "optim/STATE/NAME" into buf; 0, or -1 if it does not fit. */
static int state_key(char *buf, size_t len, const char *state, const char *name)
{
    int n = snprintf(buf, len, "optim/%s/%s", state, name);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int sc_ckpt_save(const char *path, const sc_model_desc *d, const sc_param_info *table, int nparams,
                 const float *params, const float *buffers, const sc_optim *opt,
                 const sc_ckpt_pos *pos, char *err, size_t errlen)
{
    return sc_ckpt_save_meta(path, d, table, nparams, params, buffers, opt, pos, 0, NULL, NULL, err,
                             errlen);
}

int sc_ckpt_save_meta(const char *path, const sc_model_desc *d, const sc_param_info *table,
                      int nparams, const float *params, const float *buffers, const sc_optim *opt,
                      const sc_ckpt_pos *pos, int nmeta, const char *const *keys,
                      const char *const *vals, char *err, size_t errlen)
{
    static const sc_ckpt_pos origin = {0, 0, 0, "simclr"};
    if (!pos)
        pos = &origin;
    sc_st_writer *w = sc_st_writer_new();
    if (!w) {
        sc_errf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    char num[32];
    sc_st_writer_meta(w, "format", FORMAT);
    sc_st_writer_meta(w, "model", d->name);
    sc_st_writer_meta(w, "spec", d->spec ? d->spec : "");
    snprintf(num, sizeof num, "%" PRId64, pos->step);
    sc_st_writer_meta(w, "step", num);
    snprintf(num, sizeof num, "%" PRId64, pos->epoch);
    sc_st_writer_meta(w, "epoch", num);
    snprintf(num, sizeof num, "%" PRIu64, pos->seed);
    sc_st_writer_meta(w, "seed", num);
    sc_st_writer_meta(w, "optimizer", optim_name(opt, d));
    snprintf(num, sizeof num, "%" PRId64, opt ? sc_optim_step_count(opt) : (int64_t)0);
    sc_st_writer_meta(w, "optim_step", num);
    sc_st_writer_meta(w, "kind", pos->kind[0] ? pos->kind : "simclr");
    snprintf(num, sizeof num, "%d", d->batch);
    sc_st_writer_meta(w, "batch", num);
    for (int i = 0; i < nmeta; i++)
        sc_st_writer_meta(w, keys[i], vals[i]);

    int64_t shape[4];
    for (int i = 0; i < nparams; i++) {
        shape_of(&table[i], shape);
        sc_st_writer_f32(w, table[i].name, table[i].ndim, shape, params + table[i].offset);
    }
    for (int i = 0; i < d->nbuffers; i++) {
        shape_of(&d->buffers[i], shape);
        sc_st_writer_f32(w, d->buffers[i].name, d->buffers[i].ndim, shape, buffers + d->buffers[i].offset);
    }
    int nstate = opt ? sc_optim_state_count(opt) : 0;
    for (int s = 0; s < nstate; s++) {
        const float *st = sc_optim_state_ptr(opt, s);
        for (int i = 0; i < nparams; i++) {
            char key[512];
            if (state_key(key, sizeof key, sc_optim_state_name(opt, s), table[i].name)) {
                sc_errf(err, errlen, "%s: parameter name too long: %s", path, table[i].name);
                sc_st_writer_free(w);
                return -1;
            }
            shape_of(&table[i], shape);
            sc_st_writer_f32(w, key, table[i].ndim, shape, st + table[i].offset);
        }
    }
    char msg[512];
    int rc = sc_st_writer_save(w, path, msg, sizeof msg);
    sc_st_writer_free(w);
    if (rc)
        file_error(path, msg, err, errlen);
    return rc;
}

/* Strict decimal integers for the metadata. */
static int meta_i64(const sc_st_file *f, const char *key, int64_t min, int64_t max, int64_t *out)
{
    const char *s = sc_st_meta(f, key);
    if (!s || !*s || *s == ' ' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int meta_u64(const sc_st_file *f, const char *key, uint64_t *out)
{
    const char *s = sc_st_meta(f, key);
    if (!s || !*s || *s == '-' || *s == ' ' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static void shape_text(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; k < ndim && o < len; k++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", k ? ", " : "", (long long)shape[k]);
}

/* The tensor `name` of f for table entry p: NULL when absent (*bad = 0),
 * or when present with the wrong dtype or shape (*bad = 1, err set). */
static const sc_st_tensor *matching(const sc_st_file *f, const char *path, const char *name,
                                    const sc_param_info *p, int *bad, char *err, size_t errlen)
{
    *bad = 0;
    const sc_st_tensor *t = sc_st_get(f, name);
    if (!t)
        return NULL;
    int same = !strcmp(t->dtype, "F32") && t->ndim == p->ndim;
    int64_t want[4] = {0};
    shape_of(p, want);
    for (int k = 0; same && k < p->ndim; k++)
        same = t->shape[k] == want[k];
    if (same && t->nbytes == (size_t)p->numel * sizeof(float))
        return t;
    char a[96], b[96];
    shape_text(a, sizeof a, t->ndim, t->shape);
    shape_text(b, sizeof b, p->ndim, want);
    sc_errf(err, errlen, "%s: error: tensor %s is %s [%s], this model (%s) has F32 [%s]: a checkpoint of "
           "another model", path, name, t->dtype, a, p->name, b);
    *bad = 1;
    return NULL;
}

int sc_ckpt_load(const char *path, const sc_model_desc *d, const sc_param_info *table, int nparams,
                 float *params, float *buffers, sc_optim *opt, sc_ckpt_pos *pos, int *missing,
                 char *err, size_t errlen)
{
    return sc_ckpt_load_meta(path, d, table, nparams, params, buffers, opt, pos, missing, 0, NULL,
                             NULL, err, errlen);
}

int sc_ckpt_load_meta(const char *path, const sc_model_desc *d, const sc_param_info *table,
                      int nparams, float *params, float *buffers, sc_optim *opt, sc_ckpt_pos *pos,
                      int *missing, int nmeta, const char *const *keys, char **vals, char *err,
                      size_t errlen)
{
    for (int i = 0; i < nmeta; i++)
        vals[i] = NULL;
    sc_st_file f;
    char msg[512];
    if (sc_st_read(path, &f, msg, sizeof msg)) {
        file_error(path, msg, err, errlen);
        return -1;
    }
    int rc = -1;
    const sc_st_tensor **found = NULL;
    const char *fmt = sc_st_meta(&f, "format"), *model = sc_st_meta(&f, "model");
    if (!fmt || strcmp(fmt, FORMAT)) {
        sc_errf(err, errlen, "%s: error: not a simclrc checkpoint (format %s%s%s, expected %s)", path,
               fmt ? "'" : "", fmt ? fmt : "missing", fmt ? "'" : "", FORMAT);
        goto done;
    }
    if (!model || !d->name || strcmp(model, d->name)) {
        sc_errf(err, errlen, "%s: error: a checkpoint of the model '%s', not of '%s'", path,
               model ? model : "(unnamed)", d->name ? d->name : "(unnamed)");
        goto done;
    }
    sc_ckpt_pos p = {0};
    const char *kind = sc_st_meta(&f, "kind");
    int64_t ostep = 0;
    if (meta_i64(&f, "step", 0, SC_CKPT_MAX_STEP, &p.step) || meta_i64(&f, "epoch", 0, SC_CKPT_MAX_EPOCH, &p.epoch) ||
        meta_u64(&f, "seed", &p.seed) || meta_i64(&f, "optim_step", 0, SC_CKPT_MAX_STEP, &ostep) || !kind ||
        strlen(kind) >= sizeof p.kind) {
        sc_errf(err, errlen, "%s: error: malformed checkpoint metadata (step and optim_step from 0 to %" PRId64
               ", epoch from 0 to %d, seed, kind)", path, (int64_t)SC_CKPT_MAX_STEP, SC_CKPT_MAX_EPOCH);
        goto done;
    }
    strcpy(p.kind, kind);

    /* Validate everything first: params (optional), buffers and optimizer
     * state (required). */
    int nstate = opt ? sc_optim_state_count(opt) : 0;
    size_t nfound = (size_t)nparams * (size_t)(1 + nstate) + (size_t)d->nbuffers;
    found = calloc(nfound ? nfound : 1, sizeof *found);
    if (!found) {
        sc_errf(err, errlen, "%s: error: out of memory", path);
        goto done;
    }
    int nmissing = 0, bad;
    for (int i = 0; i < nparams; i++) {
        found[i] = matching(&f, path, table[i].name, &table[i], &bad, err, errlen);
        if (bad)
            goto done;
        nmissing += !found[i];
    }
    for (int i = 0; i < d->nbuffers; i++) {
        const sc_st_tensor *t = matching(&f, path, d->buffers[i].name, &d->buffers[i], &bad, err, errlen);
        if (bad)
            goto done;
        if (!t) {
            sc_errf(err, errlen, "%s: error: buffer %s is missing: a checkpoint of another model", path,
                   d->buffers[i].name);
            goto done;
        }
        found[nparams + i] = t;
    }
    for (int s = 0; s < nstate; s++) {
        for (int i = 0; i < nparams; i++) {
            char key[512];
            if (state_key(key, sizeof key, sc_optim_state_name(opt, s), table[i].name)) {
                sc_errf(err, errlen, "%s: error: parameter name too long: %s", path, table[i].name);
                goto done;
            }
            const sc_st_tensor *t = matching(&f, path, key, &table[i], &bad, err, errlen);
            if (bad)
                goto done;
            if (!t) {
                const char *o = sc_st_meta(&f, "optimizer");
                sc_errf(err, errlen, "%s: error: optimizer state %s is missing (the checkpoint's optimizer "
                       "is %s; this run's needs %s)", path, key, o ? o : "unknown",
                       sc_optim_state_name(opt, s));
                goto done;
            }
            found[nparams + d->nbuffers + (size_t)s * nparams + i] = t;
        }
    }

    for (int i = 0; i < nmeta; i++) {
        const char *v = sc_st_meta(&f, keys[i]);
        if (v && !(vals[i] = strdup(v))) {
            sc_errf(err, errlen, "%s: error: out of memory", path);
            for (int k = 0; k < i; k++) {
                free(vals[k]);
                vals[k] = NULL;
            }
            goto done;
        }
    }
    /* All there: copy; nothing fails from here on. */
    for (int i = 0; i < nparams; i++)
        if (found[i])
            memcpy(params + table[i].offset, found[i]->data, found[i]->nbytes);
    for (int i = 0; i < d->nbuffers; i++)
        memcpy(buffers + d->buffers[i].offset, found[nparams + i]->data, found[nparams + i]->nbytes);
    for (int s = 0; s < nstate; s++) {
        float *st = sc_optim_state_ptr(opt, s);
        for (int i = 0; i < nparams; i++) {
            const sc_st_tensor *t = found[nparams + d->nbuffers + (size_t)s * nparams + i];
            memcpy(st + table[i].offset, t->data, t->nbytes);
        }
    }
    if (opt)
        sc_optim_set_step_count(opt, ostep);
    if (pos)
        *pos = p;
    if (missing)
        *missing = nmissing;
    rc = 0;
done:
    free(found);
    sc_st_free(&f);
    return rc;
}
