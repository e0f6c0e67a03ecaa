/* vmrename: mv <vm> <new> at the root of the mount, FUSE-free.
 *
 *   vm_rename  the VM's directory becomes STORE/<new>, and everything
 *              that names it follows: <name> and every absolute path
 *              into the directory in domain.xml, in the definition an
 *              undefine kept and in each snapshot's snapshot.xml (its
 *              <domain>, with its <name>, and its <disks> sources); in
 *              other VMs, the lineage of its clones (cloneid.h: source=)
 *              in their domain.xml, kept definition and snapshots'
 *              <domain>, and any path into the directory (a CD-ROM or
 *              read-only disk a clone shares). Backing names inside the
 *              images are relative (SPEC §1) and stay as they are: no
 *              image is written, whatever the disks' sizes.
 *
 * One journaled operation ("vmrename") under the VM's lock, <new>'s lock
 * (the name reserved as a clone reserves it) and the lock of each other
 * VM it rewrites; the record names them all (journal.h, also), so a crash
 * at any point is finished, or undone, by the next mount or by the next
 * operation on any of them.
 *
 * Refusals, each changing nothing: -EINVAL (<new> is no valid VM name),
 * -EEXIST (anything stands at STORE/<new>, or a clone named <new> is
 * being made), -ENOENT (no such VM), -EACCES (the caller may not make
 * entries in the store's root), -EBUSY (a qemu holds one of its images,
 * an active image is open for writing through a mount, a merge of the
 * VM is running: the VM's lock is not free within VMLOCK_OP_WAIT_MS, or
 * another VM it must rewrite is busy the same way); what the chain walk
 * says of a VM whose chains do not read (its images could not all be
 * held: -EINVAL, -EACCES for a chain that leaves the VM). Merges queued but
 * not running move to the new name (bgmerge.h). Returns 0 or -errno
 * with one line in msg. */
#ifndef VMSTOREFS_VMRENAME_H
#define VMSTOREFS_VMRENAME_H

#include "vm/opctx.h"

#include <stddef.h>

int vm_rename(const struct snap_ctx *c, const char *vm, const char *newname, char *msg,
              size_t msgsz);

#endif
