/* fdop OP FD [ARG]: one system call on an inherited descriptor, with
 * nothing before it (a perl or python handle would fstat it first, and
 * fstat reaches a FUSE file system as a request about the path).
 *   fdop size FD        prints lseek(FD, 0, SEEK_END)
 *   fdop truncate FD N  ftruncate(FD, N)
 * Exits 1 with the reason on stderr when the call fails. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: fdop size|truncate FD [N]\n");
        return 2;
    }
    int fd = atoi(argv[2]);
    if (strcmp(argv[1], "size") == 0) {
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0) {
            fprintf(stderr, "fdop: lseek: %s\n", strerror(errno));
            return 1;
        }
        printf("%lld\n", (long long)end);
        return 0;
    }
    if (strcmp(argv[1], "truncate") == 0 && argc == 4) {
        if (ftruncate(fd, (off_t)strtoll(argv[3], NULL, 10)) < 0) {
            fprintf(stderr, "fdop: ftruncate: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "fdop: unknown operation %s\n", argv[1]);
    return 2;
}
