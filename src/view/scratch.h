/* scratch: the files writers make beside a VM's domain.xml, and the
 * writes to domain.xml itself.
 *
 * The tools that edit a file in place make files next to it: sed -i a
 * temporary file it renames over the original, vim a swap file
 * (.domain.xml.swp), a test file (4913) and a backup (domain.xml~),
 * nano a lock file. The store's VM directory holds only its layout, so
 * these "scratch files" live in the daemon: /<vm>/<name> for a name that
 * is none of the layout's (vpath.h) can be created, written, read,
 * stat'ed, chmod'ed, renamed to another such name and removed, as a
 * file in memory (a memfd, at most SCRATCH_MAX_BYTES, SCRATCH_MAX_PER_VM
 * of them per VM; not listed, gone at unmount and when the VM is
 * deleted). Renamed over <vm>/domain.xml, one is a redefine (redefine.h);
 * refused, it stays, and the rename fails with EINVAL.
 *
 * domain.xml opened for writing (cp, `>`, tee, nano, vim's in-place
 * write), or created when the VM has none, gets a scratch copy too (its
 * text unless O_TRUNC): writes go there, and the copy is committed as a
 * redefine at the writer's flush (close(2) returns its error), fsync, or
 * last release. The store's domain.xml changes only by the redefine. */
#ifndef VMSTOREFS_SCRATCH_H
#define VMSTOREFS_SCRATCH_H

#include "ops/snapshot.h"
#include "util/names.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#define SCRATCH_MAX_BYTES (4u << 20)
#define SCRATCH_MAX_PER_VM 16
#define SCRATCH_NAME_MAX 255

/* /<vm>/<name> with name a scratch file's (any file name but the
 * layout's); vm and name are filled. vm must hold NAME_MAX_LEN + 1,
 * name SCRATCH_NAME_MAX + 1. */
bool scratch_path(const char *path, char *vm, char *name);

/* A scratch file: made (mode, owner as given; -EEXIST when excl and it
 * exists), or opened (O_TRUNC empties it). *fd is the caller's own
 * descriptor of it. */
int scratch_create(const char *vm, const char *name, mode_t mode, uid_t uid, gid_t gid, bool excl,
                   int *fd);
int scratch_open(const char *vm, const char *name, int flags, int *fd);
int scratch_stat(const char *vm, const char *name, struct stat *st);
/* Attribute changes (NULL / -1 / UTIME_OMIT leave one alone). */
int scratch_chmod(const char *vm, const char *name, mode_t mode);
int scratch_chown(const char *vm, const char *name, uid_t uid, gid_t gid);
int scratch_truncate(const char *vm, const char *name, off_t size);
int scratch_utimens(const char *vm, const char *name, const struct timespec tv[2]);
int scratch_unlink(const char *vm, const char *name);
/* Within one VM; replaces a scratch file at to. */
int scratch_rename(const char *vm, const char *from, const char *to);
/* Every scratch file of vm goes (the VM was deleted). */
void scratch_drop_vm(const char *vm);

/* A new scratch copy of vm's domain.xml for a writer (empty when trunc
 * or when the VM has none): its descriptor, or -errno. */
int scratch_domxml_copy(const struct store *s, const char *vm, bool trunc, int *fd);
/* May a writer make vm's domain.xml (create(2) of one the view does not
 * show)? -EACCES when something the view does not serve stands there (a
 * planted symbolic link), -ENOENT when the VM is gone. */
int scratch_domxml_creatable(const struct store *s, const char *vm);
/* The text on fd (a scratch copy or file) as vm's new definition
 * (vm_redefine). A refusal is logged in one line naming the reason and
 * returned (-EINVAL, -EBUSY); the old definition stays. */
int scratch_commit(const struct snap_ctx *c, const char *vm, int fd, char *msg, size_t msgsz);
/* The scratch file /<vm>/<name> renamed over domain.xml: committed, and
 * gone when that succeeded. Not logged: the caller logs the rename's
 * refusal. */
int scratch_commit_rename(const struct snap_ctx *c, const char *vm, const char *name, char *msg,
                          size_t msgsz);

#endif
