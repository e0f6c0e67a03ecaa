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

#include "ops.h"

#include "directio.h"
#include "fdquota.h"
#include "ghost.h"
#include "jobs.h"
#include "lockwait.h"
#include "log.h"
#include "nodetable.h"
#include "nsop.h"
#include "readahead.h"
#include "refusal.h"
#include "view.h"
#include "vmlock.h"
#include "vmstate.h"
#include "vpath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* One second: long enough that `ls -l` and sequential reads do not ask
 * again for every block, short enough that changes made in the store
 * directly (a qemu growing an image) show up promptly. The kernel's
 * auto_inval_data then drops cached pages whose file changed. Lookups
 * that find nothing are not cached (a snapshot may appear any time). */
#define TIMEOUT 1.0

/* What readdir reports as an entry's inode: "unknown", as libfuse's path
 * API does; stat gives the node's. */
#define UNKNOWN_INO 0xffffffffu

static struct vfs *vfs;
static struct fuse_session *session;
static struct nodetable *nodes;

/* The request this thread is serving: who asks, and whether they gave up. */
static __thread fuse_req_t cur_req;

static const struct store *st_of(void)
{
    return &vfs->store;
}

static const struct fuse_ctx *ctx(void)
{
    return fuse_req_ctx(cur_req);
}

/* An open file: a store file (f.fd >= 0), or a rendered text (.jobs). */
struct handle {
    struct view_file f;
    struct vpath writer; /* an active image open for writing (kind V_DISK), else V_ROOT */
    int writer_mark; /* imagelock_writer's descriptor, or -1 */
    struct readahead ra; /* store files only */
    bool direct; /* the store fd has O_DIRECT (directio.h) */
    uid_t uid; /* whose open it is (fdquota.h), store files only */
    char *text;
    size_t len;
};

static struct handle *h_of(const struct fuse_file_info *fi)
{
    return fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
}

static int parse(const char *path, struct vpath *vp)
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
    int r = parse(vmdir, &vp);
    if (r < 0 || (r = view_getattr(st_of(), &vp, st)) < 0)
        return r;
    st->st_mode = S_IFLNK | 0777;
    st->st_nlink = 1;
    st->st_size = (off_t)strlen(target);
    return 0;
}

/* An entry this process has just deleted, kept for its walk (ghost.h):
 * empty, owned as the mount's root. */
static int ghost_attr(const char *path, struct stat *st)
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
static int path_attr(const char *path, struct stat *st)
{
    struct vpath vp;
    int r = parse(path, &vp);
    if (r < 0 && (r = pending_link_attr(path, st)) == 0)
        return 0;
    if (r == 0 && (r = view_getattr(st_of(), &vp, st)) == 0)
        return 0;
    return r == -ENOENT && ghost_attr(path, st) == 0 ? 0 : r;
}

/* Attributes from an open handle: the file it opened. */
static int handle_attr(void *hp, void *stp)
{
    struct handle *h = hp;
    struct stat *st = stp;
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
    if (h->f.fd < 0)
        return handle_attr(h, stp);
    struct view_file vf = displaced_file(h);
    return view_fstat(&vf, stp);
}

/* The node's path and current attributes, if its name still names the
 * file it was looked up as: 0; else -ESTALE (displaced), -ENOENT (gone).
 * A displaced node is unbound, so its next lookup gets a new node. */
