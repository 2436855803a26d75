/* Mandelbrot set, 128-bit SIMD f32x4: the same window and iteration rule as mandel.c, in f32,
 * four horizontally adjacent pixels per vector (the shape of the SIMD.js/wasm-SIMD benchmark).
 * Written with clang's portable vector extensions so the same source compiles to wasm SIMD
 * (-msimd128) and to SSE2 natively. A lane stops counting once it escapes; the vector loop ends
 * when all four have escaped or after 1000 iterations. Checksum: the sum of all iteration
 * counts. */
#include "kernels.h"

#ifndef MANDEL_SIMD_SIZE
#define MANDEL_SIMD_SIZE 3072
#endif

typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));

static i32x4 mandel_x4(f32x4 c_re, f32x4 c_im) {
    f32x4 z_re = {0, 0, 0, 0}, z_im = {0, 0, 0, 0};
    i32x4 count = {0, 0, 0, 0};
    i32x4 active = {-1, -1, -1, -1};
    const f32x4 four = {4.0f, 4.0f, 4.0f, 4.0f};
    for (int32_t i = 0; i < MANDEL_ITERATIONS; i++) {
        f32x4 re2 = z_re * z_re, im2 = z_im * z_im;
        active &= (re2 + im2 <= four);
        if (!__builtin_reduce_or(active != 0)) /* v128.any_true; movmskps natively */
            break;
        count -= active; /* active lanes are -1 */
        z_im = (z_re + z_re) * z_im + c_im;
        z_re = re2 - im2 + c_re;
    }
    return count;
}

int64_t run_mandel_simd(void) {
    const float step = (float)(MANDEL_WINDOW / MANDEL_SIMD_SIZE);
    const float x0 = (float)MANDEL_START_X, y0 = (float)MANDEL_START_Y;
    const f32x4 lane = {0.0f, 1.0f, 2.0f, 3.0f};
    i32x4 total = {0, 0, 0, 0};
    int64_t sum = 0;
    for (int32_t y = 0; y < MANDEL_SIMD_SIZE; y++) {
        float im = y0 + (float)y * step;
        f32x4 c_im = {im, im, im, im};
        for (int32_t x = 0; x < MANDEL_SIMD_SIZE; x += 4) {
            f32x4 xs = (f32x4){(float)x, (float)x, (float)x, (float)x} + lane;
            f32x4 c_re = (f32x4){x0, x0, x0, x0} + xs * step;
            total += mandel_x4(c_re, c_im);
        }
        /* Fold each row into 64 bits so the 32-bit lanes cannot overflow. */
        sum += (int64_t)total[0] + total[1] + total[2] + total[3];
        total = (i32x4){0, 0, 0, 0};
    }
    return sum;
}
