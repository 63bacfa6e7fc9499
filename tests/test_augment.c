/* Augmentations: known answers from torchvision 0.14 (fixtures written at
 * test time by tests/augment_fixtures.py), parameter sampling, the whole
 * per-view pipeline, and fmnist2stl10 against torchvision's resize. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sc_augment.h"
#include "sc_stl10.h"
#include "test_util.h"

extern char **environ;

#define S 96
#define PIX (3 * S * S)

static char dir[256];
static uint8_t *inputs;
static size_t ninputs;
static float *expected;
static size_t nexpected;

static void *slurp_file(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static int setup(void **state)
{
    (void)state;
    const char *py = getenv("SC_PYTHON"), *src = getenv("SC_SOURCE_DIR");
    if (!py || !src) {
        fprintf(stderr, "SC_PYTHON and SC_SOURCE_DIR must be set (run through ctest)\n");
        return -1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sc_augment_XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    char script[512];
    snprintf(script, sizeof script, "%s/tests/augment_fixtures.py", src);
    char *argv[] = {(char *)py, script, dir, NULL};
    if (run_log(argv, NULL) != 0) {
        fprintf(stderr, "%s %s failed\n", py, script);
        return -1;
    }
    size_t len;
    inputs = slurp_file("inputs.u8", &len);
    ninputs = len / PIX;
    expected = slurp_file("expected.f32", &len);
    nexpected = len / sizeof(float);
    return inputs && expected && ninputs > 0 ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    free(inputs);
    free(expected);
    if (dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* An in-place transform of the manifest on a 3 x h x w image; returns 0
 * if op is not one of them. */
static int in_place(const char *op, const double *p, float *y, int h, int w)
{
    static float tmp[PIX + S + 64];
    if (strcmp(op, "tofloat") == 0)
        return 1;
    if (strcmp(op, "hflip") == 0)
        sc_augment_hflip(y, 3, h, w);
    else if (strcmp(op, "brightness") == 0)
        sc_augment_brightness(y, h, w, (float)p[0]);
    else if (strcmp(op, "contrast") == 0)
        sc_augment_contrast(y, h, w, (float)p[0]);
    else if (strcmp(op, "saturation") == 0)
        sc_augment_saturation(y, h, w, (float)p[0]);
    else if (strcmp(op, "hue") == 0)
        sc_augment_hue(y, h, w, (float)p[0]);
    else if (strcmp(op, "grayscale") == 0)
        sc_augment_grayscale(y, h, w);
    else if (strcmp(op, "blur") == 0)
        sc_augment_gaussian_blur(y, 3, h, w, (int)p[0], (float)p[1], tmp);
    else if (strcmp(op, "normalize") == 0)
        sc_augment_normalize(y, 3, h, w, p, p + 3);
    else if (strcmp(op, "jitter") == 0) {
        sc_jitter_params jp;
        for (int k = 0; k < 4; k++) {
            jp.order[k] = (int)p[k];
            jp.use[k] = 1;
            jp.factor[k] = (float)p[4 + k];
        }
        sc_augment_jitter(y, h, w, &jp);
    } else
        return 0;
    return 1;
}

/* Runs one manifest case through the C transforms into out. */
static void compute(const char *op, const double *p, int np, const float *x, float *out)
{
    static float tmp[PIX + S + 64];
    if (strcmp(op, "crop") == 0) {
        assert_int_equal(np, 6);
        sc_augment_resized_crop(x, 3, S, S, (int)p[0], (int)p[1], (int)p[2], (int)p[3], out,
                                (int)p[4], (int)p[5]);
    } else if (strncmp(op, "small_", 6) == 0) {
        /* the fixture's crop to 37x53, then the transform */
        sc_augment_resized_crop(x, 3, S, S, 3, 5, 60, 70, out, 37, 53);
        if (!in_place(op + 6, p, out, 37, 53))
            fail_msg("unknown op %s in the manifest", op);
    } else if (strcmp(op, "chain") == 0) {
        /* flip, crop box, jitter order and factors, gray, kernel, sigma */
        float *a = malloc(PIX * sizeof(float));
        assert_non_null(a);
        memcpy(a, x, PIX * sizeof(float));
        if (p[0] != 0.0)
            sc_augment_hflip(a, 3, S, S);
        sc_augment_resized_crop(a, 3, S, S, (int)p[1], (int)p[2], (int)p[3], (int)p[4], out, S,
                                S);
        sc_jitter_params jp;
        for (int k = 0; k < 4; k++) {
            jp.order[k] = (int)p[5 + k];
            jp.use[k] = 1;
            jp.factor[k] = (float)p[9 + k];
        }
        sc_augment_jitter(out, S, S, &jp);
        if (p[13] != 0.0)
            sc_augment_grayscale(out, S, S);
        sc_augment_gaussian_blur(out, 3, S, S, (int)p[14], (float)p[15], tmp);
        const double half[3] = {0.5, 0.5, 0.5};
        sc_augment_normalize(out, 3, S, S, half, half);
        free(a);
    } else {
        memcpy(out, x, PIX * sizeof(float));
        if (!in_place(op, p, out, S, S))
            fail_msg("unknown op %s in the manifest", op);
    }
}

