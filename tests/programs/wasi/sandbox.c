/* Tries to leave the preopened directory (argv[1], default "."): a `..` chain, an absolute
 * path, a symbolic link the test put in the directory pointing outside, and a symbolic link
 * to an absolute target made by the guest. Prints the errno of each attempt. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errnames.h"

static char buf[512];
static const char *base = ".";

static const char *p(const char *name) {
    snprintf(buf, sizeof buf, "%s/%s", base, name);
    return buf;
}

static void try_open(const char *label, const char *path) {
    errno = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        printf("%s: OPENED (sandbox escape!)\n", label);
        fclose(f);
    } else {
        printf("%s: %s\n", label, errname(errno));
    }
}

int main(int argc, char **argv) {
    if (argc > 1) base = argv[1];
    try_open("dotdot chain", p("../../../../../../etc/passwd"));
    try_open("bare dotdot", "../../etc/passwd");
    try_open("absolute", "/etc/passwd");
    try_open("symlink out", p("escape/passwd"));
    try_open("symlink to file out", p("escape_file"));

    errno = 0;
    int r = symlink("/etc/passwd", p("abs_link"));
    printf("symlink to absolute target: %s\n", r == 0 ? "created" : errname(errno));
    if (r == 0) try_open("open absolute symlink", p("abs_link"));

    errno = 0;
    r = symlink("../../../../etc/passwd", p("rel_link"));
    printf("symlink to relative target outside: %s\n", r == 0 ? "created" : errname(errno));
    if (r == 0) {
        try_open("open relative symlink out", p("rel_link"));
        unlink(p("rel_link"));
    }

    errno = 0;
    r = mkdir(p("../outside_dir"), 0755);
    printf("mkdir outside: %s\n", r == 0 ? "created" : errname(errno));

    /* Inside is fine. */
    FILE *f = fopen(p("inside.txt"), "w");
    printf("create inside: %s\n", f ? "ok" : errname(errno));
    if (f) fclose(f);
    unlink(p("inside.txt"));
    return 0;
}
