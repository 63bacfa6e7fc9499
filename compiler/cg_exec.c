/* Lowering the graph IR to LLVM IR with the C API: the kernels and the
 * entry points that run them.
 *
 * Every node becomes one internal function ("kernel") taking the six base
 * pointers of the ABI (params, grads, buffers, arena, input, out); tensor
 * addresses are those bases plus constant offsets from the memory plan,
 * and every loop bound is a constant. Matrix products call generated GEMM
 * kernels (cg_gemm.c; or OpenBLAS's cblas_sgemm with --gemm=openblas);
 * everything else is a generated loop nest. sc_step and
 * sc_encode call the kernels in graph order. Reductions accumulate in
 * double so that results stay within float rounding of the interpreter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>

#include "cg_builder.h"
#include "tune.h"

/* ---- kernels and entry points ---- */

static sc_lowered lower_node(sc_codegen *c, int i)
{
    switch (c->g->n[i].op) {
    case SC_OP_CONV2D:
    case SC_OP_CONV2D_STATS: return sc_cg_lower_conv(c, i);
    case SC_OP_CONV2D_BWD_DATA: return sc_cg_lower_conv_bwd_data(c, i);
    case SC_OP_CONV2D_BWD_WEIGHT: return sc_cg_lower_conv_bwd_weight(c, i);
    case SC_OP_BIAS_BWD: return sc_cg_lower_bias_bwd(c, i);
    case SC_OP_BATCHNORM:
    case SC_OP_BATCHNORM_RELU:
    case SC_OP_BATCHNORM_ADD_RELU: return sc_cg_lower_batchnorm(c, i);
    case SC_OP_BATCHNORM_EVAL: return sc_cg_lower_batchnorm_eval(c, i);
    case SC_OP_BATCHNORM_BWD:
    case SC_OP_BATCHNORM_RELU_BWD: return sc_cg_lower_batchnorm_bwd(c, i);
    case SC_OP_BN_RUNNING: return sc_cg_lower_bn_running(c, i);
    case SC_OP_RELU:
    case SC_OP_RELU_BWD:
    case SC_OP_ADD:
    case SC_OP_ADD_RELU:
    case SC_OP_ADD_RELU_BWD:
    case SC_OP_RESHAPE:
    case SC_OP_SILU:
    case SC_OP_GELU:
    case SC_OP_LEAKY_RELU:
    case SC_OP_SILU_BWD:
    case SC_OP_GELU_BWD:
    case SC_OP_LEAKY_RELU_BWD: return sc_cg_lower_elementwise(c, i);
    case SC_OP_MAXPOOL:
    case SC_OP_MAXPOOL_BWD:
    case SC_OP_AVGPOOL:
    case SC_OP_AVGPOOL_BWD: return sc_cg_lower_pool(c, i);
    case SC_OP_GLOBAL_AVGPOOL:
    case SC_OP_GLOBAL_AVGPOOL_BWD: return sc_cg_lower_global_avgpool(c, i);
    case SC_OP_LINEAR:
    case SC_OP_LINEAR_BWD_DATA:
    case SC_OP_LINEAR_BWD_WEIGHT: return sc_cg_lower_linear(c, i);
    case SC_OP_L2NORM:
    case SC_OP_L2NORM_BWD: return sc_cg_lower_l2norm(c, i);
    case SC_OP_NTXENT:
    case SC_OP_NTXENT_BWD: return sc_cg_lower_ntxent(c, i);
    case SC_OP_SOFTMAX_XENT:
    case SC_OP_SOFTMAX_XENT_BWD: return sc_cg_lower_softmax_xent(c, i);
    case SC_OP_BARLOW:
    case SC_OP_BARLOW_BWD:
    case SC_OP_VICREG:
    case SC_OP_VICREG_BWD: return sc_cg_lower_statloss(c, i);
    case SC_OP_BYOL:
    case SC_OP_BYOL_BWD: return sc_cg_lower_byol(c, i);
    case SC_OP_COUNT: break;
    }
    return lowered("loop");
}


/* What makes two nodes' kernels identical: the op, its attributes, the
 * shapes of every operand, the workspace, the phase, and which operands
 * share storage (in place: no noalias on those). */
