#include "mpi_run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int mpi_available(void)
{
    const char *h = getenv("SC_HAVE_MPI"), *e = getenv("SC_MPIEXEC");
    return h && !strcmp(h, "1") && e && *e;
}

int run_mpi(int k, char *const argv[], const char *log)
{
    static const char *const pre[] = {"--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader",
                                      "-np"};
    enum { NPRE = sizeof pre / sizeof *pre };
    int n = 0;
    while (argv[n])
        n++;
    char **a = calloc((size_t)(n + NPRE + 3), sizeof *a);
    char np[16];
    snprintf(np, sizeof np, "%d", k);
    if (!a)
        return -1;
    int o = 0;
    a[o++] = getenv("SC_MPIEXEC");
    for (int i = 0; i < NPRE; i++)
        a[o++] = (char *)pre[i];
    a[o++] = np;
    for (int i = 0; i < n; i++)
        a[o++] = argv[i];
    a[o] = NULL;
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    /* Under the sanitizers the ranks keep AddressSanitizer's and UBSan's
     * checks but not LeakSanitizer: Open MPI leaves its initialisation's
     * allocations (thousands, in plugins it unloads at MPI_Finalize, so
     * they cannot be told apart by a suppression) to the exit. */
    const char *san = getenv("SC_SANITIZE");
    int noleaks = san && !strcmp(san, "1");
    char *saved = getenv("ASAN_OPTIONS") ? strdup(getenv("ASAN_OPTIONS")) : NULL;
    if (noleaks) {
        char *o = xprintf("%s%sdetect_leaks=0", saved ? saved : "", saved && *saved ? ":" : "");
        if (o)
            setenv("ASAN_OPTIONS", o, 1);
        free(o);
    }
    int rc = run_log(a, log);
    if (noleaks) {
        if (saved)
            setenv("ASAN_OPTIONS", saved, 1);
        else
            unsetenv("ASAN_OPTIONS");
    }
    free(saved);
    free(a);
    return rc;
}
