/* Times the phases of the counting-sort kernel (benches/kernels/sort.c) built natively, to show
 * how its run time depends on the optimization level: built by sort-opt-levels.sh at -O0..-O3.
 * The arrays and loops are those of sort.c, and the constants were until session 16 (sort.c now
 * runs 84 rounds, to take about 0.5 s natively; 12 keep this probe's figures comparable with
 * docs/BENCHMARKS.md); only the timers are added. Built with
 * -DPREFETCH_AHEAD=N (by sort-prefetch.sh), the histogram and scatter loops also prefetch, N
 * keys ahead, what the LLVM tier's indirect-prefetch pass prefetches in the wasm kernel (the
 * look-ahead index clamped to the array; the pass also clamps into the wasm memory, which
 * native code has no need of). */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define SORT_N (1 << 21)
#define SORT_RANGE (1 << 16)
#define SORT_ROUNDS 12

#ifdef PREFETCH_AHEAD
/* The key PREFETCH_AHEAD places after key i, or the last key. */
#define KEY_AHEAD(i) sort_keys[(i) + PREFETCH_AHEAD < SORT_N ? (i) + PREFETCH_AHEAD : SORT_N - 1]
#endif

static uint32_t sort_keys[SORT_N];
static uint32_t sort_out[SORT_N];
static uint32_t sort_count[SORT_RANGE];

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(void) {
    for (int rep = 0; rep < 3; rep++) {
        double hist = 0, prefix = 0, scatter = 0, start = now_ms();
        uint32_t state = 0x2545f491u;
        for (int32_t i = 0; i < SORT_N; i++) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            sort_keys[i] = state % SORT_RANGE;
        }
        uint64_t checksum = 0;
        for (int32_t round = 0; round < SORT_ROUNDS; round++) {
            const uint32_t lo = (uint32_t)round, hi = SORT_RANGE - 1 - (uint32_t)round;
            sort_keys[round] = lo;
            sort_keys[round + SORT_ROUNDS] = hi;
            double t0 = now_ms();
            for (int32_t v = 0; v < SORT_RANGE; v++)
                sort_count[v] = 0;
            for (int32_t i = 0; i < SORT_N; i++) {
#ifdef PREFETCH_AHEAD
                __builtin_prefetch(&sort_count[KEY_AHEAD(i)], 1, 3);
#endif
                sort_count[sort_keys[i]]++;
            }
            double t1 = now_ms();
            uint32_t at = 0;
            for (int32_t v = 0; v < SORT_RANGE; v++) {
                uint32_t c = sort_count[v];
                sort_count[v] = at;
                at += c;
            }
            checksum += (uint64_t)sort_count[lo] * 3u + (uint64_t)sort_count[hi] * 5u;
            double t2 = now_ms();
            for (int32_t i = 0; i < SORT_N; i++) {
#ifdef PREFETCH_AHEAD
                __builtin_prefetch(&sort_out[sort_count[KEY_AHEAD(i)]], 1, 3);
#endif
                uint32_t k = sort_keys[i];
                sort_out[sort_count[k]++] = k;
            }
            double t3 = now_ms();
            for (int32_t i = round; i < SORT_N; i += 61)
                checksum += (uint64_t)sort_out[i] * (uint64_t)(i + 1);
            hist += t1 - t0;
            prefix += t2 - t1;
            scatter += t3 - t2;
        }
        printf("total %6.1f ms  histogram %6.1f  prefix %5.1f  scatter %6.1f  (checksum %llu)\n",
               now_ms() - start, hist, prefix, scatter, (unsigned long long)checksum);
    }
    return 0;
}
