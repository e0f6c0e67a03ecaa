/* session: the FUSE layer, made of its handlers (handlers.h). It maps
 * the kernel's requests (on the nodes of nodetable.h) to core calls
 * (vpath, view, nsop, jobs) and core results to replies; no store logic
 * lives here. */
#ifndef VMSTOREFS_FUSE_SESSION_H
#define VMSTOREFS_FUSE_SESSION_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "store/store.h"

struct vfs {
    struct store store;
    size_t max_read; /* readsize.h: the same in the mount options and init */
};

/* The session serving VFS (one per process); NULL when libfuse refuses
 * the arguments (it says why on stderr) or memory is short. */
struct fuse_session *ops_session_new(struct fuse_args *args, struct vfs *vfs);
void ops_session_destroy(struct fuse_session *se);

#endif
