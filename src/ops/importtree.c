#include "config.h"

#include "ops/importtree.h"

#include "journal/journal.h"
#include "meta/domxml.h"
#include "meta/snapxml.h"
#include "meta/xmledit.h"
#include "meta/xmlsafe.h"
#include "meta/xmlschema.h"
#include "ops/clone.h"
#include "qemu/chain.h"
#include "qemu/qcow2edit.h"
#include "qemu/qcow2hdr.h"
#include "store/imagelock.h"
#include "store/storeio.h"
#include "util/log.h"
#include "util/names.h"
#include "vm/vmmodel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct isnap {
    xmlDocPtr doc;
    struct snap_info info;
    int parent; /* index in snaps, -1 for a root */
    int depth;
};

struct iimg {
    char dev[DEV_MAX_LEN + 1];
    int snap; /* the snapshot it is frozen at; -1: the active image */
    char src[PATH_MAX]; /* libvirt's file */
    int fd; /* src, open for reading: what is checked is what is copied */
    struct stat st;
    int backing; /* index in imgs; -1 none */
    struct qcow2_backing hdr; /* as checked */
    char dst[PATH_MAX]; /* STORE/NEW/... */
    char tmp[PATH_MAX]; /* the same below the journal's temporary directory */
};

struct itree {
    const struct snap_ctx *c;
    const char *name;
    const struct import_source *src;
    xmlDocPtr dom;
    struct isnap *snaps;
    size_t nsnaps;
    struct iimg *imgs;
    size_t nimgs, capimgs;
    struct imagelock_set locks;
    char dir[PATH_MAX]; /* STORE/NEW */
};

/* ---- the XML ---- */

static int find_snap(const struct itree *t, const char *name)
{
    for (size_t i = 0; i < t->nsnaps; i++)
        if (strcmp(t->snaps[i].info.name, name) == 0)
            return (int)i;
    return -1;
}

static int cmp_depth(const void *a, const void *b)
{
    const struct isnap *x = a, *y = b;
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    return x->info.creation_time < y->info.creation_time ? -1
                                                         : x->info.creation_time > y->info.creation_time;
}

/* The store keeps disk-only external snapshots: an internal one lives
 * inside the qcow2 file (the store would copy it as a layer that is not
 * one), a memory state is a file of its own the store has no place for. */
static int external_only(const struct isnap *sn, char *msg, size_t msgsz)
{
    xmlNodePtr root = xmlDocGetRootElement(sn->doc);
    xmlNodePtr mem = xml_child(root, "memory"), disks = xml_child(root, "disks");
    if (mem && !xml_attr_is(mem, "snapshot", "no"))
        return msg_set(msg, msgsz, -EINVAL,
                       "snapshot %s has a memory state: only disk-only "
                       "snapshots are imported",
                       sn->info.name);
    for (xmlNodePtr c = disks ? disks->children : NULL; c; c = c->next)
        if (xml_is_elem(c, "disk") && xml_attr_is(c, "snapshot", "internal"))
            return msg_set(msg, msgsz, -EINVAL,
                           "snapshot %s is internal (inside the image): only "
                           "external snapshots are imported",
                           sn->info.name);
    return 0;
}

/* Each snapshot parsed, its parent found, and the list put in parent
 * order (every parent before its children). */
