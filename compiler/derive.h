/* Graphs derived from the training graph (derive.c): the encoder in eval
 * mode, which sc_encode runs to give features, and the encoder with a
 * linear classifier and cross-entropy loss, which sc_finetune_step trains.
 * Both keep the training graph's parameters and buffers in canonical
 * order (the classifier's parameters come after them), so one set of flat
 * buffers serves every entry point. */
#ifndef SC_DERIVE_H
#define SC_DERIVE_H

#include "ir.h"

/* The forward nodes of train up to its features (the encoder's output),
 * for `views` input images, batchnorm using the running statistics (not
 * updated). out is initialised by the caller. Returns 0, or -1 if train
 * has no features. */
int sc_graph_encoder(const sc_graph *train, int views, sc_graph *out);

/* The encoder in training mode on `images` inputs, then flatten, a linear
 * layer "classifier" to nclasses logits and softmax cross-entropy against
 * the tensor "labels" (class indices as floats); forward only: run
 * sc_autodiff on it. Returns 0 or -1. */
int sc_graph_classifier(const sc_graph *train, int images, int nclasses, sc_graph *out);

#endif
