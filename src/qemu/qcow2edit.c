#include "config.h"

#include "qemu/qcow2edit.h"

#include "util/bytes.h"
#include "qemu/qcow2hdr.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum {
    H_BACKING_OFFSET = 8,
    H_BACKING_SIZE = 16,
    H_CLUSTER_BITS = 20,
    H_SIZE = 24,
    H_READ = 32,
};

static int read_header(int fd, unsigned char *h)
{
    ssize_t n = pread(fd, h, H_READ, 0);
    if (n < 0)
        return -errno;
    if (n != H_READ || memcmp(h, "QFI\xfb", 4) != 0)
        return -EINVAL;
    uint32_t version = be32(h + 4);
    return version == 2 || version == 3 ? 0 : -EINVAL;
}

int qcow2_virtual_size(int fd, unsigned long long *out)
{
    unsigned char h[H_READ];
    int r = read_header(fd, h);
    if (r == 0)
        *out = be64(h + H_SIZE);
    return r;
}

static int refuse(char *msg, size_t msgsz, int err, const char *why)
{
    snprintf(msg, msgsz, "%s", why);
    return err;
}

int qcow2_set_backing_name_unsynced(int fd, const char *name, char *msg, size_t msgsz)
{
    unsigned char h[H_READ];
    int r = read_header(fd, h);
    if (r < 0)
        return refuse(msg, msgsz, r, "not a qcow2 image");
    uint64_t off = be64(h + H_BACKING_OFFSET);
    uint32_t oldlen = be32(h + H_BACKING_SIZE);
    uint32_t bits = be32(h + H_CLUSTER_BITS);
    size_t newlen = strlen(name);
    if (off == 0 || bits < 9 || bits > 21)
        return refuse(msg, msgsz, -ENOSPC, "no backing name to replace");
    uint64_t cluster = 1ull << bits;
    if (newlen == 0 || newlen > QCOW2_BACKING_MAX || oldlen > QCOW2_BACKING_MAX ||
        off + newlen > cluster || off + oldlen > cluster)
        return refuse(msg, msgsz, -ENOSPC, "the new name does not fit the header cluster");
    /* The bytes past the old name that the new one covers must be
     * padding, never something else that shares the header cluster. */
    unsigned char area[QCOW2_BACKING_MAX];
    size_t span = newlen > oldlen ? newlen : oldlen;
    if (pread(fd, area, span, (off_t)off) != (ssize_t)span)
        return refuse(msg, msgsz, -EIO, "cannot read the backing name");
    for (size_t i = oldlen; i < newlen; i++)
        if (area[i] != 0)
            return refuse(msg, msgsz, -ENOSPC, "no room after the backing name");
    memset(area, 0, span);
    memcpy(area, name, newlen);
    unsigned char len_be[4];
    put_be32(len_be, (uint32_t)newlen);
    if (pwrite(fd, area, span, (off_t)off) != (ssize_t)span ||
        pwrite(fd, len_be, 4, H_BACKING_SIZE) != 4) {
        snprintf(msg, msgsz, "cannot write the qcow2 header: %s", strerror(errno ? errno : EIO));
        return -EIO;
    }
    return 0;
}

int qcow2_set_backing_name(int fd, const char *name, char *msg, size_t msgsz)
{
    /* One sync for both writes: the step runs past the journal's commit,
     * so a crash between them is repaired by its replay (a torn name is
     * written again, by this or by qemu-img rebase -u). */
    errno = 0;
    int r = qcow2_set_backing_name_unsynced(fd, name, msg, msgsz);
    if (r == 0 && fdatasync(fd) < 0) {
        snprintf(msg, msgsz, "cannot write the qcow2 header: %s", strerror(errno ? errno : EIO));
        return -EIO;
    }
    return r;
}
