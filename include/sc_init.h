/* Parameter initialisation shared by the compiler's interpreter and the
 * generated training binaries: PyTorch's defaults, from sc_rng, so that a
 * seed gives the same parameters everywhere. */
#ifndef SC_INIT_H
#define SC_INIT_H

#include "sc_rng.h"

typedef enum {
    SC_INIT_NONE,
    SC_INIT_KAIMING_UNIFORM, /* conv/linear weight: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), +) */
    SC_INIT_FAN_IN_UNIFORM,  /* conv/linear bias: U(-1/sqrt(fan_in), +) */
    SC_INIT_ONES,            /* batchnorm weight, running_var */
    SC_INIT_ZEROS            /* batchnorm bias, running_mean */
} sc_init_kind;

/* Fills out[0..numel) for one tensor, drawing from r (parameters are
 * initialised in canonical order from one stream seeded with
 * (seed, SC_STREAM_PARAMS)). */
void sc_init_tensor(sc_rng *r, sc_init_kind kind, int fan_in, long numel, float *out);

#endif
