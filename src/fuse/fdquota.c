#include "config.h"

#include "fuse/fdquota.h"

#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Users with files open: few at a time, so a list is enough. An entry
 * goes away when its last file closes. */
struct user {
    struct user *next;
    uid_t uid;
    long open;
};
static struct user *users;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long cap = 256;
static long total_cap = 768; /* all users but root together */
static long total_open;

void fdquota_init(long limit)
{
    pthread_mutex_lock(&lock);
    cap = limit / 4 > 1 ? limit / 4 : 1;
    total_cap = limit / 2 > 1 ? limit / 2 : 1;
    pthread_mutex_unlock(&lock);
}

long fdquota_cap(void)
{
    pthread_mutex_lock(&lock);
    long c = cap;
    pthread_mutex_unlock(&lock);
    return c;
}

long fdquota_setup(char *msg, size_t msgsz)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        snprintf(msg, msgsz, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        fdquota_init(1024);
        return -errno;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t soft = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            int e = errno;
            snprintf(msg, msgsz, "cannot raise the open file limit from %llu to %llu: %s",
                     (unsigned long long)soft, (unsigned long long)rl.rlim_max, strerror(e));
            fdquota_init((long)soft);
            return -e;
        }
    }
    long limit = rl.rlim_cur > (rlim_t)0x7fffffff ? 0x7fffffff : (long)rl.rlim_cur;
    fdquota_init(limit);
    return limit;
}

static struct user **find(uid_t uid)
{
    struct user **u = &users;
    while (*u && (*u)->uid != uid)
        u = &(*u)->next;
    return u;
}

int fdquota_take(uid_t uid)
{
    if (uid == 0)
        return 0;
    int r = 0;
    long c;
    pthread_mutex_lock(&lock);
    c = cap;
    struct user **u = find(uid);
    if (!*u && (*u = calloc(1, sizeof(**u))) != NULL)
        (*u)->uid = uid;
    if (!*u)
        r = -ENOMEM;
    else if ((*u)->open >= cap || total_open >= total_cap)
        r = -EMFILE;
    else {
        (*u)->open++;
        total_open++;
    }
    pthread_mutex_unlock(&lock);
    if (r == -EMFILE) {
        char subject[32];
        snprintf(subject, sizeof(subject), "uid %lu", (unsigned long)uid);
        log_once(LOG_WARNING, subject, "fd cap",
                 "uid %lu has %ld files open through the mount, its cap: further opens get "
                 "EMFILE",
                 (unsigned long)uid, c);
    }
    return r;
}

void fdquota_put(uid_t uid)
{
    if (uid == 0)
        return;
    pthread_mutex_lock(&lock);
    struct user **u = find(uid);
    if (*u && total_open > 0)
        total_open--;
    if (*u && --(*u)->open <= 0) {
        struct user *gone = *u;
        *u = gone->next;
        free(gone);
    }
    pthread_mutex_unlock(&lock);
}
