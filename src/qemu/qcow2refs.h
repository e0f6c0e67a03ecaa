/* qcow2refs: does a qcow2 image's refcount table say exactly what its
 * metadata references? The store's check (ops/check.h) asks this of
 * every image before it runs `qemu-img check`.
 *
 * qemu-img check of one small image costs ~25 ms of CPU here, nearly all
 * of it starting qemu-img (its --version alone costs as much): a store of
 * 1,000 snapshots would spend half a minute starting processes. The
 * images the daemon makes are plain (no internal snapshots, no
 * compression, no bitmaps, 16-bit refcounts), and for those this counts
 * what qemu-img check counts: every cluster the header, the L1 table,
 * the L2 tables, the data and the refcount structures use, against the
 * refcount stored for it, and the COPIED flags against the refcounts.
 * Only an image where every count agrees is called clean; anything else
 * (a difference, a feature not counted here, a table out of bounds) is
 * left to qemu-img check, which has the last word and does the repair.
 * Reads only, with bounds: at most QCOW2REFS_MAX_CLUSTERS clusters. */
#ifndef VMSTOREFS_QCOW2REFS_H
#define VMSTOREFS_QCOW2REFS_H

#include <stddef.h>

/* 2^24 clusters: 1 TiB of 64 KiB clusters, a 32 MiB count. */
#define QCOW2REFS_MAX_CLUSTERS (1u << 24)

/* 1 when every refcount of the image open on fd is what its metadata
 * references (qemu-img check would find no leak and no corruption); 0
 * when not, or when the image uses what is not counted here (why says
 * which): ask qemu-img; -errno when it cannot be read. */
int qcow2_refcounts_clean(int fd, char *why, size_t whysz);

#endif
