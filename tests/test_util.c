#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *slurp_len(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    for (size_t r; s && (r = fread(s + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (n + 1 == cap) {
            char *t = realloc(s, cap *= 2);
            if (!t)
                free(s);
            s = t;
        }
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    if (s && len)
        *len = n;
    return s;
}

char *slurp(const char *path)
{
    return slurp_len(path, NULL);
}

pid_t run_start(char *const argv[], const char *log)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (log) {
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                _exit(127);
            close(fd);
        }
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int run_finish(pid_t pid)
{
    if (pid < 0)
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int run_log(char *const argv[], const char *log)
{
    return run_finish(run_start(argv, log));
}

/* mkdtemp/mkstemp want a template ending in six X's, replaced in place. */
static char *template_for(const char *name)
{
    const char *tmp = getenv("TMPDIR");
    return xprintf("%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
}

char *test_tmpdir(const char *name)
{
    char *t = template_for(name);
    if (t && !mkdtemp(t)) {
        int e = errno;
        free(t);
        errno = e;
        return NULL;
    }
    return t;
}

int test_tmpfile(const char *name, char *path, size_t len)
{
    char *t = template_for(name);
    if (!t)
        return -1;
    int fd = mkstemp(t);
    if (fd >= 0 && (size_t)snprintf(path, len, "%s", t) >= len) {
        close(fd);
        unlink(t);
        fd = -1;
        errno = ENAMETOOLONG;
    }
    free(t);
    return fd;
}
