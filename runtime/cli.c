#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_checkpoint.h"

void sc_cli_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: error: ", program_invocation_short_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int sc_arg_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = 0;
    int ok = s && *s >= '0' && *s <= '9';
    if (ok)
        v = strtoull(s, &end, 10);
    if (!ok || errno || *end || v < min || v > max) {
        sc_cli_error("%s needs an integer from %llu to %llu, not '%s'", opt, (unsigned long long)min,
                     (unsigned long long)max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int sc_arg_double(const char *opt, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = 0;
    int ok = s && *s && *s != ' ';
    if (ok)
        v = strtod(s, &end);
    if (!ok || errno || *end || !isfinite(v) || v < min || v > max) {
        sc_cli_error("%s needs a number from %g to %g, not '%s'", opt, min, max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int sc_arg_bad_option(const char *sub, char **argv, int c)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        sc_cli_error("option '%s' needs a value", arg);
    else if (optopt && optopt < 256)
        sc_cli_error("unknown option '-%c'", optopt);
    else
        sc_cli_error("unknown option '%s'", arg);
    fprintf(stderr, "Run '%s %s --help' for usage.\n", program_invocation_short_name, sub);
    return 2;
}

void sc_cli_report(const char *msg)
{
    fprintf(stderr, "%s: %s\n", program_invocation_short_name, msg);
}

int sc_cli_state(sc_state *s)
{
    char err[512];
    memset(s, 0, sizeof *s);
    if (sc_desc_check(&sc_model, err, sizeof err) || sc_state_alloc(s, &sc_model, err, sizeof err)) {
        sc_cli_error("%s", err);
        return SC_EXIT_INTERNAL;
    }
    return 0;
}

int sc_cli_load_model(sc_state *s, const char *ckpt, uint64_t seed)
{
    const sc_model_desc *d = s->desc;
    if (!ckpt) {
        sc_params_init(d, s->params, s->buffers, seed);
        return 0;
    }
    char err[1024];
    int missing = 0;
    if (sc_ckpt_load(ckpt, d, d->params, d->nparams, s->params, s->buffers, NULL, NULL, &missing, err,
                     sizeof err)) {
        sc_cli_report(err);
        return SC_EXIT_INPUT;
    }
    if (missing) {
        fprintf(stderr, "%s: %s: error: %d of the model's %d parameter tensors are missing\n",
                program_invocation_short_name, ckpt, missing, d->nparams);
        return SC_EXIT_INPUT;
    }
    return 0;
}

int sc_cli_check_source(const char *sub, int argc, char **argv, const char *data, const char *ckpt,
                        int random_init)
{
    const char *p = program_invocation_short_name;
    if (optind < argc) {
        sc_cli_error("%s takes no arguments, got '%s'", sub, argv[optind]);
        return SC_EXIT_USAGE;
    }
    if (!data || !*data) {
        sc_cli_error("%s needs --data DIR", sub);
        fprintf(stderr, "Run '%s %s --help' for usage.\n", p, sub);
        return SC_EXIT_USAGE;
    }
    if (!!ckpt == random_init) {
        if (ckpt)
            sc_cli_error("--ckpt and --random-init exclude each other");
        else
            sc_cli_error("%s needs --ckpt FILE or --random-init", sub);
        fprintf(stderr, "Run '%s %s --help' for usage.\n", p, sub);
        return SC_EXIT_USAGE;
    }
    return 0;
}
