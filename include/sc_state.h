/* A model's state in memory: the flat buffers that the entry points of
 * sc_abi.h work on, sized from a model description, and their seeded
 * initialisation. Every subcommand of the training binary starts here.
 *
 * The functions take the description as an argument rather than using the
 * generated sc_model symbol, so libsc_runtime.a links without a model. */
#ifndef SC_STATE_H
#define SC_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "sc_abi.h"

typedef struct {
    const sc_model_desc *desc;
    float *params;    /* max(params_floats, ft_params_floats): room for the classifier */
    float *grads;     /* as params */
    float *buffers;   /* buffers_floats: batchnorm running statistics */
    float *arena;     /* max(arena_floats, encode_arena_floats, ft_arena_floats) */
    float *input;     /* [2B, C, H, W] */
    float *loss;      /* [1] */
} sc_state;

/* n zeroed floats, 64-byte aligned, 2 MiB aligned and advised huge pages
 * from 2 MiB up (n = 0 gives a valid empty block). Release with free().
 * NULL when out of memory or n is negative or too large. */
float *sc_floats_alloc(int64_t n);

/* Checks that d is usable by this runtime: ABI version, positive sizes,
 * every tensor inside its buffer. Returns 0, or -1 with a message. */
int sc_desc_check(const sc_model_desc *d, char *err, size_t errlen);

/* Floats that params (and grads) and arena need for every entry point:
 * sc_step, sc_encode and sc_finetune_step. */
int64_t sc_params_alloc_floats(const sc_model_desc *d);
int64_t sc_arena_alloc_floats(const sc_model_desc *d);

/* Floats in one input batch: 2B x C x H x W. */
int64_t sc_input_floats(const sc_model_desc *d);
/* Parameter values (scalars), summed over the parameter table. */
int64_t sc_param_count(const sc_model_desc *d);

/* Allocates every buffer of s for d (zeroed). Returns 0, or -1 with a
 * message in err; on failure s holds nothing to free. */
int sc_state_alloc(sc_state *s, const sc_model_desc *d, char *err, size_t errlen);
void sc_state_free(sc_state *s);

/* Initialises parameters, then buffers, in canonical order from one
 * stream seeded with (seed, SC_STREAM_PARAMS): the same values as the
 * compiler's interpreter gives for that seed. */
void sc_params_init(const sc_model_desc *d, float *params, float *buffers, uint64_t seed);

/* Synthetic input: standard normal values from (seed, SC_STREAM_INPUT),
 * rounded to float, as the compiler's step dump draws them. */
void sc_input_synthetic(const sc_model_desc *d, float *input, uint64_t seed);

#endif
