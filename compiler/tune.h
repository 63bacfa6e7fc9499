/* simclrc --tune (tune.c): the convolution algorithm of every convolution
 * node of the training step measured, not modelled. The step is built
 * twice, once with every legal convolution as im2col+gemm and once as
 * shift+gemm; each binary runs `bench-step --profile` on this machine, and
 * each node keeps the algorithm whose kernel took less time. */
#ifndef SC_TUNE_H
#define SC_TUNE_H

#include "convplan.h"

/* Builds the training binary at exe with conv policy `conv`; 0 on success. */
typedef int (*sc_tune_build_fn)(void *ctx, const char *exe, int conv);

/* Fills t (freed with sc_tune_free) from the two measured builds; trial
 * binaries go next to `out`. Returns 0, or -1 with a message in err. */
int sc_tune_convs(sc_tune_build_fn build, void *ctx, const char *out, sc_conv_tuning *t, char *err, size_t errlen);
void sc_tune_free(sc_conv_tuning *t);
/* Prints the choice per node and the measured times. */
void sc_tune_print(const sc_conv_tuning *t, FILE *f);

#endif
