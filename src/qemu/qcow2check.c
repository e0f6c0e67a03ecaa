#include "config.h"

#include "qemu/qcow2check.h"

#include "qemu/qcow2fmt.h"
#include "util/bytes.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int bad(char *msg, size_t msgsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *msg, size_t msgsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msgsz, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* qcow2_validate_table: at most max bytes of entries, cluster aligned,
 * and its end within INT64_MAX (qemu's offsets are signed). */
static int check_table(const char *what, uint64_t offset, uint64_t entries, uint64_t entry_len,
                       uint64_t max_bytes, uint64_t cluster_size, char *msg, size_t msgsz)
{
    if (entries > max_bytes / entry_len)
        return bad(msg, msgsz, "%s too large (%" PRIu64 " entries)", what, entries);
    if ((uint64_t)INT64_MAX - entries * entry_len < offset || (offset & (cluster_size - 1)))
        return bad(msg, msgsz, "%s offset invalid (0x%" PRIx64 ")", what, offset);
    return 0;
}

int qcow2_check_header(int fd, char *msg, size_t msgsz)
{
    unsigned char h[H_V3_LENGTH + 1];
    memset(h, 0, sizeof(h));
    ssize_t n = pread(fd, h, sizeof(h), 0);
    if (n < 0) {
        int e = errno;
        snprintf(msg, msgsz, "read: %s", strerror(e));
        return -e;
    }
    if (n < H_V2_LENGTH || memcmp(h + H_MAGIC, QCOW2_MAGIC, 4) != 0)
        return bad(msg, msgsz, "not a qcow2 image");
    uint32_t version = be32(h + H_VERSION);
    if (version != 2 && version != 3)
        return bad(msg, msgsz, "unsupported qcow2 version %" PRIu32, version);
    uint32_t bits = be32(h + H_CLUSTER_BITS);
    if (bits < MIN_CLUSTER_BITS || bits > MAX_CLUSTER_BITS)
        return bad(msg, msgsz, "unsupported cluster size 2^%" PRIu32, bits);
    uint64_t cluster = (uint64_t)1 << bits;
    uint64_t incompat = 0, hdrlen = H_V2_LENGTH;
    uint32_t refcount_order = 4;
    if (version == 3) {
        if (n < H_V3_LENGTH)
            return bad(msg, msgsz, "qcow2 header too short");
        incompat = be64(h + H_INCOMPAT);
        refcount_order = be32(h + H_REFCOUNT_ORDER);
        hdrlen = be32(h + H_LENGTH);
        if (hdrlen < H_V3_LENGTH)
            return bad(msg, msgsz, "qcow2 header too short");
    }
    if (hdrlen > cluster)
        return bad(msg, msgsz, "qcow2 header exceeds cluster size");
    uint64_t boff = be64(h + H_BACKING_OFFSET);
    if (boff > cluster)
        return bad(msg, msgsz, "invalid backing file offset");
    if (boff && be32(h + H_BACKING_SIZE) > BACKING_NAME_MAX)
        return bad(msg, msgsz, "backing file name too long");
    if (incompat & ~(uint64_t)INCOMPAT_KNOWN)
        return bad(msg, msgsz, "unsupported incompatible feature bits 0x%" PRIx64,
                   incompat & ~(uint64_t)INCOMPAT_KNOWN);
    /* qemu opens such an image read-only at most, and a merge writes. */
    if (incompat & INCOMPAT_CORRUPT)
        return bad(msg, msgsz, "marked corrupt by qemu (qemu-img check -r repairs it)");
    if (incompat & INCOMPAT_COMPRESSION) {
        if (hdrlen <= H_COMPRESSION || n <= H_COMPRESSION)
            return bad(msg, msgsz, "compression type missing from the header");
        if (h[H_COMPRESSION] > 1)
            return bad(msg, msgsz, "unknown compression type %u", h[H_COMPRESSION]);
    }
    bool extl2 = incompat & INCOMPAT_EXTL2;
    if (extl2 && bits < 14)
        return bad(msg, msgsz, "extended L2 entries with clusters under 16 KiB");
    if (refcount_order > 6)
        return bad(msg, msgsz, "refcount width 2^%" PRIu32 " bits, more than 64",
                   refcount_order);
    /* Encrypted images need a secret qemu-img is never given. */
    uint32_t crypt = be32(h + H_CRYPT);
    if (crypt)
        return bad(msg, msgsz, "encrypted (method %" PRIu32 ")", crypt);
    uint32_t reft = be32(h + H_REFTABLE_CLUSTERS);
    if (reft == 0)
        return bad(msg, msgsz, "no refcount table");
    int r = check_table("refcount table", be64(h + H_REFTABLE_OFFSET), reft, cluster,
                        MAX_REFTABLE_BYTES, cluster, msg, msgsz);
    if (r == 0)
        r = check_table("snapshot table", be64(h + H_SNAPSHOTS_OFFSET),
                        be32(h + H_NB_SNAPSHOTS), SNAPSHOT_HEADER_BYTES,
                        (uint64_t)SNAPSHOT_HEADER_BYTES * MAX_SNAPSHOTS, cluster, msg, msgsz);
    uint32_t l1 = be32(h + H_L1_SIZE);
    if (r == 0)
        r = check_table("L1 table", be64(h + H_L1_OFFSET), l1, 8, MAX_L1_BYTES, cluster, msg,
                        msgsz);
    if (r < 0)
        return r;
    /* Entries needed for the virtual size: each maps one L2 table, of a
     * cluster of 8-byte entries (16 with extended L2). */
    unsigned shift = bits + bits - (extl2 ? 4 : 3);
    uint64_t size = be64(h + H_SIZE);
    uint64_t need = (size >> shift) + ((size & (((uint64_t)1 << shift) - 1)) != 0);
    if (need > INT32_MAX)
        return bad(msg, msgsz, "virtual size too large (%" PRIu64 " bytes)", size);
    if (l1 < need)
        return bad(msg, msgsz, "L1 table too small (%" PRIu32 " entries for %" PRIu64 " bytes)",
                   l1, size);
    return 0;
}