static int node_now(fuse_ino_t ino, char *path, size_t size, struct stat *st)
{
    int r = nodetable_path(nodes, ino, path, size);
    if (r == 0)
        r = path_attr(path, st);
    if (r < 0)
        return r;
    struct node_ident now;
    node_ident_of(st, &now);
    return nodetable_confirm(nodes, ino, &now) ? 0 : -ESTALE;
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
    struct handle *h = h_of(fi);
    char path[PATH_MAX];
    int r;
    if (!h)
        r = node_now(ino, path, sizeof(path), st);
    else if (nodetable_path(nodes, ino, path, sizeof(path)) == -ESTALE)
        r = displaced_attr(h, st); /* as fstat shows it */
    else
        r = handle_attr(h, st);
    if (r == -ESTALE || r == -ENOENT) {
        int hr = nodetable_with_handle(nodes, ino, displaced_attr, st);
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
static void reply_entry(fuse_req_t req, fuse_ino_t parent, const char *name, struct stat *st,
                        double timeout)
{
    struct node_ident id;
    node_ident_of(st, &id);
    uint64_t ino;
    int r = nodetable_lookup(nodes, parent, name, &id, &ino);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    struct fuse_entry_param e = { .ino = ino, .attr = *st, .attr_timeout = timeout,
                                  .entry_timeout = timeout };
    e.attr.st_ino = ino;
    if (fuse_reply_entry(req, &e) < 0)
        nodetable_forget(nodes, ino, 1);
}

static void reply_status(fuse_req_t req, int r)
{
    fuse_reply_err(req, r < 0 ? -r : 0);
}

/* NAME in PARENT, at PATH, as it is now; or the error R. */
static void reply_path_entry(fuse_req_t req, fuse_ino_t parent, const char *name, const char *path,
                             int r)
{
    struct stat st;
    if (r == 0)
        r = path_attr(path, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        reply_entry(req, parent, name, &st, TIMEOUT);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    cur_req = req;
    char path[PATH_MAX];
    int r = nodetable_child_path(nodes, parent, name, path, sizeof(path));
    reply_path_entry(req, parent, name, path, r);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    nodetable_forget(nodes, ino, nlookup);
    fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        nodetable_forget(nodes, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    cur_req = req;
    struct stat st;
    int r = node_attr(ino, fi, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, TIMEOUT);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
    cur_req = req;
    char path[PATH_MAX], buf[PATH_MAX];
    struct vpath vp;
    int r = nodetable_path(nodes, ino, path, sizeof(path));
    if (r == 0)
        r = parse(path, &vp) == 0 ? view_readlink(st_of(), &vp, buf, sizeof(buf))
                                  : nsop_pending_link(path, buf, sizeof(buf));
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_readlink(req, buf);
}

/* An open directory: its entries, read once per pass (offset 0) and then
 * handed out by index, so a listing is one consistent snapshot even when
 * the kernel asks in several chunks. The first read of an open may come
 * at another offset (seekdir to a telldir of an earlier open): it reads
 * the entries too. A process with a VM's directory open is walking it
 * (ghost.h); a ghost directory lists its ghosts. */
struct dirh {
    struct vpath vp;
    pid_t pid;
    bool walker;
    bool ghost;
    bool filled; /* names/types hold a pass */
    char path[PATH_MAX];
    char **names;
    mode_t *types;
    size_t n, cap;
};

static void dir_clear(struct dirh *dh)
{
    for (size_t i = 0; i < dh->n; i++)
        free(dh->names[i]);
    dh->n = 0;
}

static int dir_add(void *p, const char *name, mode_t type)
{
    struct dirh *dh = p;
    if (dh->n == dh->cap) {
        size_t cap = dh->cap ? dh->cap * 2 : 32;
        char **names = realloc(dh->names, cap * sizeof(*names));
        if (!names)
            return -ENOMEM;
        dh->names = names;
        mode_t *types = realloc(dh->types, cap * sizeof(*types));
        if (!types)
            return -ENOMEM;
        dh->types = types;
        dh->cap = cap;
    }
    if (!(dh->names[dh->n] = strdup(name)))
        return -ENOMEM;
    dh->types[dh->n++] = type;
    return 0;
}

static int dir_fill(struct dirh *dh)
{
    dir_clear(dh);
    if (!dh->ghost)
        return view_readdir(st_of(), &dh->vp, dir_add, dh);
    int r = dir_add(dh, ".", S_IFDIR);
    if (r == 0)
        r = dir_add(dh, "..", S_IFDIR);
    if (r == 0)
        ghost_list(dh->pid, dh->path, dir_add, dh);
    return r;
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    cur_req = req;
    struct dirh *dh = calloc(1, sizeof(*dh));
    if (!dh) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    dh->pid = ctx()->pid;
    struct stat st;
    int r = nodetable_path(nodes, ino, dh->path, sizeof(dh->path));
    if (r == 0)
        r = parse(dh->path, &dh->vp);
    if (r == 0)
        r = view_getattr(st_of(), &dh->vp, &st);
    if (r == -ENOENT && ghost_attr(dh->path, &st) == 0) {
        dh->ghost = true;
        r = 0;
    }
    struct node_ident now;
    if (r == 0)
        node_ident_of(&st, &now);
    if (r == 0 && !nodetable_confirm(nodes, ino, &now))
        r = -ESTALE;
    if (r == 0 && !S_ISDIR(st.st_mode))
        r = -ENOTDIR;
    if (r < 0) {
        free(dh);
        fuse_reply_err(req, -r);
        return;
    }
    if (!dh->ghost && dh->vp.kind == V_VM) {
        ghost_walker_open(dh->pid, dh->vp.vm);
        dh->walker = true;
    }
    fi->fh = (uintptr_t)dh;
    if (fuse_reply_open(req, fi) < 0) {
        if (dh->walker)
            ghost_walker_close(dh->pid, dh->vp.vm);
        free(dh);
    }
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct dirh *dh = (struct dirh *)(uintptr_t)fi->fh;
    if (dh->walker)
        ghost_walker_close(dh->pid, dh->vp.vm);
    dir_clear(dh);
    free(dh->names);
    free(dh->types);
    free(dh);
    fuse_reply_err(req, 0);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)ino;
    cur_req = req;
    struct dirh *dh = (struct dirh *)(uintptr_t)fi->fh;
    int r = off == 0 || !dh->filled ? dir_fill(dh) : 0;
    dh->filled = r == 0;
    char *buf = r == 0 ? malloc(size ? size : 1) : NULL;
    if (r < 0 || !buf) {
        fuse_reply_err(req, r < 0 ? -r : ENOMEM);
        return;
    }
    size_t pos = 0;
    for (size_t i = (size_t)off; i < dh->n; i++) {
        struct stat st = { .st_ino = UNKNOWN_INO, .st_mode = dh->types[i] };
        size_t len = fuse_add_direntry(req, buf + pos, size - pos, dh->names[i], &st, (off_t)i + 1);
        if (len > size - pos)
            break;
        pos += len;
    }
    fuse_reply_buf(req, buf, pos);
    free(buf);
}
/* A writer of an active image and a snapshot operation exclude each
 * other. In this daemon: the writer is counted before the file is opened
 * and refused (EBUSY) while an operation on its VM runs. Across daemons
 * sharing the store: it holds a writer's mark (vmlock.h), which an
 * operation of any daemon cannot get past. */
static int writer_begin(const char *path, const struct vpath *vp, int *mark)
{
    int r = vmstate_writer_add(vp->vm, vp->dev);
    if (r < 0) {
        log_refusal("open", path, "a snapshot operation on this VM is running");
        return r;
    }
    *mark = vmlock_writer_mark(st_of(), vp->vm, vp->dev);
    if (*mark == -EBUSY) {
        vmstate_writer_remove(vp->vm, vp->dev);
        log_refusal("open", path, "a snapshot operation holds this image");
        return -EBUSY;
    }
    return 0; /* no mark (no locks/ in a read-only mount): only this daemon knows */
}

static void writer_end(const struct vpath *vp, int mark)
{
    if (mark >= 0)
        close(mark);
    vmstate_writer_remove(vp->vm, vp->dev);
}

static int open_handle(const char *path, struct fuse_file_info *fi)
{
    struct vpath vp;
    int r = parse(path, &vp);
    if (r < 0)
        return r;
    struct handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->f.fd = -1;
    if (vp.kind == V_JOBS) {
        if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
            free(h);
            return -EROFS;
        }
        h->text = jobs_render(&h->len);
        if (!h->text) {
            free(h);
            return -ENOMEM;
        }
        fi->direct_io = 1; /* size 0 in stat; reads return the live text */
    } else {
        h->uid = ctx()->uid;
        if ((r = fdquota_take(h->uid)) < 0) {
            free(h);
            return r;
        }
        bool writer = vp.kind == V_DISK &&
                      ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC));
        h->writer_mark = -1;
        if (writer && (r = writer_begin(path, &vp, &h->writer_mark)) < 0) {
            fdquota_put(h->uid);
            free(h);
            return r;
        }
        if ((r = view_open(st_of(), &vp, fi->flags, &h->f)) < 0) {
            if (writer)
                writer_end(&vp, h->writer_mark);
            fdquota_put(h->uid);
            free(h);
            return r;
        }
        if (writer)
            h->writer = vp;
        fi->keep_cache = h->f.frozen;
        fi->direct_io = h->f.active;
        int fl = fcntl(h->f.fd, F_GETFL);
        h->direct = fl >= 0 && (fl & O_DIRECT);
        /* Reads from an O_DIRECT store file would not use what a
         * streamer puts in the page cache. */
        readahead_init(&h->ra, fl >= 0 && !h->direct);
    }
    fi->fh = (uintptr_t)h;
    return 0;
}

