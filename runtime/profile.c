/* Per-kernel profiling of sc_step: the counters behind sc_prof_node and
 * the tables of bench-step --profile (sc_profile.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sc_profile.h"

int32_t sc_prof_on;

static int64_t *calls;
static int64_t *nanos;     /* integer nanoseconds: sums of many short spans stay exact */
static int32_t ncount;
static int32_t open_node = -1;
static int64_t open_since;
static int64_t stray;

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void sc_prof_node(int32_t i)
{
    int64_t t = now_ns();
    if (open_node >= 0)
        nanos[open_node] += t - open_since;
    open_node = -1;
    if (i < 0)
        return;
    if (i >= ncount) {
        stray++;
        return;
    }
    calls[i]++;
    open_node = i;
    open_since = t;
}

int sc_prof_init(int32_t n)
{
    if (n < 0)
        return -1;
    size_t m = n ? (size_t)n : 1;
    int64_t *c = calloc(m, sizeof *c), *s = calloc(m, sizeof *s);
    if (!c || !s) {
        free(c);
        free(s);
        return -1;
    }
    sc_prof_free();
    calls = c;
    nanos = s;
    ncount = n;
    return 0;
}

void sc_prof_reset(void)
{
    if (ncount) {
        memset(calls, 0, (size_t)ncount * sizeof *calls);
        memset(nanos, 0, (size_t)ncount * sizeof *nanos);
    }
    open_node = -1;
    stray = 0;
}

void sc_prof_free(void)
{
    free(calls);
    free(nanos);
    calls = nanos = NULL;
    ncount = 0;
    open_node = -1;
    stray = 0;
}

int64_t sc_prof_calls(int32_t i)
{
    return i >= 0 && i < ncount ? calls[i] : 0;
}

double sc_prof_seconds(int32_t i)
{
    return i >= 0 && i < ncount ? 1e-9 * (double)nanos[i] : 0.0;
}

int64_t sc_prof_stray(void)
{
    return stray;
}

/* ---- the tables ---- */

typedef struct {
    const char *key;       /* node name or op */
    const char *op, *impl;
    int32_t nodes;
    int64_t calls;
    double seconds, flops; /* flops: all calls together */
} row;

static int by_time(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->seconds != y->seconds)
        return x->seconds < y->seconds ? 1 : -1;
    return 0;
}

static const char *str(const char *s)
{
    return s && *s ? s : "?";
}

enum { COL_KEY, COL_OP, COL_IMPL };

static const char *column(const row *x, int col)
{
    return col == COL_KEY ? x->key : col == COL_OP ? x->op : x->impl;
}

/* Column width: the longest entry or the header, at most cap (longer
 * entries are cut, so that one odd name cannot push the table apart). */
static int width(const row *r, int n, int col, const char *head, int cap)
{
    int w = (int)strlen(head);
    for (int i = 0; i < n; i++) {
        int l = (int)strlen(column(&r[i], col));
        if (l > w)
            w = l;
    }
    return w < cap ? w : cap;
}

static void rate(char *buf, size_t len, double flops, double seconds)
{
    if (flops > 0 && seconds > 0)
        snprintf(buf, len, "%.1f", flops / seconds / 1e9);
    else
        snprintf(buf, len, "-");
}

