/* The OpenBLAS core of a training binary (issue 14): Debian's OpenBLAS
 * 0.3.21 (DYNAMIC_ARCH) picks its kernels in a constructor at load time
 * from a CPU table that does not know every CPU (an Intel family 6 model
 * 207 comes out as "Prescott", SSE3: a tenth of its AVX-512 speed). So at
 * the very start of main, before MPI_Init and before any thread, a binary
 * whose OpenBLAS chose a core weaker than the CPU supports sets
 * OPENBLAS_CORETYPE and executes itself again (sc_blascore_ensure); a
 * user's own OPENBLAS_CORETYPE is always respected.
 *
 * The decision is a pure function of the CPU's features, the core
 * OpenBLAS chose and the environment (sc_blascore_choose), tested on a
 * table; the rest reads them from this process. */
#ifndef SC_BLASCORE_H
#define SC_BLASCORE_H

#include <stddef.h>

/* The vector features that decide which OpenBLAS x86-64 kernels can run. */
typedef struct {
    int avx, avx2, fma;
    int avx512f, avx512bw, avx512dq, avx512vl; /* all four: OpenBLAS's SkylakeX kernels */
    int avx512bf16;                            /* with them: Cooperlake */
} sc_cpu_simd;

/* The environment variable that marks the re-executed process; its value
 * is the core OpenBLAS had detected before (so `info` can say so). */
#define SC_BLASCORE_MARKER "SC_OPENBLAS_DETECTED"

/* This CPU's features (__builtin_cpu_supports). */
void sc_cpu_simd_probe(sc_cpu_simd *cpu);

/* The strongest OpenBLAS core this CPU runs ("Cooperlake", "SkylakeX",
 * "Haswell"), or NULL when it has no AVX2 + FMA. */
const char *sc_blascore_best(const sc_cpu_simd *cpu);

/* The core to set OPENBLAS_CORETYPE to before executing again, or NULL to
 * leave OpenBLAS as it is: NULL when env (the value of OPENBLAS_CORETYPE,
 * NULL when unset; an empty value counts as unset) is set, when marker
 * (the value of SC_BLASCORE_MARKER) is set (this process is the
 * re-execution: never twice), when OpenBLAS was not built with
 * DYNAMIC_ARCH (it would ignore the variable), when detected (the core
 * OpenBLAS chose, openblas_get_corename()) is a name this table does not
 * rank (a newer OpenBLAS knows better), or when it is already as strong
 * as sc_blascore_best(cpu). */
const char *sc_blascore_choose(const sc_cpu_simd *cpu, const char *detected, int dynamic_arch,
                               const char *env, const char *marker);

/* Why OpenBLAS runs the core it runs, for `info`: "detected by OpenBLAS",
 * "set by OPENBLAS_CORETYPE", "chosen by simclrc: OpenBLAS detected X",
 * or, when OpenBLAS runs something else than it was told, says so. core
 * is openblas_get_corename(), env and marker as for sc_blascore_choose. */
void sc_blascore_reason(const char *core, const char *env, const char *marker, char *buf, size_t len);

/* At the very start of main: when sc_blascore_choose says so, sets
 * OPENBLAS_CORETYPE and SC_BLASCORE_MARKER and executes /proc/self/exe
 * with argv again (it returns only when that fails, after a one-line
 * warning on stderr). */
void sc_blascore_ensure(char **argv);

#endif
