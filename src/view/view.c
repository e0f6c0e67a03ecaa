#include "config.h"

#include "view/view.h"

#include "qemu/chain.h"
#include "view/bases.h"
#include "vm/clonelist.h"
#include "meta/domxml.h"
#include "meta/snapxml.h"
#include "util/log.h"
#include "store/vmlock.h"
#include "store/vmstate.h"
#include "vm/current.h"
#include "ops/import.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A symlink anywhere in the store, or a file where a directory should
 * be, reads as "not there": the view never reports ELOOP or ENOTDIR. */
static int not_there(int r)
{
    return r == -ELOOP || r == -ENOTDIR ? -ENOENT : r;
}

static int stat_typed(const struct store *s, const char *path, mode_t type, struct stat *st)
{
    int r = not_there(store_lstat(s, path, st));
    if (r == 0 && (st->st_mode & S_IFMT) != type)
        r = -ENOENT;
    return r;
}

static int stat_dir(const struct store *s, const char *path, struct stat *st)
{
    return stat_typed(s, path, S_IFDIR, st);
}

static int stat_file(const struct store *s, const char *path, struct stat *st)
{
    return stat_typed(s, path, S_IFREG, st);
}

/* A directory the mount makes up (clones/, or disks/ when the store has
 * none yet): it takes the VM directory's owner and times. */
static void as_synthetic_dir(struct stat *st)
{
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_size = 0;
}

static void make_readonly(struct stat *st)
{
    st->st_mode &= ~(mode_t)(S_IWUSR | S_IWGRP | S_IWOTH);
}

/* The store file behind a file entry of the view. */
static int backing_path(const struct store *s, const struct vpath *vp, char *out, size_t outsz)
{
    switch (vp->kind) {
    case V_DISK:
        return store_disk_path(s, vp->vm, vp->dev, out, outsz);
    case V_SNAP_IMAGE:
        return store_snap_image_path(s, vp->vm, vp->snap, vp->dev, out, outsz);
    case V_SNAP_XML:
        return store_snap_path(s, vp->vm, vp->snap, "snapshot.xml", out, outsz);
    case V_DOMXML:
        return store_vm_path(s, vp->vm, "domain.xml", out, outsz);
    case V_BASE:
        return store_vm_path(s, vp->vm, vp->base, out, outsz);
    default:
        return -EISDIR;
    }
}

static int vm_subdir_attr(const struct store *s, const struct vpath *vp, const char *sub,
                          struct stat *st)
{
    char path[PATH_MAX];
    int r = store_vm_path(s, vp->vm, NULL, path, sizeof(path));
    if (r < 0 || (r = stat_dir(s, path, st)) < 0 || !sub)
        return r;
    struct stat sub_st;
    if (store_vm_path(s, vp->vm, sub, path, sizeof(path)) == 0 && stat_dir(s, path, &sub_st) == 0) {
        *st = sub_st;
        return 0;
    }
    as_synthetic_dir(st);
    return 0;
}

static int snap_attr(const struct store *s, const struct vpath *vp, struct stat *st)
{
    char path[PATH_MAX];
    int r = store_snap_path(s, vp->vm, vp->snap, NULL, path, sizeof(path));
    if (r < 0 || (r = stat_dir(s, path, st)) < 0)
        return r;
    int64_t created;
    /* A hidden directory (vpath.h) has no snapshot.xml: its own mtime;
     * so has one being imported (import.h), whose times cp -a sets. */
    if (vp->snap[0] != '.' && !vm_importing(s, vp->vm) &&
        store_snap_ctime(s, vp->vm, vp->snap, &created) == 0) {
        st->st_mtim.tv_sec = (time_t)created;
        st->st_mtim.tv_nsec = 0;
    }
    /* The directory keeps its write bits: with default_permissions the
     * kernel would otherwise refuse, as EACCES, operations on snapshots
     * that are vmstorefs's to accept or refuse. Only images are frozen. */
    if (vp->kind == V_SNAP_CLONES)
        as_synthetic_dir(st);
    return 0;
}

