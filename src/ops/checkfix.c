/* checkfix: the repairs the check makes (check.h), only where the right
 * answer is plain: never a guess, never a deletion. Each runs under the
 * VM's lock, exclusive, and holds qemu's lock on an image it changes
 * (imagelock.h): an image a qemu has open is left, and said so. */
#include "config.h"

#include "ops/checkint.h"

#include "meta/domxml.h"
#include "meta/xmledit.h"
#include "meta/xmlschema.h"
#include "qemu/chain.h"
#include "qemu/qcow2edit.h"
#include "store/imagelock.h"
#include "store/perm.h"
#include "store/storeio.h"
#include "store/vmlock.h"
#include "vm/vmmodel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static void dir_of(const char *path, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

int check_hold(struct cvm *v, int i, struct check_hold *h, const char **why)
{
    h->image = h->writers = -1;
    const struct cnode *n = &v->n[i];
    if (n->kind == N_ACTIVE && n->dev[0]) {
        h->writers = vmlock_writers_exclude(v->s, v->vm, n->dev);
        if (h->writers == -EBUSY) {
            *why = "open for writing through a mount: not changed";
            return -EBUSY;
        }
    }
    h->image = imagelock_hold(v->s, n->path);
    if (h->image == -EBUSY) {
        check_release(h);
        *why = "in use by a qemu: not changed";
        return -EBUSY;
    }
    return 0;
}

void check_release(struct check_hold *h)
{
    if (h->image >= 0)
        imagelock_drop(h->image);
    if (h->writers >= 0)
        close(h->writers);
    h->image = h->writers = -1;
}

/* Does k's chain, walked up, stay whole (no refused or missing link, no
 * loop) and keep clear of node avoid? */
static bool chain_clean(const struct cvm *v, int k, int avoid)
{
    for (size_t steps = 0; k >= 0; k = v->n[k].parent, steps++)
        if (k == avoid || v->n[k].broken || !v->n[k].exists || v->n[k].loop_said ||
            steps > v->count)
            return false;
    return true;
}

/* Is c the missing file under another name? Only with evidence: its
 * snapshot directory's snapshot.xml calls it by the missing file's
 * directory name (a snapshot directory renamed by hand), or both are
 * hidden directories (whose names nothing else records). */
static bool stands_in(const struct cvm *v, const struct cnode *c, const char *missing)
{
    char mdir[PATH_MAX];
    dir_of(missing, mdir, sizeof(mdir));
    const char *mname = base_name(mdir);
    if (c->kind == N_HIDDEN)
        return name_is_hidden_dir(mname);
    for (size_t k = 0; k < v->nsnaps; k++)
        if (strcmp(v->snaps[k].name, c->dir) == 0)
            return v->snaps[k].xml_ok && strcmp(v->snaps[k].xml_name, mname) == 0;
    return false;
}

/* The stand-in for a missing backing file: the one image of the VM that
 * has the missing file's name (<dev>.qcow2: the same disk), is frozen or
 * hidden, has no dependent of its own (what the missing file was: the
 * tip of the chain below), is that file by the evidence stands_in asks
 * for, and whose chain is whole and does not run through the image
 * being relinked. None, or two, and it is left: never a guess. */
void fix_relink(struct cvm *v, struct check_finding *f, int node)
{
    struct cnode *n = &v->n[node];
    int found = -1, count = 0;
    for (size_t k = 0; k < v->count; k++) {
        const struct cnode *c = &v->n[k];
        if ((int)k == node || !c->exists || c->stray || !c->header_ok || c->ndeps ||
            (c->kind != N_FROZEN && c->kind != N_HIDDEN) ||
            strcmp(base_name(c->path), base_name(n->backing)) != 0 ||
            !stands_in(v, c, n->backing) || !chain_clean(v, (int)k, node))
            continue;
        found = (int)k;
        count++;
    }
    if (count != 1) {
        check_action(f, false, count ? "%d images could stand in for it: not guessed"
                                     : "no image of the VM can stand in for it", count);
        return;
    }
    char dir[PATH_MAX], rel[PATH_MAX], why[MSG_MAX] = "";
    const char *busy;
    struct check_hold h = { -1, -1 };
    dir_of(n->path, dir, sizeof(dir));
    int r = vm_relpath(dir, v->n[found].path, rel, sizeof(rel));
    if (r == 0 && check_hold(v, node, &h, &busy) < 0) {
        check_action(f, false, "%s", busy);
        return;
    }
    int fd = r < 0 ? r : store_open_file(v->s, n->path, O_RDWR | O_NOFOLLOW);
    r = fd < 0 ? fd : qcow2_set_backing_name(fd, rel, why, sizeof(why));
    if (fd >= 0)
        close(fd);
    check_release(&h);
    if (r < 0) {
        check_action(f, false, "cannot relink it to %s: %s", rel, why[0] ? why : strerror(-r));
        return;
    }
    n->parent = found;
    n->broken = false;
    v->n[found].ndeps++;
    snprintf(n->backing, sizeof(n->backing), "%s", v->n[found].path);
    check_action(f, true, "relinked to %s", rel);
}

