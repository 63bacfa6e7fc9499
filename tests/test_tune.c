/* test_tune: simclrc --tune's choice from its measurement table
 * (compiler/tune.c), without measuring:
 * - the choice per node: the formulation (im2col, shift, implicit, rows,
 *   flip, as the op allows), then the fastest blocking or im2col chunk
 *   cap of it;
 *   equal times go to the smaller (mr, kc), default first; the rows'
 *   order does not matter;
 * - the search (sc_tune_measure) against a model machine: trial builds
 *   that write scripts printing the profile the picks would give;
 * - the plan takes the formulation a pick asks for where the node can,
 *   the plan's rules where not;
 * - the table survives writing and reading, tables of the first format
 *   (no cols) too; a malformed one is refused with its file and line;
 * - the compiled module (LLVM IR of tests/specs/basic-stages.xml) is a
 *   function of the table: the same table, read twice or with its rows
 *   reversed, gives identical bytes, also where it favours other
 *   formulations; a table that favours another blocking changes the GEMM
 *   functions (their names carry it), one that favours other formulations
 *   the kernels (named "... tuned"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "codegen.h"
#include "model.h"
#include "pipeline.h"
#include "tune.h"

static char dir[64];

static sc_tune_row row(const char *node, sc_opkind op, const char *algo, int mr, int kc, double ms)
{
    sc_tune_row r = {.op = op, .mr = mr, .kc = kc, .ms = ms};
    snprintf(r.node, sizeof r.node, "%s", node);
    if (sc_conv_form_parse(algo, &r.form))
        fail_msg("no formulation %s", algo);
    return r;
}

static sc_tune_row row_cols(const char *node, sc_opkind op, const char *algo, int cols, double ms)
{
    sc_tune_row r = row(node, op, algo, 0, 0, ms);
    r.cols = cols;
    return r;
}

static const sc_conv_pick *find(const sc_conv_tuning *t, const char *node, sc_opkind op)
{
    for (int i = 0; i < t->n; i++)
        if (t->v[i].op == op && !strcmp(t->v[i].label, node))
            return &t->v[i];
    return NULL;
}

static void choose(sc_tune_row *rows, int n, sc_conv_tuning *picks)
{
    sc_tune_table t = {rows, n, n};
    char err[256];
    assert_int_equal(sc_tune_choose(&t, picks, err, sizeof err), 0);
}

static void test_choose(void **state)
{
    (void)state;
    sc_tune_row rows[] = {
        /* a: shift is faster at the default blocking; among shift's
         * blockings mr 8 wins; im2col's faster blocking does not count */
        row("a", SC_OP_CONV2D, "im2col", 0, 0, 10),
        row("a", SC_OP_CONV2D, "shift", 0, 0, 9),
        row("a", SC_OP_CONV2D, "shift", 8, 0, 7),
        row("a", SC_OP_CONV2D, "shift", 8, 256, 7.5),
        row("a", SC_OP_CONV2D, "im2col", 6, 0, 1),
        /* a's data gradient: its own choice; a tie between mr 6 kc 384,
         * mr 6 kc 128 and mr 14: the smaller (mr, kc) */
        row("a", SC_OP_CONV2D_BWD_DATA, "im2col", 0, 0, 10),
        row("a", SC_OP_CONV2D_BWD_DATA, "im2col", 14, 0, 4),
        row("a", SC_OP_CONV2D_BWD_DATA, "im2col", 6, 384, 4),
        row("a", SC_OP_CONV2D_BWD_DATA, "im2col", 6, 128, 4),
        /* b: the default ties with a candidate and stays */
        row("b", SC_OP_CONV2D_BWD_WEIGHT, "im2col", 8, 176, 3),
        row("b", SC_OP_CONV2D_BWD_WEIGHT, "im2col", 0, 0, 3),
        /* c: blockings only, no algorithm measured: not chosen */
        row("c", SC_OP_CONV2D, "im2col", 8, 0, 1),
    };
    int n = (int)(sizeof rows / sizeof *rows);
    sc_conv_tuning t;
    choose(rows, n, &t);
    assert_int_equal(t.n, 3);
    const sc_conv_pick *a = find(&t, "a", SC_OP_CONV2D), *ad = find(&t, "a", SC_OP_CONV2D_BWD_DATA),
                       *b = find(&t, "b", SC_OP_CONV2D_BWD_WEIGHT);
    assert_non_null(a);
    assert_non_null(ad);
    assert_non_null(b);
    assert_null(find(&t, "c", SC_OP_CONV2D));
    assert_int_equal(a->form, SC_FORM_SHIFT);
    assert_int_equal(a->mr, 8);
    assert_int_equal(a->kc, 0);
    assert_true(a->ms == 7 && a->ms_form[SC_FORM_IM2COL] == 10 && a->ms_form[SC_FORM_SHIFT] == 9);
    assert_int_equal(ad->form, SC_FORM_IM2COL);
    assert_int_equal(ad->mr, 6);
    assert_int_equal(ad->kc, 128);
    assert_true(ad->ms_form[SC_FORM_SHIFT] < 0 && ad->ms_form[SC_FORM_FLIP] < 0);
    assert_int_equal(b->mr, 0);
    assert_int_equal(b->kc, 0);

    /* the rows reversed: the same picks */
    sc_tune_row rev[sizeof rows / sizeof *rows];
    for (int i = 0; i < n; i++)
        rev[i] = rows[n - 1 - i];
    sc_conv_tuning t2;
    choose(rev, n, &t2);
    assert_int_equal(t2.n, t.n);
    for (int i = 0; i < t.n; i++) {
        const sc_conv_pick *p = &t.v[i], *q = find(&t2, p->label, p->op);
        assert_non_null(q);
        assert_true(p->form == q->form && p->mr == q->mr && p->kc == q->kc && p->cols_max == q->cols_max &&
                    p->ms == q->ms);
    }
    /* a table that favours another blocking changes the choice */
    rows[4] = row("a", SC_OP_CONV2D, "shift", 14, 384, 6.5);
    sc_conv_tuning t3;
    choose(rows, n, &t3);
    a = find(&t3, "a", SC_OP_CONV2D);
    assert_true(a->mr == 14 && a->kc == 384);
    sc_tune_free(&t);
    sc_tune_free(&t2);
    sc_tune_free(&t3);
}

