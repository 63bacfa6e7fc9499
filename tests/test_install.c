/* The installed compiler (issue 16): `cmake --install` into a temporary
 * prefix, the prefix moved elsewhere, then from an unrelated directory the
 * installed simclrc compiles resnet-small by name, and its binary runs
 * `info` and two training steps on a tiny dataset. Nothing may come from
 * the build or source tree:
 *
 * - as root, the run happens in a private mount namespace where both trees
 *   are covered by empty tmpfs mounts, so any path into them fails;
 * - SIMCLRC_RUNTIME_DIR points at decoy libraries (empty files) that
 *   cannot link, so the runtime must come from next to the executable;
 * - no RUNPATH of the installed simclrc or the training binary names
 *   either tree.
 *
 * Also: a simclrc copied away from its runtime says where it looked, and
 * SIMCLRC_RUNTIME_DIR then rescues it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "stl10_files.h"
#include "test_util.h"

static char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("%s is not set (run through ctest)", name);
    char resolved[4096];
    return strdup(realpath(v, resolved) ? resolved : v);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Fails with the log's text when status is not want. */
static void expect_status(int status, int want, const char *what, const char *log)
{
    if (status != want) {
        char *text = slurp(log);
        fail_msg("%s: exit status %d, want %d; output:\n%s", what, status, want, text ? text : "(none)");
    }
}

/* Whether the dynamic section of exe names a RUNPATH or RPATH inside one
 * of the trees (readelf's output in log). */
static void expect_no_tree_runpath(const char *exe, const char *src, const char *bin, const char *tmp)
{
    char *log = xprintf("%s/readelf.log", tmp);
    unlink(log);
    char *argv[] = {"/usr/bin/readelf", "-d", (char *)exe, NULL};
    if (access(argv[0], X_OK)) {
        print_message("readelf not found: RUNPATH not checked\n");
    } else {
        expect_status(run_log(argv, log), 0, "readelf -d", log);
        char *text = slurp(log);
        assert_non_null(text);
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
            if ((strstr(line, "RUNPATH") || strstr(line, "RPATH")) && (strstr(line, src) || strstr(line, bin)))
                fail_msg("%s keeps a path into the build or source tree: %s", exe, line);
        free(text);
    }
    free(log);
}

/* Whether this process may make a private mount namespace (root, and
 * unshare(1) present and working). */
static int can_hide_trees(const char *tmp)
{
    if (geteuid() != 0 || access("/usr/bin/unshare", X_OK))
        return 0;
    char *log = xprintf("%s/unshare-probe.log", tmp);
    char *argv[] = {"/usr/bin/unshare", "-m", "/bin/true", NULL};
    int ok = run_log(argv, log) == 0;
    free(log);
    return ok;
}

