/* snapshot_revert: make the VM what it was at snapshot S.
 *
 * Every disk S covers gets a fresh, empty overlay on S's frozen image at
 * disks/<dev>.qcow2; the image that stood there (the changes since) is
 * discarded by the rename. domain.xml becomes S's <domain> again, with the
 * active sources and chains; disks S does not cover stay as they are and
 * stay attached. S's snapshot.xml records the new overlays as where its
 * changes now go. */
#include "config.h"

#include "ops/snapshot.h"

#include "vm/delplan.h"
#include "util/log.h"
#include "store/storeio.h"
#include "vm/vmmodel.h"
#include "store/vmstate.h"
#include "meta/xmlsafe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct covered {
    char dev[DEV_MAX_LEN + 1];
    char frozen[PATH_MAX];
    char active[PATH_MAX];
    struct chain chain; /* of the frozen image */
};

struct revert {
    struct vm_model m;
    const char *snap;
    struct covered *disks;
    size_t n;
};

static int add_covered(const char *dev, void *arg)
{
    struct revert *rv = arg;
    struct covered *nd = realloc(rv->disks, (rv->n + 1) * sizeof(*nd));
    if (!nd)
        return -ENOMEM;
    rv->disks = nd;
    struct covered *d = &nd[rv->n];
    memset(d, 0, sizeof(*d));
    snprintf(d->dev, sizeof(d->dev), "%s", dev);
    store_snap_image_path(rv->m.s, rv->m.vm, rv->snap, dev, d->frozen, sizeof(d->frozen));
    store_disk_path(rv->m.s, rv->m.vm, dev, d->active, sizeof(d->active));
    rv->n++;
    return 0;
}

static const struct covered *find_covered(const struct revert *rv, const char *dev)
{
    for (size_t i = 0; i < rv->n; i++)
        if (strcmp(rv->disks[i].dev, dev) == 0)
            return &rv->disks[i];
    return NULL;
}

/* A disk S covers gets an overlay on S's image, whose chain check_disks
 * walked: its active image now is not what the definition will name. */
static bool is_covered(const char *dev, void *arg)
{
    return find_covered(arg, dev) != NULL;
}

/* The definition as of S, with the active images and their chains; a
 * disk S does not cover keeps its current element (or is added back). */
