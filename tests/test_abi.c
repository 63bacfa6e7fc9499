/* The ABI described once (sc_abi_fields.h): the LLVM layout the compiler
 * emits is the C layout the runtime reads (field offsets from the target's
 * data layout against offsetof), and a layout that differs is caught; the
 * roles and torchvision keys the compiler gives the tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

#include "abi_layout.h"
#include "model.h"
#include "pipeline.h"
#include "torchvision.h"

/* The host's data layout, as simclrc targets it by default. */
static void test_layout_host(void **state)
{
    (void)state;
    assert_int_equal(LLVMInitializeNativeTarget(), 0);
    char *triple = LLVMGetDefaultTargetTriple(), *msg = NULL;
    LLVMTargetRef target;
    if (LLVMGetTargetFromTriple(triple, &target, &msg))
        fail_msg("%s", msg);
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, "", "", LLVMCodeGenLevelNone, LLVMRelocPIC,
                                                      LLVMCodeModelDefault);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMContextRef ctx = LLVMContextCreate();
    char err[256] = "";
    if (sc_abi_check_layout(ctx, td, err, sizeof err))
        fail_msg("%s", err);
    /* The same offsets, spelled out for one field of each kind. */
    LLVMTypeRef p = sc_llvm_type_sc_param_info(ctx), d = sc_llvm_type_sc_model_desc(ctx);
    assert_int_equal(LLVMOffsetOfElement(td, p, 1), offsetof(sc_param_info, export_name));
    assert_int_equal(LLVMOffsetOfElement(td, p, 4), offsetof(sc_param_info, role));
    assert_int_equal(LLVMOffsetOfElement(td, d, 26), offsetof(sc_model_desc, train));
    assert_int_equal(LLVMABISizeOfType(td, d), sizeof(sc_model_desc));
    LLVMContextDispose(ctx);
    LLVMDisposeTargetData(td);
    LLVMDisposeTargetMachine(tm);
    LLVMDisposeMessage(triple);
}

/* 32-bit pointers move every field after the first pointer: the check
 * must say so, naming the field. */
static void test_layout_mismatch(void **state)
{
    (void)state;
    LLVMTargetDataRef td = LLVMCreateTargetData("e-p:32:32-i64:64-f64:64");
    LLVMContextRef ctx = LLVMContextCreate();
    char err[256] = "";
    assert_int_equal(sc_abi_check_layout(ctx, td, err, sizeof err), -1);
    assert_non_null(strstr(err, "sc_param_info.export_name"));
    LLVMContextDispose(ctx);
    LLVMDisposeTargetData(td);
}

static void load(const char *rel, sc_compiled *c, sc_spec *m)
{
    char path[4096];
    const char *src = getenv("SC_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    assert_int_equal(sc_model_load(path, m), 0);
    sc_passes_opts o = {.batch = 2, .classes = 10, .last = SC_PASS_FINETUNE};
    assert_int_equal(sc_passes_run(m, &o, c), 0);
}

static const sc_tensor *find(const sc_graph *g, const char *name)
{
    int t = sc_graph_find(g, name);
    assert_true(t >= 0);
    return &g->t[t];
}

/* The roles of encoder, head and classifier tensors; resnet-small has
 * three stages, so no torchvision keys. */
static void test_roles(void **state)
{
    (void)state;
    sc_spec m;
    sc_compiled c;
    load("models/resnet-small.xml", &c, &m);
    assert_int_equal(sc_torchvision_stage0(&m, &c.g), -1);
    assert_int_equal(find(&c.g, "encoder.0.weight")->role, SC_ROLE_ENCODER);
    assert_int_equal(find(&c.g, "encoder.1.running_var")->role, SC_ROLE_ENCODER);
    assert_int_equal(find(&c.g, "head.0.weight")->role, SC_ROLE_HEAD);
    assert_int_equal(find(&c.ft, "head.0.weight")->role, SC_ROLE_HEAD);
    assert_int_equal(find(&c.ft, "encoder.0.weight")->role, SC_ROLE_ENCODER);
    assert_int_equal(find(&c.ft, "classifier.weight")->role, SC_ROLE_CLASSIFIER);
    assert_int_equal(find(&c.ft, "classifier.bias")->role, SC_ROLE_CLASSIFIER);
    for (int i = 0; i < c.g.nt; i++)
        if (c.g.t[i].kind != SC_T_PARAM && c.g.t[i].kind != SC_T_BUFFER)
            assert_int_equal(c.g.t[i].role, SC_ROLE_NONE);
    sc_compiled_free(&c);
    sc_model_free(&m);
}

/* resnet18-stl10: a torchvision ResNet with a maxpool, stages from layer 4. */
static void test_keys(void **state)
{
    (void)state;
    sc_spec m;
    sc_compiled c;
    load("models/resnet18-stl10.xml", &c, &m);
    int s0 = sc_torchvision_stage0(&m, &c.g);
    assert_int_equal(s0, 4);
    char key[256];
    assert_int_equal(sc_torchvision_key("encoder.0.weight", s0, key, sizeof key), 0);
    assert_string_equal(key, "conv1.weight");
    assert_int_equal(sc_torchvision_key("encoder.1.running_mean", s0, key, sizeof key), 0);
    assert_string_equal(key, "bn1.running_mean");
    assert_int_equal(sc_torchvision_key("encoder.4.0.downsample.1.weight", s0, key, sizeof key), 0);
    assert_string_equal(key, "layer1.0.downsample.1.weight");
    assert_int_equal(sc_torchvision_key("encoder.8.weight", s0, key, sizeof key), -1);
    assert_int_equal(sc_torchvision_key("head.0.weight", s0, key, sizeof key), -1);
    sc_compiled_free(&c);
    sc_model_free(&m);
}

/* resnet18-cifar: no maxpool, the stages start at layer 3. */
static void test_keys_cifar_stem(void **state)
{
    (void)state;
    sc_spec m;
    sc_compiled c;
    load("models/resnet18-cifar.xml", &c, &m);
    int s0 = sc_torchvision_stage0(&m, &c.g);
    assert_int_equal(s0, 3);
    char key[256];
    assert_int_equal(sc_torchvision_key("encoder.6.1.conv2.weight", s0, key, sizeof key), 0);
    assert_string_equal(key, "layer4.1.conv2.weight");
    sc_compiled_free(&c);
    sc_model_free(&m);
}

/* A spec whose encoder is not a torchvision ResNet has no keys; nor has
 * one that is, but names a layer (its tensors have no key). */
static void test_no_keys(void **state)
{
    (void)state;
    sc_spec m;
    sc_compiled c;
    load("tests/specs/named.xml", &c, &m);
    assert_int_equal(sc_torchvision_stage0(&m, &c.g), -1);
    sc_compiled_free(&c);
    sc_model_free(&m);

    load("models/resnet18-cifar.xml", &c, &m);
    assert_int_equal(sc_torchvision_stage0(&m, &c.g), 3);
    int t = sc_graph_find(&c.g, "encoder.0.weight");
    assert_true(t >= 0);
    sc_tensor_rename(&c.g.t[t], "stem.weight");   /* as <conv name="stem"> would name it */
    assert_int_equal(sc_torchvision_stage0(&m, &c.g), -1);
    sc_compiled_free(&c);
    sc_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_host),
        cmocka_unit_test(test_layout_mismatch),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_keys_cifar_stem),
        cmocka_unit_test(test_no_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
