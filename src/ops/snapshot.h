/* snapshot: the operations on a VM's snapshots, FUSE-free.
 *
 *   snapshot_take    mkdir <vm>/snapshots/S
 *   snapshot_rename  mv <vm>/snapshots/S <vm>/snapshots/T
 *   snapshot_revert  ln -sfn snapshots/S <vm>/current
 *   snapshot_delete  rmdir <vm>/snapshots/S (dev NULL), or
 *                    rm <vm>/snapshots/S/<dev>.qcow2 (dev leaves S)
 *
 * Each one: checks the names, takes the VM's lock (vmlock.h), finishes
 * any operation on the VM that a crash left in the journal, checks that
 * no image it will move or rewrite is in use (a qemu's image locks, a
 * handle open for writing through the mount: -EBUSY) and keeps qemu off
 * those images until it is done, prepares every new file out of sight,
 * then commits through the journal (journal.h). A refusal changes
 * nothing. Returns 0 or -errno with one line in msg saying why. */
#ifndef VMSTOREFS_SNAPSHOT_H
#define VMSTOREFS_SNAPSHOT_H

#include "store/store.h"
#include "vm/opctx.h"

#include <stddef.h>
#include <sys/types.h>

/* The longest chain a take makes. domain.xml spells a disk's chain out as
 * nested <backingStore> elements; libxml2 (libvirt, virt-xml-validate and
 * our own parser) reads no more than 256 levels, so past this a take
 * would write a definition nobody can read: -EMLINK, delete (merge)
 * snapshots first. */
#define SNAPSHOT_MAX_CHAIN 200

int snapshot_take(const struct snap_ctx *c, const char *vm, const char *snap, char *msg,
                  size_t msgsz);
int snapshot_rename(const struct snap_ctx *c, const char *vm, const char *from, const char *to,
                    char *msg, size_t msgsz);
int snapshot_revert(const struct snap_ctx *c, const char *vm, const char *snap, char *msg,
                    size_t msgsz);

int snapshot_delete(const struct snap_ctx *c, const char *vm, const char *snap, const char *dev,
                    char *msg, size_t msgsz);
#endif
