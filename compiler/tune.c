#include "tune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int op_by_name(const char *name, sc_opkind *op)
{
    for (int k = 0; k < SC_OP_COUNT; k++)
        if (!strcmp(sc_op_name((sc_opkind)k), name)) {
            *op = (sc_opkind)k;
            return 0;
        }
    return -1;
}

/* Splits one CSV line (RFC 4180 quoting, no line breaks inside fields)
 * into at most max fields, in place; the count. */
static int csv_split(char *line, char **f, int max)
{
    int n = 0;
    char *r = line, *w = line;
    line[strcspn(line, "\r\n")] = 0;
    for (;;) {
        if (n == max)
            return n;
        f[n++] = w;
        if (*r == '"') {
            for (r++; *r && !(*r == '"' && r[1] != '"'); r++)
                *w++ = *r == '"' ? *++r : *r;
            if (*r)
                r++;
        }
        while (*r && *r != ',')
            *w++ = *r++;
        if (!*r) {
            *w = 0;
            return n;
        }
        *w++ = 0;
        r++;
    }
}

/* The column of `name` in a header, or -1. */
static int column(char **head, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(head[i], name))
            return i;
    return -1;
}

/* The table's header; HEADER_V1 (before the formulations and cols) is
 * still read. */
#define HEADER "node,op,algo,mr,kc,ms,cols"
#define HEADER_V1 "node,op,algo,mr,kc,ms"

const int sc_tune_cand_mr[SC_TUNE_NMR] = {6, 8, 14}, sc_tune_cand_kc[SC_TUNE_NKC] = {128, 176, 256, 384},
          sc_tune_cand_cols[SC_TUNE_NCOLS] = {1 << 18, 1 << 22};

static int add_row(sc_tune_table *t, const sc_tune_row *r)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        sc_tune_row *v = realloc(t->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = *r;
    return 0;
}

void sc_tune_table_free(sc_tune_table *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}

static const sc_conv_pick *pick_by(const sc_conv_tuning *picks, const char *label, sc_opkind op)
{
    for (int k = 0; picks && k < picks->n; k++)
        if (picks->v[k].op == op && !strcmp(picks->v[k].label, label))
            return &picks->v[k];
    return NULL;
}

const sc_conv_pick *sc_tune_pick_of(const sc_conv_tuning *picks, const sc_graph *g, int i)
{
    return pick_by(picks, g->n[i].label, g->n[i].op);
}

/* Reads the convolution rows of a profile CSV (sc_profile.h:
 * index,node,op,impl,calls,total_ms,flops) into t, each with the
 * formulation its kernel's name shows and the blocking `picks` gave its
 * node. With picks, only the rows of nodes that have one count, and with
 * only != SC_FORM_AUTO only those whose pick is of formulation `only`
 * (the trial's subjects); and only where the node ran as its pick asked
 * (a formulation it cannot take ran the plan's rules, measured already).
 * *seen: the convolution rows of the profile. */
