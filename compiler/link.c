#include "link.h"

#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* SC_CC, SC_OPENBLAS_LIBS, SC_LINK_FLAGS, SC_HAVE_MPI, SC_MPI_LIBS:
 * written by compiler/CMakeLists.txt for this build tree. */
#include "link_config.h"
#include "locate.h"

extern char **environ;

#define MAX_ARGS 64
#define OUTPUT_MAX 4096   /* of the driver's diagnostics, kept for the message */

static void seterr(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!err || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

typedef struct {
    char *argv[MAX_ARGS + 1];
    int n;
    char *owned[MAX_ARGS];   /* strings to free */
    int nowned;
} args;

static int push(args *a, char *s)
{
    if (a->n >= MAX_ARGS)
        return -1;
    a->argv[a->n++] = s;
    a->argv[a->n] = NULL;
    return 0;
}

/* Appends the words of s, split at any of seps; empty words are dropped. */
static int push_words(args *a, const char *s, const char *seps)
{
    char *copy = strdup(s);
    if (!copy || a->nowned >= MAX_ARGS) {
        free(copy);
        return -1;
    }
    a->owned[a->nowned++] = copy;
    for (char *save = NULL, *w = strtok_r(copy, seps, &save); w; w = strtok_r(NULL, seps, &save))
        if (push(a, w))
            return -1;
    return 0;
}

static char *join(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static void args_free(args *a)
{
    for (int i = 0; i < a->nowned; i++)
        free(a->owned[i]);
}

/* The directory part of path ("." when there is none). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* Checks up front what the driver would report less clearly. */
static int check_paths(const char *obj, const char *out, char *err, size_t errlen)
{
    struct stat st;
    if (access(obj, R_OK)) {
        seterr(err, errlen, "cannot read the object file %s: %s", obj, strerror(errno));
        return -1;
    }
    if (!*out) {
        seterr(err, errlen, "the output path is empty");
        return -1;
    }
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        seterr(err, errlen, "cannot write %s: it is a directory", out);
        return -1;
    }
    char *dir = dir_of(out);
    if (!dir) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    if (stat(dir, &st)) {
        seterr(err, errlen, "cannot write %s: directory %s: %s", out, dir, strerror(errno));
        rc = -1;
    } else if (!S_ISDIR(st.st_mode)) {
        seterr(err, errlen, "cannot write %s: %s is not a directory", out, dir);
        rc = -1;
    } else if (access(dir, W_OK | X_OK)) {
        seterr(err, errlen, "cannot write %s: directory %s: %s", out, dir, strerror(errno));
        rc = -1;
    }
    free(dir);
    return rc;
}

/* Runs a->argv with stdout and stderr captured into buf (NUL-terminated,
 * truncated to len - 1). Returns 0 with *status (exit status) or *sig (the
 * signal that killed it, else 0) set, or -1 with errno set if it could not
 * run. */
static int run_captured(args *a, char *buf, size_t len, int *status, int *sig)
{
    int fd[2];
    buf[0] = '\0';
    if (pipe(fd))
        return -1;
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa)) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 2);
    if (fd[1] > 2)
        posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    int e = posix_spawnp(&pid, a->argv[0], &fa, NULL, a->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (e) {
        close(fd[0]);
        errno = e;
        return -1;
    }
    size_t n = 0;
    char chunk[1024];
    for (;;) {
        ssize_t r = read(fd[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t take = (size_t)r < len - 1 - n ? (size_t)r : len - 1 - n;
        memcpy(buf + n, chunk, take);
        n += take;
    }
    buf[n] = '\0';
    close(fd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    *sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return 0;
}

int sc_link_have_mpi(void) { return SC_HAVE_MPI; }

int sc_link_exe(const char *obj_path, const char *out_path, int mpi, char *err, size_t errlen)
{
    if (check_paths(obj_path, out_path, err, errlen))
        return -1;
    const char *cc = getenv("CC");
    if (!cc || !*cc)
        cc = SC_CC;
    char rtdir[PATH_MAX];
    if (sc_locate_runtime(rtdir, sizeof rtdir, err, errlen))
        return -1;

    args a = {0};
    const char *comm_lib = mpi ? "libsc_comm_mpi.a" : "libsc_comm_serial.a";
    char *bin = join(rtdir, "libsc_binary.a"), *rt = join(rtdir, "libsc_runtime.a");
    char *comm = join(rtdir, comm_lib);
    int rc = -1;
    if (!bin || !rt || !comm) {
        seterr(err, errlen, "out of memory");
        goto done;
    }
    if (mpi && !SC_HAVE_MPI) {
        seterr(err, errlen, "this simclrc was built without MPI");
        goto done;
    }
    if (access(bin, R_OK) || access(rt, R_OK) || access(comm, R_OK)) {
        seterr(err, errlen, "cannot find the runtime libraries libsc_binary.a, %s and libsc_runtime.a in %s "
               "(a partial install? SIMCLRC_RUNTIME_DIR names the directory that holds them)", comm_lib, rtdir);
        goto done;
    }
    if (push_words(&a, cc, " \t") || a.n == 0) {
        seterr(err, errlen, "the C compiler command '%s' is empty or too long", cc);
        goto done;
    }
    const char *drv = a.argv[0];
    if (push(&a, (char *)obj_path) || push(&a, "-o") || push(&a, (char *)out_path) ||
        push(&a, bin) || push(&a, comm) || push(&a, rt) || push_words(&a, SC_OPENBLAS_LIBS, ";") ||
        (mpi && push_words(&a, SC_MPI_LIBS, ";")) ||
        push(&a, "-lm") || push(&a, "-lpthread") || push_words(&a, SC_LINK_FLAGS, ";")) {
        seterr(err, errlen, "the link command for %s is too long", out_path);
        goto done;
    }
    char *out = malloc(OUTPUT_MAX);
    if (!out) {
        seterr(err, errlen, "out of memory");
        goto done;
    }
    int st = 0, sig = 0, ran = run_captured(&a, out, OUTPUT_MAX, &st, &sig);
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    if (ran < 0) {
        seterr(err, errlen, "cannot run the C compiler '%s' to link %s: %s (set CC to a C compiler driver)",
               drv, out_path, strerror(errno));
    } else if (sig) {
        seterr(err, errlen, "linking %s: the C compiler '%s' was killed by signal %d%s%s", out_path, drv,
               sig, n ? ":\n" : "", out);
    } else if (st) {
        seterr(err, errlen, "linking %s failed (%s exited with status %d)%s%s", out_path, drv, st,
               n ? ":\n" : "", out);
    } else {
        rc = 0;
    }
    free(out);
done:
    args_free(&a);
    free(bin);
    free(rt);
    free(comm);
    return rc;
}