/* The formulations (convplan.h): each op's node keeps the fastest at the
 * default blocking, equal times going to the first in sc_conv_form order,
 * then the fastest blocking or im2col chunk cap of it. */
static void test_choose_forms(void **state)
{
    (void)state;
    sc_tune_row rows[] = {
        /* d: the row split wins, at mr 14 */
        row("d", SC_OP_CONV2D_BWD_WEIGHT, "im2col", 0, 0, 10),
        row("d", SC_OP_CONV2D_BWD_WEIGHT, "implicit", 0, 0, 8),
        row("d", SC_OP_CONV2D_BWD_WEIGHT, "rows", 0, 0, 7),
        row("d", SC_OP_CONV2D_BWD_WEIGHT, "rows", 14, 0, 6.5),
        row("d", SC_OP_CONV2D_BWD_WEIGHT, "implicit", 8, 0, 6),
        /* e: im2col ties with flip and goes first; its smaller chunks win */
        row("e", SC_OP_CONV2D_BWD_DATA, "flip", 0, 0, 5),
        row("e", SC_OP_CONV2D_BWD_DATA, "im2col", 0, 0, 5),
        row("e", SC_OP_CONV2D_BWD_DATA, "shift", 0, 0, 6),
        row_cols("e", SC_OP_CONV2D_BWD_DATA, "im2col", 1 << 22, 4.5),
        row_cols("e", SC_OP_CONV2D_BWD_DATA, "im2col", 1 << 18, 4),
        /* f: implicit-gemm forward beats im2col and the plan's rules */
        row("f", SC_OP_CONV2D, "auto", 0, 0, 4.5),
        row("f", SC_OP_CONV2D, "im2col", 0, 0, 4),
        row("f", SC_OP_CONV2D, "implicit", 0, 0, 3),
    };
    int n = (int)(sizeof rows / sizeof *rows);
    sc_conv_tuning t, t2;
    choose(rows, n, &t);
    assert_int_equal(t.n, 3);
    const sc_conv_pick *d = find(&t, "d", SC_OP_CONV2D_BWD_WEIGHT), *e = find(&t, "e", SC_OP_CONV2D_BWD_DATA),
                       *f = find(&t, "f", SC_OP_CONV2D);
    assert_non_null(d);
    assert_non_null(e);
    assert_non_null(f);
    assert_int_equal(d->form, SC_FORM_ROWS);
    assert_true(d->mr == 14 && d->ms == 6.5 && d->ms_form[SC_FORM_IMPLICIT] == 8 && d->ms_form[SC_FORM_SHIFT] < 0);
    assert_int_equal(e->form, SC_FORM_IM2COL);
    assert_true(e->cols_max == 1 << 18 && e->ms == 4 && e->mr == 0);
    assert_int_equal(f->form, SC_FORM_IMPLICIT);
    assert_true(f->ms_form[SC_FORM_AUTO] == 4.5);
    sc_tune_row rev[sizeof rows / sizeof *rows];
    for (int i = 0; i < n; i++)
        rev[i] = rows[n - 1 - i];
    choose(rev, n, &t2);
    for (int i = 0; i < t.n; i++) {
        const sc_conv_pick *p = &t.v[i], *q = find(&t2, p->label, p->op);
        assert_non_null(q);
        assert_true(p->form == q->form && p->mr == q->mr && p->kc == q->kc && p->cols_max == q->cols_max);
    }
    sc_tune_free(&t);
    sc_tune_free(&t2);
}

