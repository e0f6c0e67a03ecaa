/* Open files: the handles of store files and of .jobs, their reads
 * (spliced from the store file), writes (O_DIRECT through aligned
 * memory), locks (OFD locks on the handle's own descriptor, as qemu's)
 * and the writer marks that keep snapshot operations off images being
 * written. */
#include "config.h"

#include "fuse/node.h"
#include "fuse/handlers.h"
#include "store/writer.h"

#include "datapath/directio.h"
#include "fuse/fdquota.h"
#include "util/jobs.h"
#include "view/nsop.h"
#include "ops/import.h"
#include "fuse/lockwait.h"
#include "util/log.h"
#include "store/vmlock.h"
#include "store/vmstate.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A line of .jobs is for those who may search its VM's directory in the
 * store (root: all), as the VM's own entries are. */
static bool may_see_vm(const char *vm, void *arg)
{
    char dir[PATH_MAX];
    return store_vm_path(st_of(), vm, NULL, dir, sizeof(dir)) == 0 &&
           perm_cred_may(st_of(), arg, dir, X_OK);
}

static bool writing(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* The attributes a new domain.xml shows before its first commit: a file
 * of whoever makes it, with the VM directory's times. */
static int new_domxml_attr(const char *vm, mode_t mode, struct stat *st)
{
    struct vpath dir = { .kind = V_VM };
    snprintf(dir.vm, sizeof(dir.vm), "%s", vm);
    int r = view_getattr(st_of(), &dir, st);
    if (r < 0)
        return r;
    st->st_mode = S_IFREG | (mode & 07777);
    st->st_uid = ctx()->uid;
    st->st_gid = ctx()->gid;
    st->st_nlink = 1;
    return 0;
}

/* A handle on a daemon-held file (scratch.h): a writer of vm's
 * domain.xml (name NULL) or the scratch file name, opened, or made
 * (create). Its attributes in st when st is not NULL. */
static int open_held(const char *vm, const char *name, bool create, mode_t mode,
                     struct fuse_file_info *fi, struct stat *st)
{
    struct handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->f.fd = -1;
    h->writer_mark = -1;
    h->uid = ctx()->uid;
    int r = fdquota_take(h->uid);
    if (r < 0) {
        free(h);
        return r;
    }
    snprintf(h->vm, sizeof(h->vm), "%s", vm);
    int fd = -1;
    if (name) {
        h->scratch = true;
        snprintf(h->sname, sizeof(h->sname), "%s", name);
        r = create ? scratch_create(vm, name, mode, ctx()->uid, ctx()->gid, fi->flags & O_EXCL, &fd)
                   : scratch_open(vm, name, fi->flags, &fd);
    } else {
        struct vpath dx = { .kind = V_DOMXML };
        snprintf(dx.vm, sizeof(dx.vm), "%s", vm);
        h->domxml = true;
        r = view_getattr(st_of(), &dx, &h->shown);
        if (r == 0 && create)
            r = -EEXIST;
        else if (r == -ENOENT && create && (r = scratch_domxml_creatable(st_of(), vm)) == 0)
            r = new_domxml_attr(vm, mode, &h->shown);
        bool empty = create || (fi->flags & O_TRUNC);
        if (r == 0)
            r = scratch_domxml_copy(st_of(), vm, empty, &fd);
        h->dirty = empty;
        struct stat ms;
        /* A new one is its scratch copy until the commit (node identity). */
        if (r == 0 && create && fstat(fd, &ms) == 0) {
            h->shown.st_dev = ms.st_dev;
            h->shown.st_ino = ms.st_ino;
        }
    }
    if (r < 0) {
        fdquota_put(h->uid);
        free(h);
        return r;
    }
    h->f.fd = fd;
    readahead_init(&h->ra, false);
    fi->direct_io = 1; /* its size and text are the daemon's, not a cache's */
    fi->keep_cache = 0;
    fi->fh = (uintptr_t)h;
    return st ? ops_handle_attr(h, st) : 0;
}

static int open_handle(const char *path, struct fuse_file_info *fi);

/* cp img VM/disks/<dev>.qcow2, and cp -a of snapshots/ into a VM being
 * imported (import.h): the file is made, then opened as any file of the
 * view is (an active image: a writer). */
static int create_import_file(const char *path, const struct vpath *vp, mode_t mode,
                              struct fuse_file_info *fi, struct stat *st)
{
    struct snap_ctx c = ops_snap_ctx(ops_req);
    char msg[MSG_MAX], file[DEV_MAX_LEN + 8];
    int fd, r;
    if (vp->kind != V_DISK && !vm_importing(st_of(), vp->vm))
        return NSOP_NOT_MINE; /* a snapshot's: read-only (refusal.h) */
    if (vp->kind == V_DISK) {
        r = disk_image_new(&c, vp->vm, vp->dev, mode, &fd, msg, sizeof(msg));
    } else {
        if (vp->kind == V_SNAP_IMAGE)
            snprintf(file, sizeof(file), "%s.qcow2", vp->dev);
        else
            snprintf(file, sizeof(file), "snapshot.xml");
        r = snap_file_new(&c, vp->vm, vp->snap, file, mode, &fd, msg, sizeof(msg));
    }
    if (r < 0) {
        log_refusal("create", path, msg);
        return r;
    }
    close(fd);
    int flags = fi->flags;
    fi->flags &= ~(O_CREAT | O_EXCL | O_TRUNC);
    r = open_handle(path, fi);
    fi->flags = flags;
    if (r == 0 && (r = view_getattr(st_of(), vp, st)) < 0)
        ops_release_handle(ops_h_of(fi));
    return r;
}

int ops_create_handle(const char *path, mode_t mode, struct fuse_file_info *fi, struct stat *st)
{
    struct vpath vp;
    char vm[NAME_MAX_LEN + 1], name[SCRATCH_NAME_MAX + 1];
    if (ops_parse(path, &vp) == 0 &&
        (vp.kind == V_DISK || vp.kind == V_SNAP_IMAGE || vp.kind == V_SNAP_XML))
        return create_import_file(path, &vp, mode, fi, st);
    if (ops_parse(path, &vp) == 0)
        return vp.kind == V_DOMXML ? open_held(vp.vm, NULL, true, mode, fi, st) : NSOP_NOT_MINE;
    if (!scratch_path(path, vm, name))
        return NSOP_NOT_MINE;
    struct vpath dir = { .kind = V_VM };
    struct stat dst;
    snprintf(dir.vm, sizeof(dir.vm), "%s", vm);
    int r = view_getattr(st_of(), &dir, &dst);
    return r < 0 ? r : open_held(vm, name, true, mode, fi, st);
}

int ops_handle_attr(void *hp, void *stp)
{
    struct handle *h = hp;
    struct stat *st = stp, m;
    if (fstat(h->f.fd, &m) < 0)
        return -errno;
    if (h->scratch) {
        if (scratch_stat(h->vm, h->sname, st) == 0)
            return 0;
        *st = m; /* removed or renamed meanwhile: its own */
        st->st_mode = S_IFREG | 0600;
        return 0;
    }
    /* Nothing left to commit: the definition the store has now (what
     * this writer made it, or what it was). */
    struct vpath dx = { .kind = V_DOMXML };
    snprintf(dx.vm, sizeof(dx.vm), "%s", h->vm);
    if (!h->dirty && view_getattr(st_of(), &dx, st) == 0)
        return 0;
    *st = h->shown;
    st->st_size = m.st_size;
    st->st_blocks = m.st_blocks;
    if (h->written)
        st->st_mtim = m.st_mtim;
    return 0;
}

static int open_handle(const char *path, struct fuse_file_info *fi)
{
    struct vpath vp;
    int r = ops_parse(path, &vp);
    char vm[NAME_MAX_LEN + 1], name[SCRATCH_NAME_MAX + 1];
    if (r < 0 && scratch_path(path, vm, name))
        return open_held(vm, name, false, 0, fi, NULL);
    if (r < 0)
        return r;
    if (vp.kind == V_DOMXML && writing(fi->flags))
        return open_held(vp.vm, NULL, false, 0, fi, NULL);
    struct handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->f.fd = -1;
    if (vp.kind == V_JOBS) {
        if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
            free(h);
            return -EROFS;
        }
        struct store_cred cred;
        ops_cred(ops_req, &cred);
        h->text = jobs_render_for(may_see_vm, &cred, &h->len);
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
        /* A writer of a snapshot image of a VM being imported (import.h)
         * counts as one of its disk: the definition that checks the
         * image waits for (is refused while) the copy still writing it. */
        bool writer = writing(fi->flags) &&
                      (vp.kind == V_DISK ||
                       (vp.kind == V_SNAP_IMAGE && vm_importing(st_of(), vp.vm)));
        h->writer_mark = -1;
        if (writer && (r = writer_begin(st_of(), vp.vm, vp.dev, path, &h->writer_mark)) < 0) {
            fdquota_put(h->uid);
            free(h);
            return r;
        }
        if ((r = view_open(st_of(), &vp, fi->flags, &h->f)) < 0) {
            if (writer)
                writer_end(vp.vm, vp.dev, h->writer_mark);
            fdquota_put(h->uid);
            free(h);
            return r;
        }
        if (writer)
            h->writer = vp;
        else if (vp.kind == V_DISK || vp.kind == V_SNAP_IMAGE)
            readers_add(h->f.fd, &h->reader);
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

void ops_release_handle(struct handle *h)
{
    if (h->f.fd >= 0) {
        readahead_stop(&h->ra); /* its thread uses h until joined */
        close(h->f.fd);
        fdquota_put(h->uid);
    }
    if (h->writer.kind == V_DISK || h->writer.kind == V_SNAP_IMAGE)
        writer_end(h->writer.vm, h->writer.dev, h->writer_mark);
    readers_drop(&h->reader);
    free(h->text);
    free(h);
}

void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    ops_req = req;
    char path[PATH_MAX];
    int r = nodetable_path(ops_nodes, ino, path, sizeof(path));
    if (r == 0)
        r = open_handle(path, fi);
    struct handle *h = r == 0 ? ops_h_of(fi) : NULL;
    /* The file opened must be the node's: when the store has given its
     * name to another file since the lookup, ESTALE makes the kernel
     * look the name up again and open the new node. */
    struct stat st;
    struct node_ident now;
    /* A writer of domain.xml holds the daemon's copy: the node stays the
     * store file's until the commit replaces it. */
    if (h && h->f.fd >= 0 && !h->domxml) {
        if (fstat(h->f.fd, &st) < 0) {
            r = -errno;
        } else {
            node_ident_of(&st, &now);
            if (!nodetable_confirm(ops_nodes, ino, &now))
                r = -ESTALE;
        }
    }
    if (r == 0)
        r = nodetable_open(ops_nodes, ino, h, h->writer.kind == V_DISK);
    /* Only a writer of domain.xml does anything at close(2). */
    if (r == 0)
        fi->noflush = !h->domxml;
    if (r < 0) {
        if (h)
            ops_release_handle(h);
        fuse_reply_err(req, -r);
        return;
    }
    if (fuse_reply_open(req, fi) < 0) { /* the open was interrupted */
        nodetable_close(ops_nodes, ino, h);
        ops_release_handle(h);
    }
}

/* A writer of domain.xml commits what it wrote (scratch_commit): at
 * each flush (close(2) of any of its descriptors, which returns the
 * refusal), fsync, and the last release (no one to tell: logged). An
 * O_TRUNC open closed before its first write (the shell's own close of
 * `> domain.xml`, before the program writes) commits nothing. */
static int commit_held(fuse_req_t req, struct handle *h, bool last)
{
    if (!h->domxml || !h->dirty)
        return 0;
    struct stat st;
    if (!h->written && fstat(h->f.fd, &st) == 0 && st.st_size == 0) {
        if (last)
            log_msg(LOG_NOTICE, "/%s/domain.xml was emptied and never written: its definition "
                                "is unchanged", h->vm);
        return 0;
    }
    h->dirty = false;
    struct snap_ctx c = ops_snap_ctx(req);
    char msg[MSG_MAX];
    int r = scratch_commit(&c, h->vm, h->f.fd, msg, sizeof(msg));
    if (r == 0)
        ops_after_merge(h->vm);
    return r;
}

void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    ops_req = req;
    ops_reply_status(req, commit_held(req, ops_h_of(fi), false));
}

