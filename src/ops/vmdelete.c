/* The deletes that are not of snapshots:
 *
 *   vm_delete     rmdir <vm>, rm -r <vm>: the VM's directory leaves the
 *                 store in one rename, into the operation's temporary
 *                 directory, removed with the record. Nothing is merged
 *                 and no data is copied, whatever the chains hold.
 *   disk_detach   rm <vm>/disks/<dev>.qcow2: the disk leaves domain.xml
 *                 and its active image goes; frozen images stay while a
 *                 snapshot needs them (hidden ones no longer needed go
 *                 by the garbage pass).
 *   vm_undefine   rm <vm>/domain.xml: the VM stays, images and all,
 *                 without a definition; the old one is kept aside
 *                 (UNDEFINED_XML) until the VM is deleted or defined
 *                 again (vm_define_kept). EBUSY while a qemu runs it.
 *   clone_forget  rm <vm>/clones/N: N's domain.xml no longer names vm
 *                 as its source (the lineage element goes); N stays.
 *
 * Each is one journaled operation ("vmdelete", "detach", "undefine")
 * under the VM's lock; EBUSY when a qemu or a writer through the mount
 * holds an image that would go. */
#include "config.h"

#include "ops/vmdelete.h"

#include "meta/cloneid.h"
#include "vm/bgmerge.h"
#include "vm/delplan.h"
#include "meta/domxml.h"
#include "util/log.h"
#include "store/storeio.h"
#include "store/vmstate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int tmp_path(const struct journal *j, const char *name, char *out, size_t outsz)
{
    return (size_t)snprintf(out, outsz, "%s/%s", j->tmpdir, name) >= outsz ? -ENAMETOOLONG : 0;
}

struct users {
    const struct store *s;
    const char *vm, *dir;
    char *msg;
    size_t msgsz;
};

/* Another VM whose definition names a file of this one (a clone shares
 * its source's read-only disks and CD-ROMs, as virt-clone does). */
static int check_user(const char *other, void *arg)
{
    struct users *u = arg;
    char path[PATH_MAX], why[MSG_MAX];
    if (strcmp(other, u->vm) == 0 ||
        store_vm_path(u->s, other, "domain.xml", path, sizeof(path)) < 0)
        return 0;
    int fd = store_open_read(u->s, path, why, sizeof(why));
    if (fd < 0)
        return 0;
    struct dom_info info = { 0 };
    int r = domxml_parse_fd(fd, &info, why, sizeof(why));
    close(fd);
    size_t dl = strlen(u->dir);
    for (size_t i = 0; r == 0 && i < info.ndisks; i++) {
        const char *src = info.disks[i].source;
        if (src && strncmp(src, u->dir, dl) == 0 && src[dl] == '/') {
            snprintf(u->msg, u->msgsz, "VM %s uses %s", other, src);
            r = -EBUSY;
        }
    }
    domxml_free(&info);
    return r == -EBUSY ? r : 0;
}

/* What keeps a VM from being deleted: another VM using its files, a
 * qemu or a writer holding one of its images (held until vm_end, so no
 * qemu starts meanwhile). */
static int check_deletable(struct vm_model *m, char *msg, size_t msgsz)
{
    struct users u = { m->s, m->vm, m->dir, msg, msgsz };
    int r = store_list_vms(m->s, check_user, &u);
    if (r < 0)
        return r;
    struct igraph g;
    if (igraph_build(m->s, m->vm, &g, msg, msgsz) < 0) {
        /* A broken chain does not keep a VM from going; the images we
         * can name are still checked for users below. */
        memset(&g, 0, sizeof(g));
    }
    /* No other VM's chain reaches these images (a backing name stays in
     * its VM, chain.h); a hard link elsewhere keeps its data when this
     * VM's name goes. */
    for (size_t i = 0; r == 0 && i < g.count; i++) {
        const struct gnode *nd = &g.n[i];
        if (nd->kind != G_OTHER)
            r = vm_hold_image(m, nd->path, nd->kind == G_ACTIVE ? nd->dev : NULL, msg, msgsz);
    }
    igraph_free(&g);
    return r;
}

static int plan_vm_delete(struct vm_model *m, struct journal *j, const void *arg, char *msg,
                          size_t msgsz)
{
    (void)arg;
    char to[PATH_MAX];
    int r = check_deletable(m, msg, msgsz);
    if (r == 0 && (r = tmp_path(j, "vm", to, sizeof(to))) == 0)
        r = journal_move(j, m->dir, to);
    return r;
}

int vm_delete(const struct snap_ctx *c, const char *vm, char *msg, size_t msgsz)
{
    /* A refusal (a VM a qemu runs, one whose files a clone shares) is
     * found before a record is written: it changes nothing, not even the
     * journal's directory. The plan checks again under the same lock. */
    struct vm_model m;
    int r = vm_begin(&m, c, vm, msg, msgsz);
    if (r == 0)
        r = check_deletable(&m, msg, msgsz);
    vm_end(&m);
    if (r < 0)
        return r;
    r = vm_run(c, vm, "vmdelete", plan_vm_delete, NULL, msg, msgsz);
    if (r == 0)
        log_msg(LOG_INFO, "deleted VM %s with its snapshots and images (nothing merged)", vm);
    return r;
}

