#include "config.h"

#include "meta/xmledit.h"

#include "meta/xmlsafe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

xmlNodePtr xmledit_find_disk(xmlNodePtr domain, const char *dev)
{
    xmlNodePtr devices = xml_child(domain, "devices");
    for (xmlNodePtr c = devices ? devices->children : NULL; c; c = c->next)
        if (xml_is_elem(c, "disk") && xml_attr_is(xml_child(c, "target"), "dev", dev))
            return c;
    return NULL;
}

static void remove_children(xmlNodePtr parent, const char *name)
{
    xmlNodePtr c = parent->children;
    while (c) {
        xmlNodePtr next = c->next;
        if (xml_is_elem(c, name)) {
            xmlUnlinkNode(c);
            xmlFreeNode(c);
        }
        c = next;
    }
}

/* <backingStore type='file'><format type=F/><source file=P/>...</backingStore> */
static int add_chain(xmlNodePtr parent, const struct xml_chain_link *below, size_t n)
{
    xmlNodePtr at = parent;
    for (size_t i = 0; i < n; i++) {
        xmlNodePtr bs = xmlNewChild(at, NULL, BAD_CAST "backingStore", NULL);
        if (!bs || !xmlNewProp(bs, BAD_CAST "type", BAD_CAST "file"))
            return -ENOMEM;
        xmlNodePtr f = xmlNewChild(bs, NULL, BAD_CAST "format", NULL);
        xmlNodePtr s = xmlNewChild(bs, NULL, BAD_CAST "source", NULL);
        if (!f || !s || !xmlNewProp(f, BAD_CAST "type", BAD_CAST below[i].format) ||
            !xmlNewProp(s, BAD_CAST "file", BAD_CAST below[i].path))
            return -ENOMEM;
        at = bs;
    }
    /* An empty <backingStore/> says the chain ends here. */
    return xmlNewChild(at, NULL, BAD_CAST "backingStore", NULL) ? 0 : -ENOMEM;
}

int xmledit_set_disk(xmlNodePtr domain, const char *dev, const char *source,
                     const struct xml_chain_link *below, size_t n)
{
    xmlNodePtr disk = xmledit_find_disk(domain, dev);
    if (!disk)
        return -ENOENT;
    xmlNodePtr src = xml_child(disk, "source");
    if (!src && !(src = xmlNewChild(disk, NULL, BAD_CAST "source", NULL)))
        return -ENOMEM;
    if (!xmlSetProp(src, BAD_CAST "file", BAD_CAST source))
        return -ENOMEM;
    remove_children(disk, "backingStore");
    return add_chain(disk, below, n);
}

static xmlNodePtr new_text_child(xmlNodePtr parent, const char *name, const char *text)
{
    return xmlNewTextChild(parent, NULL, BAD_CAST name, BAD_CAST text);
}

