#include "config.h"

#include "ops/import.h"

#include "journal/journal.h"
#include "ops/clone.h"
#include "store/storeio.h"
#include "util/log.h"
#include "util/names.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
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

int disk_image_new(const struct snap_ctx *c, const char *vm, const char *dev, mode_t mode,
                   int *fd, char *msg, size_t msgsz)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct stat st;
    int r = store_vm_path(c->s, vm, "disks", dir, sizeof(dir));
    if (r == 0)
        r = store_disk_path(c->s, vm, dev, path, sizeof(path));
    if (r < 0)
        return r;
    if (store_lstat(c->s, dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, msgsz, "no such VM");
        return -ENOENT;
    }
    struct store_perm p = { c->cred.uid, c->cred.gid, mode & 0666 };
    r = storeio_create_as(c->s, path, &p, fd);
    if (r == 0)
        log_msg(LOG_INFO, "%s: a new image disks/%s.qcow2 (checked when a definition names it)",
                vm, dev);
    else
        snprintf(msg, msgsz, "cannot make %s: %s", path, strerror(-r));
    return r;
}
