/* opsint: what the files of the FUSE layer share. ops.c: the session,
 * the nodes the kernel holds and their attributes; opsdir.c: directory
 * listings; opsfile.c: open files; opsns.c: namespace changes, which the
 * core decides. Nothing here is for the core library. */
#ifndef VMSTOREFS_OPSINT_H
#define VMSTOREFS_OPSINT_H

#include "ops.h"

#include "nodetable.h"
#include "readahead.h"
#include "view.h"
#include "vpath.h"

#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>

/* One second: long enough that `ls -l` and sequential reads do not ask
 * again for every block, short enough that changes made in the store
 * directly (a qemu growing an image) show up promptly. The kernel's
 * auto_inval_data then drops cached pages whose file changed. Lookups
 * that find nothing are not cached (a snapshot may appear any time). */
#define TIMEOUT 1.0

/* What readdir reports as an entry's inode: "unknown", as libfuse's path
 * API does; stat gives the node's. */
#define UNKNOWN_INO 0xffffffffu

extern struct vfs *ops_vfs;
extern struct fuse_session *ops_session;
extern struct nodetable *ops_nodes;
/* The request this thread is serving: who asks, and whether they gave up. */
extern __thread fuse_req_t ops_req;

static inline const struct store *st_of(void)
{
    return &ops_vfs->store;
}

static inline const struct fuse_ctx *ctx(void)
{
    return fuse_req_ctx(ops_req);
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

/* ops.c */
struct handle *ops_h_of(const struct fuse_file_info *fi);
int ops_parse(const char *path, struct vpath *vp);
int ops_ghost_attr(const char *path, struct stat *st);
int ops_path_attr(const char *path, struct stat *st);
void ops_reply_entry(fuse_req_t req, fuse_ino_t parent, const char *name, struct stat *st,
                     double timeout);
void ops_reply_status(fuse_req_t req, int r);
void ops_reply_path_entry(fuse_req_t req, fuse_ino_t parent, const char *name, const char *path,
                          int r);

/* opsfile.c */
int ops_writer_begin(const char *path, const struct vpath *vp, int *mark);
void ops_writer_end(const struct vpath *vp, int mark);
void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void ll_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *buf, off_t off,
                  struct fuse_file_info *fi);
bool ops_request_cancelled(void *arg);
void ll_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lk);
void ll_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lk,
              int sleep);
void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                  struct fuse_file_info *fi);

/* opsdir.c */
void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);

/* opsns.c */
void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags);
void ll_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name);
void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi);
void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags);
void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
