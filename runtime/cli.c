#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTS 32
#define OPT_BASE 256 /* getopt values of table entries: OPT_BASE + index */

static void verror(const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: error: ", program_invocation_short_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void sc_cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
}

void sc_cli_report(const char *msg)
{
    fprintf(stderr, "%s: %s\n", program_invocation_short_name, msg);
}

static int hint(const char *sub)
{
    const char *p = program_invocation_short_name;
    if (sub)
        fprintf(stderr, "Run '%s %s --help' for usage.\n", p, sub);
    else
        fprintf(stderr, "Run '%s --help' for usage.\n", p);
    return SC_EXIT_USAGE;
}

int sc_cli_usage_error(const char *sub, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
    return hint(sub);
}

int sc_cli_missing(const char *sub, const char *what)
{
    return sc_cli_usage_error(sub, "%s needs %s", sub, what);
}

int sc_cli_conflict(const char *sub, const char *a, const char *b)
{
    return sc_cli_usage_error(sub, "%s and %s exclude each other", a, b);
}

int sc_cli_check_source(const char *sub, const char *ckpt, int random_init)
{
    if (ckpt && random_init)
        return sc_cli_conflict(sub, "--ckpt", "--random-init");
    if (!ckpt && !random_init)
        return sc_cli_missing(sub, "--ckpt FILE or --random-init");
    return 0;
}

/* ---- values ---- */

static uint64_t type_max(sc_opt_kind k)
{
    return k == SC_OPT_INT ? (uint64_t)INT_MAX : k == SC_OPT_I64 ? (uint64_t)INT64_MAX : UINT64_MAX;
}

/* "--epochs must be from 1 to 100000, not '0'": the one out-of-range
 * message; range is the allowed set in words. */
static int out_of_range(const char *sub, const char *opt, const char *range, const char *v)
{
    return sc_cli_usage_error(sub, "%s must be %s, not '%s'", opt, range, v);
}

static int integer(const char *sub, const char *opt, const sc_opt *o, const char *v)
{
    if (*v < '0' || *v > '9')
        return sc_cli_usage_error(sub, "%s needs an integer, not '%s'", opt, v);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end)
        return sc_cli_usage_error(sub, "%s needs an integer, not '%s'", opt, v);
    uint64_t max = o->max < type_max(o->kind) ? o->max : type_max(o->kind);
    if (errno || x < o->min || x > max) {
        char range[64];
        if (max == type_max(o->kind) && o->min > 0)
            snprintf(range, sizeof range, "at least %llu", (unsigned long long)o->min);
        else
            snprintf(range, sizeof range, "from %llu to %llu", (unsigned long long)o->min,
                     (unsigned long long)max);
        return out_of_range(sub, opt, range, v);
    }
    if (o->kind == SC_OPT_U64)
        *(uint64_t *)o->dest = x;
    else if (o->kind == SC_OPT_I64)
        *(int64_t *)o->dest = (int64_t)x;
    else
        *(int *)o->dest = (int)x;
    return 0;
}

static int number(const char *sub, const char *opt, const sc_opt *o, const char *v)
{
    char *end;
    errno = 0;
    double x = *v && *v != ' ' ? strtod(v, &end) : 0;
    if (!*v || *v == ' ' || *end || errno || !isfinite(x))
        return sc_cli_usage_error(sub, "%s needs a finite number, not '%s'", opt, v);
    if ((o->lo_open ? !(x > o->lo) : !(x >= o->lo)) || x > o->hi) {
        char range[80];
        if (o->lo_open && isinf(o->hi))
            snprintf(range, sizeof range, "greater than %g", o->lo);
        else if (o->lo_open)
            snprintf(range, sizeof range, "greater than %g and at most %g", o->lo, o->hi);
        else
            snprintf(range, sizeof range, "from %g to %g", o->lo, o->hi);
        return out_of_range(sub, opt, range, v);
    }
    *(double *)o->dest = x;
    return 0;
}

static int choice(const char *sub, const char *opt, const sc_opt *o, const char *v)
{
    int n = 0;
    while (o->choices[n])
        n++;
    for (int i = 0; i < n; i++)
        if (!strcmp(v, o->choices[i])) {
            *(int *)o->dest = i;
            return 0;
        }
    char range[160] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof range; i++)
        len += (size_t)snprintf(range + len, sizeof range - len, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                                o->choices[i]);
    return out_of_range(sub, opt, range, v);
}

