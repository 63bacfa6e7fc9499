/* The runtime's one clock for durations (progress, rates, timings). */
#ifndef SC_CLOCK_H
#define SC_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double sc_now_seconds(void);

#endif
