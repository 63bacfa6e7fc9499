/* SimCLR augmentations, following torchvision 0.14's tensor code paths
 * (torchvision/transforms/functional_tensor.py and PyTorch's CPU bilinear
 * upsampling) operation by operation, in float, so the known-answer tests
 * can hold every transform to 1/255 of torchvision's output. */
#include "sc_err.h"
#include "sc_augment.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_SIDE = SC_AUGMENT_MAX_SIDE };

static inline float clamp01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

/* Four-float vectors (GCC/Clang vector extensions): -O2 does not
 * vectorise loops of unknown length, and the row loops below are most of
 * the time. Element-wise IEEE arithmetic, so results equal the scalar code. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f load4(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

static inline v4f splat4(float x) { return (v4f){x, x, x, x}; }

static inline v4f clamp01_4(v4f x)
{
    v4i lo = x < splat4(0.0f), hi = x > splat4(1.0f);
    v4i bits = (v4i)x & ~lo;
    return (v4f)((bits & ~hi) | ((v4i)splat4(1.0f) & hi));
}

uint64_t sc_augment_stream(uint64_t epoch, uint64_t index, int view)
{
    /* Tag in the top bits keeps these apart from the other streams; epochs
     * below 2^24 and indices below 2^35 never collide. */
    return ((uint64_t)SC_STREAM_AUGMENT << 60) ^ (epoch << 36) ^ (index << 1) ^
           (uint64_t)(view & 1);
}

/* ------------------------------------------------------------------ */
/* Deterministic transforms                                            */

void sc_augment_to_float(const uint8_t *in, size_t n, float *out)
{
    /* ToTensor's x / 255 in float (a division, not a multiply by 1/255). */
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4i q = {in[i], in[i + 1], in[i + 2], in[i + 3]};
        store4(out + i, __builtin_convertvector(q, v4f) / splat4(255.0f));
    }
    for (; i < n; i++)
        out[i] = (float)in[i] / 255.0f;
}

/* PyTorch's compute_source_index_and_lambda for linear modes with
 * align_corners=False: the scale is a float, but the source position
 * scale * (dst + 0.5) - 0.5 (clamped at 0) is computed in double and only
 * the weight is rounded to float; the upper neighbour is clamped to the
 * last pixel. This reproduces PyTorch's weights bit for bit. */
static void linear_index(int in_size, int out_size, int i, int *i0, int *i1, float *l0, float *l1)
{
    if (in_size == out_size) {
        *i0 = *i1 = i;
        *l0 = 1.0f;
        *l1 = 0.0f;
        return;
    }
    float scale = (float)in_size / (float)out_size;
    double src = (double)scale * ((double)i + 0.5) - 0.5;
    if (src < 0.0)
        src = 0.0;
    int j = (int)src;
    *i0 = j;
    *i1 = j + (j < in_size - 1 ? 1 : 0);
    *l1 = (float)(src - (double)j);
    *l0 = 1.0f - *l1;
}

void sc_augment_resized_crop(const float *in, int c, int h, int w, int top, int left, int ch,
                             int cw, float *out, int oh, int ow)
{
    int x0[MAX_SIDE], x1[MAX_SIDE];
    float lx0[MAX_SIDE], lx1[MAX_SIDE];
    /* Horizontally interpolated source rows; consecutive output rows share
     * them, and y0, y1 = y0 or y0 + 1 never share a parity slot. */
    float hrow[2][MAX_SIDE];
    for (int x = 0; x < ow; x++) {
        linear_index(cw, ow, x, &x0[x], &x1[x], &lx0[x], &lx1[x]);
        x0[x] += left;
        x1[x] += left;
    }
    for (int k = 0; k < c; k++) {
        int tag[2] = {-1, -1};
        for (int y = 0; y < oh; y++) {
            int ys[2];
            float ly0, ly1;
            linear_index(ch, oh, y, &ys[0], &ys[1], &ly0, &ly1);
            for (int e = 0; e < 2; e++) {
                int sy = ys[e], slot = sy & 1;
                if (tag[slot] == sy)
                    continue;
                const float *r = in + ((size_t)k * h + top + sy) * w;
                float *hr = hrow[slot];
                for (int x = 0; x < ow; x++)
                    hr[x] = r[x0[x]] * lx0[x] + r[x1[x]] * lx1[x];
                tag[slot] = sy;
            }
            /* PyTorch's association: columns first, then rows. */
            const float *h0 = hrow[ys[0] & 1], *h1 = hrow[ys[1] & 1];
            float *o = out + ((size_t)k * oh + y) * ow;
            int x = 0;
            for (; x + 4 <= ow; x += 4)
                store4(o + x, load4(h0 + x) * splat4(ly0) + load4(h1 + x) * splat4(ly1));
            for (; x < ow; x++)
                o[x] = h0[x] * ly0 + h1[x] * ly1;
        }
    }
}

