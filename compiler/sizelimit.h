/* A limit on the memory a compiled binary would ask for (sizelimit.c):
 * a spec with absurd sizes fails in the compiler, with its line, rather
 * than producing a binary that can only fail to allocate. */
#ifndef SC_SIZELIMIT_H
#define SC_SIZELIMIT_H

#include <stdint.h>

#include "ir.h"
#include "memplan.h"

/* Default for simclrc's --max-arena-bytes: 64 GiB, several times what the
 * shipped models need at their batch sizes. */
#define SC_DEFAULT_MAX_BYTES ((int64_t)64 << 30)

/* Checks the parameters' bytes and the activation arena of g planned with
 * o against limit bytes each. Returns 0, or -1 after an error
 * "simclrc: FILE:LINE: error: ..." naming the layer of the largest
 * parameter or arena tensor; -2 when out of memory. */
int sc_size_check(const sc_graph *g, const sc_memplan_opts *o, int64_t limit, const char *file);
/* The same with g's plan already made. */
int sc_size_check_plan(const sc_graph *g, const sc_memplan *mp, int64_t limit, const char *file);

/* Parses a byte count with an optional K, M, G or T suffix (powers of
 * 1024). Returns 0, or -1 when malformed or above 2^62. */
int sc_parse_bytes(const char *s, int64_t *out);

#endif
