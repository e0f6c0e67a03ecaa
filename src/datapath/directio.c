#include "config.h"

#include "datapath/directio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reopening /proc/self/fd/N reaches the inode fd has open, never a
 * file that replaced it in the store since. */
static ssize_t buffered_pwrite(int fd, const void *buf, size_t size, off_t off)
{
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int bfd = open(proc, O_WRONLY | O_CLOEXEC);
    if (bfd < 0)
        return -errno;
    ssize_t n = pwrite(bfd, buf, size, off);
    int r = n < 0 ? -errno : fdatasync(bfd) < 0 ? -errno : 0;
    close(bfd);
    return r < 0 ? r : n;
}

ssize_t directio_pwrite(int fd, const void *buf, size_t size, off_t off)
{
    void *bounce = NULL;
    const void *src = buf;
    if ((uintptr_t)buf % DIRECTIO_ALIGN != 0) {
        if (posix_memalign(&bounce, DIRECTIO_ALIGN, size ? size : 1) != 0)
            return -ENOMEM;
        memcpy(bounce, buf, size);
        src = bounce;
    }
    ssize_t n = pwrite(fd, src, size, off);
    int e = errno;
    free(bounce);
    if (n >= 0)
        return n;
    /* EINVAL with an aligned buffer: offset or size is not a multiple of
     * the device's block size (or fd is not O_DIRECT-capable after all). */
    return e == EINVAL ? buffered_pwrite(fd, buf, size, off) : -e;
}
