#include "config.h"

#include "datapath/readsize.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

/* libfuse's own estimate of the pipe a reply needs (fuse_lowlevel.c,
 * fuse_send_data_iov): a page per header iovec, per data buffer and one
 * more, plus the header and the data. */
enum { REPLY_SLACK_PAGES = 3, REPLY_HEADER = 16 };

size_t readsize_for_pipe(size_t pipe_max, size_t page)
{
    size_t overhead = REPLY_SLACK_PAGES * page + REPLY_HEADER;
    if (pipe_max <= overhead + page)
        return page;
    size_t fit = (pipe_max - overhead) / page * page;
    return fit < READSIZE_KERNEL_MAX ? fit : READSIZE_KERNEL_MAX;
}

/* Whether this process can make a pipe as large as SIZE bytes. */
static bool pipe_can_hold(size_t size)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return false;
    int r = fcntl(p[0], F_SETPIPE_SZ, (int)size);
    close(p[0]);
    close(p[1]);
    return r >= 0 && (size_t)r >= size;
}

size_t readsize_for_system(const char *path, size_t page)
{
    if (pipe_can_hold(READSIZE_KERNEL_MAX + REPLY_SLACK_PAGES * page + REPLY_HEADER))
        return READSIZE_KERNEL_MAX;
    unsigned long long pipe_max = 1 << 20;
    FILE *f = fopen(path, "re");
    if (f) {
        unsigned long long v;
        if (fscanf(f, "%llu", &v) == 1 && v > 0)
            pipe_max = v;
        fclose(f);
    }
    return readsize_for_pipe((size_t)pipe_max, page);
}
