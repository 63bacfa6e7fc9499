#include "convplan.h"

#include <stdio.h>
#include <string.h>

#define FWD (1u << 0)
#define DGRAD (1u << 1)
#define WGRAD (1u << 2)

/* The formulations (convplan.h): the name in --tune tables, the ops they
 * apply to, and the kernel names the plan gives them (name prefixes; the
 * first entry whose prefix and `also` substring match wins). */
static const struct {
    const char *name;
    unsigned ops;
    const char *kernel[2], *also;
} forms[SC_FORM_COUNT] = {
    [SC_FORM_AUTO] = {"auto", FWD | DGRAD | WGRAD, {NULL, NULL}, NULL},
    [SC_FORM_IM2COL] = {"im2col", FWD | DGRAD | WGRAD, {"im2col+gemm", "gemm-1x1"}, NULL},
    [SC_FORM_SHIFT] = {"shift", FWD | DGRAD | WGRAD, {"shift+gemm", NULL}, NULL},
    [SC_FORM_IMPLICIT] = {"implicit", FWD | WGRAD, {"implicit-gemm", NULL}, NULL},
    [SC_FORM_ROWS] = {"rows", WGRAD, {"implicit-gemm", NULL}, " rows/"},
    [SC_FORM_FLIP] = {"flip", DGRAD, {"flip+implicit-gemm", NULL}, NULL},
    [SC_FORM_WINOGRAD] = {"winograd", FWD | DGRAD | WGRAD, {"winograd F(2,3)", NULL}, NULL},
    [SC_FORM_WINOGRAD3] = {"winograd3", FWD | DGRAD | WGRAD, {"winograd F(3,3)", NULL}, NULL},
    [SC_FORM_WINOGRAD4] = {"winograd4", FWD | DGRAD, {"winograd F(4,3)", NULL}, NULL},
};

const char *sc_conv_form_name(sc_conv_form f)
{
    return f >= 0 && f < SC_FORM_COUNT ? forms[f].name : "?";
}

int sc_conv_form_parse(const char *name, sc_conv_form *f)
{
    for (int k = 0; k < SC_FORM_COUNT; k++)
        if (!strcmp(forms[k].name, name)) {
            *f = (sc_conv_form)k;
            return 0;
        }
    return -1;
}

static unsigned op_bit(sc_opkind op)
{
    return op == SC_OP_CONV2D || op == SC_OP_CONV2D_STATS ? FWD
           : op == SC_OP_CONV2D_BWD_DATA                  ? DGRAD
           : op == SC_OP_CONV2D_BWD_WEIGHT                ? WGRAD
                                                          : 0;
}

int sc_conv_form_applies(sc_conv_form f, sc_opkind op)
{
    return f >= 0 && f < SC_FORM_COUNT && (forms[f].ops & op_bit(op));
}

sc_conv_form sc_conv_form_of_kernel(const char *name)
{
    sc_conv_form found = SC_FORM_AUTO;
    size_t best = 0;
    /* the longest matching prefix, an `also` substring counting extra */
    for (int k = 0; k < SC_FORM_COUNT; k++)
        for (int j = 0; j < 2 && forms[k].kernel[j]; j++) {
            size_t len = strlen(forms[k].kernel[j]);
            if (strncmp(name, forms[k].kernel[j], len) || (forms[k].also && !strstr(name, forms[k].also)))
                continue;
            len += forms[k].also ? strlen(forms[k].also) : 0;
            if (len > best)
                found = (sc_conv_form)k, best = len;
        }
    return found;
}

/* Node i's pick of --tune, or NULL. */
static const sc_conv_pick *pick_of(const sc_graph *g, int i, const sc_conv_tuning *tuning)
{
    const sc_node *n = &g->n[i];
    for (int k = 0; tuning && k < tuning->n; k++)
        if (tuning->v[k].op == n->op && !strcmp(tuning->v[k].label, n->label))
            return &tuning->v[k];
    return NULL;
}

int64_t sc_conv_chunk(int64_t n, int64_t ohw, int threads)
{
    int64_t want = (512 + ohw - 1) / ohw, best = 1;
    if (threads > 1 && want > n / threads)
        want = n / threads > 0 ? n / threads : 1;
    for (int64_t d = 1; d <= n && d <= want; d++)
        if (n % d == 0)
            best = d;
    return best;
}

/* src is the tensor the shifted GEMMs read (x, or dy for the data
 * gradient), dst the one they write; pad the padding of src. */
