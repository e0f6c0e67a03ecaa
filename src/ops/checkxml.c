/* checkxml: a VM's domain.xml and snapshot.xml files (check.h), and the
 * identities no two VMs may share. */
#include "config.h"

#include "ops/checkint.h"

#include "meta/domxml.h"
#include "meta/macset.h"
#include "meta/xmlschema.h"
#include "meta/xmlsafe.h"
#include "store/storeio.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses path as safe XML with root element `root` (NULL with a finding
 * when it is not), and validates it against libvirt's schema. */
static xmlDocPtr load_xml(struct cvm *v, const char *path, const char *root)
{
    char why[MSG_MAX];
    int fd = store_open_read(v->s, path, why, sizeof(why));
    v->rep->xml_files++;
    if (fd < 0) {
        check_add(v->rep, CK_XML_UNSAFE, v->vm, path, "cannot be read: %s", why);
        return NULL;
    }
    int err = 0;
    xmlDocPtr doc = check_kind_enabled(CK_XML_UNSAFE)
                        ? xmlsafe_parse_fd(fd, root, &err, why, sizeof(why))
                        : NULL;
    close(fd);
    if (!doc) {
        check_add(v->rep, CK_XML_UNSAFE, v->vm, path, "refused: %s", why);
        return NULL;
    }
    if (!v->o->cheap && check_kind_enabled(CK_XML_SCHEMA)) {
        int r = xmlschema_validate(doc, root, why, sizeof(why));
        if (r == -EINVAL)
            check_add(v->rep, CK_XML_SCHEMA, v->vm, path, "not a valid %s: %s", root, why);
        else if (r < 0)
            log_once(LOG_WARNING, "check", why, "check: %s: XML not validated", why);
    }
    return doc;
}

/* Lexically inside dir: below it, with no "." or ".." component. */
static bool path_inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (strncmp(path, dir, n) != 0 || path[n] != '/')
        return false;
    return !strstr(path, "/../") && !strstr(path, "/./") && !strstr(path, "//") &&
           strcmp(path + strlen(path) - 3, "/..") != 0;
}

/* Every file the <domain> node names: the disks' sources and their
 * <backingStore> chains, the nvram. In the store's rules a snapshot-able
 * disk's files are the VM's own; any other file the store's. */
static void check_domain_paths(struct cvm *v, xmlNodePtr domain, const char *file)
{
    xmlNodePtr devices = xml_child(domain, "devices");
    for (xmlNodePtr d = devices ? devices->children : NULL; d; d = d->next) {
        if (!xml_is_elem(d, "disk"))
            continue;
        for (xmlNodePtr b = d; b; b = xml_child(b, "backingStore")) {
            char *src = xml_attr(xml_child(b, "source"), "file");
            if (!src)
                src = xml_attr(xml_child(b, "source"), "dev");
            if (src && !path_inside(src, v->dir) && !path_inside(src, v->s->root))
                check_add(v->rep, CK_XML_OUTSIDE, v->vm, file, "names %s, outside the store",
                          src);
            else if (src && b != d && !path_inside(src, v->dir))
                check_add(v->rep, CK_XML_OUTSIDE, v->vm, file,
                          "a backing chain names %s, outside the VM", src);
            free(src);
        }
    }
    char *nvram = xml_child_text(xml_child(domain, "os"), "nvram");
    if (nvram && nvram[0] && !path_inside(nvram, v->dir))
        check_add(v->rep, CK_XML_OUTSIDE, v->vm, file, "its nvram %s is outside the VM", nvram);
    free(nvram);
}

void check_domain_xml(struct cvm *v)
{
    char path[PATH_MAX], why[MSG_MAX];
    struct stat st;
    if (store_vm_path(v->s, v->vm, "domain.xml", path, sizeof(path)) < 0 ||
        store_lstat(v->s, path, &st) < 0)
        return; /* an undefined VM (an import not finished, an undefine) */
    v->defined = true;
    v->dom = load_xml(v, path, "domain");
    if (!v->dom)
        return;
    xmlNodePtr root = xmlDocGetRootElement(v->dom);
    struct dom_info info;
    if (domxml_read_doc(v->dom, &info, why, sizeof(why)) < 0) {
        check_add(v->rep, CK_XML_SCHEMA, v->vm, path, "not a usable domain: %s", why);
        return;
    }
    v->dom_ok = true;
    if (strcmp(info.name, v->vm) != 0)
        check_add(v->rep, CK_NAME_MISMATCH, v->vm, path, "<name> is %s, not the directory's %s",
                  info.name, v->vm);
    for (size_t i = 0; i < info.ndisks; i++) {
        const struct dom_disk *d = &info.disks[i];
        char active[PATH_MAX];
        if (!dom_disk_is_snapshotable(d) || !d->source ||
            store_disk_path(v->s, v->vm, d->dev, active, sizeof(active)) < 0)
            continue;
        if (strcmp(d->source, active) != 0) {
            check_add(v->rep, CK_XML_OUTSIDE, v->vm, path,
                      "disk %s's source is %s, not its image %s", d->dev, d->source, active);
            continue;
        }
        int k = cvm_find(v, active);
        if (k < 0 || !v->n[k].exists)
            check_add(v->rep, CK_DISK_MISSING, v->vm, active, "disk %s of the definition has no image",
                      d->dev);
        else
            v->n[k].referenced = true;
    }
    domxml_free(&info);
    check_domain_paths(v, root, path);
}

