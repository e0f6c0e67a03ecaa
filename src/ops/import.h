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
 * Writing NEW/domain.xml then defines the VM (redefine.h): every image
 * the definition names is checked there by the daemon's own header
 * parser (chain.h) before any qemu-img sees it: qcow2 as the definition
 * says (never probed), no external data file, backing names relative,
 * inside the VM, each with its format, no loops, bounded depth. A
 * malformed image is -EINVAL, one whose chain points out of the VM
 * -EACCES, and the refused definition changes nothing.
 *
 * Refusals: -EACCES (the caller may not create an entry in the store's
 * root, as `mkdir STORE/NEW` would need), -EINVAL (a bad name), -EEXIST. */
#ifndef VMSTOREFS_IMPORT_H
#define VMSTOREFS_IMPORT_H

#include "ops/snapshot.h"

#include <stddef.h>
#include <sys/types.h>

int vm_import_new(const struct snap_ctx *c, const char *name, mode_t mode, char *msg,
                  size_t msgsz);
/* The new image's descriptor (read-write) in *fd. */
int disk_image_new(const struct snap_ctx *c, const char *vm, const char *dev, mode_t mode,
                   int *fd, char *msg, size_t msgsz);

#endif
