#include "abi_layout.h"

#include <stdio.h>

enum { K_I32, K_I64, K_F64, K_PTR };

static LLVMTypeRef kind_type(LLVMContextRef ctx, int kind)
{
    switch (kind) {
    case K_I32: return LLVMInt32TypeInContext(ctx);
    case K_I64: return LLVMInt64TypeInContext(ctx);
    case K_F64: return LLVMDoubleTypeInContext(ctx);
    default: return LLVMPointerTypeInContext(ctx, 0);
    }
}

/* Types, constants and the layout check of one struct, from its list. */
#define TY_F(kind, ctype, name) kind_type(ctx, K_##kind),
#define TY_A(kind, ctype, name, n) LLVMArrayType2(kind_type(ctx, K_##kind), n),
#define TY_S(stype, name) sc_llvm_type_##stype(ctx),
#define VAL_F(kind, ctype, name) v->name ? v->name : LLVMConstNull(kind_type(ctx, K_##kind)),
#define VAL_A(kind, ctype, name, n) v->name ? v->name : LLVMConstNull(LLVMArrayType2(kind_type(ctx, K_##kind), n)),
#define VAL_S(stype, name) v->name ? v->name : LLVMConstNull(sc_llvm_type_##stype(ctx)),
#define OFF_F(kind, ctype, name) {#name, offsetof(cur, name)},
#define OFF_A(kind, ctype, name, n) {#name, offsetof(cur, name)},
#define OFF_S(stype, name) {#name, offsetof(cur, name)},

typedef struct {
    const char *name;
    size_t offset;
} field_offset;

static int check(LLVMTargetDataRef td, LLVMTypeRef t, const char *tname, const field_offset *f, unsigned n,
                 size_t size, char *err, size_t errlen)
{
    if (LLVMCountStructElementTypes(t) != n) {
        snprintf(err, errlen, "%s: %u LLVM fields, %u C fields", tname, LLVMCountStructElementTypes(t), n);
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned long long o = LLVMOffsetOfElement(td, t, i);
        if (o != f[i].offset) {
            snprintf(err, errlen, "%s.%s: at byte %llu in LLVM, %zu in C", tname, f[i].name, o, f[i].offset);
            return -1;
        }
    }
    unsigned long long s = LLVMABISizeOfType(td, t);
    if (s != size) {
        snprintf(err, errlen, "%s: %llu bytes in LLVM, %zu in C", tname, s, size);
        return -1;
    }
    return 0;
}

#define SC_ABI_LLVM_DEFINE(T, LIST)                                                                   \
    LLVMTypeRef sc_llvm_type_##T(LLVMContextRef ctx)                                                  \
    {                                                                                                 \
        LLVMTypeRef f[] = {LIST(TY_F, TY_A, TY_S)};                                                   \
        return LLVMStructTypeInContext(ctx, f, (unsigned)(sizeof f / sizeof *f), 0);                   \
    }                                                                                                 \
    LLVMValueRef sc_llvm_const_##T(LLVMContextRef ctx, const T##_llvm *v)                             \
    {                                                                                                 \
        LLVMValueRef f[] = {LIST(VAL_F, VAL_A, VAL_S)};                                               \
        return LLVMConstNamedStruct(sc_llvm_type_##T(ctx), f, (unsigned)(sizeof f / sizeof *f));      \
    }                                                                                                 \
    static int check_##T(LLVMContextRef ctx, LLVMTargetDataRef td, char *err, size_t errlen)          \
    {                                                                                                 \
        typedef T cur;                                                                                \
        static const field_offset f[] = {LIST(OFF_F, OFF_A, OFF_S)};                                  \
        return check(td, sc_llvm_type_##T(ctx), #T, f, (unsigned)(sizeof f / sizeof *f), sizeof(cur), \
                     err, errlen);                                                                    \
    }

SC_ABI_LLVM_DEFINE(sc_param_info, SC_PARAM_INFO_FIELDS)
SC_ABI_LLVM_DEFINE(sc_train_defaults, SC_TRAIN_DEFAULTS_FIELDS)
SC_ABI_LLVM_DEFINE(sc_aug_info, SC_AUG_INFO_FIELDS)
SC_ABI_LLVM_DEFINE(sc_node_info, SC_NODE_INFO_FIELDS)
SC_ABI_LLVM_DEFINE(sc_model_desc, SC_MODEL_DESC_FIELDS)

int sc_abi_check_layout(LLVMContextRef ctx, LLVMTargetDataRef td, char *err, size_t errlen)
{
    return check_sc_param_info(ctx, td, err, errlen) || check_sc_train_defaults(ctx, td, err, errlen) ||
                   check_sc_aug_info(ctx, td, err, errlen) || check_sc_node_info(ctx, td, err, errlen) ||
                   check_sc_model_desc(ctx, td, err, errlen)
               ? -1
               : 0;
}
