/* comm_check: the communicator's calls against one-process references,
 * run by test_comm as `comm_check_serial` and under `mpirun -np K
 * comm_check_mpi`. Every rank checks its own results; the exit status is
 * 0 only when every check passed (rank 0 prints the summary).
 *
 *  - NT-Xent: the global projections Z (2NK rows) are drawn from one seed
 *    on every rank; each rank passes its rows (the global layout's view 0
 *    and view 1 blocks of its images) to sc_comm_ntxent and
 *    sc_comm_ntxent_bwd. The loss must match sc_ref_ntxent (double) of the
 *    whole Z, and dz / K the reference gradient's rows of this rank, within
 *    1e-5 of the largest magnitude (float similarities).
 *  - Barlow Twins and VICReg, the same way (sc_comm_statloss): loss and
 *    dz / K against sc_ref_barlow / sc_ref_vicreg of the whole Z within
 *    5e-7 of the largest magnitude (double arithmetic). Control, with more than one rank: the
 *    same reference over this rank's rows alone (the statistics of its own
 *    images) must miss the communicator's loss or gradient by more than
 *    1e-2 of its magnitude, so the check above can tell global statistics
 *    from per-rank ones.
 *  - gradients: ranges of a gradient buffer (tiny and larger than a bucket,
 *    adjacent and scattered, reported out of order) hold rank-dependent
 *    values; after sc_comm_step_end every float must be the exact average
 *    (the values are small integers, so sums are exact), and floats
 *    outside the ranges untouched. Two steps, so reused buckets are
 *    covered.
 *  - batchnorm sums: summed over the ranks with global batchnorm, left
 *    alone without; sc_comm_bn_ranks K or 1.
 *  - the runtime's collectives: allreduce, average, max, broadcast. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refops.h"
#include "sc_comm.h"
#include "sc_rng.h"

static int failures, rank_;

static void check(int ok, const char *fmt, double a, double b)
{
    if (!ok) {
        fprintf(stderr, "comm_check rank %d: ", rank_);
        fprintf(stderr, fmt, a, b);
        fputc('\n', stderr);
        failures++;
    }
}

static void check_ntxent(int n, int d, double t, uint64_t seed)
{
    int k = sc_comm_size(), r = sc_comm_rank();
    int m = 2 * n * k;
    double *zg = malloc(sizeof(double) * (size_t)m * d), *dzg = malloc(sizeof(double) * (size_t)m * d);
    float *zl = malloc(sizeof(float) * 2 * (size_t)n * d), *dz = malloc(sizeof(float) * 2 * (size_t)n * d);
    sc_rng g;
    sc_rng_seed(&g, seed, 9);
    for (int i = 0; i < m; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            /* float values, so the float and double inputs agree */
            zg[(size_t)i * d + j] = (double)(float)sc_rng_normal(&g);
            s += zg[(size_t)i * d + j] * zg[(size_t)i * d + j];
        }
        for (int j = 0; j < d; j++)
            zg[(size_t)i * d + j] = (double)(float)(zg[(size_t)i * d + j] / sqrt(s));
    }
    for (int i = 0; i < 2 * n; i++) {
        int gi = i < n ? r * n + i : n * k + r * n + (i - n);
        for (int j = 0; j < d; j++)
            zl[(size_t)i * d + j] = (float)zg[(size_t)gi * d + j];
    }
    float loss = 0;
    sc_comm_ntxent(zl, 2 * n, d, t, &loss);
    sc_comm_ntxent_bwd(dz, 2 * n, d);
    double ref = sc_ref_ntxent(m, d, t, zg);
    sc_ref_ntxent_bwd(m, d, t, zg, dzg);
    check(fabs(loss - ref) <= 1e-5 * fmax(1, fabs(ref)), "NT-Xent loss %.9g, reference %.9g", loss, ref);
    double mx = 0, md = 0;
    for (int i = 0; i < 2 * n; i++) {
        int gi = i < n ? r * n + i : n * k + r * n + (i - n);
        for (int j = 0; j < d; j++) {
            double want = dzg[(size_t)gi * d + j], got = dz[(size_t)i * d + j] / (double)k;
            mx = fmax(mx, fabs(want));
            md = fmax(md, fabs(got - want));
        }
    }
    check(mx > 0 && md <= 1e-5 * mx, "NT-Xent gradient off by %.3g (largest %.3g)", md, mx);
    free(zg);
    free(dzg);
    free(zl);
    free(dz);
}

/* Global row of local row i of rank r (n images per rank, k ranks). */
static int global_row(int i, int n, int k, int r)
{
    return i < n ? r * n + i : n * k + r * n + (i - n);
}

