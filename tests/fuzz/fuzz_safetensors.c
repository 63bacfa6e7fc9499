/* Fuzz target: safetensors files as the binaries read them: the reader
 * itself (every tensor's bytes are read, so a span past the data shows),
 * checkpoint loading into a small model with Adam state, and the checks
 * encode makes on its --input tensor. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "sc_checkpoint.h"
#include "sc_optim.h"
#include "sc_safetensors.h"

/* A model of two parameters and one buffer, named as a checkpoint of
 * model "fuzz" has them (the seed corpus holds such checkpoints). */
static const sc_param_info params[] = {
    {.name = "encoder.0.weight", .ndim = 4, .shape = {2, 1, 3, 3}, .numel = 18, .offset = 0, .fan_in = 9},
    {.name = "encoder.0.bias", .ndim = 1, .shape = {2}, .numel = 2, .offset = 32, .fan_in = 9, .no_decay = 1},
};
static const sc_param_info buffers[] = {
    {.name = "encoder.1.running_mean", .ndim = 1, .shape = {2}, .numel = 2},
};

static void read_and_touch(const char *path)
{
    sc_st_file f;
    char err[512];
    if (sc_st_read(path, &f, err, sizeof err))
        return;
    volatile unsigned sum = 0;
    for (int i = 0; i < f.n; i++) {
        const unsigned char *p = f.t[i].data;
        for (size_t k = 0; k < f.t[i].nbytes; k++)
            sum += p[k];
        (void)sc_st_get(&f, f.t[i].name);
    }
    for (int i = 0; i < f.nmeta; i++)
        (void)sc_st_meta(&f, f.meta_keys[i]);
    /* encode's input: F32 [N, 1, 3, 3] with N >= 1 */
    const sc_st_tensor *t = sc_st_get(&f, "input");
    if (t && !strcmp(t->dtype, "F32") && t->ndim == 4 && t->shape[0] >= 1 && t->shape[1] == 1 &&
        t->shape[2] == 3 && t->shape[3] == 3) {
        size_t want = (size_t)t->shape[0] * 9 * sizeof(float);
        if (want != t->nbytes)
            abort(); /* the reader let a shape disagree with its bytes */
        /* The data need not be aligned: encode copies it, as here. */
        for (int64_t i = 0; i < t->shape[0] * 9; i++) {
            float x;
            memcpy(&x, (const char *)t->data + i * 4, 4);
            sum += (unsigned)(x != 0);
        }
    }
    sc_st_free(&f);
}

static void load_checkpoint(const char *path)
{
    sc_model_desc d = {0};
    d.name = "fuzz";
    d.nparams = 2;
    d.nbuffers = 1;
    d.params = params;
    d.buffers = buffers;
    d.params_floats = 48;
    d.buffers_floats = 16;
    d.batch = 2;
    sc_optim_config c = {.kind = SC_OPT_ADAM, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    char err[512];
    sc_optim *opt = sc_optim_new(&c, params, 2, 48, err, sizeof err);
    float p[48] = {0}, b[16] = {0};
    const char *keys[] = {"train/epochs", "train/steps_per_epoch"};
    char *vals[2];
    sc_ckpt_pos pos;
    int missing;
    if (!sc_ckpt_load_meta(path, &d, params, 2, p, b, opt, &pos, &missing, 2, keys, vals, err, sizeof err))
        for (int i = 0; i < 2; i++)
            free(vals[i]);
    sc_optim_free(opt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = sc_fuzz_file("input.safetensors", data, size);
    if (!path)
        return 0;
    read_and_touch(path);
    load_checkpoint(path);
    return 0;
}