/* O_DIRECT wants aligned memory, which libfuse's buffers never are:
 * directio.h copies to an aligned one. Data still in a pipe (spliced
 * requests) is read into memory first, already aligned. */
static int write_direct(int fd, struct fuse_bufvec *buf, off_t off)
{
    size_t size = fuse_buf_size(buf);
    if (buf->count == 1 && !(buf->buf[0].flags & FUSE_BUF_IS_FD))
        return (int)directio_pwrite(fd, buf->buf[0].mem, size, off);
    void *mem;
    if (posix_memalign(&mem, DIRECTIO_ALIGN, size ? size : 1) != 0)
        return -ENOMEM;
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
    dst.buf[0].mem = mem;
    ssize_t n = fuse_buf_copy(&dst, buf, 0);
    if (n >= 0)
        n = directio_pwrite(fd, mem, (size_t)n, off);
    free(mem);
    return (int)n;
}

/* Everything an open handle holds, given back. */
static void release_handle(struct handle *h)
{
    if (h->f.fd >= 0) {
        readahead_stop(&h->ra); /* its thread uses h until joined */
        close(h->f.fd);
        fdquota_put(h->uid);
    }
    if (h->writer.kind == V_DISK)
        writer_end(&h->writer, h->writer_mark);
    free(h->text);
    free(h);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    cur_req = req;
    char path[PATH_MAX];
    int r = nodetable_path(nodes, ino, path, sizeof(path));
    if (r == 0)
        r = open_handle(path, fi);
    struct handle *h = r == 0 ? h_of(fi) : NULL;
    /* The file opened must be the node's: when the store has given its
     * name to another file since the lookup, ESTALE makes the kernel
     * look the name up again and open the new node. */
    struct stat st;
    struct node_ident now;
    if (h && h->f.fd >= 0) {
        if (fstat(h->f.fd, &st) < 0) {
            r = -errno;
        } else {
            node_ident_of(&st, &now);
            if (!nodetable_confirm(nodes, ino, &now))
                r = -ESTALE;
        }
    }
    if (r == 0)
        r = nodetable_open(nodes, ino, h, h->writer.kind == V_DISK);
    if (r < 0) {
        if (h)
            release_handle(h);
        fuse_reply_err(req, -r);
        return;
    }
    if (fuse_reply_open(req, fi) < 0) { /* the open was interrupted */
        nodetable_close(nodes, ino, h);
        release_handle(h);
    }
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct handle *h = h_of(fi);
    nodetable_close(nodes, ino, h); /* before it is freed: fstat may use it */
    release_handle(h);
    fuse_reply_err(req, 0);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = h_of(fi);
    if (h->text) {
        size_t start = (size_t)off < h->len ? (size_t)off : h->len;
        size_t n = size < h->len - start ? size : h->len - start;
        fuse_reply_buf(req, h->text + start, n);
        return;
    }
    readahead_note(&h->ra, h->f.fd, off, size);
    /* An fd buffer: libfuse splices straight from the store file. */
    struct fuse_bufvec src = FUSE_BUFVEC_INIT(size);
    src.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    src.buf[0].fd = h->f.fd;
    src.buf[0].pos = off;
    fuse_reply_data(req, &src, FUSE_BUF_SPLICE_MOVE);
}

