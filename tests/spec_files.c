#include "spec_files.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **sc_spec_list(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **v = calloc(1, sizeof *v);
    int n = 0;
    struct dirent *e;
    while (v && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".xml"))
            continue;
        char **nv = realloc(v, (size_t)(n + 2) * sizeof *v);
        char *path = malloc(strlen(dir) + len + 2);
        if (!nv || !path) {
            free(path);
            if (nv)
                v = nv;
            v[n] = NULL;
            sc_spec_list_free(v);
            v = NULL;
            break;
        }
        v = nv;
        sprintf(path, "%s/%s", dir, e->d_name);
        v[n++] = path;
        v[n] = NULL;
    }
    closedir(d);
    if (!v)
        return NULL;
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    *count = n;
    return v;
}

void sc_spec_list_free(char **list)
{
    for (int i = 0; list && list[i]; i++)
        free(list[i]);
    free(list);
}

int sc_for_each_spec(const char *sub, void (*fn)(const char *path, const char *name, void *ctx), void *ctx)
{
    const char *src = getenv("SC_SOURCE_DIR");
    assert_non_null(src);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", src, sub);
    int n = 0;
    char **v = sc_spec_list(dir, &n);
    assert_non_null(v);
    for (int i = 0; i < n; i++)
        fn(v[i], strrchr(v[i], '/') + 1, ctx);
    sc_spec_list_free(v);
    return n;
}
