/* bgmerge: merges run in the background, as ZFS's async destroy.
 *
 * With the worker running (a front end that stays up, the mount, starts
 * it), a delete only changes the namespace: each image of the snapshot
 * that something still reads moves to a hidden directory (delplan.h), the
 * snapshot leaves the listing, and the call returns once that is durable.
 * The data work (a hidden image with one dependent merged into it, or it
 * into its dependent) is the garbage pass, run here later as its own
 * journaled operation "gc" under the VM's lock: resumable after a crash
 * like any other, shown in .jobs while it waits and while it runs.
 *
 * When a VM's merges start:
 *   - BGMERGE_QUIET_MS after the last change to its namespace (a walk
 *     that removes entry after entry is not interrupted by merges);
 *   - not while a process walks the VM's directory (the front end says
 *     so, bgmerge_set_walked): `rm -r VM` ends with the VM deleted whole,
 *     so its snapshots' merges are dropped unrun and no data is copied;
 *     never deferred longer than BGMERGE_MAX_DEFER_MS that way;
 *   - after a failure (ENOSPC, an image a qemu holds, a reader of a
 *     frozen image that would be rewritten), again with back-off, the
 *     reason in the log and in .jobs.
 *
 * Without the worker (vmstorefs-ctl, the unit tests), delplan merges in
 * the operation itself, as before. */
#ifndef VMSTOREFS_BGMERGE_H
#define VMSTOREFS_BGMERGE_H

#include "store/store.h"

#include <stdbool.h>

#define BGMERGE_QUIET_MS 500
#define BGMERGE_MAX_DEFER_MS 30000
#define BGMERGE_MAX_BACKOFF_MS 60000

/* From now on deletes defer their merges and work is queued, and a
 * recovery leaves committed merges to the worker (journal_set_defer_data)
 * - before the worker thread runs: a mount calls it before its recovery,
 * then forks (fuse_daemonize), then starts the thread. */
void bgmerge_prepare(const struct store *s);
/* Starts the worker for store s (once per process; prepares if needed). */
int bgmerge_start(const struct store *s);
/* Stops it: a running merge's qemu-img is stopped (its record stays in
 * the journal and is finished at the next mount), queued work is left
 * for the next start (it is in the store: hidden images). */
void bgmerge_stop(void);
/* Is work being queued for the worker (so that deletes defer their
 * merges)? */
bool bgmerge_active(void);
/* vm's namespace changed and it may have merges to run. */
void bgmerge_kick(const char *vm);
/* vm changed and may have merges to run only if it has a hidden
 * directory: queued then, and only then (a pass with nothing to merge
 * would still hold the VM, refusing its writers, for nothing). */
void bgmerge_kick_if_hidden(const char *vm);
/* Queues every VM of the store that has a hidden directory (at start:
 * what a crash or an earlier run left). */
void bgmerge_kick_store(void);
/* Waits until vm has no queued or running merge: 0, or -errno when an
 * attempt that ended while waiting failed (it stays queued, and is
 * retried), -EINTR when cancelled(arg) says so (may be NULL), -ESHUTDOWN
 * when the worker stops. */
int bgmerge_wait(const char *vm, bool (*cancelled)(void *), void *arg);
/* The front end's answer to "is a process walking vm's directory?". */
void bgmerge_set_walked(bool (*walked)(const char *vm));
/* The front end's answer to "is this image open for reading through the
 * mount?" (a frozen image a merge would rewrite waits for its readers). */
void bgmerge_set_reading(bool (*reading)(const char *path));
/* Called (from the worker's thread) after a VM's merges changed its
 * images, for the front end to drop what it cached of them. */
void bgmerge_set_changed(void (*changed)(const char *vm));
/* What bgmerge_set_reading installed (false when nothing is). */
bool bgmerge_image_read(const char *path);
/* Is the worker stopping? (The merge runner's cancel test.) */
bool bgmerge_stopping(void *unused);

#endif
