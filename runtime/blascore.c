/* The OpenBLAS core of a training binary: see sc_blascore.h. */
#define _GNU_SOURCE
#include "sc_blascore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cblas.h>

/* What a core's sgemm kernels need, weakest first. */
enum { LEVEL_OLD, LEVEL_AVX, LEVEL_AVX2, LEVEL_AVX512, LEVEL_AVX512_BF16 };

/* OpenBLAS 0.3.21's x86-64 DYNAMIC_ARCH cores (driver/others/dynamic.c)
 * by the instructions of their kernels. A name not here is not ranked. */
static const struct {
    const char *name;
    int level;
} cores[] = {
    {"Unknown", LEVEL_OLD},       {"Katmai", LEVEL_OLD},         {"Coppermine", LEVEL_OLD},
    {"Northwood", LEVEL_OLD},     {"Prescott", LEVEL_OLD},       {"Banias", LEVEL_OLD},
    {"Atom", LEVEL_OLD},          {"Core2", LEVEL_OLD},          {"Penryn", LEVEL_OLD},
    {"Dunnington", LEVEL_OLD},    {"Nehalem", LEVEL_OLD},        {"Athlon", LEVEL_OLD},
    {"Opteron", LEVEL_OLD},       {"Opteron_SSE3", LEVEL_OLD},   {"Barcelona", LEVEL_OLD},
    {"Nano", LEVEL_OLD},          {"Bobcat", LEVEL_OLD},         {"Sandybridge", LEVEL_AVX},
    {"Bulldozer", LEVEL_AVX},     {"Piledriver", LEVEL_AVX},     {"Steamroller", LEVEL_AVX},
    {"Excavator", LEVEL_AVX},     {"Haswell", LEVEL_AVX2},       {"Zen", LEVEL_AVX2},
    {"SkylakeX", LEVEL_AVX512},   {"Cooperlake", LEVEL_AVX512_BF16},
    {"SapphireRapids", LEVEL_AVX512_BF16},
};

static int level_of(const char *core)
{
    for (size_t i = 0; i < sizeof cores / sizeof *cores; i++)
        if (!strcasecmp(core, cores[i].name))
            return cores[i].level;
    return -1;
}

void sc_cpu_simd_probe(sc_cpu_simd *cpu)
{
    memset(cpu, 0, sizeof *cpu);
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    cpu->avx = __builtin_cpu_supports("avx");
    cpu->avx2 = __builtin_cpu_supports("avx2");
    cpu->fma = __builtin_cpu_supports("fma");
    cpu->avx512f = __builtin_cpu_supports("avx512f");
    cpu->avx512bw = __builtin_cpu_supports("avx512bw");
    cpu->avx512dq = __builtin_cpu_supports("avx512dq");
    cpu->avx512vl = __builtin_cpu_supports("avx512vl");
    cpu->avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
}

const char *sc_blascore_best(const sc_cpu_simd *cpu)
{
    if (!cpu->avx2 || !cpu->fma)
        return NULL;
    if (cpu->avx512f && cpu->avx512bw && cpu->avx512dq && cpu->avx512vl)
        return cpu->avx512bf16 ? "Cooperlake" : "SkylakeX";
    return "Haswell";
}

static int set(const char *s)
{
    return s && *s;
}

const char *sc_blascore_choose(const sc_cpu_simd *cpu, const char *detected, int dynamic_arch,
                               const char *env, const char *marker)
{
    const char *best = sc_blascore_best(cpu);
    if (set(env) || set(marker) || !dynamic_arch || !best || !detected)
        return NULL;
    int have = level_of(detected);
    return have >= 0 && have < level_of(best) ? best : NULL;
}

void sc_blascore_reason(const char *core, const char *env, const char *marker, char *buf, size_t len)
{
    if (!set(env))
        snprintf(buf, len, "detected by OpenBLAS");
    else if (strcasecmp(core, env))
        snprintf(buf, len, "OPENBLAS_CORETYPE=%s%s, which this OpenBLAS did not take", env,
                 set(marker) ? " (set by the binary)" : "");
    else if (set(marker))
        snprintf(buf, len, "chosen by simclrc: OpenBLAS detected %s on this CPU", marker);
    else
        snprintf(buf, len, "set by OPENBLAS_CORETYPE");
}

void sc_blascore_ensure(char **argv)
{
    sc_cpu_simd cpu;
    sc_cpu_simd_probe(&cpu);
    const char *detected = openblas_get_corename();
    const char *core = sc_blascore_choose(&cpu, detected, strstr(openblas_get_config(), "DYNAMIC_ARCH") != NULL,
                                          getenv("OPENBLAS_CORETYPE"), getenv(SC_BLASCORE_MARKER));
    if (!core)
        return;
    /* The marker first: whatever happens next, this never runs twice. */
    if (setenv(SC_BLASCORE_MARKER, detected, 1) || setenv("OPENBLAS_CORETYPE", core, 1)) {
        fprintf(stderr, "warning: cannot set OPENBLAS_CORETYPE=%s (OpenBLAS detected %s): %s\n", core,
                detected, strerror(errno));
        return;
    }
    execv("/proc/self/exe", argv);
    fprintf(stderr, "warning: OpenBLAS detected %s; executing again with OPENBLAS_CORETYPE=%s failed (%s): "
                    "its BLAS calls stay slow\n", detected, core, strerror(errno));
    unsetenv("OPENBLAS_CORETYPE");
}
