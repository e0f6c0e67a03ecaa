/* qcow2create: an empty qcow2 overlay, written directly.
 *
 * A snapshot take (and a revert) puts a new empty overlay above each
 * disk. `qemu-img create -u` made them, at ~10 ms a process, most of a
 * take's time; the file is a few fixed structures, written here the way
 * qemu-img create -f qcow2 -u -b B -F F IMAGE SIZE lays them out (qemu
 * 7.2, block/qcow2.c qcow2_co_create and qcow2_update_header):
 *
 *   cluster 0   the version 3 header (compat 1.1: refcount_bits 16, no
 *               lazy refcounts, no feature bits, zlib), then the header
 *               extensions (backing format, feature name table, end),
 *               then the backing file name
 *   cluster 1   the refcount table: one entry, the block at cluster 2
 *   cluster 2   the refcount block: 1 for each cluster of metadata
 *   cluster 3.. the L1 table, all zero (nothing allocated: every read
 *               goes to the backing file), l1_size * 8 bytes long
 *
 * The cluster size is qemu-img's default, 64 KiB, whatever the backing
 * file's (qemu-img create does not take it from the backing file). The
 * virtual size is rounded up to 512 bytes as qemu-img rounds it. */
#ifndef VMSTOREFS_QCOW2CREATE_H
#define VMSTOREFS_QCOW2CREATE_H

#include <stddef.h>
#include <stdint.h>

/* The cluster size qemu-img create gives a qcow2 image by default. */
#define QCOW2_CREATE_CLUSTER_BITS 16

/* Writes the overlay into fd, a new empty file open for writing, with
 * pwrite and ftruncate (the L1 table is a hole: zeros). Does not sync.
 * -EFBIG when size is more than qcow2 can address with 64 KiB clusters
 * (an L1 table over qemu's 32 MiB: 2 PiB), -EINVAL for a backing name or
 * format qemu would refuse (empty, over 1023 or 15 bytes), -errno when a
 * write fails; the reason in msg. */
int qcow2_write_overlay(int fd, uint64_t size, const char *backing, const char *format,
                        char *msg, size_t msgsz);

#endif
