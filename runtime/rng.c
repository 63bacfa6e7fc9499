/* xoshiro256** seeded through splitmix64: fast, small state, and a seed
 * plus a stream number give independent sequences. */
#include "sc_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sc_rng_seed(sc_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sc_rng_next(sc_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float sc_rng_uniformf(sc_rng *r) { return (float)(sc_rng_next(r) >> 40) * 0x1.0p-24f; }

double sc_rng_uniform(sc_rng *r) { return (double)(sc_rng_next(r) >> 11) * 0x1.0p-53; }

double sc_rng_normal(sc_rng *r)
{
    /* 1 - u is in (0, 1], so the log is finite. */
    double u1 = 1.0 - sc_rng_uniform(r), u2 = sc_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t sc_rng_below(sc_rng *r, uint64_t n)
{
    /* Rejection keeps the result exactly uniform. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = sc_rng_next(r);
    while (x >= limit);
    return x % n;
}
