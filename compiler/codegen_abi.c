/* The model description sc_model (include/sc_abi.h) as LLVM constants:
 * the parameter, augmentation and node tables and the descriptor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_builder.h"
#include "sc_abi_version.h"

/* ---- the model description (sc_model) ---- */

static LLVMValueRef cstr(sc_codegen *c, const char *s, const char *name)
{
    LLVMValueRef init = LLVMConstStringInContext(c->ctx, s, (unsigned)strlen(s), 0);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
    return gv;
}

/* A private constant global holding a table. */
static LLVMValueRef private_table(sc_codegen *c, LLVMValueRef arr, const char *name)
{
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(arr), name);
    LLVMSetInitializer(gv, arr);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

static LLVMValueRef i32v(sc_codegen *c, int64_t v) { return LLVMConstInt(c->i32, (unsigned long long)v, 1); }

static LLVMTypeRef param_info_type(sc_codegen *c)
{
    LLVMTypeRef f[] = {c->ptr, c->i32, LLVMArrayType2(c->i32, 4), c->i64, c->i64, c->i32, c->i32, c->i32, c->i32};
    return LLVMStructTypeInContext(c->ctx, f, 9, 0);
}

static LLVMValueRef param_table(sc_codegen *c, const sc_graph *g, const sc_memplan *mp, const int *list, int n,
                                const char *name)
{
    LLVMTypeRef pt = param_info_type(c);
    LLVMValueRef *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rows)
        return LLVMConstNull(c->ptr);
    for (int i = 0; i < n; i++) {
        const sc_tensor *t = &g->t[list[i]];
        char gname[64];
        snprintf(gname, sizeof gname, "%s.name.%d", name, i);
        LLVMValueRef dims[4];
        for (int d = 0; d < 4; d++)
            dims[d] = i32v(c, d < t->ndim ? t->shape[d] : 0);
        LLVMValueRef f[] = {cstr(c, t->name, gname), i32v(c, t->ndim), LLVMConstArray2(c->i32, dims, 4),
                            ci(c, t->numel), ci(c, mp->offset[list[i]]), i32v(c, t->init),
                            i32v(c, t->fan_in), i32v(c, t->no_decay), i32v(c, 0)};
        rows[i] = LLVMConstNamedStruct(pt, f, 9);
    }
    LLVMValueRef arr = LLVMConstArray2(pt, rows, (uint64_t)n);
    free(rows);
    return private_table(c, arr, name);
}

static LLVMValueRef aug_table(sc_codegen *c, const sc_spec *m)
{
    LLVMTypeRef d3 = LLVMArrayType2(c->f64, 3);
    LLVMTypeRef f[] = {c->i32, c->i32, c->i32, c->i32, c->f64, c->f64, c->f64, c->f64, c->f64, c->f64,
                       c->f64, c->f64, c->f64, c->f64, c->f64, d3, d3};
    LLVMTypeRef at = LLVMStructTypeInContext(c->ctx, f, 17, 0);
    LLVMValueRef *rows = calloc((size_t)m->naugs + 1, sizeof *rows);
    if (!rows)
        return LLVMConstNull(c->ptr);
    for (int i = 0; i < m->naugs; i++) {
        const sc_aug *a = &m->augs[i];
        LLVMValueRef mean[3], sd[3];
        for (int k = 0; k < 3; k++) {
            mean[k] = cd(c, a->mean[k]);
            sd[k] = cd(c, a->std[k]);
        }
        LLVMValueRef v[] = {i32v(c, a->kind), i32v(c, a->size), i32v(c, a->kernel), i32v(c, 0),
                            cd(c, a->p), cd(c, a->scale_min), cd(c, a->scale_max), cd(c, a->ratio_min),
                            cd(c, a->ratio_max), cd(c, a->brightness), cd(c, a->contrast), cd(c, a->saturation),
                            cd(c, a->hue), cd(c, a->sigma_min), cd(c, a->sigma_max),
                            LLVMConstArray2(c->f64, mean, 3), LLVMConstArray2(c->f64, sd, 3)};
        rows[i] = LLVMConstNamedStruct(at, v, 17);
    }
    LLVMValueRef arr = LLVMConstArray2(at, rows, (uint64_t)m->naugs);
    free(rows);
    return private_table(c, arr, "sc.augs");
}

