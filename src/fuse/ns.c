/* Namespace changes (mkdir, rmdir, unlink, rename, symlink): the core
 * (nsop.h) decides and does them; this maps paths in and results out,
 * keeps the node table in step and drops what the kernel cached of what
 * an operation replaced. What the core does not take on is refused. */
#include "config.h"

#include "fuse/node.h"
#include "fuse/handlers.h"

#include "util/log.h"
#include "view/nsop.h"
#include "view/refusal.h"
#include "ops/import.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

/* ---- namespace operations: the core (nsop.h) decides, this maps ---- */

/* What the core does not take on (NSOP_NOT_MINE, and create, mknod,
 * link, xattrs) is refused: logged once per operation and path, with the
 * errno refusal.h gives. */
static int refuse2(enum refusal_op op, const char *path, const char *path2)
{
    int r = refusal_errno(op, path, path2);
    log_refusal(refusal_op_name(op), path ? path : "?", refusal_why(r));
    return r;
}

static void inval(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void inval(const char *fmt, ...)
{
    char path[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    uint64_t ino;
    /* Nothing to drop where the kernel holds no node. */
    if (n > 0 && (size_t)n < sizeof(path) && nodetable_find(ops_nodes, path, &ino) == 0)
        fuse_lowlevel_notify_inval_inode(ops_session, ino, 0, 0);
}

struct inval_walk {
    const char *vm;
    const char *snap; /* while walking a snapshot's images */
};

static int inval_disk(void *arg, const char *name, mode_t type)
{
    (void)type;
    struct inval_walk *w = arg;
    if (name[0] != '.')
        inval("/%s/disks/%s", w->vm, name);
    return 0;
}

static int inval_frozen(void *arg, const char *name, mode_t type)
{
    (void)type;
    struct inval_walk *w = arg;
    if (name[0] != '.')
        inval("/%s/snapshots/%s/%s", w->vm, w->snap, name);
    return 0;
}

static int inval_snapshot(void *arg, const char *name, mode_t type)
{
    (void)type;
    struct inval_walk *w = arg;
    if (name[0] == '.')
        return 0;
    inval("/%s/snapshots/%s", w->vm, name);
    struct vpath snap = { .kind = V_SNAP };
    snprintf(snap.vm, sizeof(snap.vm), "%s", w->vm);
    snprintf(snap.snap, sizeof(snap.snap), "%s", name);
    struct inval_walk in = { w->vm, name };
    view_readdir(st_of(), &snap, inval_frozen, &in);
    return 0;
}

/* An operation replaced what stands at some paths (domain.xml, active
 * images, current); a rename also rewrote the headers of frozen images
 * (the ones that grow from the renamed one), which the kernel caches
 * across opens (keep_cache). Their pages and attributes are dropped
 * before the reply, so the caller's next access asks the daemon, which
 * finds a replaced file's node displaced (node_attr). Only inodes are
 * invalidated: dropping a directory entry from inside the request could
 * wait on the directory lock the kernel holds for it. */
static void after_change(const char *vm, bool frozen_changed)
{
    if (!vm[0])
        return;
    static const char *const entries[] = { "", "/domain.xml", "/current", "/disks", "/snapshots" };
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++)
        inval("/%s%s", vm, entries[i]);
    struct inval_walk w = { vm, NULL };
    struct vpath dir = { .kind = V_DISKS };
    snprintf(dir.vm, sizeof(dir.vm), "%s", vm);
    view_readdir(st_of(), &dir, inval_disk, &w);
    if (frozen_changed) {
        dir.kind = V_SNAPS;
        view_readdir(st_of(), &dir, inval_snapshot, &w);
    }
}

void ops_after_merge(const char *vm)
{
    after_change(vm, true);
}

/* The core's answer as a result: success drops stale caches; a refusal is
 * logged with its reason; NSOP_NOT_MINE falls to the refusal rules. */
static int ns_result(enum refusal_op rop, const char *path, const char *path2, int r,
                     const struct nsop_result *res)
{
    const char *op = refusal_op_name(rop);
    if (r == NSOP_NOT_MINE)
        return refuse2(rop, path, path2);
    if (r == 0)
        after_change(res->vm, res->frozen_changed);
    else if (r == -EIO || r == -ENOSPC)
        log_msg(LOG_ERR, "%s %s failed: %s", op, path, res->msg[0] ? res->msg : strerror(-r));
    else
        log_refusal(op, path, res->msg[0] ? res->msg : strerror(-r));
    return r;
}

static struct snap_ctx snap_ctx(fuse_req_t req)
{
    return ops_snap_ctx(req);
}

/* The mount path of NAME in PARENT; a failure is replied. */
static bool child_path(fuse_req_t req, fuse_ino_t parent, const char *name, char *path, size_t size)
{
    ops_req = req;
    int r = nodetable_child_path(ops_nodes, parent, name, path, size);
    if (r < 0)
        fuse_reply_err(req, -r);
    return r == 0;
}

void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    char path[PATH_MAX];
    if (!child_path(req, parent, name, path, sizeof(path)))
        return;
    struct snap_ctx c = snap_ctx(req);
    struct nsop_result res;
    int r = ns_result(R_MKDIR, path, NULL, nsop_mkdir(&c, path, mode, &res), &res);
    struct vpath vp;
    if (r < 0 || ops_parse(path, &vp) < 0 || (vp.kind != V_CLONE && vp.kind != V_SNAP_CLONE)) {
        ops_reply_path_entry(req, parent, name, path, r);
        return;
    }
    /* The kernel wants the entry a mkdir made to be a directory (any
     * other type fails the mkdir with EIO), but clones/N is a link to the
     * clone, ../../N. The reply is the clone's directory, valid for no
     * time at all: the next access looks clones/N up again, finds a link,
     * and the kernel takes the new node. */
    struct vpath clone = { .kind = V_VM };
    struct stat st;
    snprintf(clone.vm, sizeof(clone.vm), "%s", name);
    if ((r = view_getattr(st_of(), &clone, &st)) < 0)
        fuse_reply_err(req, -r);
    else
        ops_reply_entry(req, parent, name, &st, 0);
}