static struct csnap *find_snap(struct cvm *v, const char *name)
{
    for (size_t i = 0; i < v->nsnaps; i++)
        if (!v->snaps[i].hidden && strcmp(v->snaps[i].name, name) == 0)
            return &v->snaps[i];
    return NULL;
}

static void check_one_snapshot(struct cvm *v, struct csnap *c, const struct stat *dom_st)
{
    char path[PATH_MAX], dir[PATH_MAX];
    if (store_snap_path(v->s, v->vm, c->name, NULL, dir, sizeof(dir)) < 0 ||
        store_snap_path(v->s, v->vm, c->name, "snapshot.xml", path, sizeof(path)) < 0)
        return;
    if (!c->has_xml) {
        struct check_finding *f = check_add(v->rep, CK_SNAPXML_MISSING, v->vm, path,
                                            "snapshot %s has no snapshot.xml", c->name);
        if (f && v->o->repair)
            fix_snapshot_xml(v, f, c->name);
        return;
    }
    struct stat st;
    if (dom_st && store_lstat(v->s, path, &st) == 0 &&
        ((st.st_mode & ~dom_st->st_mode & 0777) || st.st_uid != dom_st->st_uid))
        check_add(v->rep, CK_PERM_LOOSE, v->vm, path,
                  "mode %04o owner %u, looser than its domain.xml (mode %04o owner %u)",
                  (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
                  (unsigned)(dom_st->st_mode & 07777), (unsigned)dom_st->st_uid);
    xmlDocPtr doc = load_xml(v, path, "domainsnapshot");
    if (!doc)
        return;
    c->xml_ok = true;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    char *name = xml_child_text(root, "name");
    snprintf(c->xml_name, sizeof(c->xml_name), "%s", name ? name : "");
    if (!name || strcmp(name, c->name) != 0)
        check_add(v->rep, CK_NAME_MISMATCH, v->vm, path, "<name> is %s, not the directory's %s",
                  name ? name : "missing", c->name);
    free(name);
    char *parent = xml_child_text(xml_child(root, "parent"), "name");
    snprintf(c->parent, sizeof(c->parent), "%s", parent ? parent : "");
    free(parent);
    xmlNodePtr disks = xml_child(root, "disks");
    for (xmlNodePtr d = disks ? disks->children : NULL; d; d = d->next) {
        if (!xml_is_elem(d, "disk") || !xml_attr_is(d, "snapshot", "external"))
            continue;
        char *dev = xml_attr(d, "name"), frozen[PATH_MAX];
        if (dev && dev_is_valid(dev) &&
            store_snap_image_path(v->s, v->vm, c->name, dev, frozen, sizeof(frozen)) == 0) {
            int k = cvm_find(v, frozen);
            if (k < 0 || !v->n[k].exists)
                check_add(v->rep, CK_SNAP_FILE_MISSING, v->vm, path,
                          "lists disk %s, whose image %s is missing", dev, frozen);
            else
                v->n[k].referenced = true;
        }
        char *overlay = xml_attr(xml_child(d, "source"), "file");
        if (overlay && !path_inside(overlay, v->dir))
            check_add(v->rep, CK_XML_OUTSIDE, v->vm, path,
                      "disk %s's overlay %s is outside the VM", dev ? dev : "?", overlay);
        free(overlay);
        free(dev);
    }
    xmlNodePtr dom = xml_child(root, "domain");
    if (dom)
        check_domain_paths(v, dom, path);
    xmlFreeDoc(doc);
}

void check_snapshot_xml(struct cvm *v)
{
    char dpath[PATH_MAX];
    struct stat dom_st;
    bool have_dom = v->defined && store_vm_path(v->s, v->vm, "domain.xml", dpath, sizeof(dpath)) == 0 &&
                    store_lstat(v->s, dpath, &dom_st) == 0;
    for (size_t i = 0; i < v->nsnaps; i++)
        if (!v->snaps[i].hidden)
            check_one_snapshot(v, &v->snaps[i], have_dom ? &dom_st : NULL);
    /* The tree snapshot.xml files draw: each parent a snapshot of the VM,
     * and no circle. */
    for (size_t i = 0; i < v->nsnaps; i++) {
        struct csnap *c = &v->snaps[i];
        if (c->hidden || !c->parent[0])
            continue;
        char path[PATH_MAX];
        store_snap_path(v->s, v->vm, c->name, "snapshot.xml", path, sizeof(path));
        struct csnap *p = find_snap(v, c->parent);
        if (!p) {
            check_add(v->rep, CK_SNAP_PARENT, v->vm, path,
                      "its parent %s is not a snapshot of the VM", c->parent);
            continue;
        }
        size_t steps = 0;
        for (; p && p->parent[0] && steps <= v->nsnaps; steps++)
            p = find_snap(v, p->parent);
        if (steps > v->nsnaps)
            check_add(v->rep, CK_SNAP_PARENT, v->vm, path, "its parents come back to it");
    }
}

/* ---- identities across the store ---- */

struct id_entry {
    enum check_kind kind;
    char *key;
    char *vm;
    char *file;
};

struct check_ids {
    struct id_entry *e;
    size_t n, cap;
};

struct check_ids *check_ids_new(void)
{
    return calloc(1, sizeof(struct check_ids));
}

static void add_id(struct check_ids *ids, enum check_kind k, const char *key, const char *vm,
                   const char *file)
{
    if (!key || !key[0] || !check_kind_enabled(k))
        return;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        struct id_entry *ne = realloc(ids->e, cap * sizeof(*ne));
        if (!ne)
            return;
        ids->e = ne;
        ids->cap = cap;
    }
    struct id_entry *e = &ids->e[ids->n];
    e->kind = k;
    e->key = strdup(key);
    e->vm = strdup(vm);
    e->file = strdup(file);
    if (e->key && e->vm && e->file)
        ids->n++;
    else {
        free(e->key);
        free(e->vm);
        free(e->file);
    }
}

