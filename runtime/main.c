/* main() of every generated training binary (cli.md, "The generated
 * training binary"): subcommands over the model object that simclrc
 * emitted, which defines sc_model, sc_step and sc_encode (sc_abi.h).
 *
 * info, dump-step and bench-step live here; the data-driven subcommands
 * (train, check-data, eval, finetune, export, encode) in cmd_*.c. */
#define _GNU_SOURCE
#include <errno.h> /* program_invocation_short_name */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cblas.h>

#include "cli.h"
#include "sc_blascore.h"
#include "commands.h"
#include "sc_clock.h"
#include "sc_abi.h"
#include "sc_ema.h"
#include "sc_comm.h"
#include "sc_optim.h"
#include "sc_parallel.h"
#include "sc_profile.h"
#include "sc_state.h"
#include "sc_stepdump.h"

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

/* ---- info ---- */

static void info_usage(FILE *f)
{
    fprintf(f,
            "usage: %s info [--params] [--kernels]\n"
            "\n"
            "Prints a summary of the model: name, parameters, FLOPs per training step,\n"
            "activation arena size, batch, input geometry, the compiler version, the\n"
            "CPU the code was generated for, threads, the OpenBLAS core in use and why,\n"
            "and how many convolutions use each kernel.\n"
            "\n"
            "options:\n"
            "  --params     also list every parameter and buffer with its shape\n"
            "  --kernels    also list every kernel of the training step: node, op, the\n"
            "               kernel chosen, GFLOP, and the work items split over threads\n"
            "  -h, --help   show this help\n",
            program_invocation_short_name);
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

/* A kernel's name without its chunk size ("im2col+gemm x8"). */
static size_t kernel_name_len(const char *impl)
{
    return strcspn(impl, " ");
}

/* How many convolution nodes (forward and backward) use each kernel. */
static void print_conv_kernels(const sc_model_desc *d)
{
    const char *seen[64];
    int count[64], n = 0;
    for (int i = 0; i < d->nstep_nodes; i++) {
        const sc_node_info *k = &d->step_nodes[i];
        if (strncmp(k->op, "conv2d", 6))
            continue;
        /* "im2col+gemm x8" counts as im2col+gemm */
        int j = 0;
        size_t len = kernel_name_len(k->impl);
        while (j < n && (kernel_name_len(seen[j]) != len || strncmp(seen[j], k->impl, len)))
            j++;
        if (j == n && n < 64) {
            seen[n] = k->impl;
            count[n++] = 0;
        }
        if (j < n)
            count[j]++;
    }
    printf("convolutions      ");
    for (int j = 0; j < n; j++)
        printf(" %.*s: %d%s", (int)kernel_name_len(seen[j]), seen[j], count[j], j + 1 < n ? "," : "");
    printf("%s\n", n ? " (nodes; info --kernels lists them)" : " none");
}

static void print_kernels(const sc_model_desc *d)
{
    printf("\n%-4s %-28s %-20s %-22s %10s %8s\n", "#", "node", "op", "kernel", "GFLOP", "split");
    for (int i = 0; i < d->nstep_nodes; i++) {
        const sc_node_info *k = &d->step_nodes[i];
        printf("%-4d %-28s %-20s %-22s %10.3f %8lld\n", i, k->name, k->op, k->impl, k->flops / 1e9,
               (long long)k->parallel);
    }
}

/* The OpenBLAS core (kNN monitor, linear probe, NT-Xent, fine-tuning) and why. */
static void print_blas_core(void)
{
    char why[256];
    const char *core = openblas_get_corename();
    sc_blascore_reason(core, getenv("OPENBLAS_CORETYPE"), getenv(SC_BLASCORE_MARKER), why, sizeof why);
    printf("OpenBLAS core      %s (%s)\n", core, why);
}

static int cmd_info(int argc, char **argv)
{
    int list = 0, kernels = 0;
    const sc_opt opts[] = {
        {"params", .kind = SC_OPT_FLAG, .dest = &list},
        {"kernels", .kind = SC_OPT_FLAG, .dest = &kernels},
    };
    const sc_cmdline cl = {"info", opts, SC_NOPTS(opts), info_usage, NULL, 0};
    int rc;
    if (sc_cli_parse(&cl, argc, argv, &rc))
        return rc;
    char err[512];
    if (sc_desc_check(&sc_model, err, sizeof err)) {
        sc_cli_error("%s", err);
        return SC_EXIT_INTERNAL;
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
    printf("loss               %s", d->loss);
    sc_ema_plan ema;
    if (sc_ema_plan_init(&ema, d, err, sizeof err) == 0 && ema.n > 0)
        printf(" (target network: %d parameter tensors, EMA)", ema.n);
    printf("\n");
    sc_ema_plan_free(&ema);
    printf("compiler           simclrc %s (ABI %d)\n", d->compiler_version, d->abi_version);
    printf("target CPU         %s\n", d->target_cpu);
    if (d->target_features && *d->target_features)
        print_features(d->target_features);
    printf("threads            up to %d (kernels split over a thread pool)%s\n", d->max_threads,
           d->mpi ? "; data-parallel over MPI" : "");
    print_blas_core();
    print_conv_kernels(d);
    if (kernels)
        print_kernels(d);
    if (list) {
        print_table("parameters", d->params, d->nparams);
        if (d->nbuffers)
            print_table("buffers", d->buffers, d->nbuffers);
    }
    return 0;
}

/* ---- MPI (binaries built with simclrc --mpi) ---- */

/* Joins the job, sets global batchnorm and the gradient floats the step
 * must report, and leaves stdout to rank 0. Returns the world size (1
 * without MPI). */
static int mpi_setup(int global_bn)
{
    if (!sc_model.mpi)
        return 1;
    sc_comm_init();
    sc_comm_set_global_bn(global_bn);
    sc_comm_set_grad_floats(sc_param_count(&sc_model));
    if (sc_comm_rank() != 0 && !freopen("/dev/null", "w", stdout))
        sc_cli_error("cannot silence the output of rank %d", sc_comm_rank());
    return sc_comm_size();
}

/* Kernel threads per rank under MPI: the cores shared by the ranks on
 * this machine, so that they do not oversubscribe it (0: the pool's
 * default, without MPI). */
static int mpi_threads(void)
{
    if (!sc_model.mpi)
        return 0;
    int t = sc_cpus() / sc_comm_local_size();
    return t > 0 ? t : 1;
}

/* bench-step under MPI: the time the timed steps spent communicating,
 * averaged over the ranks (collective; rank 0 prints). */
static void mpi_report(uint64_t steps, double total)
{
    sc_comm_stats st;
    sc_comm_stats_get(&st);
    double v[6] = {st.gather_s, st.bn_s, st.grad_s, st.grad_wait_s, st.ntxent_s, total};
    sc_comm_allreduce_sum(v, 6);
    int k = sc_comm_size();
    for (int i = 0; i < 6; i++)
        v[i] /= (double)k * (double)steps;
    double comm = v[0] + v[1] + v[2] + v[3];
    printf("MPI: %d ranks, %d per machine; per step (mean over ranks): communication %.2f ms = %.1f%% of "
           "%.2f ms (projections %.2f, batchnorm %.2f, gradients %.2f + wait %.2f); NT-Xent arithmetic "
           "%.2f ms; %" PRId64 " gradient buckets\n",
           k, sc_comm_local_size(), 1e3 * comm, v[5] > 0 ? 100 * comm / v[5] : 0, 1e3 * v[5], 1e3 * v[0],
           1e3 * v[1], 1e3 * v[2], 1e3 * v[3], 1e3 * v[4], st.steps ? st.buckets / st.steps : 0);
}

/* ---- dump-step ---- */

static void dump_usage(FILE *f)
{
    fprintf(f,
            "usage: %s dump-step OUT.safetensors [--seed S] [--global-bn] [--steps K]\n"
            "\n"
            "Runs one training step on synthetic input and writes a step dump: every\n"
            "parameter before the step, the input, the loss and every gradient (the\n"
            "format of 'simclrc --emit=step-dump', so the two can be compared).\n"
            "Parameters come from the seeded initialisation, the input is standard\n"
            "normal noise from the same seed.\n"
            "\n"
            "Under mpirun -np K (a binary built with simclrc --mpi) the input is that\n"
            "of one process with K times the batch, each rank stepping on its slice\n"
            "of the images; rank 0 writes the global input, the global loss, the\n"
            "averaged gradients and its running statistics.\n"
            "\n"
            "options:\n"
            "  --seed S      seed of parameters and input (default 0)\n"
            "  --global-bn   batchnorm statistics over all ranks' images\n"
            "  --steps K     K whole training steps (at most 1000): the optimizer and\n"
            "                BYOL's target update too, step k on the input of seed S + k;\n"
            "                writes the parameters before, every input and loss, and\n"
            "                every parameter and buffer after (after/NAME); one process only\n"
            "  -h, --help    show this help\n",
            program_invocation_short_name);
}

/* dump-step --data: cli.md lists it; this version steps on synthetic input only. */
static int no_data(const char *value, void *dest)
{
    (void)value;
    (void)dest;
    sc_cli_error("dump-step --data is not available in this version; the step runs on synthetic input");
    return -1;
}

static int cmd_dump_step(int argc, char **argv)
{
    uint64_t seed = 0;
    int global_bn = 0;
    int64_t steps = 0;
    const sc_opt opts[] = {
        {"seed", .kind = SC_OPT_U64, .dest = &seed, .max = UINT64_MAX},
        {"steps", .kind = SC_OPT_I64, .dest = &steps, .min = 1, .max = 1000}, /* every input is kept */
        {"data", .kind = SC_OPT_CUSTOM, .check = no_data},
        {"global-bn", .kind = SC_OPT_FLAG, .dest = &global_bn},
    };
    const sc_cmdline cl = {"dump-step", opts, SC_NOPTS(opts), dump_usage, "OUT.safetensors", 0};
    int rc;
    if (sc_cli_parse(&cl, argc, argv, &rc))
        return rc;
    const char *out = argv[optind];
    sc_state s;
    if ((rc = sc_cli_state(&s)))
        return rc;
    int ranks = mpi_setup(global_bn), rank = sc_comm_rank();
    sc_params_init(s.desc, s.params, s.buffers, seed);
    if (steps > 0) {
        char err[1024];
        if (ranks > 1) {
            sc_cli_error("dump-step --steps runs in one process");
            rc = SC_EXIT_USAGE;
        } else if (sc_stepdump_steps(&s, seed, steps, out, err, sizeof err)) {
            sc_cli_error("%s", err);
            rc = SC_EXIT_INPUT;
        }
        sc_state_free(&s);
        return sc_comm_max_int(rc);
    }
    /* The global batch's input; this rank's images are [rank B, (rank + 1) B)
     * of each view. With one rank it is the input itself. */
    sc_model_desc global = *s.desc;
    global.batch = s.desc->batch * ranks;
    float *in = ranks > 1 ? sc_floats_alloc(sc_input_floats(&global)) : s.input;
    if (!in) {
        sc_cli_error("out of memory for the global batch's input");
        sc_state_free(&s);
        sc_comm_abort(SC_EXIT_INTERNAL);
    }
    sc_input_synthetic(&global, in, seed);
    if (ranks > 1) {
        size_t view = (size_t)s.desc->in_c * s.desc->in_h * s.desc->in_w, b = (size_t)s.desc->batch;
        for (int v = 0; v < 2; v++)
            memcpy(s.input + v * b * view, in + ((size_t)v * global.batch + (size_t)rank * b) * view,
                   b * view * sizeof(float));
    }
    sc_step(s.params, s.grads, s.buffers, s.arena, s.input, s.loss);
    char err[1024];
    if (rank == 0) {
        sc_state g = s;
        g.desc = &global;
        g.input = in;
        if (sc_stepdump_save(&g, seed, out, err, sizeof err)) {
            sc_cli_error("%s", err);
            rc = SC_EXIT_INPUT;
        }
    }
    if (in != s.input)
        free(in);
    sc_state_free(&s);
    return sc_comm_max_int(rc);
}

/* ---- bench-step ---- */

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: %s bench-step [--steps K] [--threads T] [--profile [--profile-csv FILE]]\n"
            "\n"
            "Times K training steps (forward, loss, backward and an SGD update: lr 0.01,\n"
            "momentum 0.9, weight decay 1e-4, none on biases and batchnorm, as\n"
            "bench/torch_step_bench.py's torch.optim.SGD) on synthetic input after one\n"
            "warm-up step, and prints views per second (images/s), milliseconds per\n"
            "step, the FLOPs of a step (forward and backward; the update's few per\n"
            "parameter are not counted) and GFLOP/s, the threads used, the process's\n"
            "peak resident memory and its rise above the resident size before the\n"
            "model's tensors were allocated and before the first step.\n"
            "\n"
            "options:\n"
            "  --steps K     steps to time (default 10)\n"
            "  --threads T   threads of the kernels (default: the online CPUs, at most\n"
            "                the model's maximum)\n"
            "  --profile     time every kernel of the timed steps and print them sorted\n"
            "                by time, then a summary per op (two clock reads per\n"
            "                kernel; the step time includes them)\n"
            "  --profile-csv FILE  with --profile: also write the per-kernel counters\n"
            "                as CSV (index,node,op,impl,calls,total_ms,flops; '-' is\n"
            "                standard output)\n"
            "  --global-bn   under mpirun (simclrc --mpi): batchnorm statistics over all\n"
            "                ranks; the time spent communicating is printed too\n"
            "  -h, --help    show this help\n",
            program_invocation_short_name);
}