static void ll_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *buf, off_t off,
                         struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = h_of(fi);
    ssize_t r;
    if (h->f.fd < 0) {
        r = -EBADF;
    } else if (h->direct) {
        r = write_direct(h->f.fd, buf, off);
    } else {
        struct fuse_bufvec dst = FUSE_BUFVEC_INIT(fuse_buf_size(buf));
        dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        dst.buf[0].fd = h->f.fd;
        dst.buf[0].pos = off;
        r = fuse_buf_copy(&dst, buf, FUSE_BUF_SPLICE_NONBLOCK);
    }
    if (r < 0)
        fuse_reply_err(req, (int)-r);
    else
        fuse_reply_write(req, (size_t)r);
}

/* A wait (for a lock through the mount, another operation's VM lock, a
 * clone's copy) ends on Ctrl-C on the caller (the kernel sends
 * FUSE_INTERRUPT) or when the daemon stops, so neither a waiter nor the
 * daemon's exit hangs on a lock holder. ARG is the request. */
static bool request_cancelled(void *arg)
{
    return (arg && fuse_req_interrupted(arg)) || fuse_session_exited(session);
}

/* qemu guards an image it has open with OFD locks on its own descriptor.
 * Every open through the mount has its own store descriptor, so a lock
 * request forwarded as an OFD lock on it conflicts exactly where qemu's
 * own would: with a qemu running on the store path, and with other opens
 * of the image through the mount. Without this the kernel would keep the
 * mount's locks to itself and a running VM's disk could be written.
 * Locks here are the handle's (OFD): they end when the handle is
 * released. FLUSH is not implemented, so the close(2) of a copy of the
 * descriptor (an exec'd child of a qemu closing it) never unlocks the
 * holder's locks. */
