#include "config.h"

/* The lineage element of cloneid.h: where a clone came from, kept in the
 * clone's own domain.xml so it survives with the VM (libvirt keeps
 * namespaced <metadata> elements, one per namespace). The mount lists a
 * VM's clones/ from it, so it is read as untrusted input. */

#include "meta/cloneid.h"

#include "util/names.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool in_our_ns(xmlNodePtr n)
{
    return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           xmlStrcmp(n->ns->href, BAD_CAST CLONEID_NS) == 0;
}

static xmlNodePtr metadata_in(xmlNodePtr root)
{
    for (xmlNodePtr c = root ? root->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !c->ns && xmlStrcmp(c->name, BAD_CAST "metadata") == 0)
            return c;
    return NULL;
}

static xmlNodePtr metadata_of(xmlDocPtr dom)
{
    return metadata_in(xmlDocGetRootElement(dom));
}

static int remove_ours(xmlNodePtr md)
{
    int n = 0;
    xmlNodePtr c = md->children;
    while (c) {
        xmlNodePtr next = c->next;
        if (in_our_ns(c)) {
            xmlUnlinkNode(c);
            xmlFreeNode(c);
            n++;
        }
        c = next;
    }
    return n;
}

/* libvirt's schema puts <metadata> after <name>/<uuid>/<genid>/<title>/
 * <description>: placed before the first element that is none of those. */
static xmlNodePtr new_metadata(xmlNodePtr root)
{
    static const char *const head[] = { "name", "uuid", "genid", "title", "description" };
    xmlNodePtr md = xmlNewNode(NULL, BAD_CAST "metadata");
    if (!md)
        return NULL;
    for (xmlNodePtr c = root->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        bool in_head = false;
        for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
            in_head = in_head || xmlStrcmp(c->name, BAD_CAST head[i]) == 0;
        if (!in_head)
            return xmlAddPrevSibling(c, md);
    }
    return xmlAddChild(root, md);
}

int cloneid_set_lineage(xmlDocPtr dom, const char *source, const char *snapshot, int64_t time)
{
    xmlNodePtr root = xmlDocGetRootElement(dom);
    if (!root)
        return -EINVAL;
    xmlNodePtr md = metadata_of(dom);
    if (md)
        remove_ours(md);
    else if (!(md = new_metadata(root)))
        return -ENOMEM;
    xmlNodePtr el = xmlNewChild(md, NULL, BAD_CAST "clone", NULL);
    xmlNsPtr ns = el ? xmlNewNs(el, BAD_CAST CLONEID_NS, BAD_CAST CLONEID_NS_PREFIX) : NULL;
    if (!ns)
        return -ENOMEM;
    xmlSetNs(el, ns);
    char t[32];
    snprintf(t, sizeof(t), "%" PRId64, time);
    if (!xmlNewProp(el, BAD_CAST "source", BAD_CAST source) ||
        (snapshot && !xmlNewProp(el, BAD_CAST "snapshot", BAD_CAST snapshot)) ||
        !xmlNewProp(el, BAD_CAST "time", BAD_CAST t))
        return -ENOMEM;
    return 0;
}

/* A name attribute (no namespace) into out: false when it is missing and
 * required, or present and not a valid name. */
static bool read_name(xmlNodePtr el, const char *attr, bool required, char *out)
{
    xmlChar *v = xmlGetNoNsProp(el, BAD_CAST attr);
    bool ok = v ? name_is_valid((const char *)v) : !required;
    out[0] = '\0';
    if (v && ok)
        strcpy(out, (const char *)v); /* name_is_valid bounds it */
    xmlFree(v);
    return ok;
}

static bool read_time(xmlNodePtr el, int64_t *out)
{
    xmlChar *v = xmlGetNoNsProp(el, BAD_CAST "time");
    const char *s = (const char *)v;
    bool ok = s && s[0] >= '0' && s[0] <= '9' && strlen(s) <= 19;
    for (size_t i = 0; ok && s[i]; i++)
        ok = s[i] >= '0' && s[i] <= '9';
    if (ok) {
        /* 19 digits can still pass INT64_MAX: strtoimax says so. */
        char *end;
        errno = 0;
        intmax_t t = strtoimax(s, &end, 10);
        ok = errno == 0 && *end == '\0' && t <= INT64_MAX;
        *out = (int64_t)t;
    }
    xmlFree(v);
    return ok;
}

int cloneid_read_lineage(xmlDocPtr dom, struct clone_lineage *out)
{
    memset(out, 0, sizeof(*out));
    xmlNodePtr md = metadata_of(dom);
    for (xmlNodePtr c = md ? md->children : NULL; c; c = c->next) {
        if (!in_our_ns(c) || xmlStrcmp(c->name, BAD_CAST "clone") != 0)
            continue;
        if (!read_name(c, "source", true, out->source) ||
            !read_name(c, "snapshot", false, out->snapshot) || !read_time(c, &out->time)) {
            memset(out, 0, sizeof(*out));
            return -EINVAL;
        }
        return 0;
    }
    return -ENOENT;
}

int cloneid_rename_source(xmlNodePtr domain, const char *from, const char *to)
{
    int n = 0;
    xmlNodePtr md = metadata_in(domain);
    for (xmlNodePtr c = md ? md->children : NULL; c; c = c->next) {
        if (!in_our_ns(c) || xmlStrcmp(c->name, BAD_CAST "clone") != 0)
            continue;
        xmlChar *v = xmlGetNoNsProp(c, BAD_CAST "source");
        bool hit = v && xmlStrcmp(v, BAD_CAST from) == 0;
        xmlFree(v);
        if (!hit)
            continue;
        if (!xmlSetProp(c, BAD_CAST "source", BAD_CAST to))
            return -ENOMEM;
        n++;
    }
    return n;
}

int cloneid_forget_lineage(xmlDocPtr dom)
{
    xmlNodePtr md = metadata_of(dom);
    if (!md)
        return 0;
    int n = remove_ours(md);
    bool empty = true;
    for (xmlNodePtr c = md->children; c && empty; c = c->next)
        empty = c->type != XML_ELEMENT_NODE;
    if (n > 0 && empty) {
        xmlUnlinkNode(md);
        xmlFreeNode(md);
    }
    return n;
}