static void known_answers(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    float *x = malloc(PIX * sizeof(float)), *out = malloc(PIX * sizeof(float));
    assert_non_null(x);
    assert_non_null(out);
    int cases = 0;
    double worst = 0.0;
    char worst_name[128] = "";
    while (fgets(line, sizeof line, f)) {
        char name[128], op[32];
        int input, np, used;
        char *s = line;
        assert_int_equal(sscanf(s, "%127s %d %31s %d%n", name, &input, op, &np, &used), 4);
        s += used;
        double p[32];
        assert_true(np >= 0 && np <= 32);
        for (int k = 0; k < np; k++) {
            assert_int_equal(sscanf(s, "%lf%n", &p[k], &used), 1);
            s += used;
        }
        int oc, oh, ow;
        size_t off;
        assert_int_equal(sscanf(s, "%d %d %d %zu", &oc, &oh, &ow, &off), 4);
        assert_true((size_t)input < ninputs);
        assert_true(off + (size_t)oc * oh * ow <= nexpected);
        sc_augment_to_float(inputs + (size_t)input * PIX, PIX, x);
        compute(op, p, np, x, out);
        size_t n = (size_t)oc * oh * ow;
        const float *want = expected + off;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)out[i] - (double)want[i]);
            if (!(d <= 1.0 / 255.0))
                fail_msg("%s: element %zu is %.7f, torchvision gives %.7f", name, i, out[i],
                         want[i]);
            if (d > worst) {
                worst = d;
                snprintf(worst_name, sizeof worst_name, "%s", name);
            }
        }
        cases++;
    }
    fclose(f);
    free(x);
    free(out);
    assert_true(cases > 100);
    print_message("%d cases within 1/255 of torchvision; largest difference %.3g (%s)\n", cases,
                  worst, worst_name);
}

/* fmnist2stl10 must reproduce torchvision's uint8 resize (up to float
 * rounding at exact .5 ties) in the STL-10 layout, with labels 1..10. */
static void converter(void **state)
{
    (void)state;
    const char *bin = getenv("SC_BINARY_DIR");
    assert_non_null(bin);
    char tool[512], out[512];
    snprintf(tool, sizeof tool, "%s/tools/fmnist2stl10", bin);
    snprintf(out, sizeof out, "%s/conv", dir);
    char *argv[] = {tool, "--limit", "4", out, NULL};
    assert_int_equal(run_log(argv, NULL), 0);
    size_t len, llen;
    uint8_t *want = slurp_file("fmnist.u8", &len), *labels = slurp_file("fmnist_labels.u8", &llen);
    assert_non_null(want);
    assert_non_null(labels);
    assert_int_equal(len, 4 * S * S);
    char err[1024];
    const char *splits[] = {"train", "unlabeled", "fold3"};
    for (int k = 0; k < 3; k++) {
        sc_split sp;
        sc_stl10 *d;
        assert_int_equal(sc_split_parse(splits[k], &sp, err, sizeof err), 0);
        if (sc_stl10_open(out, sp, &d, err, sizeof err) != 0)
            fail_msg("%s", err);
        size_t n = sc_stl10_count(d);
        assert_int_equal(n, k == 2 ? 1 : 4);
        uint8_t img[PIX];
        for (size_t i = 0; i < n; i++) {
            sc_stl10_image_chw(d, i, img);
            size_t src = k == 2 ? 1 : i; /* fold3 of 4 images is image 1 */
            for (int c = 0; c < 3; c++)
                for (int j = 0; j < S * S; j++)
                    assert_true(abs((int)img[c * S * S + j] - (int)want[src * S * S + j]) <= 1);
            if (k != 1)
                assert_int_equal(sc_stl10_label(d, i), labels[src]);
            else
                assert_int_equal(sc_stl10_label(d, i), -1);
        }
        sc_stl10_close(d);
    }
    char *buf = NULL;
    size_t blen = 0;
    FILE *mem = open_memstream(&buf, &blen);
    assert_non_null(mem);
    int rc = sc_stl10_check(out, mem, err, sizeof err);
    fclose(mem);
    if (rc != 0)
        fail_msg("%s", err);
    assert_non_null(strstr(buf, "unlabeled"));
    free(buf);
    free(want);
    free(labels);

    char *bad[] = {tool, "--limit", "0", out, NULL};
    assert_int_equal(run_log(bad, NULL), 2);
    char *missing[] = {tool, "--src", "/nonexistent", out, NULL};
    assert_int_equal(run_log(missing, NULL), 1);
}

