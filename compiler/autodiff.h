/* Reverse-mode differentiation of the forward graph (autodiff.c). */
#ifndef SC_AUTODIFF_H
#define SC_AUTODIFF_H

#include "ir.h"

/* Appends to g (whose nodes are all forward, g->nfwd == g->nn) the backward
 * nodes computing the gradient of g->loss with respect to every parameter.
 * Each parameter's gradient is a tensor named "grad/NAME" recorded in its
 * sc_tensor.grad. Gradients of a tensor with several consumers are summed
 * with add nodes. Returns 0, or -1 if the graph has no loss. */
int sc_autodiff(sc_graph *g);

#endif
