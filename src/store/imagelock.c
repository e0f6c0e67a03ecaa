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

/* qemu's bytes: 100 + n while it holds permission n, 200 + n while it
 * refuses to share it (imagelock.h). */
#define PERM_BYTE(n) (IMAGELOCK_START + (n))
#define UNSHARE_BYTE(n) (IMAGELOCK_START + IMAGELOCK_LEN / 2 + (n))
#define NPERMS(a) (sizeof(a) / sizeof((a)[0]))

/* What a reader that keeps writers off holds: writing and resizing not
 * shared. */
static const int read_unshared[] = { IMAGELOCK_PERM_WRITE, IMAGELOCK_PERM_RESIZE };
/* What a writer holds besides: the permissions qemu-img's writing open
 * holds (consistent read, write, resize). */
static const int write_perms[] = { IMAGELOCK_PERM_CONSISTENT_READ, IMAGELOCK_PERM_WRITE,
                                   IMAGELOCK_PERM_RESIZE };

/* The bytes of perms at take(perm) read-locked on fd, then none of the
 * bytes at probe(perm) held by anyone else (-EBUSY). In this order no
 * qemu slips in between the look and the lock: one that starts later
 * sees ours; qemu itself takes and looks in the same order. */
static int take_then_probe(int fd, const int *perms, size_t n, bool unshare)
{
    for (size_t i = 0; i < n; i++) {
        int r = set_lock(fd, F_RDLCK, unshare ? UNSHARE_BYTE(perms[i]) : PERM_BYTE(perms[i]), 1);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < n; i++) {
        struct flock probe = {
            .l_type = F_WRLCK,
            .l_whence = SEEK_SET,
            .l_start = unshare ? PERM_BYTE(perms[i]) : UNSHARE_BYTE(perms[i]),
            .l_len = 1,
        };
        if (fcntl(fd, F_OFD_GETLK, &probe) < 0)
            return -errno;
        if (probe.l_type != F_UNLCK)
            return -EBUSY;
    }
    return 0;
}

/* Refuse writers: writing and resizing not shared, and nobody writes. */
static int lock_read(int fd)
{
    return take_then_probe(fd, read_unshared, NPERMS(read_unshared), true);
}

/* From READ to WRITE: the permissions held too, and nobody refuses to
 * share them (a reader asking for a consistent image does: qemu's
 * default). */
static int add_write(int fd)
{
    return take_then_probe(fd, write_perms, NPERMS(write_perms), false);
}

/* From WRITE back to READ: the permissions let go, the refusals kept. */
static int drop_write(int fd)
{
    for (size_t i = 0; i < NPERMS(write_perms); i++) {
        int r = set_lock(fd, F_UNLCK, PERM_BYTE(write_perms[i]), 1);
        if (r < 0)
            return r;
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

/* fd locked as mode, from nothing or (upgrade) from READ, retried while
 * busy until deadline. A try that fails lets go of what it took, and
 * only that: an upgrade refused leaves the READ lock as it was. */
static int lock_as(int fd, enum imagelock_mode mode, bool upgrade, int64_t deadline)
{
    for (;;) {
        int r = upgrade ? 0 : lock_read(fd);
        if (r == 0 && mode == IMAGELOCK_WRITE)
            r = add_write(fd);
        if (r == 0)
            return 0;
        if (upgrade)
            drop_write(fd);
        else
            set_lock(fd, F_UNLCK, IMAGELOCK_START, IMAGELOCK_LEN);
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
        int r = mode == IMAGELOCK_READ ? drop_write(h->fd) : lock_as(h->fd, mode, true, deadline);
        if (r == 0)
            h->mode = mode;
        return r;
    }
    if (mode == IMAGELOCK_HELD_OR_READ)
        mode = IMAGELOCK_READ;
    else if (mode == IMAGELOCK_HELD_OR_WRITE)
        mode = IMAGELOCK_WRITE;
    int r = lock_as(fd, mode, false, deadline);
    if (r == 0 && (r = add_held(ls, fd, &st, mode)) == 0)
        return 0;
    close(fd);
    return r;
}

int imagelock_set_take(struct imagelock_set *ls, const struct store *s, const char *path,
                       enum imagelock_mode mode, int wait_ms)
{
    /* Every lock is a read lock: a descriptor open for reading will do
     * (a frozen image may be read-only to everyone). */
    int fd = store_open_file(s, path, O_RDONLY);
    return fd < 0 ? fd : take(ls, fd, mode, wait_ms);
}

int imagelock_set_take_fd(struct imagelock_set *ls, int fd, enum imagelock_mode mode,
                          int wait_ms)
{
    int nfd = storeio_reopen(fd, O_RDONLY);
    return nfd < 0 ? nfd : take(ls, nfd, mode, wait_ms);
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

