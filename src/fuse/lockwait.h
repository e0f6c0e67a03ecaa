/* lockwait: a blocking lock request that never blocks a server thread
 * for good.
 *
 * F_SETLKW through the mount used to become a blocking F_OFD_SETLKW in a
 * FUSE worker: a few waiters took every worker, and then nothing else was
 * served (not even the holder's unlock, nor the interrupt that would let
 * a waiter go). Here a wait is a loop of non-blocking attempts with short
 * sleeps, which asks between attempts whether to give up (the caller was
 * interrupted, the session is ending), and at most LOCKWAIT_MAX requests
 * wait at once, so the server always keeps threads for everything else.
 * FUSE-free: the caller passes its "give up?" question in. */
#ifndef VMSTOREFS_LOCKWAIT_H
#define VMSTOREFS_LOCKWAIT_H

#include <fcntl.h>
#include <stdbool.h>
#include <sys/types.h>

/* Waiters at once; the server runs this many threads on top of those it
 * serves with (main.c), so waiters never take the last ones. Each user
 * but root may fill a quarter of them, so one user's waiters cannot
 * leave every other user's lock requests refused. */
#define LOCKWAIT_MAX 64
#define LOCKWAIT_MAX_PER_USER (LOCKWAIT_MAX / 4)
/* Sleeps between attempts grow from the first to the last (ns). */
#define LOCKWAIT_FIRST_NS 1000000L
#define LOCKWAIT_LAST_NS 50000000L

typedef bool (*lockwait_stop_fn)(void *ctx);

/* F_OFD_SETLKW on fd for user uid, done as F_OFD_SETLK retried until
 * granted. Returns 0 when granted, -EINTR once stop(ctx) says so, -ENOLCK
 * when LOCKWAIT_MAX requests wait already (or the user's share of them),
 * or the -errno of a failed attempt (other than the lock being held). */
int lockwait_ofd(int fd, struct flock *lk, uid_t uid, lockwait_stop_fn stop, void *ctx);

#endif
