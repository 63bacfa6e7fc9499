/* simclrc: the compiler driver (cli.md). Reads a model, builds the forward
 * graph, differentiates it, and emits what --emit asks for. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen.h"
#include "convplan.h"
#include "diag.h"
#include "ir.h"
#include "link.h"
#include "locate.h"
#include "memplan.h"
#include "model.h"
#include "pipeline.h"
#include "sizelimit.h"
#include "stepdump.h"
#include "tune.h"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: simclrc [options] MODEL\n"
            "\n"
            "Compiles a SimCLR model description into a specialised training binary.\n"
            "MODEL is a model file (.xml) or the name of a shipped model (--list-models).\n"
            "\n"
            "options:\n"
            "  -o PATH             output path (default ./NAME for exe, stdout for text)\n"
            "  --emit=KIND         exe (default), obj, asm, llvm, graph, dot, memplan, step-dump\n"
            "  -O0 .. -O3          LLVM optimisation level (default -O2)\n"
            "  --target-cpu=NAME   CPU to generate code for (default: the host; 'generic' is portable)\n"
            "  --dump-after=PASS   print the graph after PASS to stderr (build, autodiff, encoder, finetune,\n"
            "                      fuse, schedule, all)\n"
            "  --no-fuse           skip the fusion pass: every op its own kernel (also -fno-fuse)\n"
            "  --fuse-stats        batchnorms take their statistics from the convolution that made their\n"
            "                      input (conv2d+stats), not from a pass over it (off by default)\n"
            "  --graph=WHICH       graph for graph, dot, memplan and step-dump: simclr (default), encoder, finetune\n"
            "  --classes=N         classes of the fine-tuning classifier (default 10)\n"
            "  --seed=N            seed of step-dump inputs and parameter initialisation (default 0)\n"
            "  --batch=N           override the model's batch (images per step) for this compile\n"
            "  --mpi               data-parallel binary for mpirun: N images per rank, NT-Xent over\n"
            "                      all ranks' views, averaged gradients (needs a simclrc built with MPI)\n"
            "  --conv=ALGO         convolutions: im2col (default: im2col+gemm, gemm for 1x1) or shift\n"
            "                      (shifted GEMMs over padded planes where they waste little)\n"
            "  --no-winograd       3x3 stride-1 convolutions by implicit GEMM, not Winograd F(m x m,3x3)\n"
            "  --gemm=KIND         matrix products: generated (default: GEMM kernels generated for\n"
            "                      each shape and this CPU's vectors) or openblas (cblas_sgemm calls)\n"
            "  --tune              measure each convolution's formulation, GEMM blocking and chunks on\n"
            "                      this machine (builds and times the step up to 13 times; slower)\n"
            "  --tune-table=FILE   with --tune, save the measurements to FILE (CSV); without, compile\n"
            "                      with the choices FILE's measurements give, measuring nothing\n"
            "  --threads=N         most threads the binary will run its kernels on (default: this\n"
            "                      machine's CPUs); workspaces are planned per thread\n"
            "  --max-arena-bytes=N refuse a model whose parameters or training arena need more than N\n"
            "                      bytes each (K, M, G, T suffixes; default 64G)\n"
            "  --no-size-limit     no such limit\n"
            "  --list-models       list the shipped models, one name per line\n"
            "  -h, --help          show this help\n"
            "  --version           show the version\n"
            "\n"
            "environment:\n"
            "  CC                  C compiler driver that links training binaries (default: the\n"
            "                      one simclrc was built with)\n"
            "  SIMCLRC_RUNTIME_DIR\n"
            "                      runtime libraries to link when there are none next to simclrc\n"
            "                      (PREFIX/lib/simclrc for PREFIX/bin/simclrc)\n"
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
/* --gemm=openblas */
static int gemm_openblas;
static int no_winograd; /* --no-winograd */
/* --max-arena-bytes (0: --no-size-limit) */
static int64_t max_bytes = SC_DEFAULT_MAX_BYTES;

/* --emit=memplan */
static int print_memplan(sc_compiled *c, const sc_graph *g, const sc_memplan *mp, const char *out)
{
    int rc = sc_passes_plan(c, &plan_opts);
    if (rc)
        return rc;
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "simclrc: error: cannot write %s: %s\n", out, strerror(errno));
        return EXIT_INPUT;
    }
    sc_memplan_print(g, mp, f);
    int bad = fflush(f) != 0 || ferror(f);
    if (f != stdout)
        bad |= fclose(f) != 0;
    if (bad) {
        fprintf(stderr, "simclrc: error: writing %s failed\n", out ? out : "standard output");
        rc = EXIT_INPUT;
    }
    return rc;
}

/* --emit=exe|obj|asm|llvm|memplan: derive the encoder graph, plan memory,
 * generate code. */
