/* Conjugate gradients on the 3-D Poisson problem: the 7-point stencil A u = 6 u(i,j,k) minus
 * its six neighbours on a CG_N^3 grid with zero Dirichlet boundary (a halo of zeros around the
 * grid, so the stencil needs no branches). Matrix-free: A is applied to the search direction
 * in one sweep per iteration. CG_SOLVES right-hand sides are solved one after another, each from
 * x = 0 until ||r||^2 <= 1e-20 ||b||^2 (or CG_MAX_ITER iterations); every dot product is a
 * plain in-order sum. Checksum: the sum over solves of sum(x) + iterations taken. */
#include "kernels.h"

#ifndef CG_N
#define CG_N 64
#endif
#ifndef CG_SOLVES
#define CG_SOLVES 6
#endif
#define CG_MAX_ITER 1000

#define CG_P (CG_N + 2) /* padded side */
#define CG_PTS (CG_P * CG_P * CG_P)
#define IDX(i, j, k) (((i) * CG_P + (j)) * CG_P + (k))

static double cg_x[CG_PTS], cg_r[CG_PTS], cg_p[CG_PTS], cg_q[CG_PTS];

/* q = A p over the interior; returns p . q. */
static double stencil_dot(void) {
    const int32_t sj = CG_P, si = CG_P * CG_P;
    double pq = 0.0;
    for (int32_t i = 1; i <= CG_N; i++) {
        for (int32_t j = 1; j <= CG_N; j++) {
            const int32_t row = IDX(i, j, 0);
            const double *p = &cg_p[row];
            double *q = &cg_q[row];
            for (int32_t k = 1; k <= CG_N; k++) {
                double v = 6.0 * p[k] - p[k - 1] - p[k + 1] - p[k - sj] - p[k + sj] -
                           p[k - si] - p[k + si];
                q[k] = v;
            }
            for (int32_t k = 1; k <= CG_N; k++)
                pq += p[k] * q[k];
        }
    }
    return pq;
}

double run_cg(void) {
    double checksum = 0.0;
    for (int32_t s = 0; s < CG_SOLVES; s++) {
        /* b: a deterministic pattern, different per solve; x = 0 so r = p = b. Halo stays 0. */
        double rr = 0.0;
        for (int32_t i = 0; i < CG_P; i++)
            for (int32_t j = 0; j < CG_P; j++)
                for (int32_t k = 0; k < CG_P; k++) {
                    const int32_t at = IDX(i, j, k);
                    double b = 0.0;
                    if (i >= 1 && i <= CG_N && j >= 1 && j <= CG_N && k >= 1 && k <= CG_N)
                        b = (double)((i * 3 + j * 5 + k * 7 + s * 11) % 23 - 11) * 0.0625;
                    cg_x[at] = 0.0;
                    cg_r[at] = b;
                    cg_p[at] = b;
                    cg_q[at] = 0.0;
                    rr += b * b;
                }
        const double limit = rr * 1e-20;
        int32_t iter = 0;
        while (iter < CG_MAX_ITER && rr > limit) {
            const double alpha = rr / stencil_dot();
            double rr_new = 0.0;
            for (int32_t at = 0; at < CG_PTS; at++) {
                cg_x[at] += alpha * cg_p[at];
                cg_r[at] -= alpha * cg_q[at];
                rr_new += cg_r[at] * cg_r[at];
            }
            const double beta = rr_new / rr;
            for (int32_t at = 0; at < CG_PTS; at++)
                cg_p[at] = cg_r[at] + beta * cg_p[at];
            rr = rr_new;
            iter++;
        }
        double sum = 0.0;
        for (int32_t at = 0; at < CG_PTS; at++)
            sum += cg_x[at];
        checksum += sum + (double)iter;
    }
    return checksum;
}