/* The SGD update bench-step times with each step: the values of
 * bench/torch_step_bench.py, so that both sides do the same work. */
#define BENCH_LR 0.01
#define BENCH_MOMENTUM 0.9
#define BENCH_WEIGHT_DECAY 1e-4

/* A "Vm...:  N kB" field of /proc/self/status in MB (10^6 bytes), or -1. */
static double status_mb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    size_t n = strlen(field);
    double mb = -1;
    long long kb;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':' && sscanf(line + n + 1, "%lld", &kb) == 1) {
            mb = (double)kb * 1024.0 / 1e6;
            break;
        }
    fclose(f);
    return mb;
}

/* Peak resident set of this process in MB (10^6 bytes); Linux reports KiB. */
static double peak_rss_mb(void)
{
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u))
        return 0;
    return (double)u.ru_maxrss * 1024.0 / 1e6;
}

/* bench-step's SGD optimizer (see BENCH_LR), or NULL after a message. */
static sc_optim *bench_optim(const sc_model_desc *d)
{
    sc_optim_config c = {.kind = SC_OPT_SGD, .momentum = BENCH_MOMENTUM, .weight_decay = BENCH_WEIGHT_DECAY};
    char err[512];
    sc_optim *o = sc_optim_new(&c, d->params, d->nparams, d->params_floats, err, sizeof err);
    if (!o)
        sc_cli_error("%s", err);
    return o;
}