void sc_prof_print(FILE *f, const sc_node_info *nodes, int32_t n, int64_t steps, double seconds)
{
    if (n > ncount)
        n = ncount;
    if (!nodes || n < 0)
        n = 0;
    row *r = calloc(n ? (size_t)n : 1, sizeof *r);
    row *g = calloc(n ? (size_t)n : 1, sizeof *g);
    if (!r || !g) {
        free(r);
        free(g);
        fprintf(f, "per-kernel profile: out of memory\n");
        return;
    }
    int nr = 0, ng = 0, idle = 0;
    double kern = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!calls[i]) {
            idle++;
            continue;
        }
        row *x = &r[nr++];
        x->key = str(nodes[i].name);
        x->op = str(nodes[i].op);
        x->impl = str(nodes[i].impl);
        x->nodes = 1;
        x->calls = calls[i];
        x->seconds = 1e-9 * (double)nanos[i];
        x->flops = nodes[i].flops * (double)calls[i];
        kern += x->seconds;
        int k = 0;
        while (k < ng && strcmp(g[k].key, x->op))
            k++;
        if (k == ng) {
            g[ng].key = x->op;
            ng++;
        }
        g[k].nodes++;
        g[k].calls += x->calls;
        g[k].seconds += x->seconds;
        g[k].flops += x->flops;
    }
    qsort(r, (size_t)nr, sizeof *r, by_time);
    qsort(g, (size_t)ng, sizeof *g, by_time);
    double base = seconds > 0 ? seconds : 1;

    fprintf(f, "\nper-kernel profile: %lld steps, %.1f ms in all; kernels %.1f ms (%.1f%%), the rest "
            "between and around them\n", (long long)steps, 1e3 * seconds, 1e3 * kern,
            100.0 * kern / base);
    if (idle)
        fprintf(f, "%d of %d nodes never ran\n", idle, (int)n);
    if (stray)
        fprintf(f, "warning: %lld marks named no node of the table (node table and sc_step disagree)\n",
                (long long)stray);

    int wn = width(r, nr, COL_KEY, "node", 48);
    int wo = width(r, nr, COL_OP, "op", 28);
    int wi = width(r, nr, COL_IMPL, "impl", 24);
    char gf[32];
    fprintf(f, "\n%5s  %-*s  %-*s  %-*s %7s %11s %10s %8s %7s\n", "rank", wn, "node", wo, "op", wi, "impl",
            "calls", "total ms", "ms/call", "GFLOP/s", "share");
    for (int i = 0; i < nr; i++) {
        const row *x = &r[i];
        rate(gf, sizeof gf, x->flops, x->seconds);
        fprintf(f, "%5d  %-*.*s  %-*.*s  %-*.*s %7lld %11.3f %10.4f %8s %6.1f%%\n", i + 1, wn, wn, x->key, wo,
                wo, x->op, wi, wi, x->impl, (long long)x->calls, 1e3 * x->seconds,
                1e3 * x->seconds / (double)x->calls, gf, 100.0 * x->seconds / base);
    }

    for (int i = 0; i < nr; i++)
        if (strstr(r[i].impl, "winograd")) {
            fputs("(winograd nodes: GFLOP/s count the direct convolution's FLOPs; their GEMMs do 1/2.25 of them)\n", f);
            break;
        }

    int wg = width(g, ng, COL_KEY, "op", 28);
    fprintf(f, "\nper op:\n%-*s %6s %7s %11s %7s %8s\n", wg, "op", "nodes", "calls", "total ms", "share",
            "GFLOP/s");
    for (int i = 0; i < ng; i++) {
        const row *x = &g[i];
        rate(gf, sizeof gf, x->flops, x->seconds);
        fprintf(f, "%-*.*s %6d %7lld %11.3f %6.1f%% %8s\n", wg, wg, x->key, x->nodes, (long long)x->calls,
                1e3 * x->seconds, 100.0 * x->seconds / base, gf);
    }
    free(r);
    free(g);
}

/* ---- the machine-readable table ---- */

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int sc_prof_write_csv(FILE *f, const sc_node_info *nodes, int32_t n)
{
    if (n > ncount)
        n = ncount;
    if (!nodes || n < 0)
        n = 0;
    fputs("index,node,op,impl,calls,total_ms,flops\n", f);
    for (int32_t i = 0; i < n; i++) {
        if (!calls[i])
            continue;
        fprintf(f, "%d,", (int)i);
        csv_field(f, str(nodes[i].name));
        fputc(',', f);
        csv_field(f, str(nodes[i].op));
        fputc(',', f);
        csv_field(f, str(nodes[i].impl));
        fprintf(f, ",%lld,%.6f,%.17g\n", (long long)calls[i], 1e-6 * (double)nanos[i],
                nodes[i].flops * (double)calls[i]);
    }
    return fflush(f) || ferror(f) ? -1 : 0;
}
