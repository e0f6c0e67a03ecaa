#include "config.h"

#include "qemu/qcow2hdr.h"

#include "util/bytes.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    HDR_MAGIC = 0, /* "QFI\xfb" */
    HDR_VERSION = 4, /* be32: 2 or 3 */
    HDR_BACKING_OFFSET = 8, /* be64: 0 when there is no backing file */
    HDR_BACKING_SIZE = 16, /* be32: bytes, not NUL-terminated */
    HDR_CLUSTER_BITS = 20, /* be32: 9..21 */
    HDR_MIN_SIZE = 72, /* the version 2 header */
    HDR_INCOMPAT = 72, /* v3, be64: incompatible feature bits */
    HDR_LENGTH = 100, /* v3, be32: where the header extensions start */
    HDR_V3_SIZE = 104,
    INCOMPAT_DATA_FILE = 1 << 2,
    EXT_END = 0,
    EXT_BACKING_FORMAT = 0xE2792ACA,
    EXT_DATA_FILE = 0x44415441,
};

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

/* Walks the header extensions in ext[0..len) (starting at the header's
 * end) as qemu's qcow2_read_extensions does. `bounded` says len reaches
 * the end qemu would stop at; when it does not, running past len without
 * the end marker is refused, not taken as "no more extensions". */
static int read_extensions(const unsigned char *ext, size_t len, bool bounded,
                           struct qcow2_backing *out, char *msg, size_t msgsz)
{
    size_t off = 0;
    while (off < len) {
        if (len - off < 8)
            return bounded ? 0 : invalid(msg, msgsz, "header extensions too large");
        uint32_t type = be32(ext + off), elen = be32(ext + off + 4);
        off += 8;
        if (type == EXT_END)
            return 0;
        if (elen > len - off)
            return invalid(msg, msgsz, bounded ? "header extension out of range"
                                               : "header extensions too large");
        if (type == EXT_BACKING_FORMAT) {
            if (elen > QCOW2_FORMAT_MAX)
                return invalid(msg, msgsz, "backing format name too long");
            memcpy(out->format, ext + off, elen);
            out->format[elen] = '\0';
            if (strlen(out->format) != elen)
                return invalid(msg, msgsz, "backing format name contains a NUL byte");
        } else if (type == EXT_DATA_FILE) {
            out->data_file = true;
        }
        size_t padded = ((size_t)elen + 7) & ~(size_t)7;
        off += padded < len - off ? padded : len - off;
    }
    return bounded ? 0 : invalid(msg, msgsz, "header extensions too large");
}

int qcow2_read_backing(int fd, struct qcow2_backing *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    int r = qcow2_backing_name(fd, out->name, sizeof(out->name), msg, msgsz);
    if (r < 0)
        return r;
    unsigned char h[HDR_V3_SIZE];
    ssize_t n = pread(fd, h, sizeof(h), 0);
    uint32_t version = be32(h + HDR_VERSION), bits = be32(h + HDR_CLUSTER_BITS);
    if (bits < 9 || bits > 21)
        return invalid(msg, msgsz, "cluster size out of range");
    uint64_t hdrlen = HDR_MIN_SIZE;
    if (version == 3) {
        if (n < (ssize_t)sizeof(h))
            return invalid(msg, msgsz, "not a qcow2 image");
        hdrlen = be32(h + HDR_LENGTH);
        if (hdrlen < HDR_V3_SIZE)
            return invalid(msg, msgsz, "qcow2 header too short");
        if (be64(h + HDR_INCOMPAT) & INCOMPAT_DATA_FILE)
            out->data_file = true;
    }
    /* qemu reads extensions up to the backing name, or to the end of the
     * first cluster when there is none. */
    uint64_t end = be64(h + HDR_BACKING_OFFSET);
    if (end == 0)
        end = (uint64_t)1 << bits;
    if (end <= hdrlen)
        return 0;
    bool bounded = end - hdrlen <= QCOW2_EXT_AREA_MAX;
    size_t want = bounded ? (size_t)(end - hdrlen) : QCOW2_EXT_AREA_MAX;
    unsigned char *ext = malloc(want);
    if (!ext)
        return -ENOMEM;
    n = pread(fd, ext, want, (off_t)hdrlen);
    if (n < 0) {
        r = -errno;
        snprintf(msg, msgsz, "read: %s", strerror(errno));
    } else {
        /* Past the end of the file qemu reads zeros: the end marker. */
        memset(ext + n, 0, want - (size_t)n);
        r = read_extensions(ext, want, bounded, out, msg, msgsz);
    }
    free(ext);
    return r;
}
