/* Reference kernels of BYOL's loss (refops.h): plain C in double. */
#include "refops.h"

double sc_ref_byol(int n2, int d, const double *q, const double *t)
{
    int half = n2 / 2;
    double loss = 0.0;
    for (int r = 0; r < n2; r++) {
        const double *qr = q + (long)r * d, *tp = t + (long)((r + half) % n2) * d;
        double dot = 0.0;
        for (int k = 0; k < d; k++)
            dot += qr[k] * tp[k];
        loss += 2.0 - 2.0 * dot;
    }
    return loss / half;
}

void sc_ref_byol_bwd(int n2, int d, const double *t, double *dq)
{
    int half = n2 / 2;
    for (int r = 0; r < n2; r++) {
        const double *tp = t + (long)((r + half) % n2) * d;
        for (int k = 0; k < d; k++)
            dq[(long)r * d + k] = -2.0 * tp[k] / half;
    }
}
