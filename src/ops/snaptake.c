/* snapshot_take: an external, disk-only snapshot of every snapshot-able
 * disk of a VM, as one unit.
 *
 * The active image of each disk becomes the frozen image
 * snapshots/S/<dev>.qcow2 by a hard link (no data is copied: the cost
 * does not depend on the disk's size) and a new empty overlay backed by
 * it is renamed over disks/<dev>.qcow2, the path the definition names,
 * so a VM defined from domain.xml keeps working and that path names a
 * file at every instant (plan_images). The frozen image's relative
 * backing name is rewritten for its new directory. */
#include "config.h"

#include "ops/snapshot.h"
#include "util/monotime.h"

#include "util/log.h"
#include "store/storeio.h"
#include "vm/vmmodel.h"
#include "store/vmstate.h"
#include "meta/xmlsafe.h"
#include "vm/current.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>


/* S's snapshot.xml: the definition as it is now, each disk's source the
 * image that will hold its state at S, and the overlay that receives what
 * comes after. */
static xmlDocPtr build_snapshot_xml(struct vm_model *m, const char *snap, const char *parent,
                                    char *msg, size_t msgsz)
{
    xmlDocPtr doc = xmledit_new_snapshot(snap, NULL, parent, (int64_t)time(NULL),
                                         xmlDocGetRootElement(m->dom));
    if (!doc)
        return NULL;
    xmlNodePtr dom = xmledit_snapshot_domain(doc);
    int r = 0;
    for (size_t i = 0; r == 0 && i < m->ndisks; i++) {
        struct vm_disk *d = &m->disks[i];
        char frozen[PATH_MAX];
        store_snap_image_path(m->s, m->vm, snap, d->dev, frozen, sizeof(frozen));
        size_t n;
        struct xml_chain_link *below = vm_xml_chain(&d->chain, 1, &n);
        r = below ? xmledit_set_disk(dom, d->dev, frozen, below, n) : -ENOMEM;
        free(below);
        if (r == 0)
            r = xmledit_snapshot_add_disk(doc, d->dev, d->active);
    }
    /* Disks left out (read-only, shareable, CD-ROMs) are recorded so. */
    xmlNodePtr devices = xml_child(dom, "devices");
    for (xmlNodePtr c = devices ? devices->children : NULL; r == 0 && c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, BAD_CAST "disk") != 0)
            continue;
        char *dev = xml_attr(xml_child(c, "target"), "dev");
        bool taken = false;
        for (size_t i = 0; dev && i < m->ndisks; i++)
            taken = taken || strcmp(m->disks[i].dev, dev) == 0;
        if (dev && !taken)
            r = xmledit_snapshot_add_disk(doc, dev, NULL);
        free(dev);
    }
    if (r < 0) {
        snprintf(msg, msgsz, "cannot build snapshot.xml: %s", strerror(-r));
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

/* domain.xml after the snapshot: same sources, one more image in each
 * chain. */
static int update_definition(struct vm_model *m, const char *snap)
{
    xmlNodePtr dom = xmlDocGetRootElement(m->dom);
    for (size_t i = 0; i < m->ndisks; i++) {
        struct vm_disk *d = &m->disks[i];
        char frozen[PATH_MAX];
        store_snap_image_path(m->s, m->vm, snap, d->dev, frozen, sizeof(frozen));
        size_t n;
        struct xml_chain_link *below = vm_xml_chain(&d->chain, 0, &n);
        if (!below)
            return -ENOMEM;
        below[0].path = frozen;
        below[0].format = "qcow2";
        int r = xmledit_set_disk(dom, d->dev, d->active, below, n);
        free(below);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Each snapshot a disk grew from now sees its changes go to S's image:
 * one rewrite of its snapshot.xml for all the disks it covers. */
static int update_parents(struct vm_model *m, struct journal *j, const char *snap, char *msg,
                          size_t msgsz)
{
    for (size_t i = 0; i < m->ndisks; i++) {
        const char *parent = m->disks[i].parent;
        bool seen = !parent[0];
        for (size_t k = 0; !seen && k < i; k++)
            seen = strcmp(m->disks[k].parent, parent) == 0;
        if (seen)
            continue;
        xmlDocPtr doc;
        int r = vm_load_snapshot(m, parent, &doc, msg, msgsz);
        if (r < 0)
            return r;
        for (size_t k = i; r == 0 && k < m->ndisks; k++) {
            if (strcmp(m->disks[k].parent, parent) != 0)
                continue;
            char frozen[PATH_MAX];
            store_snap_image_path(m->s, m->vm, snap, m->disks[k].dev, frozen, sizeof(frozen));
            r = xmledit_snapshot_set_disk_source(doc, m->disks[k].dev, frozen);
            if (r == -ENOENT)
                r = 0; /* the parent did not cover this disk */
        }
        char name[NAME_MAX_LEN + 16], tmp[PATH_MAX], dst[PATH_MAX];
        snprintf(name, sizeof(name), "parent-%s.xml", parent);
        if (r == 0)
            r = vm_write_xml(m, j, doc, name, tmp, sizeof(tmp), msg, msgsz);
        xmlFreeDoc(doc);
        if (r == 0 &&
            (r = store_snap_path(m->s, m->vm, parent, "snapshot.xml", dst, sizeof(dst))) == 0)
            r = journal_replace(j, tmp, dst);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The frozen image's backing name, rewritten for its new directory
 * (snapshots/S/ is one level deeper than disks/): the step for disk d,
 * when its active image has a backing file. */
static int plan_rebase(struct vm_model *m, struct journal *j, const char *snap,
                       const char *snapdir, const struct vm_disk *d)
{
    if (d->chain.n <= 1)
        return 0;
    char frozen[PATH_MAX], rel[PATH_MAX];
    store_snap_image_path(m->s, m->vm, snap, d->dev, frozen, sizeof(frozen));
    int r = vm_relpath(snapdir, d->chain.links[1].path, rel, sizeof(rel));
    return r < 0 ? r : journal_rebase(j, frozen, rel, d->chain.links[1].format);
}

/* Per disk, the active image becomes S's frozen image and the new
 * overlay (reqs[i].path, in the temporary directory, backed by
 * ../snapshots/S/<dev>.qcow2) takes its place at disks/<dev>.qcow2.
 *
 * With hard links (every file system the store is meant for): the
 * active image gets its frozen name as a second name (a link step),
 * its backing name is rewritten for snapshots/S/, and the overlay is
 * renamed over disks/<dev>.qcow2 in one rename(2). disks/<dev>.qcow2
 * names a file at every instant: the old active image until the
 * rename, the overlay after it, whose backing file exists from before
 * it (readers of the store, another daemon's mount, libvirt's pool
 * refresh never see the disk vanish). The links of all the disks come
 * first, then each disk's rebase and its rename side by side: the first
 * of those touches a name of a link and so waits for S's directory to be
 * synced (apply.c, struct pending), once for all the links: every frozen
 * name is durable before a rename takes an image's old name away, and
 * nothing is synced between a rebase and its rename.
 *
 * What no order can avoid: a backing name is relative to the directory
 * of the name the image is opened by, and snapshots/S/ is one level
 * deeper than disks/. The header of an active image that has a backing
 * file (every take after the first, a raw base) is right for one of its
 * two names only: from the link to the rewrite the frozen name's chain
 * does not resolve (S is new, not in use yet; but the mount serves no
 * raw base of a VM with a broken chain, bases.h), and from the rewrite
 * to the rename right after it the file at disks/<dev>.qcow2 carries
 * the name for snapshots/S/, and its chain does not resolve from
 * disks/. A standalone active image (the first take) has neither: its
 * chains resolve at every instant.
 *
 * Without hard links (journal_probe_link: vfat-like file systems), the
 * active image is moved into S and the overlay put at its name: between
 * the two renames disks/<dev>.qcow2 names nothing, logged at each take.
 * Each kind of step for all the disks, one after the other. Either way a
 * step waits only for the steps whose paths it touches to be durable, so
 * S is synced once for all the images put into it and disks/ once for
 * all the overlays. */
static int plan_images(struct vm_model *m, struct journal *j, const char *snap,
                       const char *snapdir, const struct overlay_req *reqs, char *msg,
                       size_t msgsz)
{
    /* Each image (a file at its link limit says EMLINK alone), before
     * the commit: a link step that failed after it would leave a record
     * no replay finishes. */
    int r = 0;
    for (size_t i = 0; r == 0 && i < m->ndisks; i++) {
        if ((r = journal_probe_link(j, m->disks[i].active)) < 0) {
            snprintf(msg, msgsz, "cannot give %s a second name in the store's temporary "
                     "directory (%s): nothing was changed", m->disks[i].active, strerror(-r));
            return r;
        }
    }
    bool links = r == 0;
    if (!links)
        log_msg(LOG_NOTICE, "take of %s: the store's file system has no hard links: the "
                "active images are renamed, and each disks/<dev>.qcow2 names no file for an "
                "instant", m->vm);
    for (size_t i = 0; i < m->ndisks; i++) {
        char frozen[PATH_MAX];
        store_snap_image_path(m->s, m->vm, snap, m->disks[i].dev, frozen, sizeof(frozen));
        r = links ? journal_link(j, m->disks[i].active, frozen)
                  : journal_move(j, m->disks[i].active, frozen);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; links && i < m->ndisks; i++)
        if ((r = plan_rebase(m, j, snap, snapdir, &m->disks[i])) < 0 ||
            (r = journal_replace(j, reqs[i].path, m->disks[i].active)) < 0)
            return r;
    for (size_t i = 0; !links && i < m->ndisks; i++)
        if ((r = plan_rebase(m, j, snap, snapdir, &m->disks[i])) < 0)
            return r;
    for (size_t i = 0; !links && i < m->ndisks; i++)
        if ((r = journal_replace(j, reqs[i].path, m->disks[i].active)) < 0)
            return r;
    return 0;
}

/* The plan but for the overlays, which are being written meanwhile:
 * reqs[i].path is where disk i's will be. */
static int plan_rest(struct vm_model *m, struct journal *j, const char *snap, const char *parent,
                     const struct overlay_req *reqs, char *msg, size_t msgsz)
{
    char snapdir[PATH_MAX], tmpsnap[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
    int r;
    store_snap_path(m->s, m->vm, snap, NULL, snapdir, sizeof(snapdir));
    /* The snapshot directory is owned as the directory it will stand in
     * (perm.h): snapshots/, or the VM's own directory, as snapshots/
     * will be when the journal makes it. */
    struct store_perm dp;
    store_vm_path(m->s, m->vm, "snapshots", path, sizeof(path));
    if ((r = perm_of(m->s, path, &dp)) == -ENOENT)
        r = perm_of(m->s, m->dir, &dp);
    if (r < 0)
        return r;
    /* The new snapshot directory, complete with its snapshot.xml. */
    if ((size_t)snprintf(tmpsnap, sizeof(tmpsnap), "%s/snap", j->tmpdir) >= sizeof(tmpsnap))
        return -ENAMETOOLONG;
    if ((r = storeio_mkdir_as(m->s, tmpsnap, &dp)) < 0)
        return r;
    xmlDocPtr doc = build_snapshot_xml(m, snap, parent, msg, msgsz);
    if (!doc)
        return -ENOMEM;
    r = vm_write_xml(m, j, doc, "snap/snapshot.xml", tmp, sizeof(tmp), msg, msgsz);
    xmlFreeDoc(doc);
    if (r < 0)
        return r;
    if ((r = journal_mkdir(j, path)) < 0 || (r = journal_move(j, tmpsnap, snapdir)) < 0 ||
        (r = plan_images(m, j, snap, snapdir, reqs, msg, msgsz)) < 0)
        return r;
    if ((r = update_definition(m, snap)) < 0 ||
        (r = vm_write_xml(m, j, m->dom, "domain.xml", tmp, sizeof(tmp), msg, msgsz)) < 0 ||
        (r = store_vm_path(m->s, m->vm, "domain.xml", path, sizeof(path))) < 0 ||
        (r = journal_replace(j, tmp, path)) < 0)
        return r;
    return update_parents(m, j, snap, msg, msgsz);
}

static int plan(struct vm_model *m, struct journal *j, const char *snap, const char *parent,
                char *msg, size_t msgsz)
{
    /* The overlays first, on their own threads: each stands in for the
     * active image it freezes (its size, owner and mode), and the rest
     * of the plan is written while they are. */
    struct overlay_req *reqs = calloc(m->ndisks, sizeof(*reqs));
    if (!reqs)
        return -ENOMEM;
    for (size_t i = 0; i < m->ndisks; i++)
        vm_overlay_req(&reqs[i], snap, m->disks[i].dev, m->disks[i].active, m->disks[i].active);
    struct overlay_batch ob;
    int r = vm_overlays_start(m, j, reqs, m->ndisks, &ob);
    if (r == 0) {
        r = plan_rest(m, j, snap, parent, reqs, msg, msgsz);
        char why[MSG_MAX];
        int rf = vm_overlays_finish(&ob, j, r == 0 ? msg : why, r == 0 ? msgsz : sizeof(why));
        if (r == 0)
            r = rf;
    }
    free(reqs);
    return r;
}

/* An active image whose file has another name (a hard link: another VM's
 * disk, a copy made with ln) cannot be frozen: whoever holds that name
 * may still write it, and the take rewrites its header. EBUSY, as for an
 * image a qemu or a writer holds. */
static int refuse_linked(const struct store *s, const struct vm_disk *d, char *msg, size_t msgsz)
{
    struct stat st;
    if (store_lstat(s, d->active, &st) < 0 || st.st_nlink <= 1)
        return 0;
    snprintf(msg, msgsz, "disk %s: %s has %lu names (hard links); a snapshot would freeze a file "
             "another name may still write", d->dev, d->active, (unsigned long)st.st_nlink);
    return -EBUSY;
}

int snapshot_take(const struct snap_ctx *c, const char *vm, const char *snap, char *msg,
                  size_t msgsz)
{
    int64_t t0 = now_ms();
    if (!name_is_valid(snap)) {
        snprintf(msg, msgsz, "'%s' is not a valid snapshot name (1-64 of A-Z a-z 0-9 . _ + -, "
                             "not starting with . or -)", snap);
        return -EINVAL;
    }
    struct vm_model m;
    int r = vm_begin(&m, c, vm, msg, msgsz);
    if (r < 0)
        return r;
    char snapdir[PATH_MAX], parent[NAME_MAX_LEN + 1];
    store_snap_path(c->s, vm, snap, NULL, snapdir, sizeof(snapdir));
    if (storeio_exists(c->s, snapdir)) {
        snprintf(msg, msgsz, "snapshot %s already exists", snap);
        r = -EEXIST;
    }
    if (r == 0)
        r = vm_load_definition(&m, true, msg, msgsz);
    if (r == 0 && m.ndisks == 0) {
        snprintf(msg, msgsz, "the VM has no disk that can be snapshotted");
        r = -EINVAL;
    }
    for (size_t i = 0; r == 0 && i < m.ndisks; i++) {
        if (m.disks[i].chain.n >= SNAPSHOT_MAX_CHAIN) {
            snprintf(msg, msgsz,
                     "disk %s is already %zu images deep; libvirt reads no deeper definition: "
                     "delete snapshots first",
                     m.disks[i].dev, m.disks[i].chain.n);
            r = -EMLINK;
        }
    }
    for (size_t i = 0; r == 0 && i < m.ndisks; i++)
        r = refuse_linked(c->s, &m.disks[i], msg, msgsz);
    for (size_t i = 0; r == 0 && i < m.ndisks; i++)
        r = vm_hold_image(&m, m.disks[i].active, m.disks[i].dev, msg, msgsz);
    bool has_parent = r == 0 && current_snapshot(c->s, vm, parent, sizeof(parent)) == 0;
    struct journal j;
    if (r == 0 && (r = journal_begin(&j, c->s, "take", vm, msg, msgsz)) == 0) {
        r = plan(&m, &j, snap, has_parent ? parent : NULL, msg, msgsz);
        if (r == 0)
            r = vm_commit(&m, &j, msg, msgsz);
        else
            journal_abort(&j);
        journal_free(&j);
    }
    size_t ndisks = m.ndisks;
    vm_end(&m);
    if (r == 0)
        vmstate_changed(vm);
    if (r == 0)
        log_msg(LOG_INFO, "took snapshot %s of %s (%zu disk%s) in %lld ms", snap, vm, ndisks,
                ndisks == 1 ? "" : "s", (long long)(now_ms() - t0));
    return r;
}
