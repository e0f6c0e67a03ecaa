/* snapshot_rename: S becomes T, and everything that names S follows.
 *
 * The directory is renamed; every image of the VM whose backing file is
 * one of S's images gets its relative backing name rewritten. Which ones
 * they are comes from the VM's image graph (imagegraph.h), as for a
 * delete: the next snapshot's, the active ones, other branches', and the
 * hidden images of deleted snapshots (snapshots/.hidden-<id>/), which no
 * listing of snapshots shows but whose chains the active disk and later
 * snapshots read through. Every XML path into S (domain.xml's chains,
 * the snapshots' <domain> chains and <disks> sources) and the children's
 * <parent> are rewritten. No data moves: the cost is a few header and
 * XML writes, whatever the disks' sizes; the graph is this VM's images
 * only (no other VM's header is read: an image's backing file lies in
 * its own VM, SPEC "Permissions"). */
#include "config.h"

#include "ops/snapshot.h"

#include "util/log.h"
#include "store/storeio.h"
#include "vm/imagegraph.h"
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
    struct igraph g;
    const char *from, *to;
    char from_dir[PATH_MAX], to_dir[PATH_MAX];
    char *msg;
    size_t msgsz;
};

/* Is path below directory dir? */
static bool below(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    return strncmp(path, dir, dl) == 0 && path[dl] == '/';
}

/* Keeps qemu off an image (and, for an active image, writers through the
 * mount): a qemu holding an image would go on reading it by its old
 * name, or see its header change under it. */
static int hold(struct rename *rn, const struct gnode *nd)
{
    return vm_hold_image(&rn->m, nd->path, nd->kind == G_ACTIVE ? nd->dev : NULL, rn->msg,
                         rn->msgsz);
}

/* Every image of the graph: S's own move with their directory (held;
 * their names of their parents, beside S, stay right), and each image
 * outside S that grows from one of S's gets the name of that image's new
 * path. Each node is met once: one hold per image. */
static int plan_images(struct rename *rn)
{
    size_t fl = strlen(rn->from_dir);
    for (size_t i = 0; i < rn->g.count; i++) {
        const struct gnode *nd = &rn->g.n[i];
        if (below(nd->path, rn->from_dir)) {
            int r = hold(rn, nd);
            if (r < 0)
                return r;
            continue;
        }
        if (nd->parent < 0 || !below(rn->g.n[nd->parent].path, rn->from_dir))
            continue;
        const struct gnode *p = &rn->g.n[nd->parent];
        char target[PATH_MAX], dir[PATH_MAX], rel[PATH_MAX];
        if ((size_t)snprintf(target, sizeof(target), "%s%s", rn->to_dir, p->path + fl) >=
            sizeof(target))
            return -ENAMETOOLONG;
        igraph_dir(nd, dir, sizeof(dir));
        int r = hold(rn, nd);
        if (r == 0)
            r = vm_relpath(dir, target, rel, sizeof(rel));
        if (r == 0)
            r = journal_rebase(rn->j, nd->path, rel, p->format);
        if (r < 0)
            return r;
    }
    return 0;
}

/* A snapshot's XML: its name (S itself), its parent (S's children) and
 * any path into S. Written only when something changed. */
static int visit_snapshot(const char *snap, void *arg)
{
    struct rename *rn = arg;
    xmlDocPtr doc;
    int r = vm_load_snapshot(&rn->m, snap, &doc, rn->msg, rn->msgsz);
    if (r < 0)
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
        r = vm_write_xml(&rn->m, rn->j, doc, name, tmp, sizeof(tmp), rn->msg, rn->msgsz);
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

static int plan(struct rename *rn, char *msg, size_t msgsz)
{
    struct vm_model *m = &rn->m;
    int r = igraph_build(m->s, m->vm, &rn->g, msg, msgsz);
    if (r == 0)
        r = journal_move(rn->j, rn->from_dir, rn->to_dir);
    if (r == 0)
        r = plan_images(rn);
    if (r == 0)
        r = store_list_snapshots(m->s, m->vm, visit_snapshot, rn);
    if (r == 0 && m->dom) {
        int changed = xmledit_rewrite_prefix(xmlDocGetRootElement(m->dom), rn->from_dir,
                                             rn->to_dir);
        char tmp[PATH_MAX], dst[PATH_MAX];
        if (changed && (r = vm_write_xml(m, rn->j, m->dom, "domain.xml", tmp, sizeof(tmp), msg,
                                         msgsz)) == 0 &&
            (r = store_vm_path(m->s, m->vm, "domain.xml", dst, sizeof(dst))) == 0)
            r = journal_replace(rn->j, tmp, dst);
    }
    igraph_free(&rn->g);
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
