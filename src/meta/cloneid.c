#include "config.h"

/* The clone identity rewrite (cloneid.h). The rules follow virt-clone
 * (virtinst/cloner.py) and Multipass: what makes two definitions collide
 * when both are defined or run (name, uuid, MACs, tap names, fixed
 * graphics ports, image and nvram files) changes; everything the guest
 * sees as its hardware (addresses, models, serials) stays. */

#include "meta/cloneid.h"

#include "meta/domxml.h"
#include "meta/xmledit.h"
#include "meta/xmlsafe.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uuid/uuid.h>

static void drop(xmlNodePtr n)
{
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

static int count_children(xmlNodePtr parent, const char *name)
{
    int n = 0;
    for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
        n += xml_is_elem(c, name);
    return n;
}

/* Removes every child element `name` after the first and returns the
 * first (NULL when none): libvirt reads the first, and a second copy
 * would keep the source's value in the clone's file. */
static xmlNodePtr first_only(xmlNodePtr parent, const char *name)
{
    xmlNodePtr first = NULL, c = parent->children;
    while (c) {
        xmlNodePtr next = c->next;
        if (xml_is_elem(c, name)) {
            if (first)
                drop(c);
            else
                first = c;
        }
        c = next;
    }
    return first;
}

static void remove_all(xmlNodePtr parent, const char *name)
{
    xmlNodePtr first = first_only(parent, name);
    if (first)
        drop(first);
}

/* Sets the text of parent's one child `name`, creating it after `after`
 * (when there is such a child) or at the end. */
static int set_text(xmlNodePtr parent, const char *name, const char *text, const char *after)
{
    xmlNodePtr c = first_only(parent, name);
    if (!c) {
        xmlNodePtr a = after ? xml_child(parent, after) : NULL;
        c = xmlNewNode(NULL, BAD_CAST name);
        if (!c)
            return -ENOMEM;
        if (!(a ? xmlAddNextSibling(a, c) : xmlAddChild(parent, c))) {
            xmlFreeNode(c);
            return -ENOMEM;
        }
    }
    return xmledit_set_text(c, text);
}

static int set_attr(xmlNodePtr n, const char *attr, const char *value)
{
    return xmlSetProp(n, BAD_CAST attr, BAD_CAST value) ? 0 : -ENOMEM;
}

static void unset_attr(xmlNodePtr n, const char *attr)
{
    xmlUnsetProp(n, BAD_CAST attr);
}

static void new_uuid(char out[37])
{
    uuid_t u;
    uuid_generate(u);
    uuid_unparse_lower(u, out);
}

/* ---- identity: name, uuid, sysinfo, genid, title, id ---- */

static int rewrite_ids(xmlNodePtr root, const char *name, const char *uuid)
{
    unset_attr(root, "id");
    remove_all(root, "title");
    int r = set_text(root, "name", name, NULL);
    r = r ? r : set_text(root, "uuid", uuid, "name");
    if (r == 0 && xml_child(root, "genid")) {
        char genid[37];
        new_uuid(genid);
        r = set_text(root, "genid", genid, NULL);
    }
    /* libvirt refuses a definition whose smbios system uuid differs from
     * <uuid>; the guest reads it as its machine's serial identity. */
    for (xmlNodePtr si = root->children; r == 0 && si; si = si->next) {
        if (!xml_is_elem(si, "sysinfo") || !xml_attr_is(si, "type", "smbios"))
            continue;
        for (xmlNodePtr sys = si->children; sys; sys = sys->next) {
            if (!xml_is_elem(sys, "system"))
                continue;
            for (xmlNodePtr e = sys->children; r == 0 && e; e = e->next)
                if (xml_is_elem(e, "entry") && xml_attr_is(e, "name", "uuid"))
                    xmlNodeSetContent(e, BAD_CAST uuid); /* hex and '-': nothing to escape */
        }
    }
    return r;
}

/* ---- interfaces: MAC and tap name ---- */

static void default_random(uint8_t *buf, size_t n, void *ctx)
{
    (void)ctx;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r <= 0) {
            /* No randomness (EINTR aside): a zero fill only collides, and
             * the bounded retries turn that into -EAGAIN. */
            if (r < 0 && errno == EINTR)
                continue;
            memset(buf + got, 0, n - got);
            return;
        }
        got += (size_t)r;
    }
}

