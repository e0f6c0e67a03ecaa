/* import: a VM brought into the store through the mount, by file
 * operations (SPEC §2, "mkdir NEW, write NEW/domain.xml, copy images
 * into NEW/disks/"):
 *
 *   vm_import_new   mkdir NEW at the mount's root: an undefined VM (its
 *                   directory with empty disks/ and snapshots/), the
 *                   caller's, made in the journal's temporary directory
 *                   and moved into the store in one step
 *   disk_image_new  create of <vm>/disks/<dev>.qcow2 (cp img ...): an
 *                   empty image file, the caller's, to be written
 *
 *   snap_import_dir   mkdir NEW/snapshots/S while NEW is being imported
 *                   (vm_importing): an empty snapshot directory, the
 *                   caller's (cp -a of a snapshots/ tree)
 *   snap_file_new   create of NEW/snapshots/S/<dev>.qcow2 or
 *                   snapshot.xml while NEW is being imported: a file to
 *                   be written, the caller's
 *
 * A VM is being imported from its mkdir until its first definition:
 * while it has no domain.xml and no definition an undefine kept. Then,
 * and only then, its snapshots/ takes files as disks/ does (written,
 * truncated, chmod'ed, their times set, as cp -a does); a VM that has or
 * had a definition keeps its snapshots frozen (mkdir there is a take).
 *
 * Writing NEW/domain.xml then defines the VM (redefine.h): every image
 * the definition names is checked there by the daemon's own header
 * parser (chain.h) before any qemu-img sees it: qcow2 as the definition
 * says (never probed), no external data file, backing names relative,
 * inside the VM, each with its format, no loops, bounded depth. A
 * malformed image is -EINVAL, one whose chain points out of the VM
 * -EACCES, and the refused definition changes nothing.
 *
 * Its snapshots (the images in snapshots/<S>/ and any snapshot.xml
 * given) are checked then too, as `--check` checks a VM
 * (check_import_snapshots, check.h); a snapshot with no snapshot.xml
 * gets one made from its images' chains (its parent the snapshot its
 * images back onto) and the definition, its creation time the snapshot
 * directory's mtime (which cp -a keeps).
 *
 * Refusals: -EACCES (the caller may not create an entry in the store's
 * root, as `mkdir STORE/NEW` would need), -EINVAL (a bad name), -EEXIST. */
#ifndef VMSTOREFS_IMPORT_H
#define VMSTOREFS_IMPORT_H

#include "ops/snapshot.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

bool vm_importing(const struct store *s, const char *vm);

int vm_import_new(const struct snap_ctx *c, const char *name, mode_t mode, char *msg,
                  size_t msgsz);
/* The new image's descriptor (read-write) in *fd. */
int disk_image_new(const struct snap_ctx *c, const char *vm, const char *dev, mode_t mode,
                   int *fd, char *msg, size_t msgsz);
/* -EROFS (and msg) when vm is not being imported. */
int snap_import_dir(const struct snap_ctx *c, const char *vm, const char *snap, mode_t mode,
                    char *msg, size_t msgsz);
/* rm and rmdir in a VM being imported: the file (disks/<file> when snap
 * is NULL, else snapshots/<snap>/<file>) goes, or (file NULL) the empty
 * snapshot directory snap, with any snapshot.xml in it. Nothing else:
 * there is no definition to detach from nor a snapshot to merge. */
int import_remove(const struct snap_ctx *c, const char *vm, const char *snap, const char *file,
                  char *msg, size_t msgsz);
/* file: "<dev>.qcow2" or "snapshot.xml". */
int snap_file_new(const struct snap_ctx *c, const char *vm, const char *snap, const char *file,
                  mode_t mode, int *fd, char *msg, size_t msgsz);

#endif
