/* qcow2edit: change the backing file name in a qcow2 header in place.
 *
 * Moving an image to another directory (a snapshot taken: disks/ to
 * snapshots/S/) or renaming the directory it backs onto changes the
 * relative backing name it must carry. `qemu-img rebase -u` does that, but
 * it takes qemu's image locks, and while an operation runs vmstorefs holds
 * those locks itself (imagelock.h) so that no qemu can start on the
 * image mid-way. This edits the one field instead, as qemu-img would, and
 * only where that is plainly safe: the image already has a backing name,
 * and the new name fits in the header cluster where the old one stands,
 * over bytes that are the old name or zero padding. Anything else is
 * -ENOSPC and the caller falls back to qemu-img. The recorded backing
 * format is not touched. */
#ifndef VMSTOREFS_QCOW2EDIT_H
#define VMSTOREFS_QCOW2EDIT_H

#include <stddef.h>

/* fd: the image, open read-write. The name, then the length field, then
 * one fdatasync: a crash before it leaves a name the journal's replay
 * writes again. */
int qcow2_set_backing_name(int fd, const char *name, char *msg, size_t msgsz);
/* The same without the fdatasync, for a caller that syncs the image
 * later, before anything depends on the name (the journal: apply.c). */
int qcow2_set_backing_name_unsynced(int fd, const char *name, char *msg, size_t msgsz);

/* The virtual size of the qcow2 image open on fd. */
int qcow2_virtual_size(int fd, unsigned long long *out);

#endif
