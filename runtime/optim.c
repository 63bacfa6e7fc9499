#include "sc_err.h"
#include "sc_optim.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_parallel.h"
#include "sc_state.h"

const char *sc_optim_kind_name(int kind)
{
    static const char *const names[] = {"sgd", "adam", "adamw", "lars"};
    return kind >= SC_OPT_SGD && kind <= SC_OPT_LARS ? names[kind] : "?";
}

#define MAX_STATE 2

/* What the updates need of a tensor; a copy, as the caller's table may be
 * temporary. */
typedef struct {
    int64_t offset, numel;
    int no_decay;
} tensor;

/* A block of one tensor's elements: the unit the elementwise updates
 * (SGD, Adam) split over the thread pool. */
typedef struct {
    int tensor;
    int64_t start, len;
} block;

/* Elements per block: 64 KB of each array, enough to hide a task's cost. */
#define BLOCK 16384

struct sc_optim {
    sc_optim_config c;
    tensor *params;
    int nparams;
    block *blocks;
    int64_t nblocks;
    int64_t floats;
    int64_t steps;
    int nstate;
    const char *state_name[MAX_STATE];
    float *state[MAX_STATE];
};

void sc_optim_config_from_train(const sc_train_defaults *t, sc_optim_config *c)
{
    memset(c, 0, sizeof *c);
    c->kind = t->optimizer;
    c->momentum = t->optimizer == SC_OPT_SGD || t->optimizer == SC_OPT_LARS ? t->momentum : 0;
    c->nesterov = 0;
    c->weight_decay = t->weight_decay;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->trust_coef = 0.001;
}

static int check_config(const sc_optim_config *c, char *err, size_t errlen)
{
    if (c->kind < SC_OPT_SGD || c->kind > SC_OPT_LARS) {
        sc_errf(err, errlen, "unknown optimizer kind %d", c->kind);
        return -1;
    }
    if (!isfinite(c->weight_decay) || c->weight_decay < 0) {
        sc_errf(err, errlen, "weight decay must be finite and >= 0, not %g", c->weight_decay);
        return -1;
    }
    if (c->kind == SC_OPT_SGD || c->kind == SC_OPT_LARS) {
        if (!isfinite(c->momentum) || c->momentum < 0) {
            sc_errf(err, errlen, "momentum must be finite and >= 0, not %g", c->momentum);
            return -1;
        }
        if (c->nesterov && c->momentum == 0) {
            sc_errf(err, errlen, "Nesterov momentum needs a momentum > 0");
            return -1;
        }
    }
    if (c->kind == SC_OPT_LARS && !(c->trust_coef > 0 && isfinite(c->trust_coef))) {
        sc_errf(err, errlen, "LARS trust coefficient must be > 0, not %g", c->trust_coef);
        return -1;
    }
    if (c->kind == SC_OPT_ADAM || c->kind == SC_OPT_ADAMW) {
        if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1)) {
            sc_errf(err, errlen, "Adam betas must be in [0, 1), not %g and %g", c->beta1, c->beta2);
            return -1;
        }
        if (!(c->eps > 0 && isfinite(c->eps))) {
            sc_errf(err, errlen, "Adam eps must be > 0, not %g", c->eps);
            return -1;
        }
    }
    return 0;
}

