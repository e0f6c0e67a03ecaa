#include "config.h"

#include "qemu/qcow2refs.h"

#include "qemu/qcow2fmt.h"
#include "util/bytes.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFFSET_MASK 0x00fffffffffffe00ULL /* L1 and L2 entries */
#define REFT_MASK 0xfffffffffffffe00ULL
#define OFLAG_COPIED (1ULL << 63)
#define OFLAG_COMPRESSED (1ULL << 62)
#define EXT_BITMAPS 0x23852875u

struct refs {
    int fd;
    uint64_t cs; /* cluster size */
    unsigned bits;
    uint64_t nb; /* clusters in the file */
    uint16_t *want; /* what the metadata references, per cluster */
    const char *why;
};

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EINVAL; /* past the end: not a table qemu would read */
        done += (size_t)n;
    }
    return 0;
}

/* The clusters [off, off + len) are used once more. false: outside the
 * file, or used too often (16 bits; with no internal snapshot nothing is
 * shared, so anything above 1 is qemu-img's to judge anyway). */
static bool use(struct refs *r, uint64_t off, uint64_t len, const char *what)
{
    if (!len)
        return true;
    uint64_t first = off >> r->bits, last = (off + len - 1) >> r->bits;
    if (off + len < off || last >= r->nb) {
        r->why = what;
        return false;
    }
    for (uint64_t c = first; c <= last; c++)
        if (++r->want[c] > 1) {
            r->why = "a cluster used twice";
            return false;
        }
    return true;
}

/* Header extensions that add clusters this does not count (bitmaps). */
static int plain_extensions(int fd, uint64_t start, uint64_t cs, const char **why)
{
    unsigned char h[8];
    for (uint64_t off = start; off + 8 <= cs;) {
        int r = read_at(fd, h, 8, off);
        if (r < 0)
            return r;
        uint32_t type = be32(h), len = be32(h + 4);
        if (type == EXT_END)
            return 1;
        if (type == EXT_BITMAPS) {
            *why = "persistent bitmaps";
            return 0;
        }
        off += 8 + (((uint64_t)len + 7) & ~7ULL);
    }
    *why = "header extensions run past the first cluster";
    return 0;
}

static uint64_t get(const unsigned char *t, uint64_t i)
{
    return be64(t + 8 * i);
}

