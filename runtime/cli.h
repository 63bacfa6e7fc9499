/* The command line of the training binary (cli.md): every subcommand
 * declares its options in a table and sc_cli_parse reads them, so that a
 * mistake gets the same message whatever the subcommand:
 *   unknown option      "unknown option '--x'"
 *   missing argument    "option '--seed' needs a value"
 *   bad number          "--seed needs an integer, not 'x'"
 *                       "--lr needs a finite number, not 'x'"
 *   out of range        "--epochs must be from 1 to 100000, not '0'"
 *                       (and a value outside a list: "--optimizer must be
 *                       sgd or adam, not 'lars'")
 *   missing required    "train needs --data DIR"
 *   unexpected operand  "train takes no arguments, got 'x'"
 *   conflicting options "--ckpt and --random-init exclude each other"
 * each as "PROGRAM: error: MESSAGE" on stderr followed by "Run 'PROGRAM
 * SUB --help' for usage.", exit status 2. PROGRAM is
 * program_invocation_short_name. The option tables are the one place that
 * says what an option accepts; the --help texts stay hand-written next to
 * them. */
#ifndef SC_CLI_H
#define SC_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "sc_state.h"

enum { SC_EXIT_INPUT = 1, SC_EXIT_USAGE = 2, SC_EXIT_INTERNAL = 3 };

typedef enum {
    SC_OPT_FLAG,    /* no value; *(int *)dest = 1 */
    SC_OPT_STR,     /* *(const char **)dest = the value */
    SC_OPT_U64,     /* *(uint64_t *)dest, an integer in [min, max] */
    SC_OPT_I64,     /* *(int64_t *)dest, an integer in [min, max] (max <= INT64_MAX) */
    SC_OPT_INT,     /* *(int *)dest, an integer in [min, max] (max <= INT_MAX) */
    SC_OPT_NUM,     /* *(double *)dest, a finite number in [lo, hi] ((lo, hi] with lo_open) */
    SC_OPT_CHOICE,  /* *(int *)dest = the index of the value in choices */
    SC_OPT_CUSTOM,  /* check(value, dest): 0, or -1 after its own sc_cli_error */
} sc_opt_kind;

typedef struct {
    const char *name;     /* the long name without "--" */
    char short_name;      /* 'o' for -o, or 0 */
    sc_opt_kind kind;
    void *dest;
    int *given;           /* set to 1 when the option is given (may be NULL) */
    uint64_t min, max;    /* integer kinds */
    double lo, hi;        /* SC_OPT_NUM */
    int lo_open;          /* SC_OPT_NUM: lo itself is out of range */
    int nonempty;         /* SC_OPT_STR: an empty value is a missing value */
    const char *required; /* missing: "SUB needs REQUIRED" (e.g. "--data DIR") */
    const char *const *choices;                /* SC_OPT_CHOICE, NULL-terminated */
    int (*check)(const char *value, void *dest); /* SC_OPT_CUSTOM */
} sc_opt;

/* What sc_cli_parse reads: options (-h/--help is implicit), then operands
 * argv[optind..argc) when operands is non-NULL, at most one of them. */
typedef struct {
    const char *sub;        /* "train"; NULL for the program's own options */
    const sc_opt *opts;
    int nopts;
    void (*usage)(FILE *f); /* prints --help */
    const char *operand;    /* the one operand's name ("OUT.safetensors"), or NULL for none */
    int stop_at_operand;    /* options end at the first operand (the program's own) */
} sc_cmdline;

/* The number of entries of an option table (an array). */
#define SC_NOPTS(opts) ((int)(sizeof(opts) / sizeof *(opts)))

/* Parses argv (argv[0] is the subcommand; getopt's optind reset by the
 * caller). Returns 0 to go on (optind at the first operand), or 1 when
 * the subcommand is over and must exit with *status: 0 after printing
 * the usage to stdout (--help), SC_EXIT_USAGE after a message. */
int sc_cli_parse(const sc_cmdline *c, int argc, char **argv, int *status);

/* The usage errors a subcommand finds after parsing (the same kinds and
 * wording as sc_cli_parse's). Each returns SC_EXIT_USAGE. */
int sc_cli_usage_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sc_cli_missing(const char *sub, const char *what);
int sc_cli_conflict(const char *sub, const char *a, const char *b);
/* eval, finetune and encode: exactly one of --ckpt and --random-init. */
int sc_cli_check_source(const char *sub, const char *ckpt, int random_init);

/* "PROGRAM: error: MESSAGE" on stderr. */
void sc_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROGRAM: MESSAGE" on stderr, for messages that carry their own
 * "FILE: error: " (the checkpoint and dataset readers'). */
void sc_cli_report(const char *msg);

/* The model behind eval, finetune, export and encode (cli_model.c). */

/* Checks the model object and allocates s (sc_state_alloc). 0, or the
 * exit status after a message. */
int sc_cli_state(sc_state *s);
/* Fills s's parameters and buffers: every SimCLR parameter and buffer
 * from the checkpoint ckpt, or the seeded initialisation when ckpt is
 * NULL. 0, or the exit status after a message (1 for a bad checkpoint). */
int sc_cli_load_model(sc_state *s, const char *ckpt, uint64_t seed);

#endif
