/* Reader for the STL-10 binary layout (train_X.bin, train_y.bin, test_X.bin,
 * test_y.bin, unlabeled_X.bin, fold_indices.txt), memory-mapped.
 *
 * On disk an image is 3 x 96 x 96 uint8, one channel after another, each
 * channel column-major: byte [c][x][y]. Labels are one byte each, 1..10;
 * in memory they are 0..9, and -1 for unlabeled images.
 *
 * Errors never exit: functions return -1 and write "FILE: error: MESSAGE"
 * (or "FILE:LINE: error: MESSAGE" for the fold file) into err, so the
 * caller prints "PROGRAM: " followed by it and exits with status 1. */
#ifndef SC_STL10_H
#define SC_STL10_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    SC_STL10_CHANNELS = 3,
    SC_STL10_HEIGHT = 96,
    SC_STL10_WIDTH = 96,
    SC_STL10_IMAGE_BYTES = SC_STL10_CHANNELS * SC_STL10_HEIGHT * SC_STL10_WIDTH,
    SC_STL10_CLASSES = 10,
    SC_STL10_FOLDS = 10
};

typedef enum {
    SC_SPLIT_UNLABELED,
    SC_SPLIT_TRAIN,
    SC_SPLIT_TEST,
    SC_SPLIT_TRAIN_UNLABELED, /* train images first, then unlabeled */
    SC_SPLIT_FOLD             /* one of the ten predefined training folds */
} sc_split_kind;

typedef struct {
    sc_split_kind kind;
    int fold; /* 0..9 for SC_SPLIT_FOLD */
} sc_split;

typedef struct sc_stl10 sc_stl10;

/* Parses "unlabeled", "train", "test", "train+unlabeled" or "fold0".."fold9".
 * Returns 0, or -1 with a message in err. */
int sc_split_parse(const char *name, sc_split *out, char *err, size_t errlen);
/* The name sc_split_parse accepts for s; buf needs 16 bytes. */
const char *sc_split_name(sc_split s, char *buf, size_t len);

/* Opens the files split needs under dir and validates them (sizes, label
 * range, fold indices). On success *out owns the mappings. */
int sc_stl10_open(const char *dir, sc_split split, sc_stl10 **out, char *err, size_t errlen);
void sc_stl10_close(sc_stl10 *d);

size_t sc_stl10_count(const sc_stl10 *d);
/* Label of image i of the split: 0..9, or -1 when it has none. */
int sc_stl10_label(const sc_stl10 *d, size_t i);
/* The raw on-disk bytes of image i ([c][x][y], SC_STL10_IMAGE_BYTES). */
const uint8_t *sc_stl10_raw(const sc_stl10 *d, size_t i);
/* Image i decoded to row-major CHW ([c][y][x]) or HWC ([y][x][c]). */
void sc_stl10_image_chw(const sc_stl10 *d, size_t i, uint8_t *out);
void sc_stl10_image_hwc(const sc_stl10 *d, size_t i, uint8_t *out);

/* Validates every file of the dataset directory and prints the split sizes
 * to out. Returns 0, or -1 with the first problem in err. */
int sc_stl10_check(const char *dir, FILE *out, char *err, size_t errlen);

#endif
