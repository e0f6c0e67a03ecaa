#include "config.h"

#include "store/imagelock.h"

#include "store/storeio.h"
#include "util/monotime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int imagelock_hold_wait(const struct store *s, const char *path, int wait_ms)
{
    int64_t deadline = now_ms() + wait_ms;
    for (;;) {
        int fd = imagelock_hold(s, path);
        if (fd != -EBUSY || now_ms() >= deadline)
            return fd;
        usleep(5000);
    }
}

static int lock_errno(void)
{
    return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
}

static int set_lock(int fd, short type, off_t start, off_t len)
{
    struct flock fl = {
        .l_type = type,
        .l_whence = SEEK_SET,
        .l_start = start,
        .l_len = len,
    };
    return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? lock_errno() : 0;
}

int imagelock_hold(const struct store *s, const char *path)
{
    /* A write lock needs a descriptor open for writing. */
    int fd = store_open_file(s, path, O_RDWR);
    if (fd < 0)
        return fd;
    int r = set_lock(fd, F_WRLCK, IMAGELOCK_START, IMAGELOCK_LEN);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* Refuse writers on fd: first refuse to share writing and resizing
 * (qemu's bytes 200 + WRITE, 200 + RESIZE), so a qemu that starts from
 * now on fails; then look for one that already writes (holds 100 +
 * WRITE or 100 + RESIZE). In this order no qemu slips in between the
 * look and the lock; qemu itself takes and looks in the same order. */
static int lock_read(int fd)
{
    static const int perms[] = { IMAGELOCK_PERM_WRITE, IMAGELOCK_PERM_RESIZE };
    for (size_t i = 0; i < sizeof(perms) / sizeof(perms[0]); i++) {
        int r = set_lock(fd, F_RDLCK, IMAGELOCK_START + IMAGELOCK_LEN / 2 + perms[i], 1);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < sizeof(perms) / sizeof(perms[0]); i++) {
        struct flock probe = {
            .l_type = F_WRLCK,
            .l_whence = SEEK_SET,
            .l_start = IMAGELOCK_START + perms[i],
            .l_len = 1,
        };
        if (fcntl(fd, F_OFD_GETLK, &probe) < 0)
            return -errno;
        if (probe.l_type != F_UNLCK)
            return -EBUSY;
    }
    return 0;
}

int imagelock_hold_for_reading(const struct store *s, const char *path)
{
    int fd = store_open_file(s, path, O_RDONLY);
    if (fd < 0)
        return fd;
    int r = lock_read(fd);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* A WRITE lock (the whole range, written) becomes a READ one: the range
 * read-locked (a conversion in place: never unheld, never refused), then
 * every byte but the two READ keeps let go. */
static int downgrade(int fd)
{
    const off_t keep1 = IMAGELOCK_START + IMAGELOCK_LEN / 2 + IMAGELOCK_PERM_WRITE;
    const off_t keep2 = IMAGELOCK_START + IMAGELOCK_LEN / 2 + IMAGELOCK_PERM_RESIZE;
    int r = set_lock(fd, F_RDLCK, IMAGELOCK_START, IMAGELOCK_LEN);
    if (r == 0)
        r = set_lock(fd, F_UNLCK, IMAGELOCK_START, keep1 - IMAGELOCK_START);
    if (r == 0)
        r = set_lock(fd, F_UNLCK, keep1 + 1, keep2 - keep1 - 1);
    if (r == 0)
        r = set_lock(fd, F_UNLCK, keep2 + 1, IMAGELOCK_START + IMAGELOCK_LEN - keep2 - 1);
    return r;
}

/* fd locked as mode (from nothing, or from READ to WRITE: a conversion
 * the kernel refuses whole, the READ lock staying), retried while busy
 * until deadline. */
static int lock_as(int fd, enum imagelock_mode mode, int64_t deadline)
{
    for (;;) {
        int r = mode == IMAGELOCK_READ
                    ? lock_read(fd)
                    : set_lock(fd, F_WRLCK, IMAGELOCK_START, IMAGELOCK_LEN);
        if (r != -EBUSY || now_ms() >= deadline)
            return r;
        usleep(5000);
    }
}

static struct imagelock_held *find_held(const struct imagelock_set *ls, const struct stat *st)
{
    for (size_t i = 0; i < ls->n; i++)
        if (ls->v[i].dev == st->st_dev && ls->v[i].ino == st->st_ino)
            return &ls->v[i];
    return NULL;
}

static int add_held(struct imagelock_set *ls, int fd, const struct stat *st,
                    enum imagelock_mode mode)
{
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? 2 * ls->cap : 8;
        struct imagelock_held *nv = realloc(ls->v, cap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        ls->v = nv;
        ls->cap = cap;
    }
    ls->v[ls->n++] = (struct imagelock_held){ st->st_dev, st->st_ino, fd, mode };
    return 0;
}

/* fd: a new descriptor of the image (ours: kept or closed here). */
static int take(struct imagelock_set *ls, int fd, enum imagelock_mode mode, int wait_ms)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    int64_t deadline = now_ms() + wait_ms;
    struct imagelock_held *h = find_held(ls, &st);
    if (h) {
        close(fd);
        if (mode == IMAGELOCK_HELD_OR_READ || mode == IMAGELOCK_HELD_OR_WRITE ||
            mode == h->mode)
            return 0;
        int r = mode == IMAGELOCK_READ ? downgrade(h->fd) : lock_as(h->fd, mode, deadline);
        if (r == 0)
            h->mode = mode;
        return r;
    }
    if (mode == IMAGELOCK_HELD_OR_READ)
        mode = IMAGELOCK_READ;
    else if (mode == IMAGELOCK_HELD_OR_WRITE)
        mode = IMAGELOCK_WRITE;
    int r = lock_as(fd, mode, deadline);
    if (r == 0 && (r = add_held(ls, fd, &st, mode)) == 0)
        return 0;
    close(fd);
    return r;
}

int imagelock_set_adopt(struct imagelock_set *ls, int fd)
{
    struct stat st;
    int r = fstat(fd, &st) < 0 ? -errno : add_held(ls, fd, &st, IMAGELOCK_WRITE);
    if (r < 0)
        close(fd);
    return r;
}

/* Read-write when it can be (a WRITE lock needs it, and a READ one may
 * become WRITE later); read-only for a READ lock on a file that cannot
 * be opened for writing. */
static int open_for(int (*open_fn)(const void *, int), const void *what,
                    enum imagelock_mode mode)
{
    int fd = open_fn(what, O_RDWR);
    if (fd < 0 && fd != -ENOENT && (mode == IMAGELOCK_READ || mode == IMAGELOCK_HELD_OR_READ))
        fd = open_fn(what, O_RDONLY);
    return fd;
}

struct at_path {
    const struct store *s;
    const char *path;
};

static int open_path(const void *what, int flags)
{
    const struct at_path *p = what;
    return store_open_file(p->s, p->path, flags);
}

static int open_fd(const void *what, int flags)
{
    return storeio_reopen(*(const int *)what, flags);
}

int imagelock_set_take(struct imagelock_set *ls, const struct store *s, const char *path,
                       enum imagelock_mode mode, int wait_ms)
{
    struct at_path p = { s, path };
    int fd = open_for(open_path, &p, mode);
    return fd < 0 ? fd : take(ls, fd, mode, wait_ms);
}

int imagelock_set_take_fd(struct imagelock_set *ls, int fd, enum imagelock_mode mode,
                          int wait_ms)
{
    int nfd = open_for(open_fd, &fd, mode);
    return nfd < 0 ? nfd : take(ls, nfd, mode, wait_ms);
}

int imagelock_set_fd(const struct imagelock_set *ls, int fd)
{
    struct stat st;
    const struct imagelock_held *h = fstat(fd, &st) == 0 ? find_held(ls, &st) : NULL;
    return h ? h->fd : -1;
}

void imagelock_set_release(struct imagelock_set *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        close(ls->v[i].fd);
    free(ls->v);
    ls->v = NULL;
    ls->n = ls->cap = 0;
}

void imagelock_drop(int fd)
{
    if (fd >= 0)
        close(fd);
}