static void ll_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lk)
{
    (void)ino;
    struct handle *h = h_of(fi);
    if (h->f.fd < 0) {
        fuse_reply_err(req, ENOLCK);
        return;
    }
    struct flock l = *lk;
    l.l_pid = 0; /* OFD locks require it */
    if (fcntl(h->f.fd, F_OFD_GETLK, &l) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    /* An OFD holder has no pid (-1); the kernel wants a real one or 0. */
    if (l.l_pid < 0)
        l.l_pid = 0;
    fuse_reply_lock(req, &l);
}

static void ll_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lk,
                     int sleep)
{
    (void)ino;
    cur_req = req;
    struct handle *h = h_of(fi);
    if (h->f.fd < 0) {
        fuse_reply_err(req, ENOLCK);
        return;
    }
    struct flock l = *lk;
    l.l_pid = 0;
    int r = 0;
    if (sleep) /* never a blocking fcntl in a worker (lockwait.h) */
        r = lockwait_ofd(h->f.fd, &l, ctx()->uid, request_cancelled, req);
    else if (fcntl(h->f.fd, F_OFD_SETLK, &l) < 0)
        r = -errno;
    reply_status(req, r);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = h_of(fi);
    int r = 0;
    if (h->f.fd >= 0 && (datasync ? fdatasync(h->f.fd) : fsync(h->f.fd)) < 0)
        r = -errno;
    reply_status(req, r);
}