static int current_link(const struct store *s, const char *vm, char *buf, size_t size)
{
    char snap[NAME_MAX_LEN + 1];
    /* `rm current` hides it until a new link is made (vmstate.h). */
    if (vmstate_current_hidden(vm))
        return -ENOENT;
    int r = current_snapshot(s, vm, snap, sizeof(snap));
    if (r < 0)
        return r;
    if ((size_t)snprintf(buf, size, "snapshots/%s", snap) >= size)
        return -ENAMETOOLONG;
    return 0;
}

/* A file or directory below the VM outside its layout: served only as
 * what the VM's chains reach (bases.h), read-only. fmt gets a file's
 * format. */
static int base_attr(const struct store *s, const char *vm, const char *path, struct stat *st,
                     char *fmt, size_t fmtsz)
{
    int r = not_there(store_lstat(s, path, st));
    if (r < 0)
        return r;
    enum base_kind want = S_ISREG(st->st_mode) ? BASE_FILE : S_ISDIR(st->st_mode) ? BASE_DIR
                                                                                 : BASE_NONE;
    if (want == BASE_NONE || bases_lookup(s, vm, path, fmt, fmtsz) != want)
        return -ENOENT;
    make_readonly(st);
    return 0;
}

int view_base_dir(const struct store *s, const char *mpath, struct vpath *vp, struct stat *st)
{
    /* "/<vm>/<dir>": what vpath_parse leaves to this. */
    const char *p = mpath[0] == '/' ? mpath + 1 : mpath, *slash = strchr(p, '/');
    if (!slash || (size_t)(slash - p) > NAME_MAX_LEN || strchr(slash + 1, '/') ||
        strlen(slash + 1) > NAME_MAX_LEN || !slash[1] || strcmp(slash + 1, ".") == 0 ||
        strcmp(slash + 1, "..") == 0)
        return -ENOENT;
    memset(vp, 0, sizeof(*vp));
    vp->kind = V_BASE;
    snprintf(vp->vm, sizeof(vp->vm), "%.*s", (int)(slash - p), p);
    snprintf(vp->base, sizeof(vp->base), "%s", slash + 1);
    if (!name_is_valid(vp->vm))
        return -ENOENT;
    int r = view_getattr(s, vp, st);
    return r == 0 && !S_ISDIR(st->st_mode) ? -ENOENT : r;
}

int view_getattr(const struct store *s, const struct vpath *vp, struct stat *st)
{
    char path[PATH_MAX];
    int r;
    switch (vp->kind) {
    case V_ROOT:
        return stat_dir(s, s->root, st);
    case V_JOBS:
        if ((r = stat_dir(s, s->root, st)) < 0)
            return r;
        /* Size 0 with direct I/O: readers get whatever is live at read time. */
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = 0;
        return 0;
    case V_VM:
        return vm_subdir_attr(s, vp, NULL, st) < 0 ? -ENOENT : 0;
    case V_DISKS:
        return vm_subdir_attr(s, vp, "disks", st);
    case V_SNAPS:
        return vm_subdir_attr(s, vp, "snapshots", st);
    case V_CLONES:
        if ((r = vm_subdir_attr(s, vp, NULL, st)) == 0)
            as_synthetic_dir(st);
        return r;
    case V_SNAP:
    case V_SNAP_CLONES:
        return snap_attr(s, vp, st);
    case V_SNAP_XML:
        /* The store's metadata: a file of the view only while the VM is
         * imported (import.h), for cp -a to write. */
        if (!vm_importing(s, vp->vm))
            return -ENOENT;
        /* fall through */
    case V_DISK:
    case V_SNAP_IMAGE:
    case V_DOMXML:
        if ((r = backing_path(s, vp, path, sizeof(path))) < 0 || (r = stat_file(s, path, st)) < 0)
            return r;
        /* domain.xml takes writes (a redefine, scratch.h): its own mode;
         * so do the files of a VM being imported. */
        if (vp->kind == V_SNAP_IMAGE && !vm_importing(s, vp->vm))
            make_readonly(st);
        return 0;
    case V_CURRENT: {
        char link[PATH_MAX];
        if ((r = current_link(s, vp->vm, link, sizeof(link))) < 0 ||
            (r = vm_subdir_attr(s, vp, NULL, st)) < 0)
            return r;
        st->st_mode = S_IFLNK | 0777;
        st->st_nlink = 1;
        st->st_size = (off_t)strlen(link);
        return 0;
    }
    case V_CLONE: {
        /* N -> ../../N, while N's lineage names this VM (clonelist.h). */
        if ((r = vm_subdir_attr(s, vp, NULL, st)) < 0 || !clonelist_is_clone(s, vp->vm, vp->name))
            return -ENOENT;
        st->st_mode = S_IFLNK | 0777;
        st->st_nlink = 1;
        st->st_size = (off_t)(strlen("../../") + strlen(vp->name));
        return 0;
    }
    case V_SNAP_CLONE:
        return -ENOENT;
    case V_BASE: {
        char fmt[16];
        if ((r = backing_path(s, vp, path, sizeof(path))) < 0)
            return r;
        return base_attr(s, vp->vm, path, st, fmt, sizeof(fmt));
    }
    }
    return -ENOENT;
}