static int read_profile(FILE *in, const sc_conv_tuning *picks, sc_conv_form only, sc_tune_table *t, int *seen,
                        char *err, size_t errlen)
{
    enum { MAXF = 16 };
    char head[1024], line[1024], *h[MAXF], *f[MAXF];
    if (!fgets(head, sizeof head, in)) {
        snprintf(err, errlen, "the profile table is empty");
        return -1;
    }
    int nh = csv_split(head, h, MAXF);
    int cn = column(h, nh, "node"), co = column(h, nh, "op"), ci = column(h, nh, "impl"),
        cm = column(h, nh, "total_ms");
    if (cn < 0 || co < 0 || ci < 0 || cm < 0) {
        snprintf(err, errlen, "the profile table lacks a node, op, impl or total_ms column");
        return -1;
    }
    while (fgets(line, sizeof line, in)) {
        int nf = csv_split(line, f, MAXF);
        sc_opkind op;
        if (nf < nh || strncmp(f[co], "conv2d", 6) || op_by_name(f[co], &op))
            continue;
        sc_tune_row r = {.op = op, .ms = strtod(f[cm], NULL), .form = sc_conv_form_of_kernel(f[ci])};
        snprintf(r.node, sizeof r.node, "%s", f[cn]);
        const sc_conv_pick *p = pick_by(picks, r.node, op);
        (*seen)++;
        if (picks && (!p || (only != SC_FORM_AUTO && p->form != only) || (p->form != SC_FORM_AUTO && p->form != r.form)))
            continue;
        if (p)
            r.mr = p->mr, r.kc = p->kc, r.cols = (int)p->cols_max;
        if (add_row(t, &r)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Runs `exe bench-step --steps 2 --profile --profile-csv FILE` and adds
 * the convolution rows of the table to t. */
static int profile(const char *exe, const sc_conv_tuning *picks, sc_conv_form only, sc_tune_table *t, char *err,
                   size_t errlen)
{
    char cmd[8400], csv[4200];
    if (snprintf(csv, sizeof csv, "%s.csv", exe) >= (int)sizeof csv ||
        snprintf(cmd, sizeof cmd, "'%s' bench-step --steps 2 --profile --profile-csv '%s' >/dev/null 2>&1", exe,
                 csv) >= (int)sizeof cmd) {
        snprintf(err, errlen, "--tune: the path %s is too long", exe);
        return -1;
    }
    int seen = 0, status = system(cmd);
    FILE *in = status == 0 ? fopen(csv, "r") : NULL;
    int rc = in ? read_profile(in, picks, only, t, &seen, err, errlen) : -1;
    if (in)
        fclose(in);
    unlink(csv);
    if (!in || (rc == 0 && !seen)) {
        snprintf(err, errlen, "--tune: '%s bench-step --profile' failed or printed no convolutions", exe);
        return -1;
    }
    return rc;
}

/* One trial: builds with picks (NULL: the plan's rules everywhere),
 * times, adds the rows of its subjects (read_profile). */
static int trial(sc_tune_build_fn build, void *ctx, const char *out, int idx, const char *what,
                 const sc_conv_tuning *picks, sc_conv_form only, sc_tune_table *t, char *err, size_t errlen)
{
    char exe[4200];
    /* a path, not a name for the shell to look up */
    snprintf(exe, sizeof exe, "%s%s.tune%d.%ld", strchr(out, '/') ? "" : "./", out, idx, (long)getpid());
    fprintf(stderr, "simclrc: --tune: building and timing %s\n", what);
    int bad = build(ctx, exe, SC_CONV_IM2COL_POLICY, picks);
    if (!bad)
        bad = profile(exe, picks, only, t, err, errlen);
    else
        snprintf(err, errlen, "--tune: building a trial binary failed");
    unlink(exe);
    return bad ? -1 : 0;
}

/* The next round of formulations: every node (of t's rows) that has a
 * formulation of its op neither measured nor tried yet gets the first
 * such one (SC_FORM_AUTO excepted); tried[] holds a mask per node, in
 * the order of the nodes' first rows. *n 0: nothing left to try. */
static int next_forms(const sc_tune_table *t, unsigned *tried, sc_conv_tuning *round, char *err, size_t errlen)
{
    round->n = 0;
    round->v = calloc((size_t)t->n + 1, sizeof *round->v);
    if (!round->v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int node = 0;
    for (int i = 0; i < t->n; i++) {
        const sc_tune_row *r = &t->v[i];
        int first = 1;
        for (int j = 0; j < i && first; j++)
            first = !(t->v[j].op == r->op && !strcmp(t->v[j].node, r->node));
        if (!first)
            continue;
        unsigned *m = &tried[node++];
        for (int j = i; j < t->n; j++)
            if (t->v[j].op == r->op && !strcmp(t->v[j].node, r->node))
                *m |= 1u << t->v[j].form;
        for (int f = SC_FORM_AUTO + 1; f < SC_FORM_COUNT; f++)
            if (sc_conv_form_applies((sc_conv_form)f, r->op) && !(*m >> f & 1)) {
                sc_conv_pick *p = &round->v[round->n++];
                snprintf(p->label, sizeof p->label, "%s", r->node);
                p->op = r->op;
                p->form = (sc_conv_form)f;
                *m |= 1u << f;
                break;
            }
    }
    return 0;
}

/* A copy of picks with every pick's blocking or chunking set by `set`
 * (0: mr, 1: kc, 2: cols of im2col picks) to candidate v. */
static int with_blocking(const sc_conv_tuning *picks, int set, int v, sc_conv_tuning *tr, char *err, size_t errlen)
{
    tr->n = picks->n;
    tr->v = malloc((size_t)(picks->n ? picks->n : 1) * sizeof *tr->v);
    if (!tr->v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(tr->v, picks->v, (size_t)picks->n * sizeof *tr->v);
    for (int k = 0; k < tr->n; k++) {
        sc_conv_pick *p = &tr->v[k];
        if (set == 0)
            p->mr = v, p->kc = 0;
        else if (set == 1)
            p->kc = v;
        else if (p->form == SC_FORM_IM2COL)
            p->cols_max = v;
    }
    return 0;
}

int sc_tune_measure(sc_tune_build_fn build, void *ctx, const char *out, sc_tune_table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    sc_conv_tuning picks = {NULL, 0}, tr = {NULL, 0};
    unsigned *tried = NULL;
    char what[96];
    int idx = 0, rc = -1;
    if (trial(build, ctx, out, idx++, "the plan's own kernels", NULL, SC_FORM_AUTO, t, err, errlen))
        goto done;
    /* the other formulations, one more per node and trial */
    tried = calloc((size_t)t->n + 1, sizeof *tried);
    if (!tried) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int round = 1;; round++) {
        if (next_forms(t, tried, &tr, err, errlen))
            goto done;
        if (!tr.n)
            break;
        snprintf(what, sizeof what, "formulations, round %d (%d nodes)", round, tr.n);
        int bad = trial(build, ctx, out, idx++, what, &tr, SC_FORM_AUTO, t, err, errlen);
        sc_tune_free(&tr);
        if (bad)
            goto done;
    }
    sc_tune_free(&tr);
    /* mr at the formulations chosen, then kc at the mr chosen, then the
     * im2col chunks' cap at both (where a node chose im2col) */
    static const char *const stage_name[3] = {"register rows", "k-block", "im2col chunks of at most (floats)"};
    for (int stage = 0; stage < 3; stage++) {
        const int *cand = stage == 0 ? sc_tune_cand_mr : stage == 1 ? sc_tune_cand_kc : sc_tune_cand_cols;
        int ncand = stage == 0 ? SC_TUNE_NMR : stage == 1 ? SC_TUNE_NKC : SC_TUNE_NCOLS, im2col = 0;
        sc_tune_free(&picks);
        if (sc_tune_choose(t, &picks, err, errlen))
            goto done;
        for (int k = 0; k < picks.n; k++)
            im2col |= picks.v[k].form == SC_FORM_IM2COL;
        for (int j = 0; j < ncand && (stage < 2 || im2col); j++) {
            if (with_blocking(&picks, stage, cand[j], &tr, err, errlen))
                goto done;
            snprintf(what, sizeof what, "the GEMMs at %s %d", stage_name[stage], cand[j]);
            int bad = trial(build, ctx, out, idx++, what, &tr, stage == 2 ? SC_FORM_IM2COL : SC_FORM_AUTO, t, err,
                            errlen);
            sc_tune_free(&tr);
            if (bad)
                goto done;
        }
    }
    rc = 0;
done:
    free(tried);
    sc_tune_free(&tr);
    sc_tune_free(&picks);
    if (rc)
        sc_tune_table_free(t);
    return rc;
}

/* r before s in the choice: less time, then the smaller (mr, kc, cols). */
static int better(const sc_tune_row *r, const sc_tune_row *s)
{
    if (r->ms != s->ms)
        return r->ms < s->ms;
    if (r->mr != s->mr)
        return r->mr < s->mr;
    if (r->kc != s->kc)
        return r->kc < s->kc;
    return r->cols < s->cols;
}

/* The fastest row of (node, op) of formulation form, at the default
 * blocking only where dflt; NULL if none. */
static const sc_tune_row *best(const sc_tune_table *t, const char *node, sc_opkind op, sc_conv_form form, int dflt)
{
    const sc_tune_row *b = NULL;
    for (int i = 0; i < t->n; i++) {
        const sc_tune_row *r = &t->v[i];
        if (r->op != op || strcmp(r->node, node) || r->form != form || (dflt && (r->mr || r->kc || r->cols)))
            continue;
        if (!b || better(r, b))
            b = r;
    }
    return b;
}

int sc_tune_choose(const sc_tune_table *t, sc_conv_tuning *picks, char *err, size_t errlen)
{
    picks->n = 0;
    picks->v = calloc((size_t)t->n + 1, sizeof *picks->v);
    if (!picks->v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* nodes in the order of their first row */
    for (int i = 0; i < t->n; i++) {
        const sc_tune_row *r = &t->v[i];
        if (pick_by(picks, r->node, r->op))
            continue;
        sc_conv_pick p = {.op = r->op, .form = SC_FORM_COUNT};
        double fastest = 0;
        for (int f = 0; f < SC_FORM_COUNT; f++) {
            const sc_tune_row *b = best(t, r->node, r->op, (sc_conv_form)f, 1);
            p.ms_form[f] = b ? b->ms : -1;
            if (b && (p.form == SC_FORM_COUNT || b->ms < fastest))
                p.form = (sc_conv_form)f, fastest = b->ms;
        }
        if (p.form == SC_FORM_COUNT)
            continue; /* only tuned blockings: the formulations were never compared */
        snprintf(p.label, sizeof p.label, "%s", r->node);
        const sc_tune_row *b = best(t, r->node, r->op, p.form, 0);
        p.mr = b->mr;
        p.kc = b->kc;
        p.cols_max = b->cols;
        p.ms = b->ms;
        picks->v[picks->n++] = p;
    }
    return 0;
}

int sc_tune_table_write(const sc_tune_table *t, const char *path, char *err, size_t errlen)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int bad = !f;
    if (f) {
        fprintf(f, "%s\n", HEADER);
        for (int i = 0; i < t->n; i++) {
            const sc_tune_row *r = &t->v[i];
            /* the label quoted (RFC 4180), whatever characters it has */
            fputc('"', f);
            for (const char *c = r->node; *c; c++)
                fputs(*c == '"' ? "\"\"" : (char[2]){*c, 0}, f);
            fprintf(f, "\",%s,%s,%d,%d,%.6f,%d\n", sc_op_name(r->op), sc_conv_form_name(r->form), r->mr, r->kc, r->ms,
                    r->cols);
        }
        bad = ferror(f);
        bad |= fclose(f) != 0;
    }
    if (bad || rename(tmp, path)) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* One field as an integer in [0, max]; 0 on success. */
static int int_field(const char *s, int max, int *v)
{
    char *e;
    errno = 0;
    long x = strtol(s, &e, 10);
    if (e == s || *e || errno || x < 0 || x > max)
        return -1;
    *v = (int)x;
    return 0;
}

/* One line of a table (v1: without cols, whose algo "im2col" was the
 * plan's rules short of shift+gemm); 0, or -1 for a malformed one. */
static int parse_row(char *line, int v1, sc_tune_row *r)
{
    enum { NF = 7 };
    char *f[NF + 1], *e = NULL;
    int nf = strchr(line, '\n') ? csv_split(line, f, NF + 1) : 0, want = v1 ? NF - 1 : NF;
    if (nf != want || strlen(f[0]) >= sizeof r->node || op_by_name(f[1], &r->op) || strncmp(f[1], "conv2d", 6) ||
        int_field(f[3], 16, &r->mr) || int_field(f[4], 1 << 20, &r->kc) || (!v1 && int_field(f[6], 1 << 30, &r->cols)))
        return -1;
    if (v1 && (strcmp(f[2], "im2col") && strcmp(f[2], "shift")))
        return -1;
    if (v1)
        r->form = strcmp(f[2], "shift") ? SC_FORM_AUTO : SC_FORM_SHIFT;
    else if (sc_conv_form_parse(f[2], &r->form) || !sc_conv_form_applies(r->form, r->op))
        return -1;
    r->ms = strtod(f[5], &e);
    if (e == f[5] || *e || !(r->ms >= 0 && r->ms < 1e12))
        return -1;
    snprintf(r->node, sizeof r->node, "%s", f[0]);
    return 0;
}

int sc_tune_table_read(const char *path, sc_tune_table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    FILE *in = fopen(path, "r");
    if (!in) {
        snprintf(err, errlen, "cannot read the --tune table %s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 1, rc = 0, v1 = 0;
    if (!fgets(line, sizeof line, in) ||
        (strcmp(line, HEADER "\n") && !(v1 = !strcmp(line, HEADER_V1 "\n")))) {
        snprintf(err, errlen, "%s:1: not a --tune table (header %s expected)", path, HEADER);
        rc = -1;
    }
    while (!rc && fgets(line, sizeof line, in)) {
        lineno++;
        sc_tune_row r = {.op = SC_OP_COUNT};
        if (parse_row(line, v1, &r)) {
            if (v1)
                snprintf(err, errlen, "%s:%d: expected node,conv2d*,im2col|shift,mr (0-16),kc (0-1048576),ms", path,
                         lineno);
            else
                snprintf(err, errlen,
                         "%s:%d: expected node,conv2d*,algo (a formulation of the op: auto, im2col, shift, "
                         "implicit, rows, flip),mr (0-16),kc (0-1048576),ms,cols (0-1073741824)",
                         path, lineno);
            rc = -1;
            break;
        }
        if (add_row(t, &r)) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    fclose(in);
    if (rc)
        sc_tune_table_free(t);
    return rc;
}

void sc_tune_free(sc_conv_tuning *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

void sc_tune_print(const sc_conv_tuning *t, FILE *f)
{
    fprintf(f, "simclrc: --tune: per convolution, ms over 2 steps of each formulation measured at the default "
               "blocking, the choice with its GEMM blocking (mr x kc, 0: default), im2col chunk cap (floats, 0: "
               "default) and time\n");
    for (int i = 0; i < t->n; i++) {
        const sc_conv_pick *p = &t->v[i];
        char forms[256] = "";
        size_t len = 0;
        for (int k = 0; k < SC_FORM_COUNT && len < sizeof forms; k++)
            if (p->ms_form[k] >= 0)
                len += (size_t)snprintf(forms + len, sizeof forms - len, " %s %.2f", sc_conv_form_name((sc_conv_form)k),
                                        p->ms_form[k]);
        fprintf(f, "  %-28s %-18s%-40s -> %-8s mr %2d kc %3d cols %7lld %9.2f\n", p->label, sc_op_name(p->op), forms,
                sc_conv_form_name(p->form), p->mr, p->kc, (long long)p->cols_max, p->ms);
    }
}
