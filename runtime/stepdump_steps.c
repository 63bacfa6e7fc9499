/* `dump-step --steps K`: several whole training steps, for a reference
 * that checks the optimizer and BYOL's target update too (sc_stepdump.h). */
#include "sc_stepdump.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_ema.h"
#include "sc_err.h"
#include "sc_optim.h"
#include "sc_safetensors.h"

/* Appends "%.17g," to a growing list (the caller frees *list). */
static int append(char **list, size_t *len, double v)
{
    char buf[40];
    int n = snprintf(buf, sizeof buf, "%s%.17g", *len ? "," : "", v);
    char *p = realloc(*list, *len + (size_t)n + 1);
    if (!p)
        return -1;
    memcpy(p + *len, buf, (size_t)n + 1);
    *list = p;
    *len += (size_t)n;
    return 0;
}

int sc_stepdump_steps(sc_state *s, uint64_t seed, int64_t steps, const char *path, char *err, size_t errlen)
{
    const sc_model_desc *d = s->desc;
    sc_optim_config oc;
    sc_optim_config_from_train(&d->train, &oc);
    sc_lr_schedule sched;
    if (sc_lr_schedule_init(&sched, &d->train, d->train.lr, d->batch, 1, steps, err, errlen))
        return -1;
    sc_optim *opt = sc_optim_new(&oc, d->params, d->nparams, d->params_floats, err, errlen);
    if (!opt)
        return -1;
    sc_ema_plan ema;
    if (sc_ema_plan_init(&ema, d, err, errlen)) {
        sc_optim_free(opt);
        return -1;
    }
    sc_st_writer *w = sc_st_writer_new();
    float *losses = calloc((size_t)steps, sizeof *losses);
    char *names = NULL, *lrs = NULL, *taus = NULL;
    size_t nlen = 0, llen = 0, tlen = 0;
    int rc = w && losses ? 0 : -1;
    for (int i = 0; i < d->nparams && !rc; i++) {
        sc_stepdump_add_param(w, "", &d->params[i], s->params);
        size_t n = strlen(d->params[i].name) + 2;
        char *p = realloc(names, nlen + n);
        rc = p ? 0 : -1;
        if (p) {
            names = p;
            nlen += (size_t)snprintf(names + nlen, n, "%s%s", nlen ? "," : "", d->params[i].name);
        }
    }
    int64_t in_shape[4] = {2 * (int64_t)d->batch, d->in_c, d->in_h, d->in_w};
    for (int64_t k = 0; k < steps && !rc; k++) {
        char name[64];
        sc_input_synthetic(d, s->input, seed + (uint64_t)k);
        snprintf(name, sizeof name, "input/%" PRId64, k);
        sc_st_writer_f32(w, name, 4, in_shape, s->input);
        sc_step(s->params, s->grads, s->buffers, s->arena, s->input, s->loss);
        losses[k] = s->loss[0];
        double lr = sc_lr_at(&sched, k), tau = sc_ema_tau(d->tau_base, k, steps);
        sc_optim_step(opt, s->params, s->grads, lr);
        if (ema.n)
            sc_ema_apply(&ema, s->params, s->buffers, tau);
        rc = append(&lrs, &llen, lr) || append(&taus, &tlen, tau) ? -1 : 0;
    }
    if (rc) {
        sc_errf(err, errlen, "%s: out of memory while preparing the file", path);
    } else {
        int64_t k = steps;
        sc_st_writer_f32(w, "loss", 1, &k, losses);
        for (int i = 0; i < d->nparams; i++)
            sc_stepdump_add_param(w, "after/", &d->params[i], s->params);
        for (int i = 0; i < d->nbuffers; i++)
            sc_stepdump_add_param(w, "after/", &d->buffers[i], s->buffers);
        char num[32];
        sc_st_writer_meta(w, "format", "simclrc-steps-1");
        sc_st_writer_meta(w, "model", d->name ? d->name : "");
        snprintf(num, sizeof num, "%" PRIu64, seed);
        sc_st_writer_meta(w, "seed", num);
        snprintf(num, sizeof num, "%" PRId64, steps);
        sc_st_writer_meta(w, "steps", num);
        sc_st_writer_meta(w, "params", names ? names : "");
        sc_st_writer_meta(w, "lr", lrs);
        sc_st_writer_meta(w, "tau", taus);
        rc = sc_st_writer_save(w, path, err, errlen);
    }
    free(names);
    free(lrs);
    free(taus);
    free(losses);
    sc_st_writer_free(w);
    sc_ema_plan_free(&ema);
    sc_optim_free(opt);
    return rc;
}