/* One timed step: the model's and the optimizer's; returns the
 * optimizer's seconds. */
static double bench_one_step(sc_state *s, sc_optim *o)
{
    sc_step(s->params, s->grads, s->buffers, s->arena, s->input, s->loss);
    double t0 = sc_now_seconds();
    sc_optim_step(o, s->params, s->grads, BENCH_LR);
    return sc_now_seconds() - t0;
}

/* bench-step --profile-csv FILE ("-": standard output). */
static int write_profile_csv(const char *path, const sc_model_desc *d)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!f) {
        sc_cli_error("%s: cannot write: %s", path, strerror(errno));
        return SC_EXIT_INPUT;
    }
    int bad = sc_prof_write_csv(f, d->step_nodes, d->nstep_nodes);
    if (f != stdout)
        bad |= fclose(f) != 0;
    if (bad) {
        sc_cli_error("%s: writing failed", path);
        return SC_EXIT_INPUT;
    }
    return 0;
}

static int cmd_bench_step(int argc, char **argv)
{
    uint64_t steps = 10, threads = 0;
    int profile = 0, global_bn = 0;
    const char *csv = NULL;
    const sc_opt opts[] = {
        {"steps", .kind = SC_OPT_U64, .dest = &steps, .min = 1, .max = 1000000},
        {"threads", .kind = SC_OPT_U64, .dest = &threads, .min = 1, .max = 1024},
        {"profile", .kind = SC_OPT_FLAG, .dest = &profile},
        {"profile-csv", .kind = SC_OPT_STR, .dest = &csv, .nonempty = 1},
        {"global-bn", .kind = SC_OPT_FLAG, .dest = &global_bn},
    };
    const sc_cmdline cl = {"bench-step", opts, SC_NOPTS(opts), bench_usage, NULL, 0};
    int rc;
    if (sc_cli_parse(&cl, argc, argv, &rc))
        return rc;
    if (csv && !profile)
        return sc_cli_usage_error("bench-step", "--profile-csv needs --profile");
    /* The baseline of the memory rise: before the model's tensors exist
     * (the state below zeroes the whole arena, which PyTorch allocates
     * during its first step). */
    double rss0 = status_mb("VmRSS");
    sc_state s;
    if ((rc = sc_cli_state(&s)))
        return rc;
    const sc_model_desc *d = s.desc;
    if (profile && (d->nstep_nodes < 1 || !d->step_nodes)) {
        sc_cli_error("this model has no kernel table to profile (recompile it with a newer simclrc)");
        sc_state_free(&s);
        return SC_EXIT_USAGE;
    }
    if (profile && sc_prof_init(d->nstep_nodes)) {
        sc_cli_error("out of memory for the profile's counters");
        sc_state_free(&s);
        return SC_EXIT_INTERNAL;
    }
    mpi_setup(global_bn);
    int nthreads = sc_threads_set(threads ? (int)threads : mpi_threads());
    sc_params_init(d, s.params, s.buffers, 0);
    sc_input_synthetic(d, s.input, 0);
    sc_optim *opt = bench_optim(d);
    if (!opt) {
        if (profile)
            sc_prof_free();
        sc_state_free(&s);
        sc_comm_abort(SC_EXIT_INTERNAL);
    }
    double rss1 = status_mb("VmRSS");
    double t0 = sc_now_seconds();
    bench_one_step(&s, opt);
    double warm = sc_now_seconds() - t0;
    sc_prof_on = profile;
    sc_comm_stats_reset();
    double update = 0;
    t0 = sc_now_seconds();
    for (uint64_t i = 0; i < steps; i++)
        update += bench_one_step(&s, opt);
    double total = sc_now_seconds() - t0;
    sc_prof_on = 0;
    double per = total / (double)steps;
    printf("%s: batch %d (%d views), %d x %d x %d, %" PRIu64 " steps, %d kernel threads, %d OpenBLAS threads\n",
           d->name, d->batch, 2 * d->batch, d->in_c, d->in_h, d->in_w, steps, nthreads,
           openblas_get_num_threads());
    printf("%.1f images/s  %.2f ms/step  %.1f GFLOP/s  (warm-up step %.2f ms, loss %.6g)\n",
           2.0 * d->batch / per, 1e3 * per, d->flops_per_step / per / 1e9, 1e3 * warm,
           (double)s.loss[0]);
    printf("FLOPs per step %.0f (forward and backward; %.3f GFLOP)\n", d->flops_per_step, d->flops_per_step / 1e9);
    printf("SGD update %.2f ms per step (%.1f%% of the step; the kernel threads)\n", 1e3 * update / (double)steps,
           total > 0 ? 100 * update / total : 0);
    double peak = peak_rss_mb();
    printf("peak RSS %.1f MB\n", peak);
    if (rss0 >= 0)
        printf("RSS before the model's tensors %.1f MB, peak rise above it %.1f MB\n", rss0, peak - rss0);
    if (rss1 >= 0)
        printf("RSS before the first step %.1f MB, peak rise above it %.1f MB\n", rss1, peak - rss1);
    if (sc_model.mpi)
        mpi_report(steps, total);
    if (profile) {
        int64_t ran = 0;
        for (int32_t i = 0; i < d->nstep_nodes; i++)
            ran += sc_prof_calls(i);
        if (!ran && !sc_prof_stray()) {
            sc_cli_error("the model's step reported no kernels (it was compiled without profiling marks)");
            rc = SC_EXIT_INTERNAL;
        } else {
            sc_prof_print(stdout, d->step_nodes, d->nstep_nodes, (int64_t)steps, total);
            if (csv)
                rc = write_profile_csv(csv, d);
        }
        sc_prof_free();
    }
    sc_optim_free(opt);
    sc_state_free(&s);
    return rc;
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
            "  bench-step [--steps K] [--threads T] [--profile]\n"
            "                          time training steps, print images/s\n"
            "\n"
            "Run '%s SUBCOMMAND --help' for a subcommand's options.\n"
            "\n"
            "options:\n"
            "  -h, --help   show this help\n"
            "  --version    show the version\n"
            "\n"
            "exit status: 0 success, 1 bad input, 2 bad usage, 3 internal error\n",
            program_invocation_short_name, sc_model.name, sc_model.compiler_version,
            program_invocation_short_name);
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommands[] = {
    {"info", cmd_info},
    {"train", sc_cmd_train},
    {"check-data", sc_cmd_check_data},
    {"eval", sc_cmd_eval},
    {"finetune", sc_cmd_finetune},
    {"export", sc_cmd_export},
    {"encode", sc_cmd_encode},
    {"dump-step", cmd_dump_step},
    {"bench-step", cmd_bench_step},
};
enum { NSUB = (int)(sizeof subcommands / sizeof *subcommands) };

