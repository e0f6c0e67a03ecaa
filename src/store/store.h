/* store: the on-disk instance store, the source of truth.
 *
 *   STORE/.vmstorefs/       format, journal/, tmp/, locks/
 *   STORE/<vm>/domain.xml
 *   STORE/<vm>/disks/<dev>.qcow2
 *   STORE/<vm>/snapshots/<snap>/{snapshot.xml,<dev>.qcow2}
 *
 * This module knows the layout (paths), validates and prepares a store,
 * and enumerates what it holds. Entries with names the rules refuse are
 * skipped with one log line each; nothing here is ever fatal for the
 * daemon. It never changes images or XML.
 *
 * Every access below the store root goes through store_open(): openat2
 * beneath the root with no symlinks resolved, so a link planted in the
 * store (a VM, disks/, an image pointing at /etc) never takes the mount
 * outside it. Paths stay absolute strings for messages and for qemu-img. */
#ifndef VMSTOREFS_STORE_H
#define VMSTOREFS_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "meta/snapxml.h"

#define STORE_FORMAT_VERSION 1
#define STORE_META_DIR ".vmstorefs"

struct store {
    char root[PATH_MAX]; /* absolute, canonical */
    int rootfd; /* O_PATH descriptor of root: the anchor of every access */
    char qemu_img[PATH_MAX]; /* absolute path of qemu-img */
};

/* Checks that path is an existing directory and, if it already carries
 * metadata, that its format is one this build understands. Writes
 * nothing. Fills s->root with the canonical path. */
int store_check(struct store *s, const char *path, char *msg, size_t msgsz);
void store_close(struct store *s);

/* open(2) of path (absolute, below s->root) with every component checked:
 * a symlink anywhere is -ELOOP, a path outside the root -EXDEV. Returns
 * the fd or -errno. O_CLOEXEC is added. */
int store_open(const struct store *s, const char *path, int flags);
/* store_open for a regular file: a FIFO, device or directory at path is
 * -ENOENT, and opening never blocks on one. */
int store_open_file(const struct store *s, const char *path, int flags);
/* store_open_file for reading; on failure msg says why in words fit for
 * a log line ("a symbolic link, not followed", "No such file ..."). */
int store_open_read(const struct store *s, const char *path, char *msg, size_t msgsz);
/* lstat(2) through store_open. */
int store_lstat(const struct store *s, const char *path, struct stat *st);

/* Creates STORE/.vmstorefs (format file, journal/, tmp/, locks/) when
 * missing, and checks what is there: .vmstorefs and each part must be a
 * real directory beneath the root (no links), owned by the daemon's euid
 * and not writable by group or others, else -ELOOP/-ENOTDIR/-EPERM with
 * "... refusing to mount" in msg and nothing created. A first .vmstorefs
 * is built under another name and renamed into place, so a failure half
 * way (ENOSPC) leaves none behind. The format file is written to a temp
 * name and renamed, so a crash never leaves a half-written version. */
int store_prepare_meta(const struct store *s, char *msg, size_t msgsz);

/* Path builders: return 0 or -ENAMETOOLONG. */
int store_vm_path(const struct store *s, const char *vm, const char *rel, char *out, size_t outsz);
int store_disk_path(const struct store *s, const char *vm, const char *dev, char *out,
                    size_t outsz);
int store_snap_path(const struct store *s, const char *vm, const char *snap, const char *rel,
                    char *out, size_t outsz);
int store_snap_image_path(const struct store *s, const char *vm, const char *snap, const char *dev,
                          char *out, size_t outsz);

/* Enumeration: calls fn for each valid entry, in directory order. A
 * missing directory enumerates as empty. fn returning non-zero stops. */
typedef int (*store_name_fn)(const char *name, void *ctx);
int store_list_vms(const struct store *s, store_name_fn fn, void *ctx);
int store_list_disks(const struct store *s, const char *vm, store_name_fn fn, void *ctx);
int store_list_snapshots(const struct store *s, const char *vm, store_name_fn fn, void *ctx);
int store_list_snap_images(const struct store *s, const char *vm, const char *snap,
                           store_name_fn fn, void *ctx);

/* Is snap a snapshot directory of vm (valid names, a real directory)? */
bool store_snap_exists(const struct store *s, const char *vm, const char *snap);

/* A private copy of the parsed snapshot.xml of vm/snap (caller
 * snapxml_free()s it), from the cache when the file is unchanged (same
 * inode, mtime, ctime and size; see statcache.h). -ENOENT when missing,
 * -EINVAL for a malformed or refused file (a malformed file is not parsed
 * again either until it changes); msg says "PATH: why". */
int store_snap_info(const struct store *s, const char *vm, const char *snap, struct snap_info *out,
                    char *msg, size_t msgsz);
/* Counters of the snapshot.xml cache, and emptying it (tests). */
void store_snap_cache_stats(unsigned long *hits, unsigned long *misses);
void store_snap_cache_clear(void);

/* Creation time of a snapshot from its snapshot.xml (store_snap_info);
 * -errno when the file is missing or malformed (logged once). */
int store_snap_ctime(const struct store *s, const char *vm, const char *snap, int64_t *out);

#endif