/* The snapshot a frozen image's chain grows from: the first visible
 * snapshot's image below it (hidden ones are skipped, as the listing
 * skips them). */
const char *check_parent_snapshot(const struct cvm *v, int k)
{
    size_t steps = 0;
    for (int p = v->n[k].parent; p >= 0 && steps <= v->count; p = v->n[p].parent, steps++)
        if (v->n[p].kind == N_FROZEN)
            return v->n[p].dir;
    return NULL;
}

static int first_dependent(const struct cvm *v, int k)
{
    for (size_t i = 0; i < v->count; i++)
        if (v->n[i].parent == k && v->n[i].exists)
            return (int)i;
    return -1;
}

/* Builds what the daemon's take writes (snaptake.c) from what is left:
 * the images in the directory, their chains, the definition (the
 * nearest thing there is to the one at the time), the images' time
 * (unless the caller knows it: created, not 0). */
int check_build_snapshot(struct cvm *v, const char *snap, const char *description, int64_t created,
                         xmlDocPtr *out, char *why, size_t whysz)
{
    struct dom_info info;
    int r = domxml_read_doc(v->dom, &info, why, whysz);
    if (r < 0)
        return r;
    const char *parent = NULL;
    time_t when = 0;
    for (size_t i = 0; i < v->count; i++) {
        const struct cnode *c = &v->n[i];
        if (c->kind != N_FROZEN || strcmp(c->dir, snap) != 0 || !c->exists)
            continue;
        if (!chain_clean(v, (int)i, -1)) {
            snprintf(why, whysz, "the chain of %s is broken", c->path);
            domxml_free(&info);
            return -EINVAL;
        }
        if (!parent)
            parent = check_parent_snapshot(v, (int)i);
        if (!when || c->st.st_mtime < when)
            when = c->st.st_mtime;
    }
    xmlDocPtr doc = xmledit_new_snapshot(
        snap, description, parent, created ? created : (int64_t)when, xmlDocGetRootElement(v->dom));
    if (!doc) {
        domxml_free(&info);
        return -ENOMEM;
    }
    xmlNodePtr dom = xmledit_snapshot_domain(doc);
    for (size_t d = 0; d < info.ndisks && r == 0; d++) {
        const struct dom_disk *disk = &info.disks[d];
        char frozen[PATH_MAX], active[PATH_MAX];
        if (!dom_disk_is_snapshotable(disk) ||
            store_snap_image_path(v->s, v->vm, snap, disk->dev, frozen, sizeof(frozen)) < 0 ||
            store_disk_path(v->s, v->vm, disk->dev, active, sizeof(active)) < 0)
            continue;
        int k = cvm_find(v, frozen);
        if (k < 0 || !v->n[k].exists) {
            r = xmledit_snapshot_add_disk(doc, disk->dev, NULL);
            continue;
        }
        struct xml_chain_link below[CHAIN_MAX_DEPTH];
        size_t nb = 0;
        for (int p = v->n[k].parent; p >= 0 && nb < CHAIN_MAX_DEPTH; p = v->n[p].parent) {
            below[nb].path = v->n[p].path;
            below[nb++].format = v->n[p].raw ? "raw" : "qcow2";
        }
        r = xmledit_set_disk(dom, disk->dev, frozen, below, nb);
        int dep = first_dependent(v, k);
        if (r == 0)
            r = xmledit_snapshot_add_disk(doc, disk->dev, dep >= 0 ? v->n[dep].path : active);
        v->n[k].referenced = true;
    }
    domxml_free(&info);
    if (r < 0) {
        snprintf(why, whysz, "%s", strerror(-r));
        xmlFreeDoc(doc);
        return r;
    }
    *out = doc;
    return 0;
}