void sc_augment_hflip(float *img, int c, int h, int w)
{
    for (size_t r = 0; r < (size_t)c * h; r++) {
        float *row = img + r * w;
        for (int a = 0, b = w - 1; a < b; a++, b--) {
            float t = row[a];
            row[a] = row[b];
            row[b] = t;
        }
    }
}

/* _blend(img1, img2, ratio) = clamp(ratio * img1 + (1 - ratio) * img2);
 * Python computes 1 - ratio in double before it meets the float tensor. */
void sc_augment_brightness(float *img, int h, int w, float factor)
{
    size_t n = (size_t)3 * h * w, i = 0;
    for (; i + 4 <= n; i += 4)
        store4(img + i, clamp01_4(splat4(factor) * load4(img + i)));
    for (; i < n; i++)
        img[i] = clamp01(factor * img[i]);
}

static inline float luma(float r, float g, float b) { return 0.2989f * r + 0.587f * g + 0.114f * b; }

void sc_augment_contrast(float *img, int h, int w, float factor)
{
    size_t n = (size_t)h * w;
    const float *r = img, *g = img + n, *b = img + 2 * n;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += luma(r[i], g[i], b[i]);
    float mean = (float)(sum / (double)n);
    float a = factor, m = (float)(1.0 - (double)factor) * mean;
    size_t i = 0;
    for (; i + 4 <= 3 * n; i += 4)
        store4(img + i, clamp01_4(splat4(a) * load4(img + i) + splat4(m)));
    for (; i < 3 * n; i++)
        img[i] = clamp01(a * img[i] + m);
}

void sc_augment_saturation(float *img, int h, int w, float factor)
{
    size_t n = (size_t)h * w;
    float *r = img, *g = img + n, *b = img + 2 * n;
    float a = factor, c = (float)(1.0 - (double)factor);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f vr = load4(r + i), vg = load4(g + i), vb = load4(b + i);
        v4f l = splat4(c) * (splat4(0.2989f) * vr + splat4(0.587f) * vg + splat4(0.114f) * vb);
        store4(r + i, clamp01_4(splat4(a) * vr + l));
        store4(g + i, clamp01_4(splat4(a) * vg + l));
        store4(b + i, clamp01_4(splat4(a) * vb + l));
    }
    for (; i < n; i++) {
        float l = c * luma(r[i], g[i], b[i]);
        r[i] = clamp01(a * r[i] + l);
        g[i] = clamp01(a * g[i] + l);
        b[i] = clamp01(a * b[i] + l);
    }
}

/* One pixel of torchvision's adjust_hue: _rgb2hsv, shift, _hsv2rgb. */
static inline void hue_pixel(float *R, float *G, float *B, float factor)
{
    float r = *R, g = *G, b = *B;
    /* Plain comparisons: inputs are never NaN, and fmaxf/fminf/fmodf
     * would be library calls without -ffast-math. */
    float maxc = r > g ? r : g, minc = r < g ? r : g;
    maxc = maxc > b ? maxc : b;
    minc = minc < b ? minc : b;
    int eqc = maxc == minc;
    float cr = maxc - minc;
    float s = cr / (eqc ? 1.0f : maxc);
    float d = eqc ? 1.0f : cr;
    float rc = (maxc - r) / d, gc = (maxc - g) / d, bc = (maxc - b) / d;
    float hh;
    if (maxc == r)
        hh = bc - gc;
    else if (maxc == g)
        hh = 2.0f + rc - bc;
    else
        hh = 4.0f + gc - rc;
    /* fmod(h / 6 + 1, 1): the argument lies in [5/6, 11/6], where
     * subtracting 1 is exact, as fmod is. */
    hh = hh / 6.0f + 1.0f;
    if (hh >= 1.0f)
        hh -= 1.0f;
    /* (h + factor) % 1.0 with Python's sign convention; h + factor lies
     * in [-0.5, 1.5]. */
    hh += factor;
    if (hh >= 1.0f)
        hh -= 1.0f;
    else if (hh < 0.0f)
        hh += 1.0f;
    float v = maxc;
    /* h is in [0, 1], so truncation is floor; sector 6 wraps to 0. */
    float h6 = hh * 6.0f;
    int sector = (int)h6;
    float f = h6 - (float)sector;
    if (sector == 6)
        sector = 0;
    float p = clamp01(v * (1.0f - s));
    float q = clamp01(v * (1.0f - s * f));
    float t = clamp01(v * (1.0f - s * (1.0f - f)));
    switch (sector) {
    case 0: *R = v; *G = t; *B = p; break;
    case 1: *R = q; *G = v; *B = p; break;
    case 2: *R = p; *G = v; *B = t; break;
    case 3: *R = p; *G = q; *B = v; break;
    case 4: *R = t; *G = p; *B = v; break;
    default: *R = v; *G = p; *B = q; break;
    }
}