static int compile(const sc_spec *m, sc_compiled *cp, const char *emit, const char *out, const char *target_cpu,
                   int opt_level)
{
    char err[2048];
    int rc = EXIT_INTERNAL;
    sc_codegen *cg = NULL;
    char *obj = NULL;

    if (sc_passes_plan(cp, &plan_opts))
        goto done;
    if (max_bytes && sc_size_check_plan(&cp->g, &cp->smp, max_bytes, m->path)) {
        rc = EXIT_INPUT;
        goto done;
    }
    sc_codegen_options o = {.target_cpu = target_cpu, .opt_level = opt_level, .mpi = plan_opts.mpi,
                            .gemm_openblas = gemm_openblas};
    if (!(cg = sc_codegen_new(&o, err, sizeof err))) {
        fprintf(stderr, "simclrc: error: %s\n", err);
        rc = strstr(err, "--target-cpu") ? EXIT_USAGE : EXIT_INTERNAL;
        goto done;
    }
    sc_planned ps = {&cp->g, &cp->smp}, pe = {&cp->enc, &cp->emp}, pf = {&cp->ft, &cp->fmp};
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
    return rc;
}

/* --tune: trial binaries (without MPI, which does not change a
 * convolution's time; tune.h lists them), timed, then the real compile
 * with the per-node picks. --tune-table saves the measurements, or,
 * without --tune, gives them instead of measuring. */
typedef struct {
    const sc_spec *m;
    sc_compiled *cp;
    const char *target_cpu;
    int opt_level;
} tune_ctx;

static int build_trial(void *p, const char *exe, int conv, const sc_conv_tuning *picks)
{
    const tune_ctx *t = p;
    sc_memplan_opts saved = plan_opts;
    plan_opts.conv = conv | (saved.conv & (SC_CONV_EXPLICIT | SC_CONV_NO_WINOGRAD));
    plan_opts.mpi = 0;
    plan_opts.tuning = picks;
    int rc = compile(t->m, t->cp, "exe", exe, t->target_cpu, t->opt_level);
    plan_opts = saved;
    return rc;
}

