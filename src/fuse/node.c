/* The low-level API, with a table of the inodes the kernel holds
 * (nodetable.h): the view is still a function of paths (vpath.h), and
 * each request's path comes from the node the kernel names, but a node is
 * also the file it was looked up as. So fstat, fchmod, fchown and
 * futimens on a descriptor (which the kernel sends without the open
 * handle) act on the opened file even after a snapshot, a merge or anyone
 * in the store replaced the file at its path. Frozen images set keep_cache
 * so repeat reads come from the page cache; active images use direct I/O
 * so a qemu writing the store path is always seen (no stale pages to
 * invalidate). Reads are answered with fd buffers (spliced when the kernel
 * allows splice_write), and a sequential reader gets a streamer that keeps
 * the disk reading ahead of it (readahead.h). */
#include "config.h"

#include "fuse/node.h"
#include "fuse/handlers.h"

#include "view/ghost.h"
#include "util/log.h"
#include "view/nsop.h"
#include "store/writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct vfs *ops_vfs;
struct fuse_session *ops_session;
struct nodetable *ops_nodes;
__thread fuse_req_t ops_req;

struct handle *ops_h_of(const struct fuse_file_info *fi)
{
    return fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
}

int ops_parse(const char *path, struct vpath *vp)
{
    return path ? vpath_parse(path, vp) : -ENOENT;
}

/* A link `ln -sfn` made beside `current` lives in the daemon only
 * (vmstate.h); it shows as a symlink with the VM directory's owner. */
static int pending_link_attr(const char *path, struct stat *st)
{
    char target[PATH_MAX], vmdir[PATH_MAX];
    if (!path || nsop_pending_link(path, target, sizeof(target)) < 0)
        return -ENOENT;
    snprintf(vmdir, sizeof(vmdir), "%s", path);
    *strrchr(vmdir, '/') = '\0';
    struct vpath vp;
    int r = ops_parse(vmdir, &vp);
    if (r < 0 || (r = view_getattr(st_of(), &vp, st)) < 0)
        return r;
    st->st_mode = S_IFLNK | 0777;
    st->st_nlink = 1;
    st->st_size = (off_t)strlen(target);
    return 0;
}

/* An entry this process has just deleted, kept for its walk (ghost.h):
 * empty, owned as the mount's root. */
int ops_ghost_attr(const char *path, struct stat *st)
{
    mode_t type;
    if (!path || ghost_stat(ctx()->pid, path, &type) < 0)
        return -ENOENT;
    struct vpath root = { .kind = V_ROOT };
    int r = view_getattr(st_of(), &root, st);
    if (r < 0)
        return r;
    st->st_mode = type | (S_ISDIR(type) ? 0755 : S_ISLNK(type) ? 0777 : 0644);
    st->st_nlink = S_ISDIR(type) ? 2 : 1;
    st->st_size = 0;
    st->st_blocks = 0;
    return 0;
}

/* What a mount path is now, for the asking process. */
int ops_path_attr(const char *path, struct stat *st)
{
    struct vpath vp;
    int r = ops_parse(path, &vp);
    if (r < 0 && (r = pending_link_attr(path, st)) == 0)
        return 0;
    char vm[NAME_MAX_LEN + 1], name[SCRATCH_NAME_MAX + 1];
    if (r < 0 && scratch_path(path, vm, name) && scratch_stat(vm, name, st) == 0)
        return 0;
    /* A directory on the way to a chain's base (vpath.h, V_BASE). */
    if (r < 0 && path && view_base_dir(st_of(), path, &vp, st) == 0)
        return 0;
    if (r == 0 && (r = view_getattr(st_of(), &vp, st)) == 0)
        return 0;
    return r == -ENOENT && ops_ghost_attr(path, st) == 0 ? 0 : r;
}

/* Attributes from an open handle: the file it opened. */
static int handle_attr(void *hp, void *stp)
{
    struct handle *h = hp;
    struct stat *st = stp;
    if (h->domxml || h->scratch)
        return ops_handle_attr(h, st);
    if (h->f.fd >= 0)
        return view_fstat(&h->f, st);
    struct vpath jobs = { .kind = V_JOBS };
    return view_getattr(st_of(), &jobs, st);
}

/* The file of a handle that answers for a displaced node. A writer keeps
 * its rights: writers and the daemon's operations exclude each other, so
 * only someone in the store can have moved its file. Any other handle's
 * file may be a snapshot's frozen image by now (a take moves the active
 * image there), and is shown and treated as one: read-only, attribute
 * changes refused. */
