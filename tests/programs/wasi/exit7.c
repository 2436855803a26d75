/* Exits with status 7 through exit(); what it printed before must still come out. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    printf("exiting with 7\n");
    exit(7);
}