static int plan_detach(struct vm_model *m, struct journal *j, const void *arg, char *msg,
                       size_t msgsz)
{
    const char *dev = arg;
    char active[PATH_MAX];
    int r = store_disk_path(m->s, m->vm, dev, active, sizeof(active));
    if (r < 0)
        return r;
    if (!storeio_exists(m->s, active)) {
        snprintf(msg, msgsz, "no disk %s", dev);
        return -ENOENT;
    }
    if ((r = vm_load_definition(m, false, msg, msgsz)) < 0)
        return r;
    struct delplan dp;
    if ((r = delplan_init(&dp, m, msg, msgsz)) < 0 || (r = delplan_attach(&dp, j)) < 0) {
        delplan_free(&dp);
        return r;
    }
    int at = igraph_find(&dp.g, active);
    r = at < 0 ? -EINVAL : delplan_remove(&dp, at);
    if (r == 0)
        r = delplan_gc(&dp);
    struct delxml x = { .detach_dev = dev };
    if (r == 0)
        r = delplan_write_xml(&dp, &x);
    delplan_free(&dp);
    return r;
}

int disk_detach(const struct snap_ctx *c, const char *vm, const char *dev, char *msg,
                size_t msgsz)
{
    int r = vm_run(c, vm, "detach", plan_detach, dev, msg, msgsz);
    if (r == 0)
        bgmerge_kick(vm); /* hidden images it left with one dependent */
    if (r == 0)
        log_msg(LOG_INFO, "detached disk %s of %s and deleted its active image", dev, vm);
    return r;
}

struct hold_active {
    struct vm_model *m;
    char *msg;
    size_t msgsz;
};

static int hold_active_one(const char *dev, void *arg)
{
    struct hold_active *h = arg;
    char path[PATH_MAX];
    int r = store_disk_path(h->m->s, h->m->vm, dev, path, sizeof(path));
    return r < 0 ? r : vm_hold_image(h->m, path, dev, h->msg, h->msgsz);
}

/* The definition is kept as UNDEFINED_XML in the VM's directory (not in
 * the view) until the VM is deleted or defined again, so an undefine can
 * be taken back (vmstorefs-ctl define). A VM a qemu runs (or that is
 * written through a mount) keeps its definition: -EBUSY. */
static int plan_undefine(struct vm_model *m, struct journal *j, const void *arg, char *msg,
                         size_t msgsz)
{
    (void)arg;
    char path[PATH_MAX], kept[PATH_MAX];
    int r = store_vm_path(m->s, m->vm, "domain.xml", path, sizeof(path));
    if (r == 0 && !storeio_exists(m->s, path)) {
        snprintf(msg, msgsz, "the VM has no domain.xml");
        return -ENOENT;
    }
    struct hold_active h = { m, msg, msgsz };
    if (r == 0)
        r = store_list_disks(m->s, m->vm, hold_active_one, &h);
    if (r == 0 && (r = store_vm_path(m->s, m->vm, UNDEFINED_XML, kept, sizeof(kept))) == 0)
        r = journal_replace(j, path, kept);
    return r;
}

int vm_undefine(const struct snap_ctx *c, const char *vm, char *msg, size_t msgsz)
{
    int r = vm_run(c, vm, "undefine", plan_undefine, NULL, msg, msgsz);
    if (r == 0)
        log_msg(LOG_INFO, "%s is undefined (domain.xml kept as %s; images kept)", vm,
                UNDEFINED_XML);
    return r;
}

/* The definition an undefine kept comes back. */
static int plan_define_kept(struct vm_model *m, struct journal *j, const void *arg, char *msg,
                            size_t msgsz)
{
    (void)arg;
    char path[PATH_MAX], kept[PATH_MAX];
    int r = store_vm_path(m->s, m->vm, "domain.xml", path, sizeof(path));
    if (r == 0 && (r = store_vm_path(m->s, m->vm, UNDEFINED_XML, kept, sizeof(kept))) < 0)
        return r;
    if (storeio_exists(m->s, path)) {
        snprintf(msg, msgsz, "the VM is defined");
        return -EEXIST;
    }
    if (!storeio_exists(m->s, kept)) {
        snprintf(msg, msgsz, "no definition was kept for the VM");
        return -ENOENT;
    }
    return journal_move(j, kept, path);
}

int vm_define_kept(const struct snap_ctx *c, const char *vm, char *msg, size_t msgsz)
{
    int r = vm_run(c, vm, "define", plan_define_kept, NULL, msg, msgsz);
    if (r == 0)
        log_msg(LOG_INFO, "%s is defined again from the definition its undefine kept", vm);
    return r;
}

static int plan_forget(struct vm_model *m, struct journal *j, const void *arg, char *msg,
                       size_t msgsz)
{
    const char *source = arg;
    int r = vm_load_definition(m, true, msg, msgsz);
    struct clone_lineage l;
    if (r == 0 && (cloneid_read_lineage(m->dom, &l) < 0 || strcmp(l.source, source) != 0)) {
        snprintf(msg, msgsz, "%s is not a clone of %s", m->vm, source);
        r = -ENOENT;
    }
    if (r < 0)
        return r;
    cloneid_forget_lineage(m->dom);
    char tmp[PATH_MAX], dst[PATH_MAX];
    if ((r = vm_write_xml(m, j, m->dom, "domain.xml", tmp, sizeof(tmp), msg, msgsz)) < 0 ||
        (r = store_vm_path(m->s, m->vm, "domain.xml", dst, sizeof(dst))) < 0)
        return r;
    return journal_replace(j, tmp, dst);
}

int clone_forget(const struct snap_ctx *c, const char *vm, const char *clone, char *msg,
                 size_t msgsz)
{
    int r = vm_run(c, clone, "forget", plan_forget, vm, msg, msgsz);
    if (r == 0)
        log_msg(LOG_INFO, "%s no longer lists %s as its clone (%s itself is kept)", vm, clone,
                clone);
    return r;
}
