#include "train_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc_err.h"

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The whole file, NUL-terminated; NULL with errno set on failure. */
static char *slurp(int fd, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st))
        return NULL;
    size_t n = (size_t)st.st_size, got = 0;
    char *buf = malloc(n + 1);
    if (!buf)
        return NULL;
    while (got < n) {
        ssize_t k = pread(fd, buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = 0;
    *len = got;
    return buf;
}

/* Bytes of buf to keep: the header line and the complete rows whose step
 * (first field) is <= keep_upto, up to the first row that is not. */
static size_t kept_bytes(const char *buf, size_t len, int64_t keep_upto)
{
    const char *nl = memchr(buf, '\n', len);
    size_t keep = (size_t)(nl - buf) + 1;
    while (keep < len) {
        const char *row = buf + keep;
        nl = memchr(row, '\n', len - keep);
        if (!nl)
            break; /* a partial row from a killed writer */
        char *end;
        errno = 0;
        long long step = strtoll(row, &end, 10);
        if (end == row || *end != ',' || errno || step > keep_upto)
            break;
        keep = (size_t)(nl - buf) + 1;
    }
    return keep;
}

int sc_train_log_open(sc_train_log *l, const char *path, const char *header, int64_t keep_upto,
                      char *err, size_t errlen)
{
    l->fd = -1;
    l->path = strdup(path);
    if (!l->path) {
        sc_errf(err, errlen, "%s: error: out of memory", path);
        return -1;
    }
    int flags = O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | (keep_upto < 0 ? O_TRUNC : 0);
    l->fd = open(path, flags, 0644);
    if (l->fd < 0) {
        sc_errf(err, errlen, "%s: error: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    size_t hl = strlen(header), len = 0;
    char *buf = slurp(l->fd, &len);
    if (!buf) {
        sc_errf(err, errlen, "%s: error: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    int rc = 0;
    if (len == 0) {
        rc = write_all(l->fd, header, hl) || write_all(l->fd, "\n", 1);
    } else if (len <= hl || memcmp(buf, header, hl) || buf[hl] != '\n') {
        free(buf);
        sc_errf(err, errlen, "%s: error: not this program's log (the first line is not '%s'); move it away "
               "or use another run directory", path, header);
        goto fail;
    } else {
        size_t keep = kept_bytes(buf, len, keep_upto);
        if (keep < len)
            rc = ftruncate(l->fd, (off_t)keep);
    }
    free(buf);
    if (rc) {
        sc_errf(err, errlen, "%s: error: cannot write: %s", path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    sc_train_log_close(l);
    return -1;
}

int sc_train_log_row(sc_train_log *l, char *err, size_t errlen, const char *fmt, ...)
{
    char row[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(row, sizeof row - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof row - 1) {
        sc_errf(err, errlen, "%s: error: a row does not fit the row buffer", l->path);
        return -1;
    }
    row[n++] = '\n';
    /* One write: with O_APPEND the row lands whole or, on error, is cut
     * off at the end where a resume drops it. */
    if (write_all(l->fd, row, (size_t)n)) {
        sc_errf(err, errlen, "%s: error: cannot write: %s", l->path, strerror(errno));
        return -1;
    }
    return 0;
}

int sc_train_log_sync(sc_train_log *l, char *err, size_t errlen)
{
    if (fsync(l->fd) && errno != EINVAL) {
        sc_errf(err, errlen, "%s: error: cannot sync: %s", l->path, strerror(errno));
        return -1;
    }
    return 0;
}

void sc_train_log_close(sc_train_log *l)
{
    if (l->fd >= 0)
        close(l->fd);
    free(l->path);
    l->fd = -1;
    l->path = NULL;
}
