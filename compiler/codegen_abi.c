/* The model description sc_model (include/sc_abi.h) as LLVM constants:
 * the parameter, augmentation and node tables and the descriptor, each
 * row built field by field through abi_layout.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_layout.h"
#include "cg_builder.h"
#include "remat.h"
#include "torchvision.h"

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

/* An array constant of n rows of type t (n may be 0). */
static LLVMValueRef rows_table(sc_codegen *c, LLVMTypeRef t, LLVMValueRef *rows, int n, const char *name)
{
    LLVMValueRef arr = LLVMConstArray2(t, rows, (uint64_t)n);
    free(rows);
    return private_table(c, arr, name);
}

/* The parameter (or buffer) table of list; s0 is the encoder's first
 * stage when its tensors have torchvision keys (torchvision.h), else -1. */
static LLVMValueRef param_table(sc_codegen *c, const sc_graph *g, const sc_memplan *mp, const int *list, int n,
                                int s0, const char *name)
{
    LLVMValueRef *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rows)
        oom();
    for (int i = 0; i < n; i++) {
        const sc_tensor *t = &g->t[list[i]];
        char gname[64], key[2 * SC_NAME_MAX];
        sc_param_info_llvm v = {0};
        snprintf(gname, sizeof gname, "%s.name.%d", name, i);
        v.name = cstr(c, t->name, gname);
        if (t->role == SC_ROLE_ENCODER && !sc_torchvision_key(t->name, s0, key, sizeof key)) {
            snprintf(gname, sizeof gname, "%s.export.%d", name, i);
            v.export_name = cstr(c, key, gname);
        }
        LLVMValueRef dims[4];
        for (int d = 0; d < 4; d++)
            dims[d] = i32v(c, d < t->ndim ? t->shape[d] : 0);
        v.ndim = i32v(c, t->ndim);
        v.shape = LLVMConstArray2(c->i32, dims, 4);
        v.role = i32v(c, t->role);
        v.numel = ci(c, t->numel);
        v.offset = ci(c, mp->offset[list[i]]);
        v.init = i32v(c, t->init);
        v.fan_in = i32v(c, t->fan_in);
        v.no_decay = i32v(c, t->no_decay);
        rows[i] = sc_llvm_const_sc_param_info(c->ctx, &v);
    }
    return rows_table(c, sc_llvm_type_sc_param_info(c->ctx), rows, n, name);
}

static LLVMValueRef aug_table(sc_codegen *c, const sc_spec *m)
{
    LLVMValueRef *rows = calloc((size_t)m->naugs + 1, sizeof *rows);
    if (!rows)
        oom();
    for (int i = 0; i < m->naugs; i++) {
        const sc_aug *a = &m->augs[i];
        LLVMValueRef mean[3], sd[3];
        for (int k = 0; k < 3; k++) {
            mean[k] = cd(c, a->mean[k]);
            sd[k] = cd(c, a->std[k]);
        }
        sc_aug_info_llvm v = {
            .kind = i32v(c, a->kind), .size = i32v(c, a->size), .kernel = i32v(c, a->kernel),
            .p = cd(c, a->p), .scale_min = cd(c, a->scale_min), .scale_max = cd(c, a->scale_max),
            .ratio_min = cd(c, a->ratio_min), .ratio_max = cd(c, a->ratio_max),
            .brightness = cd(c, a->brightness), .contrast = cd(c, a->contrast),
            .saturation = cd(c, a->saturation), .hue = cd(c, a->hue), .sigma_min = cd(c, a->sigma_min),
            .sigma_max = cd(c, a->sigma_max), .mean = LLVMConstArray2(c->f64, mean, 3),
            .std = LLVMConstArray2(c->f64, sd, 3),
        };
        rows[i] = sc_llvm_const_sc_aug_info(c->ctx, &v);
    }
    return rows_table(c, sc_llvm_type_sc_aug_info(c->ctx), rows, m->naugs, "sc.augs");
}

/* sc_step's nodes in call order, with the kernel chosen for each. */
static LLVMValueRef node_table(sc_codegen *c, const sc_graph *g)
{
    LLVMValueRef *rows = calloc((size_t)g->nn + 1, sizeof *rows);
    if (!rows)
        oom();
    for (int i = 0; i < g->nn; i++) {
        const kern *k = &c->kern[c->step_kern[i]];
        char gname[64];
        sc_node_info_llvm v = {0};
        snprintf(gname, sizeof gname, "sc.node.%d", i);
        v.name = cstr(c, g->n[i].label, gname);
        snprintf(gname, sizeof gname, "sc.node.%d.op", i);
        v.op = cstr(c, sc_op_name(g->n[i].op), gname);
        snprintf(gname, sizeof gname, "sc.node.%d.impl", i);
        v.impl = cstr(c, k->impl, gname);
        v.flops = cd(c, sc_node_flops(g, i));
        v.parallel = ci(c, k->extent);
        rows[i] = sc_llvm_const_sc_node_info(c->ctx, &v);
    }
    return rows_table(c, sc_llvm_type_sc_node_info(c->ctx), rows, g->nn, "sc.nodes");
}

