/* snapshot_rename: S becomes T, and everything that names S follows.
 *
 * The directory is renamed; every image whose backing file is one of S's
 * images (the next snapshot's, the active one, other branches) gets its
 * relative backing name rewritten; every XML path into S (domain.xml's
 * chains, the snapshots' <domain> chains and <disks> sources) and the
 * children's <parent> are rewritten. No data moves: the cost is a few
 * header and XML writes, whatever the disks' sizes. */
#include "config.h"

#include "ops/snapshot.h"

#include "util/log.h"
#include "store/storeio.h"
#include "vm/vmmodel.h"
#include "store/vmstate.h"
#include "meta/xmlsafe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rename {
    struct vm_model m;
    struct journal *j;
    const char *from, *to;
    char from_dir[PATH_MAX], to_dir[PATH_MAX];
    char *msg;
    size_t msgsz;
    int err;
};

/* One image of the VM: if it grows from an image of S, plan the rewrite
 * of its backing name, and keep qemu off it. */
static int visit_image(struct rename *rn, const char *image, const char *dev)
{
    struct backing_info b;
    char why[MSG_MAX];
    if (chain_backing(rn->m.s, image, &b, why, sizeof(why)) < 0 || !b.name[0])
        return 0;
    size_t fl = strlen(rn->from_dir);
    if (strncmp(b.path, rn->from_dir, fl) != 0 || b.path[fl] != '/')
        return 0;
    char target[PATH_MAX], dir[PATH_MAX], rel[PATH_MAX];
    snprintf(target, sizeof(target), "%s%s", rn->to_dir, b.path + fl);
    snprintf(dir, sizeof(dir), "%s", image);
    *strrchr(dir, '/') = '\0';
    int r = vm_hold_image(&rn->m, image, dev, rn->msg, rn->msgsz);
    if (r == 0)
        r = vm_relpath(dir, target, rel, sizeof(rel));
    if (r == 0)
        r = journal_rebase(rn->j, image, rel, b.format);
    return r;
}

static int visit_active(const char *dev, void *arg)
{
    struct rename *rn = arg;
    char path[PATH_MAX];
    store_disk_path(rn->m.s, rn->m.vm, dev, path, sizeof(path));
    return visit_image(rn, path, dev);
}

struct snap_visit {
    struct rename *rn;
    const char *snap;
};

static int visit_frozen(const char *dev, void *arg)
{
    struct snap_visit *sv = arg;
    char path[PATH_MAX];
    store_snap_image_path(sv->rn->m.s, sv->rn->m.vm, sv->snap, dev, path, sizeof(path));
    return visit_image(sv->rn, path, NULL);
}

/* A snapshot's XML: its name (S itself), its parent (S's children) and
 * any path into S. Written only when something changed. */
static int visit_snapshot(const char *snap, void *arg)
{
    struct rename *rn = arg;
    struct snap_visit sv = { rn, snap };
    int r = 0;
    if (strcmp(snap, rn->from) != 0)
        r = store_list_snap_images(rn->m.s, rn->m.vm, snap, visit_frozen, &sv);
    xmlDocPtr doc;
    if (r < 0 || (r = vm_load_snapshot(&rn->m, snap, &doc, rn->msg, rn->msgsz)) < 0)
        return r;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    int changed = xmledit_rewrite_prefix(root, rn->from_dir, rn->to_dir);
    char *parent = xml_child_text(xml_child(root, "parent"), "name");
    if (parent && strcmp(parent, rn->from) == 0) {
        r = xmledit_set_parent(doc, rn->to);
        changed++;
    }
    free(parent);
    bool self = strcmp(snap, rn->from) == 0;
    if (r == 0 && self) {
        r = xmledit_set_child_text(root, "name", rn->to);
        changed++;
    }
    if (r == 0 && changed) {
        char name[NAME_MAX_LEN + 16], tmp[PATH_MAX], dst[PATH_MAX];
        snprintf(name, sizeof(name), "snap-%s.xml", snap);
        r = vm_write_temp(rn->j, doc, name, tmp, sizeof(tmp), rn->msg, rn->msgsz);
        /* S's own file is replaced where it will stand after the move. */
        if (r == 0)
            r = store_snap_path(rn->m.s, rn->m.vm, self ? rn->to : snap, "snapshot.xml", dst,
                                sizeof(dst));
        if (r == 0)
            r = journal_replace(rn->j, tmp, dst);
    }
    xmlFreeDoc(doc);
    return r;
}