static inline v4f sel4(v4i m, v4f a, v4f b) { return (v4f)(((v4i)a & m) | ((v4i)b & ~m)); }

void sc_augment_hue(float *img, int h, int w, float factor)
{
    size_t n = (size_t)h * w, i = 0;
    float *R = img, *G = img + n, *B = img + 2 * n;
    const v4f one = splat4(1.0f), zero = splat4(0.0f);
    /* hue_pixel four at a time, branches turned into selects. */
    for (; i + 4 <= n; i += 4) {
        v4f r = load4(R + i), g = load4(G + i), b = load4(B + i);
        v4f maxc = sel4(r > g, r, g), minc = sel4(r < g, r, g);
        maxc = sel4(maxc > b, maxc, b);
        minc = sel4(minc < b, minc, b);
        v4i eqc = maxc == minc;
        v4f cr = maxc - minc;
        v4f s = cr / sel4(eqc, one, maxc);
        v4f d = sel4(eqc, one, cr);
        v4f rc = (maxc - r) / d, gc = (maxc - g) / d, bc = (maxc - b) / d;
        v4i isr = maxc == r, isg = (maxc == g) & ~isr;
        v4f hh = sel4(isr, bc - gc, sel4(isg, splat4(2.0f) + rc - bc, splat4(4.0f) + gc - rc));
        hh = hh / splat4(6.0f) + one;
        hh = sel4(hh >= one, hh - one, hh);
        hh += splat4(factor);
        hh = sel4(hh >= one, hh - one, sel4(hh < zero, hh + one, hh));
        v4f h6 = hh * splat4(6.0f);
        v4i sector = __builtin_convertvector(h6, v4i);
        v4f f = h6 - __builtin_convertvector(sector, v4f);
        sector &= ~(sector == 6);
        v4f v = maxc;
        v4f p = clamp01_4(v * (one - s));
        v4f q = clamp01_4(v * (one - s * f));
        v4f t = clamp01_4(v * (one - s * (one - f)));
        v4i s0 = sector == 0, s1 = sector == 1, s2 = sector == 2, s3 = sector == 3,
            s4 = sector == 4, s5 = sector == 5;
        store4(R + i, sel4(s0 | s5, v, sel4(s1, q, sel4(s4, t, p))));
        store4(G + i, sel4(s0, t, sel4(s1 | s2, v, sel4(s3, q, p))));
        store4(B + i, sel4(s0 | s1, p, sel4(s2, t, sel4(s5, q, v))));
    }
    for (; i < n; i++)
        hue_pixel(R + i, G + i, B + i, factor);
}

void sc_augment_grayscale(float *img, int h, int w)
{
    size_t n = (size_t)h * w;
    float *r = img, *g = img + n, *b = img + 2 * n;
    for (size_t i = 0; i < n; i++) {
        float l = luma(r[i], g[i], b[i]);
        r[i] = g[i] = b[i] = l;
    }
}

/* Index of padded position i in 0..n-1 under reflect padding (edge not
 * repeated), folding as often as needed. */
static int reflect(int i, int n)
{
    if (n == 1)
        return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - i;
}

/* torchvision's _get_gaussian_kernel1d, in float as it does. */
static void gaussian_kernel(int k, float sigma, float *kern)
{
    float half = (float)(k - 1) * 0.5f, sum = 0.0f;
    for (int i = 0; i < k; i++) {
        float x = ((float)i - half) / sigma;
        kern[i] = expf(-0.5f * x * x);
        sum += kern[i];
    }
    for (int i = 0; i < k; i++)
        kern[i] /= sum;
}

/* o[i] = sum over j of kern[j] * src[j][i], summed in j order; the taps
 * stay in registers across a group of four outputs. */
