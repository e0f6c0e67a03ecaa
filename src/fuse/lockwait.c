#include "config.h"

#include "fuse/lockwait.h"

#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <time.h>

static atomic_int waiting;

/* Waiters per user (root not counted): at most LOCKWAIT_MAX entries. */
static struct {
    uid_t uid;
    int n;
} per_user[LOCKWAIT_MAX];
static pthread_mutex_t per_user_lock = PTHREAD_MUTEX_INITIALIZER;

static bool user_enter(uid_t uid)
{
    if (uid == 0)
        return true;
    bool ok = false;
    pthread_mutex_lock(&per_user_lock);
    int free_slot = -1, i;
    for (i = 0; i < LOCKWAIT_MAX; i++) {
        if (per_user[i].n > 0 && per_user[i].uid == uid)
            break;
        if (per_user[i].n == 0 && free_slot < 0)
            free_slot = i;
    }
    if (i == LOCKWAIT_MAX)
        i = free_slot;
    if (i >= 0 && per_user[i].n < LOCKWAIT_MAX_PER_USER) {
        per_user[i].uid = uid;
        per_user[i].n++;
        ok = true;
    }
    pthread_mutex_unlock(&per_user_lock);
    return ok;
}

static void user_leave(uid_t uid)
{
    if (uid == 0)
        return;
    pthread_mutex_lock(&per_user_lock);
    for (int i = 0; i < LOCKWAIT_MAX; i++) {
        if (per_user[i].n > 0 && per_user[i].uid == uid) {
            per_user[i].n--;
            break;
        }
    }
    pthread_mutex_unlock(&per_user_lock);
}

int lockwait_ofd(int fd, struct flock *lk, uid_t uid, lockwait_stop_fn stop, void *ctx)
{
    if (fcntl(fd, F_OFD_SETLK, lk) == 0)
        return 0;
    if (errno != EAGAIN && errno != EACCES)
        return -errno;
    if (!user_enter(uid)) {
        char subject[32];
        snprintf(subject, sizeof(subject), "lockwait uid %lu", (unsigned long)uid);
        log_once(LOG_WARNING, subject, "full",
                 "uid %lu has %d blocking lock requests waiting: further ones get ENOLCK",
                 (unsigned long)uid, LOCKWAIT_MAX_PER_USER);
        return -ENOLCK;
    }
    if (atomic_fetch_add(&waiting, 1) >= LOCKWAIT_MAX) {
        atomic_fetch_sub(&waiting, 1);
        user_leave(uid);
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
    user_leave(uid);
    return r;
}