static double stat_ref(int kind, int rows, int d, const double *coef, const double *z, double *dz)
{
    if (kind == SC_STATLOSS_BARLOW) {
        sc_ref_barlow_bwd(rows, d, coef, z, dz);
        return sc_ref_barlow(rows, d, coef, z);
    }
    sc_ref_vicreg_bwd(rows, d, coef, z, dz);
    return sc_ref_vicreg(rows, d, coef, z);
}

/* Float z in, double arithmetic: measured at most 5.0e-8 of the largest
 * magnitude (loss 3.7e-8, 1 to 3 ranks, AMD EPYC Zen 5). The control's
 * per-rank gradients miss by 1.05 to 7.5 of it. */
#define STAT_TOL 5e-7

static void check_statloss(int kind, int n, int d, const double *coef, uint64_t seed)
{
    int k = sc_comm_size(), r = sc_comm_rank(), m = 2 * n * k;
    const char *name = kind == SC_STATLOSS_BARLOW ? "Barlow Twins" : "VICReg";
    double *zg = malloc(sizeof(double) * (size_t)m * d), *dzg = malloc(sizeof(double) * (size_t)m * d);
    double *zo = malloc(sizeof(double) * 2 * (size_t)n * d), *dzo = malloc(sizeof(double) * 2 * (size_t)n * d);
    float *zl = malloc(sizeof(float) * 2 * (size_t)n * d), *dz = malloc(sizeof(float) * 2 * (size_t)n * d);
    sc_rng g;
    sc_rng_seed(&g, seed, 11);
    for (long i = 0; i < (long)m * d; i++) /* float values; feature scales 0.5 .. 2 */
        zg[i] = (double)(float)(sc_rng_normal(&g) * (0.5 + 1.5 * (double)(i % d) / d));
    for (int i = 0; i < 2 * n; i++)
        for (int j = 0; j < d; j++) {
            zo[(size_t)i * d + j] = zg[(size_t)global_row(i, n, k, r) * d + j];
            zl[(size_t)i * d + j] = (float)zo[(size_t)i * d + j];
        }
    float loss = 0;
    sc_comm_statloss(zl, 2 * n, d, kind, coef[0], coef[1], coef[2], coef[3], &loss);
    sc_comm_statloss_bwd(dz, 2 * n, d);
    double ref = stat_ref(kind, m, d, coef, zg, dzg);
    double own = stat_ref(kind, 2 * n, d, coef, zo, dzo);
    char what[3][96];
    snprintf(what[0], sizeof what[0], "%s loss %%.9g, reference %%.9g", name);
    snprintf(what[1], sizeof what[1], "%s gradient off by %%.3g (largest %%.3g)", name);
    snprintf(what[2], sizeof what[2], "%s: per-rank statistics give the global loss (%%.9g, %%.9g)", name);
    check(fabs(loss - ref) <= STAT_TOL * fabs(ref), what[0], loss, ref);
    double mx = 0, md = 0, mo = 0;
    for (int i = 0; i < 2 * n; i++)
        for (int j = 0; j < d; j++) {
            double want = dzg[(size_t)global_row(i, n, k, r) * d + j], got = dz[(size_t)i * d + j] / (double)k;
            mx = fmax(mx, fabs(want));
            md = fmax(md, fabs(got - want));
            mo = fmax(mo, fabs(dzo[(size_t)i * d + j] - want));
        }
    check(mx > 0 && md <= STAT_TOL * mx, what[1], md, mx);
    if (k > 1) /* the control: per-rank statistics are visibly another loss */
        check(fabs(own - ref) > 1e-2 * fabs(ref) || mo > 1e-2 * mx, what[2], own, ref);
    free(zg), free(dzg), free(zo), free(dzo), free(zl), free(dz);
}

typedef struct {
    long off, n;
} span;

