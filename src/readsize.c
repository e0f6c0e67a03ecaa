#include "readsize.h"

#include <stdio.h>

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

size_t readsize_for_system(const char *path, size_t page)
{
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
