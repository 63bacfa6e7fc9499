/* Checkpoints (runtime/checkpoint.c): safetensors files holding a model's
 * parameters under their canonical names in PyTorch layouts, the
 * batchnorm buffers, the optimizer state and the training position.
 *
 * Tensors: every entry of the parameter table under its name (also the
 * classifier's, when the checkpoint comes from fine-tuning), every buffer
 * under its name, and optimizer state as "optim/STATE/NAME" (STATE as in
 * sc_optim_state_name, e.g. "optim/exp_avg/encoder.0.weight").
 * Metadata (strings): "format" = "simclrc-ckpt-1", "model", "spec" (the
 * model file's text), "step", "epoch" (completed epochs), "seed",
 * "optimizer", "optim_step", and "kind" ("simclr" or "finetune").
 * Files are written atomically: temporary file, fsync, rename, fsync of
 * the directory. */
#ifndef SC_CHECKPOINT_H
#define SC_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "sc_abi.h"
#include "sc_optim.h"

/* Upper bounds of the position read from a file, so that products of
 * them with a run's sizes cannot overflow: epochs as train's --epochs,
 * steps 2^40 (a million steps a day for three thousand years). */
#define SC_CKPT_MAX_EPOCH 1000000
#define SC_CKPT_MAX_STEP ((int64_t)1 << 40)

typedef struct {
    int64_t step;       /* optimizer steps taken */
    int64_t epoch;      /* epochs completed */
    uint64_t seed;
    char kind[16];      /* "simclr" or "finetune" */
} sc_ckpt_pos;

/* Saves params (nparams entries of table) and buffers, the optimizer
 * state when opt is not NULL, and pos. Returns 0, or -1 with a message
 * naming the file; a failed save never replaces an existing file. */
int sc_ckpt_save(const char *path, const sc_model_desc *d, const sc_param_info *table, int nparams,
                 const float *params, const float *buffers, const sc_optim *opt,
                 const sc_ckpt_pos *pos, char *err, size_t errlen);

/* Loads into params (by name, for each entry of table that the file has;
 * entries the file lacks are left as they are and counted in *missing
 * when missing is not NULL) and buffers (all required), the optimizer
 * state when opt is not NULL (all required then), and pos when not NULL.
 * A file of another model (name or a tensor's shape differs), a truncated
 * or malformed file is an error: -1 with a message naming the file. */
int sc_ckpt_load(const char *path, const sc_model_desc *d, const sc_param_info *table, int nparams,
                 float *params, float *buffers, sc_optim *opt, sc_ckpt_pos *pos, int *missing,
                 char *err, size_t errlen);

/* Compatible additions: the same with extra string metadata, nmeta pairs
 * (keys other than the ones above; train uses "train/..." keys). On load,
 * vals[i] gets a malloc'd copy of the value of keys[i], or NULL when the
 * file lacks it; the caller frees them (also after an error, when they
 * are all NULL). */
int sc_ckpt_save_meta(const char *path, const sc_model_desc *d, const sc_param_info *table,
                      int nparams, const float *params, const float *buffers, const sc_optim *opt,
                      const sc_ckpt_pos *pos, int nmeta, const char *const *keys,
                      const char *const *vals, char *err, size_t errlen);
int sc_ckpt_load_meta(const char *path, const sc_model_desc *d, const sc_param_info *table,
                      int nparams, float *params, float *buffers, sc_optim *opt, sc_ckpt_pos *pos,
                      int *missing, int nmeta, const char *const *keys, char **vals, char *err,
                      size_t errlen);

#endif
