/* checkimport: the snapshots of a VM being imported by file operations
 * (import.h: cp -a of a snapshots/ tree into it), checked before its
 * first definition takes effect, by the check's own reading of a VM
 * (check.h): every image's header with the daemon's parser, bounded,
 * before any qemu-img sees it; backing names and formats by chain.h's
 * rules and inside the VM; the graph (loops, depth, missing files,
 * parents shared across disks); every snapshot.xml given: safe XML,
 * libvirt's schema, its name the directory's, its parent a snapshot of
 * the VM. And what the layout needs of an import besides: a snapshot
 * directory holds at least one image, a frozen image grows from a frozen
 * one (or from a base inside the VM), never from an active image, the
 * images of one snapshot agree on the snapshot they grow from, a
 * snapshot.xml names that same parent and only files of this VM. */
#include "config.h"

#include "ops/checkint.h"

#include "meta/xmledit.h"
#include "meta/xmlsafe.h"
#include "store/storeio.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Lexically below dir, no "." or ".." component, no "//". */
static bool below(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/' && !strstr(path, "/../") &&
           !strstr(path, "/./") && !strstr(path, "//") &&
           strcmp(path + strlen(path) - 3, "/..") != 0;
}

/* A file the XML below node names (any file= or dev= attribute, the
 * text of <nvram>, <loader>, <kernel>, <initrd>) outside dir; NULL when
 * none (the name, malloc'd, otherwise). */
static char *names_outside(xmlNodePtr node, const char *dir)
{
    static const char *const texts[] = { "nvram", "loader", "kernel", "initrd" };
    for (xmlNodePtr c = node; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        static const char *const attrs[] = { "file", "dev" };
        for (size_t i = 0; i < 2; i++) {
            char *v = xml_attr(c, attrs[i]);
            /* <disk name=...>, <target dev=...>: names, not files. */
            if (v && xmlStrcmp(c->name, BAD_CAST "source") == 0 && !below(v, dir))
                return v;
            free(v);
        }
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
            if (xmlStrcmp(c->name, BAD_CAST texts[i]) != 0)
                continue;
            xmlChar *t = xmlNodeGetContent(c);
            bool out = t && t[0] && !below((const char *)t, dir);
            char *copy = out ? strdup((const char *)t) : NULL;
            xmlFree(t);
            if (out)
                return copy ? copy : strdup("?");
        }
        char *deeper = names_outside(c->children, dir);
        if (deeper)
            return deeper;
    }
    return NULL;
}

/* The findings of the check's reading that refuse an import: all but a
 * missing snapshot.xml (the import makes it) and modes (the check's
 * rule compares with a definition the VM does not have yet). */
static int first_refusal(const struct cvm *v, char *msg, size_t msgsz)
{
    for (size_t i = 0; i < v->rep->n; i++) {
        const struct check_finding *f = &v->rep->f[i];
        if (f->kind == CK_SNAPXML_MISSING || f->kind == CK_PERM_LOOSE)
            continue;
        int r = f->kind == CK_BACKING_ESCAPE || f->kind == CK_XML_OUTSIDE ? -EACCES : -EINVAL;
        return msg_set(msg, msgsz, r, "%s: %s (%s)", f->file ? f->file : v->dir, f->detail,
                       check_kind_name(f->kind));
    }
    return 0;
}

/* The snapshot a snapshot's images grow from ("" for a root), checked
 * to be one for all of them. */
static int snap_parent(const struct cvm *v, const struct csnap *c, const char **parent, char *msg,
                       size_t msgsz)
{
    size_t images = 0;
    *parent = NULL;
    for (size_t i = 0; i < v->count; i++) {
        const struct cnode *n = &v->n[i];
        if (n->kind != N_FROZEN || !n->exists || strcmp(n->dir, c->name) != 0)
            continue;
        images++;
        if (n->parent >= 0 && v->n[n->parent].kind == N_ACTIVE)
            return msg_set(msg, msgsz, -EINVAL,
                           "%s: its backing file %s is an active image: a "
                           "snapshot's image grows from another snapshot's",
                           n->path, v->n[n->parent].path);
        const char *p = check_parent_snapshot(v, (int)i);
        if (!p)
            p = "";
        if (*parent && strcmp(*parent, p) != 0)
            return msg_set(msg, msgsz, -EINVAL,
                           "snapshot %s: its images grow from different "
                           "snapshots (%s and %s)",
                           c->name, (*parent)[0] ? *parent : "none", p[0] ? p : "none");
        *parent = p;
    }
    if (!images)
        return msg_set(msg, msgsz, -EINVAL, "snapshot %s has no image", c->name);
    return 0;
}

