/* node: what the handler files of the FUSE layer share (node.c: the
 * nodes the kernel holds, their attributes, the session's state; dir.c:
 * listings; file.c: open files; ns.c: namespace changes, which the core
 * decides). session.c, at the top, puts the handlers in libfuse's table.
 * Nothing here is for the core library. */
#ifndef VMSTOREFS_FUSE_NODE_H
#define VMSTOREFS_FUSE_NODE_H

#include "fuse/readers.h"
#include "fuse/session.h"

#include "fuse/nodetable.h"
#include "store/perm.h"
#include "datapath/readahead.h"
#include "view/scratch.h"
#include "view/view.h"
#include "view/vpath.h"

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
    struct reader_key reader; /* an image open for reading (readers.h) */
    char *text;
    size_t len;
    /* Daemon-held files (scratch.h): a writer of <vm>/domain.xml (f.fd its
     * scratch copy, committed at flush, fsync or release) or a scratch
     * file beside it (sname). */
    bool domxml, scratch;
    bool dirty; /* domxml: changed since the last commit */
    bool written; /* domxml: a byte was written */
    char vm[NAME_MAX_LEN + 1];
    char sname[SCRATCH_NAME_MAX + 1];
    struct stat shown; /* domxml: the attributes it shows, but size and mtime */
};

/* node.c */
struct handle *ops_h_of(const struct fuse_file_info *fi);
int ops_parse(const char *path, struct vpath *vp);
int ops_ghost_attr(const char *path, struct stat *st);
int ops_path_attr(const char *path, struct stat *st);
void ops_reply_entry(fuse_req_t req, fuse_ino_t parent, const char *name, struct stat *st,
                     double timeout);
void ops_reply_status(fuse_req_t req, int r);
void ops_reply_path_entry(fuse_req_t req, fuse_ino_t parent, const char *name, const char *path,
                          int r);

/* The context of the core's operations (opctx.h) for req. */
struct snap_ctx ops_snap_ctx(fuse_req_t req);

/* file.c: a file made by create(2) (scratch.h: domain.xml of a VM that
 * has none, or a scratch file): its handle in fi and its attributes;
 * NSOP_NOT_MINE for any other path. */
int ops_create_handle(const char *path, mode_t mode, struct fuse_file_info *fi, struct stat *st);
/* Everything an open handle holds, given back (release, or a create
 * whose reply failed). */
void ops_release_handle(struct handle *h);
/* Attributes of an open handle (the file it opened). */
int ops_handle_attr(void *h, void *st);
/* Attribute changes on a daemon-held file (domxml or scratch handle, or
 * a scratch path): 1 when h is none of them. */
int ops_change_scratch(struct handle *h, const char *path, const struct stat *attr, int to_set);

/* Who sends req: its uid, gid and supplementary groups (read from /proc
 * by libfuse; none when they cannot be read, which only ever denies). */
void ops_cred(fuse_req_t req, struct store_cred *out);

/* A wait (a lock through the mount, another operation's VM lock, a
 * clone's copy) gives up when this says so; ARG is the request. */
bool ops_request_cancelled(void *arg);

#endif
