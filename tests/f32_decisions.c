/* The float32 step's decisions imposed on the float64 interpreter
 * (f32_decisions.h). */
#include "f32_decisions.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <llvm-c/Support.h>

#include "codegen.h"
#include "interp.h"
#include "model.h"
#include "pipeline.h"
#include "refops.h"
#include "sc_parallel.h"
#include "sc_rng.h"
#include "sc_safetensors.h"
#include "tune.h"

typedef void (*step32_fn)(const float *, float *, float *, float *, const float *, float *);

/* What the float32 step decided, per node of the step graph: ReLU outputs
 * (y > 0 is the decision, y the float32 value) and max-pool argmaxes
 * (index in the input plane). */
typedef struct {
    const sc_graph *g;
    const sc_memplan *mp;
    float *base[SC_REG_COUNT];
    float **relu;          /* per node, or NULL */
    long **argmax;         /* per node, or NULL */
    int prev;              /* the node that ran last */
    int oom;
} record;

static record *rec;     /* the JIT's profiler hook has no context argument */
static int32_t hook_on = 1;

static int relu_like(sc_opkind op)
{
    return op == SC_OP_RELU || op == SC_OP_BATCHNORM_RELU || op == SC_OP_ADD_RELU || op == SC_OP_BATCHNORM_ADD_RELU;
}

static sc_window pool_window(const sc_graph *g, const sc_node *n)
{
    const sc_tensor *x = &g->t[n->in[0]], *y = &g->t[n->out[0]];
    sc_window w = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], y->shape[1],
                   n->kernel, n->stride, n->pad, y->shape[2], y->shape[3], n->groups, n->dilation};
    return w;
}

/* The first in-bounds element of window (oi, oj) of a plane equal to v
 * (the float32 kernel's maximum), or, for float64 (v NaN), the argmax by
 * refops' rule: first strictly greater in scan order. */
static long window_pick(const sc_window *w, const float *p32, const double *p64, double v, int oi, int oj)
{
    int i0 = oi * w->stride - w->pad, j0 = oj * w->stride - w->pad;
    int i1 = i0 + w->kernel < w->h ? i0 + w->kernel : w->h, j1 = j0 + w->kernel < w->w ? j0 + w->kernel : w->w;
    i0 = i0 < 0 ? 0 : i0;
    j0 = j0 < 0 ? 0 : j0;
    long best = (long)i0 * w->w + j0;
    double m = -INFINITY;
    for (int i = i0; i < i1; i++)
        for (int j = j0; j < j1; j++) {
            long k = (long)i * w->w + j;
            if (p32 && (double)p32[k] == v)
                return k;
            if (!p32 && (p64[k] > m || isnan(p64[k]))) {
                m = p64[k];
                best = k;
            }
        }
    return best;
}

static float *at(const record *r, int t)
{
    return r->base[r->mp->region[t]] + r->mp->offset[t];
}

/* Called by the generated step before node i (-1 after the last): node
 * r->prev has just finished, its outputs are in place. */
static void hook(int32_t i)
{
    record *r = rec;
    int p = r->prev;
    r->prev = i;
    if (p < 0 || r->oom)
        return;
    const sc_node *n = &r->g->n[p];
    if (relu_like(n->op)) {
        long num = r->g->t[n->out[0]].numel;
        const float *y = at(r, n->out[0]);
        if (!(r->relu[p] = malloc((size_t)num * sizeof *y))) {
            r->oom = 1;
            return;
        }
        memcpy(r->relu[p], y, (size_t)num * sizeof *y);
    } else if (n->op == SC_OP_MAXPOOL) {
        sc_window w = pool_window(r->g, n);
        long planes = (long)w.n * w.c, cells = (long)w.oh * w.ow;
        const float *x = at(r, n->in[0]), *y = at(r, n->out[0]);
        if (!(r->argmax[p] = malloc((size_t)(planes * cells) * sizeof(long)))) {
            r->oom = 1;
            return;
        }
        for (long q = 0; q < planes; q++)
            for (int oi = 0; oi < w.oh; oi++)
                for (int oj = 0; oj < w.ow; oj++) {
                    long c = q * cells + (long)oi * w.ow + oj;
                    r->argmax[p][c] = window_pick(&w, x + q * (long)w.h * w.w, NULL, y[c], oi, oj);
                }
    }
}

/* Parameters, buffers and input as the binary's dump-step draws them. */
static void seed_interp(sc_interp *it, unsigned long long seed)
{
    const sc_graph *g = it->g;
    sc_interp_init_params(it, seed);
    sc_rng r;
    sc_rng_seed(&r, seed, SC_STREAM_INPUT);
    for (long i = 0; i < g->t[g->input].numel; i++)
        it->buf[g->input][i] = (float)sc_rng_normal(&r);
}

