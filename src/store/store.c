#include "config.h"

#include "store/store.h"

#include "util/log.h"
#include "util/names.h"
#include "meta/snapxml.h"
#include "util/statcache.h"

#include <dirent.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT_FILE STORE_META_DIR "/format"

static int fmt_path(char *out, size_t outsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fmt_path(char *out, size_t outsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= outsz) ? -ENAMETOOLONG : 0;
}

/* Reads "vmstorefs-store N" from the format file; 0 when absent. */
static int read_format(const struct store *s, int *version, char *msg, size_t msgsz)
{
    char path[PATH_MAX], buf[64];
    *version = 0;
    if (fmt_path(path, sizeof(path), "%s/%s", s->root, FORMAT_FILE) < 0)
        return -ENAMETOOLONG;
    char why[MSG_MAX];
    int fd = store_open_read(s, path, why, sizeof(why));
    if (fd == -ENOENT)
        return 0;
    if (fd < 0) {
        snprintf(msg, msgsz, "%s: %s", path, why);
        return fd;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    int v = 0;
    if (sscanf(buf, "vmstorefs-store %d", &v) != 1 || v < 1) {
        snprintf(msg, msgsz, "%s: unreadable store format file", path);
        return -EINVAL;
    }
    *version = v;
    return 0;
}

int store_check(struct store *s, const char *path, char *msg, size_t msgsz)
{
    s->rootfd = -1;
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        snprintf(msg, msgsz, "store %s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(msg, msgsz, "store %s: not a directory", path);
        return -ENOTDIR;
    }
    if (!realpath(path, s->root) ||
        (s->rootfd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        int e = errno;
        snprintf(msg, msgsz, "store %s: %s", path, strerror(e));
        return -e;
    }
    /* openat2 (Linux 5.6) anchors every access; a kernel or a seccomp
     * profile without it must fail here, not on every lookup. */
    int probe = store_open(s, s->root, O_PATH);
    if (probe < 0) {
        snprintf(msg, msgsz, "store %s: cannot open beneath it (%s): Linux 5.6 or later needed",
                 s->root, strerror(-probe));
        store_close(s);
        return probe;
    }
    close(probe);
    int version;
    int r = read_format(s, &version, msg, msgsz);
    if (r < 0) {
        store_close(s);
        return r;
    }
    if (version > STORE_FORMAT_VERSION) {
        store_close(s);
        snprintf(msg, msgsz,
                 "store %s has format %d, newer than this vmstorefs understands (%d): "
                 "upgrade vmstorefs",
                 s->root, version, STORE_FORMAT_VERSION);
        return -EPROTONOSUPPORT;
    }
    return 0;
}

void store_close(struct store *s)
{
    if (s->rootfd >= 0)
        close(s->rootfd);
    s->rootfd = -1;
}

int store_open(const struct store *s, const char *path, int flags)
{
    size_t rl = strlen(s->root);
    const char *rel;
    if (strcmp(path, s->root) == 0)
        rel = ".";
    else if (strncmp(path, s->root, rl) == 0 && path[rl] == '/' && path[rl + 1])
        rel = path + rl + 1;
    else
        return -EXDEV;
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, s->rootfd, rel, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

int store_lstat(const struct store *s, const char *path, struct stat *st)
{
    int fd = store_open(s, path, O_PATH);
    if (fd < 0)
        return fd;
    int r = fstat(fd, st) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static bool is_regular_fd(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

int store_open_file(const struct store *s, const char *path, int flags)
{
    /* Look before opening, so a device node planted in the store is never
     * opened (opening some has effects); open with O_NONBLOCK and look
     * again, so a FIFO swapped in meanwhile cannot hang the open. */
    int fd = store_open(s, path, O_PATH);
    if (fd < 0)
        return fd;
    bool regular = is_regular_fd(fd);
    close(fd);
    if (!regular)
        return -ENOENT;
    fd = store_open(s, path, flags | O_NONBLOCK);
    if (fd < 0)
        return fd;
    if (!is_regular_fd(fd) ||
        (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)) {
        close(fd);
        return -ENOENT;
    }
    return fd;
}

int store_open_read(const struct store *s, const char *path, char *msg, size_t msgsz)
{
    int fd = store_open_file(s, path, O_RDONLY);
    if (fd < 0)
        snprintf(msg, msgsz, "%s", fd == -ELOOP ? "a symbolic link, not followed" : strerror(-fd));
    return fd;
}

static int meta_fail(char *msg, size_t msgsz, const struct store *s, const char *what, int err)
{
    snprintf(msg, msgsz, "cannot create %s/%s/%s: %s", s->root, STORE_META_DIR, what,
             strerror(err));
    return -err;
}

/* The format file is written beside its final name and renamed, so a
 * crash never leaves a half-written version; O_EXCL|O_NOFOLLOW so a
 * planted link is never written through. */
static int write_format(const struct store *s, int metafd, char *msg, size_t msgsz)
{
    unlinkat(metafd, "format.tmp", 0);
    int fd =
        openat(metafd, "format.tmp", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return meta_fail(msg, msgsz, s, "format.tmp", errno);
    char line[64];
    int n = snprintf(line, sizeof(line), "vmstorefs-store %d\n", STORE_FORMAT_VERSION);
    int e = 0;
    if (write(fd, line, (size_t)n) != n || fsync(fd) < 0)
        e = errno ? errno : EIO;
    close(fd);
    if (e == 0 && renameat(metafd, "format.tmp", metafd, "format") < 0)
        e = errno;
    /* The rename is durable before anything relies on the format. */
    if (e == 0 && fsync(metafd) < 0)
        e = errno;
    if (e) {
        unlinkat(metafd, "format.tmp", 0);
        return meta_fail(msg, msgsz, s, "format", e);
    }
    return 0;
}

static const char *const meta_subdirs[] = { "journal", "tmp", "locks" };
enum { META_SUBDIRS = sizeof(meta_subdirs) / sizeof(meta_subdirs[0]) };

/* A metadata directory the daemon writes in must be its own: a real
 * directory (opened beneath the root, no links followed), owned by the
 * daemon's euid, not writable by group or others. Anything else would let
 * someone else choose where the journal writes, or plant what it reads
 * back. -ENOENT (no message) when it is missing: the caller creates it. */
static int check_meta_dir(const struct store *s, const char *rel, char *msg, size_t msgsz)
{
    char path[PATH_MAX];
    if (fmt_path(path, sizeof(path), "%s/%s", s->root, rel) < 0)
        return -ENAMETOOLONG;
    int fd = store_open(s, path, O_RDONLY | O_DIRECTORY);
    if (fd == -ENOENT)
        return fd;
    struct stat st;
    int r = fd < 0 ? fd : fstat(fd, &st) < 0 ? -errno : 0;
    if (fd >= 0)
        close(fd);
    const char *why = NULL;
    char buf[96];
    if (r == -ELOOP)
        why = "is a symbolic link, not a directory";
    else if (r == -ENOTDIR)
        why = "is not a directory";
    else if (r < 0)
        why = strerror(-r);
    else if (st.st_uid != geteuid()) {
        snprintf(buf, sizeof(buf), "is owned by uid %u, not by the daemon's uid %u",
                 (unsigned)st.st_uid, (unsigned)geteuid());
        why = buf;
        r = -EPERM;
    } else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(buf, sizeof(buf), "is writable by group or others (mode %04o)",
                 (unsigned)(st.st_mode & 07777));
        why = buf;
        r = -EPERM;
    }
    if (why)
        snprintf(msg, msgsz, "store metadata %s %s: refusing to mount", path, why);
    return r;
}

/* Removes what create_meta made in the directory NAME beside the final
 * one: only the names it creates, nothing else. */
static void remove_aside(const struct store *s, const char *name)
{
    int fd = openat(s->rootfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        unlinkat(fd, "format.tmp", 0);
        unlinkat(fd, "format", 0);
        for (size_t i = 0; i < META_SUBDIRS; i++)
            unlinkat(fd, meta_subdirs[i], AT_REMOVEDIR);
        close(fd);
    }
    unlinkat(s->rootfd, name, AT_REMOVEDIR);
}

/* The store's root directory made durable: .vmstorefs renamed into it
 * must not be lost to a power cut after the journal in it has records
 * whose steps are on disk (t_power_cut.sh). rootfd is an O_PATH
 * descriptor, which fsync does not take. */
static int sync_root(const struct store *s, char *msg, size_t msgsz)
{
    int fd = store_open(s, s->root, O_RDONLY | O_DIRECTORY);
    int r = fd < 0 ? fd : fsync(fd) < 0 ? -errno : 0;
    if (fd >= 0)
        close(fd);
    if (r < 0)
        snprintf(msg, msgsz, "fsync %s: %s", s->root, strerror(-r));
    return r;
}

/* A first mount builds .vmstorefs complete under another name and renames
 * it into place, so a failure half way (ENOSPC, no inodes) leaves no
 * half-made .vmstorefs behind: what was made is removed. */
static int create_meta(const struct store *s, char *msg, size_t msgsz)
{
    char name[64];
    int r = -EEXIST;
    for (unsigned i = 0; r == -EEXIST && i < 100; i++) {
        snprintf(name, sizeof(name), "%s.new-%ld-%u", STORE_META_DIR, (long)getpid(), i);
        r = mkdirat(s->rootfd, name, 0755) < 0 ? -errno : 0;
    }
    if (r < 0)
        return meta_fail(msg, msgsz, s, "", -r);
    int fd = openat(s->rootfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        r = meta_fail(msg, msgsz, s, "", errno);
    for (size_t i = 0; r == 0 && i < META_SUBDIRS; i++)
        if (mkdirat(fd, meta_subdirs[i], 0755) < 0)
            r = meta_fail(msg, msgsz, s, meta_subdirs[i], errno);
    /* write_format fsyncs the directory: its subdirectories too. */
    if (r == 0)
        r = write_format(s, fd, msg, msgsz);
    if (fd >= 0)
        close(fd);
    /* NOREPLACE: another mount may have made it meanwhile; then theirs
     * stands (and is checked like any other). */
    if (r == 0 && renameat2(s->rootfd, name, s->rootfd, STORE_META_DIR, RENAME_NOREPLACE) == 0)
        return sync_root(s, msg, msgsz);
    int e = errno;
    remove_aside(s, name);
    return r < 0 ? r : e == EEXIST ? 0 : meta_fail(msg, msgsz, s, "", e);
}

int store_prepare_meta(const struct store *s, char *msg, size_t msgsz)
{
    int r = check_meta_dir(s, STORE_META_DIR, msg, msgsz);
    /* Made here, or by another mount that won the race: checked either way. */
    if (r == -ENOENT && (r = create_meta(s, msg, msgsz)) == 0)
        r = check_meta_dir(s, STORE_META_DIR, msg, msgsz);
    if (r < 0)
        return r;
    /* Every part is checked before any missing one is made, so a store
     * that is refused is left as it was. */
    bool missing[META_SUBDIRS];
    char rel[64];
    for (size_t i = 0; i < META_SUBDIRS; i++) {
        snprintf(rel, sizeof(rel), "%s/%s", STORE_META_DIR, meta_subdirs[i]);
        r = check_meta_dir(s, rel, msg, msgsz);
        if (r < 0 && r != -ENOENT)
            return r;
        missing[i] = r == -ENOENT;
    }
    char path[PATH_MAX];
    if (fmt_path(path, sizeof(path), "%s/%s", s->root, STORE_META_DIR) < 0)
        return -ENAMETOOLONG;
    int metafd = store_open(s, path, O_RDONLY | O_DIRECTORY);
    if (metafd < 0)
        return meta_fail(msg, msgsz, s, "", -metafd);
    r = 0;
    bool made = false;
    for (size_t i = 0; r == 0 && i < META_SUBDIRS; i++) {
        if (!missing[i])
            continue;
        made = true;
        if (mkdirat(metafd, meta_subdirs[i], 0755) < 0 && errno != EEXIST) {
            r = meta_fail(msg, msgsz, s, meta_subdirs[i], errno);
        } else {
            snprintf(rel, sizeof(rel), "%s/%s", STORE_META_DIR, meta_subdirs[i]);
            r = check_meta_dir(s, rel, msg, msgsz);
        }
    }
    /* A journal or tmp directory made here is durable before records go
     * into it. */
    if (r == 0 && made && fsync(metafd) < 0)
        r = meta_fail(msg, msgsz, s, "", errno);
    int version;
    if (r == 0)
        r = read_format(s, &version, msg, msgsz);
    if (r == 0 && version == 0)
        r = write_format(s, metafd, msg, msgsz);
    close(metafd);
    return r;
}

int store_vm_path(const struct store *s, const char *vm, const char *rel, char *out, size_t outsz)
{
    if (rel && *rel)
        return fmt_path(out, outsz, "%s/%s/%s", s->root, vm, rel);
    return fmt_path(out, outsz, "%s/%s", s->root, vm);
}

int store_disk_path(const struct store *s, const char *vm, const char *dev, char *out, size_t outsz)
{
    return fmt_path(out, outsz, "%s/%s/disks/%s" IMAGE_SUFFIX, s->root, vm, dev);
}

int store_snap_path(const struct store *s, const char *vm, const char *snap, const char *rel,
                    char *out, size_t outsz)
{
    if (rel && *rel)
        return fmt_path(out, outsz, "%s/%s/snapshots/%s/%s", s->root, vm, snap, rel);
    return fmt_path(out, outsz, "%s/%s/snapshots/%s", s->root, vm, snap);
}

int store_snap_image_path(const struct store *s, const char *vm, const char *snap, const char *dev,
                          char *out, size_t outsz)
{
    return fmt_path(out, outsz, "%s/%s/snapshots/%s/%s" IMAGE_SUFFIX, s->root, vm, snap, dev);
}

/* ---- enumeration ---- */

enum entry_kind { ENTRY_DIR, ENTRY_IMAGE };

/* Walks dir, keeping entries of the wanted kind whose names pass the
 * rules; others are logged once (dot-files are ours or the user's and
 * are skipped silently). For ENTRY_IMAGE, fn gets the dev name. */
static int list_dir(const struct store *s, const char *dir, enum entry_kind kind, store_name_fn fn,
                    void *ctx)
{
    int fd = store_open(s, dir, O_RDONLY | O_DIRECTORY);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        if (fd == -ELOOP)
            log_once(LOG_WARNING, dir, "link", "skipping %s: symbolic links are not followed", dir);
        return fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP ? 0 : fd < 0 ? fd : -errno;
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        /* lost+found (the check's, or mkfs's) is no VM, and no mistake. */
        if (n[0] == '.' || strcmp(n, LOST_FOUND) == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        char path[PATH_MAX + NAME_MAX + 2];
        snprintf(path, sizeof(path), "%s/%s", dir, n);
        if (S_ISLNK(st.st_mode)) {
            log_once(LOG_WARNING, path, "link", "skipping %s: symbolic links are not followed",
                     path);
            continue;
        }
        if (kind == ENTRY_DIR) {
            if (!S_ISDIR(st.st_mode))
                continue;
            if (!name_is_valid(n)) {
                log_once(LOG_WARNING, path, "name", "skipping %s: not a valid name", path);
                continue;
            }
            r = fn(n, ctx);
        } else {
            char dev[DEV_MAX_LEN + 1];
            if (!S_ISREG(st.st_mode) || !dev_from_image_name(n, dev, sizeof(dev))) {
                if (strcmp(n, "snapshot.xml") != 0)
                    log_once(LOG_WARNING, path, "name",
                             "skipping %s: not a regular <dev>.qcow2 image", path);
                continue;
            }
            r = fn(dev, ctx);
        }
    }
    closedir(d);
    return r < 0 ? r : 0;
}

int store_list_vms(const struct store *s, store_name_fn fn, void *ctx)
{
    return list_dir(s, s->root, ENTRY_DIR, fn, ctx);
}

int store_list_disks(const struct store *s, const char *vm, store_name_fn fn, void *ctx)
{
    char dir[PATH_MAX];
    int r = store_vm_path(s, vm, "disks", dir, sizeof(dir));
    return r < 0 ? r : list_dir(s, dir, ENTRY_IMAGE, fn, ctx);
}

int store_list_snapshots(const struct store *s, const char *vm, store_name_fn fn, void *ctx)
{
    char dir[PATH_MAX];
    int r = store_vm_path(s, vm, "snapshots", dir, sizeof(dir));
    return r < 0 ? r : list_dir(s, dir, ENTRY_DIR, fn, ctx);
}

int store_list_snap_images(const struct store *s, const char *vm, const char *snap,
                           store_name_fn fn, void *ctx)
{
    char dir[PATH_MAX];
    int r = store_snap_path(s, vm, snap, NULL, dir, sizeof(dir));
    return r < 0 ? r : list_dir(s, dir, ENTRY_IMAGE, fn, ctx);
}

static bool is_dir(const struct store *s, const char *path)
{
    struct stat st;
    return store_lstat(s, path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool store_snap_exists(const struct store *s, const char *vm, const char *snap)
{
    char path[PATH_MAX];
    return name_is_valid(vm) && name_is_valid(snap) &&
           store_snap_path(s, vm, snap, NULL, path, sizeof(path)) == 0 && is_dir(s, path);
}

/* ---- snapshot.xml, cached while the file is unchanged ---- */

struct snap_value {
    int err; /* the parse result: a malformed file is not re-parsed either */
    char *why;
    struct snap_info info;
};

static void free_snap_value(void *p)
{
    struct snap_value *v = p;
    snapxml_free(&v->info);
    free(v->why);
    free(v);
}

/* 8192 snapshots of a few hundred bytes each fit in a few MiB; a long
 * <description> counts its bytes, so the cap holds whatever they say. */
static struct statcache snap_cache = STATCACHE_INIT(8192, 8u << 20, free_snap_value);

struct snap_copy {
    int err;
    char why[256];
    struct snap_info info;
};

static int copy_snap(const void *value, void *out)
{
    const struct snap_value *v = value;
    struct snap_copy *o = out;
    o->err = v->err;
    snprintf(o->why, sizeof(o->why), "%s", v->why ? v->why : "");
    return v->err < 0 ? 0 : snapxml_copy(&v->info, &o->info);
}

/* Parses the snapshot.xml open on fd and keeps a copy of the result. */
static int parse_snap(int fd, const struct stat *st, struct snap_copy *out)
{
    int r = snapxml_parse_fd(fd, &out->info, out->why, sizeof(out->why));
    out->err = r;
    if (r == -ENOMEM || r == -EIO)
        return r; /* not a property of the file: do not keep it */
    struct snap_value *v = calloc(1, sizeof(*v));
    if (!v)
        return r;
    v->err = r;
    v->why = r < 0 ? strdup(out->why) : NULL;
    if (r == 0 && snapxml_copy(&out->info, &v->info) < 0) {
        free(v);
        return r;
    }
    statcache_put(&snap_cache, st, v, sizeof(*v) + snapxml_size(&v->info) + sizeof(out->why));
    return r;
}

int store_snap_info(const struct store *s, const char *vm, const char *snap, struct snap_info *out,
                    char *msg, size_t msgsz)
{
    char path[PATH_MAX], why[MSG_MAX];
    memset(out, 0, sizeof(*out));
    int r = store_snap_path(s, vm, snap, "snapshot.xml", path, sizeof(path));
    if (r < 0) {
        snprintf(msg, msgsz, "snapshot %s/%s: name too long", vm, snap);
        return r;
    }
    int fd = store_open_read(s, path, why, sizeof(why));
    if (fd < 0) {
        snprintf(msg, msgsz, "%s: %s", path, why);
        return fd;
    }
    struct snap_copy got = { 0 };
    struct stat st;
    if (fstat(fd, &st) < 0)
        r = got.err = -errno;
    else if ((r = statcache_get(&snap_cache, &st, copy_snap, &got)) == -ENOENT)
        r = parse_snap(fd, &st, &got);
    close(fd);
    if (r == 0)
        r = got.err;
    if (r < 0) {
        snapxml_free(&got.info);
        snprintf(msg, msgsz, "%s: %s", path, got.why[0] ? got.why : strerror(-r));
        return r;
    }
    *out = got.info;
    return 0;
}

void store_snap_cache_stats(unsigned long *hits, unsigned long *misses)
{
    statcache_stats(&snap_cache, hits, misses);
}

void store_snap_cache_clear(void)
{
    statcache_clear(&snap_cache);
}

int store_snap_ctime(const struct store *s, const char *vm, const char *snap, int64_t *out)
{
    char msg[MSG_MAX];
    struct snap_info info;
    int r = store_snap_info(s, vm, snap, &info, msg, sizeof(msg));
    if (r < 0) {
        log_once(LOG_WARNING, msg, "snapxml", "snapshot %s/%s: %s", vm, snap, msg);
        return r;
    }
    *out = info.creation_time;
    snapxml_free(&info);
    return 0;
}
