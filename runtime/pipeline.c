/* Producer/consumer ring of batch buffers. Batches are numbered g = 0, 1,
 * ... over all epochs and batch g lives in slot g % depth. Workers take a
 * few images at a time from the batch being filled; the consumer takes
 * slots in order. One mutex guards all the bookkeeping; the augmentation
 * itself runs unlocked. */
#include "sc_err.h"
#include "sc_pipeline.h"
#include "sc_clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };
/* Images handed to a worker at a time: small enough to balance the load,
 * large enough that the lock is rare next to the ~100 us per view. */
enum { CHUNK = 2 };

typedef struct {
    float *views;
    uint32_t *index;
    int state, done;
    long g;
} slot;

typedef struct {
    sc_pipeline *p;
    pthread_t tid;
    int started;
} worker;

struct sc_pipeline {
    sc_pipeline_config cfg;
    size_t n;            /* images in the split */
    int spe;             /* steps per epoch */
    long total;          /* batches over all epochs */
    size_t view_floats;  /* C * H * W */
    int depth;
    int ranks;           /* cfg.ranks, 1 when unset */

    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* a slot became free, or stop */
    pthread_cond_t ready_cv; /* a slot became ready */
    int stop;
    int failed;          /* a worker could not get its scratch memory */
    long g_fill;         /* batch being handed out */
    int fill_open, fill_next;
    long g_cons;         /* batch the consumer gets next */
    int holding;
    double wait_total;

    uint32_t *perm;
    long perm_epoch;
    slot *slots;
    worker *workers;
};

void sc_pipeline_permutation(uint64_t seed, uint64_t epoch, size_t n, uint32_t *perm)
{
    sc_rng r;
    sc_rng_seed(&r, seed, ((uint64_t)SC_STREAM_SHUFFLE << 60) ^ epoch);
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)sc_rng_below(&r, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

static void augment_image(sc_pipeline *p, sc_augment_ws *ws, uint8_t *pix, const slot *s, int i,
                          int epoch)
{
    const sc_pipeline_config *c = &p->cfg;
    uint32_t idx = s->index[i];
    sc_stl10_image_chw(c->data, idx, pix);
    for (int v = 0; v < 2; v++) {
        sc_rng r;
        sc_rng_seed(&r, c->seed, sc_augment_stream((uint64_t)epoch, idx, v));
        float *out = s->views + ((size_t)v * c->batch + (size_t)i) * p->view_floats;
        sc_augment_apply(c->aug, pix, SC_STL10_HEIGHT, SC_STL10_WIDTH, out, &r, ws);
    }
}

static void *worker_main(void *arg)
{
    worker *self = arg;
    sc_pipeline *p = self->p;
    sc_augment_ws *ws = sc_augment_ws_new(p->cfg.aug, SC_STL10_HEIGHT, SC_STL10_WIDTH);
    uint8_t *pix = malloc(SC_STL10_IMAGE_BYTES);

    pthread_mutex_lock(&p->mu);
    if (!ws || !pix) {
        p->failed = 1;
        pthread_cond_broadcast(&p->ready_cv);
    }
    while (ws && pix && !p->stop && p->g_fill < p->total) {
        slot *s = &p->slots[p->g_fill % p->depth];
        if (!p->fill_open) {
            if (s->state != SLOT_FREE) {
                pthread_cond_wait(&p->work_cv, &p->mu);
                continue;
            }
            long epoch = p->cfg.first_epoch + p->g_fill / p->spe;
            int step = (int)(p->g_fill % p->spe);
            if (p->perm_epoch != epoch) {
                sc_pipeline_permutation(p->cfg.seed, (uint64_t)epoch, p->n, p->perm);
                p->perm_epoch = epoch;
            }
            memcpy(s->index, p->perm + ((size_t)step * p->ranks + (size_t)p->cfg.rank) * p->cfg.batch,
                   (size_t)p->cfg.batch * sizeof *s->index);
            s->state = SLOT_FILLING;
            s->done = 0;
            s->g = p->g_fill;
            p->fill_open = 1;
            p->fill_next = 0;
        }
        int i0 = p->fill_next;
        int i1 = i0 + CHUNK < p->cfg.batch ? i0 + CHUNK : p->cfg.batch;
        int epoch = (int)(p->cfg.first_epoch + p->g_fill / p->spe);
        p->fill_next = i1;
        if (i1 == p->cfg.batch) {
            p->g_fill++;
            p->fill_open = 0;
        }
        pthread_mutex_unlock(&p->mu);

        for (int i = i0; i < i1; i++)
            augment_image(p, ws, pix, s, i, epoch);

        pthread_mutex_lock(&p->mu);
        s->done += i1 - i0;
        if (s->done == p->cfg.batch) {
            s->state = SLOT_READY;
            pthread_cond_broadcast(&p->ready_cv);
        }
    }
    pthread_mutex_unlock(&p->mu);
    free(pix);
    sc_augment_ws_free(ws);
    return NULL;
}

int sc_pipeline_start(sc_pipeline **out, const sc_pipeline_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    if (sc_augment_check(cfg->aug, SC_STL10_HEIGHT, SC_STL10_WIDTH, err, errlen))
        return -1;
    size_t n = sc_stl10_count(cfg->data);
    int ranks = cfg->ranks ? cfg->ranks : 1;
    if (cfg->batch < 1 || cfg->threads < 1 || cfg->depth < 0 || cfg->first_epoch < 0 ||
        cfg->epochs < cfg->first_epoch || ranks < 1 || cfg->rank < 0 || cfg->rank >= ranks) {
        sc_errf(err, errlen, "pipeline: bad configuration (batch %d, threads %d, depth %d, epochs %d..%d)",
             cfg->batch, cfg->threads, cfg->depth, cfg->first_epoch, cfg->epochs);
        return -1;
    }
    if (n < (size_t)cfg->batch * (size_t)ranks || n > UINT32_MAX) {
        sc_errf(err, errlen, "pipeline: the split holds %zu images; a batch needs %zu", n,
                (size_t)cfg->batch * (size_t)ranks);
        return -1;
    }
    sc_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        sc_errf(err, errlen, "pipeline: out of memory");
        return -1;
    }
    p->cfg = *cfg;
    p->n = n;
    p->ranks = ranks;
    p->spe = (int)(n / ((size_t)cfg->batch * (size_t)ranks));
    p->total = (long)(cfg->epochs - cfg->first_epoch) * p->spe;
    p->view_floats = (size_t)cfg->aug->out_c * cfg->aug->out_h * cfg->aug->out_w;
    p->depth = cfg->depth ? cfg->depth : cfg->threads + 1;
    p->perm_epoch = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->ready_cv, NULL);

    p->perm = malloc(n * sizeof *p->perm);
    p->slots = calloc((size_t)p->depth, sizeof *p->slots);
    p->workers = calloc((size_t)cfg->threads, sizeof *p->workers);
    if (!p->perm || !p->slots || !p->workers)
        goto oom;
    /* 64-byte aligned for the compiled step's vector loads. */
    size_t bytes = 2 * (size_t)cfg->batch * p->view_floats * sizeof(float);
    bytes = (bytes + 63) / 64 * 64;
    for (int d = 0; d < p->depth; d++) {
        p->slots[d].views = aligned_alloc(64, bytes);
        p->slots[d].index = malloc((size_t)cfg->batch * sizeof(uint32_t));
        if (!p->slots[d].views || !p->slots[d].index)
            goto oom;
    }
    for (int t = 0; t < cfg->threads; t++) {
        p->workers[t].p = p;
        int rc = pthread_create(&p->workers[t].tid, NULL, worker_main, &p->workers[t]);
        if (rc != 0) {
            sc_errf(err, errlen, "pipeline: cannot start worker thread: %s", strerror(rc));
            sc_pipeline_stop(p);
            return -1;
        }
        p->workers[t].started = 1;
    }
    *out = p;
    return 0;
