/* session: the top of the FUSE layer. The kernel's requests reach the
 * handlers through this table (nodes and attributes: node.c; listings:
 * dir.c; open files: file.c; namespace changes: ns.c); the session is
 * made and destroyed here. Nothing below includes this file. */
#include "config.h"

#include "fuse/session.h"

#include "fuse/handlers.h"
#include "fuse/node.h"
#include "fuse/nodetable.h"

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
    conn->max_read = (unsigned)ops_vfs->max_read;
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
    .fsyncdir = ll_fsyncdir,
    .open = ll_open,
    .read = ll_read,
    .write_buf = ll_write_buf,
    .fsync = ll_fsync,
    .getlk = ll_getlk,
    .setlk = ll_setlk,
    .flush = ll_flush,
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
    if (!(ops_nodes = nodetable_new()))
        return NULL;
    ops_vfs = v;
    ops_session = fuse_session_new(args, &ll_ops, sizeof(ll_ops), v);
    if (!ops_session) {
        nodetable_free(ops_nodes);
        ops_nodes = NULL;
    }
    return ops_session;
}

void ops_session_destroy(struct fuse_session *se)
{
    fuse_session_destroy(se);
    nodetable_free(ops_nodes);
    ops_nodes = NULL;
    ops_session = NULL;
}