static int read_snaps(struct itree *t, char *msg, size_t msgsz)
{
    const struct import_source *src = t->src;
    char why[MSG_MAX];
    int r;
    if (src->nsnaps > CHAIN_MAX_DEPTH)
        return msg_set(msg, msgsz, -EINVAL, "%zu snapshots: more than a chain may hold (%d)",
                       src->nsnaps, CHAIN_MAX_DEPTH);
    t->snaps = calloc(src->nsnaps ? src->nsnaps : 1, sizeof(*t->snaps));
    if (!t->snaps)
        return -ENOMEM;
    for (size_t i = 0; i < src->nsnaps; i++) {
        const struct import_text *x = &src->snaps[i];
        /* Counted at once: what a refusal below leaves is freed too. */
        struct isnap *sn = &t->snaps[t->nsnaps++];
        if (snapxml_parse_mem(x->xml, x->len, &sn->info, why, sizeof(why)) < 0 ||
            !(sn->doc = xmlsafe_parse_mem(x->xml, x->len, "domainsnapshot", why, sizeof(why))))
            return msg_set(msg, msgsz, -EINVAL, "%s: %s", x->what, why);
        if (!name_is_valid(sn->info.name))
            return msg_set(msg, msgsz, -EINVAL,
                           "%s: '%.64s' is not a snapshot name the store allows", x->what,
                           sn->info.name);
        if (find_snap(t, sn->info.name) < (int)t->nsnaps - 1) /* an earlier one */
            return msg_set(msg, msgsz, -EINVAL, "two snapshots named %s", sn->info.name);
        if (!xmledit_snapshot_domain(sn->doc))
            return msg_set(msg, msgsz, -EINVAL, "%s: no <domain>: not a snapshot of a definition",
                           x->what);
        if ((r = external_only(sn, msg, msgsz)) < 0)
            return r;
    }
    for (size_t i = 0; i < t->nsnaps; i++) {
        struct isnap *sn = &t->snaps[i];
        sn->parent = sn->info.parent ? find_snap(t, sn->info.parent) : -1;
        if (sn->info.parent && sn->parent < 0)
            return msg_set(msg, msgsz, -EINVAL, "snapshot %s: its parent %s is not among them",
                           sn->info.name, sn->info.parent);
    }
    /* Depth by walking up, bounded: a longer walk is a loop. */
    for (size_t i = 0; i < t->nsnaps; i++) {
        int d = 0;
        for (int p = t->snaps[i].parent; p >= 0; p = t->snaps[p].parent)
            if (++d > (int)t->nsnaps)
                return msg_set(msg, msgsz, -EINVAL, "snapshot %s: its parents form a loop",
                               t->snaps[i].info.name);
        t->snaps[i].depth = d;
    }
    qsort(t->snaps, t->nsnaps, sizeof(*t->snaps), cmp_depth);
    for (size_t i = 0; i < t->nsnaps; i++)
        t->snaps[i].parent = t->snaps[i].info.parent ? find_snap(t, t->snaps[i].info.parent) : -1;
    return 0;
}

/* ---- the images ---- */

/* libvirt's name of a file, absolute. */
static int source_path(const struct itree *t, const char *name, char *out, size_t outsz)
{
    if (name[0] == '/')
        return (size_t)snprintf(out, outsz, "%s", name) < outsz ? 0 : -ENAMETOOLONG;
    if (!t->src->base_dir)
        return -EINVAL;
    return (size_t)snprintf(out, outsz, "%s/%s", t->src->base_dir, name) < outsz ? 0
                                                                               : -ENAMETOOLONG;
}

static int find_img(const struct itree *t, const char *dev, int snap)
{
    for (size_t i = 0; i < t->nimgs; i++)
        if (t->imgs[i].snap == snap && strcmp(t->imgs[i].dev, dev) == 0)
            return (int)i;
    return -1;
}

/* One disk of a definition (the domain's: snap -1, or snapshot snap's
 * <domain>) as an image to import: a qcow2 file, opened, and held from
 * qemu writers. */
