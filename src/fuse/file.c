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
#include "fuse/lockwait.h"
#include "util/log.h"
#include "store/vmlock.h"
#include "store/vmstate.h"

#include <errno.h>
#include <stdint.h>
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

static int open_handle(const char *path, struct fuse_file_info *fi)
{
    struct vpath vp;
    int r = ops_parse(path, &vp);
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
        bool writer =
            vp.kind == V_DISK && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC));
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

/* Everything an open handle holds, given back. */
static void release_handle(struct handle *h)
{
    if (h->f.fd >= 0) {
        readahead_stop(&h->ra); /* its thread uses h until joined */
        close(h->f.fd);
        fdquota_put(h->uid);
    }
    if (h->writer.kind == V_DISK)
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
    if (h && h->f.fd >= 0) {
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
    if (r < 0) {
        if (h)
            release_handle(h);
        fuse_reply_err(req, -r);
        return;
    }
    if (fuse_reply_open(req, fi) < 0) { /* the open was interrupted */
        nodetable_close(ops_nodes, ino, h);
        release_handle(h);
    }
}

void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct handle *h = ops_h_of(fi);
    nodetable_close(ops_nodes, ino, h); /* before it is freed: fstat may use it */
    release_handle(h);
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
    struct handle *h = ops_h_of(fi);
    int r = 0;
    if (h->f.fd >= 0 && (datasync ? fdatasync(h->f.fd) : fsync(h->f.fd)) < 0)
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
