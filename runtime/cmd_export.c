/* export: the encoder's weights out, as a safetensors state dict.
 *
 * The encoder's tensors are told from the projection head's by the model
 * itself: sc_finetune_step writes the gradient of every encoder and
 * classifier parameter and leaves the head's untouched, so one step on a
 * noise batch with NaN-filled gradients marks them (the running statistics
 * it updates are put back). A batchnorm buffer belongs to the encoder
 * when its layer's weight does.
 *
 * Names: when the spec's encoder is a torchvision-style ResNet (conv,
 * batchnorm, relu, an optional maxpool, four stages, global-avgpool, with
 * positional names), the keys are torchvision's: encoder.0 -> conv1,
 * encoder.1 -> bn1, the four stages -> layer1 .. layer4, the block names
 * inside them (J.conv1, J.downsample.0, ...) unchanged. So
 * torchvision.models.resnet18().load_state_dict(..., strict=False) finds
 * everything except fc.* (and num_batches_tracked, which eval mode does not
 * use). Otherwise the canonical names are kept. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "sc_abi.h"
#include "sc_rng.h"
#include "sc_safetensors.h"
#include "sc_state.h"

enum { NAMES_AUTO, NAMES_TORCHVISION, NAMES_CANONICAL };

static void usage(FILE *f)
{
    const char *p = program_invocation_short_name;
    fprintf(f,
            "usage: %s export --ckpt FILE -o OUT.safetensors [--names auto|torchvision|canonical]\n"
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
            "  -h, --help       show this help\n"
            "\n"
            "exit status: 0 success, 1 bad input (checkpoint, unwritable output, an encoder\n"
            "that has no torchvision names), 2 bad usage, 3 internal error\n",
            p);
}

/* The names of the elements directly inside <encoder> of the model's XML
 * text, in order, up to max; the count, or -1 when there is no encoder
 * element. Comments are skipped; attribute values may hold '>'. */
static int encoder_layers(const char *xml, char names[][32], int max)
{
    const char *p = xml;
    for (;;) {
        p = strstr(p, "<encoder");
        if (!p)
            return -1;
        p += 8;
        if (*p == '>' || isspace((unsigned char)*p))
            break;
    }
    p = strchr(p, '>');
    if (!p || p[-1] == '/')
        return p ? 0 : -1;
    p++;
    int depth = 0, n = 0;
    while ((p = strchr(p, '<'))) {
        if (!strncmp(p, "<!--", 4)) {
            p = strstr(p + 4, "-->");
            if (!p)
                return -1;
            continue;
        }
        int closing = p[1] == '/';
        const char *s = p + 1 + closing;
        size_t len = 0;
        while (s[len] && !isspace((unsigned char)s[len]) && s[len] != '>' && s[len] != '/')
            len++;
        /* The end of the tag, skipping quoted attribute values. */
        const char *e = s + len;
        char quote = 0;
        for (; *e && (quote || *e != '>'); e++)
            if (quote ? *e == quote : (*e == '"' || *e == '\''))
                quote = quote ? 0 : *e;
        if (!*e)
            return -1;
        if (closing) {
            if (depth == 0)
                return n;   /* </encoder> */
            depth--;
        } else {
            if (depth == 0 && n < max) {
                snprintf(names[n], 32, "%.*s", (int)(len < 31 ? len : 31), s);
                n++;
            }
            if (e[-1] != '/')
                depth++;
        }
        p = e + 1;
    }
    return -1;
}

/* The index of the first stage when the encoder is torchvision-style (see
 * the top of the file), else -1. */
static int torchvision_first_stage(const char *spec)
{
    char names[16][32];
    int n = encoder_layers(spec ? spec : "", names, 16);
    static const char *const with_pool[] = {"conv", "batchnorm", "relu", "maxpool", "stage",
                                            "stage", "stage", "stage", "global-avgpool"};
    int pool = n == 9;
    if (n != 8 && n != 9)
        return -1;
    for (int i = 0, k = 0; i < n; i++, k++) {
        if (!pool && k == 3)
            k++;   /* no maxpool (a CIFAR-style stem) */
        if (strcmp(names[i], with_pool[k]))
            return -1;
    }
    return pool ? 4 : 3;
}

/* The torchvision key of canonical name `name` for an encoder whose
 * stages start at layer index s0; 0, or -1 when it has none. */
static int torchvision_name(const char *name, int s0, char *out, size_t len)
{
    const char *rest;
    if (!strncmp(name, "encoder.0.", 10)) {
        rest = name + 10;
        return snprintf(out, len, "conv1.%s", rest) < (int)len ? 0 : -1;
    }
    if (!strncmp(name, "encoder.1.", 10)) {
        rest = name + 10;
        return snprintf(out, len, "bn1.%s", rest) < (int)len ? 0 : -1;
    }
    if (strncmp(name, "encoder.", 8))
        return -1;
    char *end;
    long layer = strtol(name + 8, &end, 10);
    if (end == name + 8 || *end != '.' || layer < s0 || layer > s0 + 3)
        return -1;
    return snprintf(out, len, "layer%ld.%s", layer - s0 + 1, end + 1) < (int)len ? 0 : -1;
}