static int add_img(struct itree *t, const struct dom_disk *d, int snap, const char *what,
                   char *msg, size_t msgsz)
{
    if (!dev_is_valid(d->dev))
        return msg_set(msg, msgsz, -EINVAL, "%s: disk '%s': not a device name this store allows",
                       what, d->dev);
    if (!d->source || strcmp(d->type, "file") != 0)
        return msg_set(msg, msgsz, -EINVAL,
                       "%s: disk %s: not a file (type %s): only image files "
                       "are imported",
                       what, d->dev, d->type);
    /* The format is the definition's, never probed; the store keeps
     * qcow2 images (a raw one would be read as raw, never parsed, but the
     * layout has no place for it yet). */
    if (strcmp(d->driver_type, "qcow2") != 0)
        return msg_set(msg, msgsz, -EINVAL,
                       "%s: disk %s: driver type '%s': only qcow2 images are "
                       "imported (convert it with qemu-img convert -O qcow2)",
                       what, d->dev, d->driver_type);
    if (find_img(t, d->dev, snap) >= 0)
        return msg_set(msg, msgsz, -EINVAL, "%s: two disks with target dev %s", what, d->dev);
    if (t->nimgs == t->capimgs) {
        size_t cap = t->capimgs ? 2 * t->capimgs : 8;
        struct iimg *n = realloc(t->imgs, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        t->imgs = n;
        t->capimgs = cap;
    }
    struct iimg *im = &t->imgs[t->nimgs];
    memset(im, 0, sizeof(*im));
    im->fd = -1;
    im->snap = snap;
    im->backing = -1;
    snprintf(im->dev, sizeof(im->dev), "%s", d->dev);
    int r = source_path(t, d->source, im->src, sizeof(im->src));
    if (r < 0)
        return msg_set(msg, msgsz, -EINVAL, "%s: disk %s: %s is not an absolute path", what, d->dev,
                       d->source);
    int fd = open(im->src, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return msg_set(msg, msgsz, -errno, "%s: disk %s: %s: %s", what, d->dev, im->src,
                       strerror(errno));
    t->nimgs++;
    im->fd = fd;
    if (fstat(fd, &im->st) < 0 || !S_ISREG(im->st.st_mode))
        return msg_set(msg, msgsz, -EINVAL, "%s: disk %s: %s is not a regular file", what, d->dev,
                       im->src);
    for (size_t i = 0; i + 1 < t->nimgs; i++)
        if (t->imgs[i].st.st_dev == im->st.st_dev && t->imgs[i].st.st_ino == im->st.st_ino)
            return msg_set(msg, msgsz, -EINVAL,
                           "%s and %s are the same file: one image cannot be "
                           "two layers",
                           t->imgs[i].src, im->src);
    /* A qemu writing it (the VM runs) would change it under the copy. */
    r = imagelock_set_take_fd(&t->locks, fd, IMAGELOCK_READ, 200);
    if (r == -EBUSY)
        return msg_set(msg, msgsz, r,
                       "%s is in use (a qemu holds its image lock): stop the VM "
                       "first",
                       im->src);
    if (r < 0)
        return msg_set(msg, msgsz, r, "%s: cannot lock it: %s", im->src, strerror(-r));
    char why[MSG_MAX];
    if ((r = qcow2_read_backing(fd, &im->hdr, why, sizeof(why))) < 0)
        return msg_set(msg, msgsz, -EINVAL, "%s: %s", im->src, why);
    if (im->hdr.data_file)
        return msg_set(msg, msgsz, -EACCES,
                       "%s has an external data file (qemu would open "
                       "another file by name): not imported",
                       im->src);
    return 0;
}

static int add_disks(struct itree *t, xmlDocPtr doc, int snap, const char *what, char *msg,
                     size_t msgsz)
{
    struct dom_info info = { 0 };
    char why[MSG_MAX];
    int r = domxml_read_doc(doc, &info, why, sizeof(why));
    if (r < 0)
        return msg_set(msg, msgsz, -EINVAL, "%s: %s", what, why);
    const struct snap_info *si = snap >= 0 ? &t->snaps[snap].info : NULL;
    for (size_t i = 0; r == 0 && i < info.ndisks; i++) {
        const struct dom_disk *d = &info.disks[i];
        if (!dom_disk_is_snapshotable(d)) {
            /* Shared and read-only disks are the store's only inside it:
             * the import would have to copy or leave out what libvirt
             * shares; an empty CD-ROM drive is nothing to copy. */
            bool cd = strcmp(d->device, "cdrom") == 0 || strcmp(d->device, "floppy") == 0;
            if (d->source && snap < 0)
                r = msg_set(msg, msgsz, -EINVAL,
                            "%s: disk %s (%s%s%s) names %s: only a VM's own "
                            "writable disks are imported, and a store VM's definition names "
                            "nothing outside the store; %s first",
                            what, d->dev, d->device, d->readonly ? ", read-only" : "",
                            d->shareable ? ", shareable" : "", d->source,
                            cd ? "eject it (virsh change-media DOMAIN DEV --eject --config)"
                               : "remove it (virsh detach-disk DOMAIN DEV --config)");
            continue;
        }
        bool in = !si;
        for (size_t k = 0; si && k < si->ndisks; k++)
            in = in || strcmp(si->disks[k], d->dev) == 0;
        if (in)
            r = add_img(t, d, snap, what, msg, msgsz);
    }
    domxml_free(&info);
    return r;
}

/* Does the backing name of im resolve to the image at index want (or, want
 * -2: to any frozen image of im's disk, the current snapshot's)? */
static int check_backing(struct itree *t, size_t i, int want, char *msg, size_t msgsz)
{
    struct iimg *im = &t->imgs[i];
    const char *name = im->hdr.name;
    if (!name[0]) {
        if (want >= 0)
            return msg_set(msg, msgsz, -EINVAL,
                           "%s has no backing file, but snapshot %s's image "
                           "of %s (%s) should be below it",
                           im->src, t->snaps[t->imgs[want].snap].info.name, im->dev,
                           t->imgs[want].src);
        return 0;
    }
    if (strncmp(name, "json:", 5) == 0 ||
        (strchr(name, ':') && strchr(name, ':') < (strchr(name, '/') ? strchr(name, '/')
                                                                     : name + strlen(name))))
        return msg_set(msg, msgsz, -EACCES,
                       "%s: backing file '%s' is a json: or protocol name: "
                       "not imported",
                       im->src, name);
    if (!im->hdr.format[0])
        return msg_set(msg, msgsz, -EACCES,
                       "%s: backing file %s has no recorded format (qemu "
                       "would probe it)",
                       im->src, name);
    char path[PATH_MAX * 2];
    if (name[0] == '/')
        snprintf(path, sizeof(path), "%s", name);
    else {
        const char *slash = strrchr(im->src, '/');
        snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - im->src), im->src, name);
    }
    struct stat st;
    int hit = -1;
    if (stat(path, &st) == 0)
        for (size_t k = 0; k < t->nimgs; k++)
            if (t->imgs[k].snap >= 0 && strcmp(t->imgs[k].dev, im->dev) == 0 &&
                t->imgs[k].st.st_dev == st.st_dev && t->imgs[k].st.st_ino == st.st_ino)
                hit = (int)k;
    /* A snapshot's image backs onto its ancestor's and nothing else
     * (never onto a later one: no loops); the active one onto any. */
    if (hit < 0 || (want != -2 && hit != want))
        return msg_set(msg, msgsz, -EACCES,
                       "%s: its backing file %s is outside the chain being "
                       "imported (%s)",
                       im->src, name,
                       want >= 0    ? t->imgs[want].src
                       : want == -1 ? "the first snapshot of its disk has none below it"
                                    : "no snapshot's image of that disk");
    if (strcmp(im->hdr.format, "qcow2") != 0)
        return msg_set(msg, msgsz, -EINVAL, "%s: backing format %s, but %s is qcow2", im->src,
                       im->hdr.format, t->imgs[hit].src);
    im->backing = hit;
    return 0;
}

