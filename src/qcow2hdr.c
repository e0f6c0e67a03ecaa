#include "config.h"

#include "qcow2hdr.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    HDR_MAGIC = 0, /* "QFI\xfb" */
    HDR_VERSION = 4, /* be32: 2 or 3 */
    HDR_BACKING_OFFSET = 8, /* be64: 0 when there is no backing file */
    HDR_BACKING_SIZE = 16, /* be32: bytes, not NUL-terminated */
    HDR_MIN_SIZE = 72, /* the version 2 header */
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static int invalid(char *msg, size_t msgsz, const char *why)
{
    snprintf(msg, msgsz, "%s", why);
    return -EINVAL;
}

int qcow2_backing_name(int fd, char *out, size_t outsz, char *msg, size_t msgsz)
{
    unsigned char h[HDR_MIN_SIZE];
    ssize_t n = pread(fd, h, sizeof(h), 0);
    if (n < 0) {
        snprintf(msg, msgsz, "read: %s", strerror(errno));
        return -errno;
    }
    if (n < (ssize_t)sizeof(h) || memcmp(h + HDR_MAGIC, "QFI\xfb", 4) != 0)
        return invalid(msg, msgsz, "not a qcow2 image");
    uint32_t version = be32(h + HDR_VERSION);
    if (version != 2 && version != 3) {
        snprintf(msg, msgsz, "unsupported qcow2 version %u", version);
        return -EINVAL;
    }
    uint64_t off = be64(h + HDR_BACKING_OFFSET);
    uint32_t len = be32(h + HDR_BACKING_SIZE);
    if (off == 0) {
        if (outsz)
            out[0] = '\0';
        return 0;
    }
    struct stat st;
    if (len == 0 || len > QCOW2_BACKING_MAX || fstat(fd, &st) < 0 || off > (uint64_t)st.st_size ||
        len > (uint64_t)st.st_size - off)
        return invalid(msg, msgsz, "backing file name out of range");
    if (len >= outsz)
        return invalid(msg, msgsz, "backing file name too long");
    n = pread(fd, out, len, (off_t)off);
    if (n != (ssize_t)len)
        return invalid(msg, msgsz, "backing file name unreadable");
    out[len] = '\0';
    if (strlen(out) != len)
        return invalid(msg, msgsz, "backing file name contains a NUL byte");
    return 0;
}
