/* readsize: the largest read request the daemon can answer by splice.
 *
 * libfuse answers a read_buf reply by splicing the store file into a
 * pipe and the pipe into /dev/fuse, but only when the whole reply fits
 * the pipe: it asks for 3 pages of slack plus the 16-byte header plus
 * the data. Without CAP_SYS_RESOURCE a pipe may not grow past
 * /proc/sys/fs/pipe-max-size (1 MiB by default), and a reply that does
 * not fit is silently read into a freshly mapped buffer and copied: a
 * page fault per 4 KiB. The kernel sends reads of up to 1 MiB (direct
 * I/O on active images always, readahead once its window is raised), so
 * max_read is capped to what still splices, unless a pipe can hold a
 * full 1 MiB reply here. */
#ifndef VMSTOREFS_READSIZE_H
#define VMSTOREFS_READSIZE_H

#include <stddef.h>

/* The kernel never sends a FUSE read larger than this (256 pages). */
#define READSIZE_KERNEL_MAX ((size_t)1 << 20)

/* The largest multiple of PAGE that is at most READSIZE_KERNEL_MAX and
 * whose reply fits a pipe of PIPE_MAX bytes; never less than one page. */
size_t readsize_for_pipe(size_t pipe_max, size_t page);

/* The same for this process: READSIZE_KERNEL_MAX when a pipe can be
 * grown to hold such a reply (root with CAP_SYS_RESOURCE, or a raised
 * pipe-max-size), else the fit for pipe-max-size read from PATH (normally
 * /proc/sys/fs/pipe-max-size; 1 MiB when it cannot be read). */
size_t readsize_for_system(const char *path, size_t page);

#endif
