/* How each convolution node is computed (convplan.c): the one place that
 * decides a convolution's algorithm, its chunking, its workspace and the
 * kernel's name. The memory plan (workspace sizes) and the code generator
 * (cg_conv.c) both read the plan of sc_conv_plan_node.
 *
 *   gemm-1x1     a 1x1, stride-1, unpadded convolution of one image per
 *                GEMM: the input already is the GEMM operand.
 *   im2col+gemm  im2col of a chunk of images, one GEMM per chunk (also a
 *                1x1 convolution whose chunks hold several images).
 *   shift+gemm   stride-1 convolutions as k*k GEMMs over a zero-padded
 *                copy of the input: tap (kh, kw) multiplies the padded
 *                planes shifted by kh*Wp + kw, with output positions on the
 *                padded grid (the columns past the right edge are computed
 *                and dropped). No im2col matrix: each GEMM reads the input
 *                once instead of k*k times over, at the price of the
 *                padding's wasted positions.
 *   implicit-gemm  im2col+gemm without the im2col matrix: the generated
 *                GEMM gathers each k x n block of its B operand from the
 *                images straight into a stack buffer that stays in cache
 *                (cg_gemm.h, sc_cg_gemm_conv). Forward convolutions at
 *                stride 1 or 2, where it measured faster (convplan.c).
 *                The weight gradient's form ("ir", sc_cg_gemm_conv_rows)
 *                copies the chunk's images channels-last, gathers each
 *                block of B = columns^T as runs of channels (no transposing
 *                pack) and sums dW with its columns tap-major, (kh, kw, c);
 *                a second phase puts each row back in [c][kh][kw] order.
 *                A 1x1 unpadded one copies only the pixels its stride
 *                reads, and that copy, [cols, c], is a plain GEMM's B.
 *                Where x has at least SC_ROWS_MIN_C channels, or the
 *                kernel SC_ROWS_MIN_K taps a row: the 7x7 stems' runs of
 *                21 floats, not the 3x3 stems' 9 (convplan.c has the
 *                measurements).
 *   flip+implicit-gemm  the data gradient of a stride-1 convolution as
 *                the forward convolution of dy (padded k-1-p) with the
 *                weights transposed and their taps flipped (sc_conv_plan's
 *                flip geometry), by implicit-gemm: no columns, no col2im,
 *                no zeroing of dx. Phase 0 writes the flipped weights
 *                [C, O*K*K] once, at the end of the last thread's workspace
 *                part (the plan's `once`); phase 1 runs
 *                the chunks. Where dx has SC_FLIP_MIN_C channels or more,
 *                or SC_FLIP_SMALL_C where dy has fewer than SC_FLIP_K_O
 *                (convplan.c has the measurements).
 *   winograd F(2,3)  a 3x3, stride-1, pad-1 convolution (forward, or the
 *                data gradient as the flipped forward one) by Winograd's
 *                F(2x2, 3x3) (cg_winograd.c): 4x4 input tiles overlapping
 *                by 2, 16 GEMMs of [O, C] by [C, tiles] per chunk instead
 *                of one of [O, 9C] by [9C, 4 tiles]: 2.25x fewer
 *                multiply-adds. Phase 0 transforms the weights into
 *                the one copy at the end of the last thread's workspace
 *                part (the plan's `once`); phase 1 per chunk transforms the
 *                input tiles, runs the GEMMs, transforms the output
 *                (+bias, +stats). The profile's GFLOP/s still count the
 *                direct convolution's FLOPs. Where both channel counts are
 *                at least SC_WINO_MIN_C (convplan.c). The weight gradient
 *                (both at least SC_WINO_WGRAD_MIN_C)
 *                too (cg_winograd_wgrad.c): per chunk, dU[e] += Z[e]
 *                V[e]^T (Z = A dy A^T, V the input tiles' transform), 16
 *                GEMMs with the tiles as their depth, the threads taking
 *                groups of the 16 tile elements (mslices: each transforms
 *                only its rows of the tiles) over every chunk into the one
 *                dU (the plan's `once`); phase 1 dW = G^T dU G.
 *   winograd F(3,3), F(4,3)  the same with 3x3 and 4x4 output tiles (5x5
 *                and 6x6 input tiles, 25 and 36 GEMMs): 3.24x and 4x
 *                fewer multiply-adds than direct, larger rounding error
 *                (tests/test_winograd.c). The plan takes the tile size per
 *                plane as measured (convplan.c, wino_m; the weight
 *                gradient's, F(2,3) or F(3,3), wgrad_m).
 *
 * Grouped convolutions (groups G > 1) and dilated ones (taps D apart) run
 * as im2col+gemm only: im2col takes the dilated taps, and the columns'
 * rows for input slice g are contiguous ([C/G*K*K] rows each), so output
 * slice g is one GEMM of weight rows [g*O/G, (g+1)*O/G) with those rows;
 * the plan refuses gemm-1x1 and shift+gemm for them (a 1x1 grouped conv
 * is not one GEMM; shifting assumes unit taps and one dense weight).
 *
 * Policy (simclrc --conv): `im2col` (the default) uses im2col+gemm, or
 * gemm-1x1 where it applies; `shift` uses shift+gemm where it is legal and
 * the padded grid wastes at most SC_SHIFT_WASTE of the output positions
 * (large planes: ResNet's first stages), else im2col. On the machines we
 * measured (OpenBLAS 0.3.21, AVX-512), shift+gemm ran 0.83x to 1.12x the
 * speed of the generated im2col per convolution, so it is not the
 * default; bench/ compares the two. */
