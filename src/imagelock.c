#include "config.h"

#include "imagelock.h"

#include <errno.h>
#include <fcntl.h>
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

void imagelock_drop(int fd)
{
    if (fd >= 0)
        close(fd);
}

