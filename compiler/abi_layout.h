/* The ABI structs of sc_abi.h as LLVM types and constants (abi_layout.c),
 * produced from the same field lists (sc_abi_fields.h) as the C
 * declarations. A struct's constant is built from its fields by name:
 *
 *     sc_param_info_llvm v = {0};
 *     v.name = ...; v.numel = ...;
 *     LLVMValueRef row = sc_llvm_const_sc_param_info(ctx, &v);
 *
 * Fields left NULL are zero (the pads; a NULL export_name). An array
 * field takes the array constant; a struct field the struct's constant. */
#ifndef SC_ABI_LAYOUT_H
#define SC_ABI_LAYOUT_H

#include <stddef.h>

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>

#include "sc_abi.h"

#define SC_ABI_VALUE_FIELD(kind, ctype, name) LLVMValueRef name;
#define SC_ABI_VALUE_ARRAY(kind, ctype, name, n) LLVMValueRef name;
#define SC_ABI_VALUE_STRUCT(stype, name) LLVMValueRef name;
#define SC_ABI_LLVM_DECLARE(T, LIST)                                                         \
    typedef struct { LIST(SC_ABI_VALUE_FIELD, SC_ABI_VALUE_ARRAY, SC_ABI_VALUE_STRUCT) } T##_llvm; \
    LLVMTypeRef sc_llvm_type_##T(LLVMContextRef ctx);                                        \
    LLVMValueRef sc_llvm_const_##T(LLVMContextRef ctx, const T##_llvm *v);

SC_ABI_LLVM_DECLARE(sc_param_info, SC_PARAM_INFO_FIELDS)
SC_ABI_LLVM_DECLARE(sc_train_defaults, SC_TRAIN_DEFAULTS_FIELDS)
SC_ABI_LLVM_DECLARE(sc_aug_info, SC_AUG_INFO_FIELDS)
SC_ABI_LLVM_DECLARE(sc_node_info, SC_NODE_INFO_FIELDS)
SC_ABI_LLVM_DECLARE(sc_model_desc, SC_MODEL_DESC_FIELDS)

/* Whether every struct's LLVM layout under td (element offsets, ABI size)
 * is its C layout (offsetof, sizeof) on this host: 0, or -1 with the first
 * difference in err. */
int sc_abi_check_layout(LLVMContextRef ctx, LLVMTargetDataRef td, char *err, size_t errlen);

#endif
