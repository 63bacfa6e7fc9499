/* The files a run leaves behind: the run directory (created, locked, its
 * paths) and files written whole or not at all. Used by train, finetune
 * and every safetensors writer (checkpoints, step dumps, exports). The
 * CSV logs in a run directory are train_log.h's. Functions never print:
 * they return -1 with errno set, or with a message in err. */
#ifndef SC_RUNDIR_H
#define SC_RUNDIR_H

#include <stddef.h>

/* mkdir -p. 0, or -1 with errno set: ENOTDIR when the path or one of its
 * parents exists and is not a directory, ENAMETOOLONG past PATH_MAX. */
int sc_make_dirs(const char *path);

/* An atomic file: written to PATH.tmp.PID, then fsync, rename over PATH
 * and fsync of the directory, so PATH is always the old file or the whole
 * new one. Messages are "PATH: WHAT: REASON" (callers add "error:"). */
typedef struct {
    int fd;
    int err;        /* errno of the first failed write, 0 while all went well */
    char *path, *tmp;
} sc_atomic_file;

/* Creates the temporary file. 0, or -1 with a message. */
int sc_atomic_begin(sc_atomic_file *f, const char *path, char *err, size_t errlen);
/* Appends n bytes; a failure is kept and reported by sc_atomic_commit. */
void sc_atomic_write(sc_atomic_file *f, const void *p, size_t n);
/* Puts the file in place. 0, or -1 with a message, the temporary file
 * removed and PATH as it was (unless only the directory's fsync failed:
 * then the new file is in place but may not survive a crash). Frees f
 * either way. */
int sc_atomic_commit(sc_atomic_file *f, char *err, size_t errlen);
/* Drops the temporary file; PATH stays as it was. */
void sc_atomic_abort(sc_atomic_file *f);

/* A run directory: exclusive to one process while open (flock on
 * DIR/.lock; a killed process's lock goes with it). */
typedef struct {
    char *dir;
    int lock_fd;
} sc_rundir;

enum { SC_RUNDIR_OK = 0, SC_RUNDIR_TOO_LONG, SC_RUNDIR_CANNOT_CREATE, SC_RUNDIR_CANNOT_WRITE,
       SC_RUNDIR_BUSY, SC_RUNDIR_NO_MEMORY };

/* Creates dir (mkdir -p) and takes its lock. Returns SC_RUNDIR_OK, or
 * another SC_RUNDIR_* with "DIR: error: ..." in err and r closed. */
int sc_rundir_open(sc_rundir *r, const char *dir, char *err, size_t errlen);
/* DIR/NAME into buf (len bytes). 0, or -1 when it does not fit. */
int sc_rundir_path(const sc_rundir *r, const char *name, char *buf, size_t len);
/* Removes NAME's temporary files (NAME.tmp.*) that a writer killed
 * mid-save left. Call with the lock held. */
void sc_rundir_remove_stale(const sc_rundir *r, const char *name);
/* Releases the lock. r may be zeroed or closed already. */
void sc_rundir_close(sc_rundir *r);

#endif
