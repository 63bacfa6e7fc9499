/* Test helper: writes small datasets in the exact STL-10 binary layout
 * (each channel column-major, labels 1..10 on disk). */
#ifndef STL10_FILES_H
#define STL10_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_stl10.h"

/* The value of pixel (row y, column x) of channel c of image i: x and y
 * weigh differently so a transposed decode cannot pass. */
static inline uint8_t stl10_pixel(size_t i, int c, int y, int x)
{
    return (uint8_t)(i * 37 + (size_t)c * 101 + (size_t)y * 7 + (size_t)x * 3 + (size_t)(x * y) / 11);
}

/* Writes DIR/NAME holding n images (plus `extra` stray bytes). */
static inline int stl10_write_images(const char *dir, const char *name, size_t first, size_t n,
                                     size_t extra)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    uint8_t img[SC_STL10_IMAGE_BYTES];
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++)
            for (int x = 0; x < 96; x++)
                for (int y = 0; y < 96; y++)
                    img[(c * 96 + x) * 96 + y] = stl10_pixel(first + i, c, y, x);
        fwrite(img, 1, sizeof img, f);
    }
    for (size_t k = 0; k < extra; k++)
        fputc(0, f);
    return fclose(f);
}

/* Labels as written on disk: image i gets 1 + (i * 3) % 10. */
static inline int stl10_write_labels(const char *dir, const char *name, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    for (size_t i = 0; i < n; i++)
        fputc((int)(1 + (i * 3) % 10), f);
    return fclose(f);
}

static inline int stl10_write_text(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* Fold k of a training set of n: the n/2 indices starting at k, wrapping. */
static inline int stl10_write_folds(const char *dir, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fold_indices.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t k = 0; k < 10; k++) {
        for (size_t j = 0; j < n / 2; j++)
            fprintf(f, "%zu ", (k + j) % n);
        fputc('\n', f);
    }
    return fclose(f);
}

/* A complete dataset: ntrain train, ntest test, nunl unlabeled images.
 * Unlabeled images use pixel pattern indices from 1000 on. */
static inline int stl10_write_dataset(const char *dir, size_t ntrain, size_t ntest, size_t nunl)
{
    return stl10_write_images(dir, "train_X.bin", 0, ntrain, 0) ||
           stl10_write_labels(dir, "train_y.bin", ntrain) ||
           stl10_write_images(dir, "test_X.bin", 500, ntest, 0) ||
           stl10_write_labels(dir, "test_y.bin", ntest) ||
           stl10_write_images(dir, "unlabeled_X.bin", 1000, nunl, 0) ||
           stl10_write_folds(dir, ntrain);
}

#endif
