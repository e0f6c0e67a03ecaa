#include "config.h"

#include "meta/domxml.h"

#include "meta/xmlsafe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_attr(xmlNodePtr node, const char *attr, char *dst, size_t dstsz)
{
    char *v = xml_attr(node, attr);
    dst[0] = '\0';
    if (v && strlen(v) < dstsz)
        strcpy(dst, v);
    free(v);
}

static int parse_disk(xmlNodePtr node, struct dom_disk *d, char *msg, size_t msgsz)
{
    memset(d, 0, sizeof(*d));
    copy_attr(node, "device", d->device, sizeof(d->device));
    if (!d->device[0])
        strcpy(d->device, "disk");
    copy_attr(node, "type", d->type, sizeof(d->type));
    copy_attr(xml_child(node, "target"), "dev", d->dev, sizeof(d->dev));
    if (!d->dev[0]) {
        snprintf(msg, msgsz, "a <disk> has no <target dev>");
        return -EINVAL;
    }
    copy_attr(xml_child(node, "driver"), "type", d->driver_type, sizeof(d->driver_type));
    xmlNodePtr src = xml_child(node, "source");
    d->source = xml_attr(src, "file");
    if (!d->source)
        d->source = xml_attr(src, "dev");
    d->readonly = xml_child(node, "readonly") != NULL;
    d->shareable = xml_child(node, "shareable") != NULL;
    return 0;
}

static int parse_doc(xmlDocPtr doc, struct dom_info *out, char *msg, size_t msgsz)
{
    xmlNodePtr root = xmlDocGetRootElement(doc);
    out->name = xml_child_text(root, "name");
    if (!out->name || !out->name[0]) {
        snprintf(msg, msgsz, "<domain> has no <name>");
        return -EINVAL;
    }
    out->uuid = xml_child_text(root, "uuid");
    xmlNodePtr devices = xml_child(root, "devices");
    size_t n = 0;
    for (xmlNodePtr c = devices ? devices->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, BAD_CAST "disk") == 0)
            n++;
    out->disks = n ? calloc(n, sizeof(*out->disks)) : NULL;
    if (n && !out->disks)
        return -ENOMEM;
    for (xmlNodePtr c = devices ? devices->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, BAD_CAST "disk") != 0)
            continue;
        int r = parse_disk(c, &out->disks[out->ndisks], msg, msgsz);
        if (r < 0)
            return r;
        out->ndisks++;
    }
    return 0;
}

/* The tree reader: on failure the half-filled result is released. */
static int read_tree(xmlDocPtr doc, void *p, char *msg, size_t msgsz)
{
    struct dom_info *out = p;
    int r = parse_doc(doc, out, msg, msgsz);
    if (r < 0)
        domxml_free(out);
    return r;
}

int domxml_read_doc(xmlDocPtr doc, struct dom_info *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    return read_tree(doc, out, msg, msgsz);
}

int domxml_parse_fd(int fd, struct dom_info *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    return xmlsafe_read_fd(fd, "domain", read_tree, out, msg, msgsz);
}

int domxml_parse_mem(const char *buf, size_t len, struct dom_info *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    return xmlsafe_read_mem(buf, len, "domain", read_tree, out, msg, msgsz);
}

void domxml_free(struct dom_info *info)
{
    for (size_t i = 0; i < info->ndisks; i++)
        free(info->disks[i].source);
    free(info->disks);
    free(info->name);
    free(info->uuid);
    memset(info, 0, sizeof(*info));
}

bool dom_disk_is_snapshotable(const struct dom_disk *d)
{
    return strcmp(d->device, "disk") == 0 && strcmp(d->type, "file") == 0 && !d->readonly &&
           !d->shareable;
}