/* The plan takes each formulation a node's pick asks for where the node
 * can (basic-stages at 2 threads has a node of every op taking each one
 * its op has), and the plan's rules where it cannot; the kernel's name
 * says so ("tuned", and the formulation sc_conv_form_of_kernel reads). */
static void test_plan_forms(void **state)
{
    (void)state;
    char spec[4096];
    snprintf(spec, sizeof spec, "%s/tests/specs/basic-stages.xml", getenv("SC_SOURCE_DIR"));
    sc_spec m;
    assert_int_equal(sc_model_load(spec, &m), 0);
    sc_passes_opts po = {.classes = 10, .fuse = 1, .last = SC_PASS_SCHEDULE};
    sc_compiled cp;
    assert_int_equal(sc_passes_run(&m, &po, &cp), 0);
    int taken[3][SC_FORM_COUNT] = {{0}};
    for (int i = 0; i < cp.g.nn; i++) {
        const sc_node *n = &cp.g.n[i];
        int o = n->op == SC_OP_CONV2D ? 0 : n->op == SC_OP_CONV2D_BWD_DATA ? 1 : n->op == SC_OP_CONV2D_BWD_WEIGHT ? 2 : -1;
        if (o < 0)
            continue;
        sc_conv_plan rules = sc_conv_plan_node(&cp.g, i, 2, SC_CONV_IM2COL_POLICY, NULL);
        assert_null(strstr(rules.name, "tuned"));
        for (int f = SC_FORM_AUTO + 1; f < SC_FORM_COUNT; f++) {
            if (!sc_conv_form_applies((sc_conv_form)f, n->op))
                continue;
            sc_conv_pick pick = {.op = n->op, .form = (sc_conv_form)f};
            snprintf(pick.label, sizeof pick.label, "%s", n->label);
            sc_conv_tuning one = {&pick, 1};
            sc_conv_plan p = sc_conv_plan_node(&cp.g, i, 2, SC_CONV_IM2COL_POLICY, &one);
            assert_non_null(strstr(p.name, " tuned"));
            sc_conv_form got = sc_conv_form_of_kernel(p.name);
            if ((int)got == f)
                taken[o][f]++;
            else if (!(got == sc_conv_form_of_kernel(rules.name) && p.algo == rules.algo &&
                       p.mslices == rules.mslices && p.nb == rules.nb))
                fail_msg("%s %s asked %s: ran %s, not the plan's rules (%s)", sc_op_name(n->op), n->label,
                         sc_conv_form_name((sc_conv_form)f), p.name, rules.name);
        }
    }
    for (int o = 0; o < 3; o++)
        for (int f = SC_FORM_AUTO + 1; f < SC_FORM_COUNT; f++)
            if (sc_conv_form_applies((sc_conv_form)f, o == 0 ? SC_OP_CONV2D : o == 1 ? SC_OP_CONV2D_BWD_DATA
                                                                              : SC_OP_CONV2D_BWD_WEIGHT) &&
                !taken[o][f])
                fail_msg("no node of op %d takes %s", o, sc_conv_form_name((sc_conv_form)f));
    /* the im2col chunks' cap: a smaller one, smaller chunks */
    for (int i = 0; i < cp.g.nn; i++) {
        const sc_node *n = &cp.g.n[i];
        if (n->op != SC_OP_CONV2D_BWD_DATA)
            continue;
        sc_conv_pick pick = {.op = n->op, .form = SC_FORM_IM2COL};
        snprintf(pick.label, sizeof pick.label, "%s", n->label);
        sc_conv_tuning one = {&pick, 1};
        sc_conv_plan big = sc_conv_plan_node(&cp.g, i, 2, SC_CONV_IM2COL_POLICY, &one);
        pick.cols_max = big.ckk * big.ohw; /* one image's columns */
        sc_conv_plan small = sc_conv_plan_node(&cp.g, i, 2, SC_CONV_IM2COL_POLICY, &one);
        assert_int_equal(small.nb, 1);
        assert_true(small.workspace <= big.workspace);
    }
    sc_compiled_free(&cp);
    sc_model_free(&m);
}