static void kernel_key(const sc_graph *g, const sc_memplan *mp, int i, int phase, char *key, size_t len)
{
    const sc_node *n = &g->n[i];
    size_t k = (size_t)snprintf(key, len, "%d:%d,%d,%d:%.17g,%.17g,%.17g:%lld:p%d:a%x", n->op, n->kernel, n->stride,
                                n->pad, n->eps, n->momentum, n->temperature, (long long)mp->ws_floats[i], phase,
                                sc_memplan_aliases(g, mp, i));
    for (int s = 0; s < n->nin + n->nout && k < len; s++) {
        const sc_tensor *t = &g->t[s < n->nin ? n->in[s] : n->out[s - n->nin]];
        k += (size_t)snprintf(key + k, len - k, "|");
        for (int d = 0; d < t->ndim && k < len; d++)
            k += (size_t)snprintf(key + k, len - k, "%d,", t->shape[d]);
    }
    if (n->op == SC_OP_BN_RUNNING && k < len) {
        /* the element count per channel behind the statistics */
        const sc_tensor *bx = &g->t[g->n[g->t[n->in[0]].producer].in[0]];
        snprintf(key + k, len - k, "#%ld", bx->numel);
    }
    if ((n->op == SC_OP_LEAKY_RELU || n->op == SC_OP_LEAKY_RELU_BWD) && k < len)
        snprintf(key + k, len - k, "s%.17g", n->slope); /* the slope is baked in */
    if (n->op >= SC_OP_BARLOW && n->op <= SC_OP_VICREG_BWD && k < len) /* so are the loss coefficients */
        snprintf(key + k, len - k, "c%.17g,%.17g,%.17g,%.17g", n->coef[0], n->coef[1], n->coef[2], n->coef[3]);
    const sc_conv_pick *p = sc_tune_pick_of(mp->opts.tuning, g, i);
    if (p && k < len) /* and --tune's formulation, chunking and GEMM blocking */
        snprintf(key + k, len - k, "f%dc%lldr%dk%d", (int)p->form, (long long)p->cols_max, p->mr, p->kc);
}

/* The sc_parallel_for wrapper of kernel k: task(ctx, lo, hi, tid) loads
 * the kernel's pointer arguments from the array ctx and calls it. */
static LLVMValueRef task_for(sc_codegen *c, const kern *k, int nptr, const char *name)
{
    char tname[SC_NAME_MAX + 80];
    snprintf(tname, sizeof tname, "%s.task", name);
    LLVMValueRef fn = LLVMAddFunction(c->mod, tname, c->task_t);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMPositionBuilderAtEnd(c->b, bb);
    LLVMValueRef args[SC_MAX_IN + SC_MAX_OUT + 4];
    LLVMValueRef ctx = LLVMGetParam(fn, 0);
    for (int j = 0; j < nptr; j++) {
        LLVMValueRef idx = ci(c, j);
        args[j] = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildGEP2(c->b, c->ptr, ctx, &idx, 1, ""), "");
    }
    for (int j = 0; j < 3; j++)
        args[nptr + j] = LLVMGetParam(fn, (unsigned)(j + 1));
    call(c, k->type, k->fn, args, (unsigned)nptr + 3);
    LLVMBuildRetVoid(c->b);
    return fn;
}

/* The kernel of phase `phase` of node i (found by signature, or
 * generated); sets *nphases. Returns its index in c->kern. */
