/* storeio: the file operations changes are made of, all beneath the store
 * root with no symlinks followed (store_open), so a link planted in the
 * store can never redirect a write, rename or removal outside it.
 * Paths are absolute strings below s->root; functions return 0 or -errno. */
#ifndef VMSTOREFS_STOREIO_H
#define VMSTOREFS_STOREIO_H

#include "store/perm.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>

/* The part of path below the root ("" for the root itself), or NULL when
 * path is not below it. */
const char *storeio_rel(const struct store *s, const char *path);
/* Opens the directory holding path; *name points at path's last component. */
int storeio_parent(const struct store *s, const char *path, const char **name);

/* Creates path (which must not exist) owned by perm, writes data, fsyncs
 * it. The file is made 0600 and given perm before any byte is written. */
int storeio_write_new_as(const struct store *s, const char *path, const void *data, size_t len,
                         const struct store_perm *perm);
/* The same, not synced: the caller syncs it later (storeio_fsync_all),
 * before anything depends on its content. */
int storeio_write_new_unsynced(const struct store *s, const char *path, const void *data,
                               size_t len, const struct store_perm *perm);
/* Creates path (which must not exist) 0600, then gives it perm; its
 * descriptor (read-write) in *out. Nothing is synced. */
int storeio_create_as(const struct store *s, const char *path, const struct store_perm *perm,
                      int *out);
/* The daemon's own private file (0600): journal records, probes. */
int storeio_write_new(const struct store *s, const char *path, const void *data, size_t len);
/* A new file dst (beneath the root, not there before) with src's bytes,
 * owner and mode: extents shared (FICLONE) where the file system can,
 * else copied (copy_file_range). *out: its descriptor, open read-write,
 * not yet synced. */
int storeio_copy_new(const struct store *s, const char *src, const char *dst, int *out);
/* Reads a whole regular file of at most max bytes (malloc'd, NUL-terminated). */
int storeio_read(const struct store *s, const char *path, size_t max, char **out, size_t *len);
int storeio_fsync(const struct store *s, const char *path);
/* A new descriptor of the file fd has open, with flags (O_CLOEXEC
 * added): through /proc/self/fd, so the same inode, never a file put at
 * its name since. Its own open file description: it holds none of fd's
 * OFD locks. */
int storeio_reopen(int fd, int flags);
/* fsync of the directory holding path. */
int storeio_fsync_parent(const struct store *s, const char *path);
/* fsync of each of paths (files or directories), up to
 * STOREIO_FSYNC_PARALLEL of them at once on threads of their own: 0 when
 * every one returned 0, else the first failure's -errno, one other than
 * -ENOENT first (its index in *failed when failed is not NULL). Every
 * path is synced whatever another's fsync returns. */
#define STOREIO_FSYNC_PARALLEL 8
int storeio_fsync_all(const struct store *s, const char *const *paths, size_t n, size_t *failed);
/* renameat2 with flags (RENAME_NOREPLACE, ...). */
int storeio_rename(const struct store *s, const char *from, const char *to, unsigned flags);
/* linkat: a second name to for the file at from (to must not exist).
 * -EPERM, -EOPNOTSUPP, -EMLINK and the like where the file system has no
 * hard links (or no more for this file), -EXDEV across a mount boundary. */
int storeio_link(const struct store *s, const char *from, const char *to);
/* Would renaming the directory from fail with EXDEV? The probe is
 * rename(from, full), full being a non-empty directory (made, with one
 * file in it, when it is not there: a scratch path of the caller's),
 * which no file system can carry out (ENOTEMPTY or EEXIST), while one
 * that cannot move from at all says EXDEV first: overlayfs for a
 * directory of its lower layer (without redirect_dir=on), a mount
 * boundary. Nothing of from changes either way. -EXDEV, else 0 (also
 * when from is no directory: files move everywhere; or is gone). */
int storeio_rename_probe(const struct store *s, const char *from, const char *full);
/* A new directory with the owner and mode of the directory it is made
 * in (storeio_mkdir), or with perm. */
int storeio_mkdir(const struct store *s, const char *path);
int storeio_mkdir_as(const struct store *s, const char *path, const struct store_perm *perm);
int storeio_unlink(const struct store *s, const char *path);
/* An empty directory (-ENOTEMPTY otherwise). */
int storeio_rmdir(const struct store *s, const char *path);
/* Removes a directory tree (or a file); missing is success. */
int storeio_rmtree(const struct store *s, const char *path);
/* Does anything (a symlink too) stand at path? True as well when a
 * component on the way cannot be opened beneath the root. */
bool storeio_exists(const struct store *s, const char *path);
/* Calls fn(name, ctx) for each entry of the directory path (beneath the
 * root, no links; "." and ".." left out) until fn returns non-zero, which
 * is returned. A missing directory has no entries; other -errno. fn must
 * not change the directory. */
int storeio_each(const struct store *s, const char *path, int (*fn)(const char *name, void *ctx),
                 void *ctx);

#endif
