#include "config.h"

#include "view/nsop.h"

#include "ops/clone.h"
#include "ops/import.h"
#include "view/ghost.h"
#include "view/scratch.h"
#include "ops/vmdelete.h"
#include "ops/vmrename.h"
#include "store/storeio.h"
#include "store/vmstate.h"
#include "view/vpath.h"
#include "vm/current.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Splits "/a/b/c" into the parent "/a/b" and the last component "c". */
static int split_last(const char *path, char *parent, size_t parentsz, char *last, size_t lastsz)
{
    const char *slash = strrchr(path, '/');
    if (!slash || !slash[1])
        return -ENOENT;
    size_t n = (size_t)(slash - path);
    if (n >= parentsz || strlen(slash + 1) >= lastsz)
        return -ENAMETOOLONG;
    memcpy(parent, path, n);
    parent[n] = '\0';
    if (n == 0)
        strcpy(parent, "/");
    strcpy(last, slash + 1);
    return 0;
}

/* <vm>/<name> where name is none of the VM directory's own entries. */
static bool vm_entry(const char *path, char *vm, char *name)
{
    char parent[PATH_MAX], last[256];
    struct vpath vp;
    if (split_last(path, parent, sizeof(parent), last, sizeof(last)) < 0 ||
        vpath_parse(parent, &vp) < 0 || vp.kind != V_VM || !name_is_valid(last))
        return false;
    struct vpath self;
    if (vpath_parse(path, &self) == 0)
        return false; /* domain.xml, disks, snapshots, clones, current */
    strcpy(vm, vp.vm);
    strcpy(name, last);
    return true;
}