/* sc_tune_measure's search against a model machine: the "binary" a
 * trial build writes is a script printing the profile CSV the picks would
 * give, its times from a table (no timing). One node of each op: "a"
 * (forward: shift fastest, then mr 8), its data gradient (flip fastest, kc
 * 256; shift+gemm not legal: it runs im2col, the plan's rule) and its
 * weight gradient (im2col fastest, chunks of 256K floats). */
typedef struct {
    int builds;
} fake_ctx;

static const char *fake_impl(sc_conv_form f)
{
    static const char *const names[SC_FORM_COUNT] = {
        [SC_FORM_IM2COL] = "im2col+gemm x2", [SC_FORM_SHIFT] = "shift+gemm x1", [SC_FORM_IMPLICIT] = "implicit-gemm",
        [SC_FORM_ROWS] = "implicit-gemm rows/2", [SC_FORM_FLIP] = "flip+implicit-gemm x2"};
    return names[f];
}

static int fake_build(void *p, const char *exe, int conv, const sc_conv_tuning *picks)
{
    fake_ctx *x = p;
    x->builds++;
    assert_int_equal(conv, SC_CONV_IM2COL_POLICY);
    static const sc_opkind ops[3] = {SC_OP_CONV2D, SC_OP_CONV2D_BWD_DATA, SC_OP_CONV2D_BWD_WEIGHT};
    static const sc_conv_form rules[3] = {SC_FORM_IMPLICIT, SC_FORM_IM2COL, SC_FORM_IMPLICIT};
    /* ms at the default blocking per formulation (0: cannot take it) */
    static const double base[3][SC_FORM_COUNT] = {
        {[SC_FORM_IM2COL] = 5, [SC_FORM_SHIFT] = 4, [SC_FORM_IMPLICIT] = 6},
        {[SC_FORM_IM2COL] = 7, [SC_FORM_FLIP] = 3},
        {[SC_FORM_IM2COL] = 4, [SC_FORM_SHIFT] = 8, [SC_FORM_IMPLICIT] = 5, [SC_FORM_ROWS] = 6}};
    FILE *f = fopen(exe, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\ncat > \"$6\" <<'EOF'\nindex,node,op,impl,calls,total_ms,flops\n");
    for (int o = 0; o < 3; o++) {
        sc_conv_pick none = {.form = SC_FORM_AUTO};
        const sc_conv_pick *pk = NULL;
        for (int k = 0; picks && k < picks->n; k++)
            if (picks->v[k].op == ops[o] && !strcmp(picks->v[k].label, "a"))
                pk = &picks->v[k];
        if (!pk)
            pk = &none;
        sc_conv_form ran = pk->form != SC_FORM_AUTO && base[o][pk->form] > 0 ? pk->form : rules[o];
        double ms = base[o][ran];
        if (o == 0 && pk->mr == 8)
            ms -= 1;
        if (o == 1 && pk->kc == 256)
            ms -= 0.25;
        if (o == 2 && ran == SC_FORM_IM2COL && pk->cols_max == 1 << 18)
            ms -= 0.5;
        fprintf(f, "%d,a,%s,%s%s,2,%.3f,1\n", o, sc_op_name(ops[o]), fake_impl(ran), picks ? " tuned" : "", ms);
    }
    fprintf(f, "EOF\n");
    fclose(f);
    return chmod(exe, 0755);
}

