#include "sc_err.h"
#include "sc_knn.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Similarity block budget when chunk_rows is 0: 8M floats (32 MB). */
#define AUTO_BLOCK_FLOATS (8 << 20)

void sc_knn_config_default(sc_knn_config *c, int classes)
{
    c->k = 200;
    c->temperature = 0.1;
    c->classes = classes;
    c->chunk_rows = 0;
}

void sc_l2_normalize_rows(float *x, int64_t n, int64_t d)
{
    for (int64_t r = 0; r < n; r++) {
        float *row = x + r * d;
        double ss = 0;
        for (int64_t j = 0; j < d; j++)
            ss += (double)row[j] * row[j];
        if (ss > 0) {
            double inv = 1 / sqrt(ss);
            for (int64_t j = 0; j < d; j++)
                row[j] = (float)(row[j] * inv);
        }
    }
}

typedef struct {
    float sim;
    int64_t idx;
} neighbour;

/* The order of the selection: a larger similarity wins, then a lower index,
 * so the chosen set does not depend on the selection algorithm. */
static int better(neighbour a, neighbour b)
{
    return a.sim > b.sim || (a.sim == b.sim && a.idx < b.idx);
}

/* Heap with the worst kept neighbour at the root. */
static void sift_down(neighbour *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(h[w], h[l]))
            w = l;
        if (r < n && better(h[w], h[r]))
            w = r;
        if (w == i)
            return;
        neighbour t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(neighbour *h, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!better(h[p], h[i]))
            return;
        neighbour t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* The k best of the n similarities of one test row, into h (unordered). */
static int select_top(const float *sims, int64_t n, int k, neighbour *h)
{
    int size = 0;
    for (int64_t j = 0; j < n; j++) {
        neighbour c = {sims[j], j};
        if (size < k) {
            h[size] = c;
            sift_up(h, size++);
        } else if (better(c, h[0])) {
            h[0] = c;
            sift_down(h, size, 0);
        }
    }
    return size;
}

static int check_labels(const int *labels, int64_t n, int classes, const char *what,
                        char *err, size_t errlen)
{
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes) {
            sc_errf(err, errlen, "kNN: %s label %d of row %lld is outside 0..%d", what, labels[i],
                   (long long)i, classes - 1);
            return -1;
        }
    return 0;
}

int sc_knn_accuracy(const sc_knn_config *c, const float *train, const int *train_labels,
                    int64_t ntr, const float *test, const int *test_labels, int64_t nte,
                    int64_t dim, double *accuracy, int *pred, char *err, size_t errlen)
{
    if (c->k <= 0 || c->classes <= 0 || !(c->temperature > 0) || c->chunk_rows < 0) {
        sc_errf(err, errlen, "kNN: bad configuration (k %d, classes %d, temperature %g, chunk %lld)",
               c->k, c->classes, c->temperature, (long long)c->chunk_rows);
        return -1;
    }
    /* cblas takes int sizes. */
    if (ntr <= 0 || nte <= 0 || dim <= 0 || ntr > INT_MAX || nte > INT_MAX || dim > INT_MAX) {
        sc_errf(err, errlen, "kNN: bad sizes (%lld train rows, %lld test rows, dimension %lld)",
               (long long)ntr, (long long)nte, (long long)dim);
        return -1;
    }
    if (check_labels(train_labels, ntr, c->classes, "train", err, errlen) ||
        check_labels(test_labels, nte, c->classes, "test", err, errlen))
        return -1;

    int64_t chunk = c->chunk_rows;
    if (!chunk)
        chunk = ntr >= AUTO_BLOCK_FLOATS ? 1 : AUTO_BLOCK_FLOATS / ntr;
    if (chunk > nte)
        chunk = nte;
    if ((uint64_t)chunk > SIZE_MAX / sizeof(float) / (uint64_t)ntr) {
        sc_errf(err, errlen, "kNN: a block of %lld x %lld similarities is too large",
               (long long)chunk, (long long)ntr);
        return -1;
    }
    int k = c->k < ntr ? c->k : (int)ntr;
    float *sims = malloc(sizeof *sims * (size_t)chunk * (size_t)ntr);
    neighbour *heap = malloc(sizeof *heap * (size_t)k);
    double *score = malloc(sizeof *score * (size_t)c->classes);
    if (!sims || !heap || !score) {
        free(sims);
        free(heap);
        free(score);
        sc_errf(err, errlen, "kNN: out of memory for a %lld x %lld similarity block",
               (long long)chunk, (long long)ntr);
        return -1;
    }

    int64_t correct = 0;
    for (int64_t r0 = 0; r0 < nte; r0 += chunk) {
        int rows = (int)(nte - r0 < chunk ? nte - r0 : chunk);
        /* sims[rows, ntr] = test[r0 : r0 + rows] x train^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, (int)ntr, (int)dim, 1.0f,
                    test + r0 * dim, (int)dim, train, (int)dim, 0.0f, sims, (int)ntr);
        for (int r = 0; r < rows; r++) {
            int n = select_top(sims + (int64_t)r * ntr, ntr, k, heap);
            for (int j = 0; j < c->classes; j++)
                score[j] = 0;
            for (int j = 0; j < n; j++)
                score[train_labels[heap[j].idx]] += exp(heap[j].sim / c->temperature);
            int best = 0;
            for (int j = 1; j < c->classes; j++)
                if (score[j] > score[best])
                    best = j;
            if (pred)
                pred[r0 + r] = best;
            correct += best == test_labels[r0 + r];
        }
    }
    free(sims);
    free(heap);
    free(score);
    *accuracy = (double)correct / (double)nte;
    return 0;
}
