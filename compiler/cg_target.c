/* The target machine: its setup (host CPU or --target-cpu), the runtime
 * functions generated code calls, the pass pipeline, emission and the
 * JIT. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "cg_builder.h"

/* ---- target setup, passes, emission ---- */

/* The C API cannot ask whether a CPU name is valid: LLVM only warns ("...
 * is not a recognized processor ...") on stderr when it builds the
 * subtarget, and may then abort in code generation. So compile an empty
 * function in a child process with stderr captured. */
static void probe_child(LLVMTargetRef target, const char *triple, const char *cpu)
{
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, "", LLVMCodeGenLevelNone,
                                                      LLVMRelocPIC, LLVMCodeModelDefault);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("probe", ctx);
    LLVMSetTarget(m, triple);
    LLVMValueRef fn = LLVMAddFunction(m, "probe", LLVMFunctionType(LLVMVoidTypeInContext(ctx), NULL, 0, 0));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, fn, "entry"));
    LLVMBuildRetVoid(b);
    LLVMMemoryBufferRef mb = NULL;
    char *msg = NULL;
    int rc = LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &mb);
    fflush(stderr);
    _exit(rc ? 1 : 0);
}

static int cpu_known(LLVMTargetRef target, const char *triple, const char *cpu)
{
    int fds[2];
    if (pipe(fds))
        return 1; /* cannot check: let LLVM decide later */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        probe_child(target, triple, cpu);
    }
    close(fds[1]);
    char text[4096];
    size_t n = 0;
    ssize_t k;
    while ((k = read(fds[0], text + n, sizeof text - 1 - n)) > 0 && n + (size_t)k < sizeof text - 1)
        n += (size_t)k;
    text[n] = 0;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strstr(text, "not a recognized processor");
}

const char *sc_codegen_cpu(const sc_codegen *c) { return c->cpu; }

static LLVMValueRef declare(sc_codegen *c, const char *name, LLVMTypeRef *t, LLVMTypeRef ret, LLVMTypeRef *args,
                            unsigned n)
{
    *t = LLVMFunctionType(ret, args, n, 0);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, *t);
    add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind", 0);
    return fn;
}

/* The runtime functions generated code calls (sc_parallel.h,
 * sc_profile.h, sc_comm.h). */
static void declare_runtime(sc_codegen *c)
{
    LLVMTypeRef p = c->ptr, i64 = c->i64, f64 = c->f64, i32 = c->i32;
    LLVMTypeRef task[4] = {p, i64, i64, i64};
    c->task_t = LLVMFunctionType(c->vd, task, 4, 0);
    LLVMTypeRef par[3] = {p, p, i64};
    c->par_fn = declare(c, "sc_parallel_for", &c->par_t, c->vd, par, 3);
    c->threads_fn = declare(c, "sc_threads", &c->threads_t, i32, NULL, 0);
    c->prof_on = LLVMAddGlobal(c->mod, i32, "sc_prof_on");
    c->prof_fn = declare(c, "sc_prof_node", &c->prof_t, c->vd, &i32, 1);
    LLVMTypeRef red[2] = {p, i64};
    c->bnred_fn = declare(c, "sc_comm_bn_allreduce", &c->bnred_t, c->vd, red, 2);
    c->ranks_fn = declare(c, "sc_comm_bn_ranks", &c->ranks_t, f64, NULL, 0);
    LLVMTypeRef ntx[5] = {p, i64, i64, f64, p};
    c->ntx_fn = declare(c, "sc_comm_ntxent", &c->ntx_t, c->vd, ntx, 5);
    LLVMTypeRef ntxb[3] = {p, i64, i64};
    c->ntxb_fn = declare(c, "sc_comm_ntxent_bwd", &c->ntxb_t, c->vd, ntxb, 3);
    LLVMTypeRef stat[9] = {p, i64, i64, i32, f64, f64, f64, f64, p};
    c->stat_fn = declare(c, "sc_comm_statloss", &c->stat_t, c->vd, stat, 9);
    c->statb_fn = declare(c, "sc_comm_statloss_bwd", &c->statb_t, c->vd, ntxb, 3);
    LLVMTypeRef ready[3] = {p, i64, i64};
    c->ready_fn = declare(c, "sc_comm_grad_ready", &c->ready_t, c->vd, ready, 3);
    c->end_fn = declare(c, "sc_comm_step_end", &c->end_t, c->vd, &p, 1);
    c->lmean_fn = declare(c, "sc_comm_loss_mean", &c->lmean_t, c->vd, &p, 1);
}