static void shift_roles(const sc_graph *g, int i, const sc_tensor **src, const sc_tensor **dst, int64_t *pad)
{
    const sc_node *n = &g->n[i];
    switch (n->op) {
    case SC_OP_CONV2D:
    case SC_OP_CONV2D_STATS:
        *src = &g->t[n->in[0]], *dst = &g->t[n->out[0]], *pad = n->pad;
        break;
    case SC_OP_CONV2D_BWD_DATA: /* a stride-1 conv of dy, padded k-1-p, with flipped taps */
        *src = &g->t[n->in[0]], *dst = &g->t[n->out[0]], *pad = n->kernel - 1 - n->pad;
        break;
    default: /* weight gradient: x padded as in the forward pass, dy on its grid */
        *src = &g->t[n->in[1]], *dst = &g->t[n->in[0]], *pad = n->pad;
        break;
    }
}

static sc_shift_geom shift_geom(const sc_graph *g, int i, int threads)
{
    const sc_tensor *src, *dst;
    sc_shift_geom s;
    shift_roles(g, i, &src, &dst, &s.p);
    s.n = src->shape[0];
    s.cs = src->shape[1], s.h = src->shape[2], s.w = src->shape[3];
    s.cd = dst->shape[1], s.oh = dst->shape[2], s.ow = dst->shape[3];
    s.k = g->n[i].kernel;
    s.hp = s.h + 2 * s.p, s.wp = s.w + 2 * s.p;
    s.plane = s.hp * s.wp;
    s.nb = sc_conv_chunk(s.n, s.plane, threads);
    s.stride = s.nb * s.plane;
    s.npos = (s.nb - 1) * s.plane + (s.oh - 1) * s.wp + s.ow;
    return s;
}

/* Shift+gemm for a convolution that is not 1x1: where --tune picked a
 * formulation for the node, that one is shift or not, else the policy.
 * Shifting needs unit stride and, for the data gradient's flipped
 * padding, pad <= kernel - 1. */
static int use_shift(const sc_graph *g, int i, int threads, int policy, const sc_conv_pick *pick)
{
    const sc_node *n = &g->n[i];
    int legal = n->stride == 1 && n->kernel > 1 && n->pad >= 0 && n->pad <= n->kernel - 1 && n->groups == 1 &&
                n->dilation == 1;
    if (!legal)
        return 0;
    if (pick)
        return pick->form == SC_FORM_SHIFT;
    policy &= ~(SC_CONV_EXPLICIT | SC_CONV_NO_WINOGRAD);
    if (policy == SC_CONV_IM2COL_POLICY)
        return 0;
    if (policy == SC_CONV_FORCE_SHIFT)
        return 1;
    sc_shift_geom s = shift_geom(g, i, threads);
    return (double)s.plane <= SC_SHIFT_WASTE * (double)(s.oh * s.ow);
}

/* implicit-gemm where im2col+gemm would run and it pays: the forward
 * convolution at stride 1 or 2 (the gather loads vectors along x's rows;
 * a larger stride would be scalar), not grouped (one im2col matrix per
 * GEMM) nor dilated, with the generated GEMM. Measured per GEMM on
 * resnet18-stl10's shapes (thread CPU time, best of 7, AMD EPYC Zen 5,
 * machine shared): the implicit GEMM took 1.00x to 1.19x the explicit
 * GEMM's time at stride 1 and 1.14x to 1.31x at stride 2, while the
 * im2col pass it saves wrote 1.3 to 5.3 MB of columns for the GEMM to read
 * back. The weight gradient folded in NCHW (B = columns^T, gathered then
 * packed; sc_cg_gemm_conv with tb) took 1.29x to 1.38x: no better than
 * its im2col. Folded channels-last ("ir", sc_cg_gemm_conv_rows: no
 * transposing pack) it ran at 0.96x to 1.03x the explicit GEMM's speed on
 * the same shapes (bench/wgrad_bench.c, the explicit one without its
 * im2col pass; the step's weight gradients 1.14x faster on 2 threads), so weight gradients take it where x has at least
 * SC_ROWS_MIN_C channels, or a kernel of SC_ROWS_MIN_K or more taps a
 * row (the gather copies a kernel row's k taps of the c channels as one
 * run: the 7x7 stems' 21 floats), grouped ones excepted (one tap-major dW
 * per group). The runs between, 3x3 kernels of 6 to 15 channels, were not
 * measured and keep the columns. On AMD EPYC Zen 4 (machine shared, load 2
 * to 3 on 2 cores; bench-step --profile --threads 2, 3 alternating rounds,
 * ms per call) resnet18-stl10 b32's 7x7 stride-2 stem (runs of 21) took
 * 30.2 to 33.9 ms against im2col's 35.7 to 39.1, but the 3x3 stems' runs of
 * 9 were slower: resnet18-cifar's 4.75 to 5.07 against 4.46 to 4.65,
 * resnet-small's 2.88 to 3.09 against 1.88 to 2.31. A --tune
 * pick of implicit or rows lifts that threshold; one of im2col
 * keeps the columns. */
