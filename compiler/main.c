/* simclrc: the compiler driver (cli.md). Reads a model, builds the forward
 * graph, differentiates it, and emits what --emit asks for. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autodiff.h"
#include "build.h"
#include "codegen.h"
#include "convplan.h"
#include "tune.h"
#include "diag.h"
#include "derive.h"
#include "fuse.h"
#include "link.h"
#include "memplan.h"
#include "sizelimit.h"
#include "ir.h"
#include "model.h"
#include "schedule.h"
#include "stepdump.h"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

/* The passes, in order: build the SimCLR graph, differentiate it, derive
 * the eval-mode encoder and the fine-tuning graph (differentiated too),
 * fuse all three (derivation expects unfused batchnorms), then order each
 * one's nodes for a smaller arena (schedule.h). */
static const char *const passes[] = {"build", "autodiff", "encoder", "finetune", "fuse", "schedule"};
#define NPASSES (int)(sizeof passes / sizeof passes[0])

static void usage(FILE *f)
{
    fprintf(f,
            "usage: simclrc [options] MODEL.xml\n"
            "\n"
            "Compiles a SimCLR model description into a specialised training binary.\n"
            "\n"
            "options:\n"
            "  -o PATH             output path (default ./NAME for exe, stdout for text)\n"
            "  --emit=KIND         exe (default), obj, asm, llvm, graph, dot, memplan, step-dump\n"
            "  -O0 .. -O3          LLVM optimisation level (default -O2)\n"
            "  --target-cpu=NAME   CPU to generate code for (default: the host; 'generic' is portable)\n"
            "  --dump-after=PASS   print the graph after PASS to stderr (build, autodiff, encoder, finetune,\n"
            "                      fuse, schedule, all)\n"
            "  --no-fuse           skip the fusion pass: every op its own kernel (also -fno-fuse)\n"
            "  --graph=WHICH       graph for graph, dot, memplan and step-dump: simclr (default), encoder, finetune\n"
            "  --classes=N         classes of the fine-tuning classifier (default 10)\n"
            "  --seed=N            seed of step-dump inputs and parameter initialisation (default 0)\n"
            "  --batch=N           override the model's batch (images per step) for this compile\n"
            "  --mpi               data-parallel binary for mpirun: N images per rank, NT-Xent over\n"
            "                      all ranks' views, averaged gradients (needs a simclrc built with MPI)\n"
            "  --conv=ALGO         convolutions: im2col (default: im2col+gemm, gemm for 1x1) or shift\n"
            "                      (shifted GEMMs over padded planes where they waste little)\n"
            "  --tune              measure each convolution's algorithm on this machine (builds and\n"
            "                      times the step twice, im2col and shift; slower to compile)\n"
            "  --threads=N         most threads the binary will run its kernels on (default: this\n"
            "                      machine's CPUs); workspaces are planned per thread\n"
            "  --max-arena-bytes=N refuse a model whose parameters or training arena need more than N\n"
            "                      bytes each (K, M, G, T suffixes; default 64G)\n"
            "  --no-size-limit     no such limit\n"
            "  -h, --help          show this help\n"
            "  --version           show the version\n"
            "\n"
            "exit status: 0 success, 1 bad input, 2 bad usage, 3 internal error\n");
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Whether the directory that would hold path accepts new files (errno
 * says why not). Checked before the slow part of compiling. */
static int dir_writable(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    return access(dir, W_OK | X_OK) == 0;
}

/* How memory is planned for the generated code (--threads, --mpi). */
static sc_memplan_opts plan_opts = {.threads = 1};
/* --max-arena-bytes (0: --no-size-limit) */
static int64_t max_bytes = SC_DEFAULT_MAX_BYTES;

/* --emit=memplan */
static int print_memplan(const sc_graph *g, const char *out)
{
    sc_memplan mp;
    int result = g->loss >= 0 ? g->loss : g->features;
    if (sc_memplan_build(g, result, &plan_opts, &mp)) {
        fprintf(stderr, "simclrc: error: out of memory planning memory\n");
        return EXIT_INTERNAL;
    }
    int rc = 0;
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "simclrc: error: cannot write %s: %s\n", out, strerror(errno));
        rc = EXIT_INPUT;
    } else {
        sc_memplan_print(g, &mp, f);
        int bad = fflush(f) != 0 || ferror(f);
        if (f != stdout)
            bad |= fclose(f) != 0;
        if (bad) {
            fprintf(stderr, "simclrc: error: writing %s failed\n", out ? out : "standard output");
            rc = EXIT_INPUT;
        }
    }
    sc_memplan_free(&mp);
    return rc;
}