xmlDocPtr xmledit_new_snapshot(const char *name, const char *description, const char *parent,
                               int64_t creation_time, xmlNodePtr domain)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr root = doc ? xmlNewNode(NULL, BAD_CAST "domainsnapshot") : NULL;
    if (!root) {
        xmlFreeDoc(doc);
        return NULL;
    }
    xmlDocSetRootElement(doc, root);
    char ctime[32];
    snprintf(ctime, sizeof(ctime), "%" PRId64, creation_time);
    bool ok = new_text_child(root, "name", name) != NULL;
    if (ok && description)
        ok = new_text_child(root, "description", description) != NULL;
    ok = ok && new_text_child(root, "state", "shutoff");
    if (ok && parent) {
        xmlNodePtr p = xmlNewChild(root, NULL, BAD_CAST "parent", NULL);
        ok = p && new_text_child(p, "name", parent);
    }
    ok = ok && new_text_child(root, "creationTime", ctime);
    xmlNodePtr mem = ok ? xmlNewChild(root, NULL, BAD_CAST "memory", NULL) : NULL;
    ok = mem && xmlNewProp(mem, BAD_CAST "snapshot", BAD_CAST "no");
    ok = ok && xmlNewChild(root, NULL, BAD_CAST "disks", NULL);
    if (ok && domain) {
        xmlNodePtr copy = xmlDocCopyNode(domain, doc, 1);
        ok = copy && xmlAddChild(root, copy);
    }
    if (!ok) {
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

int xmledit_snapshot_add_disk(xmlDocPtr snap, const char *dev, const char *source)
{
    xmlNodePtr disks = xml_child(xmlDocGetRootElement(snap), "disks");
    xmlNodePtr d = disks ? xmlNewChild(disks, NULL, BAD_CAST "disk", NULL) : NULL;
    if (!d || !xmlNewProp(d, BAD_CAST "name", BAD_CAST dev))
        return -ENOMEM;
    if (!source)
        return xmlNewProp(d, BAD_CAST "snapshot", BAD_CAST "no") ? 0 : -ENOMEM;
    if (!xmlNewProp(d, BAD_CAST "snapshot", BAD_CAST "external") ||
        !xmlNewProp(d, BAD_CAST "type", BAD_CAST "file"))
        return -ENOMEM;
    xmlNodePtr drv = xmlNewChild(d, NULL, BAD_CAST "driver", NULL);
    xmlNodePtr src = xmlNewChild(d, NULL, BAD_CAST "source", NULL);
    if (!drv || !src || !xmlNewProp(drv, BAD_CAST "type", BAD_CAST "qcow2") ||
        !xmlNewProp(src, BAD_CAST "file", BAD_CAST source))
        return -ENOMEM;
    return 0;
}

int xmledit_snapshot_set_disk_source(xmlDocPtr snap, const char *dev, const char *source)
{
    xmlNodePtr disks = xml_child(xmlDocGetRootElement(snap), "disks");
    for (xmlNodePtr c = disks ? disks->children : NULL; c; c = c->next) {
        if (!xml_is_elem(c, "disk") || !xml_attr_is(c, "name", dev))
            continue;
        if (xml_attr_is(c, "snapshot", "no"))
            return 0;
        xmlNodePtr src = xml_child(c, "source");
        if (!src && !(src = xmlNewChild(c, NULL, BAD_CAST "source", NULL)))
            return -ENOMEM;
        return xmlSetProp(src, BAD_CAST "file", BAD_CAST source) ? 0 : -ENOMEM;
    }
    return -ENOENT;
}

xmlNodePtr xmledit_snapshot_domain(xmlDocPtr snap)
{
    return xml_child(xmlDocGetRootElement(snap), "domain");
}

int xmledit_set_child_text(xmlNodePtr root, const char *name, const char *text)
{
    xmlNodePtr c = xml_child(root, name);
    if (!c)
        return new_text_child(root, name, text) ? 0 : -ENOMEM;
    return xmledit_set_text(c, text);
}

int xmledit_set_text(xmlNodePtr node, const char *text)
{
    xmlChar *esc = xmlEncodeSpecialChars(node->doc, BAD_CAST text);
    if (!esc)
        return -ENOMEM;
    xmlNodeSetContent(node, esc);
    xmlFree(esc);
    return 0;
}

int xmledit_set_parent(xmlDocPtr snap, const char *parent)
{
    xmlNodePtr root = xmlDocGetRootElement(snap);
    xmlNodePtr p = xml_child(root, "parent");
    if (!parent) {
        if (p) {
            xmlUnlinkNode(p);
            xmlFreeNode(p);
        }
        return 0;
    }
    if (!p) {
        /* libvirt writes <parent> before <creationTime>; the schema does
         * not mind the order, readers of the file might. */
        xmlNodePtr ct = xml_child(root, "creationTime");
        p = xmlNewNode(NULL, BAD_CAST "parent");
        if (!p)
            return -ENOMEM;
        if (ct)
            xmlAddPrevSibling(ct, p);
        else
            xmlAddChild(root, p);
    }
    return xmledit_set_child_text(p, "name", parent);
}

/* exact: the whole name is old_prefix; otherwise a name below it. */
static int rewrite(xmlNodePtr node, const char *old_prefix, size_t oldlen, const char *new_prefix,
                   bool exact)
{
    int n = 0;
    for (xmlNodePtr c = node; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (xml_is_elem(c, "source")) {
            char *f = xml_attr(c, "file");
            if (f && strncmp(f, old_prefix, oldlen) == 0 &&
                f[oldlen] == (exact ? '\0' : '/')) {
                size_t need = strlen(new_prefix) + strlen(f + oldlen) + 1;
                char *nf = malloc(need);
                if (nf) {
                    snprintf(nf, need, "%s%s", new_prefix, f + oldlen);
                    xmlSetProp(c, BAD_CAST "file", BAD_CAST nf);
                    free(nf);
                    n++;
                }
            }
            free(f);
        }
        n += rewrite(c->children, old_prefix, oldlen, new_prefix, exact);
    }
    return n;
}

int xmledit_rewrite_prefix(xmlNodePtr node, const char *old_prefix, const char *new_prefix)
{
    return node ? rewrite(node->children, old_prefix, strlen(old_prefix), new_prefix, false) : 0;
}

/* value with old (length ol) at its start, as a whole name or a
 * directory above the rest, given new instead (malloc'd); NULL when it
 * does not start so (or out of memory: *err). */
static char *moved_value(const char *value, const char *old, size_t ol, const char *new, int *err)
{
    if (!value || strncmp(value, old, ol) != 0 || (value[ol] != '\0' && value[ol] != '/'))
        return NULL;
    size_t need = strlen(new) + strlen(value + ol) + 1;
    char *nv = malloc(need);
    if (!nv)
        *err = -ENOMEM;
    else
        snprintf(nv, need, "%s%s", new, value + ol);
    return nv;
}

static int rewrite_dir(xmlNodePtr n, const char *old, size_t ol, const char *new)
{
    int count = 0, err = 0;
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        char *nv = moved_value((const char *)n->content, old, ol, new, &err);
        if (nv) {
            xmlNodeSetContent(n, NULL);
            xmlNodeAddContent(n, BAD_CAST nv);
            free(nv);
            count++;
        }
        return err < 0 ? err : count;
    }
    if (n->type != XML_ELEMENT_NODE)
        return 0;
    for (xmlAttrPtr a = n->properties; a && err == 0; a = a->next) {
        xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
        char *nv = moved_value((const char *)v, old, ol, new, &err);
        xmlFree(v);
        if (nv) {
            if (!xmlSetNsProp(n, a->ns, a->name, BAD_CAST nv))
                err = -ENOMEM;
            free(nv);
            count++;
        }
    }
    for (xmlNodePtr c = n->children; c && err == 0; c = c->next) {
        int r = rewrite_dir(c, old, ol, new);
        if (r < 0)
            err = r;
        else
            count += r;
    }
    return err < 0 ? err : count;
}