static int use_implicit(const sc_node *n, int64_t c, int policy, sc_conv_form form)
{
    if ((policy & SC_CONV_EXPLICIT) || n->groups != 1 || form == SC_FORM_IM2COL)
        return 0;
    int forced = form == SC_FORM_IMPLICIT || form == SC_FORM_ROWS;
    if (n->op == SC_OP_CONV2D || n->op == SC_OP_CONV2D_STATS)
        return n->stride <= 2 && n->dilation == 1;
    return n->op == SC_OP_CONV2D_BWD_WEIGHT && (c >= SC_ROWS_MIN_C || n->kernel >= SC_ROWS_MIN_K || forced);
}

sc_conv_geom sc_conv_flip_geom(const sc_conv_geom *g, int64_t o)
{
    return (sc_conv_geom){o, g->oh, g->ow, g->k, 1, g->k - 1 - g->p, g->h, g->w, 1, 1};
}

/* flip+implicit-gemm for a data gradient (convplan.h): at stride 1,
 * where flipping leaves a padding k-1-p >= 0, not grouped nor dilated,
 * with the generated GEMM, unless --tune chose shift+gemm, and where dx
 * has at least SC_FLIP_MIN_C channels: they are the implicit GEMM's rows,
 * over which each gathered block of dy is used, so with few of them the
 * gather weighs more than the col2im it saves. Measured on resnet18-stl10
 * b32 (CPU-time samples of both binaries, one thread, AMD EPYC Zen 5,
 * machine shared, three runs): against GEMM + col2im + zeroing dx, 0.83x
 * to 0.95x the speed at C = 64 (layer 1), 1.0x to 1.1x at 128, 1.2x to
 * 1.3x at 256 and 1.0x to 1.08x at 512 (where flipping the 2.4M weights
 * costs a tenth of the node). Below that, the explicit GEMM's k is dy's
 * O channels: under SC_FLIP_K_O of them its C tiles are stored every few
 * k steps, so flipping (k = O*K*K) pays from SC_FLIP_SMALL_C channels on.
 * Measured with the balanced register rows (cg_gemm.c; per-node CPU time
 * of bench-step --profile, best of 2 to 4 runs, one thread, same machine):
 * on resnet-small b32 1.2x to 1.4x at C = O = 16 (32x32) and 1.05x to 1.3x
 * at 32 (16x16); at O = 64, 1.1x on resnet-small's 8x8 but 0.9x to 0.95x
 * on resnet18-stl10's 24x24 layer 1, which keeps GEMM plus col2im. A 1x1
 * convolution of one image per chunk is one GEMM already (gemm-1x1). A
 * --tune pick of flip lifts the channel thresholds; any other pick rules
 * flip out. */
static int use_flip(const sc_node *n, int64_t c, int64_t o, int policy, int one_image_1x1, sc_conv_form form)
{
    int legal = !(policy & SC_CONV_EXPLICIT) && n->op == SC_OP_CONV2D_BWD_DATA && n->stride == 1 &&
                n->groups == 1 && n->dilation == 1 && n->pad >= 0 && n->pad <= n->kernel - 1 && !one_image_1x1;
    int pays = c >= SC_FLIP_MIN_C || (c >= SC_FLIP_SMALL_C && o < SC_FLIP_K_O);
    return legal && (form == SC_FORM_FLIP || (form == SC_FORM_AUTO && pays));
}

/* The implicit weight gradient split by dW's rows (convplan.h,
 * SC_MSPLIT_*), or as --tune picked where the rows divide among the
 * threads. */
static int use_rows(const sc_conv_plan *p, int threads, sc_conv_form form)
{
    if (threads < 2 || p->o % threads || form == SC_FORM_IMPLICIT)
        return 0;
    return form == SC_FORM_ROWS ||
           (p->n * p->ohw < SC_MSPLIT_POSITIONS * threads && p->o / threads >= SC_MSPLIT_ROWS);
}

/* winograd F(m,3) (convplan.h) for a 3x3 convolution at stride 1, pad
 * 1, not grouped nor dilated, forward or data gradient (the flipped
 * forward convolution: pad 3-1-1 = 1 again), with the generated GEMM and
 * unless turned off (SC_CONV_NO_WINOGRAD, simclrc --no-winograd), every
 * convolution forced to shift+gemm (tests) or --tune picked shift+gemm
 * for the node (its other trial ran this rule); where its input and output
 * channels are both at least SC_WINO_MIN_C (16; the weight gradient
 * SC_WINO_WGRAD_MIN_C, 32): below that the small GEMMs and the
 * transforms' memory passes outweigh the multiply-adds saved. Measured
 * on resnet-small b32 (bench-step --profile, 2 threads, 50 steps, AMD
 * EPYC Zen 5, since the transforms' L1 skew): F(2,3) at 32 channels
 * (16x16) 0.58x the implicit GEMM's ms per call forward, 0.57x for the
 * data gradient, 0.98x for the weight gradient; at 16 channels (32x32)
 * 0.71x-0.83x forward, 0.75x-0.80x data gradient, but the weight
 * gradient (F(3,3) there) 1.26x; the minimum had been 64 before the
 * skew. And, for F(2,3), where the 2x2 tiles cover at most SC_WINO_WASTE
 * times the plane's pixels: resnet18-stl10's 3x3 planes (layer 4: 16
 * tile outputs for 9 pixels) ran at about half the implicit GEMM's speed,
 * while resnet18-cifar's 4x4 ran 1.6x faster (bench-step --profile, one
 * thread, AMD EPYC Zen 5, machine shared). The 3x3 planes take F(3,3)
 * (wino_m). */
