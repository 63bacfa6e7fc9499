/* The random number generator shared by the compiler's interpreter and the
 * runtime, so that a seed means the same parameters and inputs in both. */
#ifndef SC_RNG_H
#define SC_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} sc_rng;

/* Seeds from (seed, stream): independent streams for independent uses
 * (parameters, synthetic input, augmentation of image i, ...). */
void sc_rng_seed(sc_rng *r, uint64_t seed, uint64_t stream);
uint64_t sc_rng_next(sc_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float sc_rng_uniformf(sc_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double sc_rng_uniform(sc_rng *r);
/* Standard normal (Box-Muller). */
double sc_rng_normal(sc_rng *r);
/* Uniform integer in [0, n). */
uint64_t sc_rng_below(sc_rng *r, uint64_t n);

/* Stream numbers in use. */
enum { SC_STREAM_PARAMS = 1, SC_STREAM_INPUT = 2 };

#endif
