#include "dump_compare.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static float at(const sc_st_tensor *t, size_t i)
{
    float v;
    memcpy(&v, (const char *)t->data + i * sizeof v, sizeof v); /* may be unaligned */
    return v;
}

static double max_abs(const sc_st_tensor *t)
{
    double m = 0;
    for (size_t i = 0; i < t->nbytes / sizeof(float); i++)
        m = fmax(m, fabs((double)at(t, i)));
    return m;
}

static int same_shape(const sc_st_tensor *a, const sc_st_tensor *b)
{
    if (a->ndim != b->ndim || strcmp(a->dtype, b->dtype) || strcmp(a->dtype, "F32"))
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return 1;
}

static int selected(const char *name, const char *const *prefixes)
{
    for (int i = 0; prefixes[i]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
            return 1;
    return 0;
}

int dump_compare(const sc_st_file *a, const sc_st_file *ref, const char *const *prefixes, double tol,
                 double floor_rel, int verbose, dump_diff *out)
{
    double gmax = 0;
    for (int i = 0; i < ref->n; i++)
        if (!strncmp(ref->t[i].name, "grad/", 5))
            gmax = fmax(gmax, max_abs(&ref->t[i]));
    memset(out, 0, sizeof *out);
    int bad = 0;
    for (int i = 0; i < ref->n; i++) {
        const sc_st_tensor *y = &ref->t[i];
        if (!selected(y->name, prefixes))
            continue;
        const sc_st_tensor *x = sc_st_get(a, y->name);
        if (!x || !same_shape(x, y)) {
            if (verbose)
                fprintf(stderr, "dump_compare: %s is missing or shaped differently\n", y->name);
            out->missing++;
            bad++;
            continue;
        }
        double md = 0, mr = max_abs(y);
        int nonfinite = 0;
        for (size_t k = 0; k < y->nbytes / sizeof(float); k++) {
            double xi = at(x, k), yi = at(y, k);
            nonfinite |= !isfinite(xi) || !isfinite(yi);
            md = fmax(md, fabs(xi - yi));
        }
        double scale = fmax(mr, strncmp(y->name, "grad/", 5) ? 0 : floor_rel * gmax);
        double rel = nonfinite ? INFINITY : scale > 0 ? md / scale : md;
        if (rel > out->worst || !out->worst_name[0]) {
            out->worst = rel;
            snprintf(out->worst_name, sizeof out->worst_name, "%s", y->name);
        }
        if (!(rel <= tol)) {
            if (verbose)
                fprintf(stderr, "dump_compare: %s: max|diff| %.3g, max|ref| %.3g, relative %.3g > %g\n", y->name,
                        md, mr, rel, tol);
            bad++;
        }
    }
    return bad;
}