bool nsop_parse_link_target(const char *target, char *snap, size_t snapsz)
{
    while (strncmp(target, "./", 2) == 0)
        target += 2;
    static const char prefix[] = "snapshots/";
    if (strncmp(target, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *name = target + sizeof(prefix) - 1;
    size_t n = strcspn(name, "/");
    for (const char *p = name + n; *p; p++)
        if (*p != '/')
            return false;
    if (n == 0 || n >= snapsz)
        return false;
    memcpy(snap, name, n);
    snap[n] = '\0';
    return name_is_valid(snap);
}

/* GNU mv answers EXDEV by copying: its first step, mkdir of the target,
 * would take an unwanted snapshot of the other VM. The target of the last
 * refused cross-VM move is remembered for a few seconds, and a mkdir of
 * it by the same process is refused too. */
#define EXDEV_MEMORY 10 /* seconds */
static pthread_mutex_t exdev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    pid_t pid;
    char path[PATH_MAX];
    time_t when;
} exdev;

static void remember_exdev(pid_t pid, const char *to)
{
    if (pid <= 0)
        return;
    pthread_mutex_lock(&exdev_lock);
    exdev.pid = pid;
    snprintf(exdev.path, sizeof(exdev.path), "%s", to);
    exdev.when = time(NULL);
    pthread_mutex_unlock(&exdev_lock);
}

static bool followed_exdev(pid_t pid, const char *path)
{
    pthread_mutex_lock(&exdev_lock);
    bool hit = pid > 0 && exdev.pid == pid && strcmp(exdev.path, path) == 0 &&
               time(NULL) - exdev.when <= EXDEV_MEMORY;
    if (hit)
        exdev.pid = 0;
    pthread_mutex_unlock(&exdev_lock);
    return hit;
}

static int count_one(const char *name, void *arg)
{
    (void)name;
    (*(int *)arg)++;
    return 0;
}

static int done(struct nsop_result *res, const char *vm, int r)
{
    if (r == 0)
        snprintf(res->vm, sizeof(res->vm), "%s", vm);
    return r;
}

/* A delete (and the garbage pass after a revert or a detach) rewrites
 * the headers of frozen images it merges into or hides the parent of:
 * what the kernel cached of them goes too. */
static int done_frozen(struct nsop_result *res, const char *vm, int r)
{
    res->frozen_changed = r == 0;
    return done(res, vm, r);
}

int nsop_mkdir(const struct snap_ctx *c, const char *path, mode_t mode, struct nsop_result *res)
{
    char parent[PATH_MAX], last[256];
    struct vpath vp;
    res->vm[0] = res->msg[0] = '\0';
    res->frozen_changed = false;
    if (followed_exdev(c->pid, path)) {
        snprintf(res->msg, sizeof(res->msg),
                 "mkdir right after a snapshot move refused with EXDEV: a copy, not a snapshot "
                 "request");
        return -EXDEV;
    }
    if (split_last(path, parent, sizeof(parent), last, sizeof(last)) < 0 ||
        vpath_parse(parent, &vp) < 0)
        return NSOP_NOT_MINE;
    if (vp.kind == V_ROOT) {
        int r = vm_import_new(c, last, mode, res->msg, sizeof(res->msg));
        if (r == 0) /* (a valid name: at most NAME_MAX_LEN bytes) */
            snprintf(res->vm, sizeof(res->vm), "%.64s", last);
        return r;
    }
    if (vp.kind == V_CLONES || vp.kind == V_SNAP_CLONES)
        return done(res, vp.vm,
                    clone_create(c, vp.vm, vp.kind == V_SNAP_CLONES ? vp.snap : NULL, last,
                                 res->msg, sizeof(res->msg)));
    if (vp.kind != V_SNAPS)
        return NSOP_NOT_MINE;
    /* A VM being imported takes snapshot directories as cp -a makes
     * them (import.h); any other VM takes a snapshot. */
    if (vm_importing(c->s, vp.vm))
        return done(res, vp.vm, snap_import_dir(c, vp.vm, last, mode, res->msg, sizeof(res->msg)));
    return done(res, vp.vm, snapshot_take(c, vp.vm, last, res->msg, sizeof(res->msg)));
}

static int revert(const struct snap_ctx *c, const char *vm, const char *target,
                  struct nsop_result *res)
{
    char snap[NAME_MAX_LEN + 1];
    if (!nsop_parse_link_target(target, snap, sizeof(snap))) {
        snprintf(res->msg, sizeof(res->msg),
                 "current can only point at snapshots/<name>, not %s", target);
        return -EINVAL;
    }
    return done_frozen(res, vm, snapshot_revert(c, vm, snap, res->msg, sizeof(res->msg)));
}

static bool current_exists(const struct snap_ctx *c, const char *vm)
{
    char snap[NAME_MAX_LEN + 1];
    return !vmstate_current_hidden(vm) &&
           current_snapshot(c->s, vm, snap, sizeof(snap)) == 0;
}

int nsop_symlink(const struct snap_ctx *c, const char *target, const char *path,
                 struct nsop_result *res)
{
    struct vpath vp;
    char vm[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1], snap[NAME_MAX_LEN + 1];
    res->vm[0] = res->msg[0] = '\0';
    res->frozen_changed = false;
    if (vpath_parse(path, &vp) == 0 && vp.kind == V_CURRENT) {
        /* ln -sfn tries this first and, on EEXIST, links aside and renames. */
        if (current_exists(c, vp.vm)) {
            snprintf(res->msg, sizeof(res->msg), "current exists");
            return -EEXIST;
        }
        return revert(c, vp.vm, target, res);
    }
    if (!vm_entry(path, vm, name))
        return NSOP_NOT_MINE;
    if (!nsop_parse_link_target(target, snap, sizeof(snap))) {
        snprintf(res->msg, sizeof(res->msg), "only links to snapshots/<name> can be made here");
        return NSOP_NOT_MINE;
    }
    return vmstate_link_add(vm, name, target);
}

/* Removals do exactly what they name, whoever makes them and in whatever
 * order: rm domain.xml undefines, rm disks/<dev>.qcow2 detaches, rm of a
 * snapshot's image leaves that disk out of it (its last image takes the
 * snapshot along), rmdir of a snapshot deletes it, rmdir <vm> deletes
 * the VM. `rm -r VM` is all of these in turn and ends with the VM's
 * rmdir; deletes leave their merges to the background worker, which does
 * not start on a VM being walked (bgmerge.h), so the VM goes whole with
 * no data copied. A walk that never gets to rmdir VM (find with a
 * predicate, rm -ri answering "n", a kill) has done exactly what it
 * removed, no more. */

/* A removal that found nothing: a ghost of this process answers, once. */
static int or_ghost(const struct snap_ctx *c, const char *path, int r)
{
    if (r == 0) {
        ghost_remove(c->pid, path);
        return 0;
    }
    if (r != -ENOENT && r != NSOP_NOT_MINE)
        return r;
    int g = ghost_remove(c->pid, path);
    return g == 0 || g == -ENOTEMPTY ? g : r;
}

/* Does the VM that path is in show `current` (before a removal)? */
static bool had_current(const struct snap_ctx *c, const char *path)
{
    struct vpath vp;
    return vpath_parse(path, &vp) == 0 && vp.kind != V_ROOT && vp.kind != V_JOBS &&
           vp.kind != V_VM && vp.kind != V_CURRENT && current_exists(c, vp.vm);
}

/* `current` is derived from the active images: a removal that takes away
 * what it pointed from (a detach, the current snapshot deleted with no
 * parent) takes it along, after the remover listed it. Like a snapshot
 * that goes with its last image, it stays visible to the remover. */
static int current_ghost(const struct snap_ctx *c, const char *path, bool had, int r)
{
    struct vpath vp;
    if (r == 0 && had && vpath_parse(path, &vp) == 0 && !current_exists(c, vp.vm)) {
        char cur[PATH_MAX];
        snprintf(cur, sizeof(cur), "/%s/current", vp.vm);
        ghost_add(c->pid, cur, S_IFLNK);
    }
    return r;
}

/* rm <vm>/snapshots/S/<dev>.qcow2: the disk leaves S; its last image
 * takes S with it, which stays visible to the remover for its rmdir. */
static int unlink_snap_image(const struct snap_ctx *c, const struct vpath *vp,
                             struct nsop_result *res)
{
    int r = snapshot_delete(c, vp->vm, vp->snap, vp->dev, res->msg, sizeof(res->msg));
    if (r == 0 && !store_snap_exists(c->s, vp->vm, vp->snap)) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "/%s/snapshots/%s", vp->vm, vp->snap);
        ghost_add(c->pid, dir, S_IFDIR);
    }
    return done_frozen(res, vp->vm, r);
}

