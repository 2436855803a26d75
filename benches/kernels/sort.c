/* Counting sort of SORT_N 32-bit keys in [0, SORT_RANGE), repeated SORT_ROUNDS times.
 * Keys come from a fixed xorshift32 sequence; before each round two keys are changed (as in the
 * NAS IS benchmark) so no round repeats the previous one's work. Each round: histogram of the
 * keys, exclusive prefix sum, then a stable scatter of every key to its place in `sorted`.
 * Checksum (wrapping 64-bit): for every round, sum of sorted[i] * (i + 1) over a stride of the
 * output, plus the positions of the two changed keys' first occurrences. */
#include "kernels.h"

#ifndef SORT_N
#define SORT_N (1 << 21)
#endif
#ifndef SORT_RANGE
#define SORT_RANGE (1 << 16)
#endif
#ifndef SORT_ROUNDS
#define SORT_ROUNDS 84
#endif

static uint32_t sort_keys[SORT_N];
static uint32_t sort_out[SORT_N];
static uint32_t sort_count[SORT_RANGE];

int64_t run_sort(void) {
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

        for (int32_t v = 0; v < SORT_RANGE; v++)
            sort_count[v] = 0;
        for (int32_t i = 0; i < SORT_N; i++)
            sort_count[sort_keys[i]]++;
        uint32_t start = 0;
        for (int32_t v = 0; v < SORT_RANGE; v++) {
            uint32_t c = sort_count[v];
            sort_count[v] = start;
            start += c;
        }
        /* After the prefix sum sort_count[v] is where key v starts; record the two probes'. */
        checksum += (uint64_t)sort_count[lo] * 3u + (uint64_t)sort_count[hi] * 5u;
        for (int32_t i = 0; i < SORT_N; i++) {
            uint32_t k = sort_keys[i];
            sort_out[sort_count[k]++] = k;
        }
        for (int32_t i = round; i < SORT_N; i += 61)
            checksum += (uint64_t)sort_out[i] * (uint64_t)(i + 1);
    }
    return (int64_t)checksum;
}
