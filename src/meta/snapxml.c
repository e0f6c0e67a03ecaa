#include "config.h"

#include "meta/snapxml.h"

#include "meta/xmlsafe.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_time(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    while (*end == ' ' || *end == '\n' || *end == '\t')
        end++;
    if (errno || *end || v < 0)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_disks(xmlNodePtr root, struct snap_info *out)
{
    xmlNodePtr disks = xml_child(root, "disks");
    size_t n = 0;
    for (xmlNodePtr c = disks ? disks->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            n++;
    out->disks = n ? calloc(n, sizeof(char *)) : NULL;
    if (n && !out->disks)
        return -ENOMEM;
    for (xmlNodePtr c = disks ? disks->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, BAD_CAST "disk") != 0)
            continue;
        char *mode = xml_attr(c, "snapshot");
        bool skip = mode && strcmp(mode, "no") == 0;
        free(mode);
        char *name = xml_attr(c, "name");
        if (skip || !name) {
            free(name);
            continue;
        }
        out->disks[out->ndisks++] = name;
    }
    return 0;
}

static int parse_doc(xmlDocPtr doc, struct snap_info *out, char *msg, size_t msgsz)
{
    xmlNodePtr root = xmlDocGetRootElement(doc);
    out->name = xml_child_text(root, "name");
    if (!out->name || !out->name[0]) {
        snprintf(msg, msgsz, "<domainsnapshot> has no <name>");
        return -EINVAL;
    }
    char *t = xml_child_text(root, "creationTime");
    int r = parse_time(t, &out->creation_time);
    free(t);
    if (r < 0) {
        snprintf(msg, msgsz, "<domainsnapshot> has no numeric <creationTime>");
        return r;
    }
    out->parent = xml_child_text(xml_child(root, "parent"), "name");
    out->description = xml_child_text(root, "description");
    return parse_disks(root, out);
}

/* The tree reader: on failure the half-filled result is released. */
static int read_tree(xmlDocPtr doc, void *p, char *msg, size_t msgsz)
{
    struct snap_info *out = p;
    int r = parse_doc(doc, out, msg, msgsz);
    if (r < 0)
        snapxml_free(out);
    return r;
}

int snapxml_parse_fd(int fd, struct snap_info *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    return xmlsafe_read_fd(fd, "domainsnapshot", read_tree, out, msg, msgsz);
}

int snapxml_parse_mem(const char *buf, size_t len, struct snap_info *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    return xmlsafe_read_mem(buf, len, "domainsnapshot", read_tree, out, msg, msgsz);
}

void snapxml_free(struct snap_info *info)
{
    for (size_t i = 0; i < info->ndisks; i++)
        free(info->disks[i]);
    free(info->disks);
    free(info->name);
    free(info->parent);
    free(info->description);
    memset(info, 0, sizeof(*info));
}

static bool dup_str(const char *src, char **dst)
{
    *dst = src ? strdup(src) : NULL;
    return !src || *dst;
}

int snapxml_copy(const struct snap_info *src, struct snap_info *dst)
{
    memset(dst, 0, sizeof(*dst));
    dst->creation_time = src->creation_time;
    bool ok = dup_str(src->name, &dst->name) && dup_str(src->parent, &dst->parent) &&
              dup_str(src->description, &dst->description);
    if (ok && src->ndisks) {
        dst->disks = calloc(src->ndisks, sizeof(char *));
        ok = dst->disks != NULL;
        for (size_t i = 0; ok && i < src->ndisks; i++, dst->ndisks++)
            ok = dup_str(src->disks[i], &dst->disks[i]);
    }
    if (!ok) {
        snapxml_free(dst);
        return -ENOMEM;
    }
    return 0;
}

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

size_t snapxml_size(const struct snap_info *info)
{
    size_t n = sizeof(*info) + str_size(info->name) + str_size(info->parent) +
               str_size(info->description) + info->ndisks * sizeof(char *);
    for (size_t i = 0; i < info->ndisks; i++)
        n += str_size(info->disks[i]);
    return n;
}
