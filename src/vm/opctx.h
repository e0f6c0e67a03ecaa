/* opctx: who asks for a change to the store, and how they give up.
 * Every operation of ops/ (and the VM layer's lock-and-recover prologue,
 * vmmodel.h) takes one; a front end fills it: the FUSE layer with the
 * request's pid and its interrupt test, vmstorefs-ctl with its own pid
 * and SIGINT. */
#ifndef VMSTOREFS_OPCTX_H
#define VMSTOREFS_OPCTX_H

#include "store/store.h"
#include "store/vmlock.h"

#include <sys/types.h>

struct snap_ctx {
    const struct store *s;
    vmlock_cancelled_fn cancelled; /* a FUSE interrupt while waiting for the lock */
    void *arg;
    pid_t pid; /* the process asking (0: unknown) */
};

#endif