static int unlink_entry(const struct snap_ctx *c, const char *path, struct nsop_result *res);

int nsop_unlink(const struct snap_ctx *c, const char *path, struct nsop_result *res)
{
    res->vm[0] = res->msg[0] = '\0';
    res->frozen_changed = false;
    bool had = had_current(c, path);
    return current_ghost(c, path, had, or_ghost(c, path, unlink_entry(c, path, res)));
}

static int unlink_entry(const struct snap_ctx *c, const char *path, struct nsop_result *res)
{
    struct vpath vp;
    char vm[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1];
    bool parsed = vpath_parse(path, &vp) == 0;
    /* A VM being imported has files, not yet a definition or snapshots
     * to change (import.h). */
    if (parsed && (vp.kind == V_SNAP_IMAGE || vp.kind == V_SNAP_XML || vp.kind == V_DISK) &&
        vm_importing(c->s, vp.vm)) {
        char file[DEV_MAX_LEN + 8];
        if (vp.kind == V_SNAP_XML)
            snprintf(file, sizeof(file), "snapshot.xml");
        else
            snprintf(file, sizeof(file), "%s.qcow2", vp.dev);
        return done(res, vp.vm,
                    import_remove(c, vp.vm, vp.kind == V_DISK ? NULL : vp.snap, file, res->msg,
                                  sizeof(res->msg)));
    }
    if (parsed && vp.kind == V_SNAP_IMAGE)
        return unlink_snap_image(c, &vp, res);
    if (parsed && vp.kind == V_DISK)
        return done_frozen(res, vp.vm,
                           disk_detach(c, vp.vm, vp.dev, res->msg, sizeof(res->msg)));
    if (parsed && vp.kind == V_DOMXML)
        return done(res, vp.vm, vm_undefine(c, vp.vm, res->msg, sizeof(res->msg)));
    if (parsed && vp.kind == V_CLONE) {
        int r = clone_forget(c, vp.vm, vp.name, res->msg, sizeof(res->msg));
        if (r == 0)
            snprintf(res->vm, sizeof(res->vm), "%s", vp.vm);
        return r;
    }
    if (parsed && vp.kind == V_CURRENT) {
        if (!current_exists(c, vp.vm))
            return -ENOENT;
        /* No data changes: `current` is derived from the images. */
        vmstate_set_current_hidden(vp.vm, true);
        return done(res, vp.vm, 0);
    }
    char sname[SCRATCH_NAME_MAX + 1];
    if (scratch_path(path, vm, sname) && scratch_unlink(vm, sname) == 0)
        return 0;
    if (vm_entry(path, vm, name))
        return vmstate_link_remove(vm, name);
    return NSOP_NOT_MINE;
}

