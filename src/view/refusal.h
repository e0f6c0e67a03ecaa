/* refusal: the one place that decides how a refused operation fails.
 *
 * Namespace changes this version does not make (and whatever a handler
 * leaves unimplemented) are refused with one errno per kind of target:
 *   - anything in a snapshot directory, or a frozen image as source or
 *     target: EROFS (a snapshot is read-only, as a read-only mount is);
 *   - every other namespace change (mkdir, rmdir, unlink, rename,
 *     symlink, link, mknod, create): EPERM;
 *   - extended attributes: ENOTSUP (the view keeps none).
 * FUSE-free; fuse/ns.c logs each refusal once with refusal_why(). */
#ifndef VMSTOREFS_REFUSAL_H
#define VMSTOREFS_REFUSAL_H

enum refusal_op {
    R_MKDIR,
    R_RMDIR,
    R_UNLINK,
    R_RENAME,
    R_SYMLINK,
    R_LINK,
    R_MKNOD,
    R_CREATE,
    R_SETXATTR,
    R_REMOVEXATTR,
};

/* The errno (negative) refusing op on path (and, for rename and link,
 * path2: the new name; NULL otherwise). Paths are mount paths ("/vm/..."). */
int refusal_errno(enum refusal_op op, const char *path, const char *path2);
/* The operation's name and the reason for a log line. */
const char *refusal_op_name(enum refusal_op op);
const char *refusal_why(int err);

#endif
