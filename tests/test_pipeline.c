/* Input pipeline: bit-identical batches for any thread count and ring
 * depth, each epoch a seeded permutation, the batch layout (view 0 of all
 * images, then view 1), resume, wait accounting, early stop, bad configs. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sc_pipeline.h"
#include "stl10_files.h"

enum { NUNL = 22, B = 4, EPOCHS = 2, SPE = NUNL / B };
#define VIEW (3 * 96 * 96)
#define SEED 42

static char root[256];
static sc_stl10 *data;
static sc_augment_spec spec;

typedef struct {
    float *views;                 /* every batch, in order */
    uint32_t index[EPOCHS * SPE][B];
    int epoch[EPOCHS * SPE], step[EPOCHS * SPE];
    int nbatches;
} run_result;

static sc_augment_spec reference_spec(void)
{
    sc_augment_spec s = {0};
    s.out_c = 3, s.out_h = 96, s.out_w = 96;
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
    return s;
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/sc_pipeline_XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(root) || stl10_write_dataset(root, 6, 4, NUNL))
        return -1;
    char err[1024];
    if (sc_stl10_open(root, (sc_split){SC_SPLIT_UNLABELED, 0}, &data, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    spec = reference_spec();
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    sc_stl10_close(data);
    if (root[0])
        nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static sc_pipeline_config config(int threads, int depth, int first_epoch)
{
    return (sc_pipeline_config){.data = data, .aug = &spec, .batch = B, .threads = threads,
                                .depth = depth, .seed = SEED, .first_epoch = first_epoch,
                                .epochs = EPOCHS};
}

static run_result *run_all(int threads, int depth, int first_epoch)
{
    run_result *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->views = malloc((size_t)EPOCHS * SPE * 2 * B * VIEW * sizeof(float));
    assert_non_null(r->views);
    sc_pipeline_config cfg = config(threads, depth, first_epoch);
    sc_pipeline *p;
    char err[256];
    if (sc_pipeline_start(&p, &cfg, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(sc_pipeline_steps_per_epoch(p), SPE);
    sc_batch b;
    int rc;
    double waited = 0.0;
    while ((rc = sc_pipeline_next(p, &b)) == 1) {
        int g = r->nbatches++;
        assert_true(g < EPOCHS * SPE);
        memcpy(r->views + (size_t)g * 2 * B * VIEW, b.views, 2 * B * VIEW * sizeof(float));
        memcpy(r->index[g], b.index, sizeof r->index[g]);
        r->epoch[g] = b.epoch;
        r->step[g] = b.step;
        assert_true(b.wait_seconds >= 0.0);
        waited += b.wait_seconds;
        if (g % 2)
            sc_pipeline_release(p); /* explicit release and implicit one both work */
    }
    assert_int_equal(rc, 0);
    assert_int_equal(sc_pipeline_next(p, &b), 0);
    assert_true(sc_pipeline_wait_seconds(p) >= 0.0);
    assert_true(sc_pipeline_wait_seconds(p) == waited);
    sc_pipeline_stop(p);
    return r;
}

static void free_result(run_result *r)
{
    free(r->views);
    free(r);
}

static void same_batches_for_any_thread_count(void **state)
{
    (void)state;
    run_result *one = run_all(1, 0, 0), *four = run_all(4, 0, 0), *shallow = run_all(3, 1, 0);
    assert_int_equal(one->nbatches, EPOCHS * SPE);
    assert_int_equal(four->nbatches, EPOCHS * SPE);
    assert_int_equal(shallow->nbatches, EPOCHS * SPE);
    size_t bytes = (size_t)EPOCHS * SPE * 2 * B * VIEW * sizeof(float);
    assert_memory_equal(one->views, four->views, bytes);
    assert_memory_equal(one->views, shallow->views, bytes);
    assert_memory_equal(one->index, four->index, sizeof one->index);
    assert_memory_equal(one->index, shallow->index, sizeof one->index);

    /* Resuming at epoch 1 gives exactly the second epoch of the full run. */
    run_result *resumed = run_all(2, 0, 1);
    assert_int_equal(resumed->nbatches, SPE);
    assert_memory_equal(resumed->views, one->views + (size_t)SPE * 2 * B * VIEW,
                        (size_t)SPE * 2 * B * VIEW * sizeof(float));
    assert_memory_equal(resumed->index, one->index[SPE], sizeof one->index[0] * SPE);
    assert_int_equal(resumed->epoch[0], 1);
    free_result(resumed);
    free_result(shallow);
    free_result(four);
    free_result(one);
}

static void layout_and_shuffle(void **state)
{
    (void)state;
    run_result *r = run_all(2, 0, 0);
    uint32_t perm[NUNL];
    uint32_t prev[NUNL];
    float *want = malloc(VIEW * sizeof(float));
    uint8_t *pix = malloc(SC_STL10_IMAGE_BYTES);
    sc_augment_ws *ws = sc_augment_ws_new(&spec, 96, 96);
    assert_non_null(want);
    assert_non_null(pix);
    assert_non_null(ws);
    for (int e = 0; e < EPOCHS; e++) {
        sc_pipeline_permutation(SEED, (uint64_t)e, NUNL, perm);
        int seen[NUNL] = {0};
        for (int s = 0; s < SPE; s++) {
            int g = e * SPE + s;
            assert_int_equal(r->epoch[g], e);
            assert_int_equal(r->step[g], s);
            for (int i = 0; i < B; i++) {
                uint32_t idx = r->index[g][i];
                assert_int_equal(idx, perm[s * B + i]);
                assert_true(idx < NUNL);
                assert_int_equal(seen[idx]++, 0); /* no image twice in an epoch */
                /* Row i is view 0 of image i, row B + i its view 1. */
                sc_stl10_image_chw(data, idx, pix);
                for (int v = 0; v < 2; v++) {
                    sc_rng rng;
                    sc_rng_seed(&rng, SEED, sc_augment_stream((uint64_t)e, idx, v));
                    sc_augment_apply(&spec, pix, 96, 96, want, &rng, ws);
                    const float *got = r->views + ((size_t)g * 2 * B + (size_t)v * B + i) * VIEW;
                    assert_memory_equal(got, want, VIEW * sizeof(float));
                }
                const float *v0 = r->views + ((size_t)g * 2 * B + i) * VIEW;
                assert_memory_not_equal(v0, v0 + (size_t)B * VIEW, VIEW * sizeof(float));
            }
        }
        if (e > 0)
            assert_memory_not_equal(perm, prev, sizeof perm);
        memcpy(prev, perm, sizeof perm);
    }
    sc_augment_ws_free(ws);
    free(pix);
    free(want);
    free_result(r);
}

static void permutation(void **state)
{
    (void)state;
    enum { N = 1000 };
    static uint32_t a[N], b[N];
    int count[N] = {0};
    sc_pipeline_permutation(7, 3, N, a);
    for (int i = 0; i < N; i++) {
        assert_true(a[i] < N);
        count[a[i]]++;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(count[i], 1);
    sc_pipeline_permutation(7, 3, N, b);
    assert_memory_equal(a, b, sizeof a);
    sc_pipeline_permutation(7, 4, N, b);
    assert_memory_not_equal(a, b, sizeof a);
    sc_pipeline_permutation(8, 3, N, b);
    assert_memory_not_equal(a, b, sizeof a);
    int fixed = 0;
    for (int i = 0; i < N; i++)
        fixed += a[i] == (uint32_t)i;
    assert_true(fixed < 10); /* a shuffle, not the identity */
}

static void early_stop(void **state)
{
    (void)state;
    char err[256];
    for (int taken = 0; taken < 3; taken++) {
        sc_pipeline_config cfg = config(3, 2, 0);
        sc_pipeline *p;
        if (sc_pipeline_start(&p, &cfg, err, sizeof err))
            fail_msg("%s", err);
        sc_batch b;
        for (int k = 0; k < taken; k++)
            assert_int_equal(sc_pipeline_next(p, &b), 1);
        sc_pipeline_stop(p);
    }
    sc_pipeline_stop(NULL);
}

static void bad_configs(void **state)
{
    (void)state;
    char err[256];
    sc_pipeline *p = (sc_pipeline *)1;
    sc_pipeline_config cfg = config(2, 0, 0);
    cfg.batch = NUNL + 1;
    assert_int_equal(sc_pipeline_start(&p, &cfg, err, sizeof err), -1);
    assert_null(p);
    assert_non_null(strstr(err, "holds 22 images; a batch needs 23"));
    cfg = config(0, 0, 0);
    assert_int_equal(sc_pipeline_start(&p, &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "threads 0"));
    cfg = config(1, 0, 3);
    assert_int_equal(sc_pipeline_start(&p, &cfg, err, sizeof err), -1);
    sc_augment_spec bad = reference_spec();
    bad.ops[1].size = 64;
    cfg = config(1, 0, 0);
    cfg.aug = &bad;
    assert_int_equal(sc_pipeline_start(&p, &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "random-resized-crop size 64"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_batches_for_any_thread_count),
        cmocka_unit_test(layout_and_shuffle),
        cmocka_unit_test(permutation),
        cmocka_unit_test(early_stop),
        cmocka_unit_test(bad_configs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
