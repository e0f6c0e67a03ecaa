/* opctx: who asks for a change to the store, and how they give up.
 * Every operation of ops/ (and the VM layer's lock-and-recover prologue,
 * vmmodel.h) takes one; a front end fills it: the FUSE layer with the
 * request's pid, ids and groups and its interrupt test, vmstorefs-ctl
 * with its own and SIGINT. */
#ifndef VMSTOREFS_OPCTX_H
#define VMSTOREFS_OPCTX_H

#include "store/perm.h"
#include "store/store.h"
#include "store/vmlock.h"

#include <sys/types.h>

struct snap_ctx {
    const struct store *s;
    vmlock_cancelled_fn cancelled; /* a FUSE interrupt while waiting for the lock */
    void *arg;
    pid_t pid; /* the process asking (0: unknown) */
    /* Its ids: what a new VM needs (clone.h) and whom it belongs to.
     * All zero (left out) is root. */
    struct store_cred cred;
};

#endif
