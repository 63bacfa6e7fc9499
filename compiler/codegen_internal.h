/* The code generator's private interface (codegen.h is the public one):
 * the context the files of the code generator share (cg_*.c,
 * codegen_abi.c) and what they call across files. */
#ifndef SC_CODEGEN_INTERNAL_H
#define SC_CODEGEN_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <llvm-c/Core.h>
#include <llvm-c/ExecutionEngine.h>
#include <llvm-c/TargetMachine.h>

#include "codegen.h"

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef struct {
    char *key;
    LLVMValueRef fn, task;    /* task: the sc_parallel_for wrapper, or NULL */
    LLVMTypeRef type;
    int64_t extent;
    int nphases;              /* of the node (the same for every phase) */
    int hook;
    int64_t hook_off, hook_n;
    char *impl;
} kern;

struct sc_codegen {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTargetMachineRef tm;
    LLVMExecutionEngineRef ee;  /* set by sc_codegen_jit; it then owns mod */
    int opt_level;
    char *cpu, *features;
    /* elt is the tensors' element type: float, or double for testing the
     * generated code against the interpreter without float rounding */
    LLVMTypeRef elt, f64, i1, i32, i64, ptr, vd, sgemm_t;
    int f64_elements;
    LLVMValueRef sgemm;
    /* matrix products: cg_gemm.c's generated kernels, or cblas_sgemm
     * (--gemm=openblas); the target's vector bits and FMA, probed once;
     * the GEMM shapes the kernel being generated calls (for its name) */
    int gemm_openblas, gemm_vbits, gemm_fma;
    char gemm_note[160];
    /* the blocking --tune chose for the kernel being generated: register
     * rows and k-block (cg_gemm.h; 0: the default rule's) */
    int gemm_mr, gemm_kc;
    int mpi;
    /* the kernel being generated: its node, pointer arguments, the slice
     * [lo, hi) of its parallel loop and the thread running it */
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    int node;
    LLVMValueRef arg_in[SC_MAX_IN], arg_out[SC_MAX_OUT], arg_ws, arg_lo, arg_hi, arg_tid;
    int phase;                /* which of the node's phases */
    const sc_graph *g;
    const sc_memplan *mp;
    /* kernels generated so far, by signature: nodes that differ only in
     * where their tensors live share one kernel */
    kern *kern;
    int nk;
    /* the runtime's functions called by generated code */
    LLVMTypeRef par_t, task_t, threads_t, prof_t, bnred_t, ranks_t, ntx_t, ntxb_t, ready_t, end_t, lmean_t;
    LLVMValueRef par_fn, threads_fn, prof_on, prof_fn, bnred_fn, ranks_fn, ntx_fn, ntxb_fn, ready_fn, end_fn, lmean_fn;
    LLVMTypeRef stat_t, statb_t;
    LLVMValueRef stat_fn, statb_fn;
    /* sc_step's nodes: their phase-0 kernel, for the node table */
    int *step_kern;
};

static inline void oom(void)
{
    fprintf(stderr, "simclrc: error: out of memory\n");
    exit(3);
}

/* What lowering a phase of a node decided: a node may lower to several
 * phases (kernels called one after the other), each with its parallel
 * extent and possibly a call into the communicator after it. */
typedef struct {
    int nphases;              /* of the node (the same for every phase) */
    int64_t extent;           /* 1: runs on one thread */
    int hook;                 /* 1: sc_comm_bn_allreduce(ws + hook_off doubles, hook_n) */
    int64_t hook_off, hook_n;
    char impl[40];            /* the kernel's name: "loop", "gemm", "im2col+gemm x4", ... */
} sc_lowered;

/* Lowering (cg_conv.c, cg_batchnorm.c, cg_elementwise.c, cg_pool.c,
 * cg_head.c): the body of node i's kernel for phase c->phase, at the
 * builder's position in c->fn, from its arguments in c; returns what it
 * decided. */
sc_lowered sc_cg_lower_conv(sc_codegen *c, int i);
/* conv2d+stats: the statistics of node i's output's chunk of nb images
 * from img0, into its second output (cg_convstats.c). */
void sc_cg_conv_chunk_stats(sc_codegen *c, int i, LLVMValueRef img0, int64_t nb);
/* The same for the output channels [lo, hi) only (winograd by rows). */
void sc_cg_conv_chunk_stats_rows(sc_codegen *c, int i, LLVMValueRef img0, int64_t nb, LLVMValueRef lo, LLVMValueRef hi);
sc_lowered sc_cg_lower_conv_bwd_data(sc_codegen *c, int i);
sc_lowered sc_cg_lower_conv_bwd_weight(sc_codegen *c, int i);
sc_lowered sc_cg_lower_batchnorm(sc_codegen *c, int i);
sc_lowered sc_cg_lower_batchnorm_eval(sc_codegen *c, int i);
sc_lowered sc_cg_lower_batchnorm_bwd(sc_codegen *c, int i);
sc_lowered sc_cg_lower_bn_running(sc_codegen *c, int i);
sc_lowered sc_cg_lower_bias_bwd(sc_codegen *c, int i);
sc_lowered sc_cg_lower_elementwise(sc_codegen *c, int i);
sc_lowered sc_cg_lower_pool(sc_codegen *c, int i);
sc_lowered sc_cg_lower_global_avgpool(sc_codegen *c, int i);
sc_lowered sc_cg_lower_linear(sc_codegen *c, int i);
sc_lowered sc_cg_lower_l2norm(sc_codegen *c, int i);
sc_lowered sc_cg_lower_ntxent(sc_codegen *c, int i);
sc_lowered sc_cg_lower_softmax_xent(sc_codegen *c, int i);
sc_lowered sc_cg_lower_statloss(sc_codegen *c, int i);   /* cg_statloss.c: barlow, vicreg */
sc_lowered sc_cg_lower_byol(sc_codegen *c, int i);

/* The sc_model descriptor and its tables (codegen_abi.c); -1 with a
 * message when the target lays the ABI structs out unlike this host's C. */
int sc_cg_define_description(sc_codegen *c, const sc_spec *m, const sc_planned *sp, const sc_planned *ep,
                             const sc_planned *fp, char *err, size_t errlen);

#endif
