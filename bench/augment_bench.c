/* augment_bench: augmented views per second on one core for the reference
 * recipe (models/resnet18-stl10.xml's <augment>) at 96x96: decode from the
 * STL-10 layout plus every transform, as the pipeline's workers do.
 *
 * Usage: augment_bench DATA_DIR [VIEWS_PER_RUN [RUNS]]
 * Prints one "run K: N images/s" line per run and the median. */
#include "sc_augment.h"
#include "sc_stl10.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: augment_bench DATA_DIR [VIEWS_PER_RUN [RUNS]]\n");
        return 2;
    }
    int views = argc > 2 ? atoi(argv[2]) : 2000, runs = argc > 3 ? atoi(argv[3]) : 5;
    if (views < 1 || runs < 1 || runs > 100) {
        fprintf(stderr, "augment_bench: error: bad VIEWS_PER_RUN or RUNS\n");
        return 2;
    }
    char err[1024];
    sc_stl10 *d;
    if (sc_stl10_open(argv[1], (sc_split){SC_SPLIT_TRAIN, 0}, &d, err, sizeof err)) {
        fprintf(stderr, "augment_bench: %s\n", err);
        return 1;
    }
    sc_augment_spec s = {.out_c = 3, .out_h = 96, .out_w = 96};
    s.ops[s.nops++] = (sc_augment_op){.kind = SC_AUGMENT_HORIZONTAL_FLIP, .p = 0.5};
    s.ops[s.nops++] = (sc_augment_op){.kind = SC_AUGMENT_RANDOM_RESIZED_CROP, .size = 96,
                                      .scale_min = 0.08, .scale_max = 1.0, .ratio_min = 0.75,
                                      .ratio_max = 1.3333333};
    s.ops[s.nops++] = (sc_augment_op){.kind = SC_AUGMENT_COLOR_JITTER, .p = 0.8,
                                      .brightness = 0.5, .contrast = 0.5, .saturation = 0.5,
                                      .hue = 0.1};
    s.ops[s.nops++] = (sc_augment_op){.kind = SC_AUGMENT_GRAYSCALE, .p = 0.2};
    s.ops[s.nops++] = (sc_augment_op){.kind = SC_AUGMENT_GAUSSIAN_BLUR, .p = 1.0, .kernel = 9,
                                      .sigma_min = 0.1, .sigma_max = 2.0};
    s.ops[s.nops++] = (sc_augment_op){.kind = SC_AUGMENT_NORMALIZE, .mean = {0.5, 0.5, 0.5},
                                      .std = {0.5, 0.5, 0.5}};
    if (sc_augment_check(&s, 96, 96, err, sizeof err)) {
        fprintf(stderr, "augment_bench: %s\n", err);
        sc_stl10_close(d);
        return 1;
    }
    sc_augment_ws *ws = sc_augment_ws_new(&s, 96, 96);
    uint8_t *pix = malloc(SC_STL10_IMAGE_BYTES);
    float *out = malloc(3 * 96 * 96 * sizeof(float));
    double *rate = malloc((size_t)runs * sizeof(double));
    if (!ws || !pix || !out || !rate) {
        fprintf(stderr, "augment_bench: error: out of memory\n");
        return 3;
    }
    size_t n = sc_stl10_count(d);
    double check = 0.0; /* keeps the work observable */
    for (int r = -1; r < runs; r++) { /* run -1 warms caches and page-ins */
        double t0 = now();
        for (int v = 0; v < views; v++) {
            size_t i = (size_t)v / 2 % n;
            sc_rng rng;
            sc_rng_seed(&rng, 0, sc_augment_stream((uint64_t)r + 1, i, v & 1));
            sc_stl10_image_chw(d, i, pix);
            sc_augment_apply(&s, pix, 96, 96, out, &rng, ws);
            check += out[v % (3 * 96 * 96)];
        }
        double dt = now() - t0;
        if (r >= 0) {
            rate[r] = views / dt;
            printf("run %d: %.1f images/s\n", r + 1, rate[r]);
        }
    }
    qsort(rate, (size_t)runs, sizeof *rate, cmp);
    double median = runs % 2 ? rate[runs / 2] : 0.5 * (rate[runs / 2 - 1] + rate[runs / 2]);
    printf("median: %.1f images/s (checksum %.3f)\n", median, check);
    free(rate);
    free(out);
    free(pix);
    sc_augment_ws_free(ws);
    sc_stl10_close(d);
    return 0;
}