static xmlDocPtr build_definition(struct revert *rv, xmlDocPtr snapdoc, char *msg, size_t msgsz)
{
    xmlNodePtr sdom = xmledit_snapshot_domain(snapdoc);
    if (!sdom) {
        snprintf(msg, msgsz, "snapshot %s has no <domain> to restore", rv->snap);
        return NULL;
    }
    xmlDocPtr doc = xmledit_doc_from_node(sdom);
    if (!doc)
        return NULL;
    xmlNodePtr dom = xmlDocGetRootElement(doc);
    xmlNodePtr devices = xml_child(dom, "devices");
    xmlNodePtr cur = rv->m.dom ? xml_child(xmlDocGetRootElement(rv->m.dom), "devices") : NULL;
    int r = devices ? 0 : -EINVAL;
    for (size_t i = 0; r == 0 && i < rv->n; i++) {
        const struct covered *d = &rv->disks[i];
        size_t n;
        struct xml_chain_link *below = vm_xml_chain(&d->chain, 0, &n);
        r = below ? xmledit_set_disk(dom, d->dev, d->active, below, n) : -ENOMEM;
        free(below);
        if (r == -ENOENT) {
            snprintf(msg, msgsz, "snapshot %s has an image of %s but its <domain> has no such disk",
                     rv->snap, d->dev);
            r = -EINVAL;
        }
    }
    for (xmlNodePtr c = cur ? cur->children : NULL; r == 0 && c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, BAD_CAST "disk") != 0)
            continue;
        char *dev = xml_attr(xml_child(c, "target"), "dev");
        if (dev && !find_covered(rv, dev)) {
            xmlNodePtr old = xmledit_find_disk(dom, dev);
            xmlNodePtr copy = xmlDocCopyNode(c, doc, 1);
            if (!copy)
                r = -ENOMEM;
            else if (old) {
                xmlReplaceNode(old, copy);
                xmlFreeNode(old);
            } else {
                xmlAddChild(devices, copy);
            }
            if (copy && !old)
                log_msg(LOG_NOTICE, "revert of %s to %s: disk %s is not in the snapshot; it "
                                    "stays as it is and stays attached",
                        rv->m.vm, rv->snap, dev);
        }
        free(dev);
    }
    if (r < 0) {
        if (!msg[0])
            snprintf(msg, msgsz, "cannot build the definition: %s", strerror(-r));
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

static int plan(struct revert *rv, struct journal *j, xmlDocPtr snapdoc, char *msg, size_t msgsz)
{
    struct vm_model *m = &rv->m;
    char tmp[PATH_MAX], path[PATH_MAX];
    int r = 0;
    store_vm_path(m->s, m->vm, "disks", path, sizeof(path));
    if ((r = journal_mkdir(j, path)) < 0)
        return r;
    struct overlay_req *reqs = calloc(rv->n, sizeof(*reqs));
    if (!reqs)
        return -ENOMEM;
    for (size_t i = 0; i < rv->n; i++) {
        /* The overlay replaces the active image and takes its owner and
         * mode; a disk that has none (detached) takes the frozen one's. */
        const struct covered *d = &rv->disks[i];
        vm_overlay_req(&reqs[i], rv->snap, d->dev, d->frozen,
                       storeio_exists(m->s, d->active) ? d->active : d->frozen);
    }
    r = vm_create_overlays(m, j, reqs, rv->n, msg, msgsz);
    for (size_t i = 0; r == 0 && i < rv->n; i++) {
        const struct covered *d = &rv->disks[i];
        if ((r = journal_replace(j, reqs[i].path, d->active)) < 0)
            break;
        r = xmledit_snapshot_set_disk_source(snapdoc, d->dev, d->active);
        if (r == -ENOENT)
            r = 0;
    }
    free(reqs);
    if (r < 0)
        return r;
    xmlDocPtr def = build_definition(rv, snapdoc, msg, msgsz);
    if (!def)
        return -EINVAL;
    /* S's <domain> is the store's, but not trusted more than a domain.xml:
     * a definition every later operation would refuse (a disk outside the
     * store, say) would leave a VM nothing can change again. */
    char why[MSG_MAX];
    if ((r = vm_check_definition(m, def, is_covered, rv, why, sizeof(why))) < 0) {
        snprintf(msg, msgsz, "snapshot %s: its definition would not be usable: %s", rv->snap,
                 why);
        xmlFreeDoc(def);
        return r == -ENOENT ? -EINVAL : r;
    }
    r = vm_write_xml(m, j, def, "domain.xml", tmp, sizeof(tmp), msg, msgsz);
    xmlFreeDoc(def);
    if (r < 0 || (r = store_vm_path(m->s, m->vm, "domain.xml", path, sizeof(path))) < 0 ||
        (r = journal_replace(j, tmp, path)) < 0)
        return r;
    if ((r = vm_write_xml(m, j, snapdoc, "snapshot.xml", tmp, sizeof(tmp), msg, msgsz)) < 0 ||
        (r = store_snap_path(m->s, m->vm, rv->snap, "snapshot.xml", path, sizeof(path))) < 0)
        return r;
    return journal_replace(j, tmp, path);
}

/* Every covered disk: its frozen chain intact, its active image free. */
static int check_disks(struct revert *rv, char *msg, size_t msgsz)
{
    if (rv->n == 0) {
        snprintf(msg, msgsz, "snapshot %s holds no image", rv->snap);
        return -EINVAL;
    }
    for (size_t i = 0; i < rv->n; i++) {
        struct covered *d = &rv->disks[i];
        char why[MSG_MAX];
        int r = chain_walk(rv->m.s, d->frozen, &d->chain, why, sizeof(why));
        if (r < 0) {
            snprintf(msg, msgsz, "%s: %s", d->frozen, why);
            return r;
        }
        if (storeio_exists(rv->m.s, d->active) &&
            (r = vm_hold_image(&rv->m, d->active, d->dev, msg, msgsz)) < 0)
            return r;
    }
    return 0;
}

int snapshot_revert(const struct snap_ctx *c, const char *vm, const char *snap, char *msg,
                    size_t msgsz)
{
    struct revert rv = { .snap = snap };
    if (!name_is_valid(snap)) {
        snprintf(msg, msgsz, "'%s' is not a valid snapshot name", snap);
        return -ENOENT;
    }
    int r = vm_begin(&rv.m, c, vm, msg, msgsz);
    if (r < 0)
        return r;
    xmlDocPtr snapdoc = NULL;
    if (!store_snap_exists(c->s, vm, snap)) {
        snprintf(msg, msgsz, "no snapshot %s", snap);
        r = -ENOENT;
    }
    if (r == 0)
        r = vm_load_definition(&rv.m, false, msg, msgsz);
    if (r == 0)
        r = vm_load_snapshot(&rv.m, snap, &snapdoc, msg, msgsz);
    if (r == 0)
        r = store_list_snap_images(c->s, vm, snap, add_covered, &rv);
    if (r == 0)
        r = check_disks(&rv, msg, msgsz);
    struct journal j;
    if (r == 0 && (r = journal_begin(&j, c->s, "revert", vm, msg, msgsz)) == 0) {
        r = plan(&rv, &j, snapdoc, msg, msgsz);
        if (r == 0)
            r = vm_commit(&rv.m, &j, msg, msgsz);
        else
            journal_abort(&j);
        journal_free(&j);
        /* The changes discarded may have been the last dependent of a
         * hidden image (an image of a deleted snapshot): it goes, or is
         * merged into the one dependent it has left (now, or by the
         * background worker). */
        char why[MSG_MAX];
        if (r == 0 && delplan_settle(&rv.m, why, sizeof(why)) < 0)
            log_msg(LOG_WARNING, "revert of %s: hidden images not collected: %s", vm, why);
    }
    if (snapdoc)
        xmlFreeDoc(snapdoc);
    for (size_t i = 0; i < rv.n; i++)
        chain_free(&rv.disks[i].chain);
    free(rv.disks);
    size_t n = rv.n;
    vm_end(&rv.m);
    if (r == 0) {
        vmstate_changed(vm);
        log_msg(LOG_INFO, "reverted %s to snapshot %s (%zu disk%s)", vm, snap, n,
                n == 1 ? "" : "s");
    }
    return r;
}