/* S's own images move with their directory: a qemu holding one of them
 * (a running VM reads its whole chain) refuses the rename too. */
static int hold_own(const char *dev, void *arg)
{
    struct rename *rn = arg;
    char path[PATH_MAX];
    store_snap_image_path(rn->m.s, rn->m.vm, rn->from, dev, path, sizeof(path));
    return vm_hold_image(&rn->m, path, NULL, rn->msg, rn->msgsz);
}

static int plan(struct rename *rn, char *msg, size_t msgsz)
{
    struct vm_model *m = &rn->m;
    int r = journal_move(rn->j, rn->from_dir, rn->to_dir);
    if (r == 0)
        r = store_list_disks(m->s, m->vm, visit_active, rn);
    if (r == 0)
        r = store_list_snapshots(m->s, m->vm, visit_snapshot, rn);
    if (r == 0)
        r = store_list_snap_images(m->s, m->vm, rn->from, hold_own, rn);
    if (r == 0 && m->dom) {
        int changed = xmledit_rewrite_prefix(xmlDocGetRootElement(m->dom), rn->from_dir,
                                             rn->to_dir);
        char tmp[PATH_MAX], dst[PATH_MAX];
        if (changed && (r = vm_write_temp(rn->j, m->dom, "domain.xml", tmp, sizeof(tmp), msg,
                                          msgsz)) == 0 &&
            (r = store_vm_path(m->s, m->vm, "domain.xml", dst, sizeof(dst))) == 0)
            r = journal_replace(rn->j, tmp, dst);
    }
    return r;
}

int snapshot_rename(const struct snap_ctx *c, const char *vm, const char *from, const char *to,
                    char *msg, size_t msgsz)
{
    if (!name_is_valid(to)) {
        snprintf(msg, msgsz, "'%s' is not a valid snapshot name", to);
        return -EINVAL;
    }
    struct rename rn = { .from = from, .to = to, .msg = msg, .msgsz = msgsz };
    int r = vm_begin(&rn.m, c, vm, msg, msgsz);
    if (r < 0)
        return r;
    store_snap_path(c->s, vm, from, NULL, rn.from_dir, sizeof(rn.from_dir));
    store_snap_path(c->s, vm, to, NULL, rn.to_dir, sizeof(rn.to_dir));
    if (!store_snap_exists(c->s, vm, from)) {
        snprintf(msg, msgsz, "no snapshot %s", from);
        r = -ENOENT;
    } else if (strcmp(from, to) == 0) {
        r = 1; /* rename(2) onto itself: nothing to do */
    } else if (storeio_exists(c->s, rn.to_dir)) {
        snprintf(msg, msgsz, "snapshot %s already exists", to);
        r = -EEXIST;
    }
    if (r == 0)
        r = vm_load_definition(&rn.m, false, msg, msgsz);
    struct journal j;
    if (r == 0 && (r = journal_begin(&j, c->s, "rename", vm, msg, msgsz)) == 0) {
        rn.j = &j;
        r = plan(&rn, msg, msgsz);
        if (r == 0)
            r = vm_commit(&rn.m, &j, msg, msgsz);
        else
            journal_abort(&j);
        journal_free(&j);
    }
    vm_end(&rn.m);
    if (r == 0) {
        vmstate_changed(vm);
        log_msg(LOG_INFO, "renamed snapshot %s of %s to %s", from, vm, to);
    }
    return r > 0 ? 0 : r;
}
