/* Per-kernel profiling of sc_step (bench-step --profile).
 *
 * When sc_prof_on is nonzero, the generated sc_step calls sc_prof_node(i)
 * before the kernel of node i (an index into sc_model.step_nodes) and
 * sc_prof_node(-1) after the last one: the time between two marks belongs
 * to the earlier node. */
#ifndef SC_PROFILE_H
#define SC_PROFILE_H

#include <stdint.h>
#include <stdio.h>

#include "sc_abi.h"

extern int32_t sc_prof_on;
void sc_prof_node(int32_t i);

/* ---- the runtime's side (runtime/profile.c) ----
 *
 * The counters are global and unsynchronised: marks come from the thread
 * that calls sc_step, between kernels, never from the pool's workers. */

/* Sizes the counters for nodes 0 .. n-1 and zeroes them (n >= 0). Returns
 * 0, or -1 when out of memory (the previous counters are then kept). */
int sc_prof_init(int32_t n);
/* Zeroes every counter and forgets an open mark. */
void sc_prof_reset(void);
void sc_prof_free(void);

/* What node i accumulated: kernel entries and seconds (0 out of range). */
int64_t sc_prof_calls(int32_t i);
double sc_prof_seconds(int32_t i);
/* Marks that named no counter (i >= n, or before sc_prof_init): a model
 * whose node table and sc_step disagree. */
int64_t sc_prof_stray(void);

/* Prints the per-kernel table (sorted by time) and the per-op summary for
 * the n nodes of `nodes`; `steps` steps took `seconds` in all, the base of
 * the shares. */
void sc_prof_print(FILE *f, const sc_node_info *nodes, int32_t n, int64_t steps, double seconds);

/* The same counters as a machine-readable table (bench-step --profile-csv,
 * read by simclrc --tune): a header line
 *   index,node,op,impl,calls,total_ms,flops
 * then one line per node that ran, in call order; flops of all its calls.
 * Fields holding a comma, a quote or a line break are quoted, quotes
 * doubled (RFC 4180). Returns 0, or -1 when writing failed. */
int sc_prof_write_csv(FILE *f, const sc_node_info *nodes, int32_t n);

#endif