static void test_measure(void **state)
{
    (void)state;
    char out[128], err[512];
    snprintf(out, sizeof out, "%s/model", dir);
    fake_ctx x = {0};
    sc_tune_table t;
    sc_conv_tuning picks;
    if (sc_tune_measure(fake_build, &x, out, &t, err, sizeof err))
        fail_msg("%s", err);
    /* the plan's kernels, 5 rounds of formulations (the forward conv and
     * the data gradient have 6: winograd F(2,3), F(3,3) and F(4,3) among
     * them; the weight gradient 6, with winograd F(2,3) and F(3,3)), mr, kc, and the
     * im2col chunks (the weight gradient chose im2col) */
    assert_int_equal(x.builds, 1 + 5 + SC_TUNE_NMR + SC_TUNE_NKC + SC_TUNE_NCOLS);
    /* the data gradient's shift+gemm ran the plan's im2col: no second row
     * of it at the default blocking */
    int dgrad_im2col = 0;
    for (int i = 0; i < t.n; i++)
        dgrad_im2col += t.v[i].op == SC_OP_CONV2D_BWD_DATA && t.v[i].form == SC_FORM_IM2COL && !t.v[i].mr &&
                        !t.v[i].kc && !t.v[i].cols;
    assert_int_equal(dgrad_im2col, 1);
    choose(t.v, t.n, &picks);
    assert_int_equal(picks.n, 3);
    const sc_conv_pick *a = find(&picks, "a", SC_OP_CONV2D), *ad = find(&picks, "a", SC_OP_CONV2D_BWD_DATA),
                       *aw = find(&picks, "a", SC_OP_CONV2D_BWD_WEIGHT);
    assert_true(a && ad && aw);
    assert_true(a->form == SC_FORM_SHIFT && a->mr == 8 && a->kc == 0 && a->ms == 3);
    assert_true(ad->form == SC_FORM_FLIP && ad->kc == 256 && ad->mr == 0 && ad->ms == 2.75);
    assert_true(ad->ms_form[SC_FORM_SHIFT] < 0 && ad->ms_form[SC_FORM_IM2COL] == 7);
    assert_true(aw->form == SC_FORM_IM2COL && aw->cols_max == 1 << 18 && aw->ms == 3.5);
    for (int f = SC_FORM_IM2COL; f <= SC_FORM_ROWS; f++)
        assert_true(aw->ms_form[f] > 0);
    sc_tune_free(&picks);
    sc_tune_table_free(&t);
}