sc_optim *sc_optim_new(const sc_optim_config *c, const sc_param_info *params, int nparams,
                       int64_t params_floats, char *err, size_t errlen)
{
    if (check_config(c, err, errlen))
        return NULL;
    if (nparams < 0 || params_floats < 0 || (nparams > 0 && !params)) {
        sc_errf(err, errlen, "bad parameter table (%d tensors, %lld floats)", nparams,
               (long long)params_floats);
        return NULL;
    }
    for (int i = 0; i < nparams; i++) {
        const sc_param_info *p = &params[i];
        if (p->offset < 0 || p->numel < 0 || p->offset > params_floats ||
            p->numel > params_floats - p->offset) {
            sc_errf(err, errlen, "parameter %s (offset %lld, %lld floats) lies outside the %lld-float buffer",
                   p->name ? p->name : "(unnamed)", (long long)p->offset, (long long)p->numel,
                   (long long)params_floats);
            return NULL;
        }
    }
    sc_optim *o = calloc(1, sizeof *o);
    if (!o)
        goto oom;
    o->c = *c;
    o->nparams = nparams;
    o->floats = params_floats;
    o->params = malloc(sizeof *o->params * (size_t)(nparams ? nparams : 1));
    if (!o->params)
        goto oom;
    for (int i = 0; i < nparams; i++) {
        o->params[i].offset = params[i].offset;
        o->params[i].numel = params[i].numel;
        o->params[i].no_decay = params[i].no_decay != 0;
        o->nblocks += (params[i].numel + BLOCK - 1) / BLOCK;
    }
    o->blocks = malloc(sizeof *o->blocks * (size_t)(o->nblocks ? o->nblocks : 1));
    if (!o->blocks)
        goto oom;
    for (int i = 0, b = 0; i < nparams; i++)
        for (int64_t s = 0; s < params[i].numel; s += BLOCK)
            o->blocks[b++] = (block){i, s, params[i].numel - s < BLOCK ? params[i].numel - s : BLOCK};
    if (c->kind == SC_OPT_ADAM || c->kind == SC_OPT_ADAMW) {
        o->state_name[o->nstate++] = "exp_avg";
        o->state_name[o->nstate++] = "exp_avg_sq";
    } else if (c->momentum != 0) {
        o->state_name[o->nstate++] = "momentum_buffer";
    }
    for (int i = 0; i < o->nstate; i++)
        if (!(o->state[i] = sc_floats_alloc(params_floats)))
            goto oom;
    return o;
oom:
    sc_optim_free(o);
    sc_errf(err, errlen, "out of memory for the optimizer state (%lld floats)", (long long)params_floats);
    return NULL;
}

void sc_optim_free(sc_optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < MAX_STATE; i++)
        free(o->state[i]);
    free(o->params);
    free(o->blocks);
    free(o);
}

int64_t sc_optim_step_count(const sc_optim *o) { return o->steps; }
void sc_optim_set_step_count(sc_optim *o, int64_t steps) { o->steps = steps; }
int sc_optim_state_count(const sc_optim *o) { return o->nstate; }
int64_t sc_optim_state_floats(const sc_optim *o) { return o->floats; }

const char *sc_optim_state_name(const sc_optim *o, int i)
{
    return i >= 0 && i < o->nstate ? o->state_name[i] : NULL;
}

float *sc_optim_state_ptr(const sc_optim *o, int i)
{
    return i >= 0 && i < o->nstate ? o->state[i] : NULL;
}

/* The elementwise updates run in double and round once when stored. */

static void sgd_tensor(float *w, const float *g, float *buf, int64_t n, double lr, double wd,
                       double m, int nesterov)
{
    for (int64_t i = 0; i < n; i++) {
        double d = (double)g[i] + wd * w[i];
        if (buf) {
            double b = m * buf[i] + d;
            buf[i] = (float)b;
            d = nesterov ? d + m * b : b;
        }
        w[i] = (float)(w[i] - lr * d);
    }
}

static void adam_tensor(float *w, const float *g, float *m1, float *m2, int64_t n,
                        const sc_optim_config *c, double lr, double wd, int decoupled, int64_t t)
{
    double bc1 = 1 - pow(c->beta1, (double)t), bc2 = sqrt(1 - pow(c->beta2, (double)t));
    double step = lr / bc1, shrink = decoupled ? 1 - lr * wd : 1, l2 = decoupled ? 0 : wd;
    for (int64_t i = 0; i < n; i++) {
        double wi = shrink * w[i];
        double d = (double)g[i] + l2 * w[i];
        double a = c->beta1 * m1[i] + (1 - c->beta1) * d;
        double b = c->beta2 * m2[i] + (1 - c->beta2) * d * d;
        m1[i] = (float)a;
        m2[i] = (float)b;
        w[i] = (float)(wi - step * a / (sqrt(b) / bc2 + c->eps));
    }
}

static void lars_tensor(float *w, const float *g, float *buf, int64_t n, double lr, double wd,
                        double m, int nesterov, double eta, int adapt)
{
    double ratio = 1;
    if (adapt) {
        double ww = 0, gg = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = (double)g[i] + wd * w[i];
            ww += (double)w[i] * w[i];
            gg += d * d;
        }
        if (ww > 0 && gg > 0)
            ratio = eta * sqrt(ww) / sqrt(gg);
    }
    double slr = lr * ratio;
    for (int64_t i = 0; i < n; i++) {
        double d = slr * ((double)g[i] + wd * w[i]);
        double v = buf ? m * buf[i] + d : d;
        if (buf)
            buf[i] = (float)v;
        w[i] = (float)(w[i] - (nesterov ? m * v + d : v));
    }
}

