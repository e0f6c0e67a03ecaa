/* The high-level (path) API is used on purpose: every entry of the view
 * is a function of its path (vpath.h), and the one thing the low-level
 * API would add for speed — zero-copy replies — is available here too
 * through read_buf returning an fd buffer (spliced when the kernel allows
 * splice_write). Frozen images set keep_cache so repeat reads come from
 * the page cache; active images use direct I/O so a qemu writing the store
 * path is always seen (no stale pages to invalidate). A sequential reader
 * of either gets a streamer that keeps the disk reading ahead of it
 * (readahead.h). */
#include "config.h"

#include "ops.h"

#include <fuse_lowlevel.h> /* fuse_session_exited */

#include "directio.h"
#include "fdquota.h"
#include "ghost.h"
#include "jobs.h"
#include "lockwait.h"
#include "log.h"
#include "nsop.h"
#include "readahead.h"
#include "refusal.h"
#include "view.h"
#include "vmlock.h"
#include "vmstate.h"
#include "vpath.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

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

static const struct store *st_of(void)
{
    return &((struct vfs *)fuse_get_context()->private_data)->store;
}

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
    if (!path || ghost_stat(fuse_get_context()->pid, path, &type) < 0)
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

/* The kernel wants the entry a mkdir made to be a directory (any other
 * type fails the mkdir with EIO), but <vm>/clones/N is a symlink. So the
 * lookup libfuse makes right after a clone's mkdir, on the same thread,
 * is answered with the attributes of the clone's own directory, N; the
 * kernel shows clones/N so until the entry expires (entry_timeout, one
 * second) and then, looked up afresh, as the link N -> ../../N. */
static __thread char made_clone[PATH_MAX];

static int made_clone_attr(const char *path, struct stat *st)
{
    if (!path || !made_clone[0] || strcmp(path, made_clone) != 0)
        return 1;
    made_clone[0] = '\0';
    struct vpath vp = { .kind = V_VM };
    snprintf(vp.vm, sizeof(vp.vm), "%s", strrchr(path, '/') + 1);
    return view_getattr(st_of(), &vp, st);
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    int made = made_clone_attr(path, st);
    if (made <= 0)
        return made;
    struct handle *h = h_of(fi);
    /* Asked about an open file (fstat; or by handle only, nullpath_ok):
     * answer for the file it opened, which the store path may no longer
     * name. */
    if (h && h->f.fd >= 0)
        return view_fstat(&h->f, st);
    if (h && h->text) {
        struct vpath jobs = { .kind = V_JOBS };
        return view_getattr(st_of(), &jobs, st);
    }
    struct vpath vp;
    int r = parse(path, &vp);
    if (r < 0 && (r = pending_link_attr(path, st)) == 0)
        return 0;
    if (r == 0 && (r = view_getattr(st_of(), &vp, st)) == 0)
        return 0;
    return r == -ENOENT && ghost_attr(path, st) == 0 ? 0 : r;
}

static int op_readlink(const char *path, char *buf, size_t size)
{
    struct vpath vp;
    if (parse(path, &vp) == 0)
        return view_readlink(st_of(), &vp, buf, size);
    return nsop_pending_link(path, buf, size);
}

struct dir_fill {
    void *buf;
    fuse_fill_dir_t filler;
};

static int fill_one(void *p, const char *name, mode_t type)
{
    struct dir_fill *d = p;
    struct stat st = { .st_mode = type };
    return d->filler(d->buf, name, &st, 0, 0);
}

/* An open directory. nullpath_ok means readdir may get no path: the
 * parsed path is kept here instead. A process with a VM's directory open
 * is walking it (ghost.h); a ghost directory lists its ghosts. */