static void taps(float *restrict o, const float *const *src, const float *kern, int k, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f acc = splat4(kern[0]) * load4(src[0] + i);
        for (int j = 1; j < k; j++)
            acc += splat4(kern[j]) * load4(src[j] + i);
        store4(o + i, acc);
    }
    for (; i < n; i++) {
        float acc = kern[0] * src[0][i];
        for (int j = 1; j < k; j++)
            acc += kern[j] * src[j][i];
        o[i] = acc;
    }
}

void sc_augment_gaussian_blur(float *img, int c, int h, int w, int kernel, float sigma,
                              float *tmp)
{
    float kern[2 * MAX_SIDE + 1];
    const float *src[2 * MAX_SIDE + 1];
    int half = kernel / 2;
    gaussian_kernel(kernel, sigma, kern);
    float *pad = tmp + (size_t)c * h * w;
    /* Horizontal pass into tmp through a reflect-padded copy of each row. */
    for (int j = 0; j < kernel; j++)
        src[j] = pad + j;
    for (size_t r = 0; r < (size_t)c * h; r++) {
        const float *row = img + r * w;
        memcpy(pad + half, row, (size_t)w * sizeof(float));
        for (int x = 1; x <= half; x++) {
            pad[half - x] = row[reflect(-x, w)];
            pad[half + w - 1 + x] = row[reflect(w - 1 + x, w)];
        }
        taps(tmp + r * w, src, kern, kernel, w);
    }
    /* Vertical pass back into img. */
    for (int k = 0; k < c; k++) {
        const float *plane = tmp + (size_t)k * h * w;
        for (int y = 0; y < h; y++) {
            for (int j = 0; j < kernel; j++)
                src[j] = plane + (size_t)reflect(y - half + j, h) * w;
            taps(img + ((size_t)k * h + y) * w, src, kern, kernel, w);
        }
    }
}

void sc_augment_normalize(float *img, int c, int h, int w, const double mean[],
                          const double std[])
{
    size_t n = (size_t)h * w;
    for (int k = 0; k < c; k++) {
        float m = (float)mean[k], s = (float)std[k];
        float *p = img + k * n;
        size_t i = 0;
        for (; i + 4 <= n; i += 4)
            store4(p + i, (load4(p + i) - splat4(m)) / splat4(s));
        for (; i < n; i++)
            p[i] = (p[i] - m) / s;
    }
}

/* ------------------------------------------------------------------ */
/* Parameter sampling                                                  */

static double uniform(sc_rng *r, double lo, double hi) { return lo + (hi - lo) * sc_rng_uniform(r); }

void sc_augment_crop_params(sc_rng *r, int h, int w, double scale_min, double scale_max,
                            double ratio_min, double ratio_max, int *top, int *left, int *ch,
                            int *cw)
{
    double area = (double)h * w;
    double log_lo = log(ratio_min), log_hi = log(ratio_max);
    for (int t = 0; t < 10; t++) {
        double target = area * uniform(r, scale_min, scale_max);
        double aspect = exp(uniform(r, log_lo, log_hi));
        /* Python's round() is half-to-even, as rint in the default mode. */
        double cwd = rint(sqrt(target * aspect)), chd = rint(sqrt(target / aspect));
        if (cwd > 0 && cwd <= w && chd > 0 && chd <= h) {
            *cw = (int)cwd;
            *ch = (int)chd;
            *top = (int)sc_rng_below(r, (uint64_t)(h - *ch + 1));
            *left = (int)sc_rng_below(r, (uint64_t)(w - *cw + 1));
            return;
        }
    }
    double in_ratio = (double)w / (double)h;
    if (in_ratio < ratio_min) {
        *cw = w;
        *ch = (int)rint(*cw / ratio_min);
    } else if (in_ratio > ratio_max) {
        *ch = h;
        *cw = (int)rint(*ch * ratio_max);
    } else {
        *cw = w;
        *ch = h;
    }
    *top = (h - *ch) / 2;
    *left = (w - *cw) / 2;
}

void sc_augment_jitter_params(sc_rng *r, double brightness, double contrast, double saturation,
                              double hue, sc_jitter_params *out)
{
    for (int i = 0; i < 4; i++)
        out->order[i] = i;
    for (int i = 3; i > 0; i--) {
        int j = (int)sc_rng_below(r, (uint64_t)i + 1);
        int t = out->order[i];
        out->order[i] = out->order[j];
        out->order[j] = t;
    }
    const double strength[4] = {brightness, contrast, saturation, hue};
    for (int k = 0; k < 4; k++) {
        double s = strength[k];
        out->use[k] = s > 0.0;
        if (!out->use[k]) {
            out->factor[k] = k == 3 ? 0.0f : 1.0f;
            continue;
        }
        double lo = k == 3 ? -s : fmax(1.0 - s, 0.0), hi = k == 3 ? s : 1.0 + s;
        /* torch draws the factor as a float32 */
        out->factor[k] = (float)uniform(r, lo, hi);
    }
}