int sc_conv_wino_legal_plane_m(int64_t h, int64_t w, int64_t m)
{
    return (double)(m * m * ((h + m - 1) / m) * ((w + m - 1) / m)) <= SC_WINO_WASTE * (double)(h * w);
}

int sc_conv_wino_legal_plane(int64_t h, int64_t w)
{
    return sc_conv_wino_legal_plane_m(h, w, 2);
}

/* The tile size of an h x w plane, 0 for none (sc_conv_plan_node's
 * rule; convplan.h). Measured on resnet18-stl10 and resnet18-cifar b32
 * (bench-step --profile ms/call, 2 threads, 3 alternating rounds of each
 * m, AMD EPYC Zen 4, machine shared, load 4 to 6), time against F(2,3)'s
 * per plane (channels): F(3,3) 0.67x at 24x24 (64), 0.91x at 12x12 (128;
 * 1.00x in a second run of 6 rounds against main, where 24x24 gave 0.70x),
 * 0.65x to 0.70x of the implicit GEMM's at 3x3 (512; F(2,3) wastes too
 * much there), 1.07x at 6x6 (256), and 1.2x to 1.3x where its tiles
 * overhang the plane (32x32, 16x16, 8x8); F(4,3) 0.87x at 4x4 (512), one
 * tile per image, but 0.97x to 1.13x on larger planes (24x24 to 8x8),
 * where its bigger transforms cost what its 1.78x fewer multiply-adds
 * save. Since the transforms store and load V and M a line apart per
 * element (SC_WINO_SKEW; they had thrashed one L1 set) F(4,3) pays on
 * the planes 4 divides: on resnet18-cifar b32 (AMD EPYC Zen 5, 2 threads,
 * 3 alternating rounds, machine shared) 0.74x to 0.82x F(2,3)'s ms per
 * call at 32x32 (64 channels), 0.75x to 0.79x at 16x16 (128) and 0.72x
 * to 0.76x at 8x8 (256), forward and data gradient (one thread,
 * sc_wino_bench: 0.91x, 0.79x, 0.86x); F(3,3) stays where 3 divides
 * (sc_wino_bench: 24x24 6.2 ms against F(4,3)'s 6.9, 12x12 4.9 against
 * 7.6), now 6x6 too: by rows (sc_conv_wino_rows; its 4 tiles per image, 256 per
 * 64 images) 0.59x to 0.79x F(2,3)'s ms per call on resnet18-stl10 b32
 * (256 channels; 4 alternating rounds, same machine, heavily shared).
 * Small convolutions, under SC_WINO_F4_MACS multiply-adds per
 * image (resnet-small's 8x8 at 64 channels: 2.4M), keep F(2,3): there
 * F(4,3) saves 0.1 ms per node (sc_wino_bench, 64 images) while its 12x
 * larger rounding error moved test_mpi's resume comparison on
 * resnet-small from 1e-6 to 7.5e-4 of the tensors (bound 1e-5). */
static int64_t wino_m(int64_t c, int64_t o, int64_t h, int64_t w)
{
    if (h == 4 && w == 4)
        return 4;
    if (h % 3 == 0 && w % 3 == 0)
        return 3;
    if (h % 4 == 0 && w % 4 == 0 && 9 * c * o * h * w >= SC_WINO_F4_MACS)
        return 4;
    return sc_conv_wino_legal_plane_m(h, w, 2) ? 2 : 0;
}

/* Whether the node can run as winograd at all (what a --tune pick
 * of it needs): the geometry and a policy that leaves it on. */
static int winograd_legal(const sc_node *n, int policy)
{
    int fwd = n->op == SC_OP_CONV2D || n->op == SC_OP_CONV2D_STATS;
    if ((policy & (SC_CONV_EXPLICIT | SC_CONV_NO_WINOGRAD)) || (policy & 15) == SC_CONV_FORCE_SHIFT ||
        !(fwd || n->op == SC_OP_CONV2D_BWD_DATA || n->op == SC_OP_CONV2D_BWD_WEIGHT))
        return 0;
    return n->kernel == 3 && n->stride == 1 && n->pad == 1 && n->groups == 1 && n->dilation == 1;
}