/* sc_step's nodes in call order, with the kernel chosen for each. */
static LLVMValueRef node_table(sc_codegen *c, const sc_graph *g)
{
    LLVMTypeRef f[] = {c->ptr, c->ptr, c->ptr, c->f64, c->i64};
    LLVMTypeRef nt = LLVMStructTypeInContext(c->ctx, f, 5, 0);
    LLVMValueRef *rows = calloc((size_t)g->nn + 1, sizeof *rows);
    if (!rows)
        oom();
    for (int i = 0; i < g->nn; i++) {
        const kern *k = &c->kern[c->step_kern[i]];
        char gname[64];
        snprintf(gname, sizeof gname, "sc.node.%d", i);
        LLVMValueRef label = cstr(c, g->n[i].label, gname);
        snprintf(gname, sizeof gname, "sc.node.%d.op", i);
        LLVMValueRef op = cstr(c, sc_op_name(g->n[i].op), gname);
        snprintf(gname, sizeof gname, "sc.node.%d.impl", i);
        LLVMValueRef v[] = {label, op, cstr(c, k->impl, gname), cd(c, sc_node_flops(g, i)), ci(c, k->extent)};
        rows[i] = LLVMConstNamedStruct(nt, v, 5);
    }
    LLVMValueRef arr = LLVMConstArray2(nt, rows, (uint64_t)g->nn);
    free(rows);
    return private_table(c, arr, "sc.nodes");
}

void sc_cg_define_description(sc_codegen *c, const sc_spec *m, const sc_planned *sp, const sc_planned *ep,
                               const sc_planned *fp)
{
    const sc_graph *step = sp->g, *enc = ep->g, *ft = fp->g;
    const sc_memplan *smp = sp->mp, *emp = ep->mp, *fmp = fp->mp;
    double flops = 0;
    for (int i = 0; i < step->nn; i++)
        flops += sc_node_flops(step, i);
    const sc_tensor *feat = &enc->t[enc->features];
    const sc_tensor *z = &step->t[step->n[step->t[step->loss].producer].in[0]];
    const sc_train *tr = &m->train;

    LLVMTypeRef tf[] = {c->i32, c->i32, c->f64, c->i32, c->i32, c->f64, c->f64, c->i32, c->i32, c->i64};
    LLVMTypeRef tt = LLVMStructTypeInContext(c->ctx, tf, 10, 0);
    LLVMValueRef tv[] = {i32v(c, tr->epochs), i32v(c, tr->optimizer), cd(c, tr->lr), i32v(c, tr->lr_scaling_linear),
                         i32v(c, tr->warmup_epochs), cd(c, tr->momentum), cd(c, tr->weight_decay),
                         i32v(c, tr->schedule), i32v(c, 0), LLVMConstInt(c->i64, tr->seed, 0)};

    LLVMTypeRef df[] = {c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->i32,
                        c->i32, c->i32, c->i64, c->i64, c->i64, c->i64, c->f64, c->f64, c->ptr, c->ptr,
                        c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, c->ptr, tt,
                        c->i32, c->i32, c->i32, c->i32, c->i64, c->i64, c->ptr,
                        c->i32, c->i32, c->ptr, c->i32, c->i32};
    LLVMTypeRef dt = LLVMStructTypeInContext(c->ctx, df, 39, 0);
    LLVMValueRef dv[] = {
        i32v(c, SC_ABI_VERSION), i32v(c, step->batch), i32v(c, m->in_c), i32v(c, m->in_h), i32v(c, m->in_w),
        i32v(c, feat->numel / feat->shape[0]), i32v(c, z->shape[1]), i32v(c, feat->shape[0]), i32v(c, step->nparams),
        i32v(c, step->nbuffers), i32v(c, m->naugs), i32v(c, 0), ci(c, smp->params_floats),
        ci(c, smp->buffers_floats), ci(c, smp->arena_floats), ci(c, emp->arena_floats), cd(c, flops),
        cd(c, m->temperature), cstr(c, m->name, "sc.name"), cstr(c, SC_VERSION, "sc.version"),
        cstr(c, c->cpu, "sc.cpu"), cstr(c, c->features, "sc.features"), cstr(c, m->text ? m->text : "", "sc.spec"),
        param_table(c, step, smp, step->params, step->nparams, "sc.params"),
        param_table(c, step, smp, step->buffers, step->nbuffers, "sc.buffers"), aug_table(c, m),
        LLVMConstNamedStruct(tt, tv, 10),
        i32v(c, ft->t[ft->input].shape[0]), i32v(c, ft->t[ft->n[ft->t[ft->loss].producer].in[0]].shape[1]),
        i32v(c, ft->nparams), i32v(c, 0), ci(c, fmp->params_floats), ci(c, fmp->arena_floats),
        param_table(c, ft, fmp, ft->params, ft->nparams, "sc.ft_params"),
        i32v(c, smp->opts.threads), i32v(c, step->nn), node_table(c, step), i32v(c, c->mpi), i32v(c, 0)};
    LLVMValueRef init = LLVMConstNamedStruct(dt, dv, 39);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, dt, "sc_model");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
}