static void to_float(float *dst, const double *src, long n)
{
    for (long i = 0; i < n; i++)
        dst[i] = (float)src[i];
}

/* Runs the float32 step in memory, recording its decisions. */
static int run_f32(const sc_spec *m, sc_compiled *cp, int gemm_openblas, sc_interp *it, record *r, float **grads,
                   char *err, size_t errlen)
{
    const sc_graph *g = &cp->g;
    const sc_memplan *mp = &cp->smp;
    sc_codegen_options o = {.opt_level = 2, .gemm_openblas = gemm_openblas};
    sc_codegen *cg = sc_codegen_new(&o, err, errlen);
    if (!cg)
        return -1;
    sc_planned ps = {&cp->g, &cp->smp}, pe = {&cp->enc, &cp->emp}, pf = {&cp->ft, &cp->fmp};
    step32_fn step = NULL;
    if (!sc_codegen_module(cg, m, &ps, &pe, &pf, err, errlen) && !sc_codegen_optimize(cg, err, errlen))
        step = (step32_fn)sc_codegen_jit(cg, "sc_step", err, errlen);
    int64_t nparams = cp->fmp.params_floats + 16, nbuf = mp->buffers_floats + 16, narena = mp->arena_floats + 16;
    long nin = g->t[g->input].numel;
    float *params = aligned_alloc(64, (size_t)(nparams * 4 + 63) / 64 * 64);
    float *gr = aligned_alloc(64, (size_t)(nparams * 4 + 63) / 64 * 64);
    float *buffers = aligned_alloc(64, (size_t)(nbuf * 4 + 63) / 64 * 64);
    float *arena = aligned_alloc(64, (size_t)(narena * 4 + 63) / 64 * 64);
    float *input = aligned_alloc(64, (size_t)(nin * 4 + 63) / 64 * 64);
    float loss = 0;
    int rc = -1;
    if (step && params && gr && buffers && arena && input) {
        memset(params, 0, (size_t)nparams * 4);
        memset(gr, 0, (size_t)nparams * 4);
        memset(buffers, 0, (size_t)nbuf * 4);
        memset(arena, 0, (size_t)narena * 4);
        for (int i = 0; i < g->nparams; i++)
            to_float(params + mp->offset[g->params[i]], it->buf[g->params[i]], g->t[g->params[i]].numel);
        for (int i = 0; i < g->nbuffers; i++)
            to_float(buffers + mp->offset[g->buffers[i]], it->buf[g->buffers[i]], g->t[g->buffers[i]].numel);
        to_float(input, it->buf[g->input], nin);
        r->base[SC_REG_PARAMS] = params;
        r->base[SC_REG_GRADS] = gr;
        r->base[SC_REG_BUFFERS] = buffers;
        r->base[SC_REG_ARENA] = arena;
        r->base[SC_REG_INPUT] = input;
        r->base[SC_REG_OUT] = &loss;
        r->prev = -1;
        rec = r;
        step(params, gr, buffers, arena, input, &loss);
        rec = NULL;
        if (r->oom)
            snprintf(err, errlen, "out of memory recording the float32 decisions");
        else
            rc = 0;
    } else if (step) {
        snprintf(err, errlen, "out of memory for the float32 step");
    }
    free(params);
    free(buffers);
    free(arena);
    free(input);
    sc_codegen_free(cg);
    if (rc)
        free(gr);
    else
        *grads = gr;
    return rc;
}

/* Pre-activation k of ReLU-like node n in the interpreter. */
static double pre_activation(const sc_interp *it, const sc_node *n, long k)
{
    const sc_graph *g = it->g;
    double *const *b = it->buf;
    if (n->op == SC_OP_RELU)
        return b[n->in[0]][k];
    if (n->op == SC_OP_ADD_RELU)
        return b[n->in[0]][k] + b[n->in[1]][k];
    const sc_tensor *x = &g->t[n->in[0]];
    long hw = x->numel / ((long)x->shape[0] * x->shape[1]);
    int ch = (int)(k / hw % x->shape[1]);
    double bn = b[n->in[1]][ch] * (b[n->in[0]][k] - b[n->out[1]][ch]) / sqrt(b[n->out[2]][ch] + n->eps) +
                b[n->in[2]][ch];
    return n->op == SC_OP_BATCHNORM_ADD_RELU ? bn + b[n->in[3]][k] : bn;
}

