/* Fuzz target: a dataset directory in the STL-10 layout. The input's
 * first byte is the number of training images (1..4, zero-filled
 * train_X.bin), its second a fold to open; then come the training labels
 * (one byte per image) and the rest is fold_indices.txt. check-data
 * validates everything; the fold split is opened and every image and
 * label of it read. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "sc_stl10.h"

static uint8_t zeros[4 * SC_STL10_IMAGE_BYTES];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t n = 1 + data[0] % 4;
    int fold = data[1] % (SC_STL10_FOLDS + 1); /* SC_STL10_FOLDS: a bad split */
    data += 2, size -= 2;
    size_t nl = size < n ? size : n;
    if (!sc_fuzz_file("train_X.bin", zeros, n * SC_STL10_IMAGE_BYTES) ||
        !sc_fuzz_file("train_y.bin", data, nl) || !sc_fuzz_file("test_X.bin", zeros, SC_STL10_IMAGE_BYTES) ||
        !sc_fuzz_file("test_y.bin", (const uint8_t *)"\1", 1) ||
        !sc_fuzz_file("unlabeled_X.bin", zeros, SC_STL10_IMAGE_BYTES) ||
        !sc_fuzz_file("fold_indices.txt", data + nl, size - nl))
        return 0;
    const char *dir = sc_fuzz_dir();
    char err[1024];
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        (void)sc_stl10_check(dir, devnull, err, sizeof err);
        fclose(devnull);
    }
    sc_stl10 *d;
    if (sc_stl10_open(dir, (sc_split){SC_SPLIT_FOLD, fold}, &d, err, sizeof err))
        return 0;
    uint8_t img[SC_STL10_IMAGE_BYTES];
    volatile int sum = 0;
    for (size_t i = 0; i < sc_stl10_count(d); i++) {
        sum += sc_stl10_label(d, i);
        sc_stl10_image_chw(d, i, img);
        sum += img[i % SC_STL10_IMAGE_BYTES];
    }
    sc_stl10_close(d);
    return 0;
}
