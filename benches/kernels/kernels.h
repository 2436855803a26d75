/* Shared definitions of the steady-state kernels (see README.md in this directory).
 *
 * Every kernel is one exported function `run_<name>(void)` that builds its input
 * deterministically, does the whole computation and returns a checksum. The same source is
 * compiled to wasm32 (benches/kernels/build.sh) and natively (benches/build.rs), so it uses no
 * libc: fixed-size static arrays, <stdint.h> types and clang vector extensions only. */
#ifndef SPATE_KERNELS_H
#define SPATE_KERNELS_H

#include <stdint.h>

int64_t run_mandel(void);
int64_t run_mandel_simd(void);
double run_matmul(void);
double run_cg(void);
int64_t run_sort(void);

/* Mandelbrot parameters of the classic JS/wasm web benchmark: the window's corner
 * (START_X, START_Y), its side WINDOW, and at most MANDEL_ITERATIONS iterations per pixel. */
#define MANDEL_START_X 0.300283
#define MANDEL_START_Y (-0.48857)
#define MANDEL_WINDOW 0.01
#define MANDEL_ITERATIONS 1000

#endif
