#include "config.h"

#include "qemu/chain.h"

#include "util/log.h"
#include "util/statcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- headers, cached while the image is unchanged ---- */

struct hdr_value {
    int err; /* qcow2_read_backing's result */
    struct qcow2_backing b;
    char why[]; /* its reason when err < 0 */
};

static void free_hdr(void *v)
{
    free(v);
}

/* 4096 images (a store of a thousand VMs with a few snapshots each) at
 * ~1.1 KiB each: under 5 MiB. */
static struct statcache hdr_cache = STATCACHE_INIT(4096, 8u << 20, free_hdr);

/* What a lookup copies out: the value, and the reason of a refusal. */
struct hdr_copy {
    int err;
    struct qcow2_backing b;
    char why[256];
};

static int copy_hdr(const void *value, void *out)
{
    const struct hdr_value *v = value;
    struct hdr_copy *o = out;
    o->err = v->err;
    o->b = v->b;
    snprintf(o->why, sizeof(o->why), "%s", v->why);
    return 0;
}

/* The header of the image open on fd (st its fstat), from the cache when
 * unchanged; the reason of a refusal goes to msg. */
#define HDR_CACHE_SETTLE_SECONDS 2

static int read_header(int fd, const struct stat *st, struct qcow2_backing *out, char *msg,
                       size_t msgsz)
{
    struct hdr_copy got;
    if (statcache_get(&hdr_cache, st, copy_hdr, &got) == 0) {
        *out = got.b;
        snprintf(msg, msgsz, "%s", got.why);
        return got.err;
    }
    char why[sizeof(got.why)] = "";
    int r = qcow2_read_backing(fd, out, why, sizeof(why));
    snprintf(msg, msgsz, "%s", why);
    if (r == -ENOMEM || r == -EIO)
        return r; /* not a property of the file: do not keep it */
    /* Kept only when the file did not change while it was read, and its
     * last change is older than any timestamp tick: a header rewritten
     * within the tick of the stat above would keep mtime, ctime and size,
     * and the cache would go on vouching for the old, checked name. */
    struct stat after;
    if (fstat(fd, &after) < 0 || after.st_mtim.tv_sec != st->st_mtim.tv_sec ||
        after.st_mtim.tv_nsec != st->st_mtim.tv_nsec ||
        after.st_ctim.tv_sec != st->st_ctim.tv_sec ||
        after.st_ctim.tv_nsec != st->st_ctim.tv_nsec || after.st_size != st->st_size ||
        time(NULL) - st->st_ctim.tv_sec < HDR_CACHE_SETTLE_SECONDS)
        return r;
    size_t wl = strlen(why) + 1;
    struct hdr_value *v = malloc(sizeof(*v) + wl);
    if (v) {
        v->err = r;
        v->b = *out;
        memcpy(v->why, why, wl);
        statcache_put(&hdr_cache, st, v, sizeof(*v) + wl);
    }
    return r;
}

void chain_cache_stats(unsigned long *hits, unsigned long *misses)
{
    statcache_stats(&hdr_cache, hits, misses);
}

void chain_cache_clear(void)
{
    statcache_clear(&hdr_cache);
}

/* ---- names ---- */

static int refuse(char *msg, size_t msgsz, const char *image, const char *name, const char *why)
{
    snprintf(msg, msgsz, "%s: backing file \"%s\": %s", image, name, why);
    return -EACCES;
}

/* The length of "ROOT/VM" in dir (a directory below root): the part of
 * every path a backing name given in dir may not climb out of. 0 when dir
 * is not below root. */
static size_t vm_prefix(const char *root, const char *dir)
{
    size_t rl = strlen(root);
    if (strncmp(dir, root, rl) != 0 || dir[rl] != '/' || dir[rl + 1] == '\0')
        return 0;
    return rl + 1 + strcspn(dir + rl + 1, "/");
}

/* dir + "/" + name resolved lexically into out; false (why set) when it
 * leaves the VM's directory (ROOT/VM, the first directory of dir below
 * root) or climbs back out of a directory it named ("a/.."). A backing
 * file in another VM is not this VM's to read: its owner may not be
 * this VM's (SPEC: an image's backing file lies inside its own VM). */
static bool resolve(const char *root, const char *dir, const char *name, char *out, size_t outsz,
                    const char **why)
{
    size_t rl = vm_prefix(root, dir), len = strlen(dir);
    if (rl == 0) {
        *why = "the image is not in a VM's directory";
        return false;
    }
    if (len >= outsz) {
        *why = "resolved name too long";
        return false;
    }
    memcpy(out, dir, len + 1);
    bool named = false;
    for (const char *p = name; *p;) {
        size_t cl = strcspn(p, "/");
        if (cl == 0 || (cl == 1 && p[0] == '.')) {
            /* "" and "." change nothing */
        } else if (cl == 2 && p[0] == '.' && p[1] == '.') {
            if (named) {
                *why = "climbs back out of a directory it names (\"dir/..\")";
                return false;
            }
            if (len <= rl) {
                *why = "leaves the VM's directory";
                return false;
            }
            while (len > rl && out[len - 1] != '/')
                len--;
            len--; /* the slash */
            out[len] = '\0';
        } else {
            if (len + 1 + cl >= outsz) {
                *why = "resolved name too long";
                return false;
            }
            out[len++] = '/';
            memcpy(out + len, p, cl);
            len += cl;
            out[len] = '\0';
            named = true;
        }
        p += cl;
        if (*p == '/')
            p++;
    }
    if (len <= rl) {
        *why = "names the VM's directory itself";
        return false;
    }
    return true;
}

