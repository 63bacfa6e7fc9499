/* Temporary files for the fuzz targets (fuzz_input.h). */
#include "fuzz_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[512];

static void remove_dir(void)
{
    char cmd[600];
    /* Only the files this process made: the directory is its own. */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: cannot remove %s\n", dir);
}

const char *sc_fuzz_dir(void)
{
    if (dir[0])
        return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sc_fuzz_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        dir[0] = 0;
        return NULL;
    }
    atexit(remove_dir);
    return dir;
}

const char *sc_fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[8][640];
    static int next;
    const char *d = sc_fuzz_dir();
    if (!d)
        return NULL;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", d, name);
    FILE *f = fopen(p, "wb");
    if (!f)
        return NULL;
    int bad = size && fwrite(data, 1, size, f) != size;
    bad |= fclose(f) != 0;
    return bad ? NULL : p;
}