static int kernel_for(sc_codegen *c, int i, int phase, const char *prefix, int *nphases)
{
    char key[512];
    kernel_key(c->g, c->mp, i, phase, key, sizeof key);
    for (int k = 0; k < c->nk; k++)
        if (!strcmp(c->kern[k].key, key)) {
            *nphases = c->kern[k].nphases;
            return k;
        }
    const sc_node *n = &c->g->n[i];
    int nptr = n->nin + n->nout + 1;
    LLVMTypeRef args[SC_MAX_IN + SC_MAX_OUT + 4];
    for (int k = 0; k < nptr; k++)
        args[k] = c->ptr;
    for (int k = 0; k < 3; k++)
        args[nptr + k] = c->i64;
    LLVMTypeRef ft = LLVMFunctionType(c->vd, args, (unsigned)nptr + 3, 0);
    char name[SC_NAME_MAX + 64];
    snprintf(name, sizeof name, "%s%s.%s%s", prefix, sc_op_name(n->op), n->label, phase ? (phase == 1 ? ".1" : ".2") : "");
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, ft);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    /* Operands do not overlap (the memory plan keeps simultaneously live
     * tensors apart), so pointers are noalias, except those that share
     * storage with another operand (in place, memplan.h). */
    unsigned aliased = sc_memplan_aliases(c->g, c->mp, i);
    for (unsigned k = 1; k <= (unsigned)nptr; k++) {
        if (!(aliased >> (k - 1) & 1u))
            add_attr(c, fn, k, "noalias", 0);
        add_attr(c, fn, k, "nocapture", 0);
    }
    add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);

    c->fn = fn;
    c->node = i;
    c->phase = phase;
    c->entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(c->b, c->entry);
    LLVMBuildBr(c->b, body);
    LLVMPositionBuilderAtEnd(c->b, body);
    for (int k = 0; k < n->nin; k++)
        c->arg_in[k] = LLVMGetParam(fn, (unsigned)k);
    for (int k = 0; k < n->nout; k++)
        c->arg_out[k] = LLVMGetParam(fn, (unsigned)(n->nin + k));
    c->arg_ws = LLVMGetParam(fn, (unsigned)(nptr - 1));
    c->arg_lo = LLVMGetParam(fn, (unsigned)nptr);
    c->arg_hi = LLVMGetParam(fn, (unsigned)nptr + 1);
    c->arg_tid = LLVMGetParam(fn, (unsigned)nptr + 2);
    c->gemm_note[0] = 0;
    const sc_conv_pick *pick = sc_tune_pick_of(c->mp->opts.tuning, c->g, i);
    c->gemm_mr = pick ? pick->mr : 0;
    c->gemm_kc = pick ? pick->kc : 0;
    sc_lowered r = lower_node(c, i);
    c->gemm_mr = c->gemm_kc = 0;
    LLVMBuildRetVoid(c->b);
    char impl[sizeof r.impl + sizeof c->gemm_note + 8];
    if (c->gemm_note[0]) /* the generated GEMMs it calls, by shape */
        snprintf(impl, sizeof impl, "%s [%s]", r.impl, c->gemm_note);
    else
        snprintf(impl, sizeof impl, "%s", r.impl);
    *nphases = r.nphases;

    kern *kk = realloc(c->kern, (size_t)(c->nk + 1) * sizeof *kk);
    if (!kk)
        oom();
    c->kern = kk;
    kern *k = &c->kern[c->nk];
    *k = (kern){strdup(key), fn, NULL, ft, r.extent, r.nphases, r.hook, r.hook_off, r.hook_n, strdup(impl)};
    if (!k->key || !k->impl)
        oom();
    if (k->extent > 1 && c->mp->opts.threads > 1)
        k->task = task_for(c, k, nptr, name);
    return c->nk++;
}

/* if (sc_prof_on) sc_prof_node(i) */
static void prof_mark(sc_codegen *c, LLVMValueRef fn, int i)
{
    LLVMValueRef on = LLVMBuildLoad2(c->b, c->i32, c->prof_on, "");
    LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(c->ctx, fn, "prof");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fn, "next");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, on, LLVMConstInt(c->i32, 0, 0), ""), yes, next);
    LLVMPositionBuilderAtEnd(c->b, yes);
    LLVMValueRef a = LLVMConstInt(c->i32, (unsigned long long)i, 1);
    call(c, c->prof_t, c->prof_fn, &a, 1);
    LLVMBuildBr(c->b, next);
    LLVMPositionBuilderAtEnd(c->b, next);
}

/* Graphs of more nodes than ENTRY_SPLIT_NODES (the shipped models have
 * at most 367) get their entry point in parts of ENTRY_PART_NODES. */
#define ENTRY_SPLIT_NODES 1024
#define ENTRY_PART_NODES 256

/* Opens fn's entry block; base gets each region's pointer (map: fn's
 * parameter number per region, -1 for none). */
static void begin_part(sc_codegen *c, LLVMValueRef fn, const int *map, LLVMValueRef *base)
{
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    for (int r = 0; r < SC_REG_COUNT; r++)
        base[r] = map[r] < 0 ? LLVMConstNull(c->ptr) : LLVMGetParam(fn, (unsigned)map[r]);
}