/* A random 52:54:00:xx:xx:xx not in `taken`, added to it. */
static int draw_mac(const struct cloneid_params *p, struct mac_set *taken, uint8_t mac[6])
{
    cloneid_random_fn rnd = p->random ? p->random : default_random;
    mac[0] = 0x52;
    mac[1] = 0x54;
    mac[2] = 0x00;
    for (int i = 0; i < CLONEID_MAC_TRIES; i++) {
        rnd(mac + 3, 3, p->random_ctx);
        if (!mac_set_has(taken, mac))
            return mac_set_add(taken, mac);
    }
    return -EAGAIN;
}

static int rewrite_interface(xmlNodePtr iface, const struct cloneid_params *p,
                             struct mac_set *taken)
{
    /* The host tap device (vnetN): libvirt names a new one when the clone
     * starts; a fixed one would collide with the running source. */
    remove_all(iface, "target");
    uint8_t mac[6];
    int r = draw_mac(p, taken, mac);
    if (r < 0)
        return r;
    char text[MAC_TEXT_LEN + 1];
    mac_format(mac, text);
    xmlNodePtr m = first_only(iface, "mac");
    if (!m) {
        m = xmlNewNode(NULL, BAD_CAST "mac");
        if (!m)
            return -ENOMEM;
        if (!(iface->children ? xmlAddPrevSibling(iface->children, m) : xmlAddChild(iface, m))) {
            xmlFreeNode(m);
            return -ENOMEM;
        }
    }
    return set_attr(m, "address", text);
}

static int rewrite_interfaces(xmlNodePtr root, const struct cloneid_params *p, char *msg,
                              size_t msgsz)
{
    /* Taken: the store's MACs, and the source definition's own (they are
     * in the store too, unless the caller's set is stale or partial). */
    struct mac_set taken = { 0 };
    int r = 0;
    for (size_t i = 0; p->in_use && i < p->in_use->n && r == 0; i++)
        r = mac_set_add(&taken, p->in_use->macs[i]);
    r = r ? r : mac_set_add_domain(&taken, root);
    xmlNodePtr devices = xml_child(root, "devices");
    for (xmlNodePtr c = devices ? devices->children : NULL; c && r == 0; c = c->next)
        if (xml_is_elem(c, "interface"))
            r = rewrite_interface(c, p, &taken);
    mac_set_free(&taken);
    if (r == -EAGAIN)
        snprintf(msg, msgsz, "no unused MAC address found in %d tries", CLONEID_MAC_TRIES);
    return r;
}

/* ---- disks ---- */

/* The clone's own image: a fresh <source file> (the old one's index,
 * slices and seclabels describe the source's image), qcow2, no <mirror>,
 * and the chain replaced by the empty <backingStore/> that says "no
 * backing file" (the copy is collapsed; the store's domain.xml spells
 * every chain out, this one included, see xmledit.h). */
static int rewrite_disk(xmlNodePtr root, xmlNodePtr disk, const char *dev, const char *path)
{
    xmlNodePtr src = xmlNewNode(NULL, BAD_CAST "source");
    if (!src || set_attr(src, "file", path) < 0) {
        xmlFreeNode(src);
        return -ENOMEM;
    }
    xmlNodePtr old = first_only(disk, "source");
    if (old) {
        xmlReplaceNode(old, src);
        xmlFreeNode(old);
    } else if (!xmlAddChild(disk, src)) {
        xmlFreeNode(src);
        return -ENOMEM;
    }
    remove_all(disk, "mirror");
    xmlNodePtr drv = first_only(disk, "driver");
    if (!drv) {
        drv = xmlNewNode(NULL, BAD_CAST "driver");
        if (!drv || !xmlAddPrevSibling(src, drv) || set_attr(drv, "name", "qemu") < 0)
            return -ENOMEM;
    }
    if (set_attr(drv, "type", "qcow2") < 0)
        return -ENOMEM;
    return xmledit_set_disk(root, dev, path, NULL, 0);
}

static int path_join(char *out, size_t outsz, const char *dir, const char *sub, const char *file,
                     const char *suffix)
{
    int n = snprintf(out, outsz, "%s/%s/%s%s", dir, sub, file, suffix);
    return n < 0 || (size_t)n >= outsz ? -ENAMETOOLONG : 0;
}

