/* The compile-time memory limit (sizelimit.h). */
#include "sizelimit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "diag.h"

/* "2.0 TiB" */
static const char *human(int64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

static void too_large(const char *file, const sc_tensor *t, const char *what, int64_t need, int64_t limit)
{
    char a[32], b[32], c[32];
    sc_error_at(file, t->line, "%s needs %s, more than the limit of %s (its largest tensor, %s, %s, comes "
                "from this layer); simclrc --max-arena-bytes=N or --no-size-limit lifts the limit",
                what, human(need, a, sizeof a), human(limit, b, sizeof b), t->name,
                human((int64_t)t->numel * 4, c, sizeof c));
}

int sc_size_check_plan(const sc_graph *g, const sc_memplan *mp, int64_t limit, const char *file)
{
    /* Parameters: numel <= 2^40 each (build.c) and fewer than 2^17 of
     * them, so the sum cannot overflow. */
    int64_t params = 0;
    int big = -1;
    for (int p = 0; p < g->nparams; p++) {
        const sc_tensor *t = &g->t[g->params[p]];
        params += (int64_t)t->numel * 4;
        if (big < 0 || t->numel > g->t[big].numel)
            big = g->params[p];
    }
    if (big >= 0 && params > limit) {
        too_large(file, &g->t[big], "the model's parameters", params, limit);
        return -1;
    }
    if (mp->arena_floats <= limit / 4)
        return 0;
    big = -1;
    for (int i = 0; i < g->nt; i++)
        if (mp->region[i] == SC_REG_ARENA && (big < 0 || g->t[i].numel > g->t[big].numel))
            big = i;
    if (big < 0)
        return 0;
    too_large(file, &g->t[big], "the training step's activation arena", mp->arena_floats * 4, limit);
    return -1;
}

int sc_size_check(const sc_graph *g, const sc_memplan_opts *o, int64_t limit, const char *file)
{
    sc_memplan mp;
    if (sc_memplan_build(g, g->loss >= 0 ? g->loss : g->features, o, &mp))
        return -2;
    int rc = sc_size_check_plan(g, &mp, limit, file);
    sc_memplan_free(&mp);
    return rc;
}

int sc_parse_bytes(const char *s, int64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = 0;
    switch (*end) {
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default: break;
    }
    if (errno || *end || v > (1ULL << 62) >> shift)
        return -1;
    *out = (int64_t)(v << shift);
    return 0;
}
