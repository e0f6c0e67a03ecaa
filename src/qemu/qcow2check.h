/* qcow2check: will qemu-img open this qcow2 image at all?
 *
 * A merge (a pull or a commit, journal.h) runs qemu-img after its
 * operation committed: a qemu-img that cannot even open an image fails
 * there, the record stays, and every replay fails the same way, so the VM
 * answers every later operation with EIO. An operation checks every
 * image its merges will open before its commit point instead, and
 * refuses, changing nothing.
 *
 * The checks are qemu's own when it opens a qcow2 image (block/qcow2.c,
 * qcow2_do_open and qcow2_validate_table; nbdkit's qcow2dec filter makes
 * the same): version, cluster size, header length, feature bits,
 * encryption, and every table (L1, refcount table, snapshot table)
 * within qemu's size limits, cluster aligned, with no offset overflow,
 * the L1 table large enough for the virtual size. Reads the fixed header
 * only: damage deeper in the metadata is qemu-img's to find. */
#ifndef VMSTOREFS_QCOW2CHECK_H
#define VMSTOREFS_QCOW2CHECK_H

#include <stddef.h>

/* 0 when the header of the qcow2 image open on fd passes, -EINVAL with
 * the reason in msg when it does not (-errno when it cannot be read). */
int qcow2_check_header(int fd, char *msg, size_t msgsz);

#endif