static void test_table_file(void **state)
{
    (void)state;
    sc_tune_row rows[] = {row("encoder.0", SC_OP_CONV2D, "im2col", 0, 0, 13.031487),
                          row("odd \"name\", with comma", SC_OP_CONV2D_BWD_WEIGHT, "shift", 8, 176, 0.5),
                          row_cols("x", SC_OP_CONV2D_BWD_DATA, "flip", 1 << 18, 2),
                          row("y", SC_OP_CONV2D_BWD_WEIGHT, "rows", 14, 0, 3),
                          row("z", SC_OP_CONV2D, "auto", 0, 0, 4)};
    int nrows = (int)(sizeof rows / sizeof *rows);
    sc_tune_table t = {rows, nrows, nrows}, back;
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/t.csv", dir);
    assert_int_equal(sc_tune_table_write(&t, path, err, sizeof err), 0);
    assert_int_equal(sc_tune_table_read(path, &back, err, sizeof err), 0);
    assert_int_equal(back.n, nrows);
    for (int i = 0; i < nrows; i++) {
        assert_string_equal(back.v[i].node, rows[i].node);
        assert_true(back.v[i].op == rows[i].op && back.v[i].form == rows[i].form && back.v[i].mr == rows[i].mr &&
                    back.v[i].kc == rows[i].kc && back.v[i].cols == rows[i].cols && back.v[i].ms == rows[i].ms);
    }
    sc_tune_table_free(&back);

    /* a table of the first format (no cols): its "im2col" was the plan's
     * rules short of shift+gemm */
    FILE *old = fopen(path, "w");
    assert_non_null(old);
    fprintf(old, "node,op,algo,mr,kc,ms\n\"a\",conv2d,im2col,8,0,1.5\nb,conv2d_bwd_data,shift,0,128,2\n");
    fclose(old);
    assert_int_equal(sc_tune_table_read(path, &back, err, sizeof err), 0);
    assert_int_equal(back.n, 2);
    assert_true(back.v[0].form == SC_FORM_AUTO && back.v[0].mr == 8 && back.v[0].cols == 0 && back.v[0].ms == 1.5);
    assert_true(back.v[1].form == SC_FORM_SHIFT && back.v[1].kc == 128 && back.v[1].op == SC_OP_CONV2D_BWD_DATA);
    sc_tune_table_free(&back);
    static const char *const bad7[] = {"a,conv2d,rows,0,0,1,0\n",      "a,conv2d_bwd_data,implicit,0,0,1,0\n",
                                       "a,conv2d_bwd_weight,flip,0,0,1,0\n", "a,conv2d,im2col,0,0,1\n",
                                       "a,conv2d,im2col,0,0,1,-5\n",   "a,conv2d,im2col,0,0,1,x\n",
                                       "a,conv2d,im2col,0,0,1,0,0\n"};
    for (size_t i = 0; i < sizeof bad7 / sizeof *bad7; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "node,op,algo,mr,kc,ms,cols\nb,conv2d,implicit,0,0,1,0\n%s", bad7[i]);
        fclose(f);
        assert_int_equal(sc_tune_table_read(path, &back, err, sizeof err), -1);
        char want[160];
        snprintf(want, sizeof want, "%s:3:", path);
        if (!strstr(err, want))
            fail_msg("'%s' for a bad line 3: %s", bad7[i], err);
    }

    static const char *const bad[] = {"a,conv2d,im2col,0,0\n", "a,relu,im2col,0,0,1\n", "a,conv2d,direct,0,0,1\n",
                                      "a,conv2d,im2col,17,0,1\n", "a,conv2d,im2col,0,-1,1\n",
                                      "a,conv2d,im2col,0,0,fast\n", "a,conv2d,im2col,0,0,-1\n",
                                      "a,conv2d,implicit,0,0,1\n", "a,conv2d,im2col,0,0,1,0\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "node,op,algo,mr,kc,ms\nb,conv2d,im2col,0,0,1\n%s", bad[i]);
        fclose(f);
        assert_int_equal(sc_tune_table_read(path, &back, err, sizeof err), -1);
        char want[160];
        snprintf(want, sizeof want, "%s:3:", path);
        if (!strstr(err, want))
            fail_msg("'%s' for a bad line 3: %s", bad[i], err);
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "index,node,op\n");
    fclose(f);
    assert_int_equal(sc_tune_table_read(path, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1: not a --tune table"));
    unlink(path);
}

/* The LLVM IR of basic-stages compiled with the picks of table `t`
 * (written to a file and read back, as --tune-table does), malloc'd. */
static char *module_ir(const sc_tune_table *t, const char *name)
{
    char spec[4096], path[128], err[1024];
    snprintf(spec, sizeof spec, "%s/tests/specs/basic-stages.xml", getenv("SC_SOURCE_DIR"));
    snprintf(path, sizeof path, "%s/%s.csv", dir, name);
    assert_int_equal(sc_tune_table_write(t, path, err, sizeof err), 0);
    sc_tune_table back;
    sc_conv_tuning picks;
    assert_int_equal(sc_tune_table_read(path, &back, err, sizeof err), 0);
    assert_int_equal(sc_tune_choose(&back, &picks, err, sizeof err), 0);
    sc_tune_table_free(&back);
    unlink(path);

    sc_spec m;
    assert_int_equal(sc_model_load(spec, &m), 0);
    sc_passes_opts po = {.classes = 10, .fuse = 1, .last = SC_PASS_MEMPLAN,
                         .plan = {.threads = 2, .tuning = &picks}};
    sc_compiled cp;
    assert_int_equal(sc_passes_run(&m, &po, &cp), 0);
    sc_codegen_options o = {.opt_level = 2};
    sc_codegen *cg = sc_codegen_new(&o, err, sizeof err);
    if (!cg)
        fail_msg("%s", err);
    sc_planned ps = {&cp.g, &cp.smp}, pe = {&cp.enc, &cp.emp}, pf = {&cp.ft, &cp.fmp};
    snprintf(path, sizeof path, "%s/%s.ll", dir, name);
    if (sc_codegen_module(cg, &m, &ps, &pe, &pf, err, sizeof err) || sc_codegen_emit(cg, "llvm", path, err, sizeof err))
        fail_msg("%s", err);
    sc_codegen_free(cg);
    sc_compiled_free(&cp);
    sc_model_free(&m);
    sc_tune_free(&picks);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    unlink(path);
    return s;
}

/* Every convolution node of basic-stages' step, with a row of the
 * plan's rules at the default blocking (10 ms) and one at mr 8, kc 128
 * (ms_blocked); with forms, also rows at 9 ms of another formulation per
 * op: forwards im2col, data gradients flip, weight gradients rows. */
static sc_tune_table table_for(double ms_blocked, int reversed, int forms)
{
    char spec[4096];
    snprintf(spec, sizeof spec, "%s/tests/specs/basic-stages.xml", getenv("SC_SOURCE_DIR"));
    sc_spec m;
    assert_int_equal(sc_model_load(spec, &m), 0);
    sc_passes_opts po = {.classes = 10, .fuse = 1, .last = SC_PASS_SCHEDULE};
    sc_compiled cp;
    assert_int_equal(sc_passes_run(&m, &po, &cp), 0);
    sc_tune_table t = {calloc((size_t)cp.g.nn * 3 + 1, sizeof(sc_tune_row)), 0, 0};
    assert_non_null(t.v);
    for (int i = 0; i < cp.g.nn; i++) {
        const sc_node *n = &cp.g.n[i];
        if (n->op != SC_OP_CONV2D && n->op != SC_OP_CONV2D_BWD_DATA && n->op != SC_OP_CONV2D_BWD_WEIGHT)
            continue;
        t.v[t.n++] = row(n->label, n->op, "auto", 0, 0, 10);
        t.v[t.n++] = row(n->label, n->op, "auto", 8, 128, ms_blocked);
        if (forms)
            t.v[t.n++] = row(n->label, n->op,
                             n->op == SC_OP_CONV2D ? "im2col" : n->op == SC_OP_CONV2D_BWD_DATA ? "flip" : "rows", 0, 0, 9);
    }
    t.cap = t.n;
    assert_true(t.n >= 6);
    for (int i = 0; reversed && i < t.n / 2; i++) {
        sc_tune_row r = t.v[i];
        t.v[i] = t.v[t.n - 1 - i];
        t.v[t.n - 1 - i] = r;
    }
    sc_compiled_free(&cp);
    sc_model_free(&m);
    return t;
}

/* How many times ir holds s. */
static int count_of(const char *ir, const char *s)
{
    int n = 0;
    for (const char *p = strstr(ir, s); p; p = strstr(p + 1, s))
        n++;
    return n;
}

static void test_module(void **state)
{
    (void)state;
    sc_tune_table slow = table_for(12, 0, 0), slow_rev = table_for(12, 1, 0), fast = table_for(5, 0, 0),
                  forms = table_for(12, 0, 1), forms_rev = table_for(12, 1, 1);
    char *a = module_ir(&slow, "a"), *a2 = module_ir(&slow, "a2"), *ar = module_ir(&slow_rev, "ar"),
         *b = module_ir(&fast, "b"), *c = module_ir(&forms, "c"), *c2 = module_ir(&forms, "c2"),
         *cr = module_ir(&forms_rev, "cr");
    assert_string_equal(a, a2);
    assert_string_equal(a, ar);
    /* the formulations a table favours: the same bytes from the same
     * table, other kernels than the plan's rules give, named so */
    assert_string_equal(c, c2);
    assert_string_equal(c, cr);
    assert_true(strcmp(a, c) != 0);
    /* the table's flip lifts the channel thresholds: by the plan's rules
     * only basic-stages' 16-channel data gradient flips, not the 8-channel
     * ones */
    assert_true(count_of(a, "flip+implicit-gemm x") < count_of(c, "flip+implicit-gemm x"));
    assert_non_null(strstr(c, " rows/2 tuned"));
    assert_non_null(strstr(c, "im2col+gemm"));
    /* the default blocking: no tuned GEMM function */
    assert_null(strstr(a, "k128"));
    /* k-block 128 everywhere (mr 8, or 6 without AVX-512), in the GEMM
     * functions' names and the kernels' */
    assert_true(strcmp(a, b) != 0);
    assert_non_null(strstr(b, "@sc_gemm."));
    assert_non_null(strstr(b, "k128("));
    assert_non_null(strstr(b, "r8k128") ? strstr(b, "r8k128") : strstr(b, "r6k128"));
    free(a);
    free(a2);
    free(ar);
    free(b);
    free(c);
    free(c2);
    free(cr);
    sc_tune_table_free(&forms);
    sc_tune_table_free(&forms_rev);
    sc_tune_table_free(&slow);
    sc_tune_table_free(&slow_rev);
    sc_tune_table_free(&fast);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sc_test_tune.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    if (!getenv("SC_SOURCE_DIR")) {
        fprintf(stderr, "test_tune: SC_SOURCE_DIR is not set (run it under ctest)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_choose_forms),
        cmocka_unit_test(test_plan_forms),
        cmocka_unit_test(test_measure),
        cmocka_unit_test(test_table_file),
        cmocka_unit_test(test_module),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