static void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = h_of(fi);
    if (h->f.fd < 0) {
        fuse_reply_err(req, ESPIPE);
        return;
    }
    /* SEEK_DATA/SEEK_HOLE let qemu-img and cp skip the holes of images. */
    off_t r = lseek(h->f.fd, off, whence);
    if (r < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_lseek(req, r);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = h_of(fi);
    int r = h->f.fd < 0 ? -EBADF : fallocate(h->f.fd, mode, off, len) < 0 ? -errno : 0;
    reply_status(req, r);
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

static int change_handle(void *hp, void *cp)
{
    struct handle *h = hp;
    if (h->f.fd < 0)
        return -EROFS;
    struct view_file vf = displaced_file(h);
    return change_file(&vf, cp);
}

/* Truncating by path writes too: it counts as a writer for its span. */
static int truncate_path(const char *path, const struct vpath *vp, off_t size)
{
    int mark = -1, r;
    if (vp->kind == V_DISK && (r = writer_begin(path, vp, &mark)) < 0)
        return r;
    r = view_truncate(st_of(), vp, size);
    if (vp->kind == V_DISK)
        writer_end(vp, mark);
    return r;
}

static int change_path(const char *path, const struct attr_change *c)
{
    struct vpath vp;
    int r = parse(path, &vp);
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

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    cur_req = req;
    struct attr_change c = { attr, to_set };
    struct handle *h = h_of(fi);
    char path[PATH_MAX];
    struct stat st;
    int r;
    if (h && h->f.fd >= 0) {
        r = change_file(&h->f, &c);
    } else if ((r = node_now(ino, path, sizeof(path), &st)) == 0) {
        r = change_path(path, &c);
    } else if (r == -ESTALE || r == -ENOENT) {
        int hr = nodetable_with_handle(nodes, ino, change_handle, &c);
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
static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs sv;
    if (fstatvfs(st_of()->rootfd, &sv) < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_statfs(req, &sv);
}

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
    if (n > 0 && (size_t)n < sizeof(path) && nodetable_find(nodes, path, &ino) == 0)
        fuse_lowlevel_notify_inval_inode(session, ino, 0, 0);
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
    struct snap_ctx c = { .s = st_of(), .cancelled = request_cancelled, .arg = req,
                          .pid = ctx()->pid };
    return c;
}

/* The mount path of NAME in PARENT; a failure is replied. */
static bool child_path(fuse_req_t req, fuse_ino_t parent, const char *name, char *path,
                       size_t size)
{
    cur_req = req;
    int r = nodetable_child_path(nodes, parent, name, path, size);
    if (r < 0)
        fuse_reply_err(req, -r);
    return r == 0;
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)mode;
    char path[PATH_MAX];
    if (!child_path(req, parent, name, path, sizeof(path)))
        return;
    struct snap_ctx c = snap_ctx(req);
    struct nsop_result res;
    int r = ns_result(R_MKDIR, path, NULL, nsop_mkdir(&c, path, &res), &res);
    struct vpath vp;
    if (r < 0 || parse(path, &vp) < 0 || (vp.kind != V_CLONE && vp.kind != V_SNAP_CLONE)) {
        reply_path_entry(req, parent, name, path, r);
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
        reply_entry(req, parent, name, &st, 0);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    char path[PATH_MAX];
    if (!child_path(req, parent, name, path, sizeof(path)))
        return;
    struct snap_ctx c = snap_ctx(req);
    struct nsop_result res;
    int r = ns_result(R_RMDIR, path, NULL, nsop_rmdir(&c, path, &res), &res);
    if (r == 0)
        nodetable_removed(nodes, parent, name);
    reply_status(req, r);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    char path[PATH_MAX];
    if (!child_path(req, parent, name, path, sizeof(path)))
        return;
    struct snap_ctx c = snap_ctx(req);
    struct nsop_result res;
    int r = ns_result(R_UNLINK, path, NULL, nsop_unlink(&c, path, &res), &res);
    if (r == 0)
        nodetable_removed(nodes, parent, name);
    reply_status(req, r);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
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
        nodetable_renamed(nodes, parent, name, newparent, newname, flags & RENAME_EXCHANGE);
    reply_status(req, r);
}

static void ll_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
    char path[PATH_MAX];
    if (!child_path(req, parent, name, path, sizeof(path)))
        return;
    struct snap_ctx c = snap_ctx(req);
    struct nsop_result res;
    int r = ns_result(R_SYMLINK, path, NULL, nsop_symlink(&c, target, path, &res), &res);
    reply_path_entry(req, parent, name, path, r);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    char from[PATH_MAX], to[PATH_MAX];
    if (!child_path(req, newparent, newname, to, sizeof(to)))
        return;
    if (nodetable_path(nodes, ino, from, sizeof(from)) < 0)
        snprintf(from, sizeof(from), "?");
    reply_status(req, refuse2(R_LINK, from, to));
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    (void)mode;
    (void)fi;
    char path[PATH_MAX];
    if (child_path(req, parent, name, path, sizeof(path)))
        reply_status(req, refuse2(R_CREATE, path, NULL));
}

/* Without it the kernel gets ENOSYS, which mkfifo reports as "Function
 * not implemented" and nothing logs. */
static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)mode;
    (void)rdev;
    char path[PATH_MAX];
    if (child_path(req, parent, name, path, sizeof(path)))
        reply_status(req, refuse2(R_MKNOD, path, NULL));
}