/* Which SimCLR parameters belong to the encoder (see the top of the file). */
static int encoder_params(sc_state *s, int *is_enc)
{
    const sc_model_desc *d = s->desc;
    const int64_t img = (int64_t)d->in_c * d->in_h * d->in_w, pf = sc_params_alloc_floats(d);
    float *input = sc_floats_alloc((int64_t)d->finetune_batch * (img + 1));
    float *keep = sc_floats_alloc(d->buffers_floats);
    if (!input || !keep) {
        free(input);
        free(keep);
        return -1;
    }
    memcpy(keep, s->buffers, sizeof(float) * (size_t)d->buffers_floats);
    /* Seeded noise, not zeros: no degenerate statistics that could make an
     * encoder gradient NaN. Labels cycle through the classes. */
    sc_rng r;
    sc_rng_seed(&r, 0, SC_STREAM_INPUT);
    for (int64_t j = 0; j < d->finetune_batch * img; j++)
        input[j] = (float)sc_rng_normal(&r);
    for (int i = 0; i < d->finetune_batch; i++)
        input[d->finetune_batch * img + i] = (float)(i % d->nclasses);
    for (int64_t j = 0; j < pf; j++)
        s->grads[j] = NAN;
    sc_finetune_step(s->params, s->grads, s->buffers, s->arena, input, s->loss);
    memcpy(s->buffers, keep, sizeof(float) * (size_t)d->buffers_floats);
    for (int i = 0; i < d->nparams; i++)
        is_enc[i] = !isnan(s->grads[d->params[i].offset]);
    free(input);
    free(keep);
    return 0;
}

/* Whether buffer b ("X.running_mean") belongs to an encoder layer ("X.weight"). */
static int buffer_in_encoder(const sc_model_desc *d, const int *is_enc, const char *b)
{
    const char *dot = strrchr(b, '.');
    size_t pre = dot ? (size_t)(dot - b) : 0;
    for (int i = 0; i < d->nparams; i++) {
        const char *n = d->params[i].name;
        if (is_enc[i] && !strncmp(n, b, pre) && n[pre] == '.' && !strchr(n + pre + 1, '.'))
            return 1;
    }
    return 0;
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
    int names = NAMES_AUTO;
    const sc_opt opts[] = {
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
    int *is_enc = calloc((size_t)(d->nparams ? d->nparams : 1), sizeof *is_enc);
    sc_st_writer *w = NULL;
    if (!is_enc) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    if ((rc = sc_cli_load_model(&s, ckpt, 0)))
        goto done;
    if (encoder_params(&s, is_enc)) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }

    int s0 = names == NAMES_CANONICAL ? -1 : torchvision_first_stage(d->spec);
    char key[512];
    for (int i = 0; s0 >= 0 && i < d->nparams; i++)
        if (is_enc[i] && torchvision_name(d->params[i].name, s0, key, sizeof key))
            s0 = -1;   /* a named layer: no torchvision key for it */
    if (names == NAMES_TORCHVISION && s0 < 0) {
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
    int ntensors = 0;
    for (int pass = 0; pass < 2; pass++) {
        const sc_param_info *t = pass ? d->buffers : d->params;
        int n = pass ? d->nbuffers : d->nparams;
        for (int i = 0; i < n; i++) {
            if (pass ? !buffer_in_encoder(d, is_enc, t[i].name) : !is_enc[i])
                continue;
            if (s0 < 0)
                snprintf(key, sizeof key, "%s", t[i].name);
            else
                torchvision_name(t[i].name, s0, key, sizeof key);
            add(w, &t[i], key, pass ? s.buffers : s.params);
            ntensors++;
        }
    }
    char num[32];
    snprintf(num, sizeof num, "%d", d->feature_dim);
    sc_st_writer_meta(w, "format", "simclrc-encoder-1");
    sc_st_writer_meta(w, "model", d->name);
    sc_st_writer_meta(w, "names", s0 < 0 ? "canonical" : "torchvision");
    sc_st_writer_meta(w, "feature_dim", num);
    char err[1024];
    if (sc_st_writer_save(w, out, err, sizeof err)) {
        sc_cli_error("%s", err);
        rc = SC_EXIT_INPUT;
        goto done;
    }
    printf("wrote %s: %d encoder tensors of %s, %s names\n", out, ntensors, d->name,
           s0 < 0 ? "canonical" : "torchvision");
done:
    sc_st_writer_free(w);
    free(is_enc);
    sc_state_free(&s);
    return rc;
}
