/* The one-rank communicator (sc_comm.h): linked into every binary built
 * without --mpi. Nothing is communicated; the generated-code calls are
 * still implemented for one rank, so that any binary links and computes
 * the one-process step. */
#include "sc_comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sc_ntxent.h"
#include "sc_statloss.h"
#include "sc_clock.h"

static struct {
    int global_bn;
    int64_t grad_floats, ready;
    /* NT-Xent between the forward and backward call */
    int64_t rows, dim, cap_sim, cap_z;
    double temperature;
    float *z, *sim, *h;
    double *lse, *term;
    sc_comm_stats st;
} S;

static void fail(const char *what)
{
    fprintf(stderr, "internal error: communicator: %s\n", what);
    abort();
}

int sc_comm_is_mpi(void) { return 0; }
void sc_comm_init(void) {}
int sc_comm_rank(void) { return 0; }
int sc_comm_size(void) { return 1; }
int sc_comm_local_size(void) { return 1; }
void sc_comm_set_global_bn(int on) { S.global_bn = on != 0; }
int sc_comm_global_bn(void) { return S.global_bn; }
void sc_comm_set_grad_floats(int64_t n) { S.grad_floats = n; }
void sc_comm_allreduce_sum(double *x, int64_t n) { (void)x, (void)n; }
void sc_comm_average_floats(float *x, int64_t n) { (void)x, (void)n; }
int sc_comm_max_int(int v) { return v; }
void sc_comm_bcast(void *buf, size_t bytes) { (void)buf, (void)bytes; }
void sc_comm_barrier(void) {}
_Noreturn void sc_comm_abort(int status) { exit(status); }

void sc_comm_bn_allreduce(double *sums, int64_t n) { (void)sums, (void)n; }
double sc_comm_bn_ranks(void) { return 1.0; }
void sc_comm_loss_mean(double *loss) { (void)loss; }

void sc_comm_ntxent(const float *z, int64_t rows, int64_t dim, double temperature, float *loss)
{
    double t0 = sc_now_seconds();
    if (rows > S.cap_sim) {
        free(S.sim);
        free(S.h);
        free(S.lse);
        free(S.term);
        S.sim = malloc(sizeof(float) * (size_t)(rows * rows));
        S.h = malloc(sizeof(float) * (size_t)(rows * rows));
        S.lse = malloc(sizeof(double) * (size_t)rows);
        S.term = malloc(sizeof(double) * (size_t)rows);
        if (!S.sim || !S.h || !S.lse || !S.term)
            fail("out of memory for NT-Xent");
        S.cap_sim = rows;
    }
    if (rows * dim > S.cap_z) {
        free(S.z);
        if (!(S.z = malloc(sizeof(float) * (size_t)(rows * dim))))
            fail("out of memory for NT-Xent");
        S.cap_z = rows * dim;
    }
    memcpy(S.z, z, sizeof(float) * (size_t)(rows * dim));
    S.rows = rows;
    S.dim = dim;
    S.temperature = temperature;
    sc_ntxent_rows_fwd(rows, rows, dim, temperature, 0, S.z, S.z, S.sim, S.lse, S.term);
    double sum = 0.0;
    for (int64_t i = 0; i < rows; i++)
        sum += S.term[i];
    *loss = (float)(sum / (double)rows);
    S.st.ntxent_s += sc_now_seconds() - t0;
}

void sc_comm_ntxent_bwd(float *dz, int64_t rows, int64_t dim)
{
    double t0 = sc_now_seconds();
    if (rows != S.rows || dim != S.dim)
        fail("NT-Xent backward without its forward");
    sc_ntxent_rows_bwd(rows, rows, dim, S.temperature, 0, S.z, S.sim, S.lse, 1.0f, S.h, dz);
    S.st.ntxent_s += sc_now_seconds() - t0;
}

void sc_comm_statloss(const float *z, int64_t rows, int64_t dim, int32_t kind, double c0, double c1, double c2,
                      double c3, float *loss)
{
    double t0 = sc_now_seconds(), coef[4] = {c0, c1, c2, c3};
    if (sc_statloss_global_fwd(z, rows, dim, kind, coef, loss))
        fail("out of memory for the loss");
    S.st.ntxent_s += sc_now_seconds() - t0;
}

void sc_comm_statloss_bwd(float *dz, int64_t rows, int64_t dim)
{
    double t0 = sc_now_seconds();
    if (sc_statloss_global_bwd(rows, dim, 0, 1.0f, dz))
        fail("the loss's backward without its forward, or out of memory");
    S.st.ntxent_s += sc_now_seconds() - t0;
}

void sc_comm_grad_ready(float *grads, int64_t offset, int64_t n)
{
    (void)grads, (void)offset;
    S.ready += n;
}

void sc_comm_step_end(float *grads)
{
    (void)grads;
    if (S.grad_floats && S.ready != S.grad_floats) {
        char msg[128];
        snprintf(msg, sizeof msg, "the step reported %lld of %lld gradient floats ready", (long long)S.ready,
                 (long long)S.grad_floats);
        fail(msg);
    }
    S.ready = 0;
    S.st.steps++;
}

void sc_comm_stats_get(sc_comm_stats *s) { *s = S.st; }
void sc_comm_stats_reset(void) { memset(&S.st, 0, sizeof S.st); }