static void check_grads(void)
{
    int k = sc_comm_size(), r = sc_comm_rank();
    /* Reported in this order: scattered, adjacent in both directions, one
     * bigger than a bucket (1 << 20 floats), gaps left between some. */
    static const span sp[] = {
        {3000000, 7}, {100, 50}, {150, 1}, {0, 100}, {200, 1500000}, {1700000, 300000},
        {2000000, 3}, {2000003, 999997}, {3000010, 5},
    };
    int ns = (int)(sizeof sp / sizeof *sp);
    long total = 3000015, covered = 0;
    for (int i = 0; i < ns; i++)
        covered += sp[i].n;
    float *g = malloc(sizeof(float) * (size_t)total);
    sc_comm_set_grad_floats(covered);
    for (int step = 0; step < 2; step++) {
        for (long i = 0; i < total; i++)
            g[i] = (float)((i % 7) * (r + 1) + step - 1000);  /* gaps: -1000 + ..., never reduced */
        for (int s = 0; s < ns; s++)
            sc_comm_grad_ready(g, sp[s].off, sp[s].n);
        sc_comm_step_end(g);
        long bad = 0, first = -1;
        int in_range;
        for (long i = 0; i < total; i++) {
            in_range = 0;
            for (int s = 0; s < ns; s++)
                in_range |= i >= sp[s].off && i < sp[s].off + sp[s].n;
            double own = (double)((i % 7) * (r + 1) + step - 1000);
            double avg = (double)(i % 7) * (k + 1) / 2.0 + step - 1000;
            double want = in_range ? avg : own;
            if (fabs(g[i] - want) > 1e-6 * fabs(want) + 1e-6) {
                if (first < 0)
                    first = i;
                bad++;
            }
        }
        check(bad == 0, "gradients: %.0f floats wrong, the first at %.0f", (double)bad, (double)first);
    }
    sc_comm_set_grad_floats(0);
    free(g);
}

static void check_bn(void)
{
    int k = sc_comm_size(), r = sc_comm_rank();
    double s[5];
    for (int gbn = 0; gbn < 2; gbn++) {
        sc_comm_set_global_bn(gbn);
        for (int i = 0; i < 5; i++)
            s[i] = (r + 1) * (i + 0.5);
        sc_comm_bn_allreduce(s, 5);
        for (int i = 0; i < 5; i++) {
            double want = gbn ? (i + 0.5) * k * (k + 1) / 2.0 : (r + 1) * (i + 0.5);
            check(s[i] == want, "batchnorm sum %.9g, expected %.9g", s[i], want);
        }
        double rk = sc_comm_bn_ranks();
        check(rk == (gbn ? k : 1), "sc_comm_bn_ranks %g, expected %g", rk, gbn ? k : 1);
    }
    sc_comm_set_global_bn(0);
}

static void check_collectives(void)
{
    int k = sc_comm_size(), r = sc_comm_rank();
    double x[3] = {r, 1, -r};
    sc_comm_allreduce_sum(x, 3);
    check(x[0] == k * (k - 1) / 2.0 && x[1] == k, "allreduce sum %g (or count %g) wrong", x[0], x[1]);
    float f[2] = {(float)r, 2.0f};
    sc_comm_average_floats(f, 2);
    check(fabs(f[0] - (k - 1) / 2.0) < 1e-6 && f[1] == 2.0f, "average %g, %g", f[0], f[1]);
    int mx = sc_comm_max_int(r == k - 1 ? 7 : r);
    check(mx == 7 || (k == 1 && mx == 7), "max %g, expected %g", mx, 7);
    char buf[16];
    snprintf(buf, sizeof buf, "rank %d", r);
    sc_comm_bcast(buf, sizeof buf);
    check(!strcmp(buf, "rank 0"), "broadcast gave another rank's bytes (%g %g)", 0, 0);
}

int main(void)
{
    sc_comm_init();
    rank_ = sc_comm_rank();
    check_ntxent(4, 8, 0.5, 1);
    check_ntxent(3, 5, 0.1, 2);    /* odd sizes, low temperature */
    check_ntxent(16, 32, 0.2, 3);
    static const double barlow[4] = {0.0051, 1}, barlow2[4] = {0.3, 0.5};
    static const double vicreg[4] = {25, 25, 1, 1e-4}, vicreg2[4] = {2, 9, 0.7, 1e-2};
    check_statloss(SC_STATLOSS_BARLOW, 4, 8, barlow, 4);
    check_statloss(SC_STATLOSS_BARLOW, 3, 5, barlow2, 5);    /* odd sizes */
    check_statloss(SC_STATLOSS_VICREG, 4, 8, vicreg, 6);
    check_statloss(SC_STATLOSS_VICREG, 3, 5, vicreg2, 7);
    check_grads();
    check_bn();
    check_collectives();
    sc_comm_stats st;
    sc_comm_stats_get(&st);
    check(st.steps == 2, "stats: %g steps, expected %g", (double)st.steps, 2);
    int bad = sc_comm_max_int(failures > 0);
    if (rank_ == 0)
        printf("comm_check: %d ranks, %s\n", sc_comm_size(), bad ? "FAILED" : "all checks passed");
    return bad ? 1 : 0;
}
