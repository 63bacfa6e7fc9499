/* LLVM code generation (cg_*.c, codegen_abi.c): lowers a planned training graph and
 * encoder graph to one LLVM module defining the ABI of include/sc_abi.h,
 * optimises it with the new pass manager and emits IR, assembly or an
 * object file for the host CPU (or --target-cpu). */
#ifndef SC_CODEGEN_H
#define SC_CODEGEN_H

#include <stddef.h>

#include "ir.h"
#include "memplan.h"
#include "model.h"

typedef struct {
    const char *target_cpu;  /* NULL: the host CPU */
    int opt_level;           /* 0..3 */
    int double_precision;    /* tensors of doubles and dgemm: for tests only,
                                the runtime works in float */
    int mpi;                 /* data-parallel step: calls sc_comm.h */
    int gemm_openblas;       /* matrix products call cblas_sgemm instead of
                                generated kernels (--gemm=openblas) */
} sc_codegen_options;

typedef struct sc_codegen sc_codegen;

/* Sets up the target; an unknown CPU name is an error. NULL on error with
 * a message in err. */
sc_codegen *sc_codegen_new(const sc_codegen_options *o, char *err, size_t errlen);
void sc_codegen_free(sc_codegen *c);

/* A graph with its memory plan. */
typedef struct {
    const sc_graph *g;
    const sc_memplan *mp;
} sc_planned;

/* Lowers the model: the SimCLR step (forward + backward), the eval-mode
 * encoder and the fine-tuning step (forward + backward). Returns 0 or -1
 * (message in err). */
int sc_codegen_module(sc_codegen *c, const sc_spec *m, const sc_planned *step,
                      const sc_planned *enc, const sc_planned *ft, char *err, size_t errlen);

/* Runs the optimisation pipeline (default<O2> etc.). */
int sc_codegen_optimize(sc_codegen *c, char *err, size_t errlen);

/* kind: "llvm", "asm" or "obj"; path "-" writes text kinds to stdout. */
int sc_codegen_emit(sc_codegen *c, const char *kind, const char *path, char *err, size_t errlen);

/* Compiles the module in memory (MCJIT) and returns the address of a
 * symbol (sc_step, sc_encode, sc_finetune_step, sc_model), or NULL with a
 * message. For tests: the module cannot be emitted afterwards. */
void *sc_codegen_jit(sc_codegen *c, const char *symbol, char *err, size_t errlen);

/* The CPU name and features the code is generated for. */
const char *sc_codegen_cpu(const sc_codegen *c);

#endif