static void crop_params(void **state)
{
    (void)state;
    sc_rng r;
    sc_rng_seed(&r, 7, 99);
    int top, left, ch, cw;
    for (int t = 0; t < 5000; t++) {
        sc_augment_crop_params(&r, 96, 80, 0.08, 1.0, 0.75, 4.0 / 3.0, &top, &left, &ch, &cw);
        assert_true(ch >= 1 && cw >= 1 && top >= 0 && left >= 0);
        assert_true(top + ch <= 96 && left + cw <= 80);
        double area = (double)ch * cw / (96.0 * 80.0);
        /* Rounding to whole pixels moves the area a little past the range. */
        assert_true(area > 0.06 && area < 1.0 + 1e-9);
    }
    /* Scale above 1 never fits: always the centre fallback, here the
     * whole image (ratio 80/96 lies in range). */
    sc_augment_crop_params(&r, 96, 80, 1.5, 2.0, 0.75, 4.0 / 3.0, &top, &left, &ch, &cw);
    assert_int_equal(top, 0);
    assert_int_equal(left, 0);
    assert_int_equal(ch, 96);
    assert_int_equal(cw, 80);
    /* Input wider than ratio-max: full height, width round(96 * 1.25). */
    sc_augment_crop_params(&r, 96, 200, 1.5, 2.0, 0.8, 1.25, &top, &left, &ch, &cw);
    assert_int_equal(ch, 96);
    assert_int_equal(cw, 120);
    assert_int_equal(top, 0);
    assert_int_equal(left, 40);
    /* Input taller than ratio-min: full width, height round(96 / 0.75). */
    sc_augment_crop_params(&r, 200, 96, 1.5, 2.0, 0.75, 1.5, &top, &left, &ch, &cw);
    assert_int_equal(cw, 96);
    assert_int_equal(ch, 128);
    assert_int_equal(top, 36);
    assert_int_equal(left, 0);
}

static void jitter_params(void **state)
{
    (void)state;
    sc_rng r;
    sc_rng_seed(&r, 3, 4);
    int first[4] = {0};
    for (int t = 0; t < 4000; t++) {
        sc_jitter_params jp;
        sc_augment_jitter_params(&r, 0.5, 0.8, 0.0, 0.1, &jp);
        int seen = 0;
        for (int k = 0; k < 4; k++) {
            assert_true(jp.order[k] >= 0 && jp.order[k] < 4);
            seen |= 1 << jp.order[k];
        }
        assert_int_equal(seen, 15);
        first[jp.order[0]]++;
        assert_true(jp.use[0] && jp.use[1] && !jp.use[2] && jp.use[3]);
        assert_true(jp.factor[0] >= 0.5f && jp.factor[0] <= 1.5f);
        assert_true(jp.factor[1] >= 0.2f && jp.factor[1] <= 1.8f);
        assert_true(jp.factor[3] >= -0.1f && jp.factor[3] <= 0.1f);
    }
    for (int k = 0; k < 4; k++) /* each transform comes first about 1000 times */
        assert_true(first[k] > 850 && first[k] < 1150);
}

