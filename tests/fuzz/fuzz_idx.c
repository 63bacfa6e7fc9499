/* Fuzz target: the IDX reader of the dataset converter (tools/
 * fmnist2stl10.c, included so that its static parsers are reachable).
 * The first byte picks the file kind: even, an image file (its first
 * image resized as the converter does, when small); odd, a label file
 * checked against the image count in the next four bytes. */
#define main fmnist2stl10_main
#include "../../tools/fmnist2stl10.c"
#undef main

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int labels = data[0] & 1;
    data++, size--;
    size_t nimages = 0;
    if (labels) {
        if (size < 4)
            return 0;
        nimages = be32(data);
        data += 4, size -= 4;
    }
    blob b = {(uint8_t *)data, size};
    if (labels) {
        (void)parse_labels("fuzz.idx", &b, nimages);
        return 0;
    }
    size_t n;
    int rows, cols;
    if (parse_images("fuzz.idx", &b, &n, &rows, &cols) || rows * cols > 4096)
        return 0;
    float src[4096], dst[SC_STL10_HEIGHT * SC_STL10_WIDTH];
    for (int k = 0; k < rows * cols; k++)
        src[k] = (float)b.data[16 + k];
    sc_augment_resized_crop(src, 1, rows, cols, 0, 0, rows, cols, dst, SC_STL10_HEIGHT, SC_STL10_WIDTH);
    return 0;
}
