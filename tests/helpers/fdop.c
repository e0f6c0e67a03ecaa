/* fdop OP FD [ARGS]: one system call on an inherited descriptor, with
 * nothing before it (a perl or python handle would fstat it first, and a
 * shell tool would name the file by its path).
 *   fdop size FD            prints lseek(FD, 0, SEEK_END)
 *   fdop truncate FD N      ftruncate(FD, N)
 *   fdop stat FD            fstat(FD), printed as one line
 *                           "SIZE MODE UID GID MTIME": decimal size, the
 *                           permission bits in octal without a leading 0
 *                           (as stat -c %a), decimal uid and gid, mtime in
 *                           whole seconds since the epoch (as stat -c %Y)
 *   fdop chmod FD MODE      fchmod(FD, MODE), MODE in octal
 *   fdop chown FD UID GID   fchown(FD, UID, GID)
 *   fdop utimens FD SECS    futimens(FD) setting atime and mtime to SECS
 * Exits 1 with the reason on stderr when the call fails, 2 on bad usage. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* failed: the call NAME failed with errno; report it. */
static int failed(const char *name)
{
    fprintf(stderr, "fdop: %s: %s\n", name, strerror(errno));
    return 1;
}

static int op_stat(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return failed("fstat");
    printf("%lld %o %lu %lu %lld\n", (long long)st.st_size, (unsigned)(st.st_mode & 07777),
           (unsigned long)st.st_uid, (unsigned long)st.st_gid, (long long)st.st_mtim.tv_sec);
    return 0;
}

static int op_utimens(int fd, const char *secs)
{
    struct timespec tv[2];
    tv[0].tv_sec = (time_t)strtoll(secs, NULL, 10);
    tv[0].tv_nsec = 0;
    tv[1] = tv[0];
    return futimens(fd, tv) < 0 ? failed("futimens") : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: fdop size|truncate|stat|chmod|chown|utimens FD [ARGS]\n");
        return 2;
    }
    const char *op = argv[1];
    int fd = atoi(argv[2]);
    if (strcmp(op, "size") == 0 && argc == 3) {
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0)
            return failed("lseek");
        printf("%lld\n", (long long)end);
        return 0;
    }
    if (strcmp(op, "truncate") == 0 && argc == 4)
        return ftruncate(fd, (off_t)strtoll(argv[3], NULL, 10)) < 0 ? failed("ftruncate") : 0;
    if (strcmp(op, "stat") == 0 && argc == 3)
        return op_stat(fd);
    if (strcmp(op, "chmod") == 0 && argc == 4)
        return fchmod(fd, (mode_t)strtoul(argv[3], NULL, 8)) < 0 ? failed("fchmod") : 0;
    if (strcmp(op, "chown") == 0 && argc == 5)
        return fchown(fd, (uid_t)strtoul(argv[3], NULL, 10), (gid_t)strtoul(argv[4], NULL, 10)) < 0
                   ? failed("fchown")
                   : 0;
    if (strcmp(op, "utimens") == 0 && argc == 4)
        return op_utimens(fd, argv[3]);
    fprintf(stderr, "fdop: unknown operation or wrong arguments: %s\n", op);
    return 2;
}
