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

const int sc_tune_cand_mr[SC_TUNE_NMR] = {6, 8, 14}, sc_tune_cand_kc[SC_TUNE_NKC] = {128, 176, 256, 384};

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
 * blocking `picks` gave its node; only_shift keeps the rows of nodes
 * that ran as shift+gemm. */
static int read_profile(FILE *in, const sc_conv_tuning *picks, int only_shift, sc_tune_table *t, char *err,
                        size_t errlen)
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
        int shift = !strncmp(f[ci], "shift", 5);
        if (only_shift && !shift)
            continue;
        sc_tune_row r = {.op = op, .ms = strtod(f[cm], NULL)};
        snprintf(r.node, sizeof r.node, "%s", f[cn]);
        snprintf(r.algo, sizeof r.algo, "%s", shift ? "shift" : "im2col");
        const sc_conv_pick *p = pick_by(picks, r.node, op);
        if (p)
            r.mr = p->mr, r.kc = p->kc;
        if (add_row(t, &r)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Runs `exe bench-step --steps 2 --profile --profile-csv FILE` and adds
 * the convolution rows of the table to t. */
static int profile(const char *exe, const sc_conv_tuning *picks, int only_shift, sc_tune_table *t, char *err,
                   size_t errlen)
{
    char cmd[8400], csv[4200];
    if (snprintf(csv, sizeof csv, "%s.csv", exe) >= (int)sizeof csv ||
        snprintf(cmd, sizeof cmd, "'%s' bench-step --steps 2 --profile --profile-csv '%s' >/dev/null 2>&1", exe,
                 csv) >= (int)sizeof cmd) {
        snprintf(err, errlen, "--tune: the path %s is too long", exe);
        return -1;
    }
    int before = t->n, status = system(cmd);
    FILE *in = status == 0 ? fopen(csv, "r") : NULL;
    int rc = in ? read_profile(in, picks, only_shift, t, err, errlen) : -1;
    if (in)
        fclose(in);
    unlink(csv);
    if (!in || (rc == 0 && !only_shift && t->n == before)) {
        snprintf(err, errlen, "--tune: '%s bench-step --profile' failed or printed no convolutions", exe);
        return -1;
    }
    return rc;
}

/* One trial: builds at policy conv with picks, times, adds the rows. */
static int trial(sc_tune_build_fn build, void *ctx, const char *out, int idx, const char *what, int conv,
                 const sc_conv_tuning *picks, sc_tune_table *t, char *err, size_t errlen)
{
    char exe[4200];
    /* a path, not a name for the shell to look up */
    snprintf(exe, sizeof exe, "%s%s.tune%d.%ld", strchr(out, '/') ? "" : "./", out, idx, (long)getpid());
    fprintf(stderr, "simclrc: --tune: building and timing %s\n", what);
    int bad = build(ctx, exe, conv, picks);
    if (!bad)
        bad = profile(exe, picks, conv == SC_CONV_FORCE_SHIFT, t, err, errlen);
    else
        snprintf(err, errlen, "--tune: building a trial binary failed");
    unlink(exe);
    return bad ? -1 : 0;
}

int sc_tune_measure(sc_tune_build_fn build, void *ctx, const char *out, sc_tune_table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    sc_conv_tuning picks = {NULL, 0};
    char what[64];
    int idx = 0, rc = -1;
    if (trial(build, ctx, out, idx++, "the im2col+gemm variant", SC_CONV_IM2COL_POLICY, NULL, t, err, errlen) ||
        trial(build, ctx, out, idx++, "the shift+gemm variant", SC_CONV_FORCE_SHIFT, NULL, t, err, errlen))
        goto done;
    /* mr at the algorithms chosen, then kc at the mr chosen */
    for (int stage = 0; stage < 2; stage++) {
        int ncand = stage ? SC_TUNE_NKC : SC_TUNE_NMR;
        sc_tune_free(&picks);
        if (sc_tune_choose(t, &picks, err, errlen))
            goto done;
        for (int j = 0; j < ncand; j++) {
            sc_conv_tuning tr = picks;
            tr.v = malloc((size_t)(picks.n ? picks.n : 1) * sizeof *tr.v);
            if (!tr.v) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            memcpy(tr.v, picks.v, (size_t)picks.n * sizeof *tr.v);
            for (int k = 0; k < tr.n; k++) {
                if (stage)
                    tr.v[k].kc = sc_tune_cand_kc[j];
                else
                    tr.v[k].mr = sc_tune_cand_mr[j], tr.v[k].kc = 0;
            }
            snprintf(what, sizeof what, "the GEMMs at %s %d", stage ? "k-block" : "register rows", stage ? sc_tune_cand_kc[j] : sc_tune_cand_mr[j]);
            int bad = trial(build, ctx, out, idx++, what, SC_CONV_IM2COL_POLICY, &tr, t, err, errlen);
            sc_tune_free(&tr);
            if (bad)
                goto done;
        }
    }
    rc = 0;
done:
    sc_tune_free(&picks);
    if (rc)
        sc_tune_table_free(t);
    return rc;
}

/* r before s in the choice: less time, then the smaller (mr, kc). */
static int better(const sc_tune_row *r, const sc_tune_row *s)
{
    if (r->ms != s->ms)
        return r->ms < s->ms;
    if (r->mr != s->mr)
        return r->mr < s->mr;
    return r->kc < s->kc;
}

/* The fastest row of (node, op) with algorithm algo, at the default
 * blocking only where dflt; NULL if none. */
static const sc_tune_row *best(const sc_tune_table *t, const char *node, sc_opkind op, const char *algo, int dflt)
{
    const sc_tune_row *b = NULL;
    for (int i = 0; i < t->n; i++) {
        const sc_tune_row *r = &t->v[i];
        if (r->op != op || strcmp(r->node, node) || strcmp(r->algo, algo) || (dflt && (r->mr || r->kc)))
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
        const sc_tune_row *im = best(t, r->node, r->op, "im2col", 1), *sh = best(t, r->node, r->op, "shift", 1);
        if (!im && !sh)
            continue;  /* only tuned blockings: the algorithm was never compared */
        sc_conv_pick *p = &picks->v[picks->n++];
        snprintf(p->label, sizeof p->label, "%s", r->node);
        p->op = r->op;
        p->ms_im2col = im ? im->ms : -1;
        p->ms_shift = sh ? sh->ms : -1;
        int shift = sh && (!im || sh->ms < im->ms);
        p->algo = shift ? SC_CONV_SHIFT : SC_CONV_IM2COL;
        const sc_tune_row *b = best(t, r->node, r->op, shift ? "shift" : "im2col", 0);
        p->mr = b->mr;
        p->kc = b->kc;
        p->ms = b->ms;
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
        fprintf(f, "node,op,algo,mr,kc,ms\n");
        for (int i = 0; i < t->n; i++) {
            const sc_tune_row *r = &t->v[i];
            /* the label quoted (RFC 4180), whatever characters it has */
            fputc('"', f);
            for (const char *c = r->node; *c; c++)
                fputs(*c == '"' ? "\"\"" : (char[2]){*c, 0}, f);
            fprintf(f, "\",%s,%s,%d,%d,%.6f\n", sc_op_name(r->op), r->algo, r->mr, r->kc, r->ms);
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

int sc_tune_table_read(const char *path, sc_tune_table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    FILE *in = fopen(path, "r");
    if (!in) {
        snprintf(err, errlen, "cannot read the --tune table %s: %s", path, strerror(errno));
        return -1;
    }
    enum { NF = 6 };
    char line[1024], *f[NF + 1];
    int lineno = 1, rc = 0;
    if (!fgets(line, sizeof line, in) || strcmp(line, "node,op,algo,mr,kc,ms\n")) {
        snprintf(err, errlen, "%s:1: not a --tune table (header node,op,algo,mr,kc,ms expected)", path);
        rc = -1;
    }
    while (!rc && fgets(line, sizeof line, in)) {
        lineno++;
        sc_tune_row r = {.op = SC_OP_COUNT};
        char *e = NULL;
        int nf = strchr(line, '\n') ? csv_split(line, f, NF + 1) : 0;
        if (nf == NF)
            r.ms = strtod(f[5], &e);
        if (nf != NF || strlen(f[0]) >= sizeof r.node || op_by_name(f[1], &r.op) || strncmp(f[1], "conv2d", 6) ||
            (strcmp(f[2], "im2col") && strcmp(f[2], "shift")) || int_field(f[3], 16, &r.mr) ||
            int_field(f[4], 1 << 20, &r.kc) || e == f[5] || *e || !(r.ms >= 0 && r.ms < 1e12)) {
            snprintf(err, errlen, "%s:%d: expected node,conv2d*,im2col|shift,mr (0-16),kc (0-1048576),ms", path,
                     lineno);
            rc = -1;
            break;
        }
        snprintf(r.node, sizeof r.node, "%s", f[0]);
        snprintf(r.algo, sizeof r.algo, "%s", f[2]);
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
    fprintf(f, "simclrc: --tune: per convolution, ms over 2 steps (im2col+gemm / shift+gemm at the default "
               "blocking), the choice and its GEMM blocking (mr x kc, 0: default) and time\n");
    for (int i = 0; i < t->n; i++) {
        const sc_conv_pick *p = &t->v[i];
        char a[32] = "-", b[32] = "-";
        if (p->ms_im2col >= 0)
            snprintf(a, sizeof a, "%.2f", p->ms_im2col);
        if (p->ms_shift >= 0)
            snprintf(b, sizeof b, "%.2f", p->ms_shift);
        fprintf(f, "  %-28s %-18s %9s %9s  %-11s mr %2d kc %3d %9.2f\n", p->label, sc_op_name(p->op), a, b,
                p->algo == SC_CONV_SHIFT ? "shift+gemm" : "im2col+gemm", p->mr, p->kc, p->ms);
    }
}
