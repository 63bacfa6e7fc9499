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

/* Runs `exe bench-step --steps 2 --profile` and keeps the convolution
 * rows of its per-kernel table: "rank node op impl... calls total ms/call
 * GFLOP/s share%". */
static int profile(const char *exe, row **rows, int *nrows, char *err, size_t errlen)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' bench-step --steps 2 --profile 2>&1", exe);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(err, errlen, "--tune: cannot run %s: %s", exe, strerror(errno));
        return -1;
    }
    char line[1024];
    int n = 0, cap = 0, in_table = 0;
    row *v = NULL;
    while (fgets(line, sizeof line, p)) {
        if (strstr(line, " rank ") == line || !strncmp(line, " rank", 5)) {
            in_table = 1;
            continue;
        }
        if (!in_table)
            continue;
        char *tok[16];
        int nt = 0;
        for (char *s = strtok(line, " \t\n"); s && nt < 16; s = strtok(NULL, " \t\n"))
            tok[nt++] = s;
        if (nt < 9) { /* the end of the table */
            in_table = 0;
            continue;
        }
        sc_opkind op;
        if (strncmp(tok[2], "conv2d", 6) || op_by_name(tok[2], &op))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            row *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                free(v);
                pclose(p);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            v = nv;
        }
        row *r = &v[n++];
        snprintf(r->node, sizeof r->node, "%s", tok[1]);
        r->op = op;
        snprintf(r->impl, sizeof r->impl, "%s", tok[3]);
        r->ms = strtod(tok[nt - 4], NULL);
    }
    int status = pclose(p);
    if (status != 0 || n == 0) {
        free(v);
        snprintf(err, errlen, "--tune: '%s bench-step --profile' failed or printed no convolutions", exe);
        return -1;
    }
    *rows = v;
    *nrows = n;
    return 0;
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
