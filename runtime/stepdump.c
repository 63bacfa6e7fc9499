#include "sc_stepdump.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_safetensors.h"

void sc_stepdump_add_param(sc_st_writer *w, const char *prefix, const sc_param_info *p, const float *base)
{
    char name[512];
    int64_t shape[4];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    for (int k = 0; k < p->ndim; k++)
        shape[k] = p->shape[k];
    sc_st_writer_f32(w, name, p->ndim, shape, base + p->offset);
}

int sc_stepdump_save(const sc_state *s, uint64_t seed, const char *path, char *err, size_t errlen)
{
    const sc_model_desc *d = s->desc;
    sc_st_writer *w = sc_st_writer_new();
    size_t len = 1;
    for (int i = 0; i < d->nparams; i++)
        len += strlen(d->params[i].name) + 1;
    char *names = malloc(len);
    if (!w || !names) {
        snprintf(err, errlen, "%s: out of memory while preparing the file", path);
        free(names);
        sc_st_writer_free(w);
        return -1;
    }
    names[0] = '\0';
    size_t at = 0;
    for (int i = 0; i < d->nparams; i++) {
        sc_stepdump_add_param(w, "", &d->params[i], s->params);
        at += (size_t)snprintf(names + at, len - at, "%s%s", i ? "," : "", d->params[i].name);
    }
    int64_t in_shape[4] = {2 * (int64_t)d->batch, d->in_c, d->in_h, d->in_w};
    sc_st_writer_f32(w, "input", 4, in_shape, s->input);
    int64_t one = 1;
    sc_st_writer_f32(w, "loss", 1, &one, s->loss);
    for (int i = 0; i < d->nparams; i++)
        sc_stepdump_add_param(w, "grad/", &d->params[i], s->grads);
    for (int i = 0; i < d->nbuffers; i++)
        sc_stepdump_add_param(w, "running/", &d->buffers[i], s->buffers);

    char seedstr[32];
    snprintf(seedstr, sizeof seedstr, "%" PRIu64, seed);
    sc_st_writer_meta(w, "format", "simclrc-step-1");
    sc_st_writer_meta(w, "model", d->name ? d->name : "");
    sc_st_writer_meta(w, "seed", seedstr);
    sc_st_writer_meta(w, "params", names);
    int rc = sc_st_writer_save(w, path, err, errlen);
    free(names);
    sc_st_writer_free(w);
    return rc;
}
