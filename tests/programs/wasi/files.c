/* File I/O inside a preopened directory (argv[1], default "."): create, write, read back,
 * seek and tell, pread and pwrite, append, truncate, stat sizes, rename, list a directory,
 * mkdir and rmdir, unlink, and the errors of a few operations that must fail. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errnames.h"

static char path_buf[4][512];
static const char *base = ".";

static const char *p(int slot, const char *name) {
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", base, name);
    return path_buf[slot];
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        printf("opendir failed: %s\n", errname(errno));
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp);
    printf("listing:");
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc > 1) base = argv[1];

    printf("mkdir sub: %d\n", mkdir(p(0, "sub"), 0755));
    printf("mkdir sub again: %s\n", mkdir(p(0, "sub"), 0755) == 0 ? "0" : errname(errno));

    FILE *f = fopen(p(0, "sub/a.txt"), "w");
    if (!f) {
        printf("fopen for writing failed: %s\n", errname(errno));
        return 1;
    }
    fputs("hello world\n", f);
    fclose(f);

    struct stat st;
    stat(p(0, "sub/a.txt"), &st);
    printf("size after write: %lld\n", (long long)st.st_size);
    printf("is regular file: %d\n", S_ISREG(st.st_mode));

    char buf[64] = {0};
    f = fopen(p(0, "sub/a.txt"), "r");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    printf("read back %zu bytes: %s", n, buf);
    fseek(f, 6, SEEK_SET);
    printf("tell after seek: %ld\n", ftell(f));
    memset(buf, 0, sizeof buf);
    fread(buf, 1, 5, f);
    printf("read at 6: %s\n", buf);
    fseek(f, -3, SEEK_END);
    printf("tell after seek from end: %ld\n", ftell(f));
    fclose(f);

    int fd = open(p(0, "sub/a.txt"), O_RDONLY);
    printf("write to read-only fd: %s\n", write(fd, "x", 1) < 0 ? errname(errno) : "succeeded");
    memset(buf, 0, sizeof buf);
    printf("pread 5 at 0: %zd %s\n", pread(fd, buf, 5, 0), buf);
    close(fd);

    fd = open(p(0, "sub/a.txt"), O_RDWR);
    printf("pwrite: %zd\n", pwrite(fd, "WORLD", 5, 6));
    printf("lseek end: %lld\n", (long long)lseek(fd, 0, SEEK_END));
    printf("ftruncate 5: %d\n", ftruncate(fd, 5));
    fstat(fd, &st);
    printf("size after truncate: %lld\n", (long long)st.st_size);
    close(fd);

    f = fopen(p(0, "sub/a.txt"), "a");
    fputs(" appended\n", f);
    fclose(f);
    f = fopen(p(0, "sub/a.txt"), "r");
    memset(buf, 0, sizeof buf);
    fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    printf("contents: %s", buf);

    printf("rename a -> b: %d\n", rename(p(0, "sub/a.txt"), p(1, "sub/b.txt")));
    printf("stat a after rename: %s\n", stat(p(0, "sub/a.txt"), &st) == 0 ? "exists" : errname(errno));
    f = fopen(p(0, "sub/c.txt"), "w");
    fclose(f);
    printf("mkdir sub/d: %d\n", mkdir(p(0, "sub/d"), 0755));
    list(p(0, "sub"));

    printf("rmdir non-empty sub: %s\n", rmdir(p(0, "sub")) == 0 ? "0" : errname(errno));
    printf("open missing: %s\n", open(p(0, "missing.txt"), O_RDONLY) < 0 ? errname(errno) : "opened");
    printf("exclusive create of existing: %s\n",
           open(p(0, "sub/b.txt"), O_WRONLY | O_CREAT | O_EXCL, 0644) < 0 ? errname(errno) : "opened");
    printf("open file as directory: %s\n", opendir(p(0, "sub/b.txt")) ? "opened" : errname(errno));
    printf("unlink a directory: %s\n", unlink(p(0, "sub/d")) == 0 ? "0" : errname(errno));

    printf("unlink b: %d\n", unlink(p(0, "sub/b.txt")));
    printf("unlink c: %d\n", unlink(p(0, "sub/c.txt")));
    printf("rmdir d: %d\n", rmdir(p(0, "sub/d")));
    list(p(0, "sub"));
    printf("rmdir sub: %d\n", rmdir(p(0, "sub")));
    printf("stat sub after rmdir: %s\n", stat(p(0, "sub"), &st) == 0 ? "exists" : errname(errno));
    return 0;
}
