/* ghost: what one process still sees of entries it has just deleted.
 *
 * `rm -r` removes a directory's entries and then the directory itself.
 * Two deletes here take more with them than the entry removed: the last
 * image of a snapshot removes the snapshot, and the first entry `rm -r`
 * removes from a VM it walks (domain.xml, listed first) deletes the whole
 * VM at once, so that nothing is merged for snapshots going away with it.
 * For the process that did it (and only for it, for GHOST_SECONDS at
 * most) those entries stay visible as they were listed, empty and
 * dataless, so its walk ends as it would on any filesystem: its unlinks
 * and rmdirs of them succeed and change nothing. Everyone else sees the
 * store as it is.
 *
 * Walkers: a process that has a VM's directory open (opendir) is walking
 * it; the FUSE layer reports opens and releases. FUSE-free. */
#ifndef VMSTOREFS_GHOST_H
#define VMSTOREFS_GHOST_H
#include "store/store.h"
#include <stdbool.h>
#include <sys/types.h>

#define GHOST_SECONDS 60

/* Keeps path (a mount path, "/vm/snapshots/S") visible to pid as type. */
int ghost_add(pid_t pid, const char *path, mode_t type);
/* Keeps the whole tree under the mount path of VM vm, as the view lists
 * it now (domain.xml, disks, snapshots and their images, clones,
 * current), visible to pid. */
int ghost_add_vm(const struct store *s, pid_t pid, const char *vm);
/* 0 with the type when path is a ghost for pid, -ENOENT otherwise. */
int ghost_stat(pid_t pid, const char *path, mode_t *type);
/* Calls fill for each ghost directly inside dir (for pid). */
int ghost_list(pid_t pid, const char *dir, int (*fill)(void *ctx, const char *name, mode_t type),
               void *ctx);
/* Forgets path for pid: 0 when it was a ghost (the unlink or rmdir
 * succeeds), -ENOENT otherwise; -ENOTEMPTY for a directory that still has
 * ghosts inside. */
int ghost_remove(pid_t pid, const char *path);
/* Forgets every ghost of pid at or below path. */
void ghost_forget_under(pid_t pid, const char *path);
/* Walkers of VM directories. */
void ghost_walker_open(pid_t pid, const char *vm);
void ghost_walker_close(pid_t pid, const char *vm);
bool ghost_is_walker(pid_t pid, const char *vm);
/* A walker whose VM delete was refused: its later removals in the VM are
 * refused with the same error (-errno), so a `rm -r` of a running VM
 * changes nothing instead of deleting what it can. 0 when none. */
void ghost_walker_refuse(pid_t pid, const char *vm, int err);
int ghost_walker_refused(pid_t pid, const char *vm);
/* A walker that removed the VM's domain.xml itself: its next removal in
 * the VM is the delete of the whole VM (nsop.c). A VM that had no
 * definition before the walk is never taken whole this way. */
void ghost_walker_set_undefined(pid_t pid, const char *vm);
bool ghost_walker_undefined(pid_t pid, const char *vm);
/* Forgets everything (tests). */
void ghost_reset(void);
#endif