void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    ops_req = req;
    struct handle *h = ops_h_of(fi);
    commit_held(req, h, true);
    nodetable_close(ops_nodes, ino, h); /* before it is freed: fstat may use it */
    ops_release_handle(h);
    fuse_reply_err(req, 0);
}

void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = ops_h_of(fi);
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

void ll_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *buf, off_t off,
                  struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = ops_h_of(fi);
    ssize_t r;
    bool held = h->domxml || h->scratch;
    if (h->f.fd < 0) {
        r = -EBADF;
    } else if (held && (unsigned long long)off + fuse_buf_size(buf) > SCRATCH_MAX_BYTES) {
        r = -EFBIG;
    } else if (h->direct) {
        r = write_direct(h->f.fd, buf, off);
    } else {
        struct fuse_bufvec dst = FUSE_BUFVEC_INIT(fuse_buf_size(buf));
        dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        dst.buf[0].fd = h->f.fd;
        dst.buf[0].pos = off;
        r = fuse_buf_copy(&dst, buf, FUSE_BUF_SPLICE_NONBLOCK);
    }
    if (r >= 0 && held)
        h->dirty = h->written = true;
    if (r < 0)
        fuse_reply_err(req, (int)-r);
    else
        fuse_reply_write(req, (size_t)r);
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
void ll_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lk)
{
    (void)ino;
    struct handle *h = ops_h_of(fi);
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

void ll_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lk,
              int sleep)
{
    (void)ino;
    ops_req = req;
    struct handle *h = ops_h_of(fi);
    if (h->f.fd < 0) {
        fuse_reply_err(req, ENOLCK);
        return;
    }
    struct flock l = *lk;
    l.l_pid = 0;
    int r = 0;
    if (sleep) /* never a blocking fcntl in a worker (lockwait.h) */
        r = lockwait_ofd(h->f.fd, &l, ctx()->uid, ops_request_cancelled, req);
    else if (fcntl(h->f.fd, F_OFD_SETLK, &l) < 0)
        r = -errno;
    ops_reply_status(req, r);
}

void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    ops_req = req;
    struct handle *h = ops_h_of(fi);
    int r = 0;
    if (h->domxml)
        r = commit_held(req, h, false); /* durable once committed */
    else if (h->f.fd >= 0 && (datasync ? fdatasync(h->f.fd) : fsync(h->f.fd)) < 0)
        r = -errno;
    ops_reply_status(req, r);
}

void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = ops_h_of(fi);
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

void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                  struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = ops_h_of(fi);
    int r = h->f.fd < 0 ? -EBADF : fallocate(h->f.fd, mode, off, len) < 0 ? -errno : 0;
    ops_reply_status(req, r);
}