static struct view_file displaced_file(const struct handle *h)
{
    struct view_file vf = h->f;
    if (h->writer.kind != V_DISK)
        vf.active = false;
    return vf;
}

static int displaced_attr(void *hp, void *stp)
{
    struct handle *h = hp;
    if (h->f.fd < 0 || h->domxml || h->scratch)
        return handle_attr(h, stp);
    struct view_file vf = displaced_file(h);
    return view_fstat(&vf, stp);
}

/* The node's path and current attributes, if its name still names the
 * file it was looked up as: 0; else -ESTALE (displaced), -ENOENT (gone).
 * A displaced node is unbound, so its next lookup gets a new node. */
static int node_now(fuse_ino_t ino, char *path, size_t size, struct stat *st)
{
    int r = nodetable_path(ops_nodes, ino, path, size);
    if (r == 0)
        r = ops_path_attr(path, st);
    if (r < 0)
        return r;
    struct node_ident now;
    node_ident_of(st, &now);
    return nodetable_confirm(ops_nodes, ino, &now) ? 0 : -ESTALE;
}

/* ESTALE makes the kernel look the name up again (LOOKUP_REVAL) and
 * retry the system call on the new node: a stat or open of the path
 * gets the file at the path now. A node with open handles answers from
 * them: fstat on a descriptor is a request about its node. The kernel
 * sends stat of the path the same way while its entry still names the
 * node (up to entry_timeout): that stat sees the opened file too, as it
 * would see cached attributes. Dropping the entry would need
 * notify_inval_entry, which waits for the directory's lock, and a daemon
 * stopped or killed while one such call waits on a request it will never
 * answer hangs itself and the callers for good (t_exit_busy). */
static int node_attr(fuse_ino_t ino, struct fuse_file_info *fi, struct stat *st)
{
    struct handle *h = ops_h_of(fi);
    char path[PATH_MAX];
    int r;
    if (!h)
        r = node_now(ino, path, sizeof(path), st);
    else if (nodetable_path(ops_nodes, ino, path, sizeof(path)) == -ESTALE)
        r = displaced_attr(h, st); /* as fstat shows it */
    else
        r = handle_attr(h, st);
    if (r == -ESTALE || r == -ENOENT) {
        int hr = nodetable_with_handle(ops_nodes, ino, displaced_attr, st);
        if (hr != -ENOENT)
            r = hr;
    }
    if (r == 0)
        st->st_ino = ino;
    return r;
}

/* Binds NAME in PARENT to the node its attributes say it is, and tells
 * the kernel. A reply the kernel did not take (the caller was
 * interrupted) gives the lookup back. */
void ops_reply_entry(fuse_req_t req, fuse_ino_t parent, const char *name, struct stat *st,
                     double timeout)
{
    struct node_ident id;
    node_ident_of(st, &id);
    uint64_t ino;
    int r = nodetable_lookup(ops_nodes, parent, name, &id, &ino);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    struct fuse_entry_param e = {
        .ino = ino, .attr = *st, .attr_timeout = timeout, .entry_timeout = timeout
    };
    e.attr.st_ino = ino;
    if (fuse_reply_entry(req, &e) < 0)
        nodetable_forget(ops_nodes, ino, 1);
}

void ops_reply_status(fuse_req_t req, int r)
{
    fuse_reply_err(req, r < 0 ? -r : 0);
}

/* NAME in PARENT, at PATH, as it is now; or the error R. */
void ops_reply_path_entry(fuse_req_t req, fuse_ino_t parent, const char *name, const char *path,
                          int r)
{
    struct stat st;
    if (r == 0)
        r = ops_path_attr(path, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        ops_reply_entry(req, parent, name, &st, TIMEOUT);
}

void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    ops_req = req;
    char path[PATH_MAX];
    int r = nodetable_child_path(ops_nodes, parent, name, path, sizeof(path));
    ops_reply_path_entry(req, parent, name, path, r);
}

void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    nodetable_forget(ops_nodes, ino, nlookup);
    fuse_reply_none(req);
}

void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        nodetable_forget(ops_nodes, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    ops_req = req;
    struct stat st;
    int r = node_attr(ino, fi, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, TIMEOUT);
}

