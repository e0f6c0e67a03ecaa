#include "config.h"

#include "store/vmlock.h"
#include "util/monotime.h"

#include "util/log.h"
#include "util/names.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define STORE_LOCK_NAME ".store"
#define MACS_LOCK_NAME ".macs"

static int open_lock_file(const struct store *s, const char *name, char *msg, size_t msgsz)
{
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof(dir), "%s/" STORE_META_DIR "/locks", s->root) >= sizeof(dir))
        return -ENAMETOOLONG;
    int dfd = store_open(s, dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) {
        snprintf(msg, msgsz, "%s: %s", dir, strerror(-dfd));
        return dfd;
    }
    int fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    int e = errno;
    close(dfd);
    if (fd < 0) {
        snprintf(msg, msgsz, "%s/%s: %s", dir, name, strerror(e));
        return -e;
    }
    return fd;
}

/* F_OFD_SETLK in a loop rather than F_OFD_SETLKW: a worker thread blocked
 * in the kernel could not notice an interrupt or the daemon stopping. */

static int lock_fd(int fd, short type, unsigned wait_ms, vmlock_cancelled_fn cancelled,
                   void *arg)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
    long wait_ns = 1000000;
    int64_t until = now_ms() + wait_ms;
    for (;;) {
        if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
            return 0;
        if (errno != EAGAIN && errno != EACCES && errno != EINTR)
            return -errno;
        if (now_ms() >= until)
            return -EBUSY;
        if (cancelled && cancelled(arg))
            return -EINTR;
        struct timespec ts = { 0, wait_ns };
        nanosleep(&ts, NULL);
        if (wait_ns < 50000000)
            wait_ns *= 2;
    }
}

int vmlock_acquire_mode(const struct store *s, const char *vm, enum vmlock_mode mode,
                        unsigned store_wait_ms, unsigned vm_wait_ms,
                        vmlock_cancelled_fn cancelled, void *arg, struct vmlock *out, char *msg,
                        size_t msgsz)
{
    out->store_fd = out->vm_fd = -1;
    if (vm && !name_is_valid(vm)) {
        snprintf(msg, msgsz, "not a valid VM name");
        return -EINVAL;
    }
    int fd = open_lock_file(s, STORE_LOCK_NAME, msg, msgsz);
    if (fd < 0)
        return fd;
    int r = lock_fd(fd, vm ? F_RDLCK : F_WRLCK, store_wait_ms, cancelled, arg);
    if (r < 0) {
        close(fd);
        snprintf(msg, msgsz, "%s", r == -EBUSY ? "the store is locked by another operation"
                                                : strerror(-r));
        return r;
    }
    out->store_fd = fd;
    if (!vm)
        return 0;
    fd = open_lock_file(s, vm, msg, msgsz);
    if (fd >= 0 && (r = lock_fd(fd, mode == VMLOCK_SHARED ? F_RDLCK : F_WRLCK, vm_wait_ms,
                                cancelled, arg)) < 0) {
        close(fd);
        fd = r == -EBUSY ? -EAGAIN : r;
        snprintf(msg, msgsz, "%s", r == -EBUSY ? "another operation on this VM is running"
                                                : strerror(-r));
    }
    if (fd < 0) {
        vmlock_release(out);
        return fd;
    }
    out->vm_fd = fd;
    return 0;
}

int vmlock_acquire(const struct store *s, const char *vm, unsigned wait_ms,
                   vmlock_cancelled_fn cancelled, void *arg, struct vmlock *out, char *msg,
                   size_t msgsz)
{
    int r = vmlock_acquire_mode(s, vm, VMLOCK_EXCLUSIVE, wait_ms, wait_ms, cancelled, arg, out,
                                msg, msgsz);
    return r == -EAGAIN ? -EBUSY : r;
}

static _Atomic unsigned long releases;

unsigned long vmlock_generation(void)
{
    return releases;
}

void vmlock_release(struct vmlock *l)
{
    /* Counted before the locks go: a reader that read the count before
     * this release, and derived something from the store meanwhile, sees
     * a newer count when it checks (current.c's cache). */
    if (l->vm_fd >= 0 || l->store_fd >= 0)
        releases++;
    if (l->vm_fd >= 0)
        close(l->vm_fd);
    if (l->store_fd >= 0)
        close(l->store_fd);
    l->vm_fd = l->store_fd = -1;
}

int vmlock_macs(const struct store *s, unsigned wait_ms, vmlock_cancelled_fn cancelled,
                void *arg, char *msg, size_t msgsz)
{
    int fd = open_lock_file(s, MACS_LOCK_NAME, msg, msgsz);
    if (fd < 0)
        return fd;
    int r = lock_fd(fd, F_WRLCK, wait_ms, cancelled, arg);
    if (r < 0) {
        close(fd);
        snprintf(msg, msgsz, "%s", r == -EBUSY ? "another clone is drawing its MACs"
                                                : strerror(-r));
        return r;
    }
    return fd;
}

static int lock_marks(const struct store *s, const char *vm, const char *dev, short type)
{
    char name[NAME_MAX_LEN + DEV_MAX_LEN + 2], msg[MSG_MAX];
    if (!name_is_valid(vm) || !dev_is_valid(dev))
        return -EINVAL;
    snprintf(name, sizeof(name), "%s@%s", vm, dev);
    int fd = open_lock_file(s, name, msg, sizeof(msg));
    if (fd < 0)
        return fd;
    int r = lock_fd(fd, type, 0, NULL, NULL);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

int vmlock_writer_mark(const struct store *s, const char *vm, const char *dev)
{
    return lock_marks(s, vm, dev, F_RDLCK);
}

int vmlock_writers_exclude(const struct store *s, const char *vm, const char *dev)
{
    return lock_marks(s, vm, dev, F_WRLCK);
}
