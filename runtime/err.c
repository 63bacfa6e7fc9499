#include "sc_err.h"

#include <stdarg.h>
#include <stdio.h>

void sc_errf(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!err || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}