struct fill_ctx {
    view_fill_fn fill;
    void *ctx;
    mode_t type;
};

static int fill_name(const char *name, void *p)
{
    struct fill_ctx *f = p;
    return f->fill(f->ctx, name, f->type);
}

static int fill_image(const char *dev, void *p)
{
    char file[DEV_MAX_LEN + sizeof(IMAGE_SUFFIX)];
    snprintf(file, sizeof(file), "%s" IMAGE_SUFFIX, dev);
    return fill_name(file, p);
}

/* Reports (once per problem) a VM whose definition is missing or broken;
 * the VM stays listed so its images can still be reached. */
static void check_definition(const struct store *s, const char *vm)
{
    char path[PATH_MAX], msg[MSG_MAX];
    if (store_vm_path(s, vm, "domain.xml", path, sizeof(path)) < 0)
        return;
    struct dom_info info;
    int fd = store_open_read(s, path, msg, sizeof(msg));
    int r = fd;
    if (fd >= 0) {
        r = domxml_parse_fd(fd, &info, msg, sizeof(msg));
        close(fd);
    }
    if (r == 0)
        domxml_free(&info);
    else if (r == -ENOENT)
        log_once(LOG_WARNING, path, msg, "VM %s has no domain.xml: listed as an incomplete VM", vm);
    else
        log_once(LOG_WARNING, path, msg, "VM %s: %s: %s", vm, path, msg);
}

/* ---- snapshots/, children before their parents ---- */

struct snap_order {
    char **names;
    char **parents; /* NULL for a root (or an unreadable snapshot.xml) */
    int *depth;
    size_t n, cap;
    const struct store *s;
    const char *vm;
};

static int collect_snap(const char *name, void *p)
{
    struct snap_order *o = p;
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 16;
        char **nn = realloc(o->names, cap * sizeof(*nn));
        if (nn)
            o->names = nn;
        char **np = nn ? realloc(o->parents, cap * sizeof(*np)) : NULL;
        if (np)
            o->parents = np;
        int *nd = np ? realloc(o->depth, cap * sizeof(*nd)) : NULL;
        if (!nd)
            return -ENOMEM;
        o->depth = nd;
        o->cap = cap;
    }
    struct snap_info info;
    char why[MSG_MAX];
    char *parent = NULL;
    if (store_snap_info(o->s, o->vm, name, &info, why, sizeof(why)) == 0) {
        parent = info.parent ? strdup(info.parent) : NULL;
        snapxml_free(&info);
    }
    o->names[o->n] = strdup(name);
    o->parents[o->n] = parent;
    o->depth[o->n] = -1;
    if (!o->names[o->n]) {
        free(parent);
        return -ENOMEM;
    }
    o->n++;
    return 0;
}

