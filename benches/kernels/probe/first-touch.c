/* Times the first touch of fresh anonymous memory (24 MiB, matmul's three matrices) against a
 * second touch, with 4 KiB pages and, given any argument, with transparent huge pages asked for
 * (madvise MADV_HUGEPAGE). The benchmark's native kernels run with their arrays already resident
 * (the untimed reference call touched them) while a fresh wasm instance's memory is not, which
 * is why `tiers` faults the wasm memory in before the timed call (docs/BENCHMARKS.md, session 7).
 * Build and run: clang-19 -O2 first-touch.c -o /tmp/first-touch && /tmp/first-touch [huge] */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    (void)argv;
    const size_t len = 24u << 20;
    for (int rep = 0; rep < 5; rep++) {
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        if (argc > 1 && madvise(p, len, MADV_HUGEPAGE) != 0)
            perror("madvise");
        double t0 = now_ms();
        for (size_t i = 0; i < len; i += 4096)
            p[i] = 1;
        double t1 = now_ms();
        for (size_t i = 0; i < len; i += 4096)
            p[i] = 2;
        printf("first touch %6.2f ms, second touch %5.3f ms\n", t1 - t0, now_ms() - t1);
        munmap(p, len);
    }
    return 0;
}
