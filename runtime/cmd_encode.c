/* encode: eval-mode encoder features of given input, for comparisons with
 * other implementations (the export test feeds the same images to
 * PyTorch). The input file holds a tensor "input" (or a single tensor),
 * F32 [N, C, H, W] in the model's geometry, already preprocessed; N is
 * any positive count, fed through encode_batch-sized chunks with the last
 * padded. The output holds "features" [N, feature_dim]. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cli.h"
#include "commands.h"
#include "sc_abi.h"
#include "sc_parallel.h"
#include "sc_safetensors.h"
#include "sc_state.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s encode (--ckpt FILE | --random-init) --input IN.safetensors -o OUT.safetensors\n"
            "\n"
            "Runs the encoder in eval mode (batchnorm running statistics) on the images of\n"
            "IN's tensor 'input' (F32 [N, C, H, W] in the model's input geometry, used as\n"
            "they are: no resize, no normalisation) and writes 'features' [N, feature_dim].\n"
            "\n"
            "options:\n"
            "  --ckpt FILE      parameters from a checkpoint\n"
            "  --random-init    parameters from the seeded initialisation\n"
            "  --seed S         seed of --random-init (0)\n"
            "  --input FILE     the images\n"
            "  -o, --out FILE   the features\n"
            "  --threads T      OpenBLAS threads (default: OpenBLAS's own choice)\n"
            "  -h, --help       show this help\n"
            "\n"
            "exit status: 0 success, 1 bad input, 2 bad usage, 3 internal error\n",
            program_invocation_short_name);
}

/* The input tensor: "input", or the file's only tensor. */
static const sc_st_tensor *input_tensor(const sc_st_file *f)
{
    const sc_st_tensor *t = sc_st_get(f, "input");
    return t ? t : f->n == 1 ? &f->t[0] : NULL;
}

int sc_cmd_encode(int argc, char **argv)
{
    const char *ckpt = NULL, *in = NULL, *out = NULL;
    int random_init = 0;
    uint64_t seed = 0, threads = 0;
    const sc_opt opts[] = {
        {"ckpt", .kind = SC_OPT_STR, .dest = &ckpt},
        {"random-init", .kind = SC_OPT_FLAG, .dest = &random_init},
        {"seed", .kind = SC_OPT_U64, .dest = &seed, .max = UINT64_MAX},
        {"input", .kind = SC_OPT_STR, .dest = &in, .required = "--input IN.safetensors"},
        {"out", 'o', SC_OPT_STR, .dest = &out, .required = "-o OUT.safetensors"},
        {"threads", .kind = SC_OPT_U64, .dest = &threads, .min = 1, .max = 1024},
    };
    const sc_cmdline cl = {"encode", opts, SC_NOPTS(opts), usage, NULL, 0};
    int rc;
    if (sc_cli_parse(&cl, argc, argv, &rc) || (rc = sc_cli_check_source("encode", ckpt, random_init)))
        return rc;
    if (threads)
        sc_threads_set((int)threads);

    sc_state s;
    if ((rc = sc_cli_state(&s)))
        return rc;
    const sc_model_desc *d = s.desc;
    sc_st_file f = {0};
    int have_file = 0;
    float *feat = NULL, *chunk = NULL, *chunk_feat = NULL;
    sc_st_writer *w = NULL;
    char err[1024];
    if ((rc = sc_cli_load_model(&s, ckpt, seed)))
        goto done;
    if (sc_st_read(in, &f, err, sizeof err)) {
        sc_cli_error("%s", err);
        rc = SC_EXIT_INPUT;
        goto done;
    }
    have_file = 1;
    const sc_st_tensor *t = input_tensor(&f);
    if (!t || strcmp(t->dtype, "F32") || t->ndim != 4 || t->shape[0] < 1 || t->shape[1] != d->in_c ||
        t->shape[2] != d->in_h || t->shape[3] != d->in_w) {
        sc_cli_error("%s: needs a tensor 'input' of F32 [N, %d, %d, %d] (the model's input geometry)", in,
                     d->in_c, d->in_h, d->in_w);
        rc = SC_EXIT_INPUT;
        goto done;
    }
    const int64_t n = t->shape[0], img = (int64_t)d->in_c * d->in_h * d->in_w, fd = d->feature_dim;
    const int64_t eb = d->encode_batch;
    /* The reader checked that the shape's bytes are the tensor's: n images
     * are really there. The features must fit too. */
    size_t feat_bytes;
    if (__builtin_mul_overflow((size_t)n, (size_t)fd * sizeof *feat, &feat_bytes)) {
        sc_cli_error("%s: the tensor 'input' of %" PRId64 " images is too large", in, n);
        rc = SC_EXIT_INPUT;
        goto done;
    }
    feat = malloc(feat_bytes);
    chunk = sc_floats_alloc(eb * img);
    chunk_feat = sc_floats_alloc(eb * fd);
    if (!feat || !chunk || !chunk_feat) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    /* The file's data need not be aligned: copy chunks into aligned buffers. */
    const char *src = t->data;
    for (int64_t i = 0; i < n; i += eb) {
        int64_t m = n - i < eb ? n - i : eb;
        memcpy(chunk, src + (size_t)(i * img) * sizeof(float), sizeof(float) * (size_t)(m * img));
        for (int64_t j = m; j < eb; j++)
            memcpy(chunk + j * img, chunk + (m - 1) * img, sizeof(float) * (size_t)img);
        sc_encode(s.params, s.buffers, s.arena, chunk, chunk_feat);
        memcpy(feat + i * fd, chunk_feat, sizeof(float) * (size_t)(m * fd));
    }
    w = sc_st_writer_new();
    if (!w) {
        sc_cli_error("out of memory");
        rc = SC_EXIT_INTERNAL;
        goto done;
    }
    int64_t shape[2] = {n, fd};
    sc_st_writer_f32(w, "features", 2, shape, feat);
    sc_st_writer_meta(w, "model", d->name);
    if (sc_st_writer_save(w, out, err, sizeof err)) {
        sc_cli_error("%s", err);
        rc = SC_EXIT_INPUT;
    }
done:
    sc_st_writer_free(w);
    free(feat);
    free(chunk);
    free(chunk_feat);
    if (have_file)
        sc_st_free(&f);
    sc_state_free(&s);
    return rc;
}
