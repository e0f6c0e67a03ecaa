/* ops: the FUSE layer. It maps mount paths to core calls (vpath, view,
 * jobs) and core results to replies; no store logic lives here. */
#ifndef VMSTOREFS_OPS_H
#define VMSTOREFS_OPS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

#include "store.h"

struct vfs {
    struct store store;
    size_t max_read; /* readsize.h: the same in the mount options and init */
};

extern const struct fuse_operations vmstorefs_ops;

#endif