void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
    ops_req = req;
    char path[PATH_MAX], buf[PATH_MAX];
    struct vpath vp;
    int r = nodetable_path(ops_nodes, ino, path, sizeof(path));
    if (r == 0)
        r = ops_parse(path, &vp) == 0 ? view_readlink(st_of(), &vp, buf, sizeof(buf))
                                      : nsop_pending_link(path, buf, sizeof(buf));
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_readlink(req, buf);
}

/* ---- attribute changes ---- */

/* A change to the attributes the kernel asks for, in libfuse's order:
 * mode, owner, size, times. */
struct attr_change {
    const struct stat *attr;
    int to_set;
};

static void change_times(const struct attr_change *c, struct timespec tv[2])
{
    tv[0].tv_sec = tv[1].tv_sec = 0;
    tv[0].tv_nsec = tv[1].tv_nsec = UTIME_OMIT;
    if (c->to_set & FUSE_SET_ATTR_ATIME_NOW)
        tv[0].tv_nsec = UTIME_NOW;
    else if (c->to_set & FUSE_SET_ATTR_ATIME)
        tv[0] = c->attr->st_atim;
    if (c->to_set & FUSE_SET_ATTR_MTIME_NOW)
        tv[1].tv_nsec = UTIME_NOW;
    else if (c->to_set & FUSE_SET_ATTR_MTIME)
        tv[1] = c->attr->st_mtim;
}

static uid_t change_uid(const struct attr_change *c)
{
    return c->to_set & FUSE_SET_ATTR_UID ? c->attr->st_uid : (uid_t)-1;
}

static gid_t change_gid(const struct attr_change *c)
{
    return c->to_set & FUSE_SET_ATTR_GID ? c->attr->st_gid : (gid_t)-1;
}

/* On the file a handle opened: the kernel names it for ftruncate and
 * O_TRUNC; for fchmod, fchown and futimens it names only the node, whose
 * handles stand for it once its name is another file's (node_attr). */
static int change_file(const struct view_file *vf, const struct attr_change *c)
{
    int r = 0;
    if (c->to_set & FUSE_SET_ATTR_MODE)
        r = view_fchmod(vf, c->attr->st_mode);
    if (r == 0 && (c->to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
        r = view_fchown(vf, change_uid(c), change_gid(c));
    if (r == 0 && (c->to_set & FUSE_SET_ATTR_SIZE))
        r = view_ftruncate(vf, c->attr->st_size);
    if (r == 0 && (c->to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
        struct timespec tv[2];
        change_times(c, tv);
        r = view_futimens(vf, tv);
    }
    return r;
}

int ops_change_scratch(struct handle *h, const char *path, const struct stat *attr, int to_set)
{
    const struct attr_change c = { attr, to_set };
    char vm[NAME_MAX_LEN + 1], name[SCRATCH_NAME_MAX + 1];
    if (h && h->domxml) {
        /* Its owner and mode are the store file's (an editor setting
         * them to what they are is no change); times are the commit's. */
        if (((to_set & FUSE_SET_ATTR_MODE) &&
             (attr->st_mode & 07777) != (h->shown.st_mode & 07777)) ||
            ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != h->shown.st_uid) ||
            ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != h->shown.st_gid))
            return -EPERM;
        if (to_set & FUSE_SET_ATTR_SIZE) {
            if (attr->st_size < 0 || (unsigned long long)attr->st_size > SCRATCH_MAX_BYTES)
                return -EFBIG;
            if (ftruncate(h->f.fd, attr->st_size) < 0)
                return -errno;
            h->dirty = true;
        }
        return 0;
    }
    if (h && h->scratch) {
        snprintf(vm, sizeof(vm), "%s", h->vm);
        snprintf(name, sizeof(name), "%s", h->sname);
    } else if (h || !scratch_path(path, vm, name)) {
        return 1;
    }
    int r = 0;
    if (to_set & FUSE_SET_ATTR_MODE)
        r = scratch_chmod(vm, name, attr->st_mode);
    if (r == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
        r = scratch_chown(vm, name, change_uid(&c), change_gid(&c));
    if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE))
        r = scratch_truncate(vm, name, attr->st_size);
    if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
        struct timespec tv[2];
        change_times(&c, tv);
        r = scratch_utimens(vm, name, tv);
    }
    /* Removed while open: its descriptor's own file. */
    if (r == -ENOENT && h && (to_set & FUSE_SET_ATTR_SIZE))
        r = ftruncate(h->f.fd, attr->st_size) < 0 ? -errno : 0;
    else if (r == -ENOENT && h)
        r = 0;
    return r;
}

