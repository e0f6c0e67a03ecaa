#include "config.h"

#include "ops/redefine.h"

#include "meta/xmlschema.h"
#include "meta/domxml.h"
#include "meta/xmledit.h"
#include "meta/xmlsafe.h"
#include "ops/check.h"
#include "ops/import.h"
#include "ops/vmdelete.h"
#include "store/storeio.h"
#include "util/log.h"
#include "vm/bgmerge.h"
#include "vm/delplan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct redef {
    const char *xml;
    size_t len;
    size_t ndetached; /* out: disks the new definition left out */
    size_t nimported; /* out: snapshot.xml files an import made */
};

/* Is path absolute, normalised (no "." or ".." component, no "//") and
 * below dir? */
static bool inside(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    if (strncmp(path, dir, dl) != 0 || path[dl] != '/')
        return false;
    for (const char *p = path + dl; *p; p++) {
        if (*p != '/')
            continue;
        const char *c = p + 1;
        size_t n = strcspn(c, "/");
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
    }
    return true;
}

/* Nothing the definition names lies outside the store: every disk is a
 * file in it (a clone shares its source's read-only disks, which are in
 * the source's directory), and <nvram> is in the VM's own directory. */
static int check_outside(const struct vm_model *m, xmlDocPtr doc, char *msg, size_t msgsz)
{
    struct dom_info info = { 0 };
    char why[MSG_MAX];
    if (domxml_read_doc(doc, &info, why, sizeof(why)) < 0) {
        snprintf(msg, msgsz, "%s", why);
        return -EINVAL;
    }
    int r = 0;
    for (size_t i = 0; r == 0 && i < info.ndisks; i++) {
        const struct dom_disk *d = &info.disks[i];
        /* An image's format is what the definition says, never what its
         * first bytes look like (a raw image could pass for a qcow2). */
        if (d->source && !d->driver_type[0]) {
            snprintf(msg, msgsz, "disk %s: no <driver type>: the format must be given, it is "
                                 "never probed", d->dev);
            r = -EINVAL;
            break;
        }
        if (!d->source)
            continue; /* an empty CD-ROM drive */
        if (strcmp(d->type, "file") != 0) {
            snprintf(msg, msgsz, "disk %s: type %s; only files in the store can be disks", d->dev,
                     d->type);
            r = -EINVAL;
        } else if (!inside(d->source, m->s->root)) {
            snprintf(msg, msgsz, "disk %s: %s is outside the store", d->dev, d->source);
            r = -EINVAL;
        }
    }
    domxml_free(&info);
    char *nvram = r == 0 ? xml_child_text(xml_child(xmlDocGetRootElement(doc), "os"), "nvram")
                         : NULL;
    if (nvram && !inside(nvram, m->dir)) {
        snprintf(msg, msgsz, "<nvram> %s is outside the VM's directory", nvram);
        r = -EINVAL;
    }
    free(nvram);
    return r;
}

/* The new text as a definition of m's VM, or -EINVAL with the reason.
 * A VM being imported (import.h) has its snapshots checked too: the
 * snapshot.xml files to write for those that have none in *imp (when
 * imp is not NULL). */
static int check_new(const struct vm_model *m, const struct redef *a, xmlDocPtr *out,
                     struct check_import *imp, char *msg, size_t msgsz)
{
    char why[MSG_MAX];
    xmlDocPtr doc = xmlsafe_parse_mem(a->xml, a->len, "domain", why, sizeof(why));
    if (!doc) {
        snprintf(msg, msgsz, "%s", why);
        return -EINVAL;
    }
    xmlNodePtr root = xmlDocGetRootElement(doc);
    char *name = xml_child_text(root, "name");
    int r = 0;
    if (!name)
        r = xmledit_set_child_text(root, "name", m->vm);
    else if (strcmp(name, m->vm) != 0) {
        snprintf(msg, msgsz, "its <name> is '%.64s', not the VM's directory name %s", name, m->vm);
        r = -EINVAL;
    }
    free(name);
    if (r == 0)
        r = xmlschema_check_domain(doc, msg, msgsz);
    if (r == 0)
        r = check_outside(m, doc, msg, msgsz);
    if (r == 0 && (r = vm_check_definition(m, doc, NULL, NULL, why, sizeof(why))) < 0) {
        snprintf(msg, msgsz, "%s", why);
        if (r == -ENOENT)
            snprintf(msg, msgsz, "%s (a disk's image must be in disks/ before the definition "
                                 "names it)", why);
        /* A chain that points out of the VM is EACCES (as serving it
         * is); anything else wrong with the definition EINVAL. */
        if (r != -ENOMEM && r != -EIO && r != -EACCES)
            r = -EINVAL;
    }
    struct check_import found = { 0 };
    if (r == 0 && vm_importing(m->s, m->vm) &&
        (r = check_import_snapshots(m->s, m->vm, doc, &found, why, sizeof(why))) < 0)
        snprintf(msg, msgsz, "the imported snapshots: %s", why);
    if (imp)
        *imp = found;
    else
        check_import_free(&found);
    if (r < 0) {
        xmlFreeDoc(doc);
        return r;
    }
    *out = doc;
    return 0;
}