static sc_augment_spec reference_spec(void)
{
    sc_augment_spec s = {0};
    s.out_c = 3, s.out_h = S, s.out_w = S;
    s.ops[s.nops++] = (sc_augment_op){.kind = SC_AUGMENT_HORIZONTAL_FLIP, .p = 0.5};
    s.ops[s.nops++] = (sc_augment_op){.kind = SC_AUGMENT_RANDOM_RESIZED_CROP, .size = S,
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
    return s;
}

static void apply(void **state)
{
    (void)state;
    sc_augment_spec s = reference_spec();
    char err[256];
    assert_int_equal(sc_augment_check(&s, S, S, err, sizeof err), 0);
    sc_augment_ws *w = sc_augment_ws_new(&s, S, S);
    assert_non_null(w);
    float *a = malloc(PIX * sizeof(float)), *b = malloc(PIX * sizeof(float));
    assert_non_null(a);
    assert_non_null(b);
    sc_rng r;
    /* Same stream, same view; other view, other result. */
    sc_rng_seed(&r, 5, sc_augment_stream(2, 17, 0));
    sc_augment_apply(&s, inputs, S, S, a, &r, w);
    sc_rng_seed(&r, 5, sc_augment_stream(2, 17, 0));
    sc_augment_apply(&s, inputs, S, S, b, &r, w);
    assert_memory_equal(a, b, PIX * sizeof(float));
    sc_rng_seed(&r, 5, sc_augment_stream(2, 17, 1));
    sc_augment_apply(&s, inputs, S, S, b, &r, w);
    assert_memory_not_equal(a, b, PIX * sizeof(float));
    for (int i = 0; i < PIX; i++)
        assert_true(a[i] >= -1.0f && a[i] <= 1.0f);
    assert_int_not_equal(sc_augment_stream(0, 1, 0), sc_augment_stream(1, 1, 0));
    assert_int_not_equal(sc_augment_stream(0, 1, 0), sc_augment_stream(0, 0, 1));
    sc_augment_ws_free(w);

    /* No transforms: the image resized to the model input, nothing else. */
    sc_augment_spec none = {.out_c = 3, .out_h = 32, .out_w = 40};
    assert_int_equal(sc_augment_check(&none, S, S, err, sizeof err), 0);
    w = sc_augment_ws_new(&none, S, S);
    assert_non_null(w);
    sc_augment_apply(&none, inputs, S, S, a, &r, w);
    sc_augment_to_float(inputs, PIX, b);
    float *c = malloc(3 * 32 * 40 * sizeof(float));
    assert_non_null(c);
    sc_augment_resized_crop(b, 3, S, S, 0, 0, S, S, c, 32, 40);
    assert_memory_equal(a, c, 3 * 32 * 40 * sizeof(float));
    sc_augment_ws_free(w);
    free(a);
    free(b);
    free(c);

    /* Flip probability: deterministic for a fixed seed, near p. */
    sc_augment_spec flip = {.out_c = 3, .out_h = 2, .out_w = 2, .nops = 1};
    flip.ops[0] = (sc_augment_op){.kind = SC_AUGMENT_HORIZONTAL_FLIP, .p = 0.3};
    uint8_t tiny[12] = {0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255};
    float o[12];
    w = sc_augment_ws_new(&flip, 2, 2);
    assert_non_null(w);
    int flips = 0;
    for (int t = 0; t < 4000; t++) {
        sc_rng_seed(&r, 1, sc_augment_stream(0, (uint64_t)t, 0));
        sc_augment_apply(&flip, tiny, 2, 2, o, &r, w);
        flips += o[0] == 1.0f;
    }
    assert_true(flips > 1100 && flips < 1300);
    sc_augment_ws_free(w);
}

static void spec_errors(void **state)
{
    (void)state;
    char err[256];
    sc_augment_spec s = reference_spec();
    s.ops[1].size = 64;
    assert_int_equal(sc_augment_check(&s, S, S, err, sizeof err), -1);
    assert_non_null(strstr(err, "random-resized-crop size 64"));
    s = reference_spec();
    s.ops[4].kernel = 8;
    assert_int_equal(sc_augment_check(&s, S, S, err, sizeof err), -1);
    assert_non_null(strstr(err, "gaussian-blur kernel 8"));
    s = reference_spec();
    s.ops[2].hue = 0.7;
    assert_int_equal(sc_augment_check(&s, S, S, err, sizeof err), -1);
    assert_non_null(strstr(err, "hue"));
    s = reference_spec();
    s.ops[0].p = 1.5;
    assert_int_equal(sc_augment_check(&s, S, S, err, sizeof err), -1);
    assert_non_null(strstr(err, "probability"));
    s = reference_spec();
    s.ops[5].std[1] = 0.0;
    assert_int_equal(sc_augment_check(&s, S, S, err, sizeof err), -1);
    assert_non_null(strstr(err, "std"));
    s = reference_spec();
    s.out_c = 1;
    assert_int_equal(sc_augment_check(&s, S, S, err, sizeof err), -1);
    assert_non_null(strstr(err, "3"));
    s = reference_spec();
    s.ops[1].ratio_min = 2.0;
    assert_int_equal(sc_augment_check(&s, S, S, err, sizeof err), -1);
    assert_non_null(strstr(err, "ratio"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_answers), cmocka_unit_test(converter),
        cmocka_unit_test(crop_params),   cmocka_unit_test(jitter_params),
        cmocka_unit_test(apply),         cmocka_unit_test(spec_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