#ifndef SC_CONVPLAN_H
#define SC_CONVPLAN_H

#include <stdint.h>

#include "ir.h"

typedef enum { SC_CONV_IM2COL, SC_CONV_GEMM1X1, SC_CONV_SHIFT, SC_CONV_IMPLICIT, SC_CONV_FLIP, SC_CONV_WINOGRAD } sc_conv_algo;

/* The formulations --tune measures and imposes per node (convplan.c has
 * their table: name, the ops they apply to, the kernel names they give).
 * SC_FORM_AUTO leaves the choice to the plan's rules (a pick of it still
 * rules out shift+gemm, whatever the policy). A pick of a formulation its
 * node cannot take (shift at stride 2, flip of a forward conv, ...) gets
 * the plan's rules instead. A new formulation is one enum value, one
 * table entry and its branch in sc_conv_plan_node. */
typedef enum {
    SC_FORM_AUTO,
    SC_FORM_IM2COL,   /* im2col+gemm (gemm-1x1 where it applies), data gradient + col2im */
    SC_FORM_SHIFT,    /* shift+gemm */
    SC_FORM_IMPLICIT, /* implicit-gemm: forward, or the weight gradient's "ir" split by images */
    SC_FORM_ROWS,     /* the weight gradient's "ir" split by dW's rows (rows/T) */
    SC_FORM_FLIP,     /* flip+implicit-gemm data gradient */
    SC_FORM_WINOGRAD, /* winograd F(2,3): forward, or the data gradient flipped */
    SC_FORM_WINOGRAD3, /* winograd F(3,3), likewise, and the weight gradient */
    SC_FORM_WINOGRAD4, /* winograd F(4,3), likewise */
    SC_FORM_COUNT
} sc_conv_form;

/* The formulation's name in --tune tables ("auto", "im2col", "shift",
 * "implicit", "rows", "flip", "winograd", "winograd3", "winograd4"); sc_conv_form_parse is its inverse (0, or
 * -1 for an unknown name). */
const char *sc_conv_form_name(sc_conv_form f);
int sc_conv_form_parse(const char *name, sc_conv_form *f);
/* Whether node op `op` can be imposed formulation f (by its op alone). */
int sc_conv_form_applies(sc_conv_form f, sc_opkind op);
/* The formulation of a kernel named by sc_conv_plan_node (a profile's
 * impl), or SC_FORM_AUTO for a name it does not know. */
sc_conv_form sc_conv_form_of_kernel(const char *name);

/* Per-node choices measured by simclrc --tune: a convolution node whose
 * label and op match an entry takes its formulation (where legal), its
 * GEMMs the register block of mr rows and k-block kc (cg_gemm.h; 0: the
 * default rule's), and im2col chunks of at most cols_max floats of
 * columns (0: SC_CONV_COLS_MAX). */
typedef struct {
    char label[SC_NAME_MAX];
    sc_opkind op;
    sc_conv_form form;
    int mr, kc;
    int64_t cols_max;
    double ms_form[SC_FORM_COUNT]; /* as measured at the default blocking (-1: not measured) */
    double ms;                     /* the chosen kernel's time */
} sc_conv_pick;

typedef struct sc_conv_tuning_ {
    sc_conv_pick *v;
    int n;
} sc_conv_tuning;

