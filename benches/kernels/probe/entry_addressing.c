/* What matmul's OSR entry costs in its hot loop, reproduced natively (docs/BENCHMARKS.md,
 * "Session 9"). The multiply nest of benches/kernels/matmul.c is written here the way the wasm
 * module computes its addresses: 32-bit offsets into one linear memory, each access at
 * `mem + zext32(offset)`, with 128-bit vectors as clang's wasm SIMD has them, and the row of C
 * in its own loop-carried offset `p`. `from_start` runs the nest from its constant start (i = 0,
 * p = C's offset), as the function's own code does: the compiler can bound `p` and widen every
 * address to 64 bits. `from_entry` gets the start values from volatiles, as an OSR entry gets
 * them from the locals array: `p + x` might wrap past 4 GiB, so each access to C keeps a 32-bit
 * add (`leal`) of its own. Both do the same work on the same memory; the program prints each
 * pair's time and the median ratio. Built by entry-addressing.sh with clang-19 -O3 for the host.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 1000u
#define A_AT 1024u                 /* offsets as in the wasm module's data layout */
#define B_AT (A_AT + N * N * 8u)
#define C_AT (B_AT + N * N * 8u)
#define MEM_BYTES (C_AT + N * N * 8u)
#define PAIRS 11

static char *mem;
static volatile uint32_t entry_i = 0, entry_p = C_AT;

#define AT(off) (mem + (uint64_t)(uint32_t)(off))

static inline __attribute__((always_inline)) void nest(uint32_t i0, uint32_t p0) {
    uint32_t p = p0;
    for (uint32_t i = i0; i != N; i++, p += N * 8u) {
        uint32_t q = B_AT;
        for (uint32_t k = 0; k != N; k++, q += N * 8u) {
            __m128d a = _mm_set1_pd(*(const double *)AT((i * N + k) * 8u + A_AT));
            for (uint32_t x = 0; x != N * 8u; x += 32u) {
                __m128d c0 = _mm_loadu_pd((const double *)AT(p + x));
                __m128d b0 = _mm_loadu_pd((const double *)AT(q + x));
                _mm_storeu_pd((double *)AT(p + x), _mm_add_pd(c0, _mm_mul_pd(a, b0)));
                __m128d c1 = _mm_loadu_pd((const double *)AT(p + x + 16u));
                __m128d b1 = _mm_loadu_pd((const double *)AT(q + x + 16u));
                _mm_storeu_pd((double *)AT(p + x + 16u), _mm_add_pd(c1, _mm_mul_pd(a, b1)));
            }
        }
    }
}

__attribute__((noinline)) static void from_start(void) { nest(0, C_AT); }
__attribute__((noinline)) static void from_entry(uint32_t i0, uint32_t p0) { nest(i0, p0); }

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    mem = aligned_alloc(4096, (MEM_BYTES + 4095u) / 4096u * 4096u);
    if (!mem)
        return 1;
    for (uint32_t e = 0; e < 3u * N * N; e++)
        ((double *)AT(A_AT))[e] = (double)(e % 17u) * 0.125;
    double ratios[PAIRS];
    for (int r = 0; r < PAIRS; r++) {
        double t0 = now_ms();
        from_start();
        double t1 = now_ms();
        from_entry(entry_i, entry_p);
        double t2 = now_ms();
        ratios[r] = (t2 - t1) / (t1 - t0);
        printf("from start %6.1f ms, from entry values %6.1f ms, ratio %.3f\n", t1 - t0, t2 - t1,
               ratios[r]);
    }
    qsort(ratios, PAIRS, sizeof ratios[0], by_value);
    printf("median ratio (entry / start) over %d pairs: %.3f (range %.3f-%.3f)\n", PAIRS,
           ratios[PAIRS / 2], ratios[0], ratios[PAIRS - 1]);
    return 0;
}
