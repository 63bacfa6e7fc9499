#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "sc_state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sc_ema.h"
#include "sc_init.h"
#include "sc_rng.h"
#include "sc_err.h"

#define ALIGN 64
#define HUGE ((size_t)2 << 20)

float *sc_floats_alloc(int64_t n)
{
    if (n < 0 || (uint64_t)n > (SIZE_MAX - ALIGN) / sizeof(float))
        return NULL;
    /* Round up so that vector code may read whole cache lines at the end. */
    size_t bytes = ((size_t)n * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    if (!bytes)
        bytes = ALIGN;
    /* Buffers of a huge page or more start on a huge-page boundary and ask for
     * huge pages (THP is often in madvise mode): with 4 KiB pages the arena's
     * physical placement, and so its cache conflicts and TLB reach, changed
     * from run to run. Only whole huge pages inside the buffer are advised,
     * so the resident size does not grow. */
    size_t align = bytes >= HUGE ? HUGE : ALIGN;
    void *p = NULL;
    if (posix_memalign(&p, align, bytes))
        return NULL;
#ifdef MADV_HUGEPAGE
    if (align == HUGE)
        (void)madvise(p, bytes / HUGE * HUGE, MADV_HUGEPAGE); /* advice only */
#endif
    memset(p, 0, bytes);
    return p;
}

int64_t sc_input_floats(const sc_model_desc *d)
{
    return 2 * (int64_t)d->batch * d->in_c * d->in_h * d->in_w;
}

int64_t sc_param_count(const sc_model_desc *d)
{
    int64_t n = 0;
    for (int i = 0; i < d->nparams; i++)
        n += d->params[i].numel;
    return n;
}

static int by_offset(const void *a, const void *b)
{
    int64_t x = (*(const sc_param_info *const *)a)->offset, y = (*(const sc_param_info *const *)b)->offset;
    return (x > y) - (x < y);
}

/* Checks one tensor table against the buffer it indexes. */
static int check_table(const sc_param_info *t, int n, int64_t floats, const char *what,
                       char *err, size_t errlen)
{
    if (n < 0 || (n > 0 && !t)) {
        sc_errf(err, errlen, "the model's %s table is missing", what);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const sc_param_info *p = &t[i];
        int64_t numel = 1;
        int bad = !p->name || p->ndim < 0 || p->ndim > 4;
        for (int k = 0; !bad && k < p->ndim; k++) {
            bad = p->shape[k] <= 0;
            numel *= p->shape[k];
        }
        if (bad || numel != p->numel || p->offset < 0 || p->offset > floats - p->numel) {
            sc_errf(err, errlen, "the model's %s entry %d (%s) has an inconsistent shape or offset",
                   what, i, p->name ? p->name : "unnamed");
            return -1;
        }
    }
    /* No two tensors may share floats: sort by offset, compare neighbours. */
    const sc_param_info **by = malloc(sizeof *by * (size_t)(n ? n : 1));
    if (!by) {
        sc_errf(err, errlen, "out of memory checking the model's %s table", what);
        return -1;
    }
    for (int i = 0; i < n; i++)
        by[i] = &t[i];
    qsort(by, (size_t)n, sizeof *by, by_offset);
    int rc = 0;
    for (int i = 1; i < n && !rc; i++) {
        if (by[i - 1]->offset + by[i - 1]->numel > by[i]->offset) {
            sc_errf(err, errlen, "the model's %s tensors %s and %s overlap", what, by[i - 1]->name,
                   by[i]->name);
            rc = -1;
        }
    }
    free(by);
    return rc;
}

int sc_desc_check(const sc_model_desc *d, char *err, size_t errlen)
{
    if (d->abi_version != SC_ABI_VERSION) {
        sc_errf(err, errlen, "the model object has ABI version %d, this runtime expects %d "
               "(recompile the model with a matching simclrc)", d->abi_version, SC_ABI_VERSION);
        return -1;
    }
    if (!d->name || !d->compiler_version || !d->target_cpu) {
        sc_errf(err, errlen, "the model description lacks its name, compiler version or target CPU");
        return -1;
    }
    if (d->batch < 1 || d->in_c < 1 || d->in_h < 1 || d->in_w < 1 || d->params_floats < 0 ||
        d->buffers_floats < 0 || d->arena_floats < 0 || d->encode_arena_floats < 0) {
        sc_errf(err, errlen, "the model description has a non-positive size");
        return -1;
    }
    if (d->encode_batch < 1 || d->feature_dim < 1 || d->finetune_batch < 1 || d->nclasses < 2 ||
        d->ft_params_floats < d->params_floats || d->ft_arena_floats < 0 || d->nft_params < d->nparams) {
        sc_errf(err, errlen, "the model description has inconsistent encoder or fine-tuning sizes");
        return -1;
    }
    if (check_table(d->params, d->nparams, d->params_floats, "parameter", err, errlen) ||
        check_table(d->buffers, d->nbuffers, d->buffers_floats, "buffer", err, errlen) ||
        check_table(d->ft_params, d->nft_params, d->ft_params_floats, "fine-tuning parameter", err,
                    errlen))
        return -1;
    /* The fine-tuning table extends the parameter table in place. */
    for (int i = 0; i < d->nparams; i++)
        if (d->ft_params[i].offset != d->params[i].offset || d->ft_params[i].numel != d->params[i].numel) {
            sc_errf(err, errlen, "the model's fine-tuning parameter %d (%s) differs from the parameter table",
                   i, d->params[i].name);
            return -1;
        }
    return 0;
}

int64_t sc_params_alloc_floats(const sc_model_desc *d)
{
    return d->ft_params_floats > d->params_floats ? d->ft_params_floats : d->params_floats;
}

int64_t sc_arena_alloc_floats(const sc_model_desc *d)
{
    int64_t a = d->arena_floats;
    if (d->encode_arena_floats > a)
        a = d->encode_arena_floats;
    if (d->ft_arena_floats > a)
        a = d->ft_arena_floats;
    return a;
}

void sc_state_free(sc_state *s)
{
    free(s->params);
    free(s->grads);
    free(s->buffers);
    free(s->arena);
    free(s->input);
    free(s->loss);
    memset(s, 0, sizeof *s);
}

int sc_state_alloc(sc_state *s, const sc_model_desc *d, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->desc = d;
    int64_t arena = sc_arena_alloc_floats(d), pf = sc_params_alloc_floats(d);
    s->params = sc_floats_alloc(pf);
    s->grads = sc_floats_alloc(pf);
    s->buffers = sc_floats_alloc(d->buffers_floats);
    s->arena = sc_floats_alloc(arena);
    s->input = sc_floats_alloc(sc_input_floats(d));
    s->loss = sc_floats_alloc(1);
    if (!s->params || !s->grads || !s->buffers || !s->arena || !s->input || !s->loss) {
        double mib = (double)(2 * pf + d->buffers_floats + arena + sc_input_floats(d)) *
                     sizeof(float) / (1024.0 * 1024.0);
        sc_errf(err, errlen, "out of memory allocating the model's buffers (%.1f MiB)", mib);
        sc_state_free(s);
        return -1;
    }
    return 0;
}

void sc_params_init(const sc_model_desc *d, float *params, float *buffers, uint64_t seed)
{
    sc_rng r;
    sc_rng_seed(&r, seed, SC_STREAM_PARAMS);
    for (int i = 0; i < d->nparams; i++) {
        const sc_param_info *p = &d->params[i];
        sc_init_tensor(&r, (sc_init_kind)p->init, p->fan_in, (long)p->numel, params + p->offset);
    }
    for (int i = 0; i < d->nbuffers; i++) {
        const sc_param_info *p = &d->buffers[i];
        sc_init_tensor(&r, (sc_init_kind)p->init, p->fan_in, (long)p->numel, buffers + p->offset);
    }
    /* BYOL's target network starts as a copy of the online one. */
    sc_ema_plan ema;
    char err[256];
    if (sc_ema_plan_init(&ema, d, err, sizeof err) == 0) {
        sc_ema_apply(&ema, params, buffers, 0.0);
        sc_ema_plan_free(&ema);
    }
}

void sc_input_synthetic(const sc_model_desc *d, float *input, uint64_t seed)
{
    sc_rng r;
    sc_rng_seed(&r, seed, SC_STREAM_INPUT);
    int64_t n = sc_input_floats(d);
    for (int64_t i = 0; i < n; i++)
        input[i] = (float)sc_rng_normal(&r);
}