/* A directory the VM layout always has: removing it changes nothing, and
 * is accepted when it is empty (rm -r of a VM with no definition meets
 * them). */
static int rmdir_structural(const struct snap_ctx *c, const struct vpath *vp,
                            struct nsop_result *res)
{
    int n = 0;
    if (vp->kind == V_DISKS)
        store_list_disks(c->s, vp->vm, count_one, &n);
    else
        store_list_snapshots(c->s, vp->vm, count_one, &n);
    if (n > 0) {
        snprintf(res->msg, sizeof(res->msg), "not empty");
        return -ENOTEMPTY;
    }
    return 0;
}

static int rmdir_entry(const struct snap_ctx *c, const struct vpath *vp,
                       struct nsop_result *res);

int nsop_rmdir(const struct snap_ctx *c, const char *path, struct nsop_result *res)
{
    struct vpath vp;
    res->vm[0] = res->msg[0] = '\0';
    res->frozen_changed = false;
    if (vpath_parse(path, &vp) < 0)
        return or_ghost(c, path, NSOP_NOT_MINE);
    bool had = had_current(c, path);
    return current_ghost(c, path, had, or_ghost(c, path, rmdir_entry(c, &vp, res)));
}

static int rmdir_entry(const struct snap_ctx *c, const struct vpath *vpp, struct nsop_result *res)
{
    struct vpath vp = *vpp;
    if (vp.kind == V_SNAP && !name_is_hidden_dir(vp.snap) && vm_importing(c->s, vp.vm))
        return done(res, vp.vm, import_remove(c, vp.vm, vp.snap, NULL, res->msg, sizeof(res->msg)));
    switch (vp.kind) {
    case V_SNAP:
        return done_frozen(res, vp.vm,
                           snapshot_delete(c, vp.vm, vp.snap, NULL, res->msg, sizeof(res->msg)));
    case V_VM: {
        int r = vm_delete(c, vp.vm, res->msg, sizeof(res->msg));
        if (r == 0)
            scratch_drop_vm(vp.vm);
        return done(res, vp.vm, r);
    }
    case V_CLONES:
        return 0; /* derived from the clones' lineage: nothing to remove */
    case V_DISKS:
    case V_SNAPS:
        return rmdir_structural(c, &vp, res);
    default:
        return NSOP_NOT_MINE;
    }
}

/* A scratch file (scratch.h) renamed: over its VM's domain.xml, a
 * redefine (sed -i's last step); to another scratch name of the VM, a
 * rename in the daemon. NSOP_NOT_MINE when from is no scratch file. */
static int rename_scratch(const struct snap_ctx *c, const char *from, const char *to,
                          const struct vpath *t, struct nsop_result *res)
{
    char vm[NAME_MAX_LEN + 1], name[SCRATCH_NAME_MAX + 1];
    char tvm[NAME_MAX_LEN + 1], tname[SCRATCH_NAME_MAX + 1];
    struct stat st;
    if (!scratch_path(from, vm, name) || scratch_stat(vm, name, &st) < 0)
        return NSOP_NOT_MINE;
    if (t && t->kind == V_DOMXML && strcmp(t->vm, vm) == 0) {
        int r = scratch_commit_rename(c, vm, name, res->msg, sizeof(res->msg));
        return r == 0 ? done(res, vm, 0) : r;
    }
    if (scratch_path(to, tvm, tname) && strcmp(tvm, vm) == 0)
        return scratch_rename(vm, name, tname);
    snprintf(res->msg, sizeof(res->msg),
             "a file beside domain.xml can only be renamed over it or beside it");
    return -EXDEV;
}

/* mv <vm> <new>: a plain rename at the root, nothing else. `mv VM B`
 * with B an existing VM asks rename(VM, B/VM): EEXIST, as for a
 * snapshot. Any other target (into a VM's directory, exchanged) is
 * EINVAL, not EXDEV: mv would answer EXDEV by copying, and its mkdir of
 * the target could mean a snapshot or a clone. */