struct dirh {
    struct vpath vp;
    pid_t pid;
    bool walker;
    bool ghost;
    char path[PATH_MAX];
};

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
    struct dirh *dh = calloc(1, sizeof(*dh));
    if (!dh)
        return -ENOMEM;
    dh->pid = fuse_get_context()->pid;
    snprintf(dh->path, sizeof(dh->path), "%s", path ? path : "");
    int r = parse(path, &dh->vp);
    struct stat st;
    if (r == 0)
        r = view_getattr(st_of(), &dh->vp, &st);
    if (r == -ENOENT && ghost_attr(path, &st) == 0) {
        dh->ghost = true;
        r = 0;
    }
    if (r == 0 && !S_ISDIR(st.st_mode))
        r = -ENOTDIR;
    if (r < 0) {
        free(dh);
        return r;
    }
    if (!dh->ghost && dh->vp.kind == V_VM) {
        ghost_walker_open(dh->pid, dh->vp.vm);
        dh->walker = true;
    }
    fi->fh = (uintptr_t)dh;
    return 0;
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    struct dirh *dh = (struct dirh *)(uintptr_t)fi->fh;
    if (dh->walker)
        ghost_walker_close(dh->pid, dh->vp.vm);
    free(dh);
    return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)path;
    (void)off;
    (void)flags;
    struct dir_fill d = { buf, filler };
    struct dirh *dh = (struct dirh *)(uintptr_t)fi->fh;
    if (!dh->ghost)
        return view_readdir(st_of(), &dh->vp, fill_one, &d);
    if (fill_one(&d, ".", S_IFDIR) == 0 && fill_one(&d, "..", S_IFDIR) == 0)
        ghost_list(dh->pid, dh->path, fill_one, &d);
    return 0;
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

static int op_open(const char *path, struct fuse_file_info *fi)
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
        h->uid = fuse_get_context()->uid;
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

static int op_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)path;
    struct handle *h = h_of(fi);
    struct fuse_bufvec *src = malloc(sizeof(*src));
    if (!src)
        return -ENOMEM;
    *src = FUSE_BUFVEC_INIT(size);
    if (h->text) {
        /* libfuse frees memory buffers after replying: hand it a copy. */
        size_t start = (size_t)off < h->len ? (size_t)off : h->len;
        size_t n = size < h->len - start ? size : h->len - start;
        src->buf[0].mem = malloc(n ? n : 1);
        if (!src->buf[0].mem) {
            free(src);
            return -ENOMEM;
        }
        memcpy(src->buf[0].mem, h->text + start, n);
        src->buf[0].size = n;
    } else {
        readahead_note(&h->ra, h->f.fd, off, size);
        /* An fd buffer: libfuse splices straight from the store file. */
        src->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        src->buf[0].fd = h->f.fd;
        src->buf[0].pos = off;
    }
    *bufp = src;
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

static int op_write_buf(const char *path, struct fuse_bufvec *buf, off_t off,
                        struct fuse_file_info *fi)
{
    (void)path;
    struct handle *h = h_of(fi);
    if (h->f.fd < 0)
        return -EBADF;
    if (h->direct)
        return write_direct(h->f.fd, buf, off);
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(fuse_buf_size(buf));
    dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    dst.buf[0].fd = h->f.fd;
    dst.buf[0].pos = off;
    return (int)fuse_buf_copy(&dst, buf, FUSE_BUF_SPLICE_NONBLOCK);
}

/* A waiting lock request ends when its caller is interrupted (Ctrl-C,
 * kill: the kernel sends FUSE_INTERRUPT) or when the mount is going away,
 * so neither a waiter nor the daemon's exit hangs on a lock holder. */
/* A wait (for a lock through the mount, another operation's VM lock, a
 * clone's copy) ends on Ctrl-C on the caller or when the daemon stops. */
static bool request_cancelled(void *arg)
{
    (void)arg;
    return fuse_interrupted() || fuse_session_exited(fuse_get_session(fuse_get_context()->fuse));
}

/* qemu guards an image it has open with OFD locks on its own descriptor.
 * Every open through the mount has its own store descriptor, so a lock
 * request forwarded as an OFD lock on it conflicts exactly where qemu's
 * own would: with a qemu running on the store path, and with other opens
 * of the image through the mount. Without this the kernel would keep the
 * mount's locks to itself and a running VM's disk could be written. */