/* A legal node's tile size m: --tune's pick, else the rule above; 0 for
 * none. The weight gradient (cg_winograd_wgrad.c) by wgrad_m. */
static int64_t wgrad_m(int64_t h, int64_t w);

static int64_t use_winograd(sc_opkind op, int64_t c, int64_t o, int64_t h, int64_t w, sc_conv_form form)
{
    int wgrad = op == SC_OP_CONV2D_BWD_WEIGHT;
    if (form != SC_FORM_AUTO)
        return form == SC_FORM_WINOGRAD ? 2 : form == SC_FORM_WINOGRAD3 ? 3 : form == SC_FORM_WINOGRAD4 ? 4 : 0;
    int64_t min_c = wgrad ? SC_WINO_WGRAD_MIN_C : SC_WINO_MIN_C;
    if (c < min_c || o < min_c)
        return 0;
    if (wgrad)
        return wgrad_m(h, w);
    return wino_m(c, o, h, w);
}

/* The weight gradient's tile size (cg_winograd_wgrad.c): F(3,3) on the
 * 3x3 planes (one tile an image, where F(2,3)'s 2x2 tiles cover 16
 * outputs for 9) and on planes 24 or more wide, whose rows of 3x3 tiles
 * fill vectors; else F(2,3) where its 2x2 tiles waste little. Measured
 * (bench/wino_wgrad_bench.c, one thread's half of the node, one core,
 * AMD EPYC Zen 5, machine shared), F(3,3) against F(2,3): 0.72x at 24x24
 * (64 channels) and 32x32 (64), 0.92x to 1.0x at 12x12 (128), 1.15x at
 * 16x16 (128), 1.12x at 6x6 (256); F(4,3) 1.05x at 4x4 (512). */
static int64_t wgrad_m(int64_t h, int64_t w)
{
    if ((h == 3 && w == 3) || (w >= 24 && sc_conv_wino_legal_plane_m(h, w, 3)))
        return 3;
    return sc_conv_wino_legal_plane(h, w) ? 2 : 0;
}

sc_wino_geom sc_conv_wino_geom_m(int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t nb, int64_t m)
{
    sc_wino_geom v;
    int64_t a2 = (m + 2) * (m + 2);
    v.cin = cin, v.cout = cout, v.h = h, v.w = w, v.m = m;
    v.th = (h + m - 1) / m, v.tw = (w + m - 1) / m;
    v.tt = v.th * v.tw;
    v.t = nb * v.tt;
    v.hp = m * v.th + 2, v.wp = m * v.tw + 2;
    v.vs = cin * v.t + SC_WINO_SKEW, v.ms = cout * v.t + SC_WINO_SKEW, v.us = cout * cin + SC_WINO_SKEW;
    v.at_m = a2 * v.vs;
    v.at_plane = v.at_m + a2 * v.ms;
    v.at_u = v.at_plane + v.hp * v.wp;
    v.rb = 0, v.at_v = 0;
    return v;
}

sc_wino_geom sc_conv_wino_rows_geom(int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t n, int64_t m, int64_t rb)
{
    sc_wino_geom v = sc_conv_wino_geom_m(cin, cout, h, w, n, m);
    int64_t a2 = (m + 2) * (m + 2);
    v.rb = rb;
    v.ms = rb * v.t + SC_WINO_SKEW, v.us = rb * cin + SC_WINO_SKEW;
    v.at_m = 0;
    v.at_plane = a2 * v.ms;
    v.at_u = v.at_plane + v.hp * v.wp;
    v.at_v = v.at_u + a2 * v.us;
    return v;
}

sc_wino_geom sc_conv_wino_geom(int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t nb)
{
    return sc_conv_wino_geom_m(cin, cout, h, w, nb, 2);
}

sc_wino_geom sc_conv_wino_wgrad_geom_m(int64_t c, int64_t o, int64_t h, int64_t w, int64_t nb, int groups, int64_t m)
{
    sc_wino_geom v = sc_conv_wino_geom_m(c, o, h, w, nb, m);
    int64_t e = ((m + 2) * (m + 2) + groups - 1) / groups;
    v.at_m = e * c * v.t;
    v.at_plane = v.at_m + e * o * v.t;
    v.at_u = v.at_plane + v.hp * v.wp;
    return v;
}

sc_wino_geom sc_conv_wino_wgrad_geom(int64_t c, int64_t o, int64_t h, int64_t w, int64_t nb, int groups)
{
    return sc_conv_wino_wgrad_geom_m(c, o, h, w, nb, groups, 2);
}

/* Images per Winograd chunk (convplan.h): the largest divisor of n whose tiles stay
 * within SC_WINO_TILES, leaving at least `threads` chunks where n allows. */
