/* perm: the owner and mode of what the daemon creates, and what a caller
 * may do (the permission model; README, "Permissions").
 *
 * The daemon runs as root and never loosens a permission: a file it
 * writes takes the owner, group and permission bits of the file it
 * replaces or derives from (an overlay those of the active image it
 * freezes, XML those of the VM's domain.xml), a directory those of the
 * directory it is made in; a new VM (a clone) belongs to the caller. Only
 * the permission bits (0777) are carried over, never set-id or sticky
 * bits: a root-owned copy of a tenant's set-uid file must not be one. */
#ifndef VMSTOREFS_PERM_H
#define VMSTOREFS_PERM_H

#include "store/store.h"

#include <stdbool.h>
#include <sys/types.h>

struct store_perm {
    uid_t uid;
    gid_t gid;
    mode_t mode; /* permission bits only */
};

/* path's owner, group and permission bits (beneath the root, no links). */
int perm_of(const struct store *s, const char *path, struct store_perm *out);
/* The daemon's own, for its private files: euid, egid, mode. */
struct store_perm perm_private(mode_t mode);
/* The file or directory open on fd gets p (chown first: it clears set-id
 * bits, which chmod then leaves off). */
int perm_fd(int fd, const struct store_perm *p);
/* path (beneath the root, no links) gets p, or like's owner and mode. */
int perm_set(const struct store *s, const char *path, const struct store_perm *p);
int perm_like(const struct store *s, const char *path, const char *like);

/* Who asks (a FUSE request's uid, gid and groups; vmstorefs-ctl's own).
 * All zero (a front end that says nothing) is root. */
#define CRED_MAX_GROUPS 256
struct store_cred {
    uid_t uid;
    gid_t gid;
    size_t ngroups;
    gid_t groups[CRED_MAX_GROUPS];
};

/* Would the kernel grant cred `mode` (R_OK, W_OK, X_OK ored) on path, as
 * for a system call of that caller? Asked of the kernel itself: a child
 * takes cred's ids and groups and calls faccessat (modes, ACLs, the
 * capabilities root keeps). Root may do anything. */
bool perm_cred_may(const struct store *s, const struct store_cred *cred, const char *path,
                   int mode);

#endif
