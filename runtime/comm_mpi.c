/* The MPI communicator (sc_comm.h), linked into binaries built with
 * `simclrc --mpi`: Open MPI over MPI_COMM_WORLD.
 *
 * NT-Xent: the ranks all-gather their projections into the global layout
 * (two gathers, view 0 rows then view 1 rows), each computes the
 * similarities of its own 2N rows against all 2NK, and the ranks
 * all-gather the rows' log-sum-exps and loss terms, so every rank sums the
 * same terms in the same order (the loss is bit-identical on all ranks)
 * and can form the backward of its own rows, which needs every row's
 * log-sum-exp. Per rank that is O(2N * 2NK * d), not O((2NK)^2 d).
 *
 * Gradients: sc_comm_grad_ready appends ranges to the open bucket; a
 * bucket of BUCKET_FLOATS or more is started with MPI_Iallreduce (in place
 * when its ranges are adjacent in the gradient buffer, else packed into
 * the bucket's own buffer), and the started buckets are tested on every
 * call so that the library progresses them while the backward pass runs.
 * sc_comm_step_end starts the last bucket, waits for all and divides by
 * the world size. Every rank makes the same calls in the same order (the
 * generated step is the same), so the buckets match across ranks. */
#include "sc_comm.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sc_ntxent.h"
#include "sc_statloss.h"
#include "sc_clock.h"

enum { BUCKET_FLOATS = 1 << 20 }; /* 4 MB */

typedef struct {
    int64_t off, n;
} range;

typedef struct {
    range *r;
    int nr, cap;
    int64_t floats;
    float *pack;          /* staging when the ranges are not adjacent */
    int64_t pack_cap;
    float *base;          /* where the reduction runs: grads + lo, or pack */
    int64_t lo;
    int packed, started;
    MPI_Request req;
} bucket;

static struct {
    int init, rank, size, local_size, global_bn;
    int64_t grad_floats, ready;
    /* NT-Xent between the forward and backward call */
    int64_t rows, dim, m;
    double temperature;
    float *zg, *sim, *h;
    double *lse_l, *term_l;    /* per local row */
    double *lt, *lt_g, *lse_g; /* [lse, term] per local row, per global row; lse per global row */
    int64_t cap_zg, cap_sim, cap_rows, cap_m;
    /* gradient buckets of the current step */
    bucket *b;
    int nb, capb, open;   /* open: index of the bucket being filled, -1 if none */
    float *grads;
    sc_comm_stats st;
} C = {.open = -1};

static _Noreturn void fail(const char *what)
{
    fprintf(stderr, "internal error: MPI communicator (rank %d): %s\n", C.rank, what);
    if (C.init)
        MPI_Abort(MPI_COMM_WORLD, 3);
    abort();
}

static void *grow(void *p, size_t bytes)
{
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q)
        fail("out of memory");
    return q;
}

static void finalize(void)
{
    int done = 0;
    MPI_Finalized(&done);
    if (!done)
        MPI_Finalize();
    free(C.zg);
    free(C.sim);
    free(C.h);
    free(C.lse_l);
    free(C.term_l);
    free(C.lt);
    free(C.lt_g);
    free(C.lse_g);
    for (int i = 0; i < C.capb; i++) {
        free(C.b[i].r);
        free(C.b[i].pack);
    }
    free(C.b);
    memset(&C, 0, sizeof C);
    C.open = -1;
    C.init = -1; /* finalized: no second MPI_Init */
}

void sc_comm_init(void)
{
    if (C.init > 0)
        return;
    if (C.init < 0)
        fail("used after MPI_Finalize");
    int already = 0, provided;
    MPI_Initialized(&already);
    if (!already)
        MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &C.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &C.size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, C.rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &C.local_size);
    MPI_Comm_free(&node);
    C.init = 1;
    if (!already)
        atexit(finalize);
}

int sc_comm_is_mpi(void) { return 1; }

int sc_comm_rank(void)
{
    sc_comm_init();
    return C.rank;
}

int sc_comm_size(void)
{
    sc_comm_init();
    return C.size;
}

int sc_comm_local_size(void)
{
    sc_comm_init();
    return C.local_size;
}

void sc_comm_set_global_bn(int on) { C.global_bn = on != 0; }
int sc_comm_global_bn(void) { return C.global_bn; }
void sc_comm_set_grad_floats(int64_t n) { C.grad_floats = n; }