int64_t sc_conv_wino_chunk(int64_t n, int64_t tt, int threads, int64_t tiles)
{
    int64_t best = 1;
    for (int64_t d = 2; d <= n; d++)
        if (n % d == 0 && d * tt <= tiles && n / d >= threads)
            best = d;
    return best;
}

/* Winograd by rows (sc_conv_wino_rows_geom): where every image's tiles
 * fit one chunk (n*tt <= SC_WINO_TILES: the small planes with many
 * channels, 4x4 and 3x3 at 512), chunks of images would each stream all of
 * U (26 to 38 MB at 512x512, past the L3) for a few dozen tiles, after
 * the weight transform wrote it out; blocks of output channels instead
 * transform their own rows of U into the thread's workspace and use them
 * there at once, V (shared, a few MB) read once per block. Rows per block:
 * the most whose U stays within SC_WINO_ROWS_BYTES, the blocks a multiple
 * of the threads; 0 (chunks of images) where no divisor of cout fits. */
int64_t sc_conv_wino_rows(int64_t n, int64_t tt, int64_t cin, int64_t cout, int64_t a2, int threads)
{
    if (n * tt > SC_WINO_TILES)
        return 0;
    for (int64_t rb = cout / threads; rb >= 8; rb--)
        if (cout % rb == 0 && (cout / rb) % threads == 0 && a2 * rb * cin * 4 <= SC_WINO_ROWS_BYTES)
            return rb;
    return 0;
}

/* A weight gradient over threads sums each thread's chunks into a
 * partial dW, added up afterwards. Where that partial is at least as large
 * as a chunk's columns (late stages: few pixels, many channels), the
 * threads take slices of dW's columns instead (input channels, each over
 * every chunk): no partial to hold, zero or add up, and the same GEMM
 * FLOPs with the same im2col work in all. */
static int use_slices(const sc_node *n, const sc_conv_plan *p, int threads)
{
    return n->op == SC_OP_CONV2D_BWD_WEIGHT && p->algo == SC_CONV_IM2COL && threads > 1 && p->g.groups == 1 &&
           p->g.c % threads == 0 && p->o >= p->cols;
}

/* The largest divisor of n up to nb whose chunk's im2col columns (ckk x
 * nb*ohw) stay within cols_max floats, or 1. */
static int64_t cap_chunk(int64_t n, int64_t nb, int64_t ckk, int64_t ohw, int64_t cols_max)
{
    while (nb > 1 && (n % nb || ckk * nb * ohw > cols_max))
        nb--;
    return nb;
}

/* A strided data gradient's chunk (convplan.h): within
 * SC_CONV_DGRAD_COLS_MAX floats of columns, but of at least
 * SC_CONV_DGRAD_MIN_COLS columns where SC_CONV_COLS_MAX allows. */
static int64_t dgrad_chunk(int64_t n, int64_t nb, int64_t ckk, int64_t ohw)
{
    int64_t most = cap_chunk(n, nb, ckk, ohw, SC_CONV_COLS_MAX), d = cap_chunk(n, nb, ckk, ohw, SC_CONV_DGRAD_COLS_MAX);
    while (d < most && (d * ohw < SC_CONV_DGRAD_MIN_COLS || n % d))
        d++;
    return d;
}

