/* clone: a new VM made from another one, FUSE-free (SPEC §2, clone rows).
 *
 *   clone_create  mkdir <vm>/clones/N             (snap NULL: the current state)
 *                 mkdir <vm>/snapshots/S/clones/N (as at S)
 *
 * N gets every snapshot-able disk as a standalone qcow2 (the whole chain
 * collapsed, clonecopy.h), the definition rewritten with a new identity
 * and the lineage (cloneid.h), nvram copied, no snapshots. Read-only and
 * shareable disks and CD-ROMs are referenced, not copied. Everything is
 * made in the journal's temporary directory and fsynced; the commit
 * moves tmp/<id>/N to STORE/N, and only then does the call return.
 *
 * N belongs to the caller (c->cred), each file and directory with the
 * permission bits of the source's it derives from (perm.h).
 *
 * Refusals, each changing nothing: -EACCES (the caller may not create an
 * entry in the store's root: write and search there, as the kernel would
 * check `mkdir STORE/N` by that caller), -EINVAL (a bad name, no usable
 * definition), -EEXIST (N exists in the store, or a clone named N is
 * being made right now: the clone holds N's lock, locks/N, from start to
 * end), -ENOENT (no such VM or snapshot), -EBUSY (a clone of the current
 * state while a qemu holds an active image or it is open for writing
 * through the mount; a clone from a snapshot reads frozen images only and
 * goes ahead while the VM runs).
 *
 * Locking: the source's lock is held SHARED for the whole copy, so two
 * clones of one VM run side by side while take/delete/revert/rename
 * (exclusive) wait, and a clone of the current state pins the active
 * images (image locks and the cross-daemon writer marks, shared between
 * this daemon's clones) so no qemu and no writer gets in while it reads.
 *
 * Failure and interrupts: c->cancelled (a FUSE interrupt, the daemon
 * stopping) kills the running qemu-imgs and the call returns -EINTR; an
 * -ENOSPC (or any failure) of one disk stops the others; either way the
 * temporary directory is removed and the source was never written. */
#ifndef VMSTOREFS_CLONE_H
#define VMSTOREFS_CLONE_H

#include "ops/snapshot.h"

int clone_create(const struct snap_ctx *c, const char *vm, const char *snap, const char *newname,
                 char *msg, size_t msgsz);

/* A new VM's name, held: its lock taken EXCLUSIVE (a clone or an import
 * of that name in the making holds it: -EEXIST), and nothing in the
 * store by that name (-EEXIST), a crash's leftover recovered first. */
int clone_reserve_name(const struct snap_ctx *c, const char *name, struct vmlock *l, char *msg,
                       size_t msgsz);
#endif