void sc_augment_jitter(float *img, int h, int w, const sc_jitter_params *jp)
{
    for (int i = 0; i < 4; i++) {
        int k = jp->order[i];
        if (!jp->use[k])
            continue;
        switch (k) {
        case 0: sc_augment_brightness(img, h, w, jp->factor[0]); break;
        case 1: sc_augment_contrast(img, h, w, jp->factor[1]); break;
        case 2: sc_augment_saturation(img, h, w, jp->factor[2]); break;
        default: sc_augment_hue(img, h, w, jp->factor[3]); break;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Spec, workspace, whole pipeline                                     */

static int has_crop(const sc_augment_spec *s)
{
    for (int i = 0; i < s->nops; i++)
        if (s->ops[i].kind == SC_AUGMENT_RANDOM_RESIZED_CROP)
            return 1;
    return 0;
}

static int bad_p(double p) { return !(p >= 0.0 && p <= 1.0); }

int sc_augment_check(const sc_augment_spec *s, int in_h, int in_w, char *err, size_t errlen)
{
    if (s->nops < 0 || s->nops > SC_AUGMENT_MAX_OPS) {
        sc_errf(err, errlen, "augment: %d transforms (at most %d)", s->nops, SC_AUGMENT_MAX_OPS);
        return -1;
    }
    if (s->out_c != 3) {
        sc_errf(err, errlen, "augment: the model input has %d channels; RGB images need 3",
             s->out_c);
        return -1;
    }
    if (s->out_h < 1 || s->out_w < 1 || s->out_h > MAX_SIDE || s->out_w > MAX_SIDE ||
        in_h < 1 || in_w < 1 || in_h > MAX_SIDE || in_w > MAX_SIDE) {
        sc_errf(err, errlen, "augment: image sizes must be 1..%d (input %dx%d, output %dx%d)",
             MAX_SIDE, in_h, in_w, s->out_h, s->out_w);
        return -1;
    }
    int h = in_h, w = in_w;
    if (!has_crop(s))
        h = s->out_h, w = s->out_w;
    for (int i = 0; i < s->nops; i++) {
        const sc_augment_op *o = &s->ops[i];
        switch (o->kind) {
        case SC_AUGMENT_RANDOM_RESIZED_CROP:
            if (o->size != s->out_h || o->size != s->out_w) {
                sc_errf(err, errlen,
                     "augment: random-resized-crop size %d differs from the model input %dx%d",
                     o->size, s->out_h, s->out_w);
                return -1;
            }
            if (!(o->scale_min > 0.0 && o->scale_min <= o->scale_max) ||
                !(o->ratio_min > 0.0 && o->ratio_min <= o->ratio_max)) {
                sc_errf(err, errlen,
                     "augment: random-resized-crop needs 0 < scale-min <= scale-max and "
                     "0 < ratio-min <= ratio-max");
                return -1;
            }
            h = w = o->size;
            break;
        case SC_AUGMENT_HORIZONTAL_FLIP:
        case SC_AUGMENT_GRAYSCALE:
            if (bad_p(o->p))
                goto bad_probability;
            break;
        case SC_AUGMENT_COLOR_JITTER:
            if (bad_p(o->p))
                goto bad_probability;
            if (!(o->brightness >= 0.0 && o->contrast >= 0.0 && o->saturation >= 0.0 &&
                  o->hue >= 0.0 && o->hue <= 0.5)) {
                sc_errf(err, errlen,
                     "augment: color-jitter strengths must be >= 0, and hue at most 0.5");
                return -1;
            }
            break;
        case SC_AUGMENT_GAUSSIAN_BLUR:
            if (bad_p(o->p))
                goto bad_probability;
            if (o->kernel < 1 || o->kernel % 2 == 0 || o->kernel / 2 >= (h < w ? h : w)) {
                sc_errf(err, errlen,
                     "augment: gaussian-blur kernel %d must be odd and its half smaller than "
                     "the %dx%d image",
                     o->kernel, h, w);
                return -1;
            }
            if (!(o->sigma_min > 0.0 && o->sigma_min <= o->sigma_max)) {
                sc_errf(err, errlen, "augment: gaussian-blur needs 0 < sigma-min <= sigma-max");
                return -1;
            }
            break;
        case SC_AUGMENT_NORMALIZE:
            for (int k = 0; k < 3; k++)
                if (!(o->std[k] != 0.0) || !isfinite(o->mean[k]) || !isfinite(o->std[k])) {
                    sc_errf(err, errlen, "augment: normalize needs finite mean and non-zero std");
                    return -1;
                }
            break;
        default:
            sc_errf(err, errlen, "augment: unknown transform kind %d", (int)o->kind);
            return -1;
        }
    }
    return 0;
bad_probability:
    sc_errf(err, errlen, "augment: a probability must lie in [0, 1]");
    return -1;
}

struct sc_augment_ws {
    float *a, *b, *tmp;
};

sc_augment_ws *sc_augment_ws_new(const sc_augment_spec *s, int in_h, int in_w)
{
    int mh = in_h > s->out_h ? in_h : s->out_h;
    int mw = in_w > s->out_w ? in_w : s->out_w;
    int kmax = 1;
    for (int i = 0; i < s->nops; i++)
        if (s->ops[i].kind == SC_AUGMENT_GAUSSIAN_BLUR && s->ops[i].kernel > kmax)
            kmax = s->ops[i].kernel;
    size_t n = (size_t)3 * mh * mw;
    sc_augment_ws *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->a = malloc(n * sizeof(float));
    w->b = malloc(n * sizeof(float));
    w->tmp = malloc((n + (size_t)mw + (size_t)kmax) * sizeof(float));
    if (!w->a || !w->b || !w->tmp) {
        sc_augment_ws_free(w);
        return NULL;
    }
    return w;
}

void sc_augment_ws_free(sc_augment_ws *w)
{
    if (!w)
        return;
    free(w->a);
    free(w->b);
    free(w->tmp);
    free(w);
}

void sc_augment_apply(const sc_augment_spec *s, const uint8_t *chw, int in_h, int in_w,
                      float *out, sc_rng *r, sc_augment_ws *w)
{
    float *cur = w->a, *nxt = w->b, *t;
    int h = in_h, wd = in_w;
    sc_augment_to_float(chw, (size_t)3 * h * wd, cur);
    if (!has_crop(s) && (h != s->out_h || wd != s->out_w)) {
        sc_augment_resized_crop(cur, 3, h, wd, 0, 0, h, wd, nxt, s->out_h, s->out_w);
        t = cur, cur = nxt, nxt = t;
        h = s->out_h, wd = s->out_w;
    }
    for (int i = 0; i < s->nops; i++) {
        const sc_augment_op *o = &s->ops[i];
        switch (o->kind) {
        case SC_AUGMENT_RANDOM_RESIZED_CROP: {
            int top, left, ch, cw;
            sc_augment_crop_params(r, h, wd, o->scale_min, o->scale_max, o->ratio_min,
                                   o->ratio_max, &top, &left, &ch, &cw);
            sc_augment_resized_crop(cur, 3, h, wd, top, left, ch, cw, nxt, o->size, o->size);
            t = cur, cur = nxt, nxt = t;
            h = wd = o->size;
            break;
        }
        case SC_AUGMENT_HORIZONTAL_FLIP:
            if (sc_rng_uniform(r) < o->p)
                sc_augment_hflip(cur, 3, h, wd);
            break;
        case SC_AUGMENT_COLOR_JITTER:
            if (sc_rng_uniform(r) < o->p) {
                sc_jitter_params jp;
                sc_augment_jitter_params(r, o->brightness, o->contrast, o->saturation, o->hue,
                                         &jp);
                sc_augment_jitter(cur, h, wd, &jp);
            }
            break;
        case SC_AUGMENT_GRAYSCALE:
            if (sc_rng_uniform(r) < o->p)
                sc_augment_grayscale(cur, h, wd);
            break;
        case SC_AUGMENT_GAUSSIAN_BLUR:
            if (sc_rng_uniform(r) < o->p) {
                float sigma = (float)uniform(r, o->sigma_min, o->sigma_max);
                sc_augment_gaussian_blur(cur, 3, h, wd, o->kernel, sigma, w->tmp);
            }
            break;
        case SC_AUGMENT_NORMALIZE:
            sc_augment_normalize(cur, 3, h, wd, o->mean, o->std);
            break;
        }
    }
    memcpy(out, cur, (size_t)3 * h * wd * sizeof(float));
}
