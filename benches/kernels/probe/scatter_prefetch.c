/* The counting sort's histogram and scatter loops (benches/kernels/sort.c) built natively three
 * ways, to show what the LLVM tier's indirect-access prefetching is worth without any wasm in the
 * picture: built by sort-prefetch.sh at -O0, at -O3, and at -O3 with the prefetches the pass adds
 * written by hand (PREFETCH_AHEAD elements ahead, the look-ahead index clamped to the array; the
 * pass also clamps into the wasm memory, which native code has no need of). */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define SORT_N (1 << 21)
#define SORT_RANGE (1 << 16)
#define SORT_ROUNDS 12

static uint32_t sort_keys[SORT_N];
static uint32_t sort_out[SORT_N];
static uint32_t sort_count[SORT_RANGE];

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

__attribute__((noinline)) static void histogram(void) {
    for (int32_t i = 0; i < SORT_N; i++) {
#ifdef PREFETCH_AHEAD
        int32_t ahead = i + PREFETCH_AHEAD < SORT_N ? i + PREFETCH_AHEAD : SORT_N - 1;
        __builtin_prefetch(&sort_count[sort_keys[ahead]], 1, 3);
#endif
        sort_count[sort_keys[i]]++;
    }
}

__attribute__((noinline)) static void scatter(void) {
    for (int32_t i = 0; i < SORT_N; i++) {
#ifdef PREFETCH_AHEAD
        int32_t ahead = i + PREFETCH_AHEAD < SORT_N ? i + PREFETCH_AHEAD : SORT_N - 1;
        __builtin_prefetch(&sort_out[sort_count[sort_keys[ahead]]], 1, 3);
#endif
        uint32_t k = sort_keys[i];
        sort_out[sort_count[k]++] = k;
    }
}

int main(void) {
    uint32_t state = 0x2545f491u;
    for (int32_t i = 0; i < SORT_N; i++) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        sort_keys[i] = state % SORT_RANGE;
    }
    for (int rep = 0; rep < 3; rep++) {
        double hist = 0, total = 0;
        for (int32_t round = 0; round < SORT_ROUNDS; round++) {
            for (int32_t v = 0; v < SORT_RANGE; v++)
                sort_count[v] = 0;
            double h0 = now_ms();
            histogram();
            hist += now_ms() - h0;
            uint32_t at = 0;
            for (int32_t v = 0; v < SORT_RANGE; v++) {
                uint32_t c = sort_count[v];
                sort_count[v] = at;
                at += c;
            }
            double t0 = now_ms();
            scatter();
            total += now_ms() - t0;
        }
        printf("histogram %5.1f ms, scatter %6.1f ms over %d rounds (out[12345] = %u)\n", hist,
               total, SORT_ROUNDS, sort_out[12345]);
    }
    return 0;
}