oom:
    sc_errf(err, errlen, "pipeline: out of memory for %d batch buffers", p->depth);
    sc_pipeline_stop(p);
    return -1;
}

static void release_locked(sc_pipeline *p)
{
    if (!p->holding)
        return;
    p->slots[p->g_cons % p->depth].state = SLOT_FREE;
    p->g_cons++;
    p->holding = 0;
    pthread_cond_broadcast(&p->work_cv);
}

int sc_pipeline_next(sc_pipeline *p, sc_batch *b)
{
    pthread_mutex_lock(&p->mu);
    release_locked(p);
    if (p->g_cons >= p->total) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    slot *s = &p->slots[p->g_cons % p->depth];
    double t0 = sc_now_seconds();
    while (!(s->state == SLOT_READY && s->g == p->g_cons) && !p->failed)
        pthread_cond_wait(&p->ready_cv, &p->mu);
    if (p->failed) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    double waited = sc_now_seconds() - t0;
    p->wait_total += waited;
    s->state = SLOT_HELD;
    p->holding = 1;
    b->views = s->views;
    b->index = s->index;
    b->epoch = (int)(p->cfg.first_epoch + p->g_cons / p->spe);
    b->step = (int)(p->g_cons % p->spe);
    b->wait_seconds = waited;
    pthread_mutex_unlock(&p->mu);
    return 1;
}

void sc_pipeline_release(sc_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    release_locked(p);
    pthread_mutex_unlock(&p->mu);
}

int sc_pipeline_steps_per_epoch(const sc_pipeline *p) { return p->spe; }

double sc_pipeline_wait_seconds(sc_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    double w = p->wait_total;
    pthread_mutex_unlock(&p->mu);
    return w;
}

void sc_pipeline_stop(sc_pipeline *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_cond_broadcast(&p->ready_cv);
    pthread_mutex_unlock(&p->mu);
    if (p->workers)
        for (int t = 0; t < p->cfg.threads; t++)
            if (p->workers[t].started)
                pthread_join(p->workers[t].tid, NULL);
    if (p->slots)
        for (int d = 0; d < p->depth; d++) {
            free(p->slots[d].views);
            free(p->slots[d].index);
        }
    pthread_cond_destroy(&p->ready_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p->workers);
    free(p->perm);
    free(p);
}