/* sc_memplan_opts.conv; FORCE_SHIFT (every legal convolution, whatever
 * the waste) is for tests. SC_CONV_EXPLICIT, or'ed into a policy, keeps
 * the im2col matrix (no implicit-gemm): --gemm=openblas, whose cblas_sgemm
 * has no implicit form, and A/B comparisons. */
enum {
    SC_CONV_IM2COL_POLICY,
    SC_CONV_SHIFT_POLICY,
    SC_CONV_FORCE_SHIFT,
    SC_CONV_EXPLICIT = 16,
    SC_CONV_NO_WINOGRAD = 32
};

#define SC_SHIFT_WASTE 1.4
#define SC_ROWS_MIN_C 16
#define SC_ROWS_MIN_K 7
/* The implicit weight gradient on T threads splits dW's rows instead of
 * the images where each thread would see fewer than SC_MSPLIT_POSITIONS
 * output positions (its partial dW then costs a memory pass as large as
 * a fair part of its GEMM: resnet18-stl10's layer 4, 288 per thread at
 * batch 32) and the rows divide into T slices of at least SC_MSPLIT_ROWS. */
#define SC_MSPLIT_POSITIONS 1024
#define SC_MSPLIT_ROWS 16

/* winograd only where the GEMMs' rows and depth (the convolution's
 * input and output channels) are at least this many (convplan.c):
 * SC_WINO_MIN_C for the forward pass and the data gradient,
 * SC_WINO_WGRAD_MIN_C for the weight gradient */
#define SC_WINO_MIN_C 16
#define SC_WINO_WGRAD_MIN_C 32
/* and, for F(2,3), where the tiles' outputs are at most this many times
 * the plane's pixels (sc_conv_wino_legal_plane; F(3,3) and F(4,3) only
 * where they waste nothing) */
#define SC_WINO_WASTE 1.4
/* The largest tile size m the plan's rule takes (sc_conv_plan_node;
 * --tune's winograd3 and winograd4 picks take any) */
#define SC_WINO_M_MAX 4
/* Tiles per Winograd chunk: the largest divisor of the batch giving at
 * most this many (one image at least) */
#define SC_WINO_TILES 256
/* Floats between V's, M's and U's element matrices (sc_wino_geom): one
 * cache line. */
#define SC_WINO_SKEW 16
/* The multiply-adds per image from which planes 4 divides (beyond 4x4)
 * take F(4,3) (convplan.c, wino_m): resnet18's 3x3 layers have 37.7M. */
#define SC_WINO_F4_MACS (16 << 20)
/* Winograd by rows (convplan.c, sc_conv_wino_rows): the most bytes of a block's
 * transformed weights (in L2 and the thread's share of L3). */
#define SC_WINO_ROWS_BYTES (4 << 20)
/* and the weight gradient's (every thread takes every chunk; no fewer
 * than the threads needed): the GEMMs' depth. 512 and 1024 measured no
 * faster on resnet18-cifar and -stl10 b32 (Zen 4, machine loaded). */
#define SC_WINO_WGRAD_TILES 256

/* flip+implicit-gemm where dx has SC_FLIP_MIN_C channels or more, or
 * SC_FLIP_SMALL_C or more where dy has fewer than SC_FLIP_K_O channels
 * (the explicit GEMM's k; convplan.c) */
#define SC_FLIP_MIN_C 128
#define SC_FLIP_SMALL_C 16
#define SC_FLIP_K_O 64

/* At most this many floats in a chunk's im2col columns (4 MB): late
 * stages' chunks of many images (resnet18-cifar's 4x4 layer 4: 32 images,
 * 9.4 MB per thread) otherwise set the arena's peak. Measured on
 * resnet18-cifar b32 (AMD EPYC Zen 5, machine shared, user CPU time of
 * bench-step --threads 1, 2 alternating rounds): 7.32-7.38 s capped at
 * 1M floats against 7.54 s uncapped and 7.63 s at 2M; the arena 340 MB
 * uncapped, 308 MB with the cap and the weight gradient's slices. */
