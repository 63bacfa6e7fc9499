#include "tune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One profile row: node, op, kernel, total milliseconds. */
typedef struct {
    char node[SC_NAME_MAX];
    sc_opkind op;
    char impl[64];
    double ms;
} row;

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

/* Reads the convolution rows of a profile CSV (sc_profile.h:
 * index,node,op,impl,calls,total_ms,flops). */
static int read_profile(FILE *in, row **rows, int *nrows, char *err, size_t errlen)
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
    int n = 0, cap = 0;
    row *v = NULL;
    while (fgets(line, sizeof line, in)) {
        int nf = csv_split(line, f, MAXF);
        sc_opkind op;
        if (nf < nh || strncmp(f[co], "conv2d", 6) || op_by_name(f[co], &op))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            row *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                free(v);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            v = nv;
        }
        row *r = &v[n++];
        snprintf(r->node, sizeof r->node, "%s", f[cn]);
        r->op = op;
        snprintf(r->impl, sizeof r->impl, "%s", f[ci]);
        r->ms = strtod(f[cm], NULL);
    }
    *rows = v;
    *nrows = n;
    return 0;
}

/* Runs `exe bench-step --steps 2 --profile --profile-csv FILE` and keeps
 * the convolution rows of the table. */
static int profile(const char *exe, row **rows, int *nrows, char *err, size_t errlen)
{
    char cmd[8400], csv[4200];
    if (snprintf(csv, sizeof csv, "%s.csv", exe) >= (int)sizeof csv ||
        snprintf(cmd, sizeof cmd, "'%s' bench-step --steps 2 --profile --profile-csv '%s' >/dev/null 2>&1", exe,
                 csv) >= (int)sizeof cmd) {
        snprintf(err, errlen, "--tune: the path %s is too long", exe);
        return -1;
    }
    int status = system(cmd);
    FILE *in = status == 0 ? fopen(csv, "r") : NULL;
    int rc = in ? read_profile(in, rows, nrows, err, errlen) : -1;
    if (in)
        fclose(in);
    unlink(csv);
    if (!in || (rc == 0 && *nrows == 0)) {
        if (rc == 0)
            free(*rows);
        snprintf(err, errlen, "--tune: '%s bench-step --profile' failed or printed no convolutions", exe);
        return -1;
    }
    return rc;
}

int sc_tune_convs(sc_tune_build_fn build, void *ctx, const char *out, sc_conv_tuning *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    static const int policies[2] = {SC_CONV_IM2COL_POLICY, SC_CONV_FORCE_SHIFT};
    row *rows[2] = {NULL, NULL};
    int nrows[2] = {0, 0}, rc = -1;
    for (int k = 0; k < 2; k++) {
        char exe[4200];
        /* a path, not a name for the shell to look up */
        snprintf(exe, sizeof exe, "%s%s.tune%d.%ld", strchr(out, '/') ? "" : "./", out, k, (long)getpid());
        fprintf(stderr, "simclrc: --tune: building and timing the %s variant\n", k ? "shift+gemm" : "im2col+gemm");
        int bad = build(ctx, exe, policies[k]);
        if (!bad)
            bad = profile(exe, &rows[k], &nrows[k], err, errlen);
        else
            snprintf(err, errlen, "--tune: building a trial binary failed");
        unlink(exe);
        if (bad)
            goto done;
    }
    t->v = calloc((size_t)nrows[0] + 1, sizeof *t->v);
    if (!t->v) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* A node keeps shift+gemm only where that variant ran it as shifted
     * GEMMs and faster. */
    for (int i = 0; i < nrows[0]; i++) {
        const row *a = &rows[0][i];
        sc_conv_pick *p = &t->v[t->n++];
        snprintf(p->label, sizeof p->label, "%s", a->node);
        p->op = a->op;
        p->algo = SC_CONV_IM2COL;
        p->ms_im2col = a->ms;
        p->ms_shift = -1;
        for (int j = 0; j < nrows[1]; j++) {
            const row *b = &rows[1][j];
            if (b->op != a->op || strcmp(b->node, a->node) || strncmp(b->impl, "shift", 5))
                continue;
            p->ms_shift = b->ms;
            if (b->ms < a->ms)
                p->algo = SC_CONV_SHIFT;
        }
    }
    rc = 0;
done:
    free(rows[0]);
    free(rows[1]);
    if (rc)
        sc_tune_free(t);
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
    fprintf(f, "simclrc: --tune: per convolution, ms over 2 steps (im2col+gemm / shift+gemm) and the choice\n");
    for (int i = 0; i < t->n; i++) {
        const sc_conv_pick *p = &t->v[i];
        if (p->ms_shift < 0)
            fprintf(f, "  %-28s %-18s %9.2f %9s  im2col+gemm (shift not legal)\n", p->label, sc_op_name(p->op),
                    p->ms_im2col, "-");
        else
            fprintf(f, "  %-28s %-18s %9.2f %9.2f  %s\n", p->label, sc_op_name(p->op), p->ms_im2col, p->ms_shift,
                    p->algo == SC_CONV_SHIFT ? "shift+gemm" : "im2col+gemm");
    }
}
