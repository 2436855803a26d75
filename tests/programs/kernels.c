/* A small but real C program used by the robustness tests: a few numeric kernels and printf from
 * wasi-libc, so the module has imports, a data segment, a table, many functions and loops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 64

static double a[N * N], b[N * N], c[N * N];

static void matmul(void) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < N; k++) s += a[i * N + k] * b[k * N + j];
            c[i * N + j] = s;
        }
}

static int mandel(double cr, double ci, int max) {
    double zr = 0, zi = 0;
    int n = 0;
    while (n < max && zr * zr + zi * zi < 4.0) {
        double t = zr * zr - zi * zi + cr;
        zi = 2 * zr * zi + ci;
        zr = t;
        n++;
    }
    return n;
}

static int cmp(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    for (int i = 0; i < N * N; i++) {
        a[i] = (double)(i % 7) - 3.0;
        b[i] = (double)(i % 5) * 0.5;
    }
    matmul();
    double trace = 0;
    for (int i = 0; i < N; i++) trace += c[i * N + i];
    long total = 0;
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) total += mandel(-2.0 + x * 0.08, -1.2 + y * 0.075, 200);
    int *v = malloc(1000 * sizeof(int));
    unsigned seed = 12345;
    for (int i = 0; i < 1000; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (int)(seed >> 8) % 10000;
    }
    qsort(v, 1000, sizeof(int), cmp);
    char buf[64];
    snprintf(buf, sizeof buf, "%d..%d", v[0], v[999]);
    printf("trace=%.1f mandel=%ld sorted=%s len=%zu args=%d\n", trace, total, buf, strlen(buf), argc);
    free(v);
    return 0;
}