#define SC_CONV_COLS_MAX (1 << 20)
/* and, in a strided convolution's data gradient, this many (1 MB): the
 * GEMM writes the columns and col2im reads them straight back, from L2
 * where they fit; but no fewer GEMM columns than SC_CONV_DGRAD_MIN_COLS
 * (where SC_CONV_COLS_MAX allows). Measured (AMD EPYC Zen 5, thread CPU
 * time of bench-step --profile, one thread, 3 or 4 alternating rounds,
 * machine shared) against the 4 MB cap: resnet18-cifar b32's 3x3 stride-2
 * data gradients 0.94x the time at 32x32 (one image, 576 x 256 columns),
 * 0.96x at 16x16 (1152 x 128); resnet18-stl10 b32's 0.93x at 24x24 (576 x
 * 288); but 1.3x at stl10's 6x6 -> 3x3 with 72 columns (8 images), where
 * the narrow GEMM lost more than L2 saved: hence the floor. */
#define SC_CONV_DGRAD_COLS_MAX (1 << 18)
#define SC_CONV_DGRAD_MIN_COLS 128

/* The geometry of the forward convolution a node belongs to: input x of c
 * channels, h x w; kernel k, stride s, padding p; output oh x ow; taps d
 * apart (dilation); channels in `groups` slices. */
typedef struct {
    int64_t c, h, w, k, s, p, oh, ow, d, groups;
} sc_conv_geom;

/* The shifted-GEMM geometry of one node: the GEMMs read src (cs channels,
 * h x w, padded by p on each side to hp x wp) and write cd channels of
 * oh x ow. nb images per chunk, stacked along the padded planes. */
typedef struct {
    int64_t n, nb, cs, h, w, p, k, hp, wp, cd, oh, ow;
    int64_t plane;   /* hp * wp */
    int64_t stride;  /* floats per channel row of a chunk: nb * plane */
    int64_t npos;    /* GEMM columns: up to the chunk's last output */
} sc_shift_geom;

/* A Winograd F(m x m, 3x3) convolution (m = 2, 3 or 4; stride 1, pad 1:
 * output h x w) of cin channels into cout: th x tw tiles of m x m outputs
 * per image (tt), t per chunk, each read from an a x a input tile (a =
 * m+2). A thread's workspace holds V [a*a][cin][t] (at 0), M [a*a][cout][t]
 * (at_m) and one zero-bordered input plane hp x wp (at_plane); the last
 * thread's also the transformed weights U [a*a][cout][cin] (at_u). Each
 * of the a*a element matrices of V, M and U starts vs, ms and us floats
 * after the one before: its size plus SC_WINO_SKEW, since at sizes of
 * 2^k floats (512 x 32 tiles: 64 KB) the transforms' a*a loads or stores
 * of one tile all fell in one L1 set and evicted each other. */
typedef struct {
    int64_t cin, cout, h, w, th, tw, tt, t, hp, wp;
    int64_t at_m, at_plane, at_u;
    int64_t m;
    int64_t vs, ms, us;
    int64_t rb, at_v; /* by rows (sc_conv_wino_rows_geom), else 0 */
} sc_wino_geom;

/* The plan of a CONV2D, CONV2D_BWD_DATA or CONV2D_BWD_WEIGHT node. The
 * kernel runs over chunks of nb images: chunks is its parallel extent.
 * Its workspace, per thread, holds in order: part a (im2col columns
 * [ckk, cols], or the padded source; none for implicit-gemm), part b (the chunk's GEMM result
 * [o, cols] before it is scattered to NCHW where nb > 1, or the shifted
 * GEMMs' output grid), the per-tap weights (shift+gemm; flip+implicit-gemm's
 * flipped weights, one copy: see `once`) and, for a weight
 * gradient split over its chunks, the thread's partial dW (every thread but
 * the last, which sums into dW itself: the memory plan leaves its partial
 * out of the arena). */
typedef struct {
    sc_conv_algo algo;
    sc_conv_geom g;
    int64_t n, nb, chunks;
    int64_t slices;           /* weight gradient split over dW's columns: >1 slices of input
                               * channels run in parallel, each over every chunk */
    int64_t o;                /* output channels of the forward conv */
    int64_t ckk, ohw, cols;   /* im2col rows (c*k*k), output pixels, nb*ohw */
    int64_t cgkk, og;         /* per group: im2col rows (ckk/groups), output channels */
    sc_shift_geom shift;      /* SC_CONV_SHIFT only */
    sc_conv_geom flip;        /* SC_CONV_FLIP only: the convolution of dy giving dx (cols = nb*h*w) */
    sc_wino_geom wino;        /* SC_CONV_WINOGRAD only */
    int64_t mslices;          /* implicit weight gradient split by dW's rows: slices of o/mslices rows
                               * (the kernel's parallel extent, every chunk in each; no partials);
                               * winograd's weight gradient: its groups of tile elements; else 1 */
    int64_t at_b, at_taps, at_partial; /* workspace offsets of the parts */
    int64_t workspace;        /* floats per thread */
    int64_t last_unused;      /* floats at the end of the last thread's workspace it never
                               * touches: its partial dW (it sums into dW itself) */
    int64_t once;             /* floats at the end of the workspace that only the last thread's
                               * part holds (every other part ends before them, where the next
                               * part starts): flip+implicit-gemm's flipped weights and winograd's
                               * transformed ones, built and read by all threads from that one copy */
    char name[40];            /* the kernel's name: "gemm-1x1", "im2col+gemm x4", "implicit-gemm", ...;
                               * " tuned" at the end where a --tune pick applies */
} sc_conv_plan;