/* A snapshot.xml given with the import: its parent the one its images
 * say, and only this VM's files named. */
static int given_xml(const struct cvm *v, const struct csnap *c, const char *parent, char *msg,
                     size_t msgsz)
{
    if (strcmp(c->parent, parent) != 0)
        return msg_set(msg, msgsz, -EINVAL,
                       "snapshot %s: its snapshot.xml names the parent "
                       "'%s', but its images grow from '%s'",
                       c->name, c->parent, parent);
    char path[PATH_MAX], why[MSG_MAX];
    if (store_snap_path(v->s, v->vm, c->name, "snapshot.xml", path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    int fd = store_open_read(v->s, path, why, sizeof(why)), err = 0;
    if (fd < 0)
        return msg_set(msg, msgsz, -EINVAL, "%s: %s", path, why);
    xmlDocPtr doc = xmlsafe_parse_fd(fd, "domainsnapshot", &err, why, sizeof(why));
    close(fd);
    if (!doc)
        return msg_set(msg, msgsz, -EINVAL, "%s: %s", path, why);
    char *out = names_outside(xmlDocGetRootElement(doc), v->dir);
    xmlFreeDoc(doc);
    int r = 0;
    if (out)
        r = msg_set(msg, msgsz, -EACCES, "%s names %s, which is not a file of %s", path, out,
                    v->vm);
    free(out);
    return r;
}

void check_import_free(struct check_import *out)
{
    for (size_t i = 0; i < out->n; i++)
        xmlFreeDoc(out->v[i].doc);
    free(out->v);
    out->v = NULL;
    out->n = 0;
}

int check_import_snapshots(const struct store *s, const char *vm, xmlDocPtr dom,
                           struct check_import *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    struct check_opts o = { 0 };
    struct check_report rep = { 0 };
    struct cvm v = { .s = s, .o = &o, .rep = &rep, .vm = vm };
    int r = store_vm_path(s, vm, NULL, v.dir, sizeof(v.dir));
    if (r == 0 && (r = check_images(&v)) < 0)
        snprintf(msg, msgsz, "cannot read %s's images: %s", vm, strerror(-r));
    if (r == 0 && v.nsnaps == 0)
        goto done; /* nothing imported in snapshots/ */
    if (r == 0) {
        check_snapshot_xml(&v);
        r = first_refusal(&v, msg, msgsz);
    }
    if (r == 0 && !(out->v = calloc(v.nsnaps, sizeof(*out->v))))
        r = -ENOMEM;
    v.dom = dom; /* borrowed: given back before cvm_free */
    for (size_t i = 0; r == 0 && i < v.nsnaps; i++) {
        const struct csnap *c = &v.snaps[i];
        const char *parent;
        if (c->hidden)
            r = msg_set(msg, msgsz, -EINVAL, "%s: a hidden snapshot directory in an import",
                        c->name);
        if (r == 0 && (r = snap_parent(&v, c, &parent, msg, msgsz)) == 0 && c->has_xml)
            r = given_xml(&v, c, parent, msg, msgsz);
        if (r < 0 || c->has_xml)
            continue;
        /* Its creation time: the directory's mtime, which cp -a copies
         * from the mount's snapshot directory (its creation time). */
        char dir[PATH_MAX], why[MSG_MAX] = "";
        struct stat st;
        struct check_import_xml *x = &out->v[out->n];
        if ((r = store_snap_path(s, vm, c->name, NULL, dir, sizeof(dir))) < 0 ||
            (r = store_lstat(s, dir, &st)) < 0)
            break;
        r = check_build_snapshot(&v, c->name, NULL, (int64_t)st.st_mtime, &x->doc, why,
                                 sizeof(why));
        if (r < 0) {
            snprintf(msg, msgsz, "snapshot %s: cannot make its snapshot.xml: %s", c->name, why);
            if (r != -ENOMEM)
                r = -EINVAL;
            break;
        }
        snprintf(x->name, sizeof(x->name), "%.64s", c->name);
        out->n++;
    }
    v.dom = NULL;
done:
    cvm_free(&v);
    check_report_free(&rep);
    if (r < 0)
        check_import_free(out);
    return r;
}
