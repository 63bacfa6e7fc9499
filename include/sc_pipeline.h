/* The input pipeline: worker threads shuffle each epoch, decode and augment
 * two views of every image into a ring of batch buffers ahead of the
 * training step.
 *
 * A batch buffer is float [2B, C, H, W]: view 0 of every image first, then
 * view 1 (row i and row i + B are the two views of image i). Every view is
 * a function of (seed, epoch, dataset index, view) and the batch order of
 * (seed, epoch) only, so the batches are bit-identical for any number of
 * threads. Each epoch holds floor(N / B) batches; the last partial batch
 * is dropped, as the step's shapes are fixed. Under data parallelism each
 * rank runs a pipeline over its shard of every global batch (rank,
 * ranks). */
#ifndef SC_PIPELINE_H
#define SC_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "sc_augment.h"
#include "sc_stl10.h"

enum { SC_STREAM_SHUFFLE = 4 };

typedef struct {
    const sc_stl10 *data;        /* borrowed; must outlive the pipeline */
    const sc_augment_spec *aug;  /* borrowed; checked by sc_pipeline_start */
    int batch;                   /* images per batch (B) */
    int threads;                 /* worker threads, >= 1 */
    int depth;                   /* batch buffers in the ring; 0 = threads + 1 */
    uint64_t seed;
    int first_epoch;             /* epochs first_epoch .. epochs - 1 are produced */
    int epochs;
    /* Data-parallel shards (0 and 0 mean one rank): an epoch holds
     * floor(N / (B * ranks)) global batches of B * ranks images, and rank r
     * gets images [r B, (r + 1) B) of each, so the ranks' batches together
     * are the one-rank batches of B * ranks images. */
    int rank, ranks;
} sc_pipeline_config;

typedef struct {
    const float *views;      /* [2B, C, H, W], valid until the batch is released */
    const uint32_t *index;   /* the B dataset indices, in batch order */
    int epoch, step;         /* step within the epoch */
    double wait_seconds;     /* time sc_pipeline_next waited for this batch */
} sc_batch;

typedef struct sc_pipeline sc_pipeline;

/* Starts the workers. Returns 0, or -1 with a message in err. */
int sc_pipeline_start(sc_pipeline **out, const sc_pipeline_config *cfg, char *err, size_t errlen);
/* Blocks until the next batch is ready. Returns 1 with *b filled, 0 when
 * every epoch has been delivered, -1 if a worker ran out of memory. A
 * batch still held is released first. */
int sc_pipeline_next(sc_pipeline *p, sc_batch *b);
/* Hands the current batch's buffer back to the workers. */
void sc_pipeline_release(sc_pipeline *p);
int sc_pipeline_steps_per_epoch(const sc_pipeline *p);
/* Total time the consumer has spent waiting in sc_pipeline_next. */
double sc_pipeline_wait_seconds(sc_pipeline *p);
/* Stops and joins the workers and frees everything; p may be NULL. */
void sc_pipeline_stop(sc_pipeline *p);

/* The order of epoch `epoch`: a permutation of 0..n-1 that depends only on
 * (seed, epoch). */
void sc_pipeline_permutation(uint64_t seed, uint64_t epoch, size_t n, uint32_t *perm);

#endif
