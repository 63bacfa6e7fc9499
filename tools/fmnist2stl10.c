/* fmnist2stl10: converts Fashion-MNIST (IDX files, as Debian's
 * dataset-fashion-mnist ships them) into the STL-10 binary layout, the
 * project's default dataset where the real STL-10 is absent.
 *
 * Images are resized to 96x96 with bilinear interpolation exactly as
 * torchvision's F.resize does on a uint8 tensor (align_corners=False, no
 * antialias, rounded half to even), and the grey channel is replicated to
 * R, G and B. The training set becomes train_X/train_y and also
 * unlabeled_X (a hard link when the file system allows it), t10k becomes
 * test_X/test_y; labels are written 1..10. fold_indices.txt gets ten
 * overlapping windows of a fifth of the training set each. */
#include "sc_augment.h"
#include "sc_stl10.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROGRAM "fmnist2stl10"
#define DEFAULT_SRC "/usr/share/datasets/fashion-mnist"

extern char **environ;

static const char *const class_names[10] = {
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
};

typedef struct {
    uint8_t *data;
    size_t len;
} blob;

static void fail(const char *file, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: %s: error: ", PROGRAM, file);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int read_stream(int fd, const char *path, blob *b)
{
    size_t cap = 1 << 20;
    b->data = malloc(cap);
    b->len = 0;
    if (!b->data) {
        fail(path, "out of memory");
        return -1;
    }
    for (;;) {
        if (b->len == cap) {
            uint8_t *p = realloc(b->data, cap * 2);
            if (!p) {
                fail(path, "out of memory");
                return -1;
            }
            b->data = p;
            cap *= 2;
        }
        ssize_t n = read(fd, b->data + b->len, cap - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail(path, "read failed: %s", strerror(errno));
            return -1;
        }
        if (n == 0)
            return 0;
        b->len += (size_t)n;
    }
}

/* Reads a whole file; a .gz one through `gzip -dc` (spawned directly, no
 * shell, so any file name is safe), which avoids a zlib dependency. */
static int read_file(const char *path, blob *b)
{
    b->data = NULL;
    b->len = 0;
    if (access(path, R_OK) != 0) {
        fail(path, "cannot open: %s", strerror(errno));
        return -1;
    }
    size_t n = strlen(path);
    if (n < 3 || strcmp(path + n - 3, ".gz") != 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fail(path, "cannot open: %s", strerror(errno));
            return -1;
        }
        int rc = read_stream(fd, path, b);
        close(fd);
        return rc;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        fail(path, "pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = {"gzip", "-dc", "--", (char *)path, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gzip", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fail(path, "cannot run gzip: %s", strerror(rc));
        return -1;
    }
    int rrc = read_stream(fds[0], path, b);
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fail(path, "waitpid: %s", strerror(errno));
            return -1;
        }
    if (rrc != 0)
        return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail(path, "gzip -dc failed (corrupt archive?)");
        return -1;
    }
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IDX: magic 0x00000803 (ubyte, 3 dims) then n, rows, cols, big-endian. */
static int parse_images(const char *path, const blob *b, size_t *n, int *rows, int *cols)
{
    if (b->len < 16 || be32(b->data) != 0x803) {
        fail(path, "not an IDX image file (magic 0x00000803 expected)");
        return -1;
    }
    uint32_t cnt = be32(b->data + 4), r = be32(b->data + 8), c = be32(b->data + 12);
    if (r == 0 || c == 0 || r > 1024 || c > 1024) {
        fail(path, "unsupported image size %ux%u", r, c);
        return -1;
    }
    if ((uint64_t)b->len != 16 + (uint64_t)cnt * r * c) {
        fail(path, "size %zu bytes does not match %u images of %ux%u", b->len, cnt, r, c);
        return -1;
    }
    if (cnt == 0) {
        fail(path, "holds no images");
        return -1;
    }
    *n = cnt;
    *rows = (int)r;
    *cols = (int)c;
    return 0;
}

static int parse_labels(const char *path, const blob *b, size_t nimages)
{
    if (b->len < 8 || be32(b->data) != 0x801) {
        fail(path, "not an IDX label file (magic 0x00000801 expected)");
        return -1;
    }
    uint32_t cnt = be32(b->data + 4);
    if ((uint64_t)b->len != 8 + (uint64_t)cnt) {
        fail(path, "size %zu bytes does not match %u labels", b->len, cnt);
        return -1;
    }
    if (cnt != nimages) {
        fail(path, "%u labels for %zu images", cnt, nimages);
        return -1;
    }
    for (uint32_t i = 0; i < cnt; i++)
        if (b->data[8 + i] > 9) {
            fail(path, "label %d of image %u is out of range 0..9", b->data[8 + i], i);
            return -1;
        }
    return 0;
}

