/* setlkw FILE: opens FILE for writing, waits for a write lock on all of
 * it with fcntl(F_SETLKW), prints "locked" and holds the lock until it is
 * killed. Exits 2 (with the reason on stderr) when the lock request fails.
 *
 * SIGINT goes back to its default action: a non-interactive shell starts
 * background jobs with it ignored, and the tests interrupt waiters. */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: setlkw FILE\n");
        return 2;
    }
    signal(SIGINT, SIG_DFL);
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) {
        fprintf(stderr, "setlkw: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(fd, F_SETLKW, &lk) < 0) {
        fprintf(stderr, "setlkw: F_SETLKW: %s\n", strerror(errno));
        return 2;
    }
    printf("locked\n");
    fflush(stdout);
    for (;;)
        pause();
}
