#include "config.h"

#include "xmlsafe.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libxml2 reports errors through a global callback; silence it so a bad
 * file is reported once by us, in our words, not spewed to stderr. */
static void quiet(void *ctx, const char *fmt, ...)
{
    (void)ctx;
    (void)fmt;
}

xmlDocPtr xmlsafe_parse_mem(const char *buf, size_t len, const char *root, char *msg, size_t msgsz)
{
    if (len > XMLSAFE_MAX_BYTES) {
        snprintf(msg, msgsz, "XML larger than %u bytes", XMLSAFE_MAX_BYTES);
        return NULL;
    }
    xmlSetGenericErrorFunc(NULL, quiet);
    /* No XML_PARSE_NOENT (that would expand entities), no DTDLOAD/DTDATTR,
     * NONET so nothing is fetched. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
    xmlDocPtr doc = xmlReadMemory(buf, (int)len, NULL, NULL, opts);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        snprintf(msg, msgsz, "not well-formed XML%s%s", e && e->message ? ": " : "",
                 e && e->message ? e->message : "");
        /* libxml2 messages end with a newline; keep log lines to one line */
        size_t l = strlen(msg);
        while (l > 0 && (msg[l - 1] == '\n' || msg[l - 1] == ' '))
            msg[--l] = '\0';
        return NULL;
    }
    if (doc->intSubset || doc->extSubset) {
        snprintf(msg, msgsz, "XML with a DOCTYPE is refused");
        xmlFreeDoc(doc);
        return NULL;
    }
    xmlNodePtr r = xmlDocGetRootElement(doc);
    if (!r || xmlStrcmp(r->name, BAD_CAST root) != 0) {
        snprintf(msg, msgsz, "root element is not <%s>", root);
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

xmlDocPtr xmlsafe_parse_fd(int fd, const char *root, int *err, char *msg, size_t msgsz)
{
    size_t cap = XMLSAFE_MAX_BYTES + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        *err = -ENOMEM;
        return NULL;
    }
    ssize_t n;
    while (len < cap && (n = read(fd, buf + len, cap - len)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *err = -errno;
            snprintf(msg, msgsz, "read: %s", strerror(errno));
            free(buf);
            return NULL;
        }
        len += (size_t)n;
    }
    xmlDocPtr doc = xmlsafe_parse_mem(buf, len, root, msg, msgsz);
    free(buf);
    *err = doc ? 0 : -EINVAL;
    return doc;
}

static int read_doc(xmlDocPtr doc, xmlsafe_reader read, void *out, char *msg, size_t msgsz)
{
    int r = read(doc, out, msg, msgsz);
    xmlFreeDoc(doc);
    return r;
}

int xmlsafe_read_fd(int fd, const char *root, xmlsafe_reader read, void *out, char *msg,
                    size_t msgsz)
{
    int err;
    xmlDocPtr doc = xmlsafe_parse_fd(fd, root, &err, msg, msgsz);
    return doc ? read_doc(doc, read, out, msg, msgsz) : err;
}

int xmlsafe_read_mem(const char *buf, size_t len, const char *root, xmlsafe_reader read, void *out,
                     char *msg, size_t msgsz)
{
    xmlDocPtr doc = xmlsafe_parse_mem(buf, len, root, msg, msgsz);
    return doc ? read_doc(doc, read, out, msg, msgsz) : -EINVAL;
}

xmlNodePtr xml_child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, BAD_CAST name) == 0)
            return c;
    return NULL;
}

char *xml_child_text(xmlNodePtr parent, const char *name)
{
    xmlNodePtr c = xml_child(parent, name);
    if (!c)
        return NULL;
    xmlChar *t = xmlNodeGetContent(c);
    char *s = t ? strdup((const char *)t) : NULL;
    xmlFree(t);
    return s;
}

char *xml_attr(xmlNodePtr node, const char *name)
{
    xmlChar *v = node ? xmlGetProp(node, BAD_CAST name) : NULL;
    char *s = v ? strdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}
