/* exchange A B: swaps the files (or directories) at A and B in one step,
 * renameat2(RENAME_EXCHANGE), as a VM's owner can do in its own
 * directory while the daemon works on it. Exits 2 with the reason on
 * stderr when the kernel refuses. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: exchange A B\n");
        return 2;
    }
    if (renameat2(AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) < 0) {
        fprintf(stderr, "exchange: %s <-> %s: %s\n", argv[1], argv[2], strerror(errno));
        return 2;
    }
    return 0;
}