static int op_lock(const char *path, struct fuse_file_info *fi, int cmd, struct flock *lk)
{
    (void)path;
    struct handle *h = h_of(fi);
    if (!h || h->f.fd < 0)
        return -ENOLCK;
    /* libfuse's path API unlocks the whole file on every FLUSH, that is on
     * every close(2) of any copy of the descriptor - also the one an
     * exec'd child of the holder closes. On the one store fd the handle
     * has, that would drop the holder's locks (a qemu's, when it runs a
     * helper). Locks here are the handle's (OFD): they end when the
     * handle is released, so the flush unlock is not passed on. */
    if (fi->flush && cmd == F_SETLK && lk->l_type == F_UNLCK)
        return 0;
    struct flock l = *lk;
    l.l_pid = 0; /* OFD locks require it */
    if (cmd == F_SETLKW) {
        /* Never a blocking fcntl in a worker (lockwait.h). */
        int r = lockwait_ofd(h->f.fd, &l, fuse_get_context()->uid, request_cancelled, NULL);
        if (r < 0)
            return r;
    } else if (fcntl(h->f.fd, cmd == F_GETLK ? F_OFD_GETLK : F_OFD_SETLK, &l) < 0) {
        return -errno;
    }
    if (cmd == F_GETLK) {
        *lk = l;
        /* An OFD holder has no pid (-1); the kernel wants a real one or 0. */
        if (lk->l_pid < 0)
            lk->l_pid = 0;
    } else {
        /* libfuse's path API also records granted locks in a table of its
         * own, keyed by lock owner, and answers GETLK from it first. A
         * qemu's locks are OFD locks, whose owner the kernel never names
         * again when the file closes, so a crashed or killed holder would
         * stay in that table for good and refuse every later opener. The
         * store fd is the authority (its locks die with the handle), so
         * the table is told "unlocked": libfuse records what this struct
         * says after we return. */
        lk->l_type = F_UNLCK;
    }
    return 0;
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    struct handle *h = h_of(fi);
    if (h->f.fd < 0)
        return 0;
    return (datasync ? fdatasync(h->f.fd) : fsync(h->f.fd)) < 0 ? -errno : 0;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    struct handle *h = h_of(fi);
    if (h->f.fd >= 0) {
        readahead_stop(&h->ra); /* its thread uses h until joined */
        close(h->f.fd);
        fdquota_put(h->uid);
    }
    if (h->writer.kind == V_DISK)
        writer_end(&h->writer, h->writer_mark);
    free(h->text);
    free(h);
    return 0;
}

static off_t op_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
    (void)path;
    struct handle *h = h_of(fi);
    if (!h || h->f.fd < 0)
        return -ESPIPE;
    /* SEEK_DATA/SEEK_HOLE let qemu-img and cp skip the holes of images. */
    off_t r = lseek(h->f.fd, off, whence);
    return r < 0 ? -errno : r;
}

static int op_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
    (void)path;
    struct handle *h = h_of(fi);
    if (!h || h->f.fd < 0)
        return -EBADF;
    return fallocate(h->f.fd, mode, off, len) < 0 ? -errno : 0;
}

/* The file an attribute change comes with, if any: the kernel names the
 * open file for ftruncate and O_TRUNC (not for fchmod, fchown or
 * futimens, which arrive as changes of the path). The store path may name
 * another file by now; the change is for the one that was opened. */
static const struct view_file *file_of(struct fuse_file_info *fi)
{
    struct handle *h = h_of(fi);
    return h && h->f.fd >= 0 ? &h->f : NULL;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    const struct view_file *vf = file_of(fi);
    if (vf)
        return view_ftruncate(vf, size);
    struct vpath vp;
    int r = parse(path, &vp);
    if (r < 0)
        return r;
    /* Truncating by path writes too: it counts as a writer for its span. */
    int mark = -1;
    if (vp.kind == V_DISK && (r = writer_begin(path, &vp, &mark)) < 0)
        return r;
    r = view_truncate(st_of(), &vp, size);
    if (vp.kind == V_DISK)
        writer_end(&vp, mark);
    return r;
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    const struct view_file *vf = file_of(fi);
    if (vf)
        return view_fchmod(vf, mode);
    struct vpath vp;
    int r = parse(path, &vp);
    return r < 0 ? r : view_chmod(st_of(), &vp, mode);
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    const struct view_file *vf = file_of(fi);
    if (vf)
        return view_fchown(vf, uid, gid);
    struct vpath vp;
    int r = parse(path, &vp);
    return r < 0 ? r : view_chown(st_of(), &vp, uid, gid);
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    const struct view_file *vf = file_of(fi);
    if (vf)
        return view_futimens(vf, tv);
    struct vpath vp;
    int r = parse(path, &vp);
    return r < 0 ? r : view_utimens(st_of(), &vp, tv);
}