/* The refusals that need no file: see chain.h. */
static int check_name(const struct store *s, const char *image,
                      const struct qcow2_backing *b, struct backing_info *out, char *msg,
                      size_t msgsz)
{
    const char *name = b->name, *why = NULL;
    if (name[0] == '/')
        return refuse(msg, msgsz, image, name, "an absolute name");
    if (strncmp(name, "json:", 5) == 0)
        return refuse(msg, msgsz, image, name, "a json: name");
    /* qemu's path_has_protocol: a ':' before the first '/'. */
    if (name[strcspn(name, ":/")] == ':')
        return refuse(msg, msgsz, image, name, "a protocol name");
    if (!b->format[0])
        return refuse(msg, msgsz, image, name, "no recorded backing format");
    if (strcmp(b->format, "qcow2") != 0 && strcmp(b->format, "raw") != 0) {
        char w[64];
        snprintf(w, sizeof(w), "backing format \"%s\", not qcow2 or raw", b->format);
        return refuse(msg, msgsz, image, name, w);
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", image);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (!resolve(s->root, dir, name, out->path, sizeof(out->path), &why)) {
        out->path[0] = '\0';
        return refuse(msg, msgsz, image, name, why);
    }
    return 0;
}

int chain_check_name(const struct store *s, const char *image, const char *name, const char *format,
                     char *path, size_t pathsz, char *msg, size_t msgsz)
{
    struct qcow2_backing b;
    struct backing_info out;
    memset(&b, 0, sizeof(b));
    if (strlen(name) >= sizeof(b.name) || strlen(format) >= sizeof(b.format))
        return refuse(msg, msgsz, image, name, "too long");
    strcpy(b.name, name);
    strcpy(b.format, format);
    int r = check_name(s, image, &b, &out, msg, msgsz);
    if (r == 0 && (size_t)snprintf(path, pathsz, "%s", out.path) >= pathsz)
        r = -ENAMETOOLONG;
    return r;
}

/* The header of the image open on fd (at path): its backing file,
 * checked, and the file's attributes (for loop checks). */
static int backing_in(const struct store *s, const char *path, int fd,
                      struct backing_info *out, struct stat *st, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    char why[MSG_MAX];
    struct qcow2_backing b;
    int r = fstat(fd, st) < 0 ? -errno : read_header(fd, st, &b, why, sizeof(why));
    if (r < 0) {
        snprintf(msg, msgsz, "%s: %s", path, r == -EINVAL ? why : strerror(-r));
        return r;
    }
    if (b.data_file) {
        snprintf(msg, msgsz, "%s: has an external data file", path);
        return -EACCES;
    }
    if (!b.name[0])
        return 0;
    if ((r = check_name(s, path, &b, out, msg, msgsz)) < 0)
        return r;
    memcpy(out->name, b.name, sizeof(out->name));
    memcpy(out->format, b.format, sizeof(b.format));
    return 0;
}

/* Opens the image at path for reading (beneath the root, no symbolic
 * link, a regular file), or, when open_fd >= 0, the file open there
 * (reopened through /proc/self/fd: the same inode, read without the
 * caller's O_DIRECT or write-only mode). */
static int open_link(const struct store *s, const char *path, int open_fd, char *msg, size_t msgsz)
{
    char why[MSG_MAX];
    int fd;
    if (open_fd >= 0) {
        char proc[32];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", open_fd);
        fd = open(proc, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fd = -errno;
            snprintf(why, sizeof(why), "%s", strerror(-fd));
        }
    } else {
        fd = store_open_read(s, path, why, sizeof(why));
    }
    if (fd < 0)
        snprintf(msg, msgsz, "%s: %s", path, why);
    return fd;
}

int chain_backing(const struct store *s, const char *path, struct backing_info *out, char *msg,
                  size_t msgsz)
{
    struct stat st;
    memset(out, 0, sizeof(*out));
    int fd = open_link(s, path, -1, msg, msgsz);
    if (fd < 0)
        return fd;
    int r = backing_in(s, path, fd, out, &st, msg, msgsz);
    close(fd);
    return r;
}


/* ---- the whole chain ---- */

static int add_link(struct chain *c, size_t *cap, bool pin, const char *path, const char *format)
{
    if (c->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct chain_link *l = realloc(c->links, ncap * sizeof(*l));
        if (!l)
            return -ENOMEM;
        c->links = l;
        if (pin) {
            int *f = realloc(c->fds, ncap * sizeof(*f));
            if (!f)
                return -ENOMEM;
            c->fds = f;
        }
        *cap = ncap;
    }
    snprintf(c->links[c->n].path, sizeof(c->links[0].path), "%s", path);
    snprintf(c->links[c->n].format, sizeof(c->links[0].format), "%s", format);
    if (pin)
        c->fds[c->n] = -1;
    c->n++;
    return 0;
}