static int change_handle(void *hp, void *cp)
{
    struct handle *h = hp;
    const struct attr_change *c = cp;
    if (h->f.fd < 0)
        return -EROFS;
    /* A writer of domain.xml whose fsync redefined the VM (the node is
     * displaced by the new file) answers as it would before. */
    int r = ops_change_scratch(h, NULL, c->attr, c->to_set);
    if (r != 1)
        return r;
    struct view_file vf = displaced_file(h);
    return change_file(&vf, cp);
}

/* Truncating by path writes too: it counts as a writer for its span. */
static int truncate_path(const char *path, const struct vpath *vp, off_t size)
{
    int mark = -1, r;
    if (vp->kind == V_DISK && (r = writer_begin(st_of(), vp->vm, vp->dev, path, &mark)) < 0)
        return r;
    r = view_truncate(st_of(), vp, size);
    if (vp->kind == V_DISK)
        writer_end(vp->vm, vp->dev, mark);
    return r;
}

static int change_path(const char *path, const struct attr_change *c)
{
    struct vpath vp;
    int r = ops_parse(path, &vp);
    if (r == 0 && (c->to_set & FUSE_SET_ATTR_MODE))
        r = view_chmod(st_of(), &vp, c->attr->st_mode);
    if (r == 0 && (c->to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
        r = view_chown(st_of(), &vp, change_uid(c), change_gid(c));
    if (r == 0 && (c->to_set & FUSE_SET_ATTR_SIZE))
        r = truncate_path(path, &vp, c->attr->st_size);
    if (r == 0 && (c->to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
        struct timespec tv[2];
        change_times(c, tv);
        r = view_utimens(st_of(), &vp, tv);
    }
    return r;
}

void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    ops_req = req;
    struct attr_change c = { attr, to_set };
    struct handle *h = ops_h_of(fi);
    char path[PATH_MAX];
    struct stat st;
    int r;
    if (h && (r = ops_change_scratch(h, NULL, attr, to_set)) != 1) {
        ; /* a daemon-held file's */
    } else if (h && h->f.fd >= 0) {
        r = change_file(&h->f, &c);
    } else if ((r = node_now(ino, path, sizeof(path), &st)) == 0) {
        if ((r = ops_change_scratch(NULL, path, attr, to_set)) == 1)
            r = change_path(path, &c);
    } else if (r == -ESTALE || r == -ENOENT) {
        int hr = nodetable_with_handle(ops_nodes, ino, change_handle, &c);
        if (hr != -ENOENT)
            r = hr;
    }
    if (r == 0)
        r = node_attr(ino, fi, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, TIMEOUT);
}

/* From the root descriptor, not the root's path: `df` keeps answering
 * for the store's file system even when the store directory was moved
 * or removed under the mount (fstatfs works on O_PATH descriptors). */
void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs sv;
    if (fstatvfs(st_of()->rootfd, &sv) < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_statfs(req, &sv);
}

/* A wait (for a lock through the mount, another operation's VM lock, a
 * clone's copy) ends on Ctrl-C on the caller (the kernel sends
 * FUSE_INTERRUPT) or when the daemon stops, so neither a waiter nor the
 * daemon's exit hangs on a lock holder. ARG is the request. */
void ops_cred(fuse_req_t req, struct store_cred *out)
{
    const struct fuse_ctx *c = fuse_req_ctx(req);
    out->uid = c->uid;
    out->gid = c->gid;
    out->ngroups = 0;
    if (c->uid == 0)
        return; /* root's groups decide nothing */
    int n = fuse_req_getgroups(req, CRED_MAX_GROUPS, out->groups);
    if (n > 0)
        out->ngroups = n < CRED_MAX_GROUPS ? (size_t)n : CRED_MAX_GROUPS;
}

struct snap_ctx ops_snap_ctx(fuse_req_t req)
{
    struct snap_ctx c = {
        .s = st_of(), .cancelled = ops_request_cancelled, .arg = req,
        .pid = fuse_req_ctx(req)->pid
    };
    ops_cred(req, &c.cred);
    return c;
}

bool ops_request_cancelled(void *arg)
{
    return (arg && fuse_req_interrupted(arg)) || fuse_session_exited(ops_session);
}