int main(int argc, char **argv)
{
    /* Before MPI_Init and any thread: it may execute the binary again. */
    sc_blascore_ensure(argv);
    int version = 0;
    const sc_opt opts[] = {{"version", .kind = SC_OPT_FLAG, .dest = &version}};
    /* Options end at the subcommand, whose own options are parsed after it. */
    const sc_cmdline cl = {NULL, opts, 1, usage, NULL, 1};
    int rc;
    if (sc_cli_parse(&cl, argc, argv, &rc))
        return rc;
    if (version) {
        printf("%s: model %s, generated by simclrc %s for %s (ABI %d)\n", program_invocation_short_name,
               sc_model.name, sc_model.compiler_version, sc_model.target_cpu, sc_model.abi_version);
        return 0;
    }
    if (optind >= argc) {
        sc_cli_error("no subcommand given");
        usage(stderr);
        return SC_EXIT_USAGE;
    }
    const char *sub = argv[optind];
    int sargc = argc - optind;
    char **sargv = argv + optind;
    optind = 0;   /* glibc: rescan from sargv[1], resetting getopt's state */
    for (int i = 0; i < NSUB; i++)
        if (!strcmp(sub, subcommands[i].name))
            return subcommands[i].run(sargc, sargv);
    if (!strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    char names[256] = "";
    size_t len = 0;
    for (int i = 0; i < NSUB && len < sizeof names; i++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", subcommands[i].name);
    return sc_cli_usage_error(NULL, "unknown subcommand '%s' (available: %s)", sub, names);
}
