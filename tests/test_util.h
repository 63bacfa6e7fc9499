/* Helpers the C tests share: running programs, temporary places, small
 * files. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Runs argv (NULL-terminated; argv[0] a path) with stdout and stderr
 * appended to log (NULL: inherited). Returns the exit status, or -1 if it
 * could not run or died from a signal. */
int run_log(char *const argv[], const char *log);
/* The same in two halves, so that programs run side by side: run_start
 * returns the child's pid (or -1), run_finish its exit status as above. */
pid_t run_start(char *const argv[], const char *log);
int run_finish(pid_t pid);

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
/* The same for any file, its size in *len (len may be NULL); the bytes
 * are followed by a '\0' not counted. */
char *slurp_len(const char *path, size_t *len);

#endif