static void note_margin(f32_flips *fl, double margin, const char *name)
{
    if (margin > fl->worst_margin || !fl->worst_at[0]) {
        fl->worst_margin = margin;
        snprintf(fl->worst_at, sizeof fl->worst_at, "%s", name);
    }
}

/* After ReLU-like node i: its output takes the float32 decisions. A flip
 * changes the output by at most its margin. Where both sides are
 * positive, y32 - y64 is the float32 error of the pre-activation. */
static void impose_relu(sc_interp *it, int i, const float *y32, f32_flips *fl)
{
    const sc_node *n = &it->g->n[i];
    const sc_tensor *y = &it->g->t[n->out[0]];
    double *yv = it->buf[n->out[0]], scale = 0;
    for (long k = 0; k < y->numel; k++)
        scale = fmax(scale, fabs(pre_activation(it, n, k)));
    fl->decisions += y->numel;
    for (long k = 0; k < y->numel; k++) {
        int keep = y32[k] > 0.0f;
        if ((yv[k] > 0) == keep) {
            if (keep) {
                double e = fabs((double)y32[k] - yv[k]) / fmax(scale, DBL_MIN);
                fl->max_error = fmax(fl->max_error, e);
                fl->sum_sq_error += e * e;
                fl->positives++;
            }
            continue;
        }
        double z = pre_activation(it, n, k);
        fl->relu_flips++;
        note_margin(fl, fabs(z) / fmax(scale, DBL_MIN), y->name);
        yv[k] = keep ? fmax(fabs(z), DBL_MIN) : 0.0;
    }
}

/* After max-pool node i: each window takes the float32 argmax. */
static void impose_pool(sc_interp *it, int i, const long *argmax, f32_flips *fl)
{
    const sc_node *n = &it->g->n[i];
    sc_window w = pool_window(it->g, n);
    long planes = (long)w.n * w.c, cells = (long)w.oh * w.ow, plane = (long)w.h * w.w;
    const double *x = it->buf[n->in[0]];
    double *y = it->buf[n->out[0]], scale = 0;
    for (long k = 0; k < planes * plane; k++)
        scale = fmax(scale, fabs(x[k]));
    fl->decisions += planes * cells;
    for (long q = 0; q < planes; q++)
        for (int oi = 0; oi < w.oh; oi++)
            for (int oj = 0; oj < w.ow; oj++) {
                long c = q * cells + (long)oi * w.ow + oj;
                long a64 = window_pick(&w, NULL, x + q * plane, NAN, oi, oj);
                if (a64 == argmax[c])
                    continue;
                fl->pool_flips++;
                note_margin(fl, (x[q * plane + a64] - x[q * plane + argmax[c]]) / fmax(scale, DBL_MIN),
                            it->g->t[n->out[0]].name);
                y[c] = x[q * plane + argmax[c]];
            }
}

/* After max-pool backward node i (dy, x) -> dx: the gradient goes where
 * the float32 forward took the maximum. */
static void impose_pool_bwd(sc_interp *it, int i, const record *r)
{
    const sc_graph *g = it->g;
    const sc_node *n = &g->n[i];
    for (int f = 0; f < g->nn; f++) {
        const sc_node *fw = &g->n[f];
        if (fw->op != SC_OP_MAXPOOL || fw->in[0] != n->in[1] || !r->argmax[f])
            continue;
        sc_window w = pool_window(g, fw);
        long planes = (long)w.n * w.c, cells = (long)w.oh * w.ow, plane = (long)w.h * w.w;
        double *dx = it->buf[n->out[0]];
        const double *dy = it->buf[n->in[0]];
        memset(dx, 0, sizeof *dx * (size_t)(planes * plane));
        for (long q = 0; q < planes; q++)
            for (long c = 0; c < cells; c++)
                dx[q * plane + r->argmax[f][q * cells + c]] += dy[q * cells + c];
        return;
    }
}

