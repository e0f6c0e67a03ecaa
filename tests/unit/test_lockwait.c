/* Unit tests for lockwait: a blocking lock request is a loop that gives
 * up when asked, is granted once the holder lets go, and only
 * LOCKWAIT_MAX of them wait at once. */
#include "config.h"

#include "check.h"
#include "fuse/lockwait.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char file[] = "/tmp/test_lockwait.XXXXXX";

static int open_file(void)
{
    int fd = open(file, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        check_failures++;
    return fd;
}

static struct flock wrlck(void)
{
    struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    return l;
}

/* Takes the whole file on a descriptor of its own: the holder. */
static int hold(void)
{
    int fd = open_file();
    struct flock l = wrlck();
    CHECK(fcntl(fd, F_OFD_SETLK, &l) == 0);
    return fd;
}

static bool after_three(void *ctx)
{
    return ++*(int *)ctx >= 3;
}

static bool never(void *ctx)
{
    (void)ctx;
    return false;
}

static bool at_once(void *ctx)
{
    (void)ctx;
    return true;
}

static void test_interrupted(void)
{
    int holder = hold(), fd = open_file(), asked = 0;
    struct flock l = wrlck();
    CHECK_INT(lockwait_ofd(fd, &l, 0, after_three, &asked), -EINTR);
    CHECK_INT(asked, 3);
    close(fd);
    close(holder);
}

static void *release_later(void *p)
{
    struct timespec t = { 0, 100000000 };
    nanosleep(&t, NULL);
    close(*(int *)p);
    return NULL;
}

static void test_granted_on_release(void)
{
    int holder = hold(), fd = open_file();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, release_later, &holder) == 0);
    struct flock l = wrlck();
    CHECK_INT(lockwait_ofd(fd, &l, 0, never, NULL), 0);
    pthread_join(t, NULL);
    /* fd holds it now: another descriptor sees the conflict. */
    int other = open_file();
    struct flock q = wrlck();
    CHECK(fcntl(other, F_OFD_GETLK, &q) == 0);
    CHECK_INT(q.l_type, F_WRLCK);
    close(other);
    close(fd);
}

/* Free lock: no wait, no slot taken even if the caller would stop. */
static void test_free_lock(void)
{
    int fd = open_file();
    struct flock l = wrlck();
    CHECK_INT(lockwait_ofd(fd, &l, 0, at_once, NULL), 0);
    close(fd);
}

static atomic_bool stop_all;

static bool when_told(void *ctx)
{
    (void)ctx;
    return atomic_load(&stop_all);
}

static void *wait_one(void *p)
{
    int fd = open_file();
    struct flock l = wrlck();
    *(int *)p = lockwait_ofd(fd, &l, 0, when_told, NULL);
    close(fd);
    return NULL;
}

/* Asks as uid until the waiters fill up (they start on their own
 * threads): the answer then, -ENOLCK, or the last one after 10 s. */
static int refused_once_full(int fd, uid_t uid)
{
    int r = 0;
    for (int i = 0; i < 1000 && r != -ENOLCK; i++) {
        struct flock l = wrlck();
        r = lockwait_ofd(fd, &l, uid, at_once, NULL);
        struct timespec s = { 0, 10000000 };
        nanosleep(&s, NULL);
    }
    return r;
}

static void test_cap(void)
{
    int holder = hold(), results[LOCKWAIT_MAX];
    pthread_t t[LOCKWAIT_MAX];
    for (int i = 0; i < LOCKWAIT_MAX; i++)
        CHECK(pthread_create(&t[i], NULL, wait_one, &results[i]) == 0);
    /* Once all wait, one more is refused at once. */
    int fd = open_file();
    CHECK_INT(refused_once_full(fd, 0), -ENOLCK);
    atomic_store(&stop_all, true);
    for (int i = 0; i < LOCKWAIT_MAX; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(results[i], -EINTR);
    }
    /* The slots are free again. */
    struct flock l = wrlck();
    CHECK_INT(lockwait_ofd(fd, &l, 0, at_once, NULL), -EINTR);
    close(fd);
    close(holder);
}

static uid_t waiter_uid = 1000;

static void *wait_as_user(void *p)
{
    int fd = open_file();
    struct flock l = wrlck();
    *(int *)p = lockwait_ofd(fd, &l, waiter_uid, when_told, NULL);
    close(fd);
    return NULL;
}

/* One user fills a quarter of the waiter slots at most; others go on. */
static void test_per_user_cap(void)
{
    atomic_store(&stop_all, false);
    int holder = hold(), results[LOCKWAIT_MAX_PER_USER];
    pthread_t t[LOCKWAIT_MAX_PER_USER];
    for (int i = 0; i < LOCKWAIT_MAX_PER_USER; i++)
        CHECK(pthread_create(&t[i], NULL, wait_as_user, &results[i]) == 0);
    int fd = open_file();
    CHECK_INT(refused_once_full(fd, 1000), -ENOLCK);
    struct flock l = wrlck();
    CHECK_INT(lockwait_ofd(fd, &l, 1001, at_once, NULL), -EINTR); /* another user waits */
    atomic_store(&stop_all, true);
    for (int i = 0; i < LOCKWAIT_MAX_PER_USER; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(results[i], -EINTR);
    }
    l = wrlck();
    CHECK_INT(lockwait_ofd(fd, &l, 1000, at_once, NULL), -EINTR); /* its slots are free again */
    close(fd);
    close(holder);
}

int main(void)
{
    int fd = mkstemp(file);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    close(fd);
    test_interrupted();
    test_granted_on_release();
    test_free_lock();
    test_cap();
    test_per_user_cap();
    unlink(file);
    CHECK_DONE();
}