/* The calls of nodes [lo, hi) of c->g into fn, at the builder. */
static void emit_nodes(sc_codegen *c, LLVMValueRef fn, const LLVMValueRef *base, int lo, int hi, int (*ks)[3],
                       const int *np, int step)
{
    const sc_graph *g = c->g;
    const sc_memplan *mp = c->mp;
    LLVMValueRef ctxarr = LLVMBuildAlloca(c->b, LLVMArrayType2(c->ptr, SC_MAX_IN + SC_MAX_OUT + 1), "ctx");
    int hooks = step && c->mpi;
    for (int i = lo; i < hi; i++) {
        const sc_node *n = &g->n[i];
        if (step)
            prof_mark(c, fn, i);
        LLVMValueRef args[SC_MAX_IN + SC_MAX_OUT + 4];
        int k = 0;
        for (int s = 0; s < n->nin + n->nout; s++) {
            int t = s < n->nin ? n->in[s] : n->out[s - n->nin];
            args[k++] = gep(c, base[mp->region[t]], ci(c, mp->offset[t]));
        }
        LLVMValueRef ws = mp->ws_floats[i] ? gep(c, base[SC_REG_ARENA], ci(c, mp->ws_offset[i])) : LLVMConstNull(c->ptr);
        args[k++] = ws;
        for (int p = 0; p < np[i]; p++) {
            const kern *kn = &c->kern[ks[i][p]];
            if (kn->task) {
                for (int j = 0; j < k; j++) {
                    LLVMValueRef idx[2] = {ci(c, 0), ci(c, j)};
                    LLVMBuildStore(c->b, args[j], LLVMBuildGEP2(c->b, LLVMArrayType2(c->ptr, SC_MAX_IN + SC_MAX_OUT + 1),
                                                                ctxarr, idx, 2, ""));
                }
                LLVMValueRef pa[3] = {kn->task, ctxarr, ci(c, kn->extent)};
                call(c, c->par_t, c->par_fn, pa, 3);
            } else {
                args[k] = ci(c, 0);
                args[k + 1] = ci(c, kn->extent);
                args[k + 2] = ci(c, 0);
                call(c, kn->type, kn->fn, args, (unsigned)k + 3);
            }
            if (kn->hook) {
                LLVMValueRef ha[2] = {gep64(c, ws, ci(c, kn->hook_off)), ci(c, kn->hook_n)};
                call(c, c->bnred_t, c->bnred_fn, ha, 2);
            }
        }
        for (int s = 0; hooks && s < n->nout; s++) {
            int t = n->out[s];
            if (mp->region[t] != SC_REG_GRADS)
                continue;
            LLVMValueRef ra[3] = {base[SC_REG_GRADS], ci(c, mp->offset[t]), ci(c, g->t[t].numel)};
            call(c, c->ready_t, c->ready_fn, ra, 3);
        }
    }
}

/* An entry point: sc_step(params, grads, buffers, arena, input, loss) or
 * sc_encode(params, buffers, arena, input, features); map gives, for each
 * region, the entry's parameter number (-1: none). It runs every phase of
 * every node: split over the thread pool (sc_parallel_for) or called
 * directly. The training step also marks nodes for the profiler and, in
 * data-parallel builds, hands finished gradients to the communicator. */