/* Setting or removing an attribute is a refusal like the others (logged);
 * getxattr and listxattr stay unimplemented on purpose: ENOSYS lets the
 * kernel answer "not supported" itself from then on, without a round
 * trip for every `ls -l`. */
static void refuse_node(fuse_req_t req, fuse_ino_t ino, enum refusal_op op)
{
    cur_req = req;
    char path[PATH_MAX];
    if (nodetable_path(nodes, ino, path, sizeof(path)) < 0)
        snprintf(path, sizeof(path), "?");
    reply_status(req, refuse2(op, path, NULL));
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    refuse_node(req, ino, R_SETXATTR);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)name;
    refuse_node(req, ino, R_REMOVEXATTR);
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* Replies from fd buffers become splices from the store file. */
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
    if (conn->capable & FUSE_CAP_SPLICE_MOVE)
        conn->want |= FUSE_CAP_SPLICE_MOVE;
    if (conn->capable & FUSE_CAP_SPLICE_READ)
        conn->want |= FUSE_CAP_SPLICE_READ;
    /* Reads no larger than a reply that still splices (readsize.h);
     * libfuse insists this equals the max_read mount option. */
    conn->max_read = (unsigned)vfs->max_read;
}

static const struct fuse_lowlevel_ops ll_ops = {
    .init = ll_init,
    .lookup = ll_lookup,
    .forget = ll_forget,
    .forget_multi = ll_forget_multi,
    .getattr = ll_getattr,
    .setattr = ll_setattr,
    .readlink = ll_readlink,
    .opendir = ll_opendir,
    .readdir = ll_readdir,
    .releasedir = ll_releasedir,
    .open = ll_open,
    .read = ll_read,
    .write_buf = ll_write_buf,
    .fsync = ll_fsync,
    .getlk = ll_getlk,
    .setlk = ll_setlk,
    .release = ll_release,
    .lseek = ll_lseek,
    .fallocate = ll_fallocate,
    .statfs = ll_statfs,
    .mkdir = ll_mkdir,
    .rmdir = ll_rmdir,
    .unlink = ll_unlink,
    .create = ll_create,
    .rename = ll_rename,
    .symlink = ll_symlink,
    .link = ll_link,
    .mknod = ll_mknod,
    .setxattr = ll_setxattr,
    .removexattr = ll_removexattr,
};

struct fuse_session *ops_session_new(struct fuse_args *args, struct vfs *v)
{
    if (!(nodes = nodetable_new()))
        return NULL;
    vfs = v;
    session = fuse_session_new(args, &ll_ops, sizeof(ll_ops), v);
    if (!session) {
        nodetable_free(nodes);
        nodes = NULL;
    }
    return session;
}

void ops_session_destroy(struct fuse_session *se)
{
    fuse_session_destroy(se);
    nodetable_free(nodes);
    nodes = NULL;
    session = NULL;
}
