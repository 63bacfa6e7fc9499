#include "stepdump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "sc_rng.h"
#include "sc_safetensors.h"

static int add_tensor(sc_st_writer *w, const char *name, const sc_tensor *t, const double *v)
{
    float *f = malloc((size_t)t->numel * sizeof *f);
    if (!f)
        return -1;
    for (long i = 0; i < t->numel; i++)
        f[i] = (float)v[i];
    int64_t shape[SC_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        shape[d] = t->shape[d];
    sc_st_writer_f32(w, name, t->ndim, shape, f);
    free(f);
    return 0;
}

int sc_stepdump_write(const sc_graph *g, unsigned long long seed, const char *path)
{
    sc_interp it;
    if (sc_interp_init(&it, g))
        return -1;
    sc_interp_init_params(&it, seed);

    /* Synthetic input: standard normal values, rounded to float. */
    sc_rng r;
    sc_rng_seed(&r, seed, SC_STREAM_INPUT);
    const sc_tensor *in = &g->t[g->input];
    for (long i = 0; i < in->numel; i++)
        it.buf[g->input][i] = (float)sc_rng_normal(&r);
    /* A classifier graph also takes labels: uniform classes, drawn after
     * the images from the same stream. */
    if (g->labels >= 0) {
        const sc_tensor *logits = &g->t[g->n[g->t[g->loss].producer].in[0]];
        for (long i = 0; i < g->t[g->labels].numel; i++)
            it.buf[g->labels][i] = (double)sc_rng_below(&r, (uint64_t)logits->shape[1]);
    }

    /* Parameters are dumped as they were before the step. */
    sc_st_writer *w = sc_st_writer_new();
    char *names = calloc((size_t)g->nparams, SC_NAME_MAX + 1);
    int rc = (w && names) ? 0 : -1;
    for (int i = 0; i < g->nparams && !rc; i++) {
        const sc_tensor *p = &g->t[g->params[i]];
        rc = add_tensor(w, p->name, p, it.buf[g->params[i]]);
        if (i)
            strcat(names, ",");
        strcat(names, p->name);
    }
    if (!rc)
        rc = add_tensor(w, "input", in, it.buf[g->input]);
    if (!rc && g->labels >= 0)
        rc = add_tensor(w, "labels", &g->t[g->labels], it.buf[g->labels]);

    sc_interp_run(&it, 0, g->nn);

    if (!rc)
        rc = add_tensor(w, "loss", &g->t[g->loss], it.buf[g->loss]);
    for (int i = 0; i < g->nparams && !rc; i++) {
        const sc_tensor *p = &g->t[g->params[i]];
        char gname[SC_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "grad/%s", p->name);
        if (p->grad >= 0) {
            rc = add_tensor(w, gname, &g->t[p->grad], it.buf[p->grad]);
        } else {
            /* A parameter the loss does not depend on has a zero gradient. */
            double *zero = calloc((size_t)p->numel, sizeof *zero);
            rc = zero ? add_tensor(w, gname, p, zero) : -1;
            free(zero);
        }
    }
    if (rc) {
        fprintf(stderr, "simclrc: error: out of memory writing the step dump\n");
    } else {
        char seedstr[32], err[512];
        snprintf(seedstr, sizeof seedstr, "%llu", seed);
        sc_st_writer_meta(w, "format", "simclrc-step-1");
        sc_st_writer_meta(w, "graph", g->labels >= 0 ? "finetune" : "simclr");
        sc_st_writer_meta(w, "model", g->name);
        sc_st_writer_meta(w, "seed", seedstr);
        sc_st_writer_meta(w, "params", names);
        if (sc_st_writer_save(w, path, err, sizeof err)) {
            fprintf(stderr, "simclrc: error: %s\n", err);
            rc = -1;
        }
    }
    free(names);
    sc_st_writer_free(w);
    sc_interp_free(&it);
    return rc;
}