void fix_snapshot_xml(struct cvm *v, struct check_finding *f, const char *snap)
{
    char why[MSG_MAX] = "", tmp[PATH_MAX], path[PATH_MAX];
    if (!v->dom) {
        check_action(f, false, "the VM has no usable domain.xml to take the <domain> from");
        return;
    }
    xmlDocPtr doc = NULL;
    int r = check_build_snapshot(v, snap, "regenerated by vmstorefs --repair", 0, &doc, why,
                                 sizeof(why));
    if (r == 0 && !v->o->cheap && xmlschema_validate(doc, "domainsnapshot", why, sizeof(why)) == -EINVAL)
        r = -EINVAL;
    char *text = NULL;
    size_t len = 0;
    struct store_perm perm;
    if (r == 0)
        r = xmledit_dump(doc, &text, &len);
    if (r == 0)
        r = vm_xml_perm(v->s, v->vm, &perm);
    if (r == 0 && (store_snap_path(v->s, v->vm, snap, ".snapshot.xml.repair", tmp, sizeof(tmp)) < 0 ||
                   store_snap_path(v->s, v->vm, snap, "snapshot.xml", path, sizeof(path)) < 0))
        r = -ENAMETOOLONG;
    /* Written aside, synced, renamed into place: never half a file. */
    if (r == 0) {
        storeio_unlink(v->s, tmp);
        r = storeio_write_new_as(v->s, tmp, text, len, &perm);
    }
    if (r == 0) {
        r = storeio_rename(v->s, tmp, path, RENAME_NOREPLACE);
        if (r < 0)
            storeio_unlink(v->s, tmp);
        else
            storeio_fsync_parent(v->s, path);
    }
    free(text);
    if (doc)
        xmlFreeDoc(doc);
    if (r < 0)
        check_action(f, false, "not regenerated: %s", why[0] ? why : strerror(-r));
    else
        check_action(f, true, "regenerated from its images' chains and the definition");
}

/* STORE/lost+found/<rel's directories>, made as needed: the daemon's
 * own (0700), as nothing there is anyone's to reach through the store. */
static int make_dirs(const struct store *s, const char *rel_dir, char *out, size_t outsz)
{
    struct store_perm priv = perm_private(0700);
    if ((size_t)snprintf(out, outsz, "%s/" LOST_FOUND "/%s", s->root, rel_dir) >= outsz)
        return -ENAMETOOLONG;
    size_t start = strlen(s->root) + 1;
    for (char *p = out + start;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int r = storeio_mkdir_as(s, out, &priv);
        *p = c;
        if (r < 0 && r != -EEXIST)
            return r;
        if (!c)
            return 0;
    }
}

void fix_orphan(struct cvm *v, struct check_finding *f, int node)
{
    const char *rel = storeio_rel(v->s, f->file);
    char rel_dir[PATH_MAX], dir[PATH_MAX], dest[PATH_MAX];
    if (!rel || !rel[0]) {
        check_action(f, false, "not below the store");
        return;
    }
    dir_of(rel, rel_dir, sizeof(rel_dir));
    int r = make_dirs(v->s, rel_dir, dir, sizeof(dir));
    const char *busy;
    struct check_hold h = { -1, -1 };
    /* A directory (a snapshot directory no name can have) holds no
     * image lock: nothing to hold (imagelock_hold fails otherwise). */
    if (r == 0 && check_hold(v, node, &h, &busy) < 0) {
        check_action(f, false, "%s", busy);
        return;
    }
    for (int k = 0; r == 0 && k < 1000; k++) {
        int len = k == 0 ? snprintf(dest, sizeof(dest), "%s/%s", dir, base_name(rel))
                         : snprintf(dest, sizeof(dest), "%s/%s.%d", dir, base_name(rel), k);
        if (len < 0 || (size_t)len >= sizeof(dest)) {
            r = -ENAMETOOLONG;
            break;
        }
        r = storeio_rename(v->s, f->file, dest, RENAME_NOREPLACE);
        if (r != -EEXIST)
            break;
        r = 0;
    }
    check_release(&h);
    if (r < 0) {
        check_action(f, false, "cannot move it to %s: %s", dir, strerror(-r));
        return;
    }
    storeio_fsync_parent(v->s, dest);
    storeio_fsync_parent(v->s, f->file);
    check_action(f, true, "moved to %s", dest);
}