/* From the root descriptor, not the root's path: `df` keeps answering
 * for the store's file system even when the store directory was moved
 * or removed under the mount (fstatfs works on O_PATH descriptors). */
static int op_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    return fstatvfs(st_of()->rootfd, sv) < 0 ? -errno : 0;
}

/* Namespace changes (snapshot, clone, delete, rename, revert, import) are
 * not part of this version: refused, and logged once per operation and
 * path. refusal.h decides the errno; handlers that come to implement some
 * of these call refuse() for whatever they leave out. */
static int refuse2(enum refusal_op op, const char *path, const char *path2)
{
    int r = refusal_errno(op, path, path2);
    log_refusal(refusal_op_name(op), path ? path : "?", refusal_why(r));
    return r;
}

static int refuse(enum refusal_op op, const char *path)
{
    return refuse2(op, path, NULL);
}

/* ---- namespace operations: the core (nsop.h) decides, this maps ---- */


struct inval {
    struct fuse *fuse;
    const struct store *s;
    char vm[NAME_MAX_LEN + 1];
    char snap[NAME_MAX_LEN + 1]; /* while walking a snapshot's images */
};

static void inval(struct inval *iv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void inval(struct inval *iv, const char *fmt, ...)
{
    char path[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    /* -ENOENT: the kernel holds nothing under that path. */
    if (n > 0 && (size_t)n < sizeof(path))
        fuse_invalidate_path(iv->fuse, path);
}

static int inval_disk(void *arg, const char *name, mode_t type)
{
    (void)type;
    struct inval *iv = arg;
    if (name[0] != '.')
        inval(iv, "/%s/disks/%s", iv->vm, name);
    return 0;
}

static int inval_frozen(void *arg, const char *name, mode_t type)
{
    (void)type;
    struct inval *iv = arg;
    if (name[0] != '.')
        inval(iv, "/%s/snapshots/%s/%s", iv->vm, iv->snap, name);
    return 0;
}

static int inval_snapshot(void *arg, const char *name, mode_t type)
{
    (void)type;
    struct inval *iv = arg;
    if (name[0] == '.')
        return 0;
    inval(iv, "/%s/snapshots/%s", iv->vm, name);
    struct vpath snap = { .kind = V_SNAP };
    snprintf(snap.vm, sizeof(snap.vm), "%s", iv->vm);
    snprintf(snap.snap, sizeof(snap.snap), "%s", name);
    snprintf(iv->snap, sizeof(iv->snap), "%s", name);
    view_readdir(iv->s, &snap, inval_frozen, iv);
    return 0;
}

/* An operation replaced what stands at some paths (domain.xml, active
 * images, current); a rename also rewrote the headers of frozen images
 * (the ones that grow from the renamed one), which the kernel caches
 * across opens (keep_cache). Their pages and attributes are
 * dropped before the reply, so the caller's next read sees the store.
 * Only inodes are invalidated: dropping a directory entry from inside
 * the request could wait on the directory lock the kernel holds for it;
 * entries age out within entry_timeout. */
static void after_change(const char *vm, bool frozen_changed)
{
    if (!vm[0])
        return;
    struct inval iv = { .fuse = fuse_get_context()->fuse, .s = st_of() };
    snprintf(iv.vm, sizeof(iv.vm), "%s", vm);
    static const char *const entries[] = { "", "/domain.xml", "/current", "/disks", "/snapshots" };
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++)
        inval(&iv, "/%s%s", vm, entries[i]);
    struct vpath dir = { .kind = V_DISKS };
    snprintf(dir.vm, sizeof(dir.vm), "%s", vm);
    view_readdir(iv.s, &dir, inval_disk, &iv);
    if (frozen_changed) {
        dir.kind = V_SNAPS;
        view_readdir(iv.s, &dir, inval_snapshot, &iv);
    }
}

/* The core's answer as a reply: success drops stale caches; a refusal is
 * logged with its reason; NSOP_NOT_MINE falls to the refusal rules. */
static int ns_reply(enum refusal_op rop, const char *path, const char *path2, int r,
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

static struct snap_ctx snap_ctx(void)
{
    struct snap_ctx c = { .s = st_of(), .cancelled = request_cancelled,
                          .pid = fuse_get_context()->pid };
    return c;
}

static int op_mkdir(const char *path, mode_t mode)
{
    (void)mode;
    struct snap_ctx c = snap_ctx();
    struct nsop_result res;
    int r = ns_reply(R_MKDIR, path, NULL, nsop_mkdir(&c, path, &res), &res);
    struct vpath vp;
    made_clone[0] = '\0';
    if (r == 0 && parse(path, &vp) == 0 && (vp.kind == V_CLONE || vp.kind == V_SNAP_CLONE))
        snprintf(made_clone, sizeof(made_clone), "%s", path);
    return r;
}

static int op_rmdir(const char *path)
{
    struct snap_ctx c = snap_ctx();
    struct nsop_result res;
    return ns_reply(R_RMDIR, path, NULL, nsop_rmdir(&c, path, &res), &res);
}

static int op_unlink(const char *path)
{
    struct snap_ctx c = snap_ctx();
    struct nsop_result res;
    return ns_reply(R_UNLINK, path, NULL, nsop_unlink(&c, path, &res), &res);
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    (void)mode;
    (void)fi;
    return refuse(R_CREATE, path);
}

/* Without it libfuse answers ENOSYS, which mkfifo reports as "Function
 * not implemented" and nothing logs. */
static int op_mknod(const char *path, mode_t mode, dev_t rdev)
{
    (void)mode;
    (void)rdev;
    return refuse(R_MKNOD, path);
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
    struct snap_ctx c = snap_ctx();
    struct nsop_result res;
    return ns_reply(R_RENAME, from, to, nsop_rename(&c, from, to, flags, &res), &res);
}

static int op_symlink(const char *target, const char *path)
{
    struct snap_ctx c = snap_ctx();
    struct nsop_result res;
    return ns_reply(R_SYMLINK, path, NULL, nsop_symlink(&c, target, path, &res), &res);
}

static int op_link(const char *from, const char *to)
{
    return refuse2(R_LINK, from, to);
}

/* Setting or removing an attribute is a refusal like the others (logged);
 * getxattr and listxattr stay unimplemented on purpose: libfuse's ENOSYS
 * lets the kernel answer "not supported" itself from then on, without a
 * round trip for every `ls -l`. */
static int op_setxattr(const char *path, const char *name, const char *value, size_t size,
                       int flags)
{
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    return refuse(R_SETXATTR, path);
}

static int op_removexattr(const char *path, const char *name)
{
    (void)name;
    return refuse(R_REMOVEXATTR, path);
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* Replies from fd buffers become splices from the store file. */
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
    if (conn->capable & FUSE_CAP_SPLICE_MOVE)
        conn->want |= FUSE_CAP_SPLICE_MOVE;
    if (conn->capable & FUSE_CAP_SPLICE_READ)
        conn->want |= FUSE_CAP_SPLICE_READ;
    /* Reads no larger than a reply that still splices (readsize.h);
     * libfuse insists this equals the max_read mount option. */
    struct vfs *vfs = fuse_get_context()->private_data;
    conn->max_read = (unsigned)vfs->max_read;
    cfg->nullpath_ok = 1;
    /* Never rename an unlinked open file to .fuse_hidden*: the view's
     * names are the store's, and a rename would be refused anyway (or,
     * once renames exist, move a store file under a name no rule knows). */
    cfg->hard_remove = 1;
    cfg->use_ino = 0;
    /* One second: long enough that `ls -l` and sequential reads do not
     * ask again for every block, short enough that changes made in the
     * store directly (a qemu growing an image) show up promptly. The
     * kernel's auto_inval_data then drops cached pages whose file changed. */
    cfg->entry_timeout = 1.0;
    cfg->attr_timeout = 1.0;
    cfg->negative_timeout = 0.0;
    return vfs;
}

const struct fuse_operations vmstorefs_ops = {
    .init = op_init,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .open = op_open,
    .read_buf = op_read_buf,
    .write_buf = op_write_buf,
    .fsync = op_fsync,
    .lock = op_lock,
    .release = op_release,
    .lseek = op_lseek,
    .fallocate = op_fallocate,
    .truncate = op_truncate,
    .chmod = op_chmod,
    .chown = op_chown,
    .utimens = op_utimens,
    .statfs = op_statfs,
    .mkdir = op_mkdir,
    .rmdir = op_rmdir,
    .unlink = op_unlink,
    .create = op_create,
    .rename = op_rename,
    .symlink = op_symlink,
    .link = op_link,
    .mknod = op_mknod,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
};
