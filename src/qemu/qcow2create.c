#include "config.h"

#include "qemu/qcow2create.h"

#include "qemu/qcow2fmt.h"
#include "qemu/qcow2hdr.h"
#include "util/bytes.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* qemu-img writes header_length 112: the 104 bytes of fields, the
 * compression type byte (0: zlib) and padding to a multiple of 8. */
#define HEADER_LENGTH 112
#define REFCOUNT_ORDER 4 /* 16-bit refcounts */
#define FEATURE_ENTRY 48

/* The feature name table qemu writes into every v3 image it makes, so
 * that an older reader can name a feature it does not know. Type: 0
 * incompatible, 1 compatible, 2 autoclear. */
static const struct {
    unsigned char type, bit;
    const char *name;
} features[] = {
    { 0, 0, "dirty bit" },        { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" }, { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" }, { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },          { 2, 1, "raw external data" },
};
#define NFEATURES (sizeof(features) / sizeof(features[0]))

/* Everything in cluster 0 up to the end of the backing name. */
#define HEADER_AREA_MAX                                                                     \
    (HEADER_LENGTH + 8 + ((QCOW2_FORMAT_MAX + 7) & ~7) + 8 + NFEATURES * FEATURE_ENTRY + 8 + \
     BACKING_NAME_MAX)

static int fail(char *msg, size_t msgsz, int err, const char *what)
{
    snprintf(msg, msgsz, "%s", what);
    return err;
}

/* Appends header extension `type` with len bytes of data at h + *off,
 * padded with zeros to a multiple of 8. */
static void put_ext(unsigned char *h, size_t *off, uint32_t type, const void *data, size_t len)
{
    put_be32(h + *off, type);
    put_be32(h + *off + 4, (uint32_t)len);
    if (len)
        memcpy(h + *off + 8, data, len);
    *off += 8 + ((len + 7) & ~(size_t)7);
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int qcow2_write_overlay(int fd, uint64_t size, const char *backing, const char *format,
                        char *msg, size_t msgsz)
{
    const unsigned bits = QCOW2_CREATE_CLUSTER_BITS;
    const uint64_t cluster = (uint64_t)1 << bits;
    size_t blen = strlen(backing), flen = strlen(format);
    if (blen == 0 || blen > BACKING_NAME_MAX)
        return fail(msg, msgsz, -EINVAL, "backing file name empty or too long");
    if (flen == 0 || flen > QCOW2_FORMAT_MAX)
        return fail(msg, msgsz, -EINVAL, "backing format name empty or too long");
    /* The virtual size in whole sectors, one L1 entry per L2 table (each
     * maps cluster / 8 clusters), and no more L1 than qemu will open. */
    if (size > UINT64_MAX - 511)
        return fail(msg, msgsz, -EFBIG, "the image size is too large for qcow2");
    size = (size + 511) & ~(uint64_t)511;
    const unsigned l2_shift = bits + bits - 3;
    uint64_t l1_size = (size >> l2_shift) + ((size & (((uint64_t)1 << l2_shift) - 1)) != 0);
    if (l1_size > MAX_L1_BYTES / 8)
        return fail(msg, msgsz, -EFBIG,
                    "the image size is too large for qcow2 with 64 KiB clusters");
    uint64_t l1_bytes = l1_size * 8;
    uint64_t l1_clusters = (l1_bytes + cluster - 1) / cluster;
    uint64_t nclusters = 3 + l1_clusters; /* header, refcount table and block, L1 */
    /* One refcount block maps cluster * 8 / 16 clusters: 32768 here,
     * against at most 3 + 512 of metadata. */
    _Static_assert((1u << (QCOW2_CREATE_CLUSTER_BITS - 1)) >= 3 + (MAX_L1_BYTES >> 16),
                   "one refcount block covers the metadata");

    unsigned char h[HEADER_AREA_MAX];
    memset(h, 0, sizeof(h));
    memcpy(h + H_MAGIC, QCOW2_MAGIC, 4);
    put_be32(h + H_VERSION, 3);
    put_be32(h + H_CLUSTER_BITS, bits);
    put_be64(h + H_SIZE, size);
    put_be32(h + H_L1_SIZE, (uint32_t)l1_size);
    put_be64(h + H_L1_OFFSET, l1_size ? 3 * cluster : 0);
    put_be64(h + H_REFTABLE_OFFSET, cluster);
    put_be32(h + H_REFTABLE_CLUSTERS, 1);
    put_be32(h + H_REFCOUNT_ORDER, REFCOUNT_ORDER);
    put_be32(h + H_LENGTH, HEADER_LENGTH);
    size_t off = HEADER_LENGTH;
    put_ext(h, &off, EXT_BACKING_FORMAT, format, flen);
    unsigned char table[NFEATURES * FEATURE_ENTRY];
    memset(table, 0, sizeof(table));
    for (size_t i = 0; i < NFEATURES; i++) {
        table[i * FEATURE_ENTRY] = features[i].type;
        table[i * FEATURE_ENTRY + 1] = features[i].bit;
        memcpy(table + i * FEATURE_ENTRY + 2, features[i].name, strlen(features[i].name));
    }
    put_ext(h, &off, EXT_FEATURE_TABLE, table, sizeof(table));
    put_ext(h, &off, EXT_END, NULL, 0);
    /* The name right after the extensions, as qemu places it. */
    put_be64(h + H_BACKING_OFFSET, off);
    put_be32(h + H_BACKING_SIZE, (uint32_t)blen);
    memcpy(h + off, backing, blen);
    off += blen;

    unsigned char reftable[8];
    put_be64(reftable, 2 * cluster);
    unsigned char refblock[2 * (3 + (MAX_L1_BYTES >> QCOW2_CREATE_CLUSTER_BITS))];
    for (uint64_t i = 0; i < nclusters; i++)
        put_be16(refblock + 2 * i, 1);

    /* The file's length first: the L1 table is the zeros of a hole. */
    int r = ftruncate(fd, (off_t)(3 * cluster + l1_bytes)) < 0 ? -errno : 0;
    if (r == 0)
        r = write_all(fd, h, off, 0);
    if (r == 0)
        r = write_all(fd, reftable, sizeof(reftable), cluster);
    if (r == 0)
        r = write_all(fd, refblock, 2 * nclusters, 2 * cluster);
    if (r < 0)
        snprintf(msg, msgsz, "cannot write the qcow2 overlay: %s", strerror(-r));
    return r;
}
