/* The compiler's pass pipeline (pipeline.c), in one place for the driver,
 * --tune and the tests: the spec becomes the SimCLR graph (build), which
 * is differentiated (autodiff); the eval-mode encoder and the fine-tuning
 * graph are derived from it (encoder, finetune: the latter differentiated
 * too); all three are fused (derivation expects unfused batchnorms), then
 * each one's nodes ordered for a smaller arena (schedule); memory planning
 * follows (memplan), separately, since --tune plans one schedule several
 * ways. */
#ifndef SC_PASS_PIPELINE_H
#define SC_PASS_PIPELINE_H

#include <stdio.h>

#include "ir.h"
#include "memplan.h"
#include "model.h"

typedef enum {
    SC_PASS_BUILD,
    SC_PASS_AUTODIFF,
    SC_PASS_ENCODER,
    SC_PASS_FINETUNE,
    SC_PASS_FUSE,
    SC_PASS_SCHEDULE,
    SC_PASS_MEMPLAN,
    SC_PASS_COUNT
} sc_pass;

/* The pass's name for --dump-after ("build", ..., "schedule", "memplan"). */
const char *sc_pass_name(sc_pass p);

typedef struct {
    int batch;             /* images per step; 0: the model's */
    int classes;           /* classes of the fine-tuning classifier */
    int fuse;              /* 0: the fuse pass leaves the graphs alone (--no-fuse) */
    int fuse_stats;        /* 1: with fuse, batchnorm statistics in conv epilogues (--fuse-stats; off by
                              default: no gain measured, README "Batchnorm statistics in the epilogue") */
    sc_pass last;          /* the last pass to run */
    sc_memplan_opts plan;  /* for schedule and memplan */
    const char *dump_after;/* print the graphs after this pass ("all": every one), or NULL */
    FILE *dump;            /* where; NULL: stderr */
} sc_passes_opts;

/* The three graphs the compiler lowers, and their memory plans once
 * planned (SC_PASS_MEMPLAN). */
typedef struct {
    sc_graph g;    /* the SimCLR step: forward, loss, backward */
    sc_graph enc;  /* the eval-mode encoder */
    sc_graph ft;   /* the fine-tuning step */
    sc_memplan smp, emp, fmp;
    int planned;
} sc_compiled;

/* Runs the passes up to o->last on spec m into c (always freed with
 * sc_compiled_free). Returns 0, 1 for bad input, 3 for an internal error
 * (the compiler's exit statuses), with the message on stderr. */
int sc_passes_run(const sc_spec *m, const sc_passes_opts *o, sc_compiled *c);
/* The memplan pass alone: plans the three graphs with o (replacing any
 * earlier plan). Returns 0, or 3 when out of memory (message on stderr). */
int sc_passes_plan(sc_compiled *c, const sc_memplan_opts *o);
void sc_compiled_free(sc_compiled *c);

#endif
