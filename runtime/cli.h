/* Pieces shared by the training binary's subcommands (runtime/cmd_*.c):
 * option values, usage errors, and the model's state from --ckpt or
 * --random-init. Messages follow cli.md: "PROGRAM: error: ...", PROGRAM
 * being program_invocation_short_name. */
#ifndef SC_CLI_H
#define SC_CLI_H

#include <stdint.h>

#include "sc_state.h"

enum { SC_EXIT_INPUT = 1, SC_EXIT_USAGE = 2, SC_EXIT_INTERNAL = 3 };

/* A decimal integer in [min, max] (no sign, no spaces). 0, or -1 with a
 * message naming the option, e.g. "--epochs needs an integer from 1 to
 * 100000, not 'x'". */
int sc_arg_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A finite number in [min, max]. 0, or -1 with a message. */
int sc_arg_double(const char *opt, const char *s, double min, double max, double *out);

/* Reports the option getopt_long rejected in subcommand sub (opterr off):
 * a missing value (c == ':') or an unknown option, and where to find the
 * usage. Returns 2, the exit status of bad usage. */
int sc_arg_bad_option(const char *sub, char **argv, int c);
/* The checks every data-and-encoder subcommand (eval, finetune) makes
 * after its options: no operands, --data given, exactly one of --ckpt and
 * --random-init. Returns 0 or SC_EXIT_USAGE after a message. */
int sc_cli_check_source(const char *sub, int argc, char **argv, const char *data, const char *ckpt,
                        int random_init);

/* "PROGRAM: error: MESSAGE" on stderr. */
void sc_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROGRAM: MESSAGE" on stderr, for messages that carry their own
 * "FILE: error: " (the checkpoint and dataset readers'). */
void sc_cli_report(const char *msg);

/* Checks the model object and allocates s (sc_state_alloc). 0, or the
 * exit status after a message. */
int sc_cli_state(sc_state *s);
/* Fills s's parameters and buffers: every SimCLR parameter and buffer
 * from the checkpoint ckpt, or the seeded initialisation when ckpt is
 * NULL. 0, or the exit status after a message (1 for a bad checkpoint). */
int sc_cli_load_model(sc_state *s, const char *ckpt, uint64_t seed);

#endif