/* The snapshot.xml an import makes, each written beside its images. */
static int write_imported(struct vm_model *m, struct journal *j, const struct check_import *imp,
                          char *msg, size_t msgsz)
{
    int r = 0;
    for (size_t i = 0; r == 0 && i < imp->n; i++) {
        const struct check_import_xml *x = &imp->v[i];
        char name[NAME_MAX_LEN + 32], tmp[PATH_MAX], dst[PATH_MAX];
        snprintf(name, sizeof(name), "import-%s.xml", x->name);
        /* As every snapshot.xml the store writes: libvirt takes it back. */
        if ((r = xmlschema_validate(x->doc, "domainsnapshot", msg, msgsz)) < 0)
            break;
        if ((r = vm_write_xml(m, j, x->doc, name, tmp, sizeof(tmp), msg, msgsz)) == 0 &&
            (r = store_snap_path(m->s, m->vm, x->name, "snapshot.xml", dst, sizeof(dst))) == 0)
            r = journal_move(j, tmp, dst);
    }
    return r;
}

/* The snapshot-able disks (their devs, "\0"-joined) of the definition
 * the VM has now: domain.xml, else the one an undefine kept; none when
 * neither parses (a broken definition is replaced, not merged with). */
static int old_devs(const struct vm_model *m, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    static const char *const from[] = { "domain.xml", UNDEFINED_XML };
    for (size_t k = 0; k < 2; k++) {
        char path[PATH_MAX], why[MSG_MAX];
        if (store_vm_path(m->s, m->vm, from[k], path, sizeof(path)) < 0)
            return -ENAMETOOLONG;
        int fd = store_open_read(m->s, path, why, sizeof(why));
        if (fd < 0)
            continue;
        struct dom_info info = { 0 };
        int r = domxml_parse_fd(fd, &info, why, sizeof(why));
        close(fd);
        if (r < 0)
            return 0;
        char **devs = calloc(info.ndisks ? info.ndisks : 1, sizeof(*devs));
        for (size_t i = 0; devs && i < info.ndisks; i++)
            if (dom_disk_is_snapshotable(&info.disks[i]) && dev_is_valid(info.disks[i].dev))
                devs[(*n)++] = strdup(info.disks[i].dev);
        domxml_free(&info);
        *out = devs;
        return devs ? 0 : -ENOMEM;
    }
    return 0;
}

static void free_devs(char **devs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(devs[i]);
    free(devs);
}

/* The disks the new definition leaves out, detached (vmdelete.c's
 * plan_detach: the same delplan steps, all in this one operation). */
static int detach_removed(struct vm_model *m, struct journal *j, xmlDocPtr doc, size_t *count,
                          char *msg, size_t msgsz)
{
    char **devs;
    size_t n;
    int r = old_devs(m, &devs, &n);
    if (r < 0)
        return r;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    struct delplan dp;
    bool planned = false;
    for (size_t i = 0; r == 0 && i < n; i++) {
        char active[PATH_MAX];
        if (!devs[i] || xmledit_find_disk(root, devs[i]))
            continue;
        if ((r = store_disk_path(m->s, m->vm, devs[i], active, sizeof(active))) < 0 ||
            !storeio_exists(m->s, active))
            continue;
        if (!planned) {
            if ((r = delplan_init(&dp, m, msg, msgsz)) < 0 || (r = delplan_attach(&dp, j)) < 0) {
                delplan_free(&dp);
                break;
            }
            planned = true;
        }
        int at = igraph_find(&dp.g, active);
        r = at < 0 ? -EINVAL : delplan_remove(&dp, at);
        if (r == 0)
            (*count)++;
    }
    if (planned) {
        if (r == 0)
            r = delplan_gc(&dp);
        /* The snapshots' XML follows the graph; domain.xml is written by
         * the caller, from the new text (m->dom stays NULL here). */
        if (r == 0)
            r = delplan_write_xml(&dp, NULL);
        delplan_free(&dp);
    }
    free_devs(devs, n);
    return r;
}