void check_ids_add(struct check_ids *ids, struct cvm *v)
{
    if (!v->dom)
        return;
    char path[PATH_MAX];
    if (store_vm_path(v->s, v->vm, "domain.xml", path, sizeof(path)) < 0)
        return;
    xmlNodePtr root = xmlDocGetRootElement(v->dom);
    char *uuid = xml_child_text(root, "uuid"), *name = xml_child_text(root, "name");
    if (uuid)
        for (char *p = uuid; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
    add_id(ids, CK_DUP_UUID, uuid, v->vm, path);
    add_id(ids, CK_DUP_NAME, name, v->vm, path);
    free(uuid);
    free(name);
    struct mac_set macs = { 0 };
    if (mac_set_add_domain(&macs, root) == 0)
        for (size_t i = 0; i < macs.n; i++) {
            char text[MAC_TEXT_LEN + 1];
            mac_format(macs.macs[i], text);
            add_id(ids, CK_DUP_MAC, text, v->vm, path);
        }
    mac_set_free(&macs);
}

static int cmp_id(const void *a, const void *b)
{
    const struct id_entry *x = a, *y = b;
    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->vm, y->vm);
}

static const char *const id_words[] = {
    [CK_DUP_UUID] = "uuid", [CK_DUP_MAC] = "MAC", [CK_DUP_NAME] = "name",
};

void check_ids_report(struct check_ids *ids, struct check_report *rep)
{
    qsort(ids->e, ids->n, sizeof(*ids->e), cmp_id);
    for (size_t i = 0; i < ids->n;) {
        size_t j = i + 1;
        while (j < ids->n && ids->e[j].kind == ids->e[i].kind &&
               strcmp(ids->e[j].key, ids->e[i].key) == 0)
            j++;
        /* Every VM of the run: which one keeps it is the
         * administrator's choice, so none is changed. Each names one
         * other that has it. */
        for (size_t k = i; k < j && j - i > 1; k++)
            check_add(rep, ids->e[k].kind, ids->e[k].vm, ids->e[k].file,
                      "%s %s is VM %s's too", id_words[ids->e[k].kind], ids->e[k].key,
                      ids->e[k == i ? i + 1 : i].vm);
        i = j;
    }
}

void check_ids_free(struct check_ids *ids)
{
    if (!ids)
        return;
    for (size_t i = 0; i < ids->n; i++) {
        free(ids->e[i].key);
        free(ids->e[i].vm);
        free(ids->e[i].file);
    }
    free(ids->e);
    free(ids);
}
