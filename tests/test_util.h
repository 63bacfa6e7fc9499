/* Helpers the C tests share: running programs, temporary places, small
 * files. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stddef.h>

/* Runs argv (NULL-terminated; argv[0] a path) with stdout and stderr
 * appended to log (NULL: inherited). Returns the exit status, or -1 if it
 * could not run or died from a signal. */
int run_log(char *const argv[], const char *log);

/* A new directory NAME.<random> under $TMPDIR (else /tmp), malloc'd, or
 * NULL with errno set. */
char *test_tmpdir(const char *name);
/* A new empty file NAME.<random> under $TMPDIR (else /tmp): its path in
 * path[len]; returns an open descriptor, or -1 with errno set. */
int test_tmpfile(const char *name, char *path, size_t len);

/* malloc'd printf. */
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The whole of a small text file, or NULL. */
char *slurp(const char *path);

#endif
