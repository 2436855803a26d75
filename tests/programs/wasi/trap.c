/* Prints a line, then traps (unreachable): the host must report a wasm trap. */
#include <stdio.h>

static int divide(volatile int a, volatile int b) { return a / b; }

int main(int argc, char **argv) {
    (void)argv;
    printf("about to trap\n");
    fflush(stdout);
    if (argc > 1) {
        /* Integer division by zero traps too. */
        printf("%d\n", divide(1, 0));
    }
    __builtin_trap();
}
