#define _GNU_SOURCE
#include "train_options.h"

#include <errno.h> /* program_invocation_short_name */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sc_abi.h"
#include "sc_optim.h"
#include "sc_parallel.h"

static const char *prog(void) { return program_invocation_short_name; }

static void usage(FILE *f, const sc_model_desc *d)
{
    long cpus = sc_cpus();
    fprintf(f,
            "usage: %s train --data DIR [--out RUN] [--epochs E] [--lr X] [--seed S]\n"
            "                [--threads T] [--resume] [--split NAME] [options]\n"
            "\n"
            "SimCLR pretraining of the model '%s': two augmented views of every\n"
            "image of the split per step (the model's <augment> list), NT-Xent loss,\n"
            "the optimizer and schedule of its <train> element\n"
            "(%s, lr %g%s, %s).\n"
            "\n"
            "The run directory RUN receives:\n"
            "  checkpoint.safetensors  parameters, batchnorm buffers, optimizer state,\n"
            "                          step, epoch and seed; written atomically at the\n"
            "                          start, after every epoch, at --max-steps and on\n"
            "                          SIGINT/SIGTERM (the previous one stays intact\n"
            "                          until the new one is complete)\n"
            "  metrics.csv             every step: step,epoch,loss,lr,data_wait_s,step_s\n"
            "  knn.csv                 kNN monitor: step,epoch,knn_top1,seconds\n"
            "Steps count from 1, epochs from 1; a row with step 0 and epoch 0 measures\n"
            "the initial encoder (--knn-init).\n"
            "\n"
            "options:\n"
            "  --data DIR        dataset directory, STL-10 layout (required)\n"
            "  --out RUN         run directory, created if needed (default: run)\n"
            "  --epochs E        epochs (default: the model's, %d; 0 only writes the\n"
            "                    initial checkpoint)\n"
            "  --lr X            learning rate before lr-scaling (default: the model's)\n"
            "  --seed S          seed of initialisation, shuffling and augmentation\n"
            "                    (default: the model's, %" PRIu64 ")\n"
            "  --threads T       input pipeline workers and OpenBLAS threads\n"
            "                    (default: the CPUs online, %ld; under mpirun divided by\n"
            "                    the ranks on the machine)\n"
            "  --deterministic   one OpenBLAS thread, so that results are bit-identical\n"
            "                    from run to run and across --resume (--threads 1 implies\n"
            "                    it; the pipeline is deterministic at any thread count)\n"
            "  --resume          continue from RUN/checkpoint.safetensors (same data,\n"
            "                    split and seed; epochs and lr default to the run's)\n"
            "  --split NAME      unlabeled (default), train, train+unlabeled, fold0..fold9\n"
            "  --log-every N     without a terminal, one progress line every N steps\n"
            "                    (default 50); on a terminal a progress bar\n"
            "  --max-steps N     stop with a checkpoint once N steps in all are taken\n"
            "  --knn-every E     kNN monitor (k 200, cosine, temperature 0.1, labeled train\n"
            "                    split against test split) every E epochs and after the\n"
            "                    last (default 1; 0 turns it off)\n"
            "  --knn-init        also measure the initial encoder's kNN accuracy\n"
            "  --global-bn       under mpirun (a binary built with simclrc --mpi):\n"
            "                    batchnorm statistics over the images of all ranks\n"
            "                    (without it each rank normalises its own batch and the\n"
            "                    running statistics are averaged over the ranks)\n"
            "  -h, --help        show this help\n"
            "\n"
            "A non-finite loss or gradient stops training with exit status 1 and leaves\n"
            "the last checkpoint as it was. SIGINT or SIGTERM writes a checkpoint and\n"
            "exits with status 0 (a second SIGINT quits at once).\n"
            "\n"
            "exit status: 0 success, 1 bad input (data, checkpoint, run directory) or a\n"
            "non-finite loss, 2 bad usage, 3 internal error\n",
            prog(), d->name,
            sc_optim_kind_name(d->train.optimizer),
            d->train.lr, d->train.lr_scaling_linear ? " x batch/256" : "",
            d->train.schedule == SC_SCHED_COSINE ? "cosine schedule" : "constant schedule", d->train.epochs,
            d->train.seed, cpus > 0 ? cpus : 1);
}

/* --split: any split but test. */
static int check_split(const char *value, void *dest)
{
    char err[256];
    sc_split *sp = dest;
    if (sc_split_parse(value, sp, err, sizeof err)) {
        sc_cli_error("--split: %s", err);
        return -1;
    }
    if (sp->kind == SC_SPLIT_TEST) {
        sc_cli_error("--split test: pretraining on the test split would leak it into every evaluation; use "
                     "unlabeled, train, train+unlabeled or a fold");
        return -1;
    }
    return 0;
}

static void print_usage(FILE *f) { usage(f, &sc_model); }

int sc_train_parse_options(int argc, char **argv, sc_train_options *o, int *status)
{
    memset(o, 0, sizeof *o);
    o->out = "run";
    o->split.kind = SC_SPLIT_UNLABELED;
    o->log_every = 50;
    o->knn_every = 1;
    o->threads = sc_cpus();
    const sc_opt opts[] = {
        {"data", .kind = SC_OPT_STR, .dest = &o->data, .required = "--data DIR"},
        {"out", .kind = SC_OPT_STR, .dest = &o->out, .nonempty = 1},
        {"epochs", .kind = SC_OPT_I64, .dest = &o->epochs, .given = &o->have_epochs, .max = 1000000},
        {"lr", .kind = SC_OPT_NUM, .dest = &o->lr, .given = &o->have_lr, .lo = 0, .lo_open = 1, .hi = INFINITY},
        {"seed", .kind = SC_OPT_U64, .dest = &o->seed, .given = &o->have_seed, .max = UINT64_MAX},
        {"threads", .kind = SC_OPT_INT, .dest = &o->threads, .given = &o->have_threads, .min = 1, .max = 1024},
        {"deterministic", .kind = SC_OPT_FLAG, .dest = &o->deterministic},
        {"resume", .kind = SC_OPT_FLAG, .dest = &o->resume},
        {"split", .kind = SC_OPT_CUSTOM, .dest = &o->split, .given = &o->have_split, .check = check_split},
        {"log-every", .kind = SC_OPT_I64, .dest = &o->log_every, .min = 1, .max = INT64_MAX},
        {"max-steps", .kind = SC_OPT_I64, .dest = &o->max_steps, .min = 1, .max = INT64_MAX},
        {"knn-every", .kind = SC_OPT_I64, .dest = &o->knn_every, .max = 1000000},
        {"knn-init", .kind = SC_OPT_FLAG, .dest = &o->knn_init},
        {"global-bn", .kind = SC_OPT_FLAG, .dest = &o->global_bn},
    };
    const sc_cmdline cl = {"train", opts, SC_NOPTS(opts), print_usage, NULL, 0};
    return sc_cli_parse(&cl, argc, argv, status);
}
