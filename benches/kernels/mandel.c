/* Mandelbrot set, scalar f64: the classic web benchmark's window (corner 0.300283, -0.48857,
 * side 0.01, at most 1000 iterations) on a MANDEL_SIZE x MANDEL_SIZE image. Pixel (x, y) is the
 * point c = (START_X + x * step, START_Y + y * step), step = WINDOW / MANDEL_SIZE; it iterates
 * z = z^2 + c from z = 0 while |z| <= 2 (tested as re^2 + im^2 <= 4) and fewer than 1000
 * iterations were done. The checksum is the sum of all pixels' iteration counts. */
#include "kernels.h"

#ifndef MANDEL_SIZE
#define MANDEL_SIZE 1728
#endif

static int32_t mandel_point(double c_re, double c_im) {
    double z_re = 0.0, z_im = 0.0;
    int32_t count = 0;
    while (count < MANDEL_ITERATIONS) {
        double re2 = z_re * z_re, im2 = z_im * z_im;
        if (re2 + im2 > 4.0)
            break;
        z_im = 2.0 * z_re * z_im + c_im;
        z_re = re2 - im2 + c_re;
        count++;
    }
    return count;
}

int64_t run_mandel(void) {
    const double step = MANDEL_WINDOW / MANDEL_SIZE;
    int64_t total = 0;
    for (int32_t y = 0; y < MANDEL_SIZE; y++) {
        double c_im = MANDEL_START_Y + y * step;
        for (int32_t x = 0; x < MANDEL_SIZE; x++)
            total += mandel_point(MANDEL_START_X + x * step, c_im);
    }
    return total;
}
