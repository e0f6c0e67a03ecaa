/* vmstate: what the daemon knows about a VM that the store cannot say.
 *
 *  - which active images are open for writing through the mount (an
 *    operation must not move an image someone is writing: EBUSY);
 *  - symlinks that exist only for a moment: GNU `ln -sfn T current` makes
 *    a link under a random name beside `current` and renames it over
 *    `current`. The link lives here, never in the store, until it is
 *    renamed (a revert), removed, or expires;
 *  - whether `current` was removed (`rm current; ln -s snapshots/S
 *    current`): it then reads as absent until a new link is made or an
 *    operation changes the VM.
 *
 * One process-wide table, thread-safe. Nothing here is persistent: all of
 * it describes this daemon's open handles and in-flight requests. */
#ifndef VMSTOREFS_VMSTATE_H
#define VMSTOREFS_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMSTATE_MAX_LINKS 16
#define VMSTATE_LINK_TTL 60 /* seconds */

/* Counts a handle open for writing; -EBUSY while an operation runs on vm
 * (vmstate_op_begin), so the two exclude each other. */
int vmstate_writer_add(const char *vm, const char *dev);
void vmstate_writer_remove(const char *vm, const char *dev);
/* Open-for-writing handles of vm's active image dev (dev NULL: any). */
int vmstate_writers(const char *vm, const char *dev);

/* An operation that moves or rewrites vm's images runs from begin to end
 * (under the VM's lock, so one at a time); meanwhile new writers are
 * refused. Check vmstate_writers() after begin: a writer counted before
 * is seen, one that comes after is refused. */
void vmstate_op_begin(const char *vm);
void vmstate_op_end(const char *vm);

/* -EEXIST for a name in use. Past VMSTATE_MAX_LINKS live links for one
 * VM the oldest is forgotten. */
int vmstate_link_add(const char *vm, const char *name, const char *target);
/* Copies the link's target into out; -ENOENT when there is none. */
int vmstate_link_get(const char *vm, const char *name, char *out, size_t outsz);
int vmstate_link_remove(const char *vm, const char *name);

void vmstate_set_current_hidden(const char *vm, bool hidden);
bool vmstate_current_hidden(const char *vm);

/* An operation changed vm: `current` shows what the images say again. */
void vmstate_changed(const char *vm);

/* vm's name left the store (a VM renamed): its pending links and a
 * removed `current` are forgotten, so a VM made under that name later
 * starts with none. Writers and running operations are live handles and
 * requests, counted as they end. */
void vmstate_forget(const char *vm);

/* Forget everything (tests). */
void vmstate_reset(void);

#endif
