#define _GNU_SOURCE
#include "sc_rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_err.h"

#define LOCK_NAME ".lock"
#define TMP_INFIX ".tmp."

/* ---- directories ---- */

int sc_make_dirs(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    /* Every prefix that ends a component, the whole path last; each must
     * end up a directory (mkdir's EEXIST alone would accept a file). */
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        struct stat st;
        if (mkdir(buf, 0777) && errno != EEXIST)
            return -1;
        if (stat(buf, &st))
            return -1;
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        buf[i] = saved;
    }
    return 0;
}

/* ---- atomic files ---- */

/* fsync of the directory holding path, so that a rename into it is
 * durable. File systems that cannot sync a directory (EINVAL) are let be. */
static int sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) {
        errno = ENOMEM;
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc && saved == EINVAL)
        rc = 0;
    errno = saved;
    return rc;
}

static void atomic_free(sc_atomic_file *f)
{
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
    f->fd = -1;
}

int sc_atomic_begin(sc_atomic_file *f, const char *path, char *err, size_t errlen)
{
    f->fd = -1;
    f->err = 0;
    f->tmp = NULL;
    f->path = strdup(path);
    if (!f->path || asprintf(&f->tmp, "%s" TMP_INFIX "%ld", path, (long)getpid()) < 0) {
        f->tmp = NULL;
        atomic_free(f);
        sc_errf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        sc_errf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        atomic_free(f);
        return -1;
    }
    return 0;
}

void sc_atomic_write(sc_atomic_file *f, const void *p, size_t n)
{
    const char *c = p;
    while (n && !f->err) {
        ssize_t k = write(f->fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            f->err = k < 0 ? errno : EIO;
            break;
        }
        c += k;
        n -= (size_t)k;
    }
}

int sc_atomic_commit(sc_atomic_file *f, char *err, size_t errlen)
{
    int e = f->err;
    if (!e && fsync(f->fd))
        e = errno;
    if (close(f->fd) && !e)
        e = errno;
    f->fd = -1;
    if (!e && rename(f->tmp, f->path))
        e = errno;
    int rc = 0;
    if (e) {
        unlink(f->tmp);
        sc_errf(err, errlen, "%s: write failed: %s", f->path, strerror(e));
        rc = -1;
    } else if (sync_parent(f->path)) {
        /* The new file is in place but the rename may not survive a crash. */
        sc_errf(err, errlen, "%s: cannot sync its directory: %s", f->path, strerror(errno));
        rc = -1;
    }
    atomic_free(f);
    return rc;
}

void sc_atomic_abort(sc_atomic_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->tmp)
        unlink(f->tmp);
    atomic_free(f);
}

/* ---- run directories ---- */

int sc_rundir_path(const sc_rundir *r, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", r->dir, name);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int sc_rundir_open(sc_rundir *r, const char *dir, char *err, size_t errlen)
{
    char lock[PATH_MAX];
    r->lock_fd = -1;
    if (!(r->dir = strdup(dir))) {
        sc_errf(err, errlen, "%s: error: out of memory", dir);
        return SC_RUNDIR_NO_MEMORY;
    }
    int rc = SC_RUNDIR_OK;
    if (sc_rundir_path(r, LOCK_NAME, lock, sizeof lock)) {
        sc_errf(err, errlen, "%s: error: path too long", dir);
        rc = SC_RUNDIR_TOO_LONG;
    } else if (sc_make_dirs(dir)) {
        sc_errf(err, errlen, "%s: error: cannot create the run directory: %s", dir, strerror(errno));
        rc = SC_RUNDIR_CANNOT_CREATE;
    } else if ((r->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        sc_errf(err, errlen, "%s: error: cannot write in the run directory: %s", dir, strerror(errno));
        rc = SC_RUNDIR_CANNOT_WRITE;
    } else if (flock(r->lock_fd, LOCK_EX | LOCK_NB)) {
        sc_errf(err, errlen, "%s: error: another training run is using this run directory", dir);
        rc = SC_RUNDIR_BUSY;
    }
    if (rc)
        sc_rundir_close(r);
    return rc;
}

void sc_rundir_remove_stale(const sc_rundir *r, const char *name)
{
    DIR *dp = opendir(r->dir);
    if (!dp)
        return;
    size_t n = strlen(name), k = strlen(TMP_INFIX);
    for (struct dirent *e; (e = readdir(dp));) {
        char p[PATH_MAX];
        if (!strncmp(e->d_name, name, n) && !strncmp(e->d_name + n, TMP_INFIX, k) &&
            !sc_rundir_path(r, e->d_name, p, sizeof p))
            unlink(p);
    }
    closedir(dp);
}

void sc_rundir_close(sc_rundir *r)
{
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    free(r->dir);
    r->dir = NULL;
    r->lock_fd = -1;
}
