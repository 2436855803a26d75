/* Prints a greeting first thing: the launcher must pass it through at once. */
#include <stdio.h>

int main(void) {
    printf("hello from wasi\n");
    fflush(stdout);
    fprintf(stderr, "a line on stderr\n");
    return 0;
}
