/* STL-10 binary reader: the image files are memory-mapped (unlabeled_X.bin
 * alone is 2.7 GB) and validated once at open, so fetching an image later
 * cannot fail. */
#include "sc_err.h"
#include "sc_stl10.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const uint8_t *data;
    size_t len;
} mapping;

struct sc_stl10 {
    sc_split split;
    mapping x, y;       /* train or test (or the train part of train+unlabeled) */
    mapping ux;         /* unlabeled_X.bin for unlabeled and train+unlabeled */
    size_t nx, nu;      /* images in x and ux */
    uint32_t *fold;     /* indices into x for a fold */
    size_t n;           /* images in the split */
};

static const char *const split_names[] = {"unlabeled", "train", "test", "train+unlabeled"};

int sc_split_parse(const char *name, sc_split *out, char *err, size_t errlen)
{
    for (int k = 0; k < 4; k++) {
        if (strcmp(name, split_names[k]) == 0) {
            out->kind = (sc_split_kind)k;
            out->fold = 0;
            return 0;
        }
    }
    if (strncmp(name, "fold", 4) == 0 && name[4] >= '0' && name[4] <= '9' && name[5] == '\0') {
        out->kind = SC_SPLIT_FOLD;
        out->fold = name[4] - '0';
        return 0;
    }
    sc_errf(err, errlen,
         "unknown split '%s' (expected unlabeled, train, test, train+unlabeled or fold0..fold9)",
         name);
    return -1;
}

const char *sc_split_name(sc_split s, char *buf, size_t len)
{
    if (s.kind == SC_SPLIT_FOLD)
        snprintf(buf, len, "fold%d", s.fold);
    else
        snprintf(buf, len, "%s", split_names[s.kind]);
    return buf;
}

static int join(char *path, size_t len, const char *dir, const char *name, char *err, size_t errlen)
{
    int n = snprintf(path, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= len) {
        sc_errf(err, errlen, "%s: error: path too long", dir);
        return -1;
    }
    return 0;
}

static void unmap(mapping *m)
{
    if (m->data && m->len)
        munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

static int map_file(const char *path, mapping *m, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sc_errf(err, errlen, "%s: error: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        sc_errf(err, errlen, "%s: error: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        sc_errf(err, errlen, "%s: error: not a regular file", path);
        close(fd);
        return -1;
    }
    m->len = (size_t)st.st_size;
    m->data = NULL;
    if (m->len > 0) {
        void *p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            sc_errf(err, errlen, "%s: error: cannot map: %s", path, strerror(errno));
            close(fd);
            m->len = 0;
            return -1;
        }
        m->data = p;
    }
    close(fd);
    return 0;
}

static int map_images(const char *dir, const char *name, mapping *m, size_t *n, char *err,
                      size_t errlen)
{
    char path[4096];
    if (join(path, sizeof path, dir, name, err, errlen) || map_file(path, m, err, errlen))
        return -1;
    if (m->len == 0) {
        sc_errf(err, errlen, "%s: error: file is empty, expected %d-byte images", path,
             SC_STL10_IMAGE_BYTES);
        return -1;
    }
    if (m->len % SC_STL10_IMAGE_BYTES != 0) {
        sc_errf(err, errlen, "%s: error: size %zu bytes is not a whole number of %d-byte images",
             path, m->len, SC_STL10_IMAGE_BYTES);
        unmap(m);
        return -1;
    }
    *n = m->len / SC_STL10_IMAGE_BYTES;
    return 0;
}

static int map_labels(const char *dir, const char *name, const char *images, size_t nimages,
                      mapping *m, char *err, size_t errlen)
{
    char path[4096];
    if (join(path, sizeof path, dir, name, err, errlen) || map_file(path, m, err, errlen))
        return -1;
    if (m->len != nimages) {
        sc_errf(err, errlen, "%s: error: %zu labels for %zu images in %s", path, m->len, nimages,
             images);
        unmap(m);
        return -1;
    }
    for (size_t i = 0; i < m->len; i++) {
        if (m->data[i] < 1 || m->data[i] > SC_STL10_CLASSES) {
            sc_errf(err, errlen, "%s: error: label %d of image %zu is out of range 1..%d", path,
                 m->data[i], i, SC_STL10_CLASSES);
            unmap(m);
            return -1;
        }
    }
    return 0;
}

/* Parses fold_indices.txt: ten non-empty lines of distinct 0-based indices
 * into the ntrain training images. Keeps fold `want` (or none if want < 0)
 * and, if sizes is given, stores each fold's size. */
