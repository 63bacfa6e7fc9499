/* Writing a step dump (cli.md, "Step dump format") from a training
 * binary's state after one sc_step: the same tensors and metadata as the
 * compiler's interpreter writes (compiler/stepdump.c), so the two can be
 * compared tensor by tensor. */
#ifndef SC_STEPDUMP_H
#define SC_STEPDUMP_H

#include <stddef.h>
#include <stdint.h>

#include "sc_safetensors.h"
#include "sc_state.h"

/* Writes s (parameters, input, loss, gradients) to path, with seed in the
 * metadata. The batchnorm running statistics after the step are added as
 * running/NAME, beyond what the format requires, so that their update can
 * be checked too. Returns 0, or -1 with a message in err. */
int sc_stepdump_save(const sc_state *s, uint64_t seed, const char *path, char *err, size_t errlen);

/* Adds parameter or buffer p of the tensors at base to w as PREFIX+name:
 * the one way both dump writers name and shape a tensor. */
void sc_stepdump_add_param(sc_st_writer *w, const char *prefix, const sc_param_info *p, const float *base);

/* `dump-step --steps K` (stepdump_steps.c): K whole training steps from
 * the seeded initialisation, each sc_step, the optimizer of <train> at the
 * schedule of a K-step run, and BYOL's target update (sc_ema.h, k of K);
 * step k's input is sc_input_synthetic with seed + k. Writes, format
 * "simclrc-steps-1": every parameter before step 0 (NAME), input/k,
 * loss [K], and every parameter and buffer after step K-1 (after/NAME);
 * metadata lr and tau (comma-separated, %.17g, per step), steps, seed,
 * params. One process only. Returns 0, or -1 with a message in err. */
int sc_stepdump_steps(sc_state *s, uint64_t seed, int64_t steps, const char *path, char *err, size_t errlen);

#endif