typedef struct {
    const sc_optim *o;
    float *params;
    const float *grads;
    double lr;
    int64_t t;
} step_task;

/* Elements [start, start + len) of tensor i. SGD and Adam update each
 * element from its own values alone, so any split gives the same bits. */
static void update(const sc_optim *o, float *params, const float *grads, double lr, int64_t t, int i,
                   int64_t start, int64_t len)
{
    const sc_optim_config *c = &o->c;
    const tensor *p = &o->params[i];
    int64_t at = p->offset + start;
    float *w = params + at;
    const float *g = grads + at;
    double wd = p->no_decay ? 0 : c->weight_decay;
    float *s0 = o->nstate > 0 ? o->state[0] + at : NULL;
    float *s1 = o->nstate > 1 ? o->state[1] + at : NULL;
    switch (c->kind) {
    case SC_OPT_SGD:
        sgd_tensor(w, g, s0, len, lr, wd, c->momentum, c->nesterov);
        break;
    case SC_OPT_ADAM:
    case SC_OPT_ADAMW:
        adam_tensor(w, g, s0, s1, len, c, lr, wd, c->kind == SC_OPT_ADAMW, t);
        break;
    case SC_OPT_LARS: /* whole tensors: the trust ratio sums over one */
        lars_tensor(w, g, s0, len, lr, wd, c->momentum, c->nesterov, c->trust_coef, !p->no_decay);
        break;
    }
}

static void update_blocks(void *ctx, int64_t lo, int64_t hi, int64_t tid)
{
    const step_task *k = ctx;
    (void)tid;
    for (int64_t b = lo; b < hi; b++) {
        const block *bl = &k->o->blocks[b];
        update(k->o, k->params, k->grads, k->lr, k->t, bl->tensor, bl->start, bl->len);
    }
}

void sc_optim_step(sc_optim *o, float *params, const float *grads, double lr)
{
    int64_t t = ++o->steps;
    if (o->c.kind == SC_OPT_LARS) {
        for (int i = 0; i < o->nparams; i++)
            update(o, params, grads, lr, t, i, 0, o->params[i].numel);
        return;
    }
    step_task k = {o, params, grads, lr, t};
    sc_parallel_for(update_blocks, &k, o->nblocks);
}

double sc_lr_scaled(double lr, int scaling_linear, int batch)
{
    return scaling_linear ? lr * batch / 256.0 : lr;
}

int sc_lr_schedule_init(sc_lr_schedule *s, const sc_train_defaults *t, double lr, int batch,
                        int64_t epochs, int64_t steps_per_epoch, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (!isfinite(lr) || lr < 0) {
        sc_errf(err, errlen, "learning rate must be finite and >= 0, not %g", lr);
        return -1;
    }
    if (batch <= 0 || epochs < 0 || steps_per_epoch < 0 || t->warmup_epochs < 0) {
        sc_errf(err, errlen, "bad schedule sizes: batch %d, epochs %lld, steps per epoch %lld, warmup epochs %d",
               batch, (long long)epochs, (long long)steps_per_epoch, (int)t->warmup_epochs);
        return -1;
    }
    if (t->schedule != SC_SCHED_CONSTANT && t->schedule != SC_SCHED_COSINE) {
        sc_errf(err, errlen, "unknown schedule kind %d", (int)t->schedule);
        return -1;
    }
    if (steps_per_epoch > 0 && (epochs > INT64_MAX / steps_per_epoch ||
                                t->warmup_epochs > INT64_MAX / steps_per_epoch)) {
        sc_errf(err, errlen, "too many steps: %lld epochs of %lld", (long long)epochs,
               (long long)steps_per_epoch);
        return -1;
    }
    s->kind = t->schedule;
    s->base_lr = sc_lr_scaled(lr, t->lr_scaling_linear, batch);
    s->warmup_steps = t->warmup_epochs * steps_per_epoch;
    s->total_steps = epochs * steps_per_epoch;
    return 0;
}

double sc_lr_at(const sc_lr_schedule *s, int64_t step)
{
    if (step < 0)
        step = 0;
    if (step < s->warmup_steps)
        return s->base_lr * (double)step / (double)s->warmup_steps;
    if (s->kind == SC_SCHED_CONSTANT || s->total_steps <= s->warmup_steps)
        return s->base_lr;
    double span = (double)(s->total_steps - s->warmup_steps);
    double done = (double)(step - s->warmup_steps);
    if (done > span)
        done = span;
    return s->base_lr * 0.5 * (1 + cos(M_PI * done / span));
}
