/* nsop: what a namespace request on the mount means, FUSE-free.
 *
 *   mkdir  NEW                          a new, undefined VM (import.h)
 *   mkdir  <vm>/snapshots/S             take a snapshot
 *   mkdir  <vm>/clones/N                clone the current state as VM N
 *   mkdir  <vm>/snapshots/S/clones/N    clone it as at S (clone.h)
 *   rename <vm>/snapshots/S -> .../T    rename it (EXDEV across VMs or
 *                                       onto another kind of entry)
 *   rename <vm> -> <new>                rename the VM (vmrename.h); only
 *                                       at the root (EINVAL elsewhere)
 *   symlink snapshots/S <vm>/current    revert (when `current` is absent)
 *   symlink snapshots/S <vm>/<tmp>      a link GNU ln makes before renaming
 *   rename <vm>/<tmp> -> <vm>/current   it over `current`: revert
 *   unlink <vm>/current                 `current` reads as absent until a
 *                                       new link is made; no data changes
 *   unlink <vm>/<tmp>                   forget a pending link
 *   rmdir  <vm>/snapshots/S             delete S (snapshot_delete)
 *   unlink <vm>/snapshots/S/<dev>.qcow2 the disk leaves S; the last image
 *                                       takes S with it
 *   rmdir  <vm>                         delete the VM (vm_delete)
 *   unlink <vm>/domain.xml              undefine the VM; by a process
 *                                       walking the VM (rm -r), delete it
 *                                       whole (ghost.h)
 *   unlink <vm>/disks/<dev>.qcow2       detach the disk (disk_detach)
 *   rmdir  <vm>/clones                  accepted, changes nothing
 *   unlink <vm>/clones/N                N forgets it is a clone of <vm>
 *                                       (clone_forget); N stays
 *   rmdir  <vm>/disks, <vm>/snapshots   accepted when empty, changes
 *                                       nothing
 *
 * Anything else is NSOP_NOT_MINE: the FUSE layer refuses it with the
 * errno its refusal rules give. Results are 0 or -errno, with the reason
 * in res->msg and, on success, the VM that changed in res->vm so the FUSE
 * layer can drop what the kernel cached about it. */
#ifndef VMSTOREFS_NSOP_H
#define VMSTOREFS_NSOP_H

#include "util/log.h"
#include "util/names.h"
#include "ops/snapshot.h"

#include <stddef.h>

#define NSOP_NOT_MINE 1

struct nsop_result {
    char vm[NAME_MAX_LEN + 1]; /* the VM that changed, "" when none */
    bool frozen_changed; /* headers of frozen images were rewritten (rename) */
    /* nsop_rename of a VM: its new name (res.vm stays ""): the FUSE layer
     * drops what the kernel cached under it once its node table has the
     * VM's nodes there. */
    char renamed_to[NAME_MAX_LEN + 1];
    char msg[MSG_MAX];
};

/* mode: what mkdir asked for (a new VM's directory takes it). */
int nsop_mkdir(const struct snap_ctx *c, const char *path, mode_t mode, struct nsop_result *res);
int nsop_unlink(const struct snap_ctx *c, const char *path, struct nsop_result *res);
int nsop_rmdir(const struct snap_ctx *c, const char *path, struct nsop_result *res);
int nsop_symlink(const struct snap_ctx *c, const char *target, const char *path,
                 struct nsop_result *res);
int nsop_rename(const struct snap_ctx *c, const char *from, const char *to, unsigned flags,
                struct nsop_result *res);

/* A link that exists only in the daemon (vmstate.h): 0 with its target
 * when path is <vm>/<name> of a pending link, -ENOENT otherwise. */
int nsop_pending_link(const char *path, char *target, size_t targetsz);

/* "snapshots/S", "./snapshots/S/" -> S. False for any other target. */
bool nsop_parse_link_target(const char *target, char *snap, size_t snapsz);

#endif
