#include "config.h"

#include "view/scratch.h"

#include "meta/xmlsafe.h"
#include "ops/redefine.h"
#include "store/storeio.h"
#include "util/log.h"
#include "view/vpath.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct scratch {
    struct scratch *next;
    char vm[NAME_MAX_LEN + 1];
    char name[SCRATCH_NAME_MAX + 1];
    int fd; /* the memfd */
    mode_t mode; /* permission bits */
    uid_t uid;
    gid_t gid;
    struct timespec atime, mtime, ctime;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct scratch *files;

bool scratch_path(const char *path, char *vm, char *name)
{
    struct vpath vp;
    if (!path || vpath_parse(path, &vp) == 0 || path[0] != '/')
        return false;
    const char *a = path + 1, *slash = strchr(a, '/');
    if (!slash || strchr(slash + 1, '/'))
        return false;
    size_t vl = (size_t)(slash - a), nl = strlen(slash + 1);
    if (vl > NAME_MAX_LEN || nl == 0 || nl > SCRATCH_NAME_MAX)
        return false;
    memcpy(vm, a, vl);
    vm[vl] = '\0';
    strcpy(name, slash + 1);
    /* A VM's directory, and a name vpath gave no meaning: the layout's
     * own names parsed above. */
    return name_is_valid(vm) && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static struct scratch *find(const char *vm, const char *name)
{
    for (struct scratch *f = files; f; f = f->next)
        if (strcmp(f->vm, vm) == 0 && strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static size_t count_vm(const char *vm)
{
    size_t n = 0;
    for (struct scratch *f = files; f; f = f->next)
        n += strcmp(f->vm, vm) == 0;
    return n;
}

static void drop(struct scratch *gone)
{
    for (struct scratch **p = &files; *p; p = &(*p)->next) {
        if (*p == gone) {
            *p = gone->next;
            close(gone->fd);
            free(gone);
            return;
        }
    }
}

static int new_memfd(void)
{
    int fd = memfd_create("vmstorefs-scratch", MFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int dup_fd(int fd)
{
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return d < 0 ? -errno : d;
}

int scratch_create(const char *vm, const char *name, mode_t mode, uid_t uid, gid_t gid, bool excl,
                   int *fd)
{
    pthread_mutex_lock(&lock);
    struct scratch *f = find(vm, name);
    int r = 0;
    if (f && excl) {
        r = -EEXIST;
    } else if (f) {
        r = (*fd = dup_fd(f->fd)) < 0 ? *fd : 0;
    } else if (count_vm(vm) >= SCRATCH_MAX_PER_VM) {
        r = -ENOSPC;
    } else if (!(f = calloc(1, sizeof(*f)))) {
        r = -ENOMEM;
    } else if ((f->fd = new_memfd()) < 0) {
        r = f->fd;
        free(f);
    } else {
        snprintf(f->vm, sizeof(f->vm), "%s", vm);
        snprintf(f->name, sizeof(f->name), "%s", name);
        f->mode = mode & 07777;
        f->uid = uid;
        f->gid = gid;
        clock_gettime(CLOCK_REALTIME, &f->mtime);
        f->atime = f->ctime = f->mtime;
        f->next = files;
        files = f;
        if ((*fd = dup_fd(f->fd)) < 0) {
            r = *fd;
            drop(f);
        }
    }
    pthread_mutex_unlock(&lock);
    return r;
}

int scratch_open(const char *vm, const char *name, int flags, int *fd)
{
    pthread_mutex_lock(&lock);
    struct scratch *f = find(vm, name);
    int r = !f ? -ENOENT : (*fd = dup_fd(f->fd)) < 0 ? *fd : 0;
    if (r == 0 && (flags & O_TRUNC) && ftruncate(*fd, 0) < 0) {
        r = -errno;
        close(*fd);
    }
    pthread_mutex_unlock(&lock);
    return r;
}

int scratch_stat(const char *vm, const char *name, struct stat *st)
{
    pthread_mutex_lock(&lock);
    struct scratch *f = find(vm, name);
    int r = !f ? -ENOENT : fstat(f->fd, st) < 0 ? -errno : 0;
    if (r == 0) {
        /* The memfd's identity (dev, ino) is the node's; the rest is the
         * file's as its writers set it. */
        st->st_mode = S_IFREG | f->mode;
        st->st_uid = f->uid;
        st->st_gid = f->gid;
        st->st_nlink = 1;
        st->st_atim = f->atime;
        if (st->st_mtim.tv_sec > f->mtime.tv_sec) /* written since */
            f->mtime = st->st_mtim;
        st->st_mtim = f->mtime;
        st->st_ctim = f->ctime;
    }
    pthread_mutex_unlock(&lock);
    return r;
}

/* fn on the scratch file, under the lock. */
static int with(const char *vm, const char *name, int (*fn)(struct scratch *, const void *),
                const void *arg)
{
    pthread_mutex_lock(&lock);
    struct scratch *f = find(vm, name);
    int r = f ? fn(f, arg) : -ENOENT;
    if (r == 0 && f)
        clock_gettime(CLOCK_REALTIME, &f->ctime);
    pthread_mutex_unlock(&lock);
    return r;
}

static int set_mode(struct scratch *f, const void *arg)
{
    f->mode = *(const mode_t *)arg & 07777;
    return 0;
}

int scratch_chmod(const char *vm, const char *name, mode_t mode)
{
    return with(vm, name, set_mode, &mode);
}

struct owner {
    uid_t uid;
    gid_t gid;
};

static int set_owner(struct scratch *f, const void *arg)
{
    const struct owner *o = arg;
    if (o->uid != (uid_t)-1)
        f->uid = o->uid;
    if (o->gid != (gid_t)-1)
        f->gid = o->gid;
    return 0;
}

int scratch_chown(const char *vm, const char *name, uid_t uid, gid_t gid)
{
    struct owner o = { uid, gid };
    return with(vm, name, set_owner, &o);
}

static int set_size(struct scratch *f, const void *arg)
{
    off_t size = *(const off_t *)arg;
    if (size < 0 || (unsigned long long)size > SCRATCH_MAX_BYTES)
        return -EFBIG;
    return ftruncate(f->fd, size) < 0 ? -errno : 0;
}

int scratch_truncate(const char *vm, const char *name, off_t size)
{
    return with(vm, name, set_size, &size);
}

static void set_time(struct timespec *t, const struct timespec *want)
{
    if (want->tv_nsec == UTIME_OMIT)
        return;
    if (want->tv_nsec == UTIME_NOW)
        clock_gettime(CLOCK_REALTIME, t);
    else
        *t = *want;
}

static int set_times(struct scratch *f, const void *arg)
{
    const struct timespec *tv = arg;
    set_time(&f->atime, &tv[0]);
    set_time(&f->mtime, &tv[1]);
    return 0;
}

int scratch_utimens(const char *vm, const char *name, const struct timespec tv[2])
{
    return with(vm, name, set_times, tv);
}

int scratch_unlink(const char *vm, const char *name)
{
    pthread_mutex_lock(&lock);
    struct scratch *f = find(vm, name);
    if (f)
        drop(f);
    pthread_mutex_unlock(&lock);
    return f ? 0 : -ENOENT;
}

int scratch_rename(const char *vm, const char *from, const char *to)
{
    pthread_mutex_lock(&lock);
    struct scratch *f = find(vm, from), *t = find(vm, to);
    int r = f ? 0 : -ENOENT;
    if (f && f != t) {
        if (t)
            drop(t);
        snprintf(f->name, sizeof(f->name), "%s", to);
        clock_gettime(CLOCK_REALTIME, &f->ctime);
    }
    pthread_mutex_unlock(&lock);
    return r;
}

void scratch_drop_vm(const char *vm)
{
    pthread_mutex_lock(&lock);
    for (struct scratch *f = files, *next; f; f = next) {
        next = f->next;
        if (strcmp(f->vm, vm) == 0)
            drop(f);
    }
    pthread_mutex_unlock(&lock);
}

int scratch_domxml_copy(const struct store *s, const char *vm, bool trunc, int *out)
{
    int fd = new_memfd();
    if (fd < 0)
        return fd;
    char path[PATH_MAX], why[MSG_MAX];
    int src = -ENOENT, r = 0;
    if (!trunc && (r = store_vm_path(s, vm, "domain.xml", path, sizeof(path))) == 0)
        src = store_open_read(s, path, why, sizeof(why));
    if (src >= 0) {
        char buf[65536];
        ssize_t n;
        while ((n = read(src, buf, sizeof(buf))) > 0)
            if (write(fd, buf, (size_t)n) != n) {
                n = -1;
                break;
            }
        r = n < 0 ? -EIO : 0;
        close(src);
    } else if (src != -ENOENT) {
        r = src;
    }
    if (r < 0) {
        close(fd);
        return r;
    }
    *out = fd;
    return 0;
}

int scratch_domxml_creatable(const struct store *s, const char *vm)
{
    char path[PATH_MAX];
    struct stat st;
    int r = store_vm_path(s, vm, "domain.xml", path, sizeof(path));
    if (r < 0)
        return r;
    r = store_lstat(s, path, &st);
    if (r == 0 || r == -ELOOP) {
        log_refusal("create", path, "something the mount does not serve stands there");
        return -EACCES;
    }
    return r == -ENOENT ? 0 : r;
}

/* The text on fd, whole (at most one byte past what xmlsafe takes, so a
 * larger one is refused by it with its own reason). */
static int read_all(int fd, char **out, size_t *len)
{
    size_t cap = XMLSAFE_MAX_BYTES + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    while (n < cap) {
        ssize_t k = pread(fd, buf + n, cap - n, (off_t)n);
        if (k < 0) {
            free(buf);
            return -errno;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int commit(const struct snap_ctx *c, const char *vm, int fd, bool logit, char *msg,
                  size_t msgsz)
{
    char *text = NULL;
    size_t len = 0;
    int r = read_all(fd, &text, &len);
    msg[0] = '\0';
    if (r == 0) {
        r = vm_redefine(c, vm, text, len, msg, msgsz);
        free(text);
    }
    if (r == 0)
        return 0;
    if (r != -ENOMEM && r != -ENOSPC && r != -EIO && r != -EBUSY && r != -EACCES)
        r = -EINVAL;
    if (!msg[0])
        snprintf(msg, msgsz, "%s", strerror(-r));
    char where[NAME_MAX_LEN + 16];
    snprintf(where, sizeof(where), "/%s/domain.xml", vm);
    if (logit)
        log_refusal("write", where, msg);
    return r;
}

int scratch_commit(const struct snap_ctx *c, const char *vm, int fd, char *msg, size_t msgsz)
{
    return commit(c, vm, fd, true, msg, msgsz);
}

int scratch_commit_rename(const struct snap_ctx *c, const char *vm, const char *name, char *msg,
                          size_t msgsz)
{
    int fd;
    int r = scratch_open(vm, name, 0, &fd);
    if (r < 0)
        return r;
    r = commit(c, vm, fd, false, msg, msgsz); /* the rename's refusal is logged */
    close(fd);
    if (r == 0)
        scratch_unlink(vm, name);
    return r;
}