static const struct snap_order *sorting;

static int by_name(const void *a, const void *b)
{
    return strcmp(sorting->names[*(const size_t *)a], sorting->names[*(const size_t *)b]);
}

/* Snapshot i's distance from a root of its tree (parents looked up in
 * byname, the indexes sorted by name). A parent that is not listed ends
 * the walk; so does a circle (a planted <parent> naming a descendant):
 * -2 marks the walk in progress. */
static int snap_depth(struct snap_order *o, const size_t *byname, size_t i)
{
    if (o->depth[i] >= 0)
        return o->depth[i];
    if (o->depth[i] == -2 || !o->parents[i])
        return o->depth[i] = 0;
    o->depth[i] = -2;
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(o->names[byname[mid]], o->parents[i]);
        if (c == 0) {
            lo = mid;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int d = 0;
    if (lo < o->n && strcmp(o->names[byname[lo]], o->parents[i]) == 0) {
        int pd = snap_depth(o, byname, byname[lo]);
        d = pd >= 0 ? pd + 1 : 0;
    }
    o->depth[i] = d;
    return d;
}

static int deeper_first(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, k = *(const size_t *)b;
    if (sorting->depth[i] != sorting->depth[k])
        return sorting->depth[k] - sorting->depth[i];
    return strcmp(sorting->names[i], sorting->names[k]);
}

/* A snapshot is listed before the one it grows from (deepest first), so
 * a program that removes what it reads in readdir order (rm -r, find
 * -delete, tar --remove-files) removes leaves first: nothing removed
 * still has a dependent, so nothing is hidden or merged, and every image
 * it reads (tar archives each before removing it) still names the
 * backing file it had. ls sorts by itself. */
static int readdir_snapshots(const struct store *s, const char *vm, view_fill_fn fill, void *ctx)
{
    static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
    struct snap_order o = { .s = s, .vm = vm };
    int r = store_list_snapshots(s, vm, collect_snap, &o);
    size_t *idx = r == 0 && o.n ? malloc(2 * o.n * sizeof(*idx)) : NULL;
    if (idx) {
        size_t *byname = idx + o.n;
        for (size_t i = 0; i < o.n; i++)
            idx[i] = byname[i] = i;
        pthread_mutex_lock(&sort_lock);
        sorting = &o;
        qsort(byname, o.n, sizeof(*byname), by_name);
        for (size_t i = 0; i < o.n; i++)
            snap_depth(&o, byname, i);
        qsort(idx, o.n, sizeof(*idx), deeper_first);
        pthread_mutex_unlock(&sort_lock);
    }
    for (size_t i = 0; r == 0 && i < o.n; i++)
        r = fill(ctx, o.names[idx ? idx[i] : i], S_IFDIR);
    for (size_t i = 0; i < o.n; i++) {
        free(o.names[i]);
        free(o.parents[i]);
    }
    free(idx);
    free(o.names);
    free(o.parents);
    free(o.depth);
    return r;
}

static int readdir_vm(const struct store *s, const struct vpath *vp, view_fill_fn fill, void *ctx)
{
    struct stat st;
    char link[PATH_MAX];
    struct vpath x = *vp;
    x.kind = V_DOMXML;
    int r = 0;
    /* Listing the VM is where its definition is shown: check it here,
     * once per listing of this VM, not for every VM on each `ls` of the
     * root. */
    check_definition(s, vp->vm);
    /* In this order, for programs that remove what they read in readdir
     * order (rm -r, tar --remove-files): current while it still points
     * somewhere, the active images (leaves) before the snapshots they
     * grow from, the snapshots leaves first (readdir_snapshots). */
    if (view_getattr(s, &x, &st) == 0)
        r = fill(ctx, "domain.xml", S_IFREG);
    if (r == 0 && current_link(s, vp->vm, link, sizeof(link)) == 0)
        r = fill(ctx, "current", S_IFLNK);
    if (r == 0)
        r = fill(ctx, "disks", S_IFDIR);
    if (r == 0)
        r = fill(ctx, "snapshots", S_IFDIR);
    if (r == 0)
        r = fill(ctx, "clones", S_IFDIR);
    return r;
}

int view_readdir(const struct store *s, const struct vpath *vp, view_fill_fn fill, void *ctx)
{
    struct stat st;
    int r = view_getattr(s, vp, &st);
    if (r < 0)
        return r;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if ((r = fill(ctx, ".", S_IFDIR)) != 0 || (r = fill(ctx, "..", S_IFDIR)) != 0)
        return 0;
    struct fill_ctx f = { fill, ctx, S_IFDIR };
    switch (vp->kind) {
    case V_ROOT:
        if (fill(ctx, JOBS_FILE, S_IFREG) != 0)
            return 0;
        return store_list_vms(s, fill_name, &f);
    case V_VM:
        readdir_vm(s, vp, fill, ctx);
        return 0;
    case V_DISKS:
        f.type = S_IFREG;
        return store_list_disks(s, vp->vm, fill_image, &f);
    case V_SNAPS:
        return readdir_snapshots(s, vp->vm, fill, ctx);
    case V_SNAP: {
        /* Only images: `clones` is enterable but hidden, snapshot.xml is
         * the store's metadata, so `cp -a` and `rm -r` see images alone;
         * but for a VM being imported (import.h), where it is a file
         * written like the images. */
        f.type = S_IFREG;
        struct vpath x = *vp;
        x.kind = V_SNAP_XML;
        if (view_getattr(s, &x, &st) == 0 && (r = fill(ctx, "snapshot.xml", S_IFREG)) != 0)
            return 0;
        return store_list_snap_images(s, vp->vm, vp->snap, fill_image, &f);
    }
    case V_CLONES:
        f.type = S_IFLNK;
        return clonelist_each(s, vp->vm, fill_name, &f);
    case V_BASE: {
        char path[PATH_MAX];
        if ((r = backing_path(s, vp, path, sizeof(path))) < 0)
            return r;
        return bases_list(s, vp->vm, path, fill, ctx);
    }
    default:
        return 0; /* a snapshot's clones/: enterable, never listed */
    }
}

int view_readlink(const struct store *s, const struct vpath *vp, char *buf, size_t size)
{
    if (vp->kind == V_CLONE) {
        struct stat st;
        int r = view_getattr(s, vp, &st);
        if (r < 0)
            return r;
        return (size_t)snprintf(buf, size, "../../%s", vp->name) < size ? 0 : -ENAMETOOLONG;
    }
    if (vp->kind != V_CURRENT)
        return -EINVAL;
    return current_link(s, vp->vm, buf, size);
}

/* An image is served only when its whole backing chain stays in the store
 * (chain.h): a reader through the mount (qemu-img info, convert, a VM)
 * follows the chain, and must never be led to a file outside the store,
 * a json: or protocol target, or a probed format. Refused as EACCES (or
 * EBUSY while an operation holds the VM's lock: check_chain), and
 * logged once per image and reason; running out of memory or descriptors
 * is reported as such. Checked on open only: listing and stat never walk
 * chains, so a refused image is still listed. */
static int check_chain(const struct store *s, const char *vm, int fd, const char *path)
{
    char msg[MSG_MAX];
    struct chain c;
    int r = chain_walk_fd(s, fd, path, &c, msg, sizeof(msg));
    if (r == 0) {
        chain_free(&c);
        return 0;
    }
    if (r == -ENOMEM || r == -EMFILE || r == -ENFILE || r == -EIO)
        return r;
    /* A chain an operation is changing right now (in another daemon:
     * this one refuses opens while its own run) may name a file a step
     * has just moved: busy, not refused. The probe is a shared lock,
     * which only a change holds against. */
    struct vmlock lk;
    char why[MSG_MAX];
    r = vmlock_acquire_mode(s, vm, VMLOCK_SHARED, 0, 0, NULL, NULL, &lk, why, sizeof(why));
    if (r == 0)
        vmlock_release(&lk);
    if (r == -EAGAIN || r == -EBUSY)
        return -EBUSY;
    log_once(LOG_WARNING, path, msg, "image %s is not served: %s", path, msg);
    return -EACCES;
}

int view_open(const struct store *s, const struct vpath *vp, int flags, struct view_file *out)
{
    char path[PATH_MAX];
    int r = backing_path(s, vp, path, sizeof(path));
    if (r < 0)
        return r;
    bool writing = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
    /* What a VM being imported holds in snapshots/ is written like its
     * disks (import.h), until its definition freezes it. */
    bool importing =
        (vp->kind == V_SNAP_IMAGE || vp->kind == V_SNAP_XML) && vm_importing(s, vp->vm);
    if (vp->kind == V_SNAP_XML && !importing)
        return -ENOENT;
    if (writing && vp->kind != V_DISK && !importing)
        return -EROFS;
    /* A base is served as the format its chains record: a raw one has no
     * chain to check, and is never read as a qcow2 header. */
    char fmt[16] = "";
    struct stat bst;
    if (vp->kind == V_BASE && ((r = base_attr(s, vp->vm, path, &bst, fmt, sizeof(fmt))) < 0 ||
                               !S_ISREG(bst.st_mode)))
        return r < 0 ? r : -EISDIR;
    /* Keep the caller's access mode, truncation (the kernel folds
     * O_TRUNC into the open: cp over an image must not leave its old
     * tail) and sync semantics; never hand the fd to a child. */
    int pass = flags & (O_ACCMODE | O_TRUNC | O_APPEND | O_SYNC | O_DSYNC | O_DIRECT | O_NOATIME);
    int fd = store_open_file(s, path, pass);
    if (fd == -EINVAL && (pass & O_DIRECT))
        fd = store_open_file(s, path, pass & ~O_DIRECT);
    if (fd < 0)
        return not_there(fd);
    /* A handle that cannot read cannot follow a chain (cp over an active
     * image opens it write-only), and an empty file has no header to
     * follow (the kernel may truncate before an O_TRUNC open). The chain
     * is checked from the file just opened, the one that is served. */
    struct stat st;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    bool can_follow = (flags & O_ACCMODE) != O_WRONLY && st.st_size > 0;
    bool raw = vp->kind == V_BASE && strcmp(fmt, "raw") == 0;
    bool xml = vp->kind == V_DOMXML || vp->kind == V_SNAP_XML;
    if (!xml && !raw && can_follow && (r = check_chain(s, vp->vm, fd, path)) < 0) {
        close(fd);
        return r;
    }
    out->fd = fd;
    out->frozen = (vp->kind == V_SNAP_IMAGE && !importing) || vp->kind == V_BASE;
    out->active = vp->kind == V_DISK || importing;
    out->definition = vp->kind == V_DOMXML;
    return 0;
}

int view_fstat(const struct view_file *vf, struct stat *st)
{
    if (fstat(vf->fd, st) < 0)
        return -errno;
    if (!vf->active && !vf->definition)
        make_readonly(st);
    return 0;
}

/* The store directory behind disks/, snapshots/ or snapshots/<S>. */
static int import_dir_path(const struct store *s, const struct vpath *vp, char *out, size_t outsz)
{
    return vp->kind == V_SNAP    ? store_snap_path(s, vp->vm, vp->snap, NULL, out, outsz)
           : vp->kind == V_SNAPS ? store_vm_path(s, vp->vm, "snapshots", out, outsz)
                                 : store_vm_path(s, vp->vm, "disks", out, outsz);
}

/* Attribute changes reach only active images (and what a VM being
 * imported holds), through a descriptor so a file swapped for a symlink
 * is never followed. */
static int open_writable(const struct store *s, const struct vpath *vp, int refusal, int flags)
{
    char path[PATH_MAX];
    int r;
    switch (vp->kind) {
    case V_SNAP_IMAGE:
    case V_SNAP_XML:
        if (!vm_importing(s, vp->vm))
            return vp->kind == V_SNAP_XML ? -ENOENT : refusal;
        /* fall through */
    case V_DISK:
        if ((r = backing_path(s, vp, path, sizeof(path))) < 0)
            return r;
        return not_there(store_open_file(s, path, flags));
    case V_SNAPS:
    case V_SNAP:
    case V_DISKS:
        /* cp -a sets the modes and times of the directories it copied
         * into a VM being imported (import.h) once their files are in. */
        if (!vm_importing(s, vp->vm) || (vp->kind == V_SNAP && name_is_hidden_dir(vp->snap)))
            return vp->kind == V_DISKS ? -EPERM : refusal;
        if ((r = import_dir_path(s, vp, path, sizeof(path))) < 0)
            return r;
        return not_there(store_open(s, path, O_RDONLY | O_DIRECTORY));
    case V_DOMXML:
    case V_SNAP_CLONES:
    case V_JOBS:
    case V_BASE:
        return refusal;
    default:
        return -EPERM;
    }
}

static int fd_result(int fd, int rc)
{
    int e = rc < 0 ? -errno : 0;
    close(fd);
    return e;
}

int view_truncate(const struct store *s, const struct vpath *vp, off_t size)
{
    int fd = open_writable(s, vp, -EROFS, O_WRONLY);
    return fd < 0 ? fd : fd_result(fd, ftruncate(fd, size));
}

int view_chmod(const struct store *s, const struct vpath *vp, mode_t mode)
{
    /* An editor that rewrote domain.xml (a redefine) sets its mode again:
     * no change, no refusal. Any other mode stays refused. */
    struct stat st;
    if (vp->kind == V_DOMXML && view_getattr(s, vp, &st) == 0)
        return (st.st_mode & 07777) == (mode & 07777) ? 0 : -EPERM;
    int fd = open_writable(s, vp, -EPERM, O_RDONLY);
    return fd < 0 ? fd : fd_result(fd, fchmod(fd, mode & 07777));
}

int view_chown(const struct store *s, const struct vpath *vp, uid_t uid, gid_t gid)
{
    int fd = open_writable(s, vp, -EPERM, O_RDONLY);
    return fd < 0 ? fd : fd_result(fd, fchown(fd, uid, gid));
}

int view_utimens(const struct store *s, const struct vpath *vp, const struct timespec tv[2])
{
    int fd = open_writable(s, vp, -EROFS, O_RDONLY);
    return fd < 0 ? fd : fd_result(fd, futimens(fd, tv));
}

/* The same changes through an open file's descriptor, with the same
 * rules: only an active image changes. */
/* Only an active image's attributes change; rc is the call's result. */
static int syscall_result(int rc)
{
    return rc < 0 ? -errno : 0;
}

int view_ftruncate(const struct view_file *vf, off_t size)
{
    return vf->active ? syscall_result(ftruncate(vf->fd, size)) : -EROFS;
}

int view_fchmod(const struct view_file *vf, mode_t mode)
{
    return vf->active ? syscall_result(fchmod(vf->fd, mode & 07777)) : -EPERM;
}

int view_fchown(const struct view_file *vf, uid_t uid, gid_t gid)
{
    return vf->active ? syscall_result(fchown(vf->fd, uid, gid)) : -EPERM;
}

int view_futimens(const struct view_file *vf, const struct timespec tv[2])
{
    return vf->active ? syscall_result(futimens(vf->fd, tv)) : -EROFS;
}