static int parse_folds(const char *dir, size_t ntrain, int want, uint32_t **keep, size_t *nkeep,
                       size_t sizes[SC_STL10_FOLDS], char *err, size_t errlen)
{
    char path[4096];
    if (join(path, sizeof path, dir, "fold_indices.txt", err, errlen))
        return -1;
    FILE *f = fopen(path, "r");
    if (!f) {
        sc_errf(err, errlen, "%s: error: cannot open: %s", path, strerror(errno));
        return -1;
    }
    uint8_t *seen = malloc(ntrain ? ntrain : 1);
    uint32_t *idx = malloc((ntrain ? ntrain : 1) * sizeof *idx);
    char *line = NULL;
    size_t cap = 0;
    int folds = 0, lineno = 0, rc = -1;
    if (!seen || !idx) {
        sc_errf(err, errlen, "%s: error: out of memory", path);
        goto done;
    }
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *p = line;
        size_t n = 0;
        memset(seen, 0, ntrain);
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
                p++;
            if (*p == '\0')
                break;
            char *end;
            errno = 0;
            unsigned long long v = (*p >= '0' && *p <= '9') ? strtoull(p, &end, 10) : 0;
            if (!(*p >= '0' && *p <= '9') || errno ||
                (*end && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n')) {
                int len = 0;
                while (p[len] && p[len] != ' ' && p[len] != '\t' && p[len] != '\r' &&
                       p[len] != '\n' && len < 40)
                    len++;
                sc_errf(err, errlen, "%s:%d: error: '%.*s' is not an index", path, lineno, len, p);
                goto done;
            }
            if (v >= ntrain) {
                sc_errf(err, errlen, "%s:%d: error: index %llu is out of range 0..%zu", path, lineno,
                     v, ntrain - 1);
                goto done;
            }
            if (seen[v]) {
                sc_errf(err, errlen, "%s:%d: error: index %llu appears twice", path, lineno, v);
                goto done;
            }
            seen[v] = 1;
            idx[n++] = (uint32_t)v;
            p = end;
        }
        if (n == 0) {
            /* Blank lines are only allowed after the last fold. */
            if (folds < SC_STL10_FOLDS) {
                sc_errf(err, errlen, "%s:%d: error: empty fold", path, lineno);
                goto done;
            }
            continue;
        }
        if (folds == SC_STL10_FOLDS) {
            sc_errf(err, errlen, "%s:%d: error: more than %d folds", path, lineno, SC_STL10_FOLDS);
            goto done;
        }
        if (sizes)
            sizes[folds] = n;
        if (folds == want) {
            *keep = malloc(n * sizeof **keep);
            if (!*keep) {
                sc_errf(err, errlen, "%s: error: out of memory", path);
                goto done;
            }
            memcpy(*keep, idx, n * sizeof *idx);
            *nkeep = n;
        }
        folds++;
    }
    if (ferror(f)) {
        sc_errf(err, errlen, "%s: error: read failed: %s", path, strerror(errno));
        goto done;
    }
    if (folds != SC_STL10_FOLDS) {
        sc_errf(err, errlen, "%s: error: %d folds, expected %d", path, folds, SC_STL10_FOLDS);
        goto done;
    }
    rc = 0;
done:
    if (rc != 0 && want >= 0 && *keep) {
        free(*keep);
        *keep = NULL;
    }
    free(line);
    free(seen);
    free(idx);
    fclose(f);
    return rc;
}

int sc_stl10_open(const char *dir, sc_split split, sc_stl10 **out, char *err, size_t errlen)
{
    *out = NULL;
    if ((unsigned)split.kind > SC_SPLIT_FOLD ||
        (split.kind == SC_SPLIT_FOLD && (split.fold < 0 || split.fold >= SC_STL10_FOLDS))) {
        sc_errf(err, errlen, "%s: error: invalid split", dir);
        return -1;
    }
    sc_stl10 *d = calloc(1, sizeof *d);
    if (!d) {
        sc_errf(err, errlen, "%s: error: out of memory", dir);
        return -1;
    }
    d->split = split;
    int bad = 0;
    switch (split.kind) {
    case SC_SPLIT_TEST:
        bad = map_images(dir, "test_X.bin", &d->x, &d->nx, err, errlen) ||
              map_labels(dir, "test_y.bin", "test_X.bin", d->nx, &d->y, err, errlen);
        d->n = d->nx;
        break;
    case SC_SPLIT_UNLABELED:
        bad = map_images(dir, "unlabeled_X.bin", &d->ux, &d->nu, err, errlen);
        d->n = d->nu;
        break;
    case SC_SPLIT_TRAIN:
    case SC_SPLIT_TRAIN_UNLABELED:
    case SC_SPLIT_FOLD:
        bad = map_images(dir, "train_X.bin", &d->x, &d->nx, err, errlen) ||
              map_labels(dir, "train_y.bin", "train_X.bin", d->nx, &d->y, err, errlen);
        if (!bad && split.kind == SC_SPLIT_TRAIN_UNLABELED)
            bad = map_images(dir, "unlabeled_X.bin", &d->ux, &d->nu, err, errlen);
        if (!bad && split.kind == SC_SPLIT_FOLD)
            bad = parse_folds(dir, d->nx, split.fold, &d->fold, &d->n, NULL, err, errlen);
        else
            d->n = d->nx + d->nu;
        break;
    }
    if (bad) {
        sc_stl10_close(d);
        return -1;
    }
    *out = d;
    return 0;
}

