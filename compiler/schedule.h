/* Scheduling: an order of a graph's nodes that lowers the peak of the
 * activation arena (schedule.c).
 *
 * Rule: a greedy list scheduler. Among the nodes whose inputs are ready,
 * run the one after which the fewest arena bytes are live (the bytes its
 * outputs add minus the bytes of inputs it reads last); ties go to the
 * earlier node of the given order. In the backward pass that runs each
 * weight-gradient node as soon as its inputs are ready, so the saved
 * forward activation it reads dies before the next data gradient is born.
 *
 * Kept: every data dependency; the forward nodes stay in [0, nfwd) and the
 * backward nodes after them; nodes that touch one buffer tensor (the
 * in-place running statistics update and their readers) keep their
 * relative order. The order is kept only if the memory plan of it
 * (memplan.c, first fit, with in-place reuse) has a smaller arena than the
 * given order; otherwise the graph is left as it is. */
#ifndef SC_SCHEDULE_H
#define SC_SCHEDULE_H

#include "ir.h"
#include "memplan.h"

/* Computes the scheduled order of g: order[k] is the index (in g) of the
 * k-th node to run; g->nn entries. out and o are as for sc_memplan_build.
 * The result is the identity when scheduling would not shrink the arena.
 * Returns 0, or -1 when out of memory. */
int sc_schedule_order(const sc_graph *g, int out, const sc_memplan_opts *o, int *order);

/* Reorders g's nodes to order (a permutation of g->nn node indices that
 * keeps dependencies and the forward/backward split) and renumbers the
 * tensors' producers. Returns 0, or -1 when out of memory. */
int sc_schedule_apply(sc_graph *g, const int *order);

/* Both of the above: the `schedule` pass. Returns 0, or -1 when out of
 * memory (g is then unchanged). */
int sc_schedule_nodes(sc_graph *g, int out, const sc_memplan_opts *o);

#endif
