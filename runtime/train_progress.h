/* What train shows while it runs: on a terminal a progress bar redrawn in
 * place (epoch, bar, step in epoch, loss, rate in views/s, ETA), otherwise
 * one plain line every N steps; in both cases message lines (epoch
 * summaries, notes) that do not tear the bar. All on stderr. */
#ifndef SC_TRAIN_PROGRESS_H
#define SC_TRAIN_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    int64_t step, total;          /* updates taken / to take in this run's plan */
    int64_t epoch, epochs;        /* 1-based epoch in progress, of */
    int64_t epoch_step, epoch_steps;
    double loss, lr;
    double views_per_s;           /* recent rate, 0 while unknown */
    double eta_s;                 /* < 0 while unknown */
    double wait_frac;             /* share of recent wall time spent waiting for data */
} sc_progress_status;

typedef struct {
    FILE *f;
    int bar;          /* draw a bar (a terminal) or plain lines */
    int64_t every;    /* plain lines: one per `every` steps */
    int drawn;        /* a bar is on screen */
    double last;      /* time of the last redraw */
} sc_progress;

void sc_progress_init(sc_progress *p, FILE *f, int bar, int64_t every);
/* After each step: redraws the bar (at most ten times a second unless
 * force) or prints a plain line when the step is a multiple of every. */
void sc_progress_update(sc_progress *p, const sc_progress_status *s, int force);
/* Prints a line of its own (a newline is added), keeping the bar below it. */
void sc_progress_message(sc_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* On a terminal, replaces the bar with a transient status line (until the
 * next update or message); nothing otherwise. */
void sc_progress_status_line(sc_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the bar, so that the program can print and exit. */
void sc_progress_end(sc_progress *p);

/* "1:02:03", "4:05" (seconds rounded up), "?" when unknown. */
const char *sc_progress_duration(double s, char *buf, size_t len);

#endif
