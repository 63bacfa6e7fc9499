/* From a model description and a dataset to what the model consumes:
 * the augmentation spec of its <augment> list, and encoder features of
 * every image of a split (the kNN monitor's and the linear probe's input).
 *
 * The encoder is passed as a function so that this code links without a
 * model object (the generated sc_encode has this signature). */
#ifndef SC_MODEL_INPUT_H
#define SC_MODEL_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "sc_abi.h"
#include "sc_augment.h"
#include "sc_stl10.h"

/* The spec of d's <augment> list in document order (random = 1: training
 * views), or only its normalize (random = 0: evaluation, each image
 * resized to the input size, nothing random). Returns 0, or -1 with a
 * message for an unknown kind or a list longer than the spec holds. */
int sc_desc_augment_spec(const sc_model_desc *d, int random, sc_augment_spec *s, char *err,
                              size_t errlen);

typedef void (*sc_encoder_fn)(const float *params, const float *buffers, float *arena,
                             const float *input, float *features);

/* Features of all n images of data (n x feature_dim floats into feats),
 * from the evaluation spec above and encode, d->encode_batch images per
 * call (the last call padded with copies of the last image). arena holds
 * d->encode_arena_floats floats. When l2 is set each row is scaled to unit
 * length. Returns 0, or -1 with a message (out of memory, bad spec). */
int sc_encode_split(const sc_model_desc *d, sc_encoder_fn encode, const float *params,
                        const float *buffers, float *arena, const sc_stl10 *data, int l2,
                        float *feats, char *err, size_t errlen);

#endif