struct walk_stop {
    bool (*known)(const char *path, void *arg);
    void *arg;
};

/* fmt0: the format of path itself; pin: keep each link's descriptor in
 * out->fds (chain_pin). */
static int walk(const struct store *s, const char *path, const char *fmt0, int fd0,
                const struct walk_stop *stop, bool pin, struct chain *out, char *msg, size_t msgsz)
{
    struct stat *seen = NULL;
    size_t cap = 0;
    char cur[PATH_MAX], fmt[16];
    snprintf(cur, sizeof(cur), "%s", path);
    snprintf(fmt, sizeof(fmt), "%s", fmt0);
    int r = 0;
    for (;;) {
        if (out->n == CHAIN_MAX_DEPTH) {
            snprintf(msg, msgsz, "%s: backing chain deeper than %d images", path, CHAIN_MAX_DEPTH);
            r = -ELOOP;
            break;
        }
        if ((r = add_link(out, &cap, pin, cur, fmt)) < 0)
            break;
        /* Checked, with everything below it, when the caller met it. */
        if (stop && out->n > 1 && stop->known(cur, stop->arg))
            break;
        struct stat *ns = realloc(seen, cap * sizeof(*seen));
        if (!ns) {
            r = -ENOMEM;
            break;
        }
        seen = ns;
        struct backing_info b;
        /* A raw base: only that it is a regular file beneath the root. */
        bool raw = strcmp(fmt, "raw") == 0;
        int fd = open_link(s, cur, out->n == 1 ? fd0 : -1, msg, msgsz);
        r = fd;
        if (fd >= 0) {
            r = raw ? (fstat(fd, &seen[out->n - 1]) < 0 ? -errno : 0)
                    : backing_in(s, cur, fd, &b, &seen[out->n - 1], msg, msgsz);
            if (pin)
                out->fds[out->n - 1] = fd;
            else
                close(fd);
        }
        if (r == -ELOOP) {
            snprintf(msg, msgsz, "%s: a symbolic link, not followed", cur);
            r = -EACCES;
        } else if (r == -ENOENT && out->n > 1) {
            snprintf(msg, msgsz, "%s: backing file %s is missing (or not a regular file)",
                     out->links[out->n - 2].path, cur);
        }
        if (r < 0)
            break;
        const struct stat *me = &seen[out->n - 1];
        for (size_t i = 0; i + 1 < out->n; i++) {
            if (seen[i].st_dev == me->st_dev && seen[i].st_ino == me->st_ino) {
                snprintf(msg, msgsz, "%s: backing chain loops back to %s",
                         out->links[out->n - 2].path, out->links[i].path);
                r = -ELOOP;
            }
        }
        if (r < 0 || raw || !b.name[0])
            break;
        snprintf(cur, sizeof(cur), "%s", b.path);
        snprintf(fmt, sizeof(fmt), "%s", b.format);
    }
    free(seen);
    return r;
}

static int walk_from(const struct store *s, const char *path, const char *fmt0, int fd0,
                     const struct walk_stop *stop, bool pin, struct chain *out, char *msg,
                     size_t msgsz)
{
    out->links = NULL;
    out->fds = NULL;
    out->n = 0;
    /* Nothing holds the chain's locks yet: a holder (a merge) sets it
     * after taking them. Left as the caller's struct had it, a clone's
     * qemu-img could be told to run without qemu's locks. */
    out->locked = false;
    int r = walk(s, path, fmt0, fd0, stop, pin, out, msg, msgsz);
    if (r < 0)
        chain_free(out);
    return r;
}

int chain_walk(const struct store *s, const char *path, struct chain *out, char *msg, size_t msgsz)
{
    return walk_from(s, path, "qcow2", -1, NULL, false, out, msg, msgsz);
}

int chain_walk_until(const struct store *s, const char *path,
                     bool (*known)(const char *path, void *arg), void *arg, struct chain *out,
                     char *msg, size_t msgsz)
{
    struct walk_stop stop = { known, arg };
    return walk_from(s, path, "qcow2", -1, &stop, false, out, msg, msgsz);
}

int chain_walk_fd(const struct store *s, int fd, const char *path, struct chain *out, char *msg,
                  size_t msgsz)
{
    return walk_from(s, path, "qcow2", fd, NULL, false, out, msg, msgsz);
}

int chain_pin(const struct store *s, const char *path, struct chain *out, char *msg, size_t msgsz)
{
    return walk_from(s, path, "qcow2", -1, NULL, true, out, msg, msgsz);
}

void chain_free(struct chain *c)
{
    for (size_t i = 0; c->fds && i < c->n; i++)
        if (c->fds[i] >= 0)
            close(c->fds[i]);
    free(c->fds);
    free(c->links);
    c->links = NULL;
    c->fds = NULL;
    c->n = 0;
}
