/* The encoder in eval mode, derived from the training graph (evalgraph.c):
 * what sc_encode runs to give features for evaluation. */
#ifndef SC_EVALGRAPH_H
#define SC_EVALGRAPH_H

#include "ir.h"

/* Copies the forward nodes of train up to its features (the encoder's
 * output) into out (initialised by the caller), for `views` input images:
 * batchnorm uses the running statistics, which are not updated. Parameters
 * and buffers keep their canonical order, so the training buffers serve
 * as they are. Returns 0, or -1 if train has no features. */
int sc_graph_encoder(const sc_graph *train, int views, sc_graph *out);

#endif
