#include "config.h"

#include "vm/delplan.h"

#include "qemu/qcow2edit.h"
#include "vm/bgmerge.h"
#include "util/log.h"
#include "store/storeio.h"
#include "store/vmstate.h"
#include "meta/xmlsafe.h"

#include <errno.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int delplan_init(struct delplan *dp, struct vm_model *m, char *msg, size_t msgsz)
{
    memset(dp, 0, sizeof(*dp));
    dp->m = m;
    dp->msg = msg;
    dp->msgsz = msgsz;
    dp->defer = bgmerge_active();
    return igraph_build(m->s, m->vm, &dp->g, msg, msgsz);
}

int delplan_attach(struct delplan *dp, struct journal *j)
{
    dp->j = j;
    /* One hidden directory per operation, named after it: unique. */
    char rel[NAME_MAX + 1];
    snprintf(rel, sizeof(rel), "snapshots/" HIDDEN_PREFIX "%.8s", j->id);
    if (store_vm_path(dp->m->s, dp->m->vm, rel, dp->hidden_dir, sizeof(dp->hidden_dir)) < 0)
        return -ENAMETOOLONG;
    igraph_count_external(dp->m->s, dp->m->vm, &dp->g);
    return 0;
}

void delplan_free(struct delplan *dp)
{
    for (size_t i = 0; i < dp->nmoves; i++) {
        free(dp->moves[i].old);
        free(dp->moves[i].now);
    }
    free(dp->moves);
    dp->moves = NULL;
    dp->nmoves = 0;
    igraph_free(&dp->g);
}

static int note_move(struct delplan *dp, const char *old, const char *now)
{
    struct path_move *nm = realloc(dp->moves, (dp->nmoves + 1) * sizeof(*nm));
    if (!nm)
        return -ENOMEM;
    dp->moves = nm;
    nm[dp->nmoves].old = strdup(old);
    nm[dp->nmoves].now = strdup(now);
    if (!nm[dp->nmoves].old || !nm[dp->nmoves].now) {
        free(nm[dp->nmoves].old);
        free(nm[dp->nmoves].now);
        return -ENOMEM;
    }
    dp->nmoves++;
    return 0;
}

/* Once per node (held as WRITE in the operation's lock set: a merge
 * writes it, or a step moves or edits it). An image another VM's image
 * backs onto is never removed or written into
 * (the journal of this VM cannot follow into that VM): -EBUSY. */
static int hold(struct delplan *dp, int i)
{
    struct gnode *nd = &dp->g.n[i];
    if (nd->external) {
        snprintf(dp->msg, dp->msgsz, "%s is the backing file of %u image(s) of other VMs",
                 nd->path, nd->external);
        return -EBUSY;
    }
    if (nd->kind == G_OTHER || nd->held)
        return 0;
    int r = vm_hold_image(dp->m, nd->path, nd->kind == G_ACTIVE ? nd->dev : NULL, dp->msg,
                          dp->msgsz);
    nd->held = r == 0;
    return r;
}

/* The images below F, which the merge's qemu-img reads (its backing
 * chain): kept from writers from this check on, as the merge will hold
 * them (merge.c), so that no qemu opening one for writing after the
 * check makes the merge fail after its commit. One held already (F, C,
 * or an image this plan hid: its node names where it goes, not where it
 * is) stays as it is. */
