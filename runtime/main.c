/* main() of every generated training binary (cli.md, "The generated
 * training binary"): subcommands over the model object that simclrc
 * emitted, which defines sc_model, sc_step and sc_encode (sc_abi.h).
 *
 * info, dump-step and bench-step live here; the data-driven subcommands
 * (train, check-data, eval, finetune, export, encode) in cmd_*.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "commands.h"
#include "sc_abi.h"
#include "sc_state.h"
#include "sc_stepdump.h"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

static const char *prog = "model";

static void error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: error: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- option parsing helpers ---- */

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Reports the option getopt_long rejected (opterr is off so that every
 * message has the PROGRAM: error: form). */
static int bad_option(const char *sub, char **argv, int c)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        error("option '%s' needs a value", arg);
    else if (optopt && optopt < 256)
        error("unknown option '-%c'", optopt);
    else
        error("unknown option '%s'", arg);
    fprintf(stderr, "Run '%s %s--help' for usage.\n", prog, sub);
    return EXIT_USAGE;
}

/* "12,345,678": big counts are read at a glance. */
static const char *grouped(int64_t v, char *buf, size_t len)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%" PRId64, v < 0 ? -v : v);
    size_t o = 0;
    if (v < 0 && o + 1 < len)
        buf[o++] = '-';
    for (int i = 0; i < n && o + 1 < len; i++) {
        if (i && (n - i) % 3 == 0 && o + 1 < len)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *human_bytes(double b, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
    return buf;
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Checks the model object and allocates its state. */
static int setup_state(sc_state *s)
{
    char err[512];
    if (sc_desc_check(&sc_model, err, sizeof err)) {
        error("%s", err);
        return EXIT_INTERNAL;
    }
    if (sc_state_alloc(s, &sc_model, err, sizeof err)) {
        error("%s", err);
        return EXIT_INTERNAL;
    }
    return 0;
}

/* ---- info ---- */

static void info_usage(FILE *f)
{
    fprintf(f,
            "usage: %s info [--params]\n"
            "\n"
            "Prints a summary of the model: name, parameters, FLOPs per training step,\n"
            "activation arena size, batch, input geometry, the compiler version and the\n"
            "CPU the code was generated for.\n"
            "\n"
            "options:\n"
            "  --params     also list every parameter and buffer with its shape\n"
            "  -h, --help   show this help\n",
            prog);
}

static void print_table(const char *title, const sc_param_info *t, int n)
{
    printf("\n%s:\n", title);
    for (int i = 0; i < n; i++) {
        char shape[96] = "";
        size_t o = 0;
        for (int k = 0; k < t[i].ndim && o < sizeof shape; k++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%d", k ? ", " : "", t[i].shape[k]);
        printf("  %-40s [%s]%s\n", t[i].name, shape, t[i].no_decay ? "  no-decay" : "");
    }
}

/* The enabled ("+name") entries of an LLVM feature string, wrapped. */
static void print_features(const char *f)
{
    const int indent = 19, width = 79;
    int col = printf("target features    ");
    int any = 0;
    for (const char *p = f; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 1 && p[0] == '+') {
            if (any && col + (int)n + 1 > width) {
                printf("\n%*s", indent, "");
                col = indent;
            } else if (any) {
                col += printf(" ");
            }
            col += printf("%.*s", (int)n - 1, p + 1);
            any = 1;
        }
        p += n + (e ? 1 : 0);
    }
    if (!any)
        printf("(none enabled)");
    printf("\n");
}

static int cmd_info(int argc, char **argv)
{
    enum { OPT_PARAMS = 256 };
    static const struct option longopts[] = {
        {"params", no_argument, 0, OPT_PARAMS},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int list = 0, c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_PARAMS: list = 1; break;
        case 'h': info_usage(stdout); return 0;
        default: return bad_option("info ", argv, c);
        }
    }
    if (optind < argc) {
        error("info takes no arguments, got '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    char err[512];
    if (sc_desc_check(&sc_model, err, sizeof err)) {
        error("%s", err);
        return EXIT_INTERNAL;
    }
    const sc_model_desc *d = &sc_model;
    char a[64], b[64];
    int64_t arena_bytes = d->arena_floats * (int64_t)sizeof(float);
    printf("model              %s\n", d->name);
    printf("parameters         %s in %d tensors (%s)\n", grouped(sc_param_count(d), a, sizeof a),
           d->nparams, human_bytes((double)d->params_floats * sizeof(float), b, sizeof b));
    printf("buffers            %s floats in %d tensors\n", grouped(d->buffers_floats, a, sizeof a), d->nbuffers);
    printf("FLOPs per step     %s (%.2f GFLOP)\n", grouped((int64_t)d->flops_per_step, a, sizeof a),
           d->flops_per_step / 1e9);
    printf("activation arena   %s bytes (%s)\n", grouped(arena_bytes, a, sizeof a),
           human_bytes((double)arena_bytes, b, sizeof b));
    printf("batch              %d images (%d views per step)\n", d->batch, 2 * d->batch);
    printf("input              %d x %d x %d (channels x height x width)\n", d->in_c, d->in_h, d->in_w);
    printf("features           %d (encoder output), projection %d\n", d->feature_dim, d->proj_dim);
    printf("loss               nt-xent, temperature %g\n", d->temperature);
    printf("compiler           simclrc %s (ABI %d)\n", d->compiler_version, d->abi_version);
    printf("target CPU         %s\n", d->target_cpu);
    if (d->target_features && *d->target_features)
        print_features(d->target_features);
    if (list) {
        print_table("parameters", d->params, d->nparams);
        if (d->nbuffers)
            print_table("buffers", d->buffers, d->nbuffers);
    }
    return 0;
}

/* ---- dump-step ---- */

static void dump_usage(FILE *f)
{
    fprintf(f,
            "usage: %s dump-step OUT.safetensors [--seed S]\n"
            "\n"
            "Runs one training step on synthetic input and writes a step dump: every\n"
            "parameter before the step, the input, the loss and every gradient (the\n"
            "format of 'simclrc --emit=step-dump', so the two can be compared).\n"
            "Parameters come from the seeded initialisation, the input is standard\n"
            "normal noise from the same seed.\n"
            "\n"
            "options:\n"
            "  --seed S     seed of parameters and input (default 0)\n"
            "  -h, --help   show this help\n",
            prog);
}

static int cmd_dump_step(int argc, char **argv)
{
    enum { OPT_SEED = 256, OPT_DATA };
    static const struct option longopts[] = {
        {"seed", required_argument, 0, OPT_SEED},
        {"data", required_argument, 0, OPT_DATA},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    uint64_t seed = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SEED:
            if (parse_u64(optarg, 0, UINT64_MAX, &seed)) {
                error("--seed needs a non-negative integer, not '%s'", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_DATA:
            error("dump-step --data is not available in this version; the step runs on synthetic input");
            return EXIT_USAGE;
        case 'h': dump_usage(stdout); return 0;
        default: return bad_option("dump-step ", argv, c);
        }
    }
    if (argc - optind != 1) {
        error(optind >= argc ? "dump-step needs an output file" : "dump-step takes one output file");
        fprintf(stderr, "Run '%s dump-step --help' for usage.\n", prog);
        return EXIT_USAGE;
    }
    const char *out = argv[optind];
    sc_state s;
    int rc = setup_state(&s);
    if (rc)
        return rc;
    sc_params_init(s.desc, s.params, s.buffers, seed);
    sc_input_synthetic(s.desc, s.input, seed);
    sc_step(s.params, s.grads, s.buffers, s.arena, s.input, s.loss);
    char err[1024];
    if (sc_stepdump_save(&s, seed, out, err, sizeof err)) {
        error("%s", err);
        rc = EXIT_INPUT;
    }
    sc_state_free(&s);
    return rc;
}

/* ---- bench-step ---- */

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: %s bench-step [--steps K] [--threads T]\n"
            "\n"
            "Times K training steps (forward, loss, backward; no optimizer update) on\n"
            "synthetic input after one warm-up step, and prints views per second\n"
            "(images/s) and milliseconds per step.\n"
            "\n"
            "options:\n"
            "  --steps K     steps to time (default 10)\n"
            "  --threads T   OpenBLAS threads (default: OpenBLAS's own choice)\n"
            "  -h, --help    show this help\n",
            prog);
}

static int cmd_bench_step(int argc, char **argv)
{
    enum { OPT_STEPS = 256, OPT_THREADS, OPT_PROFILE };
    static const struct option longopts[] = {
        {"steps", required_argument, 0, OPT_STEPS},
        {"threads", required_argument, 0, OPT_THREADS},
        {"profile", no_argument, 0, OPT_PROFILE},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    uint64_t steps = 10, threads = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_STEPS:
            if (parse_u64(optarg, 1, 1000000, &steps)) {
                error("--steps needs an integer from 1 to 1000000, not '%s'", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_THREADS:
            if (parse_u64(optarg, 1, 1024, &threads)) {
                error("--threads needs an integer from 1 to 1024, not '%s'", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_PROFILE:
            error("bench-step --profile is not available in this version");
            return EXIT_USAGE;
        case 'h': bench_usage(stdout); return 0;
        default: return bad_option("bench-step ", argv, c);
        }
    }
    if (optind < argc) {
        error("bench-step takes no arguments, got '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if (threads)
        openblas_set_num_threads((int)threads);
    sc_state s;
    int rc = setup_state(&s);
    if (rc)
        return rc;
    sc_params_init(s.desc, s.params, s.buffers, 0);
    sc_input_synthetic(s.desc, s.input, 0);
    double t0 = now_seconds();
    sc_step(s.params, s.grads, s.buffers, s.arena, s.input, s.loss);
    double warm = now_seconds() - t0;
    t0 = now_seconds();
    for (uint64_t i = 0; i < steps; i++)
        sc_step(s.params, s.grads, s.buffers, s.arena, s.input, s.loss);
    double per = (now_seconds() - t0) / (double)steps;
    const sc_model_desc *d = s.desc;
    printf("%s: batch %d (%d views), %d x %d x %d, %" PRIu64 " steps, %d OpenBLAS threads\n", d->name,
           d->batch, 2 * d->batch, d->in_c, d->in_h, d->in_w, steps, openblas_get_num_threads());
    printf("%.1f images/s  %.2f ms/step  %.1f GFLOP/s  (warm-up step %.2f ms, loss %.6g)\n",
           2.0 * d->batch / per, 1e3 * per, d->flops_per_step / per / 1e9, 1e3 * warm,
           (double)s.loss[0]);
    sc_state_free(&s);
    return 0;
}

/* ---- the program ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s SUBCOMMAND [options]\n"
            "\n"
            "SimCLR training binary for the model '%s', generated by simclrc %s.\n"
            "\n"
            "subcommands:\n"
            "  info                    model summary\n"
            "  train --data DIR [--out RUN] [--epochs E] [--resume] ...\n"
            "                          SimCLR pretraining, checkpoints and metrics in RUN\n"
            "  check-data --data DIR   validate a dataset directory, print its splits\n"
            "  eval --data DIR (--ckpt FILE | --random-init) [--labels-per-class K]\n"
            "                          linear probe on frozen features, test top-1\n"
            "  finetune --data DIR (--ckpt FILE | --random-init) [--epochs E] [--out RUN]\n"
            "                          supervised fine-tuning, test accuracy per epoch\n"
            "  export --ckpt FILE -o OUT.safetensors\n"
            "                          the encoder as a state dict (torchvision names for ResNets)\n"
            "  encode (--ckpt FILE | --random-init) --input IN -o OUT\n"
            "                          eval-mode features of given images\n"
            "  dump-step OUT [--seed S]\n"
            "                          one training step on synthetic input, as a step dump\n"
            "  bench-step [--steps K] [--threads T]\n"
            "                          time training steps, print images/s\n"
            "\n"
            "Run '%s SUBCOMMAND --help' for a subcommand's options.\n"
            "\n"
            "options:\n"
            "  -h, --help   show this help\n"
            "  --version    show the version\n"
            "\n"
            "exit status: 0 success, 1 bad input, 2 bad usage, 3 internal error\n",
            prog, sc_model.name, sc_model.compiler_version, prog);
}

int main(int argc, char **argv)
{
    if (argc > 0 && argv[0] && *argv[0]) {
        const char *slash = strrchr(argv[0], '/');
        prog = slash ? slash + 1 : argv[0];
    }
    opterr = 0;
    enum { OPT_VERSION = 256 };
    static const struct option longopts[] = {
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, OPT_VERSION},
        {0, 0, 0, 0},
    };
    int c;
    /* '+': stop at the subcommand, whose options are parsed after it. */
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case OPT_VERSION:
            printf("%s: model %s, generated by simclrc %s for %s (ABI %d)\n", prog, sc_model.name,
                   sc_model.compiler_version, sc_model.target_cpu, sc_model.abi_version);
            return 0;
        default: return bad_option("", argv, c);
        }
    }
    if (optind >= argc) {
        error("no subcommand given");
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[optind];
    int sargc = argc - optind;
    char **sargv = argv + optind;
    optind = 0;   /* glibc: rescan from sargv[1], resetting getopt's state */
    if (!strcmp(sub, "info"))
        return cmd_info(sargc, sargv);
    if (!strcmp(sub, "dump-step"))
        return cmd_dump_step(sargc, sargv);
    if (!strcmp(sub, "bench-step"))
        return cmd_bench_step(sargc, sargv);
    if (!strcmp(sub, "train"))
        return sc_cmd_train(sargc, sargv);
    if (!strcmp(sub, "check-data"))
        return sc_cmd_check_data(sargc, sargv);
    if (!strcmp(sub, "eval"))
        return sc_cmd_eval(sargc, sargv);
    if (!strcmp(sub, "finetune"))
        return sc_cmd_finetune(sargc, sargv);
    if (!strcmp(sub, "export"))
        return sc_cmd_export(sargc, sargv);
    if (!strcmp(sub, "encode"))
        return sc_cmd_encode(sargc, sargv);
    if (!strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    error("unknown subcommand '%s' (available: info, train, check-data, eval, finetune, export, "
          "encode, dump-step, bench-step)", sub);
    fprintf(stderr, "Run '%s --help' for usage.\n", prog);
    return EXIT_USAGE;
}