/* rmdir and unlink: the core removes, the node leaves the table. */
static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, enum refusal_op rop,
                         int (*op)(const struct snap_ctx *, const char *, struct nsop_result *))
{
    char path[PATH_MAX];
    if (!child_path(req, parent, name, path, sizeof(path)))
        return;
    struct snap_ctx c = snap_ctx(req);
    struct nsop_result res;
    int r = ns_result(rop, path, NULL, op(&c, path, &res), &res);
    if (r == 0)
        nodetable_removed(ops_nodes, parent, name);
    ops_reply_status(req, r);
}

void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, R_RMDIR, nsop_rmdir);
}

void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, R_UNLINK, nsop_unlink);
}

void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags)
{
    char from[PATH_MAX], to[PATH_MAX];
    if (!child_path(req, parent, name, from, sizeof(from)) ||
        !child_path(req, newparent, newname, to, sizeof(to)))
        return;
    struct snap_ctx c = snap_ctx(req);
    struct nsop_result res;
    int r = ns_result(R_RENAME, from, to, nsop_rename(&c, from, to, flags, &res), &res);
    if (r == 0)
        nodetable_renamed(ops_nodes, parent, name, newparent, newname, flags & RENAME_EXCHANGE);
    /* A VM renamed: its nodes are under the new name now, and its
     * domain.xml was replaced there. */
    if (r == 0 && res.renamed_to[0])
        after_change(res.renamed_to, false);
    ops_reply_status(req, r);
}

void ll_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
    char path[PATH_MAX];
    if (!child_path(req, parent, name, path, sizeof(path)))
        return;
    struct snap_ctx c = snap_ctx(req);
    struct nsop_result res;
    int r = ns_result(R_SYMLINK, path, NULL, nsop_symlink(&c, target, path, &res), &res);
    ops_reply_path_entry(req, parent, name, path, r);
}

void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    char from[PATH_MAX], to[PATH_MAX];
    if (!child_path(req, newparent, newname, to, sizeof(to)))
        return;
    if (nodetable_path(ops_nodes, ino, from, sizeof(from)) < 0)
        snprintf(from, sizeof(from), "?");
    ops_reply_status(req, refuse2(R_LINK, from, to));
}

/* domain.xml of a VM that has none, and files beside it (scratch.h),
 * are made in the daemon; anything else is refused. */
void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    if (!child_path(req, parent, name, path, sizeof(path)))
        return;
    struct stat st;
    int r = ops_create_handle(path, mode, fi, &st);
    if (r == NSOP_NOT_MINE) {
        ops_reply_status(req, refuse2(R_CREATE, path, NULL));
        return;
    }
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    struct handle *h = ops_h_of(fi);
    struct node_ident id;
    node_ident_of(&st, &id);
    uint64_t ino = 0;
    if ((r = nodetable_lookup(ops_nodes, parent, name, &id, &ino)) < 0 ||
        (r = nodetable_open(ops_nodes, ino, h, h->writer.kind == V_DISK)) < 0) {
        if (r < 0 && ino)
            nodetable_forget(ops_nodes, ino, 1);
        ops_release_handle(h);
        fuse_reply_err(req, -r);
        return;
    }
    struct fuse_entry_param e = {
        .ino = ino, .attr = st, .attr_timeout = TIMEOUT, .entry_timeout = TIMEOUT
    };
    e.attr.st_ino = ino;
    if (fuse_reply_create(req, &e, fi) < 0) {
        nodetable_close(ops_nodes, ino, h);
        nodetable_forget(ops_nodes, ino, 1);
        ops_release_handle(h);
    }
}

/* Without it the kernel gets ENOSYS, which mkfifo reports as "Function
 * not implemented" and nothing logs. */
void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)mode;
    (void)rdev;
    char path[PATH_MAX];
    if (child_path(req, parent, name, path, sizeof(path)))
        ops_reply_status(req, refuse2(R_MKNOD, path, NULL));
}

/* Setting or removing an attribute is a refusal like the others (logged);
 * getxattr and listxattr stay unimplemented on purpose: ENOSYS lets the
 * kernel answer "not supported" itself from then on, without a round
 * trip for every `ls -l`. */
static void refuse_node(fuse_req_t req, fuse_ino_t ino, enum refusal_op op)
{
    ops_req = req;
    char path[PATH_MAX], vm[NAME_MAX_LEN + 1], name[SCRATCH_NAME_MAX + 1];
    struct vpath vp;
    /* Editors and sed -i copy a file's attributes to what replaces it
     * (scratch.h): that is no refusal worth a line, nor is a node a
     * redefine displaced meanwhile. */
    /* Nor are the extended attributes cp -a copies into a VM being
     * imported (import.h): it goes on without them. */
    if (nodetable_path(ops_nodes, ino, path, sizeof(path)) < 0 || scratch_path(path, vm, name) ||
        (ops_parse(path, &vp) == 0 &&
         (vp.kind == V_DOMXML ||
          (vp.kind != V_ROOT && vp.kind != V_JOBS && vm_importing(st_of(), vp.vm))))) {
        ops_reply_status(req, refusal_errno(op, NULL, NULL));
        return;
    }
    ops_reply_status(req, refuse2(op, path, NULL));
}

void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags)
{
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    refuse_node(req, ino, R_SETXATTR);
}

void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)name;
    refuse_node(req, ino, R_REMOVEXATTR);
}