static int compile_tuned(const sc_spec *m, sc_compiled *cp, const char *emit, const char *out, const char *target_cpu,
                         int opt_level, int measure, const char *table_path, const char *dump_after)
{
    char err[1024], def[160];
    snprintf(def, sizeof def, "./%s", m->name);
    const char *base = out && strcmp(out, "-") ? out : def;
    const char *unwritable = !measure ? NULL : !dir_writable(base) ? base
                                             : table_path && !dir_writable(table_path) ? table_path : NULL;
    if (unwritable) { /* before minutes of measuring */
        fprintf(stderr, "simclrc: error: cannot write %s: %s\n", unwritable, strerror(errno));
        return EXIT_INPUT;
    }
    tune_ctx t = {m, cp, target_cpu, opt_level};
    sc_tune_table table;
    sc_conv_tuning tuning = {NULL, 0};
    if (measure ? sc_tune_measure(build_trial, &t, base, &table, err, sizeof err)
                : sc_tune_table_read(table_path, &table, err, sizeof err)) {
        fprintf(stderr, "simclrc: error: %s\n", err);
        return measure ? EXIT_INTERNAL : EXIT_INPUT;
    }
    int rc = EXIT_INTERNAL;
    if (measure && table_path && sc_tune_table_write(&table, table_path, err, sizeof err)) {
        fprintf(stderr, "simclrc: error: --tune-table: %s\n", err);
        rc = EXIT_INPUT;
        goto done;
    }
    if (sc_tune_choose(&table, &tuning, err, sizeof err)) {
        fprintf(stderr, "simclrc: error: %s\n", err);
        goto done;
    }
    if (measure)
        sc_tune_print(&tuning, stderr);
    if (dump_after && (!strcmp(dump_after, "all") || !strcmp(dump_after, "schedule"))) {
        fprintf(stderr, "# tuning (--tune): the convolutions' kernels and GEMM blocking\n");
        sc_tune_print(&tuning, stderr);
    }
    plan_opts.tuning = &tuning;
    rc = compile(m, cp, emit, out, target_cpu, opt_level);
    plan_opts.tuning = NULL;
done:
    sc_tune_free(&tuning);
    sc_tune_table_free(&table);
    return rc;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *emit = "exe", *dump_after = NULL, *target_cpu = NULL, *which = "simclr";
    const char *tune_table = NULL;
    unsigned long long seed = 0, batch = 0, classes = 10;
    int opt_level = 2, threads_given = 0, fuse = 1, fuse_stats = 0, tune = 0;
    enum { OPT_EMIT = 256, OPT_TARGET, OPT_DUMP, OPT_SEED, OPT_BATCH, OPT_VERSION, OPT_GRAPH, OPT_CLASSES, OPT_NO_FUSE, OPT_FUSE_STATS, OPT_THREADS, OPT_MPI, OPT_CONV, OPT_GEMM, OPT_TUNE, OPT_TUNE_TABLE, OPT_LIST_MODELS, OPT_MAX_BYTES, OPT_NO_LIMIT, OPT_NO_WINOGRAD };
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
        {"gemm", required_argument, 0, OPT_GEMM},
        {"no-winograd", no_argument, 0, OPT_NO_WINOGRAD},
        {"tune", no_argument, 0, OPT_TUNE},
        {"tune-table", required_argument, 0, OPT_TUNE_TABLE},
        {"max-arena-bytes", required_argument, 0, OPT_MAX_BYTES},
        {"no-size-limit", no_argument, 0, OPT_NO_LIMIT},
        {"no-fuse", no_argument, 0, OPT_NO_FUSE},
        {"fuse-stats", no_argument, 0, OPT_FUSE_STATS},
        {"mpi", no_argument, 0, OPT_MPI},
        {"list-models", no_argument, 0, OPT_LIST_MODELS},
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
        case OPT_TUNE_TABLE: tune_table = optarg; break;
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
        case OPT_NO_WINOGRAD: no_winograd = 1; break;
        case OPT_GEMM:
            if (strcmp(optarg, "generated") && strcmp(optarg, "openblas")) {
                fprintf(stderr, "simclrc: error: unknown --gemm '%s' (generated, openblas)\n", optarg);
                return EXIT_USAGE;
            }
            gemm_openblas = !strcmp(optarg, "openblas");
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
        case OPT_FUSE_STATS: fuse_stats = 1; break;
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
        case OPT_LIST_MODELS: {
            char err[1024];
            if (sc_list_models(stdout, err, sizeof err)) {
                fprintf(stderr, "simclrc: error: %s\n", err);
                return EXIT_INPUT;
            }
            return 0;
        }
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!threads_given) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        plan_opts.threads = cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;
    }
    if (no_winograd)
        plan_opts.conv |= SC_CONV_NO_WINOGRAD;
    if (gemm_openblas) /* cblas_sgemm reads an im2col matrix */
        plan_opts.conv |= SC_CONV_EXPLICIT;
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
        for (int i = 0; i <= SC_PASS_SCHEDULE; i++)
            ok |= !strcmp(dump_after, sc_pass_name((sc_pass)i));
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

    /* A bare name is a shipped model (locate.h: sc_resolve_model). */
    char model_path[4096];
    if (sc_resolve_model(argv[optind], model_path, sizeof model_path))
        fprintf(stderr, "simclrc: model %s: %s\n", argv[optind], model_path);
    else if (!strchr(argv[optind], '/') && access(argv[optind], F_OK)) {
        sc_error_at(argv[optind], 0, "no such file, nor a shipped model of that name "
                    "(simclrc --list-models lists them)");
        return EXIT_INPUT;
    }
    sc_spec m;
    if (sc_model_load(model_path, &m)) {
        sc_model_free(&m);
        return EXIT_INPUT;
    }
    sc_passes_opts po = {.batch = (int)batch, .classes = (int)classes, .fuse = fuse, .fuse_stats = fuse_stats, .last = SC_PASS_SCHEDULE,
                         .plan = plan_opts, .dump_after = dump_after};
    sc_compiled cp;
    int rc = sc_passes_run(&m, &po, &cp);
    if (rc)
        goto done;
    int w = !strcmp(which, "encoder") ? 1 : !strcmp(which, "finetune") ? 2 : 0;
    const sc_graph *shown = w == 1 ? &cp.enc : w == 2 ? &cp.ft : &cp.g;
    /* exe, obj, asm and llvm check in compile(), with the plan they make. */
    if (max_bytes && (!strcmp(emit, "memplan") || !strcmp(emit, "step-dump"))) {
        int lim = sc_size_check(&cp.g, &plan_opts, max_bytes, m.path);
        if (lim) {
            if (lim == -2)
                fprintf(stderr, "simclrc: error: out of memory planning memory\n");
            rc = lim == -2 ? EXIT_INTERNAL : EXIT_INPUT;
            goto done;
        }
    }

    if (codegen && strcmp(emit, "memplan")) {
        rc = tune || tune_table ? compile_tuned(&m, &cp, emit, out, target_cpu, opt_level, tune, tune_table, dump_after)
                                : compile(&m, &cp, emit, out, target_cpu, opt_level);
    } else if (!strcmp(emit, "memplan")) {
        rc = print_memplan(&cp, shown, w == 1 ? &cp.emp : w == 2 ? &cp.fmp : &cp.smp, out);
    } else if (!strcmp(emit, "step-dump")) {
        if (shown == &cp.enc) {
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
    sc_compiled_free(&cp);
    sc_model_free(&m);
    return rc;
}
