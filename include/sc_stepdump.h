/* Writing a step dump (cli.md, "Step dump format") from a training
 * binary's state after one sc_step: the same tensors and metadata as the
 * compiler's interpreter writes (compiler/stepdump.c), so the two can be
 * compared tensor by tensor. */
#ifndef SC_STEPDUMP_H
#define SC_STEPDUMP_H

#include <stddef.h>
#include <stdint.h>

#include "sc_state.h"

/* Writes s (parameters, input, loss, gradients) to path, with seed in the
 * metadata. The batchnorm running statistics after the step are added as
 * running/NAME, beyond what the format requires, so that their update can
 * be checked too. Returns 0, or -1 with a message in err. */
int sc_stepdump_save(const sc_state *s, uint64_t seed, const char *path, char *err, size_t errlen);

#endif