/* The image of dev frozen at the nearest ancestor of snapshot s. */
static int ancestor_img(const struct itree *t, const char *dev, int s)
{
    for (int p = t->snaps[s].parent; p >= 0; p = t->snaps[p].parent) {
        int k = find_img(t, dev, p);
        if (k >= 0)
            return k;
    }
    return -1;
}

static int gather(struct itree *t, char *msg, size_t msgsz)
{
    int r = 0;
    for (size_t s = 0; r == 0 && s < t->nsnaps; s++) {
        xmlDocPtr d = xmledit_doc_from_node(xmledit_snapshot_domain(t->snaps[s].doc));
        char what[NAME_MAX_LEN + 32];
        snprintf(what, sizeof(what), "snapshot %s", t->snaps[s].info.name);
        r = d ? add_disks(t, d, (int)s, what, msg, msgsz) : -ENOMEM;
        xmlFreeDoc(d);
    }
    size_t nfrozen = t->nimgs;
    if (r == 0)
        r = add_disks(t, t->dom, -1, "domain", msg, msgsz);
    if (r == 0 && t->nimgs == nfrozen)
        r = msg_set(msg, msgsz, -EINVAL, "the domain has no writable qcow2 disk to import");
    for (size_t i = 0; r == 0 && i < t->nimgs; i++) {
        struct iimg *im = &t->imgs[i];
        r = check_backing(t, i, im->snap >= 0 ? ancestor_img(t, im->dev, im->snap) : -2, msg,
                          msgsz);
        /* Where it goes. */
        int w = im->snap < 0 ? store_disk_path(t->c->s, t->name, im->dev, im->dst,
                                               sizeof(im->dst))
                             : store_snap_image_path(t->c->s, t->name,
                                                     t->snaps[im->snap].info.name, im->dev,
                                                     im->dst, sizeof(im->dst));
        if (r == 0 && w < 0)
            r = w;
    }
    return r;
}