/* The plan of node i with `threads` workspaces, under the conv policy
 * (SC_CONV_IM2COL_POLICY..) and the tuning table's picks (or NULL). */
sc_conv_plan sc_conv_plan_node(const sc_graph *g, int i, int threads, int policy, const sc_conv_tuning *tuning);

/* flip+implicit-gemm: the forward convolution whose output is the data
 * gradient of the convolution g (stride 1, groups 1, not dilated, padding
 * 0..k-1) of o output channels. Its input is dy (o channels of oh x ow,
 * padded k-1-p), its output dx (g's c channels of h x w), its weights W's
 * transposed with the taps flipped: wf[ch][(o*k + kh)*k + kw] =
 * W[o][ch][k-1-kh][k-1-kw]. */
sc_conv_geom sc_conv_flip_geom(const sc_conv_geom *g, int64_t o);

/* Whether an h x w plane's 2x2 tiles waste little enough for Winograd
 * (SC_WINO_WASTE); _m: its m x m tiles. */
int sc_conv_wino_legal_plane(int64_t h, int64_t w);
int sc_conv_wino_legal_plane_m(int64_t h, int64_t w, int64_t m);

/* The Winograd F(2,3) geometry of cin channels of h x w into cout over
 * chunks of nb images; _m: F(m,3)'s. */
sc_wino_geom sc_conv_wino_geom(int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t nb);
sc_wino_geom sc_conv_wino_geom_m(int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t nb, int64_t m);

/* By rows: every one of n images in one chunk (t = n*tt tiles), the
 * threads taking blocks of rb output channels (cout/rb blocks) instead of
 * chunks of images. A thread's workspace holds its block's M [a*a][rb][t]
 * (at 0, ms = rb*t + skew), the plane (at_plane) and its block's U
 * [a*a][rb][cin] (at_u, us = rb*cin + skew); the last thread's also the
 * shared V [a*a][cin][t] (at_v), the plan's `once`. */
sc_wino_geom sc_conv_wino_rows_geom(int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t n, int64_t m, int64_t rb);

/* The plan's choices for n images of tt tiles each (convplan.c; also
 * bench/wino_bench.c): images per chunk, the largest divisor of n whose
 * tiles stay within `tiles` leaving at least `threads` chunks; the
 * output channels per block of the by-rows schedule for a*a = a2 tile
 * elements, 0 where chunks of images apply. */
int64_t sc_conv_wino_chunk(int64_t n, int64_t tt, int threads, int64_t tiles);
int64_t sc_conv_wino_rows(int64_t n, int64_t tt, int64_t cin, int64_t cout, int64_t a2, int threads);

/* The weight gradient's (cg_winograd_wgrad.h): x's c channels, dy's o,
 * the tile elements in `groups` groups (1, 2 or 4), a group's workspace V
 * [16/groups][c][t] (at 0), Z [16/groups][o][t] (at_m), the plane
 * (at_plane), then dU [16][o][c] (at_u, the plan's `once`). */
sc_wino_geom sc_conv_wino_wgrad_geom(int64_t c, int64_t o, int64_t h, int64_t w, int64_t nb, int groups);
/* likewise with F(m,3)'s (m+2)^2 tile elements (m = 2, 3, 4), a group's
 * V and Z holding the most any group has */
sc_wino_geom sc_conv_wino_wgrad_geom_m(int64_t c, int64_t o, int64_t h, int64_t w, int64_t nb, int groups, int64_t m);

/* Images per chunk of a convolution over n images of ohw output pixels:
 * enough that one GEMM has a few hundred columns, a divisor of n, and at
 * least `threads` chunks where n allows. */
int64_t sc_conv_chunk(int64_t n, int64_t ohw, int threads);

#endif
