/* One training step in the reference interpreter, written as a step dump
 * (cli.md, "Step dump format"). */
#ifndef SC_STEPDUMP_H
#define SC_STEPDUMP_H

#include "ir.h"

/* g must hold the forward and backward graph. Initialises parameters from
 * seed, draws a synthetic input batch from (seed, input stream), runs the
 * step and writes PATH. Returns 0, or -1 with a message on stderr. */
int sc_stepdump_write(const sc_graph *g, unsigned long long seed, const char *path);

#endif
