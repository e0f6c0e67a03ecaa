#include "config.h"

#include "view/refusal.h"

#include "view/vpath.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Is path a snapshot's image, its clones/ entry, or any name directly in
 * a snapshot directory (even one no view entry has, like snapshot.xml)?
 * Clones under clones/ are not: cloning is an operation of its own. */
static bool in_snapshot(const char *path)
{
    struct vpath vp;
    if (!path)
        return false;
    if (vpath_parse(path, &vp) == 0)
        return vp.kind == V_SNAP_IMAGE || vp.kind == V_SNAP_XML || vp.kind == V_SNAP_CLONES;
    char parent[PATH_MAX];
    if ((size_t)snprintf(parent, sizeof(parent), "%s", path) >= sizeof(parent))
        return false;
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent)
        return false;
    *slash = '\0';
    return vpath_parse(parent, &vp) == 0 && vp.kind == V_SNAP;
}

int refusal_errno(enum refusal_op op, const char *path, const char *path2)
{
    switch (op) {
    case R_SETXATTR:
    case R_REMOVEXATTR:
        return -ENOTSUP;
    default:
        return in_snapshot(path) || in_snapshot(path2) ? -EROFS : -EPERM;
    }
}

const char *refusal_op_name(enum refusal_op op)
{
    static const char *const names[] = {
        [R_MKDIR] = "mkdir",     [R_RMDIR] = "rmdir", [R_UNLINK] = "unlink",
        [R_RENAME] = "rename",   [R_SYMLINK] = "symlink", [R_LINK] = "link",
        [R_MKNOD] = "mknod",     [R_CREATE] = "create", [R_SETXATTR] = "setxattr",
        [R_REMOVEXATTR] = "removexattr",
    };
    return (unsigned)op < sizeof(names) / sizeof(names[0]) && names[op] ? names[op] : "?";
}

const char *refusal_why(int err)
{
    switch (err) {
    case -EROFS:
        return "snapshots are read-only";
    case -ENOTSUP:
        return "extended attributes are not supported";
    default:
        return "not supported by this version";
    }
}
