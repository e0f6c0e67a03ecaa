#include "config.h"

#include "ops/import.h"

#include "journal/journal.h"
#include "ops/clone.h"
#include "ops/vmdelete.h"
#include "store/perm.h"
#include "store/storeio.h"
#include "store/vmlock.h"
#include "util/log.h"
#include "util/names.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vm_import_new(const struct snap_ctx *c, const char *name, mode_t mode, char *msg,
                  size_t msgsz)
{
    if (!name_is_valid(name)) {
        snprintf(msg, msgsz, "'%s' is not a valid VM name (1-64 of A-Z a-z 0-9 . _ + -, "
                             "not starting with . or -)", name);
        return -EINVAL;
    }
    /* As for a clone: a new entry in the store's root. */
    if (!perm_cred_may(c->s, &c->cred, c->s->root, W_OK | X_OK)) {
        snprintf(msg, msgsz, "uid %u may not create entries in the store's root %s",
                 (unsigned)c->cred.uid, c->s->root);
        return -EACCES;
    }
    struct vmlock lock;
    int r = clone_reserve_name(c, name, &lock, msg, msgsz);
    if (r < 0)
        return r;
    struct journal j;
    if ((r = journal_begin(&j, c->s, "import", name, msg, msgsz)) < 0) {
        vmlock_release(&lock);
        return r;
    }
    struct store_perm p = { c->cred.uid, c->cred.gid, mode & 0777 };
    char tmp[PATH_MAX], sub[PATH_MAX], dst[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/vm", j.tmpdir) >= sizeof(tmp) ||
        store_vm_path(c->s, name, NULL, dst, sizeof(dst)) < 0)
        r = -ENAMETOOLONG;
    if (r == 0)
        r = storeio_mkdir_as(c->s, tmp, &p);
    static const char *const subs[] = { "disks", "snapshots" };
    for (size_t i = 0; r == 0 && i < 2; i++) {
        if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", tmp, subs[i]) >= sizeof(sub))
            r = -ENAMETOOLONG;
        else if ((r = storeio_mkdir_as(c->s, sub, &p)) == 0)
            r = storeio_fsync_parent(c->s, sub);
    }
    if (r < 0)
        snprintf(msg, msgsz, "cannot make the VM's directory: %s", strerror(-r));
    if (r == 0 && (r = journal_move(&j, tmp, dst)) == 0)
        r = journal_commit(&j, msg, msgsz);
    else
        journal_abort(&j);
    journal_free(&j);
    vmlock_release(&lock);
    if (r == 0)
        log_msg(LOG_INFO, "%s is a new, undefined VM: put its images in disks/, then write its "
                          "domain.xml", name);
    return r;
}

bool vm_importing(const struct store *s, const char *vm)
{
    char path[PATH_MAX];
    struct stat st;
    /* A defined VM answers at the first lookup (the common case: this
     * is asked on the view's hot paths). A VM an undefine left keeps
     * its last definition (vmdelete.h): its snapshots are the store's,
     * taken by it, and stay frozen. */
    if (!name_is_valid(vm) || store_vm_path(s, vm, "domain.xml", path, sizeof(path)) < 0 ||
        storeio_exists(s, path) || store_vm_path(s, vm, UNDEFINED_XML, path, sizeof(path)) < 0 ||
        storeio_exists(s, path))
        return false;
    return store_vm_path(s, vm, NULL, path, sizeof(path)) == 0 && store_lstat(s, path, &st) == 0 &&
           S_ISDIR(st.st_mode);
}

/* A new file `file` in dir (a directory of the VM, which must be
 * there), the caller's, open for writing in *fd. Logged when it is an
 * image of disks/ (a snapshot's files come by the hundred with cp -a:
 * their snapshot directory's line says it). */
static int new_file(const struct snap_ctx *c, const char *vm, const char *dir, const char *file,
                    bool logit, mode_t mode, int *fd, char *msg, size_t msgsz)
{
    char path[PATH_MAX];
    struct stat st;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
        return -ENAMETOOLONG;
    if (store_lstat(c->s, dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, msgsz, "no such VM or snapshot");
        return -ENOENT;
    }
    struct store_perm p = { c->cred.uid, c->cred.gid, mode & 0666 };
    int r = storeio_create_as(c->s, path, &p, fd);
    if (r == 0 && logit)
        log_msg(LOG_INFO, "%s: a new image disks/%s (checked when a definition names it)", vm,
                file);
    else if (r < 0)
        snprintf(msg, msgsz, "cannot make %s: %s", path, strerror(-r));
    return r;
}

