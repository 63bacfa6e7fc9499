/* SimCLR augmentations with the semantics of torchvision 0.14's transforms
 * on float tensors: images are float CHW in [0, 1] (uint8 / 255, as
 * ToTensor does), and every transform is a plain function of its fixed
 * parameters; sc_augment_apply draws those parameters from an sc_rng.
 *
 * The spec mirrors the model format's <augment> element list (same kinds
 * in the same order, same attribute names) plus the output geometry, which
 * is the model's input size. */
#ifndef SC_AUGMENT_H
#define SC_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "sc_rng.h"

typedef enum {
    SC_AUGMENT_RANDOM_RESIZED_CROP,
    SC_AUGMENT_HORIZONTAL_FLIP,
    SC_AUGMENT_COLOR_JITTER,
    SC_AUGMENT_GRAYSCALE,
    SC_AUGMENT_GAUSSIAN_BLUR,
    SC_AUGMENT_NORMALIZE
} sc_augment_kind;

typedef struct {
    sc_augment_kind kind;
    double p;                                   /* flip, jitter, grayscale, blur */
    int size;                                   /* crop: output side */
    double scale_min, scale_max, ratio_min, ratio_max;
    double brightness, contrast, saturation, hue; /* jitter strengths */
    int kernel;                                 /* blur: odd kernel size */
    double sigma_min, sigma_max;
    double mean[3], std[3];                     /* normalize */
} sc_augment_op;

enum { SC_AUGMENT_MAX_OPS = 32 };
/* Largest image side anywhere (index tables live on the stack). */
enum { SC_AUGMENT_MAX_SIDE = 2048 };

typedef struct {
    int nops;
    sc_augment_op ops[SC_AUGMENT_MAX_OPS];
    int out_c, out_h, out_w; /* the model's input geometry */
} sc_augment_spec;

/* Random stream of view `view` of image `index` in `epoch`: a function of
 * those three only, so the result does not depend on who computes it. */
enum { SC_STREAM_AUGMENT = 3 };
uint64_t sc_augment_stream(uint64_t epoch, uint64_t index, int view);

/* Checks a spec against input images of in_h x in_w (3 channels). Returns
 * 0, or -1 with a message in err. A spec without random-resized-crop first
 * resizes the image to the output size (as transforms.Resize); a crop must
 * produce the output size. */
int sc_augment_check(const sc_augment_spec *s, int in_h, int in_w, char *err, size_t errlen);

/* Scratch memory for sc_augment_apply, one per thread. */
typedef struct sc_augment_ws sc_augment_ws;
sc_augment_ws *sc_augment_ws_new(const sc_augment_spec *s, int in_h, int in_w);
void sc_augment_ws_free(sc_augment_ws *w);

/* Augments one uint8 CHW image (3 x in_h x in_w, row-major) into out
 * (out_c x out_h x out_w floats), drawing every parameter from r. */
void sc_augment_apply(const sc_augment_spec *s, const uint8_t *chw, int in_h, int in_w,
                      float *out, sc_rng *r, sc_augment_ws *w);

/* ---- Deterministic transforms (the known-answer tests call these). ---- */

/* uint8 -> float in [0, 1], x / 255. */
void sc_augment_to_float(const uint8_t *in, size_t n, float *out);

/* F.resized_crop on a tensor: crop rows [top, top+ch), columns
 * [left, left+cw) of a c x h x w image, then bilinear resize to oh x ow
 * (align_corners=False, no antialias). The box must lie inside the image;
 * oh, ow <= SC_AUGMENT_MAX_SIDE. */
void sc_augment_resized_crop(const float *in, int c, int h, int w, int top, int left, int ch,
                             int cw, float *out, int oh, int ow);
void sc_augment_hflip(float *img, int c, int h, int w);
/* Colour transforms on 3 x h x w images, in place, results clamped to [0, 1]. */
void sc_augment_brightness(float *img, int h, int w, float factor);
void sc_augment_contrast(float *img, int h, int w, float factor);
void sc_augment_saturation(float *img, int h, int w, float factor);
void sc_augment_hue(float *img, int h, int w, float factor); /* factor in [-0.5, 0.5] */
/* Luma 0.2989 R + 0.587 G + 0.114 B (torchvision's constants), written to
 * all three channels. */
void sc_augment_grayscale(float *img, int h, int w);
/* Separable Gaussian blur with reflect padding, kernel from sigma as
 * torchvision's _get_gaussian_kernel1d; odd kernel <= 2 * MAX_SIDE + 1;
 * tmp holds c * h * w floats plus a padded row (w + kernel). */
void sc_augment_gaussian_blur(float *img, int c, int h, int w, int kernel, float sigma,
                              float *tmp);
void sc_augment_normalize(float *img, int c, int h, int w, const double mean[],
                          const double std[]);

/* ---- Parameter sampling, as torchvision's get_params. ---- */

/* RandomResizedCrop.get_params: ten tries with scale uniform and log-ratio
 * uniform, then the centre-crop fallback. */
void sc_augment_crop_params(sc_rng *r, int h, int w, double scale_min, double scale_max,
                            double ratio_min, double ratio_max, int *top, int *left, int *ch,
                            int *cw);

/* ColorJitter.get_params: order is a random permutation of 0..3
 * (brightness, contrast, saturation, hue); a factor is drawn only for a
 * strength > 0 and is otherwise neutral (1, or 0 for hue), skipped. */
typedef struct {
    int order[4];
    int use[4];
    float factor[4];
} sc_jitter_params;
void sc_augment_jitter_params(sc_rng *r, double brightness, double contrast, double saturation,
                              double hue, sc_jitter_params *out);
void sc_augment_jitter(float *img, int h, int w, const sc_jitter_params *jp);

#endif