sc_conv_plan sc_conv_plan_node(const sc_graph *g, int i, int threads, int policy, const sc_conv_tuning *tuning)
{
    const sc_node *n = &g->n[i];
    /* x is the forward convolution's input, y its output */
    const sc_tensor *x, *y;
    if (n->op == SC_OP_CONV2D || n->op == SC_OP_CONV2D_STATS)
        x = &g->t[n->in[0]], y = &g->t[n->out[0]];
    else if (n->op == SC_OP_CONV2D_BWD_DATA)
        x = &g->t[n->out[0]], y = &g->t[n->in[0]];
    else
        x = &g->t[n->in[1]], y = &g->t[n->in[0]];
    sc_conv_plan p;
    memset(&p, 0, sizeof p);
    p.g = (sc_conv_geom){x->shape[1], x->shape[2], x->shape[3], n->kernel,     n->stride,
                         n->pad,      y->shape[2], y->shape[3], n->dilation, n->groups};
    p.n = x->shape[0];
    p.o = y->shape[1];
    p.ckk = p.g.c * p.g.k * p.g.k;
    p.ohw = p.g.oh * p.g.ow;
    p.cgkk = p.ckk / p.g.groups;
    p.og = p.o / p.g.groups;
    /* With threads, the weight gradient sums per-thread partials (unless split by rows). */
    int64_t partial = n->op == SC_OP_CONV2D_BWD_WEIGHT && threads > 1 ? g->t[n->out[0]].numel : 0;
    p.mslices = 1;
    int one_by_one = n->kernel == 1 && n->stride == 1 && n->pad == 0 && n->groups == 1;
    const sc_conv_pick *pick = pick_of(g, i, tuning);
    sc_conv_form form = pick && sc_conv_form_applies(pick->form, n->op) ? pick->form : SC_FORM_AUTO;
    int shift = !one_by_one && use_shift(g, i, threads, policy, pick);
    int bwd_data = n->op == SC_OP_CONV2D_BWD_DATA;
    int wino_legal = winograd_legal(n, policy);
    if ((!shift && form == SC_FORM_SHIFT) || (form == SC_FORM_ROWS && (threads < 2 || p.o % threads)) ||
        (!wino_legal && (form == SC_FORM_WINOGRAD || form == SC_FORM_WINOGRAD3 || form == SC_FORM_WINOGRAD4)))
        form = SC_FORM_AUTO; /* not legal here: the plan's rules */
    int64_t wm = wino_legal ? use_winograd(n->op, bwd_data ? p.o : p.g.c, bwd_data ? p.g.c : p.o, p.g.h, p.g.w, form) : 0;
    if (wm && n->op == SC_OP_CONV2D_BWD_WEIGHT) {
        /* the tile elements in groups among the threads, each group over
         * every chunk */
        int64_t a2 = (wm + 2) * (wm + 2);
        p.algo = SC_CONV_WINOGRAD;
        p.mslices = threads >= 4 ? 4 : threads >= 2 ? 2 : 1;
        p.nb = sc_conv_wino_chunk(p.n, ((p.g.h + wm - 1) / wm) * ((p.g.w + wm - 1) / wm), 1, SC_WINO_WGRAD_TILES);
        p.wino = sc_conv_wino_wgrad_geom_m(p.g.c, p.o, p.g.h, p.g.w, p.nb, (int)p.mslices, wm);
        p.at_b = p.wino.at_m;
        p.at_taps = p.wino.at_u;
        p.at_partial = p.at_taps + a2 * p.o * p.g.c;
        p.once = a2 * p.o * p.g.c; /* dU: one copy, each group summing its elements */
        partial = 0;
        snprintf(p.name, sizeof p.name, p.nb == 1 ? "winograd F(%lld,3)" : "winograd F(%lld,3) x%lld", (long long)wm,
                 (long long)p.nb);
        if (p.mslices > 1) {
            size_t len = strlen(p.name);
            snprintf(p.name + len, sizeof p.name - len, " e/%lld", (long long)p.mslices);
        }
    } else if (wm) {
        /* the data gradient: dy's o channels into dx's c, same h x w */
        int64_t a2 = (wm + 2) * (wm + 2), tt = ((p.g.h + wm - 1) / wm) * ((p.g.w + wm - 1) / wm);
        int64_t cin = bwd_data ? p.o : p.g.c, cout = bwd_data ? p.g.c : p.o;
        int64_t rb = sc_conv_wino_rows(p.n, tt, cin, cout, a2, threads);
        p.algo = SC_CONV_WINOGRAD;
        p.nb = rb ? p.n : sc_conv_wino_chunk(p.n, tt, threads, SC_WINO_TILES);
        p.wino = bwd_data ? sc_conv_wino_geom_m(p.o, p.g.c, p.g.h, p.g.w, p.nb, wm)
                          : sc_conv_wino_geom_m(p.g.c, p.o, p.g.h, p.g.w, p.nb, wm);
        p.at_b = p.wino.at_m;
        p.at_taps = p.wino.at_u;
        p.at_partial = p.at_taps + a2 * p.wino.us;
        p.once = a2 * p.wino.us; /* U: 16 MB at 512x512 for F(2,3), one copy, not one per thread */
        snprintf(p.name, sizeof p.name, p.nb == 1 ? "winograd F(%lld,3)" : "winograd F(%lld,3) x%lld", (long long)wm,
                 (long long)p.nb);
        if (rb) { /* the shared V is the one copy instead */
            p.wino = sc_conv_wino_rows_geom(cin, cout, p.g.h, p.g.w, p.n, wm, rb);
            p.at_b = p.wino.at_m;
            p.at_taps = p.wino.at_u;
            p.at_partial = p.wino.at_v + a2 * p.wino.vs;
            p.once = a2 * p.wino.vs;
            size_t len = strlen(p.name);
            snprintf(p.name + len, sizeof p.name - len, " o/%lld", (long long)(cout / rb));
        }
    } else if (shift) {
        sc_shift_geom s = shift_geom(g, i, threads);
        p.algo = SC_CONV_SHIFT;
        p.shift = s;
        p.nb = s.nb;
        p.at_b = s.cs * s.stride;
        p.at_taps = p.at_b + s.cd * s.stride;
        p.at_partial = p.at_taps + s.k * s.k * s.cs * s.cd;
        snprintf(p.name, sizeof p.name, "shift+gemm x%lld", (long long)p.nb);
    } else if (use_flip(n, p.g.c, p.o, policy, one_by_one && sc_conv_chunk(p.n, p.ohw, threads) == 1, form)) {
        /* dx = conv(dy, W flipped): O input channels of OH x OW, padded
         * k-1-p, giving C channels of H x W */
        p.algo = SC_CONV_FLIP;
        p.flip = sc_conv_flip_geom(&p.g, p.o);
        p.nb = sc_conv_chunk(p.n, p.g.h * p.g.w, threads);
        p.at_b = 0;
        p.at_taps = p.nb > 1 ? p.g.c * p.nb * p.g.h * p.g.w : 0; /* the chunk's [C, cols] */
        p.at_partial = p.at_taps + p.ckk * p.o;
        p.once = p.ckk * p.o; /* 9.4 MB on resnet18's layer 4: one copy, not one per thread */
        snprintf(p.name, sizeof p.name, p.nb == 1 ? "flip+implicit-gemm" : "flip+implicit-gemm x%lld", (long long)p.nb);
    } else {
        /* A chunk's im2col matrix [C*K*K, nb*OH*OW] and, for nb > 1, the
         * GEMM result [O, nb*OH*OW]; a 1x1 convolution of one image at a
         * time needs neither. */
        p.nb = sc_conv_chunk(p.n, p.ohw, threads);
        int implicit = use_implicit(n, p.g.c, policy, form);
        if (!implicit && pick && pick->cols_max > 0)
            p.nb = cap_chunk(p.n, p.nb, p.ckk, p.ohw, pick->cols_max);
        else if (!implicit && bwd_data && n->stride > 1)
            p.nb = dgrad_chunk(p.n, p.nb, p.ckk, p.ohw);
        else if (!implicit)
            p.nb = cap_chunk(p.n, p.nb, p.ckk, p.ohw, SC_CONV_COLS_MAX);
        p.algo = one_by_one && p.nb == 1 ? SC_CONV_GEMM1X1 : SC_CONV_IM2COL;
        if (p.algo == SC_CONV_IM2COL && implicit) {
            /* no columns: only the chunk's [O, cols] where nb > 1, after
             * the chunk's images channels-last for the weight gradient */
            p.algo = SC_CONV_IMPLICIT;
            int64_t rows = p.o;
            if (n->op == SC_OP_CONV2D_BWD_WEIGHT && use_rows(&p, threads, form)) {
                p.mslices = threads;
                p.nb = sc_conv_chunk(p.n, p.ohw, 1);
                rows = p.o / threads, partial = 0;
            }
            p.at_b = n->op == SC_OP_CONV2D_BWD_WEIGHT ? p.nb * p.g.c * p.g.h * p.g.w : 0;
            p.at_taps = p.at_partial = p.at_b + (p.nb > 1 ? rows * p.nb * p.ohw : 0);
        }
        if (p.algo == SC_CONV_IM2COL) {
            p.at_b = p.ckk * p.nb * p.ohw;
            p.at_taps = p.at_partial = p.at_b + (p.nb > 1 ? p.o * p.nb * p.ohw : 0);
        }
        if (p.algo == SC_CONV_GEMM1X1)
            snprintf(p.name, sizeof p.name, "gemm-1x1");
        else if (p.algo == SC_CONV_IMPLICIT)
            snprintf(p.name, sizeof p.name, p.nb == 1 ? "implicit-gemm" : "implicit-gemm x%lld", (long long)p.nb);
        else if (p.nb == 1)
            snprintf(p.name, sizeof p.name, "im2col+gemm");
        else
            snprintf(p.name, sizeof p.name, "im2col+gemm x%lld", (long long)p.nb);
        if (p.g.groups > 1) {
            size_t len = strlen(p.name);
            snprintf(p.name + len, sizeof p.name - len, " g%lld", (long long)p.g.groups);
        }
        if (p.mslices > 1) {
            size_t len = strlen(p.name);
            snprintf(p.name + len, sizeof p.name - len, " rows/%lld", (long long)p.mslices);
        }
    }
    p.cols = p.nb * (p.algo == SC_CONV_FLIP ? p.g.h * p.g.w : p.ohw);
    p.chunks = p.n / p.nb;
    p.slices = 1;
    if (use_slices(n, &p, threads)) {
        p.slices = threads;
        p.at_b = p.ckk / p.slices * p.cols;
        p.at_taps = p.at_partial = p.at_b + p.o * p.cols; /* dy's chunk gathered, even of one image */
        partial = 0;
        size_t len = strlen(p.name);
        snprintf(p.name + len, sizeof p.name - len, " c/%lld", (long long)p.slices);
    }
    if (pick) { /* info --kernels and the profile show --tune's nodes */
        size_t len = strlen(p.name);
        snprintf(p.name + len, sizeof p.name - len, " tuned");
    }
    p.workspace = p.at_partial + partial;
    p.last_unused = partial;
    return p;
}