int xmledit_rewrite_dir(xmlNodePtr node, const char *old_dir, const char *new_dir)
{
    return node ? rewrite_dir(node, old_dir, strlen(old_dir), new_dir) : 0;
}

int xmledit_rewrite_path(xmlNodePtr node, const char *old_path, const char *new_path)
{
    return node ? rewrite(node->children, old_path, strlen(old_path), new_path, true) : 0;
}

int xmledit_snapshot_forget_source(xmlDocPtr snap, const char *path)
{
    int n = 0;
    xmlNodePtr disks = xml_child(xmlDocGetRootElement(snap), "disks");
    for (xmlNodePtr c = disks ? disks->children : NULL; c; c = c->next) {
        xmlNodePtr src = xml_is_elem(c, "disk") ? xml_child(c, "source") : NULL;
        if (src && xml_attr_is(src, "file", path)) {
            xmlUnlinkNode(src);
            xmlFreeNode(src);
            n++;
        }
    }
    return n;
}

int xmledit_remove_disk(xmlNodePtr domain, const char *dev)
{
    xmlNodePtr d = xmledit_find_disk(domain, dev);
    if (!d)
        return -ENOENT;
    xmlUnlinkNode(d);
    xmlFreeNode(d);
    return 0;
}

int xmledit_snapshot_disk_off(xmlDocPtr snap, const char *dev)
{
    xmlNodePtr disks = xml_child(xmlDocGetRootElement(snap), "disks");
    for (xmlNodePtr c = disks ? disks->children : NULL; c; c = c->next) {
        if (!xml_is_elem(c, "disk") || !xml_attr_is(c, "name", dev))
            continue;
        xmlNodePtr k = c->children;
        while (k) {
            xmlNodePtr next = k->next;
            xmlUnlinkNode(k);
            xmlFreeNode(k);
            k = next;
        }
        xmlUnsetProp(c, BAD_CAST "type");
        return xmlSetProp(c, BAD_CAST "snapshot", BAD_CAST "no") ? 0 : -ENOMEM;
    }
    return xmledit_snapshot_add_disk(snap, dev, NULL);
}

xmlDocPtr xmledit_doc_from_node(xmlNodePtr node)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr copy = doc ? xmlDocCopyNode(node, doc, 1) : NULL;
    if (!copy) {
        xmlFreeDoc(doc);
        return NULL;
    }
    xmlDocSetRootElement(doc, copy);
    return doc;
}

/* Whitespace-only text between elements: dropped so the output is
 * indented afresh, the new <backingStore> chains included. */
static void drop_blanks(xmlNodePtr node)
{
    xmlNodePtr c = node ? node->children : NULL;
    while (c) {
        xmlNodePtr next = c->next;
        if (c->type == XML_TEXT_NODE && xmlIsBlankNode(c) && (c->prev || c->next)) {
            xmlUnlinkNode(c);
            xmlFreeNode(c);
        } else if (c->type == XML_ELEMENT_NODE) {
            drop_blanks(c);
        }
        c = next;
    }
}

int xmledit_dump(xmlDocPtr doc, char **out, size_t *len)
{
    /* The root element alone, no XML declaration: libvirt writes none. */
    xmlNodePtr root = xmlDocGetRootElement(doc);
    drop_blanks(root);
    xmlBufferPtr b = root ? xmlBufferCreate() : NULL;
    if (!b)
        return -ENOMEM;
    int r = -ENOMEM;
    if (xmlNodeDump(b, doc, root, 0, 1) >= 0) {
        size_t l = (size_t)xmlBufferLength(b);
        char *buf = malloc(l + 2);
        if (buf) {
            memcpy(buf, xmlBufferContent(b), l);
            buf[l++] = '\n';
            buf[l] = '\0';
            *out = buf;
            *len = l;
            r = 0;
        }
    }
    xmlBufferFree(b);
    return r;
}
