/* simclrc --tune (tune.c): the convolution kernels of the training step
 * measured, not modelled. Trial binaries run `bench-step --profile` on
 * this machine; every convolution node's time in each trial becomes a row
 * of the measurement table (node, op, formulation, register block mr,
 * k-block kc, milliseconds, im2col chunk cap), and the choice per node is
 * a pure function of that table (sc_tune_choose), so a saved table
 * (--tune-table) gives the same binary again.
 *
 * The trials, in order (a coordinate search):
 *   1. the plan's own kernels (its rules: convplan.c), then rounds in
 *      which every node takes the next formulation of its op not yet
 *      measured (convplan.h, sc_conv_form: im2col, shift, implicit, rows,
 *      flip, as the op allows), until none is left: 4 trials for the
 *      weight gradients' 4 (3 each for forwards and data gradients);
 *      each node keeps the fastest at the default blocking;
 *   2. with those, every node's GEMMs at mr 6, 8, 14 (default kc): each
 *      node keeps its fastest mr (the default counts too);
 *   3. with those, kc 128, 176, 256, 384: each node keeps the fastest;
 *   4. where some node chose im2col: its chunks' columns capped at 256K
 *      and 4M floats instead of SC_CONV_COLS_MAX (1M).
 * 13 builds in all (9 without im2col nodes). A node's rows for one
 * choice are its forward, data-gradient and weight-gradient nodes
 * separately (each is its own node, with its own kernels). Rows record
 * the formulation that ran, read from the kernel's name in the profile; a
 * trial's formulation that a node cannot take runs the plan's rules
 * instead, measured already, and adds no row. */
#ifndef SC_TUNE_H
#define SC_TUNE_H

#include <stdio.h>

#include "convplan.h"

/* One measurement: node `node` (label) of op `op` ran as formulation
 * `form` (SC_FORM_AUTO: the plan's rules, as tables before the
 * formulations recorded "im2col") with its GEMMs blocked mr x kc (0: the
 * default rule's) and im2col chunks of at most `cols` floats of columns
 * (0: the default) in `ms` milliseconds. */
typedef struct {
    char node[SC_NAME_MAX];
    sc_opkind op;
    sc_conv_form form;
    int mr, kc, cols;
    double ms;
} sc_tune_row;

typedef struct {
    sc_tune_row *v;
    int n, cap;
} sc_tune_table;

/* The candidates of the search: register rows (cg_gemm.c keeps them
 * within the target's registers: at most 6 without AVX-512) and k-blocks.
 * tests/test_gemm_gen.c checks every one on every vector path. */
enum { SC_TUNE_NMR = 3, SC_TUNE_NKC = 4, SC_TUNE_NCOLS = 2 };
extern const int sc_tune_cand_mr[SC_TUNE_NMR], sc_tune_cand_kc[SC_TUNE_NKC], sc_tune_cand_cols[SC_TUNE_NCOLS];

/* Builds the training binary at exe with conv policy `conv` and the
 * per-node picks (NULL: none); 0 on success. */
typedef int (*sc_tune_build_fn)(void *ctx, const char *exe, int conv, const sc_conv_tuning *picks);

/* Runs the trials (trial binaries go next to `out`) and fills t (freed
 * with sc_tune_table_free). Returns 0, or -1 with a message in err. */
int sc_tune_measure(sc_tune_build_fn build, void *ctx, const char *out, sc_tune_table *t, char *err, size_t errlen);

/* The picks from a table: per (node, op), the formulation whose row at
 * the default blocking is fastest (equal times: the first in sc_conv_form
 * order), then the fastest row of that formulation; equal times go to the
 * smaller (mr, kc, cols), 0 (default) first, so the choice depends on the
 * rows' values, not their order. Returns 0, or -1 (out of memory) with a
 * message in err. */
int sc_tune_choose(const sc_tune_table *t, sc_conv_tuning *picks, char *err, size_t errlen);

/* The table as CSV (header node,op,algo,mr,kc,ms,cols; algo the
 * formulation's name), written atomically (a temporary file renamed), and
 * read back, tables of header node,op,algo,mr,kc,ms (algo im2col or
 * shift) too: malformed lines are errors with the file and line. 0, or -1
 * with a message in err. */
int sc_tune_table_write(const sc_tune_table *t, const char *path, char *err, size_t errlen);
int sc_tune_table_read(const char *path, sc_tune_table *t, char *err, size_t errlen);
void sc_tune_table_free(sc_tune_table *t);

/* Node i's pick in `picks` (by label and op), or NULL. */
const sc_conv_pick *sc_tune_pick_of(const sc_conv_tuning *picks, const sc_graph *g, int i);

void sc_tune_free(sc_conv_tuning *t);
/* Prints the choice per node and the measured times. */
void sc_tune_print(const sc_conv_tuning *t, FILE *f);

#endif