/* Each snapshot-able disk's <backingStore> chain, from its images; and
 * qemu kept off every active image until the operation ends (-EBUSY
 * while a qemu or a writer through the mount has one). */
static int spell_chains(struct vm_model *m, xmlDocPtr doc, char *msg, size_t msgsz)
{
    struct dom_info info = { 0 };
    char why[MSG_MAX];
    int r = domxml_read_doc(doc, &info, why, sizeof(why));
    for (size_t i = 0; r == 0 && i < info.ndisks; i++) {
        const struct dom_disk *d = &info.disks[i];
        if (!dom_disk_is_snapshotable(d))
            continue;
        char active[PATH_MAX];
        struct chain ch = { 0 };
        if ((r = store_disk_path(m->s, m->vm, d->dev, active, sizeof(active))) < 0 ||
            (r = vm_hold_image(m, active, d->dev, msg, msgsz)) < 0)
            break;
        if ((r = chain_walk(m->s, active, &ch, why, sizeof(why))) < 0) {
            snprintf(msg, msgsz, "disk %s: %s", d->dev, why);
            break;
        }
        size_t n;
        struct xml_chain_link *below = vm_xml_chain(&ch, 1, &n);
        r = below ? xmledit_set_disk(xmlDocGetRootElement(doc), d->dev, active, below, n)
                  : -ENOMEM;
        free(below);
        chain_free(&ch);
    }
    domxml_free(&info);
    return r;
}

static int plan_redefine(struct vm_model *m, struct journal *j, const void *arg, char *msg,
                         size_t msgsz)
{
    struct redef *a = (struct redef *)arg;
    xmlDocPtr doc;
    struct check_import imp;
    int r = check_new(m, a, &doc, &imp, msg, msgsz);
    if (r < 0)
        return r;
    a->nimported = imp.n;
    char tmp[PATH_MAX], dst[PATH_MAX], kept[PATH_MAX], gone[PATH_MAX];
    if ((r = spell_chains(m, doc, msg, msgsz)) == 0 &&
        (r = write_imported(m, j, &imp, msg, msgsz)) == 0 &&
        (r = detach_removed(m, j, doc, &a->ndetached, msg, msgsz)) == 0 &&
        (r = vm_write_xml(m, j, doc, "domain.xml", tmp, sizeof(tmp), msg, msgsz)) == 0 &&
        (r = store_vm_path(m->s, m->vm, "domain.xml", dst, sizeof(dst))) == 0 &&
        (r = store_vm_path(m->s, m->vm, UNDEFINED_XML, kept, sizeof(kept))) == 0)
        r = journal_replace(j, tmp, dst);
    /* A definition an undefine kept is superseded: it leaves with the
     * operation's temporary directory. */
    if (r == 0 && storeio_exists(m->s, kept)) {
        if ((size_t)snprintf(gone, sizeof(gone), "%s/undefined.xml", j->tmpdir) >= sizeof(gone))
            r = -ENAMETOOLONG;
        else
            r = journal_move(j, kept, gone);
    }
    xmlFreeDoc(doc);
    check_import_free(&imp);
    return r;
}

int vm_redefine(const struct snap_ctx *c, const char *vm, const char *xml, size_t len, char *msg,
                size_t msgsz)
{
    struct redef a = { xml, len, 0, 0 };
    msg[0] = '\0';
    /* A refused definition is found before a record is written: it
     * changes nothing, not even the journal's directory. The plan checks
     * again under the same lock. */
    struct vm_model m;
    xmlDocPtr doc = NULL;
    int r = vm_begin(&m, c, vm, msg, msgsz);
    if (r == 0)
        r = check_new(&m, &a, &doc, NULL, msg, msgsz);
    if (doc)
        xmlFreeDoc(doc);
    vm_end(&m);
    if (r < 0)
        return r;
    r = vm_run(c, vm, "redefine", plan_redefine, &a, msg, msgsz);
    if (r == 0 && a.ndetached)
        bgmerge_kick(vm); /* hidden images a detach left with one dependent */
    if (r == 0)
        log_msg(LOG_INFO, "%s is redefined from the domain.xml written through the mount%s%s", vm,
                a.ndetached ? " (disks it left out detached)" : "",
                a.nimported ? " (snapshot.xml made for its imported snapshots)" : "");
    return r;
}
