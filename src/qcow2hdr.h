/* qcow2hdr: the backing file name recorded in a qcow2 header.
 *
 * `current` is derived from every active image's backing file on each
 * lookup of a VM directory. Running `qemu-img info` for that would cost a
 * process per disk per `ls` (and a running qemu changes the image's mtime
 * constantly, so no stat-keyed cache would hold); the name is two fields
 * of the fixed header (QEMU docs/interop/qcow2.txt), read here directly.
 * Reads only; never trusts sizes beyond what the format allows. */
#ifndef VMSTOREFS_QCOW2HDR_H
#define VMSTOREFS_QCOW2HDR_H

#include <stddef.h>

/* qemu refuses backing names longer than this (block/qcow2.c). */
#define QCOW2_BACKING_MAX 1023

/* Writes the backing file name stored in the qcow2 image open on fd into
 * out ("" when the image has none). -EINVAL with a reason in msg when fd
 * is not a qcow2 image of version 2 or 3 or its header is inconsistent. */
int qcow2_backing_name(int fd, char *out, size_t outsz, char *msg, size_t msgsz);

#endif