static int rewrite_disks(xmlNodePtr root, const struct dom_info *info,
                         const struct cloneid_params *p, struct cloneid_result *out, char *msg,
                         size_t msgsz)
{
    for (size_t i = 0; i < info->ndisks; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(info->disks[k].dev, info->disks[i].dev) == 0) {
                snprintf(msg, msgsz, "two disks with target dev %s", info->disks[i].dev);
                return -EINVAL;
            }
        }
    }
    out->disks = calloc(info->ndisks ? info->ndisks : 1, sizeof(*out->disks));
    if (!out->disks)
        return -ENOMEM;
    for (size_t i = 0; i < info->ndisks; i++) {
        const struct dom_disk *d = &info->disks[i];
        if (!dom_disk_is_snapshotable(d))
            continue;
        if (!dev_is_valid(d->dev)) {
            snprintf(msg, msgsz, "disk target dev '%s' is not a valid device name", d->dev);
            return -EINVAL;
        }
        struct cloneid_disk *cd = &out->disks[out->ndisks++];
        char path[PATH_MAX];
        snprintf(cd->dev, sizeof(cd->dev), "%s", d->dev);
        int r = path_join(path, sizeof(path), p->clone_dir, "disks", d->dev, IMAGE_SUFFIX);
        if (r < 0)
            return r;
        cd->new_source = strdup(path);
        cd->old_source = d->source ? strdup(d->source) : NULL;
        if (!cd->new_source || (d->source && !cd->old_source))
            return -ENOMEM;
        r = rewrite_disk(root, xmledit_find_disk(root, d->dev), d->dev, path);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- nvram ---- */

/* STORE/<vm>/... with no empty, "." or ".." component, <vm> the source
 * VM: a path the caller can open below the store root, in the source
 * VM's own directory. Another VM's nvram is not this VM's owner's to
 * copy (its variable store holds secure-boot keys, passwords). */
static bool in_vm(const char *path, const char *root, const char *vm)
{
    size_t rl = strlen(root);
    if (strncmp(path, root, rl) != 0 || path[rl] != '/')
        return false;
    const char *p = path + rl + 1;
    for (int i = 0;; i++) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') ||
            (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (i == 0) {
            char vmname[NAME_MAX_LEN + 1];
            if (len > NAME_MAX_LEN)
                return false;
            memcpy(vmname, p, len);
            vmname[len] = '\0';
            if (!name_is_valid(vmname) || strcmp(vmname, vm) != 0)
                return false;
        }
        if (!slash)
            return i > 0;
        p = slash + 1;
    }
}

/* The file an <nvram> names: its text, or <source file> with type='file'
 * (libvirt 8.5+). NULL with a reason in msg for other kinds. */
static char *nvram_path(xmlNodePtr nv, char *msg, size_t msgsz)
{
    char *type = xml_attr(nv, "type");
    char *path = NULL;
    if (!type) {
        xmlChar *t = xmlNodeGetContent(nv);
        path = t ? strdup((const char *)t) : NULL;
        xmlFree(t);
    } else if (strcmp(type, "file") == 0) {
        path = xml_attr(xml_child(nv, "source"), "file");
    }
    if (!path)
        snprintf(msg, msgsz, "<nvram%s%s> is not a file the clone can copy", type ? " type=" : "",
                 type ? type : "");
    free(type);
    return path;
}

static int rewrite_nvram(xmlNodePtr root, const struct cloneid_params *p,
                         struct cloneid_result *out, char *msg, size_t msgsz)
{
    xmlNodePtr os = xml_child(root, "os");
    if (count_children(os, "nvram") > 1) {
        snprintf(msg, msgsz, "more than one <nvram>");
        return -EINVAL;
    }
    xmlNodePtr nv = xml_child(os, "nvram");
    if (!nv)
        return 0;
    char *old = nvram_path(nv, msg, msgsz);
    if (!old)
        return -EINVAL;
    if (!old[0]) {
        /* <nvram/> (a template only): libvirt makes the clone its own
         * fresh variable store at define time; nothing to copy. */
        free(old);
        return 0;
    }
    if (!in_vm(old, p->store_root, p->source_vm)) {
        snprintf(msg, msgsz, "nvram %.*s is not in the directory of VM %s", PATH_MAX, old,
                 p->source_vm);
        free(old);
        return -EINVAL;
    }
    char file[NAME_MAX_LEN + sizeof("_VARS.fd")], path[PATH_MAX];
    snprintf(file, sizeof(file), "%s_VARS.fd", p->name);
    int r = path_join(path, sizeof(path), p->clone_dir, "nvram", file, "");
    out->nvram_old = old;
    out->nvram_new = r < 0 ? NULL : strdup(path);
    if (r < 0 || !out->nvram_new)
        return r < 0 ? r : -ENOMEM;
    /* The plain form, whatever the old one was; template stays. */
    unset_attr(nv, "type");
    return xmledit_set_text(nv, path);
}

/* ---- graphics ---- */

static bool fixed(xmlNodePtr n, const char *attr)
{
    char *v = xml_attr(n, attr);
    bool f = v && strcmp(v, "-1") != 0;
    free(v);
    return f;
}

/* A fixed port would keep the clone from starting while the source runs
 * (virt-clone makes it autoport for the same reason). */
static int rewrite_graphics(xmlNodePtr root)
{
    xmlNodePtr devices = xml_child(root, "devices");
    for (xmlNodePtr g = devices ? devices->children : NULL; g; g = g->next) {
        if (!xml_is_elem(g, "graphics") ||
            !(xml_attr_is(g, "type", "vnc") || xml_attr_is(g, "type", "spice") ||
              xml_attr_is(g, "type", "rdp")))
            continue;
        if (fixed(g, "port") || fixed(g, "tlsPort") || xml_attr_is(g, "autoport", "no")) {
            unset_attr(g, "port");
            unset_attr(g, "tlsPort");
            if (set_attr(g, "autoport", "yes") < 0)
                return -ENOMEM;
        }
        if (fixed(g, "websocket") && set_attr(g, "websocket", "-1") < 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- the rewrite ---- */

static int check_params(xmlNodePtr root, const struct cloneid_params *p, char *msg, size_t msgsz)
{
    if (!name_is_valid(p->name) || !name_is_valid(p->source_vm) ||
        (p->source_snapshot && !name_is_valid(p->source_snapshot))) {
        snprintf(msg, msgsz, "invalid clone, VM or snapshot name");
        return -EINVAL;
    }
    if (p->store_root[0] != '/' || p->clone_dir[0] != '/') {
        snprintf(msg, msgsz, "store root and clone directory must be absolute paths");
        return -EINVAL;
    }
    /* libvirt reads disks and interfaces from every <devices> and firmware
     * from each <os>; only the first of each is rewritten here, so a
     * second would keep the source's images in the clone. */
    if (count_children(root, "devices") > 1 || count_children(root, "os") > 1) {
        snprintf(msg, msgsz, "more than one <devices> or <os> in the definition");
        return -EINVAL;
    }
    return 0;
}

int cloneid_rewrite(xmlDocPtr dom, const struct cloneid_params *p, struct cloneid_result *out,
                    char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    xmlNodePtr root = xmlDocGetRootElement(dom);
    if (!root || !xml_is_elem(root, "domain")) {
        snprintf(msg, msgsz, "not a <domain>");
        return -EINVAL;
    }
    int r = check_params(root, p, msg, msgsz);
    if (r < 0)
        return r;
    struct dom_info info;
    r = domxml_read_doc(dom, &info, msg, msgsz);
    if (r < 0)
        return r;
    r = rewrite_disks(root, &info, p, out, msg, msgsz);
    domxml_free(&info);
    r = r ? r : rewrite_nvram(root, p, out, msg, msgsz);
    r = r ? r : rewrite_interfaces(root, p, msg, msgsz);
    r = r ? r : rewrite_graphics(root);
    if (r == 0) {
        new_uuid(out->uuid);
        r = rewrite_ids(root, p->name, out->uuid);
    }
    r = r ? r : cloneid_set_lineage(dom, p->source_vm, p->source_snapshot, p->time);
    if (r == -ENOMEM || r == -ENAMETOOLONG)
        snprintf(msg, msgsz, "%s", strerror(-r));
    if (r < 0)
        cloneid_result_free(out);
    return r;
}

void cloneid_result_free(struct cloneid_result *r)
{
    for (size_t i = 0; i < r->ndisks; i++) {
        free(r->disks[i].old_source);
        free(r->disks[i].new_source);
    }
    free(r->disks);
    free(r->nvram_old);
    free(r->nvram_new);
    memset(r, 0, sizeof(*r));
}