int sc_cg_define_description(sc_codegen *c, const sc_spec *m, const sc_planned *sp, const sc_planned *ep,
                             const sc_planned *fp, char *err, size_t errlen)
{
    char why[256];
    if (sc_abi_check_layout(c->ctx, LLVMGetModuleDataLayout(c->mod), why, sizeof why)) {
        snprintf(err, errlen, "internal error: the target's layout of the ABI differs from the runtime's: %s", why);
        return -1;
    }
    const sc_graph *step = sp->g, *enc = ep->g, *ft = fp->g;
    const sc_memplan *smp = sp->mp, *emp = ep->mp, *fmp = fp->mp;
    double flops = 0;
    for (int i = 0; i < step->nn; i++)
        if (!sc_remat_is_copy(step, i))
            flops += sc_node_flops(step, i);
    const sc_tensor *feat = &enc->t[enc->features];
    const sc_tensor *z = &step->t[step->n[step->t[step->loss].producer].in[0]];
    const sc_train *tr = &m->train;
    int s0 = sc_torchvision_stage0(m, step);

    sc_train_defaults_llvm t = {
        .epochs = i32v(c, tr->epochs), .optimizer = i32v(c, tr->optimizer), .lr = cd(c, tr->lr),
        .lr_scaling_linear = i32v(c, tr->lr_scaling_linear), .warmup_epochs = i32v(c, tr->warmup_epochs),
        .momentum = cd(c, tr->momentum), .weight_decay = cd(c, tr->weight_decay),
        .schedule = i32v(c, tr->schedule), .seed = LLVMConstInt(c->i64, tr->seed, 0),
    };
    char loss[128];
    sc_loss_describe(m, loss, sizeof loss);
    sc_model_desc_llvm d = {
        .abi_version = i32v(c, SC_ABI_VERSION),
        .batch = i32v(c, step->batch),
        .in_c = i32v(c, m->in_c),
        .in_h = i32v(c, m->in_h),
        .in_w = i32v(c, m->in_w),
        .feature_dim = i32v(c, feat->numel / feat->shape[0]),
        .proj_dim = i32v(c, z->shape[1]),
        .encode_batch = i32v(c, feat->shape[0]),
        .nparams = i32v(c, step->nparams),
        .nbuffers = i32v(c, step->nbuffers),
        .naugs = i32v(c, m->naugs),
        .params_floats = ci(c, smp->params_floats),
        .buffers_floats = ci(c, smp->buffers_floats),
        .arena_floats = ci(c, smp->arena_floats),
        .encode_arena_floats = ci(c, emp->arena_floats),
        .flops_per_step = cd(c, flops),
        .temperature = cd(c, m->temperature),
        .loss = cstr(c, loss, "sc.loss"),
        .name = cstr(c, m->name, "sc.name"),
        .compiler_version = cstr(c, SC_VERSION, "sc.version"),
        .target_cpu = cstr(c, c->cpu, "sc.cpu"),
        .target_features = cstr(c, c->features, "sc.features"),
        .spec = cstr(c, m->text ? m->text : "", "sc.spec"),
        .params = param_table(c, step, smp, step->params, step->nparams, s0, "sc.params"),
        .buffers = param_table(c, step, smp, step->buffers, step->nbuffers, s0, "sc.buffers"),
        .augs = aug_table(c, m),
        .train = sc_llvm_const_sc_train_defaults(c->ctx, &t),
        .finetune_batch = i32v(c, ft->t[ft->input].shape[0]),
        .nclasses = i32v(c, ft->t[ft->n[ft->t[ft->loss].producer].in[0]].shape[1]),
        .nft_params = i32v(c, ft->nparams),
        .ft_params_floats = ci(c, fmp->params_floats),
        .ft_arena_floats = ci(c, fmp->arena_floats),
        .ft_params = param_table(c, ft, fmp, ft->params, ft->nparams, s0, "sc.ft_params"),
        .max_threads = i32v(c, smp->opts.threads),
        .nstep_nodes = i32v(c, step->nn),
        .step_nodes = node_table(c, step),
        .mpi = i32v(c, c->mpi),
        .tau_base = cd(c, m->loss_kind == SC_LOSS_BYOL ? m->tau_base : 0.0),
    };
    LLVMValueRef init = sc_llvm_const_sc_model_desc(c->ctx, &d);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, sc_llvm_type_sc_model_desc(c->ctx), "sc_model");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    return 0;
}