static int rename_vm(const struct snap_ctx *c, const struct vpath *f, const char *to,
                     unsigned flags, struct nsop_result *res)
{
    char tparent[PATH_MAX], tlast[256], dir[PATH_MAX];
    struct vpath tp;
    if (flags & ~(unsigned)RENAME_NOREPLACE) {
        snprintf(res->msg, sizeof(res->msg), "VMs cannot be exchanged");
        return -EINVAL;
    }
    if (split_last(to, tparent, sizeof(tparent), tlast, sizeof(tlast)) < 0)
        return -EINVAL;
    if (strcmp(tparent, "/") != 0) {
        if (vpath_parse(tparent, &tp) == 0 && tp.kind == V_VM && strcmp(tlast, f->vm) == 0 &&
            store_vm_path(c->s, tp.vm, NULL, dir, sizeof(dir)) == 0 &&
            storeio_exists(c->s, dir)) {
            snprintf(res->msg, sizeof(res->msg), "VM %s already exists", tp.vm);
            return -EEXIST;
        }
        snprintf(res->msg, sizeof(res->msg),
                 "a VM can only be renamed at the root of the mount, not to %s", to);
        return -EINVAL;
    }
    int r = vm_rename(c, f->vm, tlast, res->msg, sizeof(res->msg));
    if (r == 0)
        snprintf(res->renamed_to, sizeof(res->renamed_to), "%.*s", NAME_MAX_LEN, tlast);
    return r;
}

int nsop_rename(const struct snap_ctx *c, const char *from, const char *to, unsigned flags,
                struct nsop_result *res)
{
    struct vpath f, t;
    char vm[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1], target[PATH_MAX];
    res->vm[0] = res->msg[0] = res->renamed_to[0] = '\0';
    res->frozen_changed = false;
    bool f_ok = vpath_parse(from, &f) == 0;
    bool t_ok = vpath_parse(to, &t) == 0;
    if (f_ok && f.kind == V_VM)
        return rename_vm(c, &f, to, flags, res);
    int sr = rename_scratch(c, from, to, t_ok ? &t : NULL, res);
    if (sr != NSOP_NOT_MINE)
        return sr;
    /* The second half of ln -sfn: a pending link renamed over current. */
    if (!f_ok && vm_entry(from, vm, name) && vmstate_link_get(vm, name, target, sizeof(target)) == 0) {
        if (!t_ok || t.kind != V_CURRENT || strcmp(t.vm, vm) != 0) {
            snprintf(res->msg, sizeof(res->msg), "a link here can only become current");
            return -EXDEV;
        }
        int r = revert(c, vm, target, res);
        if (r == 0)
            vmstate_link_remove(vm, name);
        return r;
    }
    if (!f_ok || f.kind != V_SNAP)
        return NSOP_NOT_MINE;
    if (flags & ~(unsigned)RENAME_NOREPLACE) {
        snprintf(res->msg, sizeof(res->msg), "snapshots cannot be exchanged");
        return -EINVAL;
    }
    char tparent[PATH_MAX], tlast[256];
    struct vpath tp;
    if (split_last(to, tparent, sizeof(tparent), tlast, sizeof(tlast)) < 0 ||
        vpath_parse(tparent, &tp) < 0) {
        snprintf(res->msg, sizeof(res->msg), "a snapshot can only be renamed within snapshots/");
        return -EXDEV;
    }
    if (tp.kind == V_SNAP && store_snap_exists(c->s, tp.vm, tp.snap)) {
        /* `mv S T` with T an existing snapshot means rename(S, T/S). */
        snprintf(res->msg, sizeof(res->msg), "snapshot %s already exists", tp.snap);
        return -EEXIST;
    }
    if (tp.kind != V_SNAPS || strcmp(tp.vm, f.vm) != 0) {
        snprintf(res->msg, sizeof(res->msg),
                 "a snapshot can only be renamed within its own VM's snapshots/");
        remember_exdev(c->pid, to);
        return -EXDEV;
    }
    res->frozen_changed = true;
    return done(res, f.vm,
                snapshot_rename(c, f.vm, f.snap, tlast, res->msg, sizeof(res->msg)));
}

int nsop_pending_link(const char *path, char *target, size_t targetsz)
{
    char vm[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1];
    if (!vm_entry(path, vm, name))
        return -ENOENT;
    return vmstate_link_get(vm, name, target, targetsz);
}
