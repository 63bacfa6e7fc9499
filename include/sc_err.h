/* Error messages of the runtime's library functions: they never print or
 * exit, they write a message into the caller's buffer and return -1. */
#ifndef SC_ERR_H
#define SC_ERR_H

#include <stddef.h>

/* Formats into err (size len; nothing when err is NULL or len is 0). */
void sc_errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
