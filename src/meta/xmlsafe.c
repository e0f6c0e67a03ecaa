#include "config.h"

#include "meta/xmlsafe.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <stdbool.h>
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

/* Where the text `end` (a terminator such as "-->") ends in buf[from..len),
 * or len when it does not: the scan then stops, and libxml2 reports the
 * unterminated construct. */
static size_t skip_past(const char *buf, size_t len, size_t from, const char *end)
{
    size_t el = strlen(end);
    const char *p = from <= len ? memmem(buf + from, len - from, end, el) : NULL;
    return p ? (size_t)(p - buf) + el : len;
}

static bool starts(const char *buf, size_t len, size_t i, const char *what)
{
    size_t wl = strlen(what);
    return len - i >= wl && memcmp(buf + i, what, wl) == 0;
}

/* One start tag from buf[i] ('<' of it): counts its attributes (an '='
 * outside a quoted value) and finds its end, quoted values skipped as the
 * parser skips them (a '>' may appear inside one). */
static size_t scan_tag(const char *buf, size_t len, size_t i, unsigned *attrs, bool *empty)
{
    *attrs = 0;
    for (i++; i < len; i++) {
        char c = buf[i];
        if (c == '"' || c == '\'') {
            const char *q = memchr(buf + i + 1, c, len - i - 1);
            if (!q)
                return len;
            i = (size_t)(q - buf);
        } else if (c == '=') {
            ++*attrs;
        } else if (c == '>') {
            *empty = buf[i - 1] == '/';
            return i + 1;
        }
    }
    return len;
}

int xmlsafe_prescan(const char *buf, size_t len, char *msg, size_t msgsz)
{
    unsigned elements = 0, depth = 0;
    size_t i = 0;
    while (i < len) {
        const char *lt = memchr(buf + i, '<', len - i);
        if (!lt)
            break;
        i = (size_t)(lt - buf);
        if (starts(buf, len, i, "<!--")) {
            i = skip_past(buf, len, i + 4, "-->");
        } else if (starts(buf, len, i, "<![CDATA[")) {
            i = skip_past(buf, len, i + 9, "]]>");
        } else if (starts(buf, len, i, "<!DOCTYPE")) {
            snprintf(msg, msgsz, "XML with a DOCTYPE is refused");
            return -EINVAL;
        } else if (starts(buf, len, i, "<?")) {
            i = skip_past(buf, len, i + 2, "?>");
        } else if (starts(buf, len, i, "</") || starts(buf, len, i, "<!")) {
            if (buf[i + 1] == '/' && depth > 0)
                depth--;
            i = skip_past(buf, len, i + 2, ">");
        } else {
            unsigned attrs;
            bool empty = false;
            i = scan_tag(buf, len, i, &attrs, &empty);
            if (attrs > XMLSAFE_MAX_ATTRS) {
                snprintf(msg, msgsz, "an XML element with more than %d attributes is refused",
                         XMLSAFE_MAX_ATTRS);
                return -EINVAL;
            }
            if (++elements > XMLSAFE_MAX_ELEMENTS) {
                snprintf(msg, msgsz, "XML with more than %d elements is refused",
                         XMLSAFE_MAX_ELEMENTS);
                return -EINVAL;
            }
            if (!empty && ++depth > XMLSAFE_MAX_DEPTH) {
                snprintf(msg, msgsz, "XML nested deeper than %d elements is refused",
                         XMLSAFE_MAX_DEPTH);
                return -EINVAL;
            }
        }
    }
    return 0;
}

xmlDocPtr xmlsafe_parse_mem(const char *buf, size_t len, const char *root, char *msg, size_t msgsz)
{
    if (len > XMLSAFE_MAX_BYTES) {
        snprintf(msg, msgsz, "XML larger than %u bytes", XMLSAFE_MAX_BYTES);
        return NULL;
    }
    if (xmlsafe_prescan(buf, len, msg, msgsz) < 0)
        return NULL;
    xmlSetGenericErrorFunc(NULL, quiet);
    /* No XML_PARSE_NOENT (that would expand entities), no DTDLOAD/DTDATTR,
     * NONET so nothing is fetched. The bytes are read as UTF-8 whatever
     * the document declares (libvirt writes nothing else): the pre-scan
     * counted ASCII '<' and '=', and an EBCDIC or UTF-16 document would
     * hide its markup from it. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC;
    xmlDocPtr doc = xmlReadMemory(buf, (int)len, NULL, "UTF-8", opts);
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
        if (xml_is_elem(c, name))
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

bool xml_is_elem(xmlNodePtr n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

bool xml_attr_is(xmlNodePtr n, const char *attr, const char *value)
{
    char *v = xml_attr(n, attr);
    bool eq = v && strcmp(v, value) == 0;
    free(v);
    return eq;
}