sc_codegen *sc_codegen_new(const sc_codegen_options *o, char *err, size_t errlen)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    sc_codegen *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->opt_level = o->opt_level;
    char *triple = LLVMGetDefaultTargetTriple();
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
        snprintf(err, errlen, "no LLVM target for %s: %s", triple, msg ? msg : "?");
        LLVMDisposeMessage(msg);
        LLVMDisposeMessage(triple);
        free(c);
        return NULL;
    }
    int host = !o->target_cpu || !strcmp(o->target_cpu, "native");
    if (host) {
        char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
        c->cpu = strdup(cpu);
        c->features = strdup(feat);
        LLVMDisposeMessage(cpu);
        LLVMDisposeMessage(feat);
    } else {
        c->cpu = strdup(!strcmp(o->target_cpu, "generic") ? "x86-64" : o->target_cpu);
        c->features = strdup("");
    }
    if (!c->cpu || !c->features) {
        snprintf(err, errlen, "out of memory");
        LLVMDisposeMessage(triple);
        sc_codegen_free(c);
        return NULL;
    }
    if (!host && !cpu_known(target, triple, c->cpu)) {
        snprintf(err, errlen, "unknown --target-cpu '%s' (try 'generic', 'native', or a name from llc-19 -mcpu=help)",
                 o->target_cpu);
        LLVMDisposeMessage(triple);
        sc_codegen_free(c);
        return NULL;
    }
    LLVMCodeGenOptLevel lvl = o->opt_level == 0 ? LLVMCodeGenLevelNone
                              : o->opt_level == 1 ? LLVMCodeGenLevelLess
                              : o->opt_level == 2 ? LLVMCodeGenLevelDefault
                                                  : LLVMCodeGenLevelAggressive;
    c->tm = LLVMCreateTargetMachine(target, triple, c->cpu, c->features, lvl, LLVMRelocPIC, LLVMCodeModelDefault);
    c->ctx = LLVMContextCreate();
    c->mod = LLVMModuleCreateWithNameInContext("simclrc", c->ctx);
    LLVMSetTarget(c->mod, triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(c->tm);
    LLVMSetModuleDataLayout(c->mod, dl);
    LLVMDisposeTargetData(dl);
    LLVMDisposeMessage(triple);
    c->b = LLVMCreateBuilderInContext(c->ctx);
    c->f64_elements = o->double_precision;
    c->elt = c->f64_elements ? LLVMDoubleTypeInContext(c->ctx) : LLVMFloatTypeInContext(c->ctx);
    c->f64 = LLVMDoubleTypeInContext(c->ctx);
    c->i1 = LLVMInt1TypeInContext(c->ctx);
    c->i32 = LLVMInt32TypeInContext(c->ctx);
    c->i64 = LLVMInt64TypeInContext(c->ctx);
    c->ptr = LLVMPointerTypeInContext(c->ctx, 0);
    c->vd = LLVMVoidTypeInContext(c->ctx);
    LLVMTypeRef sargs[14] = {c->i32, c->i32, c->i32, c->i32, c->i32, c->i32, c->elt,
                             c->ptr, c->i32, c->ptr, c->i32, c->elt, c->ptr, c->i32};
    c->sgemm_t = LLVMFunctionType(c->vd, sargs, 14, 0);
    c->sgemm = LLVMAddFunction(c->mod, c->f64_elements ? "cblas_dgemm" : "cblas_sgemm", c->sgemm_t);
    c->mpi = o->mpi;
    c->gemm_openblas = o->gemm_openblas;
    declare_runtime(c);
    return c;
}

void sc_codegen_free(sc_codegen *c)
{
    if (!c)
        return;
    if (c->b)
        LLVMDisposeBuilder(c->b);
    if (c->ee)
        LLVMDisposeExecutionEngine(c->ee);
    else if (c->mod)
        LLVMDisposeModule(c->mod);
    if (c->ctx)
        LLVMContextDispose(c->ctx);
    if (c->tm)
        LLVMDisposeTargetMachine(c->tm);
    for (int k = 0; k < c->nk; k++) {
        free(c->kern[k].key);
        free(c->kern[k].impl);
    }
    free(c->kern);
    free(c->step_kern);
    free(c->cpu);
    free(c->features);
    free(c);
}