int disk_image_new(const struct snap_ctx *c, const char *vm, const char *dev, mode_t mode, int *fd,
                   char *msg, size_t msgsz)
{
    char dir[PATH_MAX], file[DEV_MAX_LEN + 8];
    int r = store_vm_path(c->s, vm, "disks", dir, sizeof(dir));
    snprintf(file, sizeof(file), "%s.qcow2", dev);
    return r < 0 ? r : new_file(c, vm, dir, file, true, mode, fd, msg, msgsz);
}

static int not_importing(const char *vm, char *msg, size_t msgsz)
{
    snprintf(msg, msgsz,
             "%s is not being imported (it has, or had, a definition): its "
             "snapshots are read-only",
             vm);
    return -EROFS;
}

/* What cp -a and rm do in a VM being imported. */
struct import_op {
    enum { IMPORT_MKDIR, IMPORT_CREATE, IMPORT_REMOVE } kind;
    const char *vm;
    const char *snap; /* NULL: disks/ */
    const char *file; /* NULL: the snapshot directory itself */
    mode_t mode;
    int *fd; /* IMPORT_CREATE: the new file's */
};

/* op, under the VM's lock, while the VM is being imported: a definition
 * written meanwhile ends the import (-EROFS after it). */
static int import_op(const struct snap_ctx *c, const struct import_op *op, char *msg, size_t msgsz)
{
    char dir[PATH_MAX], path[PATH_MAX];
    msg[0] = '\0';
    int r = op->snap ? store_snap_path(c->s, op->vm, op->snap, NULL, dir, sizeof(dir))
                     : store_vm_path(c->s, op->vm, "disks", dir, sizeof(dir));
    if (r == 0 && op->file &&
        (size_t)snprintf(path, sizeof(path), "%s/%s", dir, op->file) >= sizeof(path))
        r = -ENAMETOOLONG;
    struct vmlock lock;
    if (r < 0 || (r = vmlock_acquire(c->s, op->vm, VMLOCK_OP_WAIT_MS, c->cancelled, c->arg, &lock,
                                     msg, msgsz)) < 0)
        return r;
    struct store_perm p = { c->cred.uid, c->cred.gid, op->mode & 0777 };
    /* The directory whose entries change: the kernel checks it too
     * (default_permissions), the daemon for a mount without. */
    char where[PATH_MAX];
    snprintf(where, sizeof(where), "%s", dir);
    if (!op->file)
        *strrchr(where, '/') = '\0';
    if (!vm_importing(c->s, op->vm)) {
        r = not_importing(op->vm, msg, msgsz);
    } else if (!perm_cred_may(c->s, &c->cred, where, W_OK | X_OK)) {
        r = msg_set(msg, msgsz, -EACCES, "uid %u may not change entries of %s",
                    (unsigned)c->cred.uid, where);
    } else if (op->kind == IMPORT_MKDIR) {
        if ((r = storeio_mkdir_as(c->s, dir, &p)) < 0)
            snprintf(msg, msgsz, "cannot make %s: %s", dir, strerror(-r));
    } else if (op->kind == IMPORT_CREATE) {
        r = new_file(c, op->vm, dir, op->file, false, op->mode, op->fd, msg, msgsz);
    } else if (op->file) {
        r = storeio_unlink(c->s, path);
    } else {
        /* The snapshot.xml given with it is not listed among the images
         * rm -r removed first: it goes with its directory. */
        if ((size_t)snprintf(path, sizeof(path), "%s/snapshot.xml", dir) < sizeof(path))
            storeio_unlink(c->s, path);
        r = storeio_rmdir(c->s, dir);
    }
    if (r < 0 && !msg[0])
        snprintf(msg, msgsz, "%s", strerror(-r));
    vmlock_release(&lock);
    return r;
}

int snap_import_dir(const struct snap_ctx *c, const char *vm, const char *snap, mode_t mode,
                    char *msg, size_t msgsz)
{
    if (!name_is_valid(snap)) {
        snprintf(msg, msgsz, "'%s' is not a valid snapshot name", snap);
        return -EINVAL;
    }
    struct import_op op = { IMPORT_MKDIR, vm, snap, NULL, mode, NULL };
    int r = import_op(c, &op, msg, msgsz);
    if (r == 0)
        log_msg(LOG_INFO,
                "%s: a new snapshot directory %s, for the import (checked when the "
                "VM's domain.xml is written)",
                vm, snap);
    return r;
}

int snap_file_new(const struct snap_ctx *c, const char *vm, const char *snap, const char *file,
                  mode_t mode, int *fd, char *msg, size_t msgsz)
{
    struct import_op op = { IMPORT_CREATE, vm, snap, file, mode, fd };
    return import_op(c, &op, msg, msgsz);
}

int import_remove(const struct snap_ctx *c, const char *vm, const char *snap, const char *file,
                  char *msg, size_t msgsz)
{
    struct import_op op = { IMPORT_REMOVE, vm, snap, file, 0, NULL };
    return import_op(c, &op, msg, msgsz);
}
