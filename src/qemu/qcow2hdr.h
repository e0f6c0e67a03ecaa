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

#include <stdbool.h>
#include <stddef.h>

/* qemu refuses backing names longer than this (block/qcow2.c). */
#define QCOW2_BACKING_MAX 1023
/* qemu keeps the backing format in a 16-byte buffer and refuses longer. */
#define QCOW2_FORMAT_MAX 15
/* The header extensions read, at most: qemu-img writes a few hundred bytes
 * of them; an image whose extensions run on past this is refused rather
 * than read in part (a later extension could override an earlier one). */
#define QCOW2_EXT_AREA_MAX (64 * 1024)

/* Writes the backing file name stored in the qcow2 image open on fd into
 * out ("" when the image has none). -EINVAL with a reason in msg when fd
 * is not a qcow2 image of version 2 or 3 or its header is inconsistent. */
int qcow2_backing_name(int fd, char *out, size_t outsz, char *msg, size_t msgsz);

struct qcow2_backing {
    char name[QCOW2_BACKING_MAX + 1]; /* "" when the image has no backing file */
    char format[QCOW2_FORMAT_MAX + 1]; /* header extension 0xE2792ACA; "" when none */
    bool data_file; /* an external data file: qemu would open another file by name */
};
/* The backing name and format, and whether the image names an external
 * data file, read from the header and its extensions as qemu reads them
 * (the last backing-format extension wins). -EINVAL with a reason for an
 * image qcow2_backing_name refuses, or inconsistent header extensions. */
int qcow2_read_backing(int fd, struct qcow2_backing *out, char *msg, size_t msgsz);

#endif