/* A file being written: a temporary name renamed over the final one only
 * after fsync, so a crash never leaves a half-written dataset file. */
typedef struct {
    char tmp[4096], final[4096];
    FILE *f;
} outfile;

static int out_open(outfile *o, const char *dir, const char *name)
{
    o->f = NULL;
    if (snprintf(o->final, sizeof o->final, "%s/%s", dir, name) >= (int)sizeof o->final ||
        snprintf(o->tmp, sizeof o->tmp, "%s/.%s.tmp%ld", dir, name, (long)getpid()) >=
            (int)sizeof o->tmp) {
        fail(dir, "path too long");
        return -1;
    }
    o->f = fopen(o->tmp, "wb");
    if (!o->f) {
        fail(o->tmp, "cannot create: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int out_commit(outfile *o)
{
    int bad = ferror(o->f) || fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
    int err = errno;
    if (fclose(o->f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    o->f = NULL;
    if (bad) {
        fail(o->tmp, "write failed: %s", strerror(err));
        unlink(o->tmp);
        return -1;
    }
    if (rename(o->tmp, o->final) != 0) {
        fail(o->final, "cannot rename %s: %s", o->tmp, strerror(errno));
        unlink(o->tmp);
        return -1;
    }
    return 0;
}

static void out_abort(outfile *o)
{
    if (o->f) {
        fclose(o->f);
        o->f = NULL;
        unlink(o->tmp);
    }
}

/* Writes n images (grey rows x cols) in the STL-10 layout: resized to
 * 96x96, replicated to three channels, each channel column-major. */
static int write_images(const char *dir, const char *name, const uint8_t *pix, size_t n, int rows,
                        int cols)
{
    outfile o;
    if (out_open(&o, dir, name))
        return -1;
    float *src = malloc((size_t)rows * cols * sizeof(float));
    float *dst = malloc((size_t)SC_STL10_HEIGHT * SC_STL10_WIDTH * sizeof(float));
    uint8_t *img = malloc(SC_STL10_IMAGE_BYTES);
    int rc = -1;
    if (!src || !dst || !img) {
        fail(o.tmp, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = pix + i * (size_t)rows * cols;
        for (int k = 0; k < rows * cols; k++)
            src[k] = (float)p[k];
        sc_augment_resized_crop(src, 1, rows, cols, 0, 0, rows, cols, dst, SC_STL10_HEIGHT,
                                SC_STL10_WIDTH);
        for (int x = 0; x < SC_STL10_WIDTH; x++)
            for (int y = 0; y < SC_STL10_HEIGHT; y++) {
                float v = rintf(dst[y * SC_STL10_WIDTH + x]);
                uint8_t u = (uint8_t)(v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
                for (int c = 0; c < SC_STL10_CHANNELS; c++)
                    img[(c * SC_STL10_WIDTH + x) * SC_STL10_HEIGHT + y] = u;
            }
        if (fwrite(img, 1, SC_STL10_IMAGE_BYTES, o.f) != SC_STL10_IMAGE_BYTES) {
            fail(o.tmp, "write failed: %s", strerror(errno));
            goto done;
        }
    }
    rc = out_commit(&o);
done:
    out_abort(&o);
    free(src);
    free(dst);
    free(img);
    return rc;
}

static int write_labels(const char *dir, const char *name, const uint8_t *labels, size_t n)
{
    outfile o;
    if (out_open(&o, dir, name))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (fputc(labels[i] + 1, o.f) == EOF) {
            fail(o.tmp, "write failed: %s", strerror(errno));
            out_abort(&o);
            return -1;
        }
    return out_commit(&o);
}

static int write_folds(const char *dir, size_t ntrain)
{
    outfile o;
    if (out_open(&o, dir, "fold_indices.txt"))
        return -1;
    size_t size = ntrain / 5 ? ntrain / 5 : 1;
    for (int k = 0; k < SC_STL10_FOLDS; k++) {
        size_t start = (size_t)k * ntrain / SC_STL10_FOLDS;
        for (size_t j = 0; j < size; j++)
            fprintf(o.f, "%zu%c", (start + j) % ntrain, j + 1 < size ? ' ' : '\n');
    }
    return out_commit(&o);
}

static int write_class_names(const char *dir)
{
    outfile o;
    if (out_open(&o, dir, "class_names.txt"))
        return -1;
    for (int k = 0; k < 10; k++)
        fprintf(o.f, "%s\n", class_names[k]);
    return out_commit(&o);
}

/* unlabeled_X.bin holds the same bytes as train_X.bin: hard-link it (also
 * atomically, through a temporary name) and copy only if linking fails. */
static int link_unlabeled(const char *dir, const uint8_t *pix, size_t n, int rows, int cols,
                          int *linked)
{
    char from[4096], tmp[4096], to[4096];
    snprintf(from, sizeof from, "%s/train_X.bin", dir);
    snprintf(tmp, sizeof tmp, "%s/.unlabeled_X.bin.tmp%ld", dir, (long)getpid());
    snprintf(to, sizeof to, "%s/unlabeled_X.bin", dir);
    unlink(tmp);
    if (link(from, tmp) == 0) {
        if (rename(tmp, to) != 0) {
            fail(to, "cannot rename %s: %s", tmp, strerror(errno));
            unlink(tmp);
            return -1;
        }
        *linked = 1;
        return 0;
    }
    *linked = 0;
    return write_images(dir, "unlabeled_X.bin", pix, n, rows, cols);
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        fail(dir, "cannot sync directory: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROGRAM " [--src DIR] [--limit N] OUTDIR\n"
            "Converts Fashion-MNIST (IDX files, gzip-compressed or not) into the STL-10\n"
            "binary layout in OUTDIR: 96x96 bilinear, grey replicated to RGB, labels 1..10.\n"
            "train -> train_X.bin, train_y.bin and unlabeled_X.bin; t10k -> test_X.bin,\n"
            "test_y.bin; plus fold_indices.txt and class_names.txt.\n"
            "\n"
            "  --src DIR    directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]\n"
            "               (default " DEFAULT_SRC ")\n"
            "  --limit N    convert only the first N images of each set\n"
            "  -h, --help   show this help\n");
}

/* Reads SRC/NAME.gz, or SRC/NAME when there is no compressed copy; path
 * receives the file used, for messages. */
static int read_idx(const char *src, const char *name, blob *b, char *path, size_t len)
{
    snprintf(path, len, "%s/%s.gz", src, name);
    if (access(path, F_OK) != 0)
        snprintf(path, len, "%s/%s", src, name);
    return read_file(path, b);
}

int main(int argc, char **argv)
{
    const char *src = DEFAULT_SRC;
    long long limit = -1;
    static const struct option opts[] = {
        {"src", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            src = optarg;
            break;
        case 'l': {
            char *end;
            errno = 0;
            limit = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || limit < 1) {
                fprintf(stderr, "%s: error: --limit needs a positive integer, not '%s'\n",
                        PROGRAM, optarg);
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: error: expected one output directory\n", PROGRAM);
        usage(stderr);
        return 2;
    }
    const char *out = argv[optind];
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fail(out, "cannot create directory: %s", strerror(errno));
        return 1;
    }

    static const char *const sets[2][2] = {
        {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
        {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
    };
    blob img[2] = {{0}}, lab[2] = {{0}};
    size_t n[2];
    int rows[2], cols[2], rc = 1, linked = 0;
    for (int s = 0; s < 2; s++) {
        char path[4096];
        if (read_idx(src, sets[s][0], &img[s], path, sizeof path) ||
            parse_images(path, &img[s], &n[s], &rows[s], &cols[s]) ||
            read_idx(src, sets[s][1], &lab[s], path, sizeof path) ||
            parse_labels(path, &lab[s], n[s]))
            goto done;
        if (limit > 0 && (unsigned long long)limit < n[s])
            n[s] = (size_t)limit;
    }
    if (write_images(out, "train_X.bin", img[0].data + 16, n[0], rows[0], cols[0]) ||
        write_labels(out, "train_y.bin", lab[0].data + 8, n[0]) ||
        link_unlabeled(out, img[0].data + 16, n[0], rows[0], cols[0], &linked) ||
        write_images(out, "test_X.bin", img[1].data + 16, n[1], rows[1], cols[1]) ||
        write_labels(out, "test_y.bin", lab[1].data + 8, n[1]) ||
        write_folds(out, n[0]) || write_class_names(out) || sync_dir(out))
        goto done;
    printf("%s: train %zu, test %zu, unlabeled %zu%s images of 96x96x3\n", out, n[0], n[1], n[0],
           linked ? " (hard link to train_X.bin)" : "");
    rc = 0;
done:
    for (int s = 0; s < 2; s++) {
        free(img[s].data);
        free(lab[s].data);
    }
    return rc;
}
