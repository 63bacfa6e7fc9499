#include "diag.h"

#include <stdarg.h>
#include <stdio.h>

static const char *program = "simclrc";
static int nerrors;

void sc_diag_set_program(const char *name) { program = name; }
int sc_error_count(void) { return nerrors; }

static void report(const char *kind, const char *file, int line,
                   const char *fmt, va_list ap)
{
    if (file && line > 0)
        fprintf(stderr, "%s: %s:%d: %s: ", program, file, line, kind);
    else if (file)
        fprintf(stderr, "%s: %s: %s: ", program, file, kind);
    else
        fprintf(stderr, "%s: %s: ", program, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void sc_error_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("error", file, line, fmt, ap);
    va_end(ap);
    nerrors++;
}

void sc_warning_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("warning", file, line, fmt, ap);
    va_end(ap);
}