static int dumps(const char *dump_after, const char *pass)
{
    return dump_after && (!strcmp(dump_after, "all") || !strcmp(dump_after, pass));
}

/* --emit=exe|obj|asm|llvm|memplan: derive the encoder graph, plan memory,
 * generate code. */
static int compile(const sc_model *m, const sc_graph *g, const sc_graph *enc, const sc_graph *ft,
                   const char *emit, const char *out, const char *target_cpu, int opt_level)
{
    char err[2048];
    int rc = EXIT_INTERNAL;
    sc_memplan smp = {0}, emp = {0}, fmp = {0};
    sc_codegen *cg = NULL;
    char *obj = NULL;

    if (sc_memplan_build(g, g->loss, &plan_opts, &smp) || sc_memplan_build(enc, enc->features, &plan_opts, &emp) ||
        sc_memplan_build(ft, ft->loss, &plan_opts, &fmp)) {
        fprintf(stderr, "simclrc: error: out of memory planning memory\n");
        goto done;
    }
    if (max_bytes && sc_size_check_plan(g, &smp, max_bytes, m->path)) {
        rc = EXIT_INPUT;
        goto done;
    }
    sc_codegen_options o = {.target_cpu = target_cpu, .opt_level = opt_level, .mpi = plan_opts.mpi};
    if (!(cg = sc_codegen_new(&o, err, sizeof err))) {
        fprintf(stderr, "simclrc: error: %s\n", err);
        rc = strstr(err, "--target-cpu") ? EXIT_USAGE : EXIT_INTERNAL;
        goto done;
    }
    sc_planned ps = {g, &smp}, pe = {enc, &emp}, pf = {ft, &fmp};
    if (sc_codegen_module(cg, m, &ps, &pe, &pf, err, sizeof err) ||
        sc_codegen_optimize(cg, err, sizeof err)) {
        fprintf(stderr, "simclrc: %s\n", err);
        goto done;
    }
    if (strcmp(emit, "exe")) {
        /* Text goes to stdout by default; an object file to ./NAME.o. */
        char objpath[160];
        snprintf(objpath, sizeof objpath, "./%s.o", m->name);
        rc = sc_codegen_emit(cg, emit, out ? out : (!strcmp(emit, "obj") ? objpath : "-"), err, sizeof err)
                 ? EXIT_INPUT : 0;
        if (rc)
            fprintf(stderr, "simclrc: error: %s\n", err);
        goto done;
    }
    /* exe: the object goes to a temporary file next to the output. */
    char defpath[160];
    snprintf(defpath, sizeof defpath, "./%s", m->name);
    const char *exe = out ? out : defpath;
    if (!dir_writable(exe)) {
        fprintf(stderr, "simclrc: error: cannot write %s: %s\n", exe, strerror(errno));
        rc = EXIT_INPUT;
        goto done;
    }
    size_t n = strlen(exe) + 32;
    obj = malloc(n);
    if (!obj)
        goto done;
    snprintf(obj, n, "%s.%ld.o", exe, (long)getpid());
    if (sc_codegen_emit(cg, "obj", obj, err, sizeof err)) {
        fprintf(stderr, "simclrc: error: %s\n", err);
        rc = EXIT_INPUT;
        goto done;
    }
    rc = sc_link_exe(obj, exe, plan_opts.mpi, err, sizeof err) ? EXIT_INPUT : 0;
    if (rc)
        fprintf(stderr, "simclrc: error: %s\n", err);
    unlink(obj);
done:
    free(obj);
    sc_codegen_free(cg);
    sc_memplan_free(&smp);
    sc_memplan_free(&emp);
    sc_memplan_free(&fmp);
    return rc;
}

/* --tune: trial binaries at each convolution policy (without MPI, which
 * does not change a convolution's time), timed, then the real compile with
 * the per-node picks. */
typedef struct {
    const sc_model *m;
    const sc_graph *g, *enc, *ft;
    const char *target_cpu;
    int opt_level;
} tune_ctx;

