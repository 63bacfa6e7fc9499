/* test_rundir: the run-directory module (include/sc_rundir.h).
 * - mkdir -p makes every level, accepts what exists, refuses a file in
 *   the way (ENOTDIR);
 * - the lock refuses a second holder while the first holds it, and is
 *   free again once closed;
 * - an atomic file replaces the old one only when complete: a write that
 *   fails (the file-size limit, EFBIG) or an abort leaves the old file
 *   byte for byte and no temporary file;
 * - stale temporary files of one name are removed, others kept. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sc_rundir.h"
#include "test_util.h"

static char *dir;

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int is_dir(const char *path)
{
    struct stat st;
    return !stat(path, &st) && S_ISDIR(st.st_mode);
}

/* Files in d whose name contains s. */
static int count_named(const char *d, const char *s)
{
    DIR *dp = opendir(d);
    assert_non_null(dp);
    int n = 0;
    for (struct dirent *e; (e = readdir(dp));)
        n += strstr(e->d_name, s) != NULL;
    closedir(dp);
    return n;
}

static void test_make_dirs(void **st)
{
    (void)st;
    char *deep = xprintf("%s/a/b/c", dir), *file = xprintf("%s/file", dir), *under = xprintf("%s/file/x", dir);
    assert_int_equal(sc_make_dirs(deep), 0);
    assert_true(is_dir(deep));
    assert_int_equal(sc_make_dirs(deep), 0); /* exists: fine */
    put(file, "x");
    errno = 0;
    assert_int_equal(sc_make_dirs(file), -1); /* a file where the directory should be */
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(sc_make_dirs(under), -1);
    free(deep), free(file), free(under);
}

static void test_lock(void **st)
{
    (void)st;
    char *run = xprintf("%s/run", dir);
    char err[512];
    sc_rundir a, b;
    assert_int_equal(sc_rundir_open(&a, run, err, sizeof err), SC_RUNDIR_OK);
    assert_true(is_dir(run));
    /* flock belongs to the open file, so a second open in this process
     * meets the lock as another process would. */
    assert_int_equal(sc_rundir_open(&b, run, err, sizeof err), SC_RUNDIR_BUSY);
    assert_non_null(strstr(err, "another training run is using this run directory"));
    assert_non_null(strstr(err, run));
    assert_int_equal(b.lock_fd, -1);
    sc_rundir_close(&a);
    assert_int_equal(sc_rundir_open(&b, run, err, sizeof err), SC_RUNDIR_OK);
    char p[PATH_MAX];
    assert_int_equal(sc_rundir_path(&b, "x.csv", p, sizeof p), 0);
    char *want = xprintf("%s/x.csv", run);
    assert_string_equal(p, want);
    char tiny[8];
    assert_int_equal(sc_rundir_path(&b, "x.csv", tiny, sizeof tiny), -1);
    sc_rundir_close(&b);
    sc_rundir_close(&b); /* closing twice is harmless */
    free(run), free(want);
}

static void test_open_refuses_file(void **st)
{
    (void)st;
    char *file = xprintf("%s/notadir", dir);
    put(file, "x");
    char err[512];
    sc_rundir r;
    assert_int_equal(sc_rundir_open(&r, file, err, sizeof err), SC_RUNDIR_CANNOT_CREATE);
    assert_non_null(strstr(err, "cannot create the run directory"));
    free(file);
}

static void test_atomic_replaces(void **st)
{
    (void)st;
    char *path = xprintf("%s/atomic.txt", dir);
    put(path, "old");
    char err[512];
    sc_atomic_file f;
    assert_int_equal(sc_atomic_begin(&f, path, err, sizeof err), 0);
    sc_atomic_write(&f, "new ", 4);
    sc_atomic_write(&f, "text", 4);
    char *mid = slurp(path);
    assert_string_equal(mid, "old"); /* nothing visible before the commit */
    assert_int_equal(sc_atomic_commit(&f, err, sizeof err), 0);
    char *now = slurp(path);
    assert_string_equal(now, "new text");
    assert_int_equal(count_named(dir, "atomic.txt.tmp."), 0);
    free(path), free(mid), free(now);
}

static void test_atomic_failure_keeps_old(void **st)
{
    (void)st;
    char *path = xprintf("%s/keep.txt", dir);
    put(path, "the old file");
    char err[512];
    sc_atomic_file f;
    /* A real write failure: past RLIMIT_FSIZE write(2) fails with EFBIG
     * (SIGXFSZ ignored). */
    struct rlimit saved, small = {1024, 0};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small.rlim_max = saved.rlim_max;
    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(sc_atomic_begin(&f, path, err, sizeof err), 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    static char big[4096];
    memset(big, 'x', sizeof big);
    sc_atomic_write(&f, big, sizeof big);
    int rc = sc_atomic_commit(&f, err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "write failed"));
    char *now = slurp(path);
    assert_string_equal(now, "the old file");
    assert_int_equal(count_named(dir, "keep.txt.tmp."), 0);
    /* An abort leaves it too. */
    assert_int_equal(sc_atomic_begin(&f, path, err, sizeof err), 0);
    sc_atomic_write(&f, "half", 4);
    sc_atomic_abort(&f);
    free(now);
    now = slurp(path);
    assert_string_equal(now, "the old file");
    assert_int_equal(count_named(dir, "keep.txt.tmp."), 0);
    /* A directory that does not exist: a message naming the file. */
    char *nowhere = xprintf("%s/no/such/dir/f", dir);
    assert_int_equal(sc_atomic_begin(&f, nowhere, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot create"));
    assert_non_null(strstr(err, nowhere));
    free(path), free(now), free(nowhere);
}

static void test_remove_stale(void **st)
{
    (void)st;
    char *run = xprintf("%s/stale", dir);
    char err[512];
    sc_rundir r;
    assert_int_equal(sc_rundir_open(&r, run, err, sizeof err), SC_RUNDIR_OK);
    char *a = xprintf("%s/checkpoint.safetensors.tmp.123", run), *b = xprintf("%s/other.tmp.5", run),
         *c = xprintf("%s/checkpoint.safetensors", run);
    put(a, "a"), put(b, "b"), put(c, "c");
    sc_rundir_remove_stale(&r, "checkpoint.safetensors");
    assert_int_equal(access(a, F_OK), -1);
    assert_int_equal(access(b, F_OK), 0);
    assert_int_equal(access(c, F_OK), 0);
    sc_rundir_close(&r);
    free(run), free(a), free(b), free(c);
}

static int setup(void **st)
{
    (void)st;
    dir = test_tmpdir("test_rundir");
    return dir ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    char *cmd = xprintf("rm -rf '%s'", dir);
    int rc = system(cmd);
    free(cmd);
    free(dir);
    return rc ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_dirs),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_open_refuses_file),
        cmocka_unit_test(test_atomic_replaces),
        cmocka_unit_test(test_atomic_failure_keeps_old),
        cmocka_unit_test(test_remove_stale),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