static int save(const sc_interp *it, const sc_memplan *mp, const float *grads32, const char *path, char *err,
                size_t errlen)
{
    const sc_graph *g = it->g;
    sc_st_writer *w = sc_st_writer_new();
    int rc = w ? 0 : -1;
    for (int i = -1; i < g->nparams && !rc; i++) {
        const sc_tensor *t = i < 0 ? &g->t[g->loss] : &g->t[g->params[i]];
        const double *v = i < 0 ? it->buf[g->loss] : t->grad >= 0 ? it->buf[t->grad] : NULL;
        float *f = calloc((size_t)t->numel, sizeof *f);
        if (!f) {
            rc = -1;
            break;
        }
        if (v)
            to_float(f, v, t->numel);
        int64_t shape[SC_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++)
            shape[d] = t->shape[d];
        char name[SC_NAME_MAX + 16];
        snprintf(name, sizeof name, i < 0 ? "loss" : "grad/%s", t->name);
        sc_st_writer_f32(w, name, t->ndim, shape, f);
        if (i >= 0 && t->grad >= 0) {
            snprintf(name, sizeof name, "f32/grad/%s", t->name);
            sc_st_writer_f32(w, name, t->ndim, shape, grads32 + mp->offset[t->grad]);
        }
        free(f);
    }
    if (rc)
        snprintf(err, errlen, "out of memory writing %s", path);
    else
        rc = sc_st_writer_save(w, path, err, errlen);
    sc_st_writer_free(w);
    return rc;
}

int f32_imposed_step(const char *spec, int batch, int conv, int gemm_openblas, int fuse_stats, int threads,
                     const char *tune_table, unsigned long long seed,
                     const char *path, f32_flips *fl, char *err, size_t errlen)
{
    static int registered;
    if (!registered) {
        /* The JIT resolves only symbols the process registers. */
        LLVMAddSymbol("cblas_sgemm", (void *)cblas_sgemm);
        LLVMAddSymbol("erff", (void *)erff);
        LLVMAddSymbol("erf", (void *)erf);
        LLVMAddSymbol("sc_parallel_for", (void *)sc_parallel_for);
        LLVMAddSymbol("sc_threads", (void *)sc_threads);
        LLVMAddSymbol("sc_prof_on", (void *)&hook_on);
        LLVMAddSymbol("sc_prof_node", (void *)hook);
        registered = 1;
    }
    memset(fl, 0, sizeof *fl);
    if (sc_threads_set(threads) != threads) {
        snprintf(err, errlen, "cannot start %d threads", threads);
        return -1;
    }
    sc_spec m;
    if (sc_model_load(spec, &m)) {
        snprintf(err, errlen, "%s: cannot load the model", spec);
        return -1;
    }
    sc_passes_opts po = {.batch = batch, .classes = 10, .fuse = 1, .fuse_stats = fuse_stats, .last = SC_PASS_MEMPLAN,
                         .plan = {.threads = threads, .conv = conv}};
    /* a --tune binary's picks, from the table it saved */
    sc_tune_table table = {0};
    sc_conv_tuning tuning = {NULL, 0};
    if (tune_table && (sc_tune_table_read(tune_table, &table, err, errlen) ||
                       sc_tune_choose(&table, &tuning, err, errlen))) {
        sc_tune_table_free(&table);
        sc_model_free(&m);
        return -1;
    }
    if (tune_table)
        po.plan.tuning = &tuning;
    sc_compiled cp;
    if (sc_passes_run(&m, &po, &cp)) {
        snprintf(err, errlen, "%s: the compiler's passes failed", spec);
        sc_tune_free(&tuning);
        sc_tune_table_free(&table);
        sc_model_free(&m);
        return -1;
    }
    const sc_graph *g = &cp.g;
    record r = {g, &cp.smp, {0}, calloc((size_t)g->nn, sizeof *r.relu), calloc((size_t)g->nn, sizeof *r.argmax),
                -1, 0};
    sc_interp it;
    float *grads32 = NULL;
    int rc = -1;
    if (!r.relu || !r.argmax)
        snprintf(err, errlen, "out of memory");
    else if (sc_interp_init(&it, g))
        snprintf(err, errlen, "out of memory for the interpreter");
    else {
        seed_interp(&it, seed);
        if (!run_f32(&m, &cp, gemm_openblas, &it, &r, &grads32, err, errlen)) {
            for (int i = 0; i < g->nn; i++) {
                sc_interp_run(&it, i, i + 1);
                if (r.relu[i])
                    impose_relu(&it, i, r.relu[i], fl);
                else if (r.argmax[i])
                    impose_pool(&it, i, r.argmax[i], fl);
                else if (g->n[i].op == SC_OP_MAXPOOL_BWD)
                    impose_pool_bwd(&it, i, &r);
            }
            rc = save(&it, &cp.smp, grads32, path, err, errlen);
        }
        sc_interp_free(&it);
    }
    for (int i = 0; r.relu && r.argmax && i < g->nn; i++) {
        free(r.relu[i]);
        free(r.argmax[i]);
    }
    free(r.relu);
    free(r.argmax);
    free(grads32);
    sc_compiled_free(&cp);
    sc_tune_free(&tuning);
    sc_tune_table_free(&table);
    sc_model_free(&m);
    return rc;
}
