/* export: the encoder's weights out, as a safetensors state dict.
 *
 * The compiler tells which tensors are the encoder's (sc_param_info.role)
 * and, when the encoder is a torchvision-style ResNet, their torchvision
 * keys (export_name: conv1, bn1, layer1 .. layer4; see
 * compiler/torchvision.h), so torchvision.models.resnet18()
 * .load_state_dict(..., strict=False) finds everything except fc.* (and
 * num_batches_tracked, which eval mode does not use). Otherwise the
 * canonical names are kept. --network target exports BYOL's target
 * encoder ("target." + each encoder tensor's name, sc_ema.h) under the
 * online encoder's keys, so either network loads the same way. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "sc_abi.h"
#include "sc_ema.h"
#include "sc_safetensors.h"
#include "sc_state.h"

enum { NAMES_AUTO, NAMES_TORCHVISION, NAMES_CANONICAL };
enum { NETWORK_ONLINE, NETWORK_TARGET };

static void usage(FILE *f)
{
    const char *p = program_invocation_short_name;
    fprintf(f,
            "usage: %s export --ckpt FILE -o OUT.safetensors [--names auto|torchvision|canonical]\n"
            "          [--network online|target]\n"
            "\n"
            "Writes the encoder's parameters and batchnorm buffers (not the projection head,\n"
            "not a classifier) as a safetensors state dict of F32 tensors in PyTorch layout.\n"
            "For a torchvision-style ResNet encoder (conv, batchnorm, relu, maxpool, four\n"
            "stages, global-avgpool) the keys are torchvision's (conv1, bn1, layer1..layer4),\n"
            "so torchvision.models.resnet18() loads the file with strict=False, missing only\n"
            "fc.*; otherwise the canonical names (encoder.0.weight, ...).\n"
            "\n"
            "options:\n"
            "  --ckpt FILE      the checkpoint (train or finetune)\n"
            "  -o, --out FILE   the output file\n"
            "  --names KIND     auto (default): torchvision names when the encoder allows;\n"
            "                   torchvision: require them; canonical: never\n"
            "  --network NET    online (default): the trained encoder; target: BYOL's target\n"
            "                   encoder (the moving average), under the same keys\n"
            "  -h, --help       show this help\n"
            "\n"
            "exit status: 0 success, 1 bad input (checkpoint, unwritable output, an encoder\n"
            "that has no torchvision names, --network target of a model without one),\n"
            "2 bad usage, 3 internal error\n",
            p);
}

/* Tensor k of the parameters followed by the buffers (k < nparams +
 * nbuffers); *buffer says which. */
static const sc_param_info *tensor_at(const sc_model_desc *d, int k, int *buffer)
{
    *buffer = k >= d->nparams;
    return *buffer ? &d->buffers[k - d->nparams] : &d->params[k];
}

/* Whether every encoder tensor (parameter or buffer) has a torchvision key. */
static int torchvision_names(const sc_model_desc *d)
{
    int any = 0, buffer;
    for (int k = 0; k < d->nparams + d->nbuffers; k++) {
        const sc_param_info *t = tensor_at(d, k, &buffer);
        if (t->role == SC_ROLE_ENCODER && !t->export_name)
            return 0;
        any |= t->role == SC_ROLE_ENCODER;
    }
    return any;
}

/* BYOL's target copy of encoder tensor t ("target." + its name), else NULL. */
static const sc_param_info *target_of(const sc_model_desc *d, const sc_param_info *t)
{
    for (int i = 0; i < d->nbuffers; i++) {
        const char *src = sc_target_source(d->buffers[i].name);
        if (d->buffers[i].role == SC_ROLE_TARGET && src && !strcmp(src, t->name))
            return &d->buffers[i];
    }
    return NULL;
}

static void add(sc_st_writer *w, const sc_param_info *p, const char *name, const float *base)
{
    int64_t shape[4] = {0};
    for (int k = 0; k < p->ndim && k < 4; k++)
        shape[k] = p->shape[k];
    sc_st_writer_f32(w, name, p->ndim, shape, base + p->offset);
}

int sc_cmd_export(int argc, char **argv)
{
    static const char *const name_styles[] = {"auto", "torchvision", "canonical", NULL};
    const char *ckpt = NULL, *out = NULL;
    static const char *const networks[] = {"online", "target", NULL};
    int names = NAMES_AUTO, network = NETWORK_ONLINE;
    const sc_opt opts[] = {
        {"network", .kind = SC_OPT_CHOICE, .dest = &network, .choices = networks},
        {"ckpt", .kind = SC_OPT_STR, .dest = &ckpt, .required = "--ckpt FILE"},
        {"out", 'o', SC_OPT_STR, .dest = &out, .required = "-o OUT.safetensors"},
        {"names", .kind = SC_OPT_CHOICE, .dest = &names, .choices = name_styles},
    };
    const sc_cmdline cl = {"export", opts, SC_NOPTS(opts), usage, NULL, 0};
    int rc;
    if (sc_cli_parse(&cl, argc, argv, &rc))
        return rc;

    sc_state s;
    if ((rc = sc_cli_state(&s)))
        return rc;
    const sc_model_desc *d = s.desc;
    sc_st_writer *w = NULL;
    if ((rc = sc_cli_load_model(&s, ckpt, 0)))
        goto done;

    int tv = names != NAMES_CANONICAL && torchvision_names(d);
    if (names == NAMES_TORCHVISION && !tv) {
        sc_cli_error("the encoder of %s is not a torchvision-style ResNet (conv, batchnorm, relu, "
                     "maxpool, four stages, global-avgpool, unnamed layers): use --names canonical",
                     d->name);
        rc = SC_EXIT_INPUT;
        goto done;
    }

    w = sc_st_writer_new();
    if (!w) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    int ntensors = 0, buffer;
    for (int k = 0; k < d->nparams + d->nbuffers; k++) {
        const sc_param_info *t = tensor_at(d, k, &buffer);
        if (t->role != SC_ROLE_ENCODER)
            continue;
        const char *key = tv ? t->export_name : t->name;
        if (network == NETWORK_TARGET) {
            const sc_param_info *tt = target_of(d, t);
            if (!tt) {
                sc_cli_error("--network target: %s has no target network (its loss is not byol)", d->name);
                rc = SC_EXIT_INPUT;
                goto done;
            }
            add(w, tt, key, s.buffers);
        } else {
            add(w, t, key, buffer ? s.buffers : s.params);
        }
        ntensors++;
    }
    char num[32];
    snprintf(num, sizeof num, "%d", d->feature_dim);
    sc_st_writer_meta(w, "format", "simclrc-encoder-1");
    sc_st_writer_meta(w, "model", d->name);
    sc_st_writer_meta(w, "names", tv ? "torchvision" : "canonical");
    sc_st_writer_meta(w, "network", networks[network]);
    sc_st_writer_meta(w, "feature_dim", num);
    char err[1024];
    if (sc_st_writer_save(w, out, err, sizeof err)) {
        sc_cli_error("%s", err);
        rc = SC_EXIT_INPUT;
        goto done;
    }
    printf("wrote %s: %d %s encoder tensors of %s, %s names\n", out, ntensors, networks[network], d->name,
           tv ? "torchvision" : "canonical");
done:
    sc_st_writer_free(w);
    sc_state_free(&s);
    return rc;
}
