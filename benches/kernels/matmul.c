/* Dense f64 matrix multiply C = A * B of MATMUL_N x MATMUL_N row-major matrices, the plain
 * i-k-j loop order (the inner loop streams a row of B into a row of C, which clang vectorizes
 * without reassociating any sum). A and B hold small multiples of 1/8, so every product and
 * partial sum is exact in f64 and the result does not depend on rounding. Checksum: the sum of
 * C's elements, each weighted by a small integer that depends on its row and column, accumulated
 * in order. */
#include "kernels.h"

#ifndef MATMUL_N
#define MATMUL_N 1400
#endif

static double mat_a[MATMUL_N * MATMUL_N];
static double mat_b[MATMUL_N * MATMUL_N];
static double mat_c[MATMUL_N * MATMUL_N];

double run_matmul(void) {
    const int32_t n = MATMUL_N;
    for (int32_t i = 0; i < n; i++) {
        for (int32_t j = 0; j < n; j++) {
            mat_a[i * n + j] = (double)((i * 7 + j * 3 + i * j) % 17 - 8) * 0.125;
            mat_b[i * n + j] = (double)((i * 5 + j * 11 + i * j) % 13 - 6) * 0.125;
            mat_c[i * n + j] = 0.0;
        }
    }
    for (int32_t i = 0; i < n; i++) {
        double *c = &mat_c[i * n];
        for (int32_t k = 0; k < n; k++) {
            const double a = mat_a[i * n + k];
            const double *b = &mat_b[k * n];
            for (int32_t j = 0; j < n; j++)
                c[j] += a * b[j];
        }
    }
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++)
            sum += mat_c[i * n + j] * (double)((i * 31 + j * 17) % 7 + 1);
    return sum;
}
