/* view: what the mount shows, computed from the store.
 *
 * Attributes, directory listings, symlinks and opens for every kind of
 * mount entry (see vpath.h), with the rules of the view: frozen images
 * and snapshot metadata are read-only, `current` is derived from the
 * active images' backing files, a snapshot directory's mtime is its
 * creation time, `clones/` under a snapshot is enterable but not listed.
 * FUSE-free: the FUSE layer maps these results to replies. */
#ifndef VMSTOREFS_VIEW_H
#define VMSTOREFS_VIEW_H

#include "store/store.h"
#include "view/vpath.h"

#include <stdbool.h>
#include <sys/stat.h>

typedef int (*view_fill_fn)(void *ctx, const char *name, mode_t type);

int view_getattr(const struct store *s, const struct vpath *vp, struct stat *st);
/* Mount path "/<vm>/<dir>", which vpath_parse leaves out (vpath.h,
 * V_BASE), when dir is a directory on the way to an image the VM's
 * chains reach outside its layout (a raw base: bases.h): vp as a V_BASE
 * vpath and its attributes, read-only. -ENOENT otherwise. */
int view_base_dir(const struct store *s, const char *mpath, struct vpath *vp, struct stat *st);
int view_readdir(const struct store *s, const struct vpath *vp, view_fill_fn fill, void *ctx);
int view_readlink(const struct store *s, const struct vpath *vp, char *buf, size_t size);

struct view_file {
    int fd;
    bool frozen; /* never changes: the kernel may keep its pages across opens */
    bool active; /* may change under us (a qemu writing the store path) */
    bool definition; /* a domain.xml: shown with its own mode (it takes redefines) */
};
/* Opens the store file behind a file entry. Write access to anything but
 * an active disk image is -EROFS. Opening an image (active or frozen)
 * whose backing chain chain_walk refuses for reading is -EACCES, logged
 * once; it stays listed (listing never walks chains). Write-only opens
 * and empty files, which no reader can follow a chain through, are not
 * checked. */
int view_open(const struct store *s, const struct vpath *vp, int flags, struct view_file *out);

/* Attributes of an open file from its descriptor, with the view's modes
 * (only active images are writable). */
int view_fstat(const struct view_file *vf, struct stat *st);

/* Attribute changes: passed through for active disk images; refused on
 * frozen images and metadata (-EROFS for size/times, -EPERM for mode and
 * owner, as a read-only snapshot would). */
int view_truncate(const struct store *s, const struct vpath *vp, off_t size);
int view_chmod(const struct store *s, const struct vpath *vp, mode_t mode);
int view_chown(const struct store *s, const struct vpath *vp, uid_t uid, gid_t gid);
int view_utimens(const struct store *s, const struct vpath *vp, const struct timespec tv[2]);
/* The same through an open file's descriptor (the file it opened, even if
 * the store path names another one by now), with the same refusals. */
int view_ftruncate(const struct view_file *vf, off_t size);
int view_fchmod(const struct view_file *vf, mode_t mode);
int view_fchown(const struct view_file *vf, uid_t uid, gid_t gid);
int view_futimens(const struct view_file *vf, const struct timespec tv[2]);

#endif