static void test_installed_prefix_moved(void **state)
{
    (void)state;
    char *src = env_or_fail("SC_SOURCE_DIR"), *bin = env_or_fail("SC_BINARY_DIR");
    char *cmake = env_or_fail("SC_CMAKE");
    char *tmp = test_tmpdir("sc_install");
    assert_non_null(tmp);
    if (!strncmp(tmp, src, strlen(src)) || !strncmp(tmp, bin, strlen(bin)))
        fail_msg("the temporary directory %s lies inside the trees; set TMPDIR elsewhere", tmp);
    char *prefix = xprintf("%s/prefix", tmp), *moved = xprintf("%s/moved", tmp);
    char *log = xprintf("%s/install.log", tmp);

    char *install[] = {cmake, "--install", bin, "--prefix", prefix, NULL};
    expect_status(run_log(install, log), 0, "cmake --install", log);
    assert_int_equal(rename(prefix, moved), 0);
    struct stat st;
    assert_int_not_equal(stat(prefix, &st), 0);

    /* The dataset, the decoy runtime and an unrelated working directory. */
    char *data = xprintf("%s/data", tmp), *decoy = xprintf("%s/decoy", tmp), *work = xprintf("%s/work", tmp);
    assert_int_equal(mkdir(data, 0755), 0);
    assert_int_equal(mkdir(decoy, 0755), 0);
    assert_int_equal(mkdir(work, 0755), 0);
    assert_int_equal(stl10_write_dataset(data, 20, 20, 32), 0);
    static const char *const decoys[] = {"libsc_binary.a", "libsc_runtime.a", "libsc_comm_serial.a"};
    for (size_t i = 0; i < 3; i++) {
        char *p = xprintf("%s/%s", decoy, decoys[i]);
        write_text(p, "");
        free(p);
    }

    /* The run, as one script so that it can run inside the namespace. */
    char *script = xprintf("%s/run.sh", tmp);
    char *text = xprintf(
        "set -e\n"
        "cd '%s'\n"
        "SIMCLRC_RUNTIME_DIR='%s' '%s/bin/simclrc' --batch=8 --threads=1 resnet-small 2>compile.err\n"
        "cat compile.err\n"
        "grep -F 'model resnet-small: %s/share/simclrc/models/resnet-small.xml' compile.err\n"
        "'%s/bin/simclrc' --emit=graph resnet-small >graph.txt\n"  /* ./resnet-small exists now */
        "grep -q '^graph resnet-small:' graph.txt\n"
        "./resnet-small info >info.txt\n"
        "grep -q '^model  *resnet-small$' info.txt\n"
        "./resnet-small train --data '%s' --out run --max-steps 2 --knn-every 0 --threads 1\n"
        "'%s/bin/simclrc' --list-models >models.txt\n"
        "grep -qx resnet18-stl10 models.txt\n",
        work, decoy, moved, moved, moved, data, moved);
    write_text(script, text);
    free(text);
    char *run_log_path = xprintf("%s/run.log", tmp);
    if (can_hide_trees(tmp)) {
        /* The build tree first: it may lie inside the source tree. */
        char *inner = xprintf("mount -t tmpfs sc-hidden '%s' && mount -t tmpfs sc-hidden '%s' && "
                              "test ! -e '%s/CMakeLists.txt' && exec sh '%s'", bin, src, src, script);
        char *argv[] = {"/usr/bin/unshare", "-m", "/bin/sh", "-c", inner, NULL};
        expect_status(run_log(argv, run_log_path), 0, "the installed compiler with the trees hidden",
                      run_log_path);
        free(inner);
    } else {
        print_message("not root or no unshare: the trees stay visible (decoy runtime and RUNPATH checks only)\n");
        char *argv[] = {"/bin/sh", script, NULL};
        expect_status(run_log(argv, run_log_path), 0, "the installed compiler", run_log_path);
    }
    char *metrics = xprintf("%s/run/metrics.csv", work);
    char *rows = slurp(metrics);
    assert_non_null(rows);
    int lines = 0;
    for (char *p = rows; *p; p++)
        lines += *p == '\n';
    if (lines != 3 || !strstr(rows, "\n1,1,") || !strstr(rows, "\n2,1,"))
        fail_msg("metrics.csv should hold a header and steps 1 and 2:\n%s", rows);
    free(rows);
    free(metrics);

    char *simclrc = xprintf("%s/bin/simclrc", moved), *exe = xprintf("%s/resnet-small", work);
    expect_no_tree_runpath(simclrc, src, bin, tmp);
    expect_no_tree_runpath(exe, src, bin, tmp);

    /* A simclrc without its runtime says where it looked ... */
    char *lonely_dir = xprintf("%s/lonely", tmp), *lonely_bin = xprintf("%s/lonely/bin", tmp);
    char *lonely = xprintf("%s/simclrc", lonely_bin), *model = xprintf("%s/share/simclrc/models/resnet-small.xml", moved);
    char *out = xprintf("%s/rs", work), *err_log = xprintf("%s/lonely.log", tmp);
    assert_int_equal(mkdir(lonely_dir, 0755), 0);
    assert_int_equal(mkdir(lonely_bin, 0755), 0);
    char *cp[] = {"/bin/cp", simclrc, lonely, NULL};
    expect_status(run_log(cp, NULL), 0, "cp", log);
    char *alone[] = {"/usr/bin/env", "-u", "SIMCLRC_RUNTIME_DIR", lonely, "--batch=8", "--threads=1", "-o", out,
                     model, NULL};
    expect_status(run_log(alone, err_log), 1, "simclrc without its runtime", err_log);
    char *said = slurp(err_log);
    char *where = xprintf("looked in %s/lonely/bin/../lib/simclrc", tmp);
    if (!said || !strstr(said, where) || !strstr(said, "SIMCLRC_RUNTIME_DIR"))
        fail_msg("want a message with '%s' and SIMCLRC_RUNTIME_DIR, got:\n%s", where, said ? said : "");
    free(said);
    /* ... and SIMCLRC_RUNTIME_DIR rescues it. */
    char *env = xprintf("SIMCLRC_RUNTIME_DIR=%s/lib/simclrc", moved);
    char *rescued[] = {"/usr/bin/env", env, lonely, "--batch=8", "--threads=1", "-o", out, model, NULL};
    unlink(err_log);
    expect_status(run_log(rescued, err_log), 0, "simclrc with SIMCLRC_RUNTIME_DIR", err_log);
    assert_int_equal(access(out, X_OK), 0);

    char *rm[] = {"/bin/rm", "-rf", tmp, NULL};
    run_log(rm, NULL);
    free(env);
    free(where);
    free(err_log);
    free(out);
    free(model);
    free(lonely);
    free(lonely_bin);
    free(lonely_dir);
    free(exe);
    free(simclrc);
    free(run_log_path);
    free(script);
    free(work);
    free(decoy);
    free(data);
    free(log);
    free(moved);
    free(prefix);
    free(tmp);
    free(cmake);
    free(bin);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_installed_prefix_moved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
