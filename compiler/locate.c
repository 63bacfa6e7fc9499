#include "locate.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SC_REL_RUNTIME, SC_REL_MODELS, SC_BUILD_TREE, SC_BUILD_RUNTIME_DIR,
 * SC_SOURCE_MODELS_DIR: written by compiler/CMakeLists.txt. */
#include "link_config.h"

int sc_self_dir(char *dir, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    if ((size_t)snprintf(dir, len, "%s", exe) >= len)
        return -1;
    return 0;
}

/* Whether this executable lies inside the build tree it was built in
 * (simclrc, or a test linking the compiler); compared after resolving
 * links, so a path spelled differently still matches. */
static int in_build_tree(const char *self)
{
    char tree[PATH_MAX];
    if (!realpath(SC_BUILD_TREE, tree))
        return 0;
    size_t n = strlen(tree);
    return !strncmp(self, tree, n) && (self[n] == '/' || self[n] == '\0');
}

/* dir = self/rel, normalised by realpath when it exists. Returns whether
 * dir/probe is readable. */
static int relative(const char *self, const char *rel, const char *probe, char *dir, size_t len)
{
    char joined[PATH_MAX], file[PATH_MAX + 64];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", self, rel) >= sizeof joined)
        return 0;
    char resolved[PATH_MAX];
    snprintf(dir, len, "%s", realpath(joined, resolved) ? resolved : joined);
    snprintf(file, sizeof file, "%s/%s", dir, probe);
    return access(file, R_OK) == 0;
}

int sc_locate_runtime(char *dir, size_t len, char *err, size_t errlen)
{
    char self[PATH_MAX], near[PATH_MAX] = "";
    int have_self = sc_self_dir(self, sizeof self) == 0;
    if (have_self && relative(self, SC_REL_RUNTIME, "libsc_runtime.a", near, sizeof near)) {
        snprintf(dir, len, "%s", near);
        return 0;
    }
    const char *env = getenv("SIMCLRC_RUNTIME_DIR");
    if (env && *env) {
        snprintf(dir, len, "%s", env);
        return 0;
    }
    if (have_self && in_build_tree(self)) {
        snprintf(dir, len, "%s", SC_BUILD_RUNTIME_DIR);
        return 0;
    }
    snprintf(err, errlen,
             "cannot find the runtime libraries (libsc_runtime.a and friends): looked in %s "
             "(next to this simclrc) and $SIMCLRC_RUNTIME_DIR (not set); install simclrc with "
             "'cmake --install' or set SIMCLRC_RUNTIME_DIR to the directory that holds them",
             have_self ? near : "PREFIX/lib/simclrc (the executable's own path is unknown)");
    return -1;
}

int sc_locate_models(char *dir, size_t len, char *err, size_t errlen)
{
    char self[PATH_MAX], near[PATH_MAX] = "";
    int have_self = sc_self_dir(self, sizeof self) == 0;
    if (have_self && relative(self, SC_REL_MODELS, "simclr.xsd", near, sizeof near)) {
        snprintf(dir, len, "%s", near);
        return 0;
    }
    if (have_self && in_build_tree(self)) {
        snprintf(dir, len, "%s", SC_SOURCE_MODELS_DIR);
        return 0;
    }
    snprintf(err, errlen, "cannot find the shipped models: looked in %s (next to this simclrc)",
             have_self ? near : "PREFIX/share/simclrc/models (the executable's own path is unknown)");
    return -1;
}

int sc_resolve_model(const char *arg, char *path, size_t len)
{
    char models[PATH_MAX], err[16];
    snprintf(path, len, "%s", arg);
    size_t n = strlen(arg);
    int has_ext = n > 4 && !strcmp(arg + n - 4, ".xml");
    /* A path, or an .xml file that exists, is what it says. A bare name
     * prefers the shipped model: ./resnet-small is most likely the binary
     * an earlier `simclrc resnet-small` left. */
    if (!*arg || strchr(arg, '/') || (has_ext && access(arg, F_OK) == 0) ||
        sc_locate_models(models, sizeof models, err, sizeof err))
        return 0;
    char shipped[PATH_MAX + 256];
    if ((size_t)snprintf(shipped, sizeof shipped, "%s/%s%s", models, arg, has_ext ? "" : ".xml") >= sizeof shipped ||
        access(shipped, R_OK))
        return 0;
    if ((size_t)snprintf(path, len, "%s", shipped) >= len) {
        snprintf(path, len, "%s", arg);
        return 0;
    }
    return 1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sc_list_models(FILE *f, char *err, size_t errlen)
{
    char models[PATH_MAX];
    if (sc_locate_models(models, sizeof models, err, errlen))
        return -1;
    DIR *d = opendir(models);
    if (!d) {
        snprintf(err, errlen, "cannot read the models directory %s", models);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".xml"))
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **grown = realloc(names, ncap * sizeof *names);
            if (!grown) {
                rc = -1;
                break;
            }
            names = grown;
            cap = ncap;
        }
        if (!(names[n] = strndup(e->d_name, l - 4))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc)
        snprintf(err, errlen, "out of memory listing %s", models);
    else {
        qsort(names, n, sizeof *names, by_name);
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%s\n", names[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
