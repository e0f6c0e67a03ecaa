#include "config.h"

#include "store/storeio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *storeio_rel(const struct store *s, const char *path)
{
    size_t rl = strlen(s->root);
    if (strncmp(path, s->root, rl) != 0)
        return NULL;
    if (path[rl] == '\0')
        return "";
    return path[rl] == '/' ? path + rl + 1 : NULL;
}

int storeio_parent(const struct store *s, const char *path, const char **name)
{
    const char *slash = strrchr(path, '/');
    if (!slash || !slash[1] || !storeio_rel(s, path) || !*storeio_rel(s, path))
        return -EINVAL;
    char dir[PATH_MAX];
    size_t n = (size_t)(slash - path);
    if (n >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, path, n);
    dir[n] = '\0';
    *name = slash + 1;
    return store_open(s, n ? dir : "/", O_RDONLY | O_DIRECTORY);
}

static int fsync_fd_close(int fd)
{
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int storeio_create_as(const struct store *s, const char *path, const struct store_perm *perm,
                      int *out)
{
    const char *name;
    int dfd = storeio_parent(s, path, &name);
    if (dfd < 0)
        return dfd;
    int fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int e = fd < 0 ? -errno : 0;
    close(dfd);
    if (fd < 0)
        return e;
    if ((e = perm_fd(fd, perm)) < 0) {
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

/* Writes the new file; with sync, fsyncs it too. */
static int write_new(const struct store *s, const char *path, const void *data, size_t len,
                     const struct store_perm *perm, bool sync)
{
    int fd, e = storeio_create_as(s, path, perm, &fd);
    if (e < 0)
        return e;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            e = -errno;
            close(fd);
            return e;
        }
        p += n;
        len -= (size_t)n;
    }
    if (sync)
        return fsync_fd_close(fd);
    close(fd);
    return 0;
}

int storeio_write_new_as(const struct store *s, const char *path, const void *data, size_t len,
                         const struct store_perm *perm)
{
    return write_new(s, path, data, len, perm, true);
}

int storeio_write_new_unsynced(const struct store *s, const char *path, const void *data,
                               size_t len, const struct store_perm *perm)
{
    return write_new(s, path, data, len, perm, false);
}

int storeio_write_new(const struct store *s, const char *path, const void *data, size_t len)
{
    struct store_perm own = perm_private(0600);
    return storeio_write_new_as(s, path, data, len, &own);
}

int storeio_copy_new(const struct store *s, const char *src, const char *dst, int *out)
{
    int in = store_open_file(s, src, O_RDONLY);
    if (in < 0)
        return in;
    struct stat st;
    if (fstat(in, &st) < 0) {
        int e = -errno;
        close(in);
        return e;
    }
    /* The same owner and mode as the file it stands in for. */
    struct store_perm same = { st.st_uid, st.st_gid, st.st_mode & 0777 };
    int fd, e = storeio_create_as(s, dst, &same, &fd);
    if (e < 0) {
        close(in);
        return e;
    }
    /* Shared extents where the file system has them; else copied. */
    if (e == 0 && ioctl(fd, FICLONE, in) < 0) {
        off_t left = st.st_size;
        while (e == 0 && left > 0) {
            ssize_t n = copy_file_range(in, NULL, fd, NULL, (size_t)left, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                e = n < 0 ? -errno : -EIO;
            else
                left -= n;
        }
    }
    close(in);
    if (e < 0) {
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

int storeio_read(const struct store *s, const char *path, size_t max, char **out, size_t *len)
{
    int fd = store_open_file(s, path, O_RDONLY);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size > max) {
        int e = errno && (size_t)st.st_size <= max ? -errno : -EFBIG;
        close(fd);
        return e;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf)
        return -ENOMEM;
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int storeio_reopen(int fd, int flags)
{
    char proc[32];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int r = open(proc, flags | O_CLOEXEC | O_NOCTTY);
    return r < 0 ? -errno : r;
}

int storeio_fsync(const struct store *s, const char *path)
{
    int fd = store_open(s, path, O_RDONLY);
    return fd < 0 ? fd : fsync_fd_close(fd);
}

int storeio_fsync_parent(const struct store *s, const char *path)
{
    const char *name;
    int dfd = storeio_parent(s, path, &name);
    return dfd < 0 ? dfd : fsync_fd_close(dfd);
}

struct fsync_batch {
    const struct store *s;
    const char *const *paths;
    int *err;
    size_t n;
    atomic_size_t next;
};

static void *fsync_worker(void *arg)
{
    struct fsync_batch *b = arg;
    for (size_t i; (i = atomic_fetch_add(&b->next, 1)) < b->n;)
        b->err[i] = storeio_fsync(b->s, b->paths[i]);
    return NULL;
}

int storeio_fsync_all(const struct store *s, const char *const *paths, size_t n, size_t *failed)
{
    if (n == 0)
        return 0;
    int *err = calloc(n, sizeof(*err));
    if (!err)
        return -ENOMEM;
    struct fsync_batch b = { s, paths, err, n, 0 };
    /* Side by side: fsyncs issued together wait on the disk together
     * (and share the file system's journal commits), where one after the
     * other each would wait alone. The caller's thread takes its share. */
    pthread_t t[STOREIO_FSYNC_PARALLEL];
    size_t nt = 0;
    while (nt + 1 < n && nt < STOREIO_FSYNC_PARALLEL &&
           pthread_create(&t[nt], NULL, fsync_worker, &b) == 0)
        nt++;
    fsync_worker(&b);
    for (size_t i = 0; i < nt; i++)
        pthread_join(t[i], NULL);
    /* An ENOENT (a path gone, which a caller may take for nothing left
     * to sync) never hides another failure. */
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        if (err[i] < 0 && (r == 0 || (r == -ENOENT && err[i] != -ENOENT))) {
            r = err[i];
            if (failed)
                *failed = i;
        }
    }
    free(err);
    return r;
}

/* A call that names an entry in each of two directories (renameat2,
 * linkat), given both directories opened beneath the root. */
typedef int (*two_dir_fn)(int fd, const char *fn, int td, const char *tn, unsigned flags);

static int between(const struct store *s, const char *from, const char *to, two_dir_fn op,
                   unsigned flags)
{
    const char *fn, *tn;
    int fd = storeio_parent(s, from, &fn);
    if (fd < 0)
        return fd;
    int td = storeio_parent(s, to, &tn);
    if (td < 0) {
        close(fd);
        return td;
    }
    int r = op(fd, fn, td, tn, flags) < 0 ? -errno : 0;
    close(fd);
    close(td);
    return r;
}

static int rename_op(int fd, const char *fn, int td, const char *tn, unsigned flags)
{
    return renameat2(fd, fn, td, tn, flags);
}

/* No AT_SYMLINK_FOLLOW: a symlink planted at from is linked as itself,
 * never followed out of the store. */
static int link_op(int fd, const char *fn, int td, const char *tn, unsigned flags)
{
    (void)flags;
    return linkat(fd, fn, td, tn, 0);
}

int storeio_rename(const struct store *s, const char *from, const char *to, unsigned flags)
{
    return between(s, from, to, rename_op, flags);
}

int storeio_link(const struct store *s, const char *from, const char *to)
{
    return between(s, from, to, link_op, 0);
}

int storeio_rename_probe(const struct store *s, const char *from, const char *full)
{
    const char *fn, *tn;
    int fd = storeio_parent(s, from, &fn);
    if (fd < 0)
        return 0; /* gone: the step that moves it will say */
    struct stat st;
    if (fstatat(fd, fn, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) {
        close(fd);
        return 0;
    }
    int td = storeio_parent(s, full, &tn);
    if (td < 0) {
        close(fd);
        return td;
    }
    int r = mkdirat(td, tn, 0700) < 0 && errno != EEXIST ? -errno : 0;
    if (r == 0) {
        int dfd = openat(td, tn, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int xfd = dfd < 0 ? -1 : openat(dfd, "x", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        r = xfd < 0 ? -errno : 0;
        if (xfd >= 0)
            close(xfd);
        if (dfd >= 0)
            close(dfd);
    }
    if (r < 0) {
        close(fd);
        close(td);
        return r;
    }
    /* No RENAME_NOREPLACE: the VFS would answer EEXIST before asking the
     * file system. */
    r = renameat2(fd, fn, td, tn, 0) < 0 ? -errno : 0;
    if (r == 0) {
        /* Cannot happen (full is not empty); put it back all the same. */
        r = renameat2(td, tn, fd, fn, RENAME_NOREPLACE) < 0 ? -errno : -EIO;
    } else {
        r = r == -EXDEV ? -EXDEV : 0;
    }
    close(fd);
    close(td);
    return r;
}

/* Made 0700 and then given its owner and mode through a descriptor of
 * its own (no name followed twice). perm NULL: the parent's (dfd). */
static int mkdir_perm(const struct store *s, const char *path, const struct store_perm *perm)
{
    const char *name;
    int dfd = storeio_parent(s, path, &name);
    if (dfd < 0)
        return dfd;
    struct stat pst;
    struct store_perm parent;
    int r = 0;
    if (!perm) {
        r = fstat(dfd, &pst) < 0 ? -errno : 0;
        parent = (struct store_perm){ pst.st_uid, pst.st_gid, pst.st_mode & 0777 };
        perm = &parent;
    }
    if (r == 0 && mkdirat(dfd, name, 0700) < 0)
        r = -errno;
    int fd = r < 0 ? -1 : openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (r == 0 && fd < 0)
        r = -errno;
    if (r == 0 && (r = perm_fd(fd, perm)) < 0)
        unlinkat(dfd, name, AT_REMOVEDIR); /* not left behind with the wrong owner */
    if (fd >= 0)
        close(fd);
    close(dfd);
    return r;
}

int storeio_mkdir(const struct store *s, const char *path)
{
    return mkdir_perm(s, path, NULL);
}

int storeio_mkdir_as(const struct store *s, const char *path, const struct store_perm *perm)
{
    return mkdir_perm(s, path, perm);
}

static int unlink_flags(const struct store *s, const char *path, int flags)
{
    const char *name;
    int dfd = storeio_parent(s, path, &name);
    if (dfd < 0)
        return dfd;
    int r = unlinkat(dfd, name, flags) < 0 ? -errno : 0;
    close(dfd);
    return r;
}

int storeio_unlink(const struct store *s, const char *path)
{
    return unlink_flags(s, path, 0);
}

int storeio_rmdir(const struct store *s, const char *path)
{
    return unlink_flags(s, path, AT_REMOVEDIR);
}

/* Empties the directory open on fd, depth first; never follows a link
 * (a symlink is removed as the entry it is). */
static int empty_dir(int fd, int depth)
{
    if (depth > 64)
        return -ELOOP;
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return -errno;
    }
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(fd, de->d_name, 0) == 0)
            continue;
        if (errno != EISDIR && errno != EPERM) {
            r = r ? r : -errno;
            continue;
        }
        int sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = sub < 0 ? -errno : empty_dir(sub, depth + 1);
        if (sub >= 0)
            close(sub);
        if (e == 0 && unlinkat(fd, de->d_name, AT_REMOVEDIR) < 0)
            e = -errno;
        r = r ? r : e;
    }
    closedir(d);
    return r;
}

int storeio_each(const struct store *s, const char *path, int (*fn)(const char *name, void *ctx),
                 void *ctx)
{
    int fd = store_open(s, path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return fd == -ENOENT ? 0 : fd;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = -errno;
        close(fd);
        return e;
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            r = fn(de->d_name, ctx);
    closedir(d);
    return r;
}

int storeio_rmtree(const struct store *s, const char *path)
{
    const char *name;
    int dfd = storeio_parent(s, path, &name);
    if (dfd < 0)
        return dfd == -ENOENT ? 0 : dfd;
    int r = 0;
    if (unlinkat(dfd, name, 0) < 0) {
        if (errno == ENOENT) {
            close(dfd);
            return 0;
        }
        int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        r = sub < 0 ? -errno : empty_dir(sub, 0);
        if (sub >= 0)
            close(sub);
        if (r == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
            r = -errno;
    }
    close(dfd);
    return r;
}

bool storeio_exists(const struct store *s, const char *path)
{
    /* Whatever stands at the name counts, a symlink or a FIFO too; a
     * parent that cannot be opened beneath the root (a symlink on the
     * way) answers "something is there", so nothing is ever created or
     * moved through it. */
    const char *name;
    int dfd = storeio_parent(s, path, &name);
    if (dfd < 0)
        return dfd != -ENOENT;
    struct stat st;
    bool there = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
    close(dfd);
    return there;
}
