/* ghost: what one process still sees of entries it has just deleted.
 *
 * `rm -r` removes a directory's entries and then the directory itself.
 * One delete here takes more with it than the entry removed: the last
 * image of a snapshot removes the snapshot. For the process that did it
 * (and only for it, for GHOST_SECONDS at most) the snapshot's directory
 * stays visible, empty, so its walk ends as it would on any filesystem:
 * its rmdir succeeds and changes nothing. Everyone else sees the store
 * as it is.
 *
 * Walkers: a process that has a directory of a VM open (opendir) is
 * walking it; the FUSE layer reports opens and releases, and the
 * background merges wait for them (bgmerge.h). FUSE-free. */
#ifndef VMSTOREFS_GHOST_H
#define VMSTOREFS_GHOST_H
#include "store/store.h"
#include <stdbool.h>
#include <sys/types.h>

#define GHOST_SECONDS 60

/* Keeps path (a mount path, "/vm/snapshots/S") visible to pid as type. */
int ghost_add(pid_t pid, const char *path, mode_t type);
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
/* Does any process walk vm (have a directory of it open)? The background
 * merges of a VM wait for its walkers (bgmerge.h). */
bool ghost_vm_walked(const char *vm);
/* Forgets everything (tests). */
void ghost_reset(void);
#endif
