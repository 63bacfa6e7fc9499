/* The reference interpreter: runs a graph node by node with refops.c, in
 * double precision. It is the oracle for generated code. */
#ifndef SC_INTERP_H
#define SC_INTERP_H

#include "ir.h"

typedef struct {
    const sc_graph *g;
    double **buf;    /* one buffer per tensor, numel doubles */
} sc_interp;

/* Allocates a zeroed buffer for every tensor. Returns 0 or -1 (out of
 * memory, with a message on stderr). */
int sc_interp_init(sc_interp *it, const sc_graph *g);
void sc_interp_free(sc_interp *it);
/* Runs nodes [from, to). */
void sc_interp_run(sc_interp *it, int from, int to);
/* Sets parameters and buffers by their initialisers from (seed, params
 * stream), in canonical order; values are rounded to float first so that
 * they equal what a float32 consumer of the same seed gets. */
void sc_interp_init_params(sc_interp *it, unsigned long long seed);

#endif
