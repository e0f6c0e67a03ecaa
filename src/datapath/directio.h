/* directio: writing to a store file opened with O_DIRECT.
 *
 * A qemu with cache=none, `dd oflag=direct` or `qemu-img convert -t none`
 * open images through the mount with O_DIRECT, and the store file is
 * opened the same way so their writes bypass the page cache as they
 * asked. But libfuse hands the data over in its own receive buffer,
 * which sits behind the request header and is never aligned as O_DIRECT
 * requires: a plain pwrite(2) fails with EINVAL. The data is copied to an
 * aligned buffer first; a write whose offset or size the device cannot
 * take directly goes through a buffered descriptor of the same file (not
 * of its path, which may name another file by now) and is flushed with
 * fdatasync before the reply, so it is as durable as a direct write and
 * a direct read after it sees it. FUSE-free. */
#ifndef VMSTOREFS_DIRECTIO_H
#define VMSTOREFS_DIRECTIO_H

#include <stddef.h>
#include <sys/types.h>

/* Page alignment covers every logical block size Linux supports. */
#define DIRECTIO_ALIGN 4096

/* pwrite(2) of buf to fd (which may carry O_DIRECT), whatever the
 * alignment of buf, off and size. Returns bytes written or -errno. */
ssize_t directio_pwrite(int fd, const void *buf, size_t size, off_t off);

#endif