static int hold_below(struct delplan *dp, int f)
{
    size_t depth = 0;
    for (int k = dp->g.n[f].parent; k >= 0 && depth++ <= dp->g.count; k = dp->g.n[k].parent) {
        if (dp->g.n[k].held)
            continue;
        int r = vm_hold_image_read(dp->m, dp->g.n[k].path, dp->msg, dp->msgsz);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The relative backing name image i needs to reach node `to`. */
static int name_for(const struct delplan *dp, int i, int to, char *out, size_t outsz)
{
    char dir[PATH_MAX];
    igraph_dir(&dp->g.n[i], dir, sizeof(dir));
    return vm_relpath(dir, dp->g.n[to].path, out, outsz);
}

int delplan_remove(struct delplan *dp, int i)
{
    struct gnode *nd = &dp->g.n[i];
    char to[PATH_MAX];
    int r = hold(dp, i);
    if (r < 0)
        return r;
    if ((size_t)snprintf(to, sizeof(to), "%s/rm-%u-%s.qcow2", dp->j->tmpdir, dp->nrm++,
                         nd->dev[0] ? nd->dev : "x") >= sizeof(to))
        return -ENAMETOOLONG;
    if ((r = journal_move(dp->j, nd->path, to)) < 0 || (r = note_move(dp, nd->path, "")) < 0)
        return r;
    nd->gone = true;
    dp->changed = true;
    return 0;
}

/* A merge that cannot finish must not start: the store's file system has
 * room for what every merge planned may write (the side copied, its
 * allocation, plus an eighth for qcow2 metadata and a MiB), or the plan
 * fails with ENOSPC before anything changes. */
static int room_for(struct delplan *dp, uint64_t bytes)
{
    dp->need_bytes += bytes + bytes / 8 + (1u << 20);
    struct statvfs sv;
    if (fstatvfs(dp->m->s->rootfd, &sv) < 0)
        return 0; /* not known: qemu-img will say */
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (avail >= dp->need_bytes)
        return 0;
    snprintf(dp->msg, dp->msgsz, "the merges need up to %llu KiB, the store's file system has "
             "%llu KiB free", (unsigned long long)(dp->need_bytes >> 10),
             (unsigned long long)(avail >> 10));
    return -ENOSPC;
}

/* Every image the merge of F into C or C into F will open: C and the
 * whole chain below it (qemu-img opens backing files down to the base).
 * A qemu-img that cannot open one fails after the commit, and so would
 * every replay of the record: the VM would answer every operation with
 * EIO. Refused here, before anything changes (qcow2check.h). */
static int check_merge(struct delplan *dp, int c, const char *note)
{
    char why[MSG_MAX];
    for (int k = c, depth = 0; k >= 0 && (size_t)depth <= dp->g.count;
         k = dp->g.n[k].parent, depth++) {
        int r = igraph_check_open(dp->m->s, &dp->g, k, why, sizeof(why));
        if (r < 0) {
            snprintf(dp->msg, dp->msgsz, "the merge of %s cannot run: %s", note, why);
            return r;
        }
    }
    return 0;
}

static int merge(struct delplan *dp, int f, int c, const char *note)
{
    struct gnode *F = &dp->g.n[f], *C = &dp->g.n[c];
    int p = F->parent, r;
    if ((r = check_merge(dp, c, note)) < 0)
        return r;
    char name[PATH_MAX] = "";
    const char *fmt = p >= 0 ? dp->g.n[p].format : NULL;
    if (p >= 0 && (r = name_for(dp, c, p, name, sizeof(name))) < 0)
        return r;
    /* Pull copies about F's allocation into C, commit about C's into F.
     * Neither writes into a file a reader has open through the mount (a
     * backup copying it), nor pull into C when C's file has another name
     * (a hard link; F has none: delplan_release, delplan_gc): pull
     * writes into C, commit into F (which then takes C's name by a
     * rename, under which C's readers keep C). */
    bool pull = F->alloc <= C->alloc;
    bool c_read = bgmerge_image_read(C->path), f_read = bgmerge_image_read(F->path);
    if ((c_read || C->links > 1) && f_read) {
        snprintf(dp->msg, dp->msgsz, "%s is open for reading through the mount and %s may not "
                 "be written either: the merge waits for the readers", F->path, C->path);
        return -EBUSY;
    }
    if (pull && C->links > 1)
        log_msg(LOG_NOTICE, "merge of %s %s: %s has %u names (hard links), so it is not written "
                "into: commit into %s instead of pull", dp->m->vm, note, C->path, C->links,
                F->path);
    if (c_read || C->links > 1)
        pull = false;
    else if (f_read)
        pull = true;
    /* The room first: a merge refused for want of it takes no image
     * lock, so a reader opening one meanwhile is never turned away by a
     * retry that cannot run anyway. */
    if ((r = room_for(dp, pull ? F->alloc : C->alloc)) < 0 || (r = hold(dp, f)) < 0 ||
        (r = hold(dp, c)) < 0 || (r = hold_below(dp, f)) < 0)
        return r;
    dp->changed = true;
    if (pull) {
        /* What C backs onto when the pull runs, as the steps before it
         * leave it: where a replay starts the copy again. */
        char from[PATH_MAX];
        if ((r = name_for(dp, c, f, from, sizeof(from))) < 0 ||
            (r = journal_pull(dp->j, C->path, name, fmt, from, F->format, note)) < 0)
            return r;
        C->parent = p;
        C->alloc += F->alloc;
        /* What named F as where changes went now names C. */
        if ((r = note_move(dp, F->path, C->path)) < 0)
            return r;
        return delplan_remove(dp, f);
    }
    /* Commit, replace and rename are replayed together: a qemu that
     * wrote to C after the commit (started between a crash and the next
     * mount) has its writes committed again before F takes C's place.
     * F's name is rewritten for C's directory last, where it stands: up
     * to then the commit can run again. */
    if ((r = journal_commit_down(dp->j, C->path, F->path, note)) < 0)
        return r;
    journal_group_last(dp->j);
    if ((r = journal_replace(dp->j, F->path, C->path)) < 0 || (r = note_move(dp, F->path, C->path)) < 0)
        return r;
    if (p >= 0) {
        char fname[PATH_MAX];
        if ((r = name_for(dp, f, p, fname, sizeof(fname))) < 0)
            return r;
        if (strcmp(fname, name) != 0) {
            journal_group_last(dp->j);
            if ((r = journal_rebase(dp->j, C->path, name, fmt)) < 0)
                return r;
        }
    }
    C->parent = p;
    C->alloc += F->alloc;
    F->gone = true;
    return 0;
}

/* Image k's backing name becomes name: an edit of its header in place,
 * unless a reader has the image open through the mount (a backup copying
 * it). Then a copy with the new name takes its place by a rename (shared
 * extents where the file system has them), and the reader keeps the file
 * it opened, byte for byte. */
static int set_backing(struct delplan *dp, int k, const char *name, const char *fmt)
{
    const char *path = dp->g.n[k].path;
    if (!bgmerge_image_read(path))
        return journal_rebase(dp->j, path, name, fmt);
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/read-%u", dp->j->tmpdir, dp->nrm++) >= sizeof(tmp))
        return -ENAMETOOLONG;
    int fd, r = storeio_copy_new(dp->m->s, path, tmp, &fd);
    if (r < 0) {
        snprintf(dp->msg, dp->msgsz, "cannot copy %s, open for reading: %s", path, strerror(-r));
        return r;
    }
    r = qcow2_set_backing_name(fd, name, dp->msg, dp->msgsz);
    close(fd);
    if (r == -ENOSPC) /* the new name does not fit in place: edited as usual */
        return journal_rebase(dp->j, path, name, fmt);
    if (r == 0)
        r = journal_prepared(dp->j, tmp, dp->msg, dp->msgsz);
    if (r == 0) {
        log_msg(LOG_INFO, "%s is open for reading through the mount: a copy with its new "
                "backing name takes its place, the reader keeps what it opened", path);
        r = journal_replace(dp->j, tmp, path);
    }
    return r;
}

static int hide(struct delplan *dp, int f)
{
    struct gnode *F = &dp->g.n[f];
    int r = hold(dp, f);
    if (r < 0)
        return r;
    /* Asked now, while the file is at the path the node names: a merge
     * later in this plan asks it of the node, not of the path. */
    char why[MSG_MAX];
    if ((r = igraph_check_open(dp->m->s, &dp->g, f, why, sizeof(why))) < 0 && r != -EINVAL) {
        snprintf(dp->msg, dp->msgsz, "%s", why);
        return r;
    }
    if (!dp->hidden_made) {
        if ((r = journal_mkdir(dp->j, dp->hidden_dir)) < 0)
            return r;
        dp->hidden_made = true;
    }
    char to[PATH_MAX];
    if ((size_t)snprintf(to, sizeof(to), "%s/%s" IMAGE_SUFFIX, dp->hidden_dir, F->dev) >=
        sizeof(to))
        return -ENAMETOOLONG;
    if (storeio_exists(dp->m->s, to) || igraph_find(&dp->g, to) >= 0) {
        snprintf(dp->msg, dp->msgsz, "%s already exists", to);
        return -EEXIST;
    }
    if ((r = journal_move(dp->j, F->path, to)) < 0 || (r = note_move(dp, F->path, to)) < 0)
        return r;
    snprintf(F->path, sizeof(F->path), "%s", to);
    snprintf(F->dir, sizeof(F->dir), "%s", strrchr(dp->hidden_dir, '/') + 1);
    F->kind = G_HIDDEN;
    dp->changed = true;
    /* The dependents' names follow it: written into their headers, so
     * never into a file that has another name (a hard link). */
    for (size_t k = 0; k < dp->g.count; k++) {
        if (dp->g.n[k].gone || dp->g.n[k].parent != f)
            continue;
        if (dp->g.n[k].links > 1) {
            snprintf(dp->msg, dp->msgsz, "%s has %u names (hard links): its backing file name "
                     "cannot be rewritten", dp->g.n[k].path, dp->g.n[k].links);
            return -EBUSY;
        }
        char name[PATH_MAX];
        if ((r = hold(dp, (int)k)) < 0 || (r = name_for(dp, (int)k, f, name, sizeof(name))) < 0 ||
            (r = set_backing(dp, (int)k, name, F->format)) < 0)
            return r;
    }
    return 0;
}

/* Another name of F's file (a hard link: another VM's image, a copy made
 * with ln) counts as one more dependent: whoever holds it reads F as it
 * is, so F is never merged into (hidden instead) while that name is
 * there. Removing F's own name writes nothing, and with no dependent in
 * the VM that is what happens. */
static size_t dependents(const struct delplan *dp, int f, int *out, size_t max)
{
    size_t n = igraph_dependents(&dp->g, f, out, max);
    return n > 0 && dp->g.n[f].links > 1 ? n + 1 : n;
}

int delplan_release(struct delplan *dp, int f, const char *note)
{
    int deps[2];
    size_t n = dependents(dp, f, deps, 2);
    if (n == 0)
        return delplan_remove(dp, f);
    if (n == 1 && !dp->defer)
        return merge(dp, f, deps[0], note);
    /* The merge the background worker will run: refused now, by the
     * removal that asks for it, rather than failing there again and
     * again. */
    int r;
    if (n == 1 && (r = check_merge(dp, deps[0], note)) < 0)
        return r;
    if (dp->g.n[f].links > 1 && igraph_dependents(&dp->g, f, deps, 2) == 1)
        log_msg(LOG_NOTICE, "delete of %s %s: %s has %u names (hard links): kept hidden, never "
                "written into", dp->m->vm, note, dp->g.n[f].path, dp->g.n[f].links);
    return hide(dp, f);
}

int delplan_gc(struct delplan *dp)
{
    for (bool again = true; again;) {
        again = false;
        for (size_t i = 0; i < dp->g.count; i++) {
            struct gnode *nd = &dp->g.n[i];
            if (nd->gone || nd->kind != G_HIDDEN)
                continue;
            int deps[2];
            size_t n = dependents(dp, (int)i, deps, 2);
            if (n > 1 || (n == 1 && dp->defer))
                continue;
            char note[NAME_MAX + DEV_MAX_LEN + 2];
            snprintf(note, sizeof(note), "%s/%s", nd->dir, nd->dev);
            int r = n == 0 ? delplan_remove(dp, (int)i) : merge(dp, (int)i, deps[0], note);
            if (r < 0)
                return r;
            again = true;
        }
    }
    return 0;
}

/* ---- XML from the graph ---- */

/* Every disk source of a <domain> that is one of the graph's images gets
 * its chain as the graph will have it; moved paths follow first. */
static int fix_domain(struct delplan *dp, xmlNodePtr dom)
{
    if (!dom)
        return 0;
    for (size_t i = 0; i < dp->nmoves; i++)
        if (dp->moves[i].now[0])
            xmledit_rewrite_path(dom, dp->moves[i].old, dp->moves[i].now);
    xmlNodePtr devices = xml_child(dom, "devices");
    for (xmlNodePtr d = devices ? devices->children : NULL; d; d = d->next) {
        if (d->type != XML_ELEMENT_NODE || xmlStrcmp(d->name, BAD_CAST "disk") != 0)
            continue;
        char *src = xml_attr(xml_child(d, "source"), "file");
        char *dev = xml_attr(xml_child(d, "target"), "dev");
        int at = src ? igraph_find(&dp->g, src) : -1;
        int r = 0;
        if (at >= 0 && dev && !dp->g.n[at].gone) {
            size_t n;
            struct xml_chain_link *below = igraph_chain(&dp->g, at, &n);
            r = below ? xmledit_set_disk(dom, dev, src, below, n) : -ENOMEM;
            free(below);
        }
        free(src);
        free(dev);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Writes doc through the journal when it differs from what it was. */
static int write_if_changed(struct delplan *dp, xmlDocPtr doc, const char *before,
                            const char *tmpname, const char *dst)
{
    char *after;
    size_t len;
    int r = xmledit_dump(doc, &after, &len);
    if (r < 0)
        return r;
    bool same = strcmp(before, after) == 0;
    free(after);
    if (same)
        return 0;
    char tmp[PATH_MAX];
    if ((r = vm_write_xml(dp->m, dp->j, doc, tmpname, tmp, sizeof(tmp), dp->msg, dp->msgsz)) < 0)
        return r;
    dp->changed = true;
    return journal_replace(dp->j, tmp, dst);
}

struct xml_ctx {
    struct delplan *dp;
    struct delxml x;
    char *new_parent; /* the deleted snapshot's parent, NULL when none */
};

static int fix_snapshot(const char *snap, void *arg)
{
    struct xml_ctx *xc = arg;
    struct delplan *dp = xc->dp;
    const struct delxml *x = &xc->x;
    if (x->deleted && strcmp(snap, x->deleted) == 0)
        return 0;
    xmlDocPtr doc;
    int r = vm_load_snapshot(dp->m, snap, &doc, dp->msg, dp->msgsz);
    if (r < 0)
        return r;
    char *before = NULL;
    size_t len;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if ((r = xmledit_dump(doc, &before, &len)) == 0 && x->deleted) {
        char *parent = xml_child_text(xml_child(root, "parent"), "name");
        if (parent && strcmp(parent, x->deleted) == 0)
            r = xmledit_set_parent(doc, xc->new_parent);
        free(parent);
    }
    if (r == 0 && x->partial_snap && strcmp(snap, x->partial_snap) == 0)
        r = xmledit_snapshot_disk_off(doc, x->partial_dev);
    if (r == 0)
        r = fix_domain(dp, xmledit_snapshot_domain(doc));
    if (r == 0) {
        /* <disks> sources: where later changes went, now moved, or gone
         * (a detached disk's active image: no source is left to name). */
        xmlNodePtr disks = xml_child(root, "disks");
        for (size_t i = 0; disks && i < dp->nmoves; i++) {
            if (dp->moves[i].now[0])
                xmledit_rewrite_path(disks, dp->moves[i].old, dp->moves[i].now);
            else
                xmledit_snapshot_forget_source(doc, dp->moves[i].old);
        }
    }
    char name[NAME_MAX_LEN + 16], dst[PATH_MAX];
    snprintf(name, sizeof(name), "snap-%s.xml", snap);
    if (r == 0 && (r = store_snap_path(dp->m->s, dp->m->vm, snap, "snapshot.xml", dst,
                                       sizeof(dst))) == 0)
        r = write_if_changed(dp, doc, before, name, dst);
    free(before);
    xmlFreeDoc(doc);
    return r;
}

struct graph_dir {
    const struct delplan *dp;
    const char *dir;
};

static int not_in_graph(const char *name, void *arg)
{
    const struct graph_dir *gd = arg;
    char path[PATH_MAX + NAME_MAX + 2];
    snprintf(path, sizeof(path), "%s/%s", gd->dir, name);
    return igraph_find(&gd->dp->g, path) < 0;
}

/* Does dir hold nothing but images of the graph? A hidden directory
 * with anything else in it (planted, or left by hand) is left alone. */
static bool only_graph_images(const struct delplan *dp, const char *dir)
{
    struct graph_dir gd = { dp, dir };
    return storeio_each(dp->m->s, dir, not_in_graph, &gd) == 0;
}

/* A hidden directory whose images have all gone goes too (where it can
 * be renamed). */
static int drop_empty_hidden(struct delplan *dp)
{
    for (size_t i = 0; i < dp->g.count; i++) {
        const struct gnode *nd = &dp->g.n[i];
        if (!nd->gone || nd->kind != G_HIDDEN)
            continue;
        bool live = false, first = true;
        for (size_t k = 0; k < dp->g.count; k++) {
            const struct gnode *o = &dp->g.n[k];
            if (o->kind != G_HIDDEN || strcmp(o->dir, nd->dir) != 0)
                continue;
            live |= !o->gone;
            if (o->gone && k < i)
                first = false; /* the directory was handled with node k */
        }
        if (live || !first)
            continue;
        char path[PATH_MAX], to[PATH_MAX];
        igraph_dir(nd, path, sizeof(path));
        if (!only_graph_images(dp, path))
            continue;
        /* A hidden directory an overlayfs store has in its lower layer
         * cannot be renamed (EXDEV): it stays, empty, rather than the
         * merge that emptied it being refused for good. */
        if (journal_probe_rename(dp->j, path) == -EXDEV) {
            log_msg(LOG_NOTICE, "%s: %s stays, empty: a directory of an overlayfs lower layer "
                    "cannot be renamed", dp->m->vm, path);
            continue;
        }
        if ((size_t)snprintf(to, sizeof(to), "%s/hidden-%u", dp->j->tmpdir, dp->nrm++) >=
            sizeof(to))
            return -ENAMETOOLONG;
        int r = journal_move(dp->j, path, to);
        if (r < 0)
            return r;
    }
    return 0;
}

int delplan_write_xml(struct delplan *dp, const struct delxml *want)
{
    int r0 = drop_empty_hidden(dp);
    if (r0 < 0)
        return r0;
    struct xml_ctx x = { .dp = dp };
    if (want)
        x.x = *want;
    int r = 0;
    if (x.x.deleted) {
        xmlDocPtr doc;
        if ((r = vm_load_snapshot(dp->m, x.x.deleted, &doc, dp->msg, dp->msgsz)) < 0)
            return r;
        x.new_parent = xml_child_text(xml_child(xmlDocGetRootElement(doc), "parent"), "name");
        xmlFreeDoc(doc);
    }
    r = store_list_snapshots(dp->m->s, dp->m->vm, fix_snapshot, &x);
    free(x.new_parent);
    if (r < 0 || !dp->m->dom)
        return r;
    char *before;
    size_t len;
    char dst[PATH_MAX];
    if ((r = xmledit_dump(dp->m->dom, &before, &len)) < 0)
        return r;
    if (x.x.detach_dev)
        xmledit_remove_disk(xmlDocGetRootElement(dp->m->dom), x.x.detach_dev);
    r = fix_domain(dp, xmlDocGetRootElement(dp->m->dom));
    if (r == 0 && (r = store_vm_path(dp->m->s, dp->m->vm, "domain.xml", dst, sizeof(dst))) == 0)
        r = write_if_changed(dp, dp->m->dom, before, "domain.xml", dst);
    free(before);
    return r;
}

/* Is there a hidden image with fewer than two dependents (dependents())? */
static bool has_garbage(const struct delplan *dp)
{
    for (size_t i = 0; i < dp->g.count; i++) {
        int deps[2];
        if (dp->g.n[i].kind == G_HIDDEN && dependents(dp, (int)i, deps, 2) < 2)
            return true;
    }
    return false;
}

int delplan_collect(struct vm_model *m, char *msg, size_t msgsz)
{
    struct delplan dp;
    int r = delplan_init(&dp, m, msg, msgsz);
    dp.defer = false;
    /* No operation at all (no record, no crash point) when there is
     * nothing to collect: the common case, after every revert. */
    if (r < 0 || !has_garbage(&dp)) {
        delplan_free(&dp);
        return r < 0 ? r : 0;
    }
    /* The caller's operation is done: its locks would be in the way. */
    vm_drop_image_locks(m);
    struct journal j;
    if ((r = journal_begin(&j, m->s, "gc", m->vm, msg, msgsz)) < 0) {
        delplan_free(&dp);
        return r;
    }
    if ((r = delplan_attach(&dp, &j)) == 0)
        r = delplan_gc(&dp);
    if (r == 0 && dp.changed)
        r = delplan_write_xml(&dp, NULL);
    if (r == 0 && dp.changed)
        r = vm_commit(m, &j, msg, msgsz);
    else
        journal_abort(&j);
    delplan_free(&dp);
    journal_free(&j);
    return r;
}

int delplan_settle(struct vm_model *m, char *msg, size_t msgsz)
{
    if (!bgmerge_active())
        return delplan_collect(m, msg, msgsz);
    bgmerge_kick(m->vm);
    return 0;
}

struct collect_all {
    const struct store *s;
    int done;
};

/* One VM with a hidden directory: its garbage pass, under its lock (a
 * VM another daemon is working on is left to that daemon). */
static int is_hidden_dir(const char *name, void *arg)
{
    (void)arg;
    return name_is_hidden_dir(name);
}

/* Does vm have a hidden directory at all? (One readdir: most VMs have
 * none, and need neither their lock nor their chains read.) */
static bool has_hidden_dir(const struct store *s, const char *vm)
{
    char dir[PATH_MAX];
    return store_vm_path(s, vm, "snapshots", dir, sizeof(dir)) == 0 &&
           storeio_each(s, dir, is_hidden_dir, NULL) > 0;
}

static int collect_vm(const char *vm, void *arg)
{
    struct collect_all *ca = arg;
    char msg[MSG_MAX];
    if (!has_hidden_dir(ca->s, vm))
        return 0;
    struct snap_ctx c = { .s = ca->s };
    struct vm_model m;
    if (vm_begin(&m, &c, vm, msg, sizeof(msg)) < 0)
        return 0;
    int r = vm_load_definition(&m, false, msg, sizeof(msg));
    if (r == 0)
        r = delplan_collect(&m, msg, sizeof(msg));
    vm_end(&m);
    if (r < 0)
        log_msg(LOG_WARNING, "hidden images of %s not collected: %s", vm, msg);
    else
        ca->done++;
    return 0;
}

int delplan_collect_store(const struct store *s)
{
    struct collect_all ca = { s, 0 };
    store_list_vms(s, collect_vm, &ca);
    return ca.done;
}
