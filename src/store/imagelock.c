#include "config.h"

#include "store/imagelock.h"

#include "util/monotime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

int imagelock_hold(const struct store *s, const char *path)
{
    /* A write lock needs a descriptor open for writing. */
    int fd = store_open_file(s, path, O_RDWR);
    if (fd < 0)
        return fd;
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = IMAGELOCK_START,
        .l_len = IMAGELOCK_LEN,
    };
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        int e = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
        close(fd);
        return e;
    }
    return fd;
}

int imagelock_hold_wait(const struct store *s, const char *path, int wait_ms)
{
    int64_t deadline = now_ms() + wait_ms;
    for (;;) {
        int fd = imagelock_hold(s, path);
        if (fd != -EBUSY || now_ms() >= deadline)
            return fd;
        usleep(5000);
    }
}

int imagelock_hold_for_reading(const struct store *s, const char *path)
{
    int fd = store_open_file(s, path, O_RDONLY);
    if (fd < 0)
        return fd;
    /* First refuse to share writing (qemu's byte 200 + WRITE), so a qemu
     * that starts from now on fails; then look for one that already
     * writes (holds byte 100 + WRITE). In this order no qemu slips in
     * between the look and the lock. */
    struct flock fl = {
        .l_type = F_RDLCK,
        .l_whence = SEEK_SET,
        .l_start = IMAGELOCK_START + IMAGELOCK_LEN / 2 + IMAGELOCK_PERM_WRITE,
        .l_len = 1,
    };
    int r = 0;
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        r = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
    } else {
        struct flock probe = {
            .l_type = F_WRLCK,
            .l_whence = SEEK_SET,
            .l_start = IMAGELOCK_START + IMAGELOCK_PERM_WRITE,
            .l_len = 1,
        };
        if (fcntl(fd, F_OFD_GETLK, &probe) < 0)
            r = -errno;
        else if (probe.l_type != F_UNLCK)
            r = -EBUSY;
    }
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

void imagelock_drop(int fd)
{
    if (fd >= 0)
        close(fd);
}