int sc_codegen_optimize(sc_codegen *c, char *err, size_t errlen)
{
    char passes[32];
    snprintf(passes, sizeof passes, "default<O%d>", c->opt_level);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(opts, c->opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(opts, c->opt_level >= 2);
    LLVMErrorRef e = LLVMRunPasses(c->mod, passes, c->tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        snprintf(err, errlen, "internal error: LLVM passes failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        return -1;
    }
    return 0;
}

int sc_codegen_emit(sc_codegen *c, const char *kind, const char *path, char *err, size_t errlen)
{
    char *msg = NULL;
    if (!strcmp(kind, "llvm")) {
        if (!strcmp(path, "-")) {
            char *s = LLVMPrintModuleToString(c->mod);
            int bad = fputs(s, stdout) < 0 || fflush(stdout);
            LLVMDisposeMessage(s);
            if (bad)
                snprintf(err, errlen, "writing standard output failed");
            return bad ? -1 : 0;
        }
        if (LLVMPrintModuleToFile(c->mod, path, &msg)) {
            snprintf(err, errlen, "cannot write %s: %s", path, msg ? msg : "?");
            LLVMDisposeMessage(msg);
            return -1;
        }
        return 0;
    }
    LLVMCodeGenFileType ft = !strcmp(kind, "asm") ? LLVMAssemblyFile : LLVMObjectFile;
    if (!strcmp(path, "-")) {
        LLVMMemoryBufferRef mb;
        if (LLVMTargetMachineEmitToMemoryBuffer(c->tm, c->mod, ft, &msg, &mb)) {
            snprintf(err, errlen, "code generation failed: %s", msg ? msg : "?");
            LLVMDisposeMessage(msg);
            return -1;
        }
        size_t n = LLVMGetBufferSize(mb);
        int bad = fwrite(LLVMGetBufferStart(mb), 1, n, stdout) != n || fflush(stdout);
        LLVMDisposeMemoryBuffer(mb);
        if (bad)
            snprintf(err, errlen, "writing standard output failed");
        return bad ? -1 : 0;
    }
    /* LLVMTargetMachineEmitToFile takes a non-const path. */
    char *p = strdup(path);
    int rc = !p || LLVMTargetMachineEmitToFile(c->tm, c->mod, p, ft, &msg);
    free(p);
    if (rc) {
        snprintf(err, errlen, "cannot write %s: %s", path, msg ? msg : "out of memory");
        LLVMDisposeMessage(msg);
        return -1;
    }
    return 0;
}

void *sc_codegen_jit(sc_codegen *c, const char *symbol, char *err, size_t errlen)
{
    if (!c->ee) {
        /* MCJIT's own target machine is the generic CPU: without the
         * emitter's CPU and features on each function it would select
         * other instructions (no FMA, so other roundings) than the
         * object file of the same module. */
        for (LLVMValueRef f = LLVMGetFirstFunction(c->mod); f; f = LLVMGetNextFunction(f)) {
            if (LLVMIsDeclaration(f))
                continue;
            LLVMAddTargetDependentFunctionAttr(f, "target-cpu", c->cpu);
            if (*c->features)
                LLVMAddTargetDependentFunctionAttr(f, "target-features", c->features);
        }
        LLVMLinkInMCJIT();
        struct LLVMMCJITCompilerOptions o;
        LLVMInitializeMCJITCompilerOptions(&o, sizeof o);
        o.OptLevel = (unsigned)c->opt_level;
        char *msg = NULL;
        if (LLVMCreateMCJITCompilerForModule(&c->ee, c->mod, &o, sizeof o, &msg)) {
            snprintf(err, errlen, "cannot create the JIT: %s", msg ? msg : "?");
            LLVMDisposeMessage(msg);
            c->ee = NULL;
            return NULL;
        }
    }
    uint64_t addr = LLVMGetFunctionAddress(c->ee, symbol);
    if (!addr) {
        addr = LLVMGetGlobalValueAddress(c->ee, symbol);
        if (!addr) {
            snprintf(err, errlen, "the JIT has no symbol %s", symbol);
            return NULL;
        }
    }
    return (void *)(uintptr_t)addr;
}
