#include "config.h"

#include "lockwait.h"

#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

static atomic_int waiting;

int lockwait_ofd(int fd, struct flock *lk, lockwait_stop_fn stop, void *ctx)
{
    if (fcntl(fd, F_OFD_SETLK, lk) == 0)
        return 0;
    if (errno != EAGAIN && errno != EACCES)
        return -errno;
    if (atomic_fetch_add(&waiting, 1) >= LOCKWAIT_MAX) {
        atomic_fetch_sub(&waiting, 1);
        log_once(LOG_WARNING, "lockwait", "full",
                 "%d blocking lock requests wait already: further ones get ENOLCK", LOCKWAIT_MAX);
        return -ENOLCK;
    }
    long ns = LOCKWAIT_FIRST_NS;
    int r;
    for (;;) {
        if (stop(ctx)) {
            r = -EINTR;
            break;
        }
        struct timespec t = { 0, ns };
        nanosleep(&t, NULL);
        ns = ns * 2 < LOCKWAIT_LAST_NS ? ns * 2 : LOCKWAIT_LAST_NS;
        if (fcntl(fd, F_OFD_SETLK, lk) == 0) {
            r = 0;
            break;
        }
        if (errno != EAGAIN && errno != EACCES) {
            r = -errno;
            break;
        }
    }
    atomic_fetch_sub(&waiting, 1);
    return r;
}