/* MPI counts are ints: big buffers go in pieces. */
enum { CHUNK = 1 << 28 };

void sc_comm_allreduce_sum(double *x, int64_t n)
{
    sc_comm_init();
    for (int64_t o = 0; o < n; o += CHUNK)
        MPI_Allreduce(MPI_IN_PLACE, x + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_DOUBLE, MPI_SUM,
                      MPI_COMM_WORLD);
}

void sc_comm_average_floats(float *x, int64_t n)
{
    sc_comm_init();
    if (C.size == 1)
        return;
    for (int64_t o = 0; o < n; o += CHUNK)
        MPI_Allreduce(MPI_IN_PLACE, x + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
    for (int64_t i = 0; i < n; i++)
        x[i] /= (float)C.size;
}

int sc_comm_max_int(int v)
{
    sc_comm_init();
    int r = v;
    MPI_Allreduce(&v, &r, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return r;
}

void sc_comm_bcast(void *buf, size_t bytes)
{
    sc_comm_init();
    for (size_t o = 0; o < bytes; o += CHUNK)
        MPI_Bcast((char *)buf + o, (int)(bytes - o < CHUNK ? bytes - o : CHUNK), MPI_BYTE, 0, MPI_COMM_WORLD);
}

void sc_comm_barrier(void)
{
    sc_comm_init();
    MPI_Barrier(MPI_COMM_WORLD);
}

_Noreturn void sc_comm_abort(int status)
{
    fflush(stdout);
    fflush(stderr);
    if (C.init > 0)
        MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

/* ---- batchnorm ---- */

void sc_comm_bn_allreduce(double *sums, int64_t n)
{
    if (!C.global_bn)
        return;
    sc_comm_init();
    if (C.size == 1)
        return;
    double t0 = sc_now_seconds();
    sc_comm_allreduce_sum(sums, n);
    C.st.bn_s += sc_now_seconds() - t0;
}

double sc_comm_bn_ranks(void)
{
    if (!C.global_bn)
        return 1.0;
    sc_comm_init();
    return (double)C.size;
}

void sc_comm_loss_mean(double *loss)
{
    sc_comm_init();
    if (C.size == 1)
        return;
    sc_comm_allreduce_sum(loss, 1);
    *loss /= C.size;
}

/* ---- NT-Xent ---- */

/* The ranks' [n, width] blocks of type t into the global rows: block 0 of
 * every rank, then block 1. */
static void gather_halves(const void *local, void *global, int64_t n, int64_t width, MPI_Datatype t,
                          size_t elem)
{
    int64_t half = n * width;
    if (half * C.size > CHUNK)
        fail("a gathered block exceeds the MPI count limit");
    MPI_Allgather(local, (int)half, t, global, (int)half, t, MPI_COMM_WORLD);
    MPI_Allgather((const char *)local + (size_t)half * elem, (int)half, t,
                  (char *)global + (size_t)(half * C.size) * elem, (int)half, t, MPI_COMM_WORLD);
}

void sc_comm_ntxent(const float *z, int64_t rows, int64_t dim, double temperature, float *loss)
{
    sc_comm_init();
    if (rows % 2)
        fail("NT-Xent over an odd number of rows");
    int64_t m = rows * C.size, n = rows / 2;
    if (m * dim > C.cap_zg) {
        free(C.zg);
        C.zg = grow(NULL, sizeof(float) * (size_t)(m * dim));
        C.cap_zg = m * dim;
    }
    if (rows * m > C.cap_sim) {
        free(C.sim);
        free(C.h);
        C.sim = grow(NULL, sizeof(float) * (size_t)(rows * m));
        C.h = grow(NULL, sizeof(float) * (size_t)(rows * m));
        C.cap_sim = rows * m;
    }
    if (rows > C.cap_rows) {
        C.lt = grow(C.lt, sizeof(double) * 2 * (size_t)rows);
        C.lse_l = grow(C.lse_l, sizeof(double) * (size_t)rows);
        C.term_l = grow(C.term_l, sizeof(double) * (size_t)rows);
        C.cap_rows = rows;
    }
    if (m > C.cap_m) {
        C.lt_g = grow(C.lt_g, sizeof(double) * 2 * (size_t)m);
        C.lse_g = grow(C.lse_g, sizeof(double) * (size_t)m);
        C.cap_m = m;
    }
    C.rows = rows;
    C.dim = dim;
    C.m = m;
    C.temperature = temperature;

    double t0 = sc_now_seconds();
    gather_halves(z, C.zg, n, dim, MPI_FLOAT, sizeof(float));
    double t1 = sc_now_seconds();
    sc_ntxent_rows_fwd(rows, m, dim, temperature, (int64_t)C.rank * n, z, C.zg, C.sim, C.lse_l, C.term_l);
    /* lse and term side by side, so that one gather carries both. */
    for (int64_t i = 0; i < rows; i++) {
        C.lt[2 * i] = C.lse_l[i];
        C.lt[2 * i + 1] = C.term_l[i];
    }
    double t2 = sc_now_seconds();
    gather_halves(C.lt, C.lt_g, n, 2, MPI_DOUBLE, sizeof(double));
    double t3 = sc_now_seconds();
    double sum = 0.0;
    for (int64_t g = 0; g < m; g++) {
        C.lse_g[g] = C.lt_g[2 * g];
        sum += C.lt_g[2 * g + 1];
    }
    *loss = (float)(sum / (double)m);
    C.st.gather_s += (t1 - t0) + (t3 - t2);
    C.st.ntxent_s += (t2 - t1) + (sc_now_seconds() - t3);
}

void sc_comm_ntxent_bwd(float *dz, int64_t rows, int64_t dim)
{
    if (rows != C.rows || dim != C.dim || !C.zg)
        fail("NT-Xent backward without its forward");
    double t0 = sc_now_seconds();
    sc_ntxent_rows_bwd(rows, C.m, dim, C.temperature, (int64_t)C.rank * (rows / 2), C.zg, C.sim, C.lse_g,
                       (float)C.size, C.h, dz);
    C.st.ntxent_s += sc_now_seconds() - t0;
}

/* ---- Barlow Twins, VICReg ----
 * Every rank gathers the global z and computes the whole loss and
 * gradient (sc_statloss.h): O(m d^2) per rank, exact, no second gather.
 *
 * SC_DEBUG_RANK_LOCAL_STATS=1 computes them wrongly on purpose, each rank
 * over its own rows (as a data-parallel port that forgot the gather
 * would, gradients then averaged): the negative control of
 * tests/test_mpi.c, which must see that differ from one process. */
static int rank_local(void)
{
    const char *e = getenv("SC_DEBUG_RANK_LOCAL_STATS");
    return e && !strcmp(e, "1");
}

void sc_comm_statloss(const float *z, int64_t rows, int64_t dim, int32_t kind, double c0, double c1, double c2,
                      double c3, float *loss)
{
    sc_comm_init();
    if (rows % 2)
        fail("a loss over an odd number of rows");
    int64_t m = rows * C.size;
    if (m * dim > C.cap_zg) {
        free(C.zg);
        C.zg = grow(NULL, sizeof(float) * (size_t)(m * dim));
        C.cap_zg = m * dim;
    }
    double t0 = sc_now_seconds(), coef[4] = {c0, c1, c2, c3};
    if (rank_local())
        memcpy(C.zg, z, sizeof(float) * (size_t)(rows * dim)), m = rows;
    else
        gather_halves(z, C.zg, rows / 2, dim, MPI_FLOAT, sizeof(float));
    double t1 = sc_now_seconds();
    if (sc_statloss_global_fwd(C.zg, m, dim, kind, coef, loss))
        fail("out of memory for the loss");
    C.st.gather_s += t1 - t0;
    C.st.ntxent_s += sc_now_seconds() - t1;
}

void sc_comm_statloss_bwd(float *dz, int64_t rows, int64_t dim)
{
    double t0 = sc_now_seconds();
    int local = rank_local();
    if (sc_statloss_global_bwd(rows, dim, local ? 0 : (int64_t)C.rank * (rows / 2), local ? 1.0f : (float)C.size,
                               dz))
        fail("the loss's backward without its forward, or out of memory");
    C.st.ntxent_s += sc_now_seconds() - t0;
}

/* ---- gradients ---- */

static int by_offset(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static void start_bucket(bucket *k)
{
    qsort(k->r, (size_t)k->nr, sizeof *k->r, by_offset);
    int adjacent = 1;
    for (int i = 1; i < k->nr; i++)
        adjacent &= k->r[i].off == k->r[i - 1].off + k->r[i - 1].n;
    k->lo = k->r[0].off;
    k->packed = !adjacent;
    if (adjacent) {
        k->base = C.grads + k->lo;
    } else {
        if (k->floats > k->pack_cap) {
            free(k->pack);
            k->pack = grow(NULL, sizeof(float) * (size_t)k->floats);
            k->pack_cap = k->floats;
        }
        int64_t o = 0;
        for (int i = 0; i < k->nr; i++) {
            memcpy(k->pack + o, C.grads + k->r[i].off, sizeof(float) * (size_t)k->r[i].n);
            o += k->r[i].n;
        }
        k->base = k->pack;
    }
    if (k->floats > CHUNK)
        fail("a gradient bucket exceeds the MPI count limit");
    MPI_Iallreduce(MPI_IN_PLACE, k->base, (int)k->floats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &k->req);
    k->started = 1;
    C.st.buckets++;
    C.st.grad_floats += k->floats;
}

/* Lets the library move the started reductions along. */
static void progress(void)
{
    for (int i = 0; i < C.nb; i++) {
        if (C.b[i].started && C.b[i].req != MPI_REQUEST_NULL) {
            int flag;
            MPI_Test(&C.b[i].req, &flag, MPI_STATUS_IGNORE);
        }
    }
}

void sc_comm_grad_ready(float *grads, int64_t offset, int64_t n)
{
    sc_comm_init();
    if (C.size == 1) {
        C.ready += n;
        return;
    }
    double t0 = sc_now_seconds();
    if (C.grads && C.grads != grads)
        fail("gradient ranges of two buffers in one step");
    C.grads = grads;
    if (C.open < 0) {
        if (C.nb == C.capb) {
            int cap = C.capb ? 2 * C.capb : 16;
            C.b = grow(C.b, sizeof *C.b * (size_t)cap);
            memset(C.b + C.capb, 0, sizeof *C.b * (size_t)(cap - C.capb));
            C.capb = cap;
        }
        C.open = C.nb++;
        bucket *k = &C.b[C.open];
        k->nr = 0;
        k->floats = 0;
        k->started = 0;
        k->req = MPI_REQUEST_NULL;
    }
    bucket *k = &C.b[C.open];
    if (k->nr == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 16;
        k->r = grow(k->r, sizeof *k->r * (size_t)k->cap);
    }
    k->r[k->nr++] = (range){offset, n};
    k->floats += n;
    C.ready += n;
    if (k->floats >= BUCKET_FLOATS) {
        start_bucket(k);
        C.open = -1;
    }
    progress();
    C.st.grad_s += sc_now_seconds() - t0;
}

void sc_comm_step_end(float *grads)
{
    sc_comm_init();
    if (C.grad_floats && C.ready != C.grad_floats) {
        char msg[128];
        snprintf(msg, sizeof msg, "the step reported %lld of %lld gradient floats ready", (long long)C.ready,
                 (long long)C.grad_floats);
        fail(msg);
    }
    C.ready = 0;
    C.st.steps++;
    if (C.size == 1)
        return;
    if (C.grads && C.grads != grads)
        fail("sc_comm_step_end on another gradient buffer");
    double t0 = sc_now_seconds();
    if (C.open >= 0) {
        start_bucket(&C.b[C.open]);
        C.open = -1;
    }
    float inv = 1.0f / (float)C.size;
    for (int i = 0; i < C.nb; i++) {
        bucket *k = &C.b[i];
        MPI_Wait(&k->req, MPI_STATUS_IGNORE);
        if (!k->packed) {
            float *g = C.grads + k->lo;
            for (int64_t j = 0; j < k->floats; j++)
                g[j] *= inv;
        } else {
            int64_t o = 0;
            for (int r = 0; r < k->nr; r++) {
                float *g = C.grads + k->r[r].off;
                for (int64_t j = 0; j < k->r[r].n; j++)
                    g[j] = k->pack[o + j] * inv;
                o += k->r[r].n;
            }
        }
    }
    C.nb = 0;
    C.grads = NULL;
    C.st.grad_wait_s += sc_now_seconds() - t0;
}

void sc_comm_stats_get(sc_comm_stats *s) { *s = C.st; }
void sc_comm_stats_reset(void) { memset(&C.st, 0, sizeof C.st); }
