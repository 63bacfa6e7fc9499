/* train's command line (cli.md): its options, their defaults, its --help. */
#ifndef SC_TRAIN_OPTIONS_H
#define SC_TRAIN_OPTIONS_H

#include <stdint.h>

#include "sc_stl10.h"

/* have_X: X was given on the command line (a resumed run keeps the run's
 * value of what was not). */
typedef struct {
    const char *data, *out;
    int64_t epochs;
    int have_epochs;
    double lr;
    int have_lr;
    uint64_t seed;
    int have_seed;
    int threads, have_threads, deterministic, resume, global_bn;
    sc_split split;
    int have_split;
    int64_t log_every, max_steps, knn_every;
    int knn_init;
} sc_train_options;

/* Fills o from argv (defaults for what is absent). 0 to go on, or 1 when
 * train must exit with *status (cli.h). */
int sc_train_parse_options(int argc, char **argv, sc_train_options *o, int *status);

#endif
