#include "sc_model_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_err.h"
#include "sc_knn.h"
#include "sc_rng.h"
#include "sc_state.h"

int sc_desc_augment_spec(const sc_model_desc *d, int random, sc_augment_spec *s, char *err,
                              size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->out_c = d->in_c;
    s->out_h = d->in_h;
    s->out_w = d->in_w;
    for (int i = 0; i < d->naugs; i++) {
        const sc_aug_info *a = &d->augs[i];
        static const sc_augment_kind kinds[] = {
            SC_AUGMENT_RANDOM_RESIZED_CROP, SC_AUGMENT_HORIZONTAL_FLIP, SC_AUGMENT_COLOR_JITTER,
            SC_AUGMENT_GRAYSCALE,           SC_AUGMENT_GAUSSIAN_BLUR,   SC_AUGMENT_NORMALIZE,
        };
        if (a->kind < 0 || a->kind > 5) {
            sc_errf(err, errlen, "augmentation %d of the model has the unknown kind %d", i + 1, a->kind);
            return -1;
        }
        sc_augment_kind k = kinds[a->kind];
        if (!random && k != SC_AUGMENT_NORMALIZE)
            continue;
        if (s->nops == SC_AUGMENT_MAX_OPS) {
            sc_errf(err, errlen, "the model has more than %d augmentations", SC_AUGMENT_MAX_OPS);
            return -1;
        }
        sc_augment_op *o = &s->ops[s->nops++];
        o->kind = k;
        o->p = a->p;
        o->size = a->size;
        o->scale_min = a->scale_min;
        o->scale_max = a->scale_max;
        o->ratio_min = a->ratio_min;
        o->ratio_max = a->ratio_max;
        o->brightness = a->brightness;
        o->contrast = a->contrast;
        o->saturation = a->saturation;
        o->hue = a->hue;
        o->kernel = a->kernel;
        o->sigma_min = a->sigma_min;
        o->sigma_max = a->sigma_max;
        memcpy(o->mean, a->mean, sizeof o->mean);
        memcpy(o->std, a->std, sizeof o->std);
    }
    return 0;
}

int sc_encode_split(const sc_model_desc *d, sc_encoder_fn encode, const float *params,
                        const float *buffers, float *arena, const sc_stl10 *data, int l2,
                        float *feats, char *err, size_t errlen)
{
    sc_augment_spec spec;
    if (sc_desc_augment_spec(d, 0, &spec, err, errlen) ||
        sc_augment_check(&spec, SC_STL10_HEIGHT, SC_STL10_WIDTH, err, errlen))
        return -1;
    int eb = d->encode_batch;
    size_t n = sc_stl10_count(data), img = (size_t)d->in_c * d->in_h * d->in_w;
    if (eb < 1 || d->feature_dim < 1) {
        sc_errf(err, errlen, "the model's encoder batch (%d) or feature width (%d) is not positive", eb,
               d->feature_dim);
        return -1;
    }
    sc_augment_ws *ws = sc_augment_ws_new(&spec, SC_STL10_HEIGHT, SC_STL10_WIDTH);
    uint8_t *pix = malloc(SC_STL10_IMAGE_BYTES);
    float *in = sc_floats_alloc((int64_t)eb * (int64_t)img);
    float *out = sc_floats_alloc((int64_t)eb * d->feature_dim);
    int rc = -1;
    if (!ws || !pix || !in || !out) {
        sc_errf(err, errlen, "out of memory for the encoder's input");
        goto done;
    }
    sc_rng r; /* the evaluation spec draws nothing; the call needs one */
    sc_rng_seed(&r, 0, 0);
    for (size_t b0 = 0; b0 < n; b0 += (size_t)eb) {
        size_t m = n - b0 < (size_t)eb ? n - b0 : (size_t)eb;
        for (size_t i = 0; i < m; i++) {
            sc_stl10_image_chw(data, b0 + i, pix);
            sc_augment_apply(&spec, pix, SC_STL10_HEIGHT, SC_STL10_WIDTH, in + i * img, &r, ws);
        }
        for (size_t i = m; i < (size_t)eb; i++)
            memcpy(in + i * img, in + (m - 1) * img, img * sizeof *in);
        encode(params, buffers, arena, in, out);
        memcpy(feats + b0 * (size_t)d->feature_dim, out, m * (size_t)d->feature_dim * sizeof *out);
    }
    if (l2)
        sc_l2_normalize_rows(feats, (int64_t)n, d->feature_dim);
    rc = 0;
done:
    free(out);
    free(in);
    free(pix);
    sc_augment_ws_free(ws);
    return rc;
}