int qcow2_refcounts_clean(int fd, char *why, size_t whysz)
{
    unsigned char h[H_V3_LENGTH];
    struct stat st;
    int r = read_at(fd, h, sizeof(h), 0);
    if (r == 0 && fstat(fd, &st) < 0)
        r = -errno;
    if (r == -EINVAL) {
        snprintf(why, whysz, "a header cut short");
        return 0;
    }
    if (r < 0)
        return r;
    struct refs rf = { .fd = fd, .why = NULL };
    uint32_t version = be32(h + H_VERSION);
    rf.bits = be32(h + H_CLUSTER_BITS);
    const char *no = NULL;
    if (memcmp(h, QCOW2_MAGIC, 4) != 0 || (version != 2 && version != 3))
        no = "not a qcow2 image of version 2 or 3";
    else if (rf.bits < MIN_CLUSTER_BITS || rf.bits > MAX_CLUSTER_BITS)
        no = "cluster size";
    else if (be32(h + H_NB_SNAPSHOTS) != 0)
        no = "internal snapshots";
    else if (be32(h + H_CRYPT) != 0)
        no = "encryption";
    else if (version == 3 && be64(h + H_INCOMPAT) != 0)
        no = "incompatible features (dirty, external data, compression type, extended L2)";
    else if (version == 3 && be32(h + H_REFCOUNT_ORDER) != 4)
        no = "refcounts other than 16 bits";
    if (no) {
        snprintf(why, whysz, "%s", no);
        return 0;
    }
    rf.cs = 1ULL << rf.bits;
    rf.nb = ((uint64_t)st.st_size + rf.cs - 1) >> rf.bits;
    if (rf.nb == 0 || rf.nb > QCOW2REFS_MAX_CLUSTERS) {
        snprintf(why, whysz, "%s", rf.nb ? "too large to count here" : "empty");
        return 0;
    }
    uint64_t hlen = version == 3 ? be32(h + H_LENGTH) : H_V2_LENGTH;
    r = plain_extensions(fd, hlen, rf.cs, &no);
    if (r <= 0) {
        snprintf(why, whysz, "%s", r < 0 ? strerror(-r) : no);
        return r;
    }
    uint64_t l1_off = be64(h + H_L1_OFFSET), rt_off = be64(h + H_REFTABLE_OFFSET);
    uint64_t l1_n = be32(h + H_L1_SIZE), rt_bytes = (uint64_t)be32(h + H_REFTABLE_CLUSTERS) << rf.bits;
    if (l1_n * 8 > MAX_L1_BYTES || rt_bytes > MAX_REFTABLE_BYTES || (l1_off & (rf.cs - 1)) ||
        (rt_off & (rf.cs - 1))) {
        snprintf(why, whysz, "tables out of bounds");
        return 0;
    }
    rf.want = calloc(rf.nb, sizeof(*rf.want));
    unsigned char *l1 = malloc(l1_n * 8 + 1), *l2 = malloc(rf.cs), *rt = malloc(rt_bytes + 1);
    uint16_t *got = calloc(rf.nb, sizeof(*got));
    unsigned char *rb = malloc(rf.cs);
    int clean = 0;
    if (!rf.want || !l1 || !l2 || !rt || !got || !rb) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = read_at(fd, l1, l1_n * 8, l1_off)) < 0 || (r = read_at(fd, rt, rt_bytes, rt_off)) < 0)
        goto out;
    /* What the metadata uses: the header's cluster, the L1 table, each
     * L2 table and the data clusters it maps, the refcount table and
     * its blocks. */
    if (!use(&rf, 0, rf.cs, "header") || !use(&rf, l1_off, l1_n * 8, "L1 table") ||
        !use(&rf, rt_off, rt_bytes, "refcount table"))
        goto differs;
    for (uint64_t i = 0; i < rt_bytes / 8; i++) {
        uint64_t b = get(rt, i) & REFT_MASK;
        if (b && (!use(&rf, b, rf.cs, "refcount block") || (b & (rf.cs - 1))))
            goto differs;
    }
    /* The stored refcounts: every cluster of the file, and none past it. */
    uint64_t per_block = rf.cs / 2;
    for (uint64_t i = 0; i < rt_bytes / 8; i++) {
        uint64_t b = get(rt, i) & REFT_MASK;
        if (!b)
            continue;
        if ((r = read_at(fd, rb, rf.cs, b)) < 0)
            goto out;
        for (uint64_t k = 0; k < per_block; k++) {
            uint64_t c = i * per_block + k;
            uint16_t v = (uint16_t)(rb[2 * k] << 8 | rb[2 * k + 1]);
            if (c < rf.nb)
                got[c] = v;
            else if (v) {
                rf.why = "a refcount past the end of the file";
                goto differs;
            }
        }
    }
    for (uint64_t i = 0; i < l1_n; i++) {
        uint64_t e = get(l1, i), l2_off = e & OFFSET_MASK;
        if (!l2_off)
            continue;
        if ((l2_off & (rf.cs - 1)) || !use(&rf, l2_off, rf.cs, "L2 table") ||
            !(e & OFLAG_COPIED) != (got[l2_off >> rf.bits] != 1)) {
            rf.why = rf.why ? rf.why : "an L1 entry (alignment or COPIED flag)";
            goto differs;
        }
        if ((r = read_at(fd, l2, rf.cs, l2_off)) < 0)
            goto out;
        for (uint64_t k = 0; k < rf.cs / 8; k++) {
            uint64_t d = get(l2, k), off = d & OFFSET_MASK;
            if (d & OFLAG_COMPRESSED) {
                snprintf(why, whysz, "compressed clusters");
                goto out;
            }
            if (!off)
                continue;
            if ((off & (rf.cs - 1)) || !use(&rf, off, rf.cs, "a data cluster") ||
                !(d & OFLAG_COPIED) != (got[off >> rf.bits] != 1)) {
                rf.why = rf.why ? rf.why : "an L2 entry (alignment or COPIED flag)";
                goto differs;
            }
        }
    }
    for (uint64_t c = 0; c < rf.nb; c++)
        if (got[c] != rf.want[c]) {
            snprintf(why, whysz, "cluster %llu: refcount %u, used %u", (unsigned long long)c,
                     got[c], rf.want[c]);
            goto out;
        }
    clean = 1;
    goto out;
differs:
    snprintf(why, whysz, "%s", rf.why ? rf.why : "the metadata differs");
out:
    free(rf.want);
    free(l1);
    free(l2);
    free(rt);
    free(got);
    free(rb);
    return r < 0 ? r : clean;
}
