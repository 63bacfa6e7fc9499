/* Data-parallel training: the calls between a binary built with
 * `simclrc --mpi` and the communicator (runtime/comm_mpi.c over MPI; a
 * binary built without --mpi links runtime/comm_serial.c, the one-rank
 * communicator, and its generated code makes none of the calls marked
 * "generated code").
 *
 * Every rank runs the same step on its own shard of the global batch: its
 * input holds view 0 of its N images, then view 1. The global batch is the
 * ranks' images in rank order, so the gathered projections are laid out as
 * a one-process step of batch N*K would lay them out: view 0 of rank 0's
 * images, of rank 1's, ..., then view 1 of each. */
#ifndef SC_COMM_H
#define SC_COMM_H

#include <stddef.h>
#include <stdint.h>

/* ---- called by generated code ---- */

/* Batchnorm statistics: sums n doubles over all ranks in place when
 * global batchnorm is on (else leaves them). */
void sc_comm_bn_allreduce(double *sums, int64_t n);
/* The number of ranks whose batches the statistics cover: the world size
 * with global batchnorm, else 1. */
double sc_comm_bn_ranks(void);

/* A loss that is a mean over images (BYOL's): this rank's mean over its
 * images becomes the mean over all ranks' (each holds the same batch), in
 * place. The gradients need no such step: their average is already it. */
void sc_comm_loss_mean(double *loss);

/* NT-Xent over the projections of all ranks: z is this rank's [rows, dim]
 * (rows = 2N); writes the global loss (mean over all 2NK anchors, the same
 * on every rank) to *loss and keeps what the backward call needs. */
void sc_comm_ntxent(const float *z, int64_t rows, int64_t dim, double temperature, float *loss);
/* dz = K times this rank's rows of dLoss/dZ, so that the average of the
 * ranks' parameter gradients is the gradient of the global loss. */
void sc_comm_ntxent_bwd(float *dz, int64_t rows, int64_t dim);

/* Barlow Twins and VICReg (kind SC_STATLOSS_*) over the projections of
 * all ranks: z is this rank's [rows, dim]; the feature statistics and C
 * cover the global batch, as one process at the global batch computes
 * them (coefficients c0..c3: compiler/model.h's SC_BARLOW_* /
 * SC_VICREG_* slots). Writes the global loss (the same on every rank) and
 * keeps what the backward call needs; sc_comm_statloss_bwd then writes
 * dz = K times this rank's rows of dLoss/dZ, as sc_comm_ntxent_bwd. */
enum { SC_STATLOSS_BARLOW, SC_STATLOSS_VICREG };
void sc_comm_statloss(const float *z, int64_t rows, int64_t dim, int32_t kind, double c0, double c1, double c2,
                      double c3, float *loss);
void sc_comm_statloss_bwd(float *dz, int64_t rows, int64_t dim);

/* grads[offset, offset + n) is final for this step (called in the order
 * the backward pass finishes parameters): may start its averaging. */
void sc_comm_grad_ready(float *grads, int64_t offset, int64_t n);
/* End of sc_step: every gradient is averaged over the ranks on return. */
void sc_comm_step_end(float *grads);

/* ---- called by the runtime ----
 *
 * runtime/comm_mpi.c joins the MPI job (MPI_COMM_WORLD) on the first call
 * that needs it, explicit (sc_comm_init) or from generated code;
 * runtime/comm_serial.c is one rank and never communicates. Collective
 * calls (marked so) must be made by every rank in the same order. */

/* 1 in a binary linked with the MPI communicator. */
int sc_comm_is_mpi(void);
/* Joins the job (idempotent; MPI_Finalize then runs at exit). */
void sc_comm_init(void);
int sc_comm_rank(void);
int sc_comm_size(void);
/* Ranks on this machine (sharing its memory): threads per rank default to
 * the cores divided by it. */
int sc_comm_local_size(void);

/* Global batchnorm (off by default): statistics over all ranks' images. */
void sc_comm_set_global_bn(int on);
int sc_comm_global_bn(void);
/* The floats of the gradient buffer that every step reports ready
 * (params_floats less gaps: the sum of the parameters' numel), checked by
 * sc_comm_step_end; 0 turns the check off. */
void sc_comm_set_grad_floats(int64_t n);

/* Collective: sums n doubles over the ranks in place. */
void sc_comm_allreduce_sum(double *x, int64_t n);
/* Collective: averages n floats over the ranks in place (batchnorm running
 * statistics of ranks that normalised locally). */
void sc_comm_average_floats(float *x, int64_t n);
/* Collective: the largest of the ranks' values (flags: stop, failed). */
int sc_comm_max_int(int v);
/* Collective: rank 0's bytes to every rank. */
void sc_comm_bcast(void *buf, size_t bytes);
/* Collective. */
void sc_comm_barrier(void);
/* Ends the whole job with status (a rank cannot go on alone). */
_Noreturn void sc_comm_abort(int status);

/* Seconds spent in the calls above the line, summed since the last reset,
 * for bench-step: communication (the gathers and allreduces, including
 * waiting for slower ranks) and the NT-Xent arithmetic over the gathered
 * projections. */
typedef struct {
    double gather_s;      /* projections and NT-Xent row terms */
    double bn_s;          /* batchnorm statistics */
    double grad_s;        /* packing and starting gradient buckets (sc_comm_grad_ready) */
    double grad_wait_s;   /* completing them (sc_comm_step_end) */
    double ntxent_s;      /* arithmetic, not communication */
    int64_t steps;        /* sc_comm_step_end calls */
    int64_t buckets;      /* gradient buckets reduced */
    int64_t grad_floats;  /* gradient floats reduced */
} sc_comm_stats;

void sc_comm_stats_get(sc_comm_stats *s);
void sc_comm_stats_reset(void);

#endif