/* Stores the value of option o (spelled opt on the command line). */
static int take(const char *sub, const sc_opt *o, const char *opt, const char *v)
{
    int rc = 0;
    switch (o->kind) {
    case SC_OPT_FLAG: *(int *)o->dest = 1; break;
    case SC_OPT_STR:
        if (o->nonempty && !*v)
            return sc_cli_usage_error(sub, "option '%s' needs a value", opt);
        *(const char **)o->dest = v;
        break;
    case SC_OPT_U64:
    case SC_OPT_I64:
    case SC_OPT_INT: rc = integer(sub, opt, o, v); break;
    case SC_OPT_NUM: rc = number(sub, opt, o, v); break;
    case SC_OPT_CHOICE: rc = choice(sub, opt, o, v); break;
    case SC_OPT_CUSTOM: rc = o->check(v, o->dest) ? hint(sub) : 0; break;
    }
    if (!rc && o->given)
        *o->given = 1;
    return rc;
}

/* ---- the parser ---- */

static int bad_option(const char *sub, char **argv, int c)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        return sc_cli_usage_error(sub, "option '%s' needs a value", arg);
    if (optopt && optopt < OPT_BASE)
        return sc_cli_usage_error(sub, "unknown option '-%c'", optopt);
    return sc_cli_usage_error(sub, "unknown option '%s'", arg);
}

/* Absent required options and a wrong number of operands. */
static int check_end(const sc_cmdline *c, int argc, char **argv)
{
    const char *sub = c->sub;
    if (!c->stop_at_operand) {
        int left = argc - optind, allowed = c->operand ? 1 : 0;
        if (left > allowed) {
            const char *extra = argv[optind + allowed];
            if (!allowed)
                return sc_cli_usage_error(sub, "%s takes no arguments, got '%s'", sub, extra);
            return sc_cli_usage_error(sub, "%s takes one argument, %s, got '%s' too", sub, c->operand, extra);
        }
    }
    for (int i = 0; i < c->nopts; i++) {
        const sc_opt *o = &c->opts[i];
        if (!o->required)
            continue;
        const char *s = o->kind == SC_OPT_STR ? *(const char *const *)o->dest : NULL;
        if (o->kind == SC_OPT_STR ? !s || !*s : !(o->given && *o->given))
            return sc_cli_missing(sub, o->required);
    }
    if (c->operand && optind >= argc)
        return sc_cli_missing(sub, c->operand);
    return 0;
}

int sc_cli_parse(const sc_cmdline *c, int argc, char **argv, int *status)
{
    struct option longopts[MAX_OPTS + 2];
    char shorts[2 * MAX_OPTS + 8] = "";
    size_t ns = 0;
    if (c->nopts > MAX_OPTS) {
        sc_cli_error("%s has %d options, more than the %d the parser takes", c->sub ? c->sub : "the program",
                     c->nopts, MAX_OPTS);
        *status = SC_EXIT_INTERNAL;
        return 1;
    }
    if (c->stop_at_operand)
        shorts[ns++] = '+';
    shorts[ns++] = ':';
    shorts[ns++] = 'h';
    int n = c->nopts;
    for (int i = 0; i < n; i++) {
        const sc_opt *o = &c->opts[i];
        int arg = o->kind == SC_OPT_FLAG ? no_argument : required_argument;
        longopts[i] = (struct option){o->name, arg, NULL, OPT_BASE + i};
        if (o->short_name) {
            shorts[ns++] = o->short_name;
            if (arg == required_argument)
                shorts[ns++] = ':';
        }
    }
    longopts[n] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n + 1] = (struct option){NULL, 0, NULL, 0};
    shorts[ns] = '\0';
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
        if (ch == 'h') {
            c->usage(stdout);
            *status = 0;
            return 1;
        }
        int i = ch - OPT_BASE;
        for (int k = 0; ch < OPT_BASE && ch != ':' && ch != '?' && k < n; k++)
            if (c->opts[k].short_name == ch)
                i = k;
        if (i < 0 || i >= n)
            return (*status = bad_option(c->sub, argv, ch)) != 0;
        char opt[64];
        if (ch < OPT_BASE)
            snprintf(opt, sizeof opt, "-%c", ch);
        else
            snprintf(opt, sizeof opt, "--%s", c->opts[i].name);
        if ((*status = take(c->sub, &c->opts[i], opt, optarg)))
            return 1;
    }
    return (*status = check_end(c, argc, argv)) != 0;
}