static void define_entry(sc_codegen *c, const sc_graph *g, const sc_memplan *mp, const char *name,
                         const char *prefix, int nparams, const int *map)
{
    int step = !strcmp(name, "sc_step");
    c->g = g;
    c->mp = mp;
    int (*ks)[3] = calloc((size_t)g->nn + 1, sizeof *ks);
    int *np = calloc((size_t)g->nn + 1, sizeof *np);
    if (!ks || !np)
        oom();
    for (int i = 0; i < g->nn; i++) {
        ks[i][0] = kernel_for(c, i, 0, prefix, &np[i]);
        for (int p = 1; p < np[i]; p++) {
            int dummy;
            ks[i][p] = kernel_for(c, i, p, prefix, &dummy);
        }
    }
    if (step) {
        free(c->step_kern);
        c->step_kern = malloc(((size_t)g->nn + 1) * sizeof *c->step_kern);
        if (!c->step_kern)
            oom();
        for (int i = 0; i < g->nn; i++)
            c->step_kern[i] = ks[i][0];
    }

    LLVMTypeRef pargs[SC_REG_COUNT];
    for (int k = 0; k < SC_REG_COUNT; k++)
        pargs[k] = c->ptr;
    LLVMTypeRef fty = LLVMFunctionType(c->vd, pargs, (unsigned)nparams, 0);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, fty);
    add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);
    LLVMValueRef base[SC_REG_COUNT];
    if (g->nn <= ENTRY_SPLIT_NODES) {
        begin_part(c, fn, map, base);
        emit_nodes(c, fn, base, 0, g->nn, ks, np, step);
    } else {
        /* Big graphs: parts of ENTRY_PART_NODES nodes, each its own
         * function that is never inlined, since LLVM's optimisation of one
         * function of tens of thousands of blocks grows faster than
         * linearly (ten minutes for 20,000 nodes). */
        int nparts = (g->nn + ENTRY_PART_NODES - 1) / ENTRY_PART_NODES;
        /* Nor the kernels: inlined, each call site's copy is optimised
         * again (most of the time for thousands of nodes). */
        for (int i = 0; i < g->nn; i++)
            for (int p = 0; p < np[i]; p++) {
                const kern *kn = &c->kern[ks[i][p]];
                if (!kn->task) /* tasks are called through the pool, never inlined */
                    add_attr(c, kn->fn, LLVMAttributeFunctionIndex, "noinline", 0);
            }
        LLVMValueRef *parts = malloc((size_t)nparts * sizeof *parts);
        if (!parts)
            oom();
        for (int p = 0; p < nparts; p++) {
            char pname[96];
            snprintf(pname, sizeof pname, "%s.part%d", name, p);
            parts[p] = LLVMAddFunction(c->mod, pname, fty);
            LLVMSetLinkage(parts[p], LLVMInternalLinkage);
            add_attr(c, parts[p], LLVMAttributeFunctionIndex, "nounwind", 0);
            add_attr(c, parts[p], LLVMAttributeFunctionIndex, "noinline", 0);
            /* A part is a list of calls: nothing to optimise, and not
             * optimising it keeps compile time linear. */
            add_attr(c, parts[p], LLVMAttributeFunctionIndex, "optnone", 0);
            LLVMValueRef pbase[SC_REG_COUNT];
            begin_part(c, parts[p], map, pbase);
            int lo = p * ENTRY_PART_NODES, hi = lo + ENTRY_PART_NODES < g->nn ? lo + ENTRY_PART_NODES : g->nn;
            emit_nodes(c, parts[p], pbase, lo, hi, ks, np, step);
            LLVMBuildRetVoid(c->b);
        }
        begin_part(c, fn, map, base);
        LLVMValueRef args[SC_REG_COUNT];
        for (int k = 0; k < nparams; k++)
            args[k] = LLVMGetParam(fn, (unsigned)k);
        for (int p = 0; p < nparts; p++)
            call(c, fty, parts[p], args, (unsigned)nparams);
        free(parts);
    }
    if (step && c->mpi)
        call(c, c->end_t, c->end_fn, &base[SC_REG_GRADS], 1);
    if (step)
        prof_mark(c, fn, -1);
    LLVMBuildRetVoid(c->b);
    free(ks);
    free(np);
}

int sc_codegen_module(sc_codegen *c, const sc_spec *m, const sc_planned *step, const sc_planned *enc,
                      const sc_planned *ft, char *err, size_t errlen)
{
    static const int step_map[SC_REG_COUNT] = {0, 1, 2, 3, 4, 5};
    define_entry(c, step->g, step->mp, "sc_step", "step.", 6, step_map);
    static const int enc_map[SC_REG_COUNT] = {0, -1, 1, 2, 3, 4};
    define_entry(c, enc->g, enc->mp, "sc_encode", "encode.", 5, enc_map);
    define_entry(c, ft->g, ft->mp, "sc_finetune_step", "finetune.", 6, step_map);

    if (sc_cg_define_description(c, m, step, enc, ft, err, errlen))
        return -1;

    char *msg = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
        snprintf(err, errlen, "internal error: generated module fails verification: %.400s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return -1;
    }
    LLVMDisposeMessage(msg);
    return 0;
}