/* ---- the copy ---- */

/* What in is, into out: a reflink, else its allocated extents. */
static int copy_fd(int in, int out, off_t size)
{
    if (ioctl(out, FICLONE, in) == 0)
        return 0;
    for (off_t at = 0; at < size;) {
        off_t data = lseek(in, at, SEEK_DATA);
        if (data < 0)
            break; /* only a hole is left */
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0)
            hole = size;
        for (off_t p = data; p < hole;) {
            off_t ip = p, op = p;
            ssize_t n = copy_file_range(in, &ip, out, &op, (size_t)(hole - p), 0);
            if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP)) {
                char buf[1 << 16];
                size_t want = (size_t)(hole - p) < sizeof(buf) ? (size_t)(hole - p) : sizeof(buf);
                n = pread(in, buf, want, p);
                if (n > 0 && pwrite(out, buf, (size_t)n, p) != n)
                    return -EIO;
            }
            if (n < 0)
                return -errno;
            if (n == 0)
                return -EIO; /* shrank meanwhile */
            p += n;
        }
        at = hole;
    }
    return ftruncate(out, size) < 0 ? -errno : 0;
}

static int copy_img(struct itree *t, struct journal *j, struct iimg *im, char *msg, size_t msgsz)
{
    const struct store *s = t->c->s;
    struct store_perm p = { t->c->cred.uid, t->c->cred.gid, im->st.st_mode & 0666 };
    int out, r = storeio_create_as(s, im->tmp, &p, &out);
    if (r < 0)
        return msg_set(msg, msgsz, r, "cannot make %s: %s", im->tmp, strerror(-r));
    r = copy_fd(im->fd, out, im->st.st_size);
    if (r < 0)
        snprintf(msg, msgsz, "cannot copy %s: %s", im->src, strerror(-r));
    /* The copy's header is the one checked (nobody changed the file
     * between the check and the copy). */
    struct qcow2_backing h;
    char why[MSG_MAX];
    if (r == 0 && (qcow2_read_backing(out, &h, why, sizeof(why)) < 0 || h.data_file ||
                   strcmp(h.name, im->hdr.name) != 0 || strcmp(h.format, im->hdr.format) != 0))
        r = msg_set(msg, msgsz, -EINVAL, "%s changed while it was copied", im->src);
    if (r == 0 && im->backing >= 0) {
        char dir[PATH_MAX], rel[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", im->dst);
        *strrchr(dir, '/') = '\0';
        if ((r = vm_relpath(dir, t->imgs[im->backing].dst, rel, sizeof(rel))) == 0 &&
            (r = qcow2_set_backing_name(out, rel, why, sizeof(why))) < 0)
            snprintf(msg, msgsz, "%s: cannot give it the backing name %s: %s", im->src, rel,
                     why);
    }
    if (r == 0 && fsync(out) < 0)
        r = msg_set(msg, msgsz, -errno, "cannot sync %s: %s", im->tmp, strerror(errno));
    close(out);
    return r < 0 ? r : journal_prepared(j, im->tmp, msg, msgsz);
}

/* ---- the XML the store keeps ---- */

/* The chain below image i as XML links (store paths). */
static struct xml_chain_link *chain_links(const struct itree *t, int i, size_t *n)
{
    struct xml_chain_link *v = calloc(t->nsnaps + 2, sizeof(*v));
    *n = 0;
    /* Bounded all the same (check_backing made them loop-free). */
    for (int k = v ? t->imgs[i].backing : -1; k >= 0 && *n <= t->nsnaps; k = t->imgs[k].backing)
        v[(*n)++] = (struct xml_chain_link){ t->imgs[k].dst, "qcow2" };
    return v;
}

/* The disks of one definition (snap -1: the domain's) pointed at the
 * store's images, with their chains; its name the VM's. */
static int point_disk(const struct itree *t, xmlNodePtr dom, int i)
{
    size_t n;
    struct xml_chain_link *below = chain_links(t, i, &n);
    int r = below ? xmledit_set_disk(dom, t->imgs[i].dev, t->imgs[i].dst, below, n) : -ENOMEM;
    free(below);
    return r;
}

/* The image libvirt's file is, by inode; -1 when it is not imported. */
static int img_of_file(const struct itree *t, const char *file)
{
    char path[PATH_MAX];
    struct stat st;
    if (source_path(t, file, path, sizeof(path)) < 0 || stat(path, &st) < 0)
        return -1;
    for (size_t k = 0; k < t->nimgs; k++)
        if (t->imgs[k].st.st_dev == st.st_dev && t->imgs[k].st.st_ino == st.st_ino)
            return (int)k;
    return -1;
}

static int point_domain(const struct itree *t, xmlNodePtr dom, int snap)
{
    int r = xmledit_set_child_text(dom, "name", t->name);
    for (size_t i = 0; r == 0 && i < t->nimgs; i++)
        if (t->imgs[i].snap == snap)
            r = point_disk(t, dom, (int)i);
    /* A disk a snapshot left out (snapshot='no') is, in its <domain>,
     * the file it was using then: an image imported for another
     * snapshot or the active one, named by its store path too. */
    xmlNodePtr devs = xml_child(dom, "devices");
    for (xmlNodePtr d = devs ? devs->children : NULL; r == 0 && d; d = d->next) {
        xmlNodePtr src = xml_is_elem(d, "disk") ? xml_child(d, "source") : NULL;
        char *file = src ? xml_attr(src, "file") : NULL;
        char *dev = file ? xml_attr(xml_child(d, "target"), "dev") : NULL;
        int k = dev && find_img(t, dev, snap) < 0 ? img_of_file(t, file) : -1;
        if (k >= 0 && strcmp(t->imgs[k].dev, dev) == 0)
            r = point_disk(t, dom, k);
        free(file);
        free(dev);
    }
    return r;
}

/* A snapshot's <disks><disk><source>: the overlay that took the changes
 * after it, libvirt's file named by the store's path; one the import
 * leaves behind (the tip of a branch no longer current: a revert would
 * have discarded it) loses its <source>, as a detached disk's does. */
static int point_overlays(const struct itree *t, xmlDocPtr snap)
{
    xmlNodePtr disks = xml_child(xmlDocGetRootElement(snap), "disks");
    for (xmlNodePtr c = disks ? disks->children : NULL; c; c = c->next) {
        xmlNodePtr src = xml_is_elem(c, "disk") ? xml_child(c, "source") : NULL;
        char *file = src ? xml_attr(src, "file") : NULL;
        if (!file)
            continue;
        int hit = img_of_file(t, file);
        free(file);
        if (hit >= 0 && !xmlSetProp(src, BAD_CAST "file", BAD_CAST t->imgs[hit].dst))
            return -ENOMEM;
        if (hit < 0) {
            xmlUnlinkNode(src);
            xmlFreeNode(src);
        }
    }
    return 0;
}

/* The checks a definition written through the mount gets (redefine.c),
 * made on the new VM where it stands now: a view of the store rooted at
 * the journal's temporary directory, the definition's paths moved there.
 * Every chain must stay inside that directory: inside the new VM. */
static int check_as_store(struct itree *t, struct journal *j, const char *tmpn, char *msg,
                          size_t msgsz)
{
    struct store view = *t->c->s;
    snprintf(view.root, sizeof(view.root), "%s", j->tmpdir);
    view.rootfd = open(j->tmpdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (view.rootfd < 0)
        return -errno;
    struct vm_model m;
    memset(&m, 0, sizeof(m));
    m.s = &view;
    snprintf(m.vm, sizeof(m.vm), "%s", t->name);
    snprintf(m.dir, sizeof(m.dir), "%s", tmpn);
    char why[MSG_MAX];
    xmlDocPtr doc = xmlCopyDoc(t->dom, 1);
    int r = doc ? 0 : -ENOMEM;
    if (r == 0 && xmledit_rewrite_dir(xmlDocGetRootElement(doc), t->dir, tmpn) < 0)
        r = -ENOMEM;
    if (r == 0 && (r = vm_check_definition(&m, doc, NULL, NULL, why, sizeof(why))) < 0)
        snprintf(msg, msgsz, "the imported definition: %s", why);
    for (size_t i = 0; r == 0 && i < t->nimgs; i++) {
        struct chain ch = { 0 };
        if (t->imgs[i].snap >= 0 &&
            (r = chain_walk(&view, t->imgs[i].tmp, &ch, why, sizeof(why))) < 0)
            snprintf(msg, msgsz, "the imported image %s: %s", t->imgs[i].src, why);
        chain_free(&ch);
    }
    xmlFreeDoc(doc);
    close(view.rootfd);
    if (r < 0 && r != -ENOMEM && r != -EACCES)
        r = -EINVAL;
    return r;
}

static int write_xml(struct itree *t, struct journal *j, char *msg, size_t msgsz)
{
    struct store_perm xp = { t->c->cred.uid, t->c->cred.gid, 0644 };
    char name[PATH_MAX], out[PATH_MAX];
    int r = point_domain(t, xmlDocGetRootElement(t->dom), -1);
    if (r == 0) {
        snprintf(name, sizeof(name), "%s/domain.xml", t->name);
        r = vm_write_temp(j, t->dom, name, &xp, out, sizeof(out), msg, msgsz);
    }
    for (size_t s = 0; r == 0 && s < t->nsnaps; s++) {
        xmlDocPtr d = t->snaps[s].doc;
        if ((r = point_domain(t, xmledit_snapshot_domain(d), (int)s)) < 0 ||
            (r = point_overlays(t, d)) < 0)
            break;
        /* As the store writes them: libvirt must take them back. */
        if ((r = xmlschema_validate(d, "domainsnapshot", msg, msgsz)) < 0)
            break;
        snprintf(name, sizeof(name), "%s/snapshots/%s/snapshot.xml", t->name,
                 t->snaps[s].info.name);
        r = vm_write_temp(j, d, name, &xp, out, sizeof(out), msg, msgsz);
    }
    return r;
}

/* The new VM's directories: 0 itself, 1 disks, 2 snapshots, 3 + k
 * snapshots/<k's name>. */
static int dir_path(const struct itree *t, const char *tmpn, size_t i, char *out, size_t outsz)
{
    int n = i == 0   ? snprintf(out, outsz, "%s", tmpn)
            : i == 1 ? snprintf(out, outsz, "%s/disks", tmpn)
            : i == 2 ? snprintf(out, outsz, "%s/snapshots", tmpn)
                     : snprintf(out, outsz, "%s/snapshots/%s", tmpn, t->snaps[i - 3].info.name);
    return n < 0 || (size_t)n >= outsz ? -ENAMETOOLONG : 0;
}

static int build(struct itree *t, struct journal *j, char *msg, size_t msgsz)
{
    const struct store *s = t->c->s;
    char tmpn[PATH_MAX], sub[PATH_MAX];
    if ((size_t)snprintf(tmpn, sizeof(tmpn), "%s/%s", j->tmpdir, t->name) >= sizeof(tmpn))
        return -ENAMETOOLONG;
    mode_t um = umask(0);
    umask(um);
    struct store_perm dp = { t->c->cred.uid, t->c->cred.gid, 0777 & ~um };
    size_t ndirs = 3 + t->nsnaps;
    int r = 0;
    for (size_t i = 0; r == 0 && i < ndirs; i++)
        if ((r = dir_path(t, tmpn, i, sub, sizeof(sub))) == 0)
            r = storeio_mkdir_as(s, sub, &dp);
    if (r < 0)
        return msg_set(msg, msgsz, r, "cannot make the VM's directories: %s", strerror(-r));
    size_t dl = strlen(t->dir);
    for (size_t i = 0; r == 0 && i < t->nimgs; i++) {
        struct iimg *im = &t->imgs[i];
        if ((size_t)snprintf(im->tmp, sizeof(im->tmp), "%s%s", tmpn, im->dst + dl) >=
            sizeof(im->tmp))
            return -ENAMETOOLONG;
        r = copy_img(t, j, im, msg, msgsz);
    }
    if (r == 0)
        r = write_xml(t, j, msg, msgsz);
    if (r == 0)
        r = check_as_store(t, j, tmpn, msg, msgsz);
    /* Every directory made is synced before the commit's move, each
     * after the entries made in it. */
    for (size_t i = ndirs; r == 0 && i-- > 0;)
        if ((r = dir_path(t, tmpn, i, sub, sizeof(sub))) == 0)
            r = storeio_fsync(s, sub);
    if (r == 0)
        r = journal_move(j, tmpn, t->dir);
    return r;
}

static void itree_free(struct itree *t)
{
    for (size_t i = 0; i < t->nimgs; i++)
        if (t->imgs[i].fd >= 0)
            close(t->imgs[i].fd);
    free(t->imgs);
    for (size_t i = 0; i < t->nsnaps; i++) {
        xmlFreeDoc(t->snaps[i].doc);
        snapxml_free(&t->snaps[i].info);
    }
    free(t->snaps);
    xmlFreeDoc(t->dom);
    imagelock_set_release(&t->locks);
}

static int check_source(struct itree *t, char *msg, size_t msgsz)
{
    char why[MSG_MAX];
    const struct import_text *d = &t->src->domain;
    if (!(t->dom = xmlsafe_parse_mem(d->xml, d->len, "domain", why, sizeof(why))))
        return msg_set(msg, msgsz, -EINVAL, "%s: %s", d->what, why);
    xmlNodePtr root = xmlDocGetRootElement(t->dom);
    char *nvram = xml_child_text(xml_child(root, "os"), "nvram");
    if (nvram) {
        int r = msg_set(msg, msgsz, -EINVAL,
                        "%s: the domain has an <nvram> %s: not imported (a "
                        "store VM's definition names nothing outside the store, and its UEFI "
                        "variables are not copied in yet)",
                        d->what, nvram);
        free(nvram);
        return r;
    }
    int r = read_snaps(t, msg, msgsz);
    if (r == 0)
        r = gather(t, msg, msgsz);
    /* The definition as the store will keep it must be one libvirt
     * takes (what a redefine through the mount checks). */
    if (r == 0 && (r = xmledit_set_child_text(root, "name", t->name)) == 0)
        r = xmlschema_check_domain(t->dom, msg, msgsz);
    return r;
}

int vm_import_tree(const struct snap_ctx *c, const char *name, const struct import_source *src,
                   char *msg, size_t msgsz)
{
    msg[0] = '\0';
    if (!name_is_valid(name))
        return msg_set(msg, msgsz, -EINVAL,
                       "'%s' is not a valid VM name (1-64 of A-Z a-z 0-9 . _ "
                       "+ -, not starting with . or -)",
                       name);
    if (!perm_cred_may(c->s, &c->cred, c->s->root, W_OK | X_OK))
        return msg_set(msg, msgsz, -EACCES, "uid %u may not create entries in the store's root %s",
                       (unsigned)c->cred.uid, c->s->root);
    struct itree t = { .c = c, .name = name, .src = src };
    if (store_vm_path(c->s, name, NULL, t.dir, sizeof(t.dir)) < 0)
        return -ENAMETOOLONG;
    struct vmlock lock;
    int r = clone_reserve_name(c, name, &lock, msg, msgsz);
    if (r < 0)
        return r;
    /* Every check before the journal is touched: a refusal changes
     * nothing in the store. */
    r = check_source(&t, msg, msgsz);
    struct journal j;
    if (r == 0 && (r = journal_begin(&j, c->s, "import", name, msg, msgsz)) == 0) {
        r = build(&t, &j, msg, msgsz);
        if (r == 0)
            r = journal_commit(&j, msg, msgsz);
        if (r < 0 && !j.committed)
            journal_abort(&j);
        journal_free(&j);
    }
    size_t nimgs = t.nimgs, nsnaps = t.nsnaps;
    itree_free(&t);
    vmlock_release(&lock);
    if (r == 0)
        log_msg(LOG_INFO, "imported %s: %zu image%s, %zu snapshot%s", name, nimgs,
                nimgs == 1 ? "" : "s", nsnaps, nsnaps == 1 ? "" : "s");
    return r;
}
