/* The OpenBLAS core chooser (runtime/blascore.c) as a pure function, on a
 * table of (CPU features, core OpenBLAS detected, environment) cases, and
 * the reason `info` gives. It never sets OPENBLAS_CORETYPE: this process's
 * own OpenBLAS is left as the machine has it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sc_blascore.h"

static const sc_cpu_simd none = {0};
static const sc_cpu_simd avx = {.avx = 1};
static const sc_cpu_simd avx2 = {.avx = 1, .avx2 = 1, .fma = 1};
static const sc_cpu_simd avx2_nofma = {.avx = 1, .avx2 = 1};
static const sc_cpu_simd skx = {1, 1, 1, 1, 1, 1, 1, 0};
static const sc_cpu_simd cpx = {1, 1, 1, 1, 1, 1, 1, 1};
/* AVX-512F without BW (Knights Landing): OpenBLAS's SkylakeX kernels need BW. */
static const sc_cpu_simd knl = {.avx = 1, .avx2 = 1, .fma = 1, .avx512f = 1};

static void best(void **state)
{
    (void)state;
    assert_null(sc_blascore_best(&none));
    assert_null(sc_blascore_best(&avx));
    assert_null(sc_blascore_best(&avx2_nofma));
    assert_string_equal(sc_blascore_best(&avx2), "Haswell");
    assert_string_equal(sc_blascore_best(&knl), "Haswell");
    assert_string_equal(sc_blascore_best(&skx), "SkylakeX");
    assert_string_equal(sc_blascore_best(&cpx), "Cooperlake");
}

static void choose(void **state)
{
    (void)state;
    static const struct {
        const sc_cpu_simd *cpu;
        const char *detected;
        int dynamic;
        const char *env, *marker, *want; /* want NULL: leave OpenBLAS alone */
    } t[] = {
        /* The Intel family 6 model 207 of issue 14 (AVX512_BF16) seen as Prescott. */
        {&cpx, "Prescott", 1, NULL, NULL, "Cooperlake"},
        {&skx, "Prescott", 1, NULL, NULL, "SkylakeX"},
        {&skx, "Haswell", 1, NULL, NULL, "SkylakeX"},
        {&cpx, "Zen", 1, NULL, NULL, "Cooperlake"},
        {&cpx, "SkylakeX", 1, NULL, NULL, "Cooperlake"},
        {&avx2, "Sandybridge", 1, NULL, NULL, "Haswell"},
        {&avx2, "Core2", 1, NULL, NULL, "Haswell"},
        {&avx2, "prescott", 1, NULL, NULL, "Haswell"},   /* OpenBLAS compares without case */
        {&avx2, "Prescott", 1, "", NULL, "Haswell"},     /* empty: unset */
        /* Already as strong as the CPU allows, or stronger. */
        {&cpx, "Cooperlake", 1, NULL, NULL, NULL},
        {&cpx, "SapphireRapids", 1, NULL, NULL, NULL},
        {&skx, "SkylakeX", 1, NULL, NULL, NULL},
        {&skx, "Cooperlake", 1, NULL, NULL, NULL},
        {&avx2, "Haswell", 1, NULL, NULL, NULL},
        {&avx2, "Zen", 1, NULL, NULL, NULL},
        {&avx2, "SkylakeX", 1, NULL, NULL, NULL},
        /* Nothing better to offer. */
        {&avx, "Sandybridge", 1, NULL, NULL, NULL},
        {&avx, "Prescott", 1, NULL, NULL, NULL},
        {&none, "Prescott", 1, NULL, NULL, NULL},
        /* The user's choice stands, even a weaker one. */
        {&cpx, "Prescott", 1, "Prescott", NULL, NULL},
        {&cpx, "Haswell", 1, "Haswell", NULL, NULL},
        {&cpx, "Prescott", 1, "bogus", NULL, NULL},
        /* The re-executed process never executes again. */
        {&cpx, "Prescott", 1, NULL, "Prescott", NULL},
        {&cpx, "Prescott", 1, "Cooperlake", "Prescott", NULL},
        /* An OpenBLAS built for one target ignores OPENBLAS_CORETYPE. */
        {&cpx, "Prescott", 0, NULL, NULL, NULL},
        /* A core this table does not rank (a newer OpenBLAS) is trusted. */
        {&cpx, "GraniteRapids", 1, NULL, NULL, NULL},
        {&cpx, NULL, 1, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        const char *got = sc_blascore_choose(t[i].cpu, t[i].detected, t[i].dynamic, t[i].env, t[i].marker);
        if (!t[i].want != !got || (got && strcmp(got, t[i].want)))
            fail_msg("case %zu (detected %s, env %s, marker %s): chose %s, want %s", i,
                     t[i].detected ? t[i].detected : "NULL", t[i].env ? t[i].env : "unset",
                     t[i].marker ? t[i].marker : "unset", got ? got : "nothing", t[i].want ? t[i].want : "nothing");
    }
}

static void reason(void **state)
{
    (void)state;
    char b[256];
    sc_blascore_reason("Cooperlake", NULL, NULL, b, sizeof b);
    assert_string_equal(b, "detected by OpenBLAS");
    sc_blascore_reason("Cooperlake", "", NULL, b, sizeof b);
    assert_string_equal(b, "detected by OpenBLAS");
    sc_blascore_reason("Haswell", "Haswell", NULL, b, sizeof b);
    assert_string_equal(b, "set by OPENBLAS_CORETYPE");
    sc_blascore_reason("Haswell", "haswell", NULL, b, sizeof b);
    assert_string_equal(b, "set by OPENBLAS_CORETYPE");
    sc_blascore_reason("Cooperlake", "Cooperlake", "Prescott", b, sizeof b);
    assert_string_equal(b, "chosen by simclrc: OpenBLAS detected Prescott on this CPU");
    sc_blascore_reason("Cooperlake", "bogus", NULL, b, sizeof b);
    assert_string_equal(b, "OPENBLAS_CORETYPE=bogus, which this OpenBLAS did not take");
    sc_blascore_reason("Prescott", "Cooperlake", "Prescott", b, sizeof b);
    assert_string_equal(b, "OPENBLAS_CORETYPE=Cooperlake (set by the binary), which this OpenBLAS did not take");
    /* A marker inherited without the variable (the exec failed): as detected. */
    sc_blascore_reason("Prescott", NULL, "Prescott", b, sizeof b);
    assert_string_equal(b, "detected by OpenBLAS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(best),
        cmocka_unit_test(choose),
        cmocka_unit_test(reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
