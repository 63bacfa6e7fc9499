/* The ABI between a generated model object and the runtime.
 *
 * simclrc emits, for a model NAME, one object file that defines the symbols
 * declared here; the runtime (libsc_runtime.a, libsc_binary.a with main)
 * links against them. Everything is specialised: shapes are constants in
 * the generated code, and the description below tells the runtime the
 * sizes of the flat buffers it must allocate.
 *
 * Buffers (all float32, 64-byte aligned, allocated by the runtime):
 *   params   parameters, canonical order, at param_info[i].offset
 *   grads    gradients, same layout as params (written by sc_step)
 *   buffers  batchnorm running statistics, canonical order
 *   arena    scratch for activations (arena_floats floats)
 *   input    [2B, C, H, W]: view 0 of every image, then view 1
 *
 * sc_step runs one SimCLR training step: forward in training mode, NT-Xent loss,
 * backward into grads (overwritten, not accumulated), running statistics
 * updated. The optimizer is the runtime's. sc_encode runs the encoder in
 * eval mode (running statistics) on encode_batch images, writing
 * [encode_batch, feature_dim] features. */
#ifndef SC_ABI_H
#define SC_ABI_H

#include <stdint.h>

#include "sc_abi_version.h"

typedef struct {
    const char *name;       /* canonical name, e.g. "encoder.0.weight" */
    int32_t ndim;
    int32_t shape[4];
    int64_t numel;
    int64_t offset;         /* in floats, into params (or buffers) */
    int32_t init;           /* sc_init_kind */
    int32_t fan_in;
    int32_t no_decay;       /* bias or batchnorm parameter: no weight decay, no LARS */
    int32_t pad_;
} sc_param_info;

/* Training defaults from <train> (cli flags override them at run time). */
typedef struct {
    int32_t epochs;
    int32_t optimizer;      /* 0 sgd, 1 adam, 2 adamw, 3 lars */
    double lr;
    int32_t lr_scaling_linear;
    int32_t warmup_epochs;
    double momentum;
    double weight_decay;
    int32_t schedule;       /* 0 constant, 1 cosine */
    int32_t pad_;
    uint64_t seed;
} sc_train_defaults;

/* One augmentation of <augment>, in document order. */
typedef struct {
    int32_t kind;           /* 0 crop, 1 flip, 2 jitter, 3 grayscale, 4 blur, 5 normalize */
    int32_t size;           /* crop output size */
    int32_t kernel;         /* blur kernel */
    int32_t pad_;
    double p;
    double scale_min, scale_max, ratio_min, ratio_max;
    double brightness, contrast, saturation, hue;
    double sigma_min, sigma_max;
    double mean[3], std[3];
} sc_aug_info;

/* One node (kernel call) of sc_step, in call order: for `bench-step
 * --profile` and `info`. */
typedef struct {
    const char *name;       /* the node's label, e.g. "encoder.4.0.conv1" */
    const char *op;         /* "conv2d", "batchnorm_bwd"; fused: "batchnorm+relu" */
    const char *impl;       /* the kernel chosen: "im2col+gemm", "gemm-1x1", "loop", ... */
    double flops;
    int64_t parallel;       /* work items split over threads (1: runs on one thread) */
} sc_node_info;

typedef struct {
    int32_t abi_version;
    int32_t batch;          /* images per step; the step sees 2 * batch views */
    int32_t in_c, in_h, in_w;
    int32_t feature_dim;    /* encoder output width */
    int32_t proj_dim;       /* projection head output width */
    int32_t encode_batch;   /* images per sc_encode call */
    int32_t nparams, nbuffers;
    int32_t naugs;
    int32_t pad_;
    int64_t params_floats, buffers_floats;
    int64_t arena_floats;   /* for sc_step */
    int64_t encode_arena_floats;
    double flops_per_step;
    double temperature;
    const char *name;
    const char *compiler_version;
    const char *target_cpu;
    const char *target_features;
    const char *spec;       /* the model file's text */
    const sc_param_info *params;
    const sc_param_info *buffers;
    const sc_aug_info *augs;
    sc_train_defaults train;
    /* Supervised fine-tuning (sc_finetune_step): the encoder in training
     * mode, a linear classifier "classifier.weight" [nclasses, feature_dim]
     * and "classifier.bias", softmax cross-entropy. Its parameter table is
     * params followed by the two classifier tensors, at the same offsets,
     * so the params buffer must hold ft_params_floats floats. */
    int32_t finetune_batch;   /* images per sc_finetune_step */
    int32_t nclasses;
    int32_t nft_params;
    int32_t pad2_;
    int64_t ft_params_floats;
    int64_t ft_arena_floats;
    const sc_param_info *ft_params;
    /* Threads: the generated kernels split their outer loops over the
     * runtime's thread pool (sc_parallel.h); per-thread workspaces are
     * planned for up to max_threads threads. */
    int32_t max_threads;
    int32_t nstep_nodes;
    const sc_node_info *step_nodes;
    int32_t mpi;            /* built with simclrc --mpi: calls sc_comm.h */
    int32_t pad3_;
} sc_model_desc;

extern const sc_model_desc sc_model;

void sc_step(const float *params, float *grads, float *buffers, float *arena,
             const float *input, float *loss);
void sc_encode(const float *params, const float *buffers, float *arena,
               const float *input, float *features);
/* input: finetune_batch images [B, C, H, W], then B labels (class indices
 * 0..nclasses-1 stored as floats). grads gets the gradient of every
 * ft_params entry (the projection head's entries are left untouched). */
void sc_finetune_step(const float *params, float *grads, float *buffers, float *arena,
                      const float *input, float *loss);

#endif
