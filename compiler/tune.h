/* simclrc --tune (tune.c): the convolution kernels of the training step
 * measured, not modelled. Trial binaries run `bench-step --profile` on
 * this machine; every convolution node's time in each trial becomes a row
 * of the measurement table (node, op, algorithm, register block mr,
 * k-block kc, milliseconds), and the choice per node is a pure function
 * of that table (sc_tune_choose), so a saved table (--tune-table) gives
 * the same binary again.
 *
 * The trials, in order (a coordinate search, 9 builds in all):
 *   1. every legal convolution as im2col+gemm, then as shift+gemm, at the
 *      default blocking: each node keeps the faster algorithm;
 *   2. with those algorithms, every node's GEMMs at mr 6, 8, 14 (default
 *      kc): each node keeps its fastest mr (the default counts too);
 *   3. with those, kc 128, 176, 256, 384: each node keeps the fastest.
 * A node's rows for one choice are its forward, data-gradient and
 * weight-gradient nodes separately (each is its own node, with its own
 * GEMMs). */
#ifndef SC_TUNE_H
#define SC_TUNE_H

#include <stdio.h>

#include "convplan.h"

/* One measurement: node `node` (label) of op `op` ran as `algo` ("im2col"
 * for im2col+gemm or gemm-1x1, "shift" for shift+gemm) with its GEMMs
 * blocked mr x kc (0: the default rule's) in `ms` milliseconds. */
typedef struct {
    char node[SC_NAME_MAX];
    sc_opkind op;
    char algo[8];
    int mr, kc;
    double ms;
} sc_tune_row;

typedef struct {
    sc_tune_row *v;
    int n, cap;
} sc_tune_table;

/* The candidates of the search: register rows (cg_gemm.c keeps them
 * within the target's registers: at most 6 without AVX-512) and k-blocks.
 * tests/test_gemm_gen.c checks every one on every vector path. */
enum { SC_TUNE_NMR = 3, SC_TUNE_NKC = 4 };
extern const int sc_tune_cand_mr[SC_TUNE_NMR], sc_tune_cand_kc[SC_TUNE_NKC];

/* Builds the training binary at exe with conv policy `conv` and the
 * per-node picks (NULL: none); 0 on success. */
typedef int (*sc_tune_build_fn)(void *ctx, const char *exe, int conv, const sc_conv_tuning *picks);

/* Runs the trials (trial binaries go next to `out`) and fills t (freed
 * with sc_tune_table_free). Returns 0, or -1 with a message in err. */
int sc_tune_measure(sc_tune_build_fn build, void *ctx, const char *out, sc_tune_table *t, char *err, size_t errlen);

/* The picks from a table: per (node, op), shift+gemm where its row at
 * the default blocking is faster than im2col's, then the fastest row of
 * that algorithm; equal times go to the smaller (mr, kc), 0 (default)
 * first, so the choice depends on the rows' values, not their order.
 * Returns 0, or -1 (out of memory) with a message in err. */
int sc_tune_choose(const sc_tune_table *t, sc_conv_tuning *picks, char *err, size_t errlen);

/* The table as CSV (header node,op,algo,mr,kc,ms), written atomically
 * (a temporary file renamed), and read back: malformed lines are errors
 * with the file and line. 0, or -1 with a message in err. */
int sc_tune_table_write(const sc_tune_table *t, const char *path, char *err, size_t errlen);
int sc_tune_table_read(const char *path, sc_tune_table *t, char *err, size_t errlen);
void sc_tune_table_free(sc_tune_table *t);

/* Node i's pick in `picks` (by label and op), or NULL. */
const sc_conv_pick *sc_tune_pick_of(const sc_conv_tuning *picks, const sc_graph *g, int i);

void sc_tune_free(sc_conv_tuning *t);
/* Prints the choice per node and the measured times. */
void sc_tune_print(const sc_conv_tuning *t, FILE *f);

#endif
