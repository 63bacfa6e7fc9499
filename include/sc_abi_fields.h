/* The ABI structs of sc_abi.h, each described once, as a list of fields.
 *
 * From these lists sc_abi.h declares the C structs the runtime reads, and
 * the compiler (compiler/abi_layout.c) builds the LLVM struct types and
 * constants it emits, field by field and by name, so the two cannot drift
 * apart. A list takes three macros:
 *   F(KIND, CTYPE, NAME)      a scalar field
 *   A(KIND, CTYPE, NAME, N)   an array of N scalars
 *   S(STYPE, NAME)            a struct of another list (STYPE_FIELDS)
 * KIND is the LLVM side's type: I32, I64, F64 or PTR (any pointer).
 * Every field sits at a multiple of its size with no implicit padding (the
 * pad_ fields are explicit), so the C and LLVM layouts are both the plain
 * sum of sizes; sc_abi.h asserts that, and compiler/abi_layout.c checks it
 * against the target's data layout. Changing a list changes the ABI: bump
 * SC_ABI_VERSION. */
#ifndef SC_ABI_FIELDS_H
#define SC_ABI_FIELDS_H

/* One parameter or buffer: canonical name, shape, place, initialisation,
 * role (sc_role.h) and the name `export` writes it under (torchvision's
 * key for a torchvision-style encoder's tensors, else NULL: the canonical
 * name stands). */
#define SC_PARAM_INFO_FIELDS(F, A, S) \
    F(PTR, const char *, name)        \
    F(PTR, const char *, export_name) \
    F(I32, int32_t, ndim)             \
    A(I32, int32_t, shape, 4)         \
    F(I32, int32_t, role)             \
    F(I64, int64_t, numel)            \
    F(I64, int64_t, offset)           \
    F(I32, int32_t, init)             \
    F(I32, int32_t, fan_in)           \
    F(I32, int32_t, no_decay)         \
    F(I32, int32_t, pad_)

/* Training defaults from <train>. */
#define SC_TRAIN_DEFAULTS_FIELDS(F, A, S) \
    F(I32, int32_t, epochs)               \
    F(I32, int32_t, optimizer)            \
    F(F64, double, lr)                    \
    F(I32, int32_t, lr_scaling_linear)    \
    F(I32, int32_t, warmup_epochs)        \
    F(F64, double, momentum)              \
    F(F64, double, weight_decay)          \
    F(I32, int32_t, schedule)             \
    F(I32, int32_t, pad_)                 \
    F(I64, uint64_t, seed)

/* One augmentation of <augment>. */
#define SC_AUG_INFO_FIELDS(F, A, S) \
    F(I32, int32_t, kind)           \
    F(I32, int32_t, size)           \
    F(I32, int32_t, kernel)         \
    F(I32, int32_t, pad_)           \
    F(F64, double, p)               \
    F(F64, double, scale_min)       \
    F(F64, double, scale_max)       \
    F(F64, double, ratio_min)       \
    F(F64, double, ratio_max)       \
    F(F64, double, brightness)      \
    F(F64, double, contrast)        \
    F(F64, double, saturation)      \
    F(F64, double, hue)             \
    F(F64, double, sigma_min)       \
    F(F64, double, sigma_max)       \
    A(F64, double, mean, 3)         \
    A(F64, double, std, 3)

/* One node (kernel call) of sc_step. */
#define SC_NODE_INFO_FIELDS(F, A, S) \
    F(PTR, const char *, name)       \
    F(PTR, const char *, op)         \
    F(PTR, const char *, impl)       \
    F(F64, double, flops)            \
    F(I64, int64_t, parallel)

/* The model description. */
#define SC_MODEL_DESC_FIELDS(F, A, S)              \
    F(I32, int32_t, abi_version)                   \
    F(I32, int32_t, batch)                         \
    F(I32, int32_t, in_c)                          \
    F(I32, int32_t, in_h)                          \
    F(I32, int32_t, in_w)                          \
    F(I32, int32_t, feature_dim)                   \
    F(I32, int32_t, proj_dim)                      \
    F(I32, int32_t, encode_batch)                  \
    F(I32, int32_t, nparams)                       \
    F(I32, int32_t, nbuffers)                      \
    F(I32, int32_t, naugs)                         \
    F(I32, int32_t, pad_)                          \
    F(I64, int64_t, params_floats)                 \
    F(I64, int64_t, buffers_floats)                \
    F(I64, int64_t, arena_floats)                  \
    F(I64, int64_t, encode_arena_floats)           \
    F(F64, double, flops_per_step)                 \
    F(F64, double, temperature)                    \
    F(PTR, const char *, name)                     \
    F(PTR, const char *, compiler_version)         \
    F(PTR, const char *, target_cpu)               \
    F(PTR, const char *, target_features)          \
    F(PTR, const char *, spec)                     \
    F(PTR, const sc_param_info *, params)          \
    F(PTR, const sc_param_info *, buffers)         \
    F(PTR, const sc_aug_info *, augs)              \
    S(sc_train_defaults, train)                    \
    F(I32, int32_t, finetune_batch)                \
    F(I32, int32_t, nclasses)                      \
    F(I32, int32_t, nft_params)                    \
    F(I32, int32_t, pad2_)                         \
    F(I64, int64_t, ft_params_floats)              \
    F(I64, int64_t, ft_arena_floats)               \
    F(PTR, const sc_param_info *, ft_params)       \
    F(I32, int32_t, max_threads)                   \
    F(I32, int32_t, nstep_nodes)                   \
    F(PTR, const sc_node_info *, step_nodes)       \
    F(I32, int32_t, mpi)                           \
    F(I32, int32_t, pad3_)                         \
    F(PTR, const char *, loss)                     \
    F(F64, double, tau_base)

#endif