void sc_stl10_close(sc_stl10 *d)
{
    if (!d)
        return;
    unmap(&d->x);
    unmap(&d->y);
    unmap(&d->ux);
    free(d->fold);
    free(d);
}

size_t sc_stl10_count(const sc_stl10 *d) { return d->n; }

int sc_stl10_label(const sc_stl10 *d, size_t i)
{
    if (d->fold)
        return d->y.data[d->fold[i]] - 1;
    if (i < d->nx)
        return d->y.data[i] - 1;
    return -1;
}

const uint8_t *sc_stl10_raw(const sc_stl10 *d, size_t i)
{
    if (d->fold)
        return d->x.data + (size_t)d->fold[i] * SC_STL10_IMAGE_BYTES;
    if (i < d->nx)
        return d->x.data + i * SC_STL10_IMAGE_BYTES;
    return d->ux.data + (i - d->nx) * SC_STL10_IMAGE_BYTES;
}

void sc_stl10_image_chw(const sc_stl10 *d, size_t i, uint8_t *out)
{
    const uint8_t *src = sc_stl10_raw(d, i);
    /* Read each column contiguously; the write is the strided side. */
    for (int c = 0; c < SC_STL10_CHANNELS; c++) {
        const uint8_t *s = src + c * SC_STL10_HEIGHT * SC_STL10_WIDTH;
        uint8_t *o = out + c * SC_STL10_HEIGHT * SC_STL10_WIDTH;
        for (int x = 0; x < SC_STL10_WIDTH; x++)
            for (int y = 0; y < SC_STL10_HEIGHT; y++)
                o[y * SC_STL10_WIDTH + x] = s[x * SC_STL10_HEIGHT + y];
    }
}

void sc_stl10_image_hwc(const sc_stl10 *d, size_t i, uint8_t *out)
{
    const uint8_t *src = sc_stl10_raw(d, i);
    for (int c = 0; c < SC_STL10_CHANNELS; c++) {
        const uint8_t *s = src + c * SC_STL10_HEIGHT * SC_STL10_WIDTH;
        for (int x = 0; x < SC_STL10_WIDTH; x++)
            for (int y = 0; y < SC_STL10_HEIGHT; y++)
                out[(y * SC_STL10_WIDTH + x) * SC_STL10_CHANNELS + c] = s[x * SC_STL10_HEIGHT + y];
    }
}

static void class_counts(const sc_stl10 *d, size_t counts[SC_STL10_CLASSES])
{
    memset(counts, 0, SC_STL10_CLASSES * sizeof counts[0]);
    for (size_t i = 0; i < d->n; i++)
        counts[sc_stl10_label(d, i)]++;
}

static void print_labeled(FILE *out, const char *name, const sc_stl10 *d)
{
    size_t counts[SC_STL10_CLASSES];
    class_counts(d, counts);
    fprintf(out, "%-16s %8zu images, per class:", name, d->n);
    for (int k = 0; k < SC_STL10_CLASSES; k++)
        fprintf(out, " %zu", counts[k]);
    fputc('\n', out);
}

int sc_stl10_check(const char *dir, FILE *out, char *err, size_t errlen)
{
    sc_stl10 *train = NULL, *test = NULL, *unl = NULL;
    size_t sizes[SC_STL10_FOLDS];
    char path[4096];
    int rc = -1;
    if (sc_stl10_open(dir, (sc_split){SC_SPLIT_TRAIN, 0}, &train, err, errlen) ||
        sc_stl10_open(dir, (sc_split){SC_SPLIT_TEST, 0}, &test, err, errlen) ||
        sc_stl10_open(dir, (sc_split){SC_SPLIT_UNLABELED, 0}, &unl, err, errlen) ||
        join(path, sizeof path, dir, "fold_indices.txt", err, errlen))
        goto done;
    /* Folds are optional (only the fold splits need them): absent is not
     * an error, a malformed file is. */
    int folds = access(path, F_OK) == 0 || errno != ENOENT;
    if (folds && parse_folds(dir, train->n, -1, NULL, NULL, sizes, err, errlen))
        goto done;
    fprintf(out, "dataset %s (STL-10 layout, %dx%dx%d uint8)\n", dir, SC_STL10_CHANNELS, SC_STL10_HEIGHT,
            SC_STL10_WIDTH);
    print_labeled(out, "train", train);
    print_labeled(out, "test", test);
    fprintf(out, "%-16s %8zu images\n", "unlabeled", unl->n);
    fprintf(out, "%-16s %8zu images\n", "train+unlabeled", train->n + unl->n);
    if (folds) {
        fprintf(out, "%-16s %8d folds of", "folds", SC_STL10_FOLDS);
        for (int k = 0; k < SC_STL10_FOLDS; k++)
            fprintf(out, " %zu", sizes[k]);
        fprintf(out, " training images\n");
    } else {
        fprintf(out, "%-16s   absent (no fold_indices.txt: the fold0..fold9 splits are unavailable)\n", "folds");
    }
    rc = 0;
done:
    sc_stl10_close(train);
    sc_stl10_close(test);
    sc_stl10_close(unl);
    return rc;
}
