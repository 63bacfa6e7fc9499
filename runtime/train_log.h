/* The CSV logs of a training run (RUN/metrics.csv, RUN/knn.csv): one row
 * per write(2), so a killed process loses no row it reported, and a
 * resumed run first cuts the file back to the rows of the checkpoint it
 * resumes from, so no row appears twice. Rows start with the global step
 * and are appended in step order. */
#ifndef SC_TRAIN_LOG_H
#define SC_TRAIN_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int fd;
    char *path;
} sc_train_log;

/* Opens path for appending rows under the CSV header line `header`
 * (without its newline). keep_upto < 0: a fresh log (truncated, header
 * written). keep_upto >= 0: resuming; the header must match and only the
 * complete rows whose step is <= keep_upto are kept (a missing file is
 * created). Returns 0, or -1 with "PATH: error: ..." in err. */
int sc_train_log_open(sc_train_log *l, const char *path, const char *header, int64_t keep_upto,
                      char *err, size_t errlen);
/* Appends one row (printf format, the newline added). Returns 0, or -1
 * with a message (a full disk, say). */
int sc_train_log_row(sc_train_log *l, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* fsync, so the log is on disk before a checkpoint that refers to it. */
int sc_train_log_sync(sc_train_log *l, char *err, size_t errlen);
void sc_train_log_close(sc_train_log *l);

#endif