static int build_trial(void *p, const char *exe, int conv)
{
    const tune_ctx *t = p;
    sc_memplan_opts saved = plan_opts;
    plan_opts.conv = conv;
    plan_opts.mpi = 0;
    plan_opts.tuning = NULL;
    int rc = compile(t->m, t->g, t->enc, t->ft, "exe", exe, t->target_cpu, t->opt_level);
    plan_opts = saved;
    return rc;
}

static int compile_tuned(const sc_model *m, const sc_graph *g, const sc_graph *enc, const sc_graph *ft,
                         const char *emit, const char *out, const char *target_cpu, int opt_level)
{
    char err[1024], def[160];
    snprintf(def, sizeof def, "./%s", m->name);
    const char *base = out && strcmp(out, "-") ? out : def;
    if (!dir_writable(base)) {
        fprintf(stderr, "simclrc: error: cannot write %s: %s\n", base, strerror(errno));
        return EXIT_INPUT;
    }
    tune_ctx t = {m, g, enc, ft, target_cpu, opt_level};
    sc_conv_tuning tuning;
    if (sc_tune_convs(build_trial, &t, base, &tuning, err, sizeof err)) {
        fprintf(stderr, "simclrc: error: %s\n", err);
        return EXIT_INTERNAL;
    }
    sc_tune_print(&tuning, stderr);
    plan_opts.tuning = &tuning;
    int rc = compile(m, g, enc, ft, emit, out, target_cpu, opt_level);
    plan_opts.tuning = NULL;
    sc_tune_free(&tuning);
    return rc;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *emit = "exe", *dump_after = NULL, *target_cpu = NULL, *which = "simclr";
    unsigned long long seed = 0, batch = 0, classes = 10;
    int opt_level = 2, threads_given = 0, fuse = 1, tune = 0;
    enum { OPT_EMIT = 256, OPT_TARGET, OPT_DUMP, OPT_SEED, OPT_BATCH, OPT_VERSION, OPT_GRAPH, OPT_CLASSES, OPT_NO_FUSE, OPT_THREADS, OPT_MPI, OPT_CONV, OPT_TUNE, OPT_MAX_BYTES, OPT_NO_LIMIT };
    static const struct option longopts[] = {
        {"emit", required_argument, 0, OPT_EMIT},
        {"target-cpu", required_argument, 0, OPT_TARGET},
        {"dump-after", required_argument, 0, OPT_DUMP},
        {"seed", required_argument, 0, OPT_SEED},
        {"batch", required_argument, 0, OPT_BATCH},
        {"graph", required_argument, 0, OPT_GRAPH},
        {"classes", required_argument, 0, OPT_CLASSES},
        {"threads", required_argument, 0, OPT_THREADS},
        {"conv", required_argument, 0, OPT_CONV},
        {"tune", no_argument, 0, OPT_TUNE},
        {"max-arena-bytes", required_argument, 0, OPT_MAX_BYTES},
        {"no-size-limit", no_argument, 0, OPT_NO_LIMIT},
        {"no-fuse", no_argument, 0, OPT_NO_FUSE},
        {"mpi", no_argument, 0, OPT_MPI},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, OPT_VERSION},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "o:O:f:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'O':
            if (strlen(optarg) != 1 || optarg[0] < '0' || optarg[0] > '3') {
                fprintf(stderr, "simclrc: error: unknown optimisation level -O%s (use -O0 .. -O3)\n", optarg);
                return EXIT_USAGE;
            }
            opt_level = optarg[0] - '0';
            break;
        case OPT_EMIT: emit = optarg; break;
        case OPT_TARGET: target_cpu = optarg; break;
        case OPT_DUMP: dump_after = optarg; break;
        case OPT_SEED:
            if (parse_uint(optarg, UINT64_MAX, &seed)) {
                fprintf(stderr, "simclrc: error: --seed needs a non-negative integer, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_BATCH:
            if (parse_uint(optarg, 1 << 20, &batch) || batch < 2) {
                fprintf(stderr, "simclrc: error: --batch needs an integer from 2 to 1048576, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_GRAPH:
            which = optarg;
            if (strcmp(which, "simclr") && strcmp(which, "encoder") && strcmp(which, "finetune")) {
                fprintf(stderr, "simclrc: error: unknown --graph '%s' (simclr, encoder, finetune)\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_CLASSES:
            if (parse_uint(optarg, 1 << 16, &classes) || classes < 2) {
                fprintf(stderr, "simclrc: error: --classes needs an integer from 2 to 65536, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_TUNE: tune = 1; break;
        case OPT_MAX_BYTES:
            if (sc_parse_bytes(optarg, &max_bytes) || max_bytes < 1) {
                fprintf(stderr, "simclrc: error: --max-arena-bytes needs a byte count such as 68719476736 or "
                        "64G (K, M, G, T: powers of 1024), not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_NO_LIMIT: max_bytes = 0; break;
        case OPT_CONV:
            if (!strcmp(optarg, "im2col"))
                plan_opts.conv = SC_CONV_IM2COL_POLICY;
            else if (!strcmp(optarg, "shift"))
                plan_opts.conv = SC_CONV_SHIFT_POLICY;
            else {
                fprintf(stderr, "simclrc: error: unknown --conv '%s' (im2col, shift)\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_THREADS: {
            unsigned long long t;
            if (parse_uint(optarg, 256, &t) || t < 1) {
                fprintf(stderr, "simclrc: error: --threads needs an integer from 1 to 256, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            plan_opts.threads = (int)t;
            threads_given = 1;
            break;
        }
        case OPT_NO_FUSE: fuse = 0; break;
        case OPT_MPI:
            if (!sc_link_have_mpi()) {
                fprintf(stderr, "simclrc: error: --mpi: this simclrc was built without MPI (install "
                        "libopenmpi-dev and openmpi-bin, then rebuild)\n");
                return EXIT_USAGE;
            }
            plan_opts.mpi = 1;
            break;
        case 'f': /* -fno-fuse, -ffuse: the GCC spelling */
            if (strcmp(optarg, "fuse") && strcmp(optarg, "no-fuse")) {
                fprintf(stderr, "simclrc: error: unknown option -f%s (-ffuse, -fno-fuse)\n", optarg);
                return EXIT_USAGE;
            }
            fuse = !strcmp(optarg, "fuse");
            break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION: printf("simclrc %s\n", SC_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!threads_given) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        plan_opts.threads = cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;
    }
    if (optind != argc - 1) {
        fprintf(stderr, optind >= argc ? "simclrc: error: no model file given\n"
                                       : "simclrc: error: exactly one model file expected\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    static const char *const kinds[] = {"exe", "obj", "asm", "llvm", "graph", "dot", "memplan", "step-dump"};
    int known = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        known |= !strcmp(emit, kinds[i]);
    if (!known) {
        fprintf(stderr, "simclrc: error: unknown --emit kind '%s' (exe, obj, asm, llvm, graph, dot, memplan, step-dump)\n", emit);
        return EXIT_USAGE;
    }
    if (dump_after && strcmp(dump_after, "all")) {
        int ok = 0;
        for (int i = 0; i < NPASSES; i++)
            ok |= !strcmp(dump_after, passes[i]);
        if (!ok) {
            fprintf(stderr, "simclrc: error: unknown pass '%s' for --dump-after (build, autodiff, encoder, finetune, fuse, schedule, all)\n", dump_after);
            return EXIT_USAGE;
        }
    }
    if (!strcmp(emit, "step-dump") && !out) {
        fprintf(stderr, "simclrc: error: --emit=step-dump needs -o OUT.safetensors\n");
        return EXIT_USAGE;
    }
    int codegen = !strcmp(emit, "exe") || !strcmp(emit, "obj") || !strcmp(emit, "asm") ||
                  !strcmp(emit, "llvm") || !strcmp(emit, "memplan");

    sc_model m;
    if (sc_model_load(argv[optind], &m)) {
        sc_model_free(&m);
        return EXIT_INPUT;
    }
    sc_graph g, enc, ft;
    sc_graph_init(&g);
    sc_graph_init(&enc);
    sc_graph_init(&ft);
    int rc = 0;
    if (sc_build_graph(&m, (int)batch, &g)) {
        rc = EXIT_INPUT;
        goto done;
    }
    if (dumps(dump_after, "build")) {
        fprintf(stderr, "# after pass build\n");
        sc_graph_print(&g, stderr);
    }
    if (sc_autodiff(&g)) {
        fprintf(stderr, "simclrc: internal error: the graph has no loss to differentiate\n");
        rc = EXIT_INTERNAL;
        goto done;
    }
    if (dumps(dump_after, "autodiff")) {
        fprintf(stderr, "# after pass autodiff\n");
        sc_graph_print(&g, stderr);
    }
    if (sc_graph_encoder(&g, 2 * g.batch, &enc)) {
        fprintf(stderr, "simclrc: internal error: cannot derive the encoder graph\n");
        rc = EXIT_INTERNAL;
        goto done;
    }
    if (dumps(dump_after, "encoder")) {
        fprintf(stderr, "# after pass encoder\n");
        sc_graph_print(&enc, stderr);
    }
    /* Fine-tuning steps take 2B images, the views of a SimCLR step: the same
     * shapes, so the encoder's forward kernels are shared. */
    if (sc_graph_classifier(&g, 2 * g.batch, (int)classes, &ft) || sc_autodiff(&ft)) {
        fprintf(stderr, "simclrc: internal error: cannot derive the fine-tuning graph\n");
        rc = EXIT_INTERNAL;
        goto done;
    }
    if (dumps(dump_after, "finetune")) {
        fprintf(stderr, "# after pass finetune\n");
        sc_graph_print(&ft, stderr);
    }
    if (fuse) {
        sc_fuse(&g);
        sc_fuse(&enc);
        sc_fuse(&ft);
    }
    if (dumps(dump_after, "fuse")) {
        const sc_graph *fg[3] = {&g, &enc, &ft};
        static const char *const fname[3] = {"simclr", "encoder", "finetune"};
        for (int i = 0; i < 3; i++) {
            fprintf(stderr, "# after pass fuse (%s graph%s)\n", fname[i], fuse ? "" : ", disabled by --no-fuse");
            sc_graph_print(fg[i], stderr);
        }
    }
    {
        sc_graph *sg[3] = {&g, &enc, &ft};
        static const char *const sname[3] = {"simclr", "encoder", "finetune"};
        for (int i = 0; i < 3; i++) {
            if (sc_schedule_nodes(sg[i], sg[i]->loss >= 0 ? sg[i]->loss : sg[i]->features, &plan_opts)) {
                fprintf(stderr, "simclrc: error: out of memory scheduling the %s graph\n", sname[i]);
                rc = EXIT_INTERNAL;
                goto done;
            }
            if (dumps(dump_after, "schedule")) {
                fprintf(stderr, "# after pass schedule (%s graph)\n", sname[i]);
                sc_graph_print(sg[i], stderr);
            }
        }
    }
    /* exe, obj, asm and llvm check in compile(), with the plan they make. */
    if (max_bytes && (!strcmp(emit, "memplan") || !strcmp(emit, "step-dump"))) {
        int lim = sc_size_check(&g, &plan_opts, max_bytes, m.path);
        if (lim) {
            if (lim == -2)
                fprintf(stderr, "simclrc: error: out of memory planning memory\n");
            rc = lim == -2 ? EXIT_INTERNAL : EXIT_INPUT;
            goto done;
        }
    }
    const sc_graph *shown = !strcmp(which, "encoder") ? &enc : !strcmp(which, "finetune") ? &ft : &g;

    if (codegen && strcmp(emit, "memplan")) {
        rc = tune ? compile_tuned(&m, &g, &enc, &ft, emit, out, target_cpu, opt_level)
                  : compile(&m, &g, &enc, &ft, emit, out, target_cpu, opt_level);
    } else if (!strcmp(emit, "memplan")) {
        rc = print_memplan(shown, out);
    } else if (!strcmp(emit, "step-dump")) {
        if (shown == &enc) {
            fprintf(stderr, "simclrc: error: --emit=step-dump needs a training graph (--graph=simclr or finetune)\n");
            rc = EXIT_USAGE;
        } else if (sc_stepdump_write(shown, seed, out))
            rc = EXIT_INPUT;
    } else {
        FILE *f = stdout;
        if (out && !(f = fopen(out, "w"))) {
            fprintf(stderr, "simclrc: error: cannot write %s: %s\n", out, strerror(errno));
            rc = EXIT_INPUT;
            goto done;
        }
        if (!strcmp(emit, "graph"))
            sc_graph_print(shown, f);
        else
            sc_graph_print_dot(shown, f);
        int bad = fflush(f) != 0 || ferror(f);
        if (f != stdout)
            bad |= fclose(f) != 0;
        if (bad) {
            fprintf(stderr, "simclrc: error: writing %s failed\n", out ? out : "standard output");
            rc = EXIT_INPUT;
        }
    }
done:
    sc_graph_free(&ft);
    sc_graph_free(&enc);
    sc_graph_free(&g);
    sc_model_free(&m);
    return rc;
}
