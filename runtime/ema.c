/* BYOL's target network update (sc_ema.h). */
#include "sc_ema.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sc_err.h"

#define PREFIX "target."

const char *sc_target_source(const char *name)
{
    size_t n = strlen(PREFIX);
    return name && !strncmp(name, PREFIX, n) ? name + n : NULL;
}

double sc_ema_tau(double tau_base, int64_t k, int64_t K)
{
    if (K < 1)
        return tau_base;
    const double pi = 3.14159265358979323846;
    return 1.0 - (1.0 - tau_base) * (cos(pi * (double)k / (double)K) + 1.0) / 2.0;
}

static const sc_param_info *find_param(const sc_model_desc *d, const char *name)
{
    for (int i = 0; i < d->nparams; i++)
        if (!strcmp(d->params[i].name, name))
            return &d->params[i];
    return NULL;
}

static const sc_param_info *find_buffer(const sc_model_desc *d, const char *name)
{
    for (int i = 0; i < d->nbuffers; i++)
        if (!strcmp(d->buffers[i].name, name))
            return &d->buffers[i];
    return NULL;
}

int sc_ema_plan_init(sc_ema_plan *p, const sc_model_desc *d, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < d->nbuffers; i++) {
        const sc_param_info *b = &d->buffers[i];
        if (b->role != SC_ROLE_TARGET)
            continue;
        const char *src = sc_target_source(b->name);
        const sc_param_info *o = src ? find_param(d, src) : NULL;
        if (!o) {
            if (src && find_buffer(d, src))
                continue; /* a running statistic: the target's own forward updates it */
            sc_errf(err, errlen, "the target tensor %s has no online parameter %s", b->name, src ? src : "?");
            sc_ema_plan_free(p);
            return -1;
        }
        if (o->numel != b->numel) {
            sc_errf(err, errlen, "the target tensor %s and %s differ in size", b->name, src);
            sc_ema_plan_free(p);
            return -1;
        }
        sc_ema_pair *q = realloc(p->pairs, (size_t)(p->n + 1) * sizeof *q);
        if (!q) {
            sc_errf(err, errlen, "out of memory");
            sc_ema_plan_free(p);
            return -1;
        }
        p->pairs = q;
        p->pairs[p->n++] = (sc_ema_pair){b->offset, o->offset, b->numel};
    }
    return 0;
}

void sc_ema_plan_free(sc_ema_plan *p)
{
    free(p->pairs);
    p->pairs = NULL;
    p->n = 0;
}

void sc_ema_update(float *target, const float *online, int64_t n, double tau)
{
    if (tau == 0) {
        memcpy(target, online, sizeof(float) * (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        target[i] = (float)(tau * target[i] + (1.0 - tau) * online[i]);
}

void sc_ema_apply(const sc_ema_plan *p, const float *params, float *buffers, double tau)
{
    for (int i = 0; i < p->n; i++)
        sc_ema_update(buffers + p->pairs[i].target, params + p->pairs[i].online, p->pairs[i].numel, tau);
}
