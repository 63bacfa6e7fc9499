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
 * sc_step runs one training step: forward in training mode, the loss (NT-Xent;
 * BYOL: online and target networks, the target forward only, in buffers),
 * backward into grads (overwritten, not accumulated), running statistics
 * updated. The optimizer is the runtime's. sc_encode runs the encoder in
 * eval mode (running statistics) on encode_batch images, writing
 * [encode_batch, feature_dim] features. */
#ifndef SC_ABI_H
#define SC_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "sc_abi_fields.h"
#include "sc_abi_version.h"
#include "sc_role.h"

/* The structs, declared from their field lists (sc_abi_fields.h). */
#define SC_ABI_C_FIELD(kind, ctype, name) ctype name;
#define SC_ABI_C_ARRAY(kind, ctype, name, n) ctype name[n];
#define SC_ABI_C_STRUCT(stype, name) stype name;
#define SC_ABI_C_STRUCT_OF(list) list(SC_ABI_C_FIELD, SC_ABI_C_ARRAY, SC_ABI_C_STRUCT)

/* One parameter or buffer.
 *   name         canonical name, e.g. "encoder.0.weight"
 *   export_name  the key `export` writes it under ("conv1.weight", "layer1.0.bn1.running_mean")
 *                when the encoder is torchvision-style and the tensor is the encoder's; else NULL
 *   role         sc_role: SC_ROLE_ENCODER, SC_ROLE_HEAD or SC_ROLE_CLASSIFIER
 *   offset       in floats, into params (or buffers)
 *   init         sc_init_kind; no_decay: a bias or batchnorm parameter (no weight decay, no LARS) */
typedef struct { SC_ABI_C_STRUCT_OF(SC_PARAM_INFO_FIELDS) } sc_param_info;

/* Training defaults from <train> (cli flags override them at run time):
 * optimizer 0 sgd, 1 adam, 2 adamw, 3 lars; schedule 0 constant, 1 cosine. */
typedef struct { SC_ABI_C_STRUCT_OF(SC_TRAIN_DEFAULTS_FIELDS) } sc_train_defaults;

/* One augmentation of <augment>, in document order: kind 0 crop, 1 flip,
 * 2 jitter, 3 grayscale, 4 blur, 5 normalize; size is the crop's output
 * size, kernel the blur's. */
typedef struct { SC_ABI_C_STRUCT_OF(SC_AUG_INFO_FIELDS) } sc_aug_info;

/* One node (kernel call) of sc_step, in call order: for `bench-step
 * --profile` and `info`. name is the node's label ("encoder.4.0.conv1"),
 * op "conv2d", "batchnorm_bwd", fused "batchnorm+relu"; impl the kernel
 * chosen ("im2col+gemm", "gemm-1x1", "loop", ...); parallel the work items
 * split over threads (1: runs on one thread). */
typedef struct { SC_ABI_C_STRUCT_OF(SC_NODE_INFO_FIELDS) } sc_node_info;

/* The model:
 *   batch           images per step; the step sees 2 * batch views
 *   feature_dim     encoder output width; proj_dim the projection head's
 *   encode_batch    images per sc_encode call
 *   arena_floats    for sc_step; encode_arena_floats for sc_encode
 *   spec            the model file's text
 *   tau_base        BYOL (buffers hold SC_ROLE_TARGET tensors): the target's EMA
 *                   base rate (sc_ema.h); 0 for NT-Xent
 * Supervised fine-tuning (sc_finetune_step): the encoder in training mode,
 * a linear classifier "classifier.weight" [nclasses, feature_dim] and
 * "classifier.bias", softmax cross-entropy, finetune_batch images per
 * step. Its parameter table ft_params is params followed by the two
 * classifier tensors, at the same offsets, so the params buffer must hold
 * ft_params_floats floats.
 * Threads: the generated kernels split their outer loops over the
 * runtime's thread pool (sc_parallel.h); per-thread workspaces are planned
 * for up to max_threads threads. mpi: built with simclrc --mpi (calls
 * sc_comm.h). */
typedef struct { SC_ABI_C_STRUCT_OF(SC_MODEL_DESC_FIELDS) } sc_model_desc;

/* No implicit padding: each struct is the sum of its fields' sizes, so its
 * layout is the same for any C compiler and for LLVM's (checked there
 * against the target's data layout, compiler/abi_layout.c). */
#define SC_ABI_SIZE_FIELD(kind, ctype, name) +sizeof(ctype)
#define SC_ABI_SIZE_ARRAY(kind, ctype, name, n) +(n) * sizeof(ctype)
#define SC_ABI_SIZE_STRUCT(stype, name) +sizeof(stype)
#define SC_ABI_SIZE_OF(list) (0 list(SC_ABI_SIZE_FIELD, SC_ABI_SIZE_ARRAY, SC_ABI_SIZE_STRUCT))
_Static_assert(sizeof(sc_param_info) == SC_ABI_SIZE_OF(SC_PARAM_INFO_FIELDS), "sc_param_info has padding");
_Static_assert(sizeof(sc_train_defaults) == SC_ABI_SIZE_OF(SC_TRAIN_DEFAULTS_FIELDS), "sc_train_defaults has padding");
_Static_assert(sizeof(sc_aug_info) == SC_ABI_SIZE_OF(SC_AUG_INFO_FIELDS), "sc_aug_info has padding");
_Static_assert(sizeof(sc_node_info) == SC_ABI_SIZE_OF(SC_NODE_INFO_FIELDS), "sc_node_info has padding");
_Static_assert(sizeof(sc_model_desc) == SC_ABI_SIZE_OF(SC_MODEL_DESC_FIELDS), "sc_model_desc has padding");
#if UINTPTR_MAX == UINT64_MAX
/* ABI 4 on 64-bit targets: a change of these means a new SC_ABI_VERSION. */
_Static_assert(sizeof(sc_param_info) == 72 && offsetof(sc_param_info, numel) == 40, "sc_param_info (ABI 4)");
_Static_assert(sizeof(sc_model_desc) == 296 && offsetof(sc_model_desc, train) == 160, "sc_model_desc (ABI 4)");
#endif

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
