/* xmlsafe: the only way vmstorefs turns bytes into an XML tree.
 *
 * Store XML is untrusted input (a user can write domain.xml, copy a VM in),
 * so parsing never touches the network, never loads or honours a DTD,
 * never expands entities, and refuses documents over XMLSAFE_MAX_BYTES.
 * libvirt's own XML never has a DOCTYPE, so one is refused outright. */
#ifndef VMSTOREFS_XMLSAFE_H
#define VMSTOREFS_XMLSAFE_H

#include <libxml/tree.h>
#include <stddef.h>

#define XMLSAFE_MAX_BYTES (1u << 20)

/* Returns the document whose root element is named `root`, or NULL with a
 * reason in msg. */
xmlDocPtr xmlsafe_parse_mem(const char *buf, size_t len, const char *root, char *msg, size_t msgsz);
/* Reads fd (at most XMLSAFE_MAX_BYTES; not closed here) then parses as
 * above; *err gets -errno for a read error, -EINVAL for bad XML. Files
 * are opened by the caller: in the store, through store_open_file. */
xmlDocPtr xmlsafe_parse_fd(int fd, const char *root, int *err, char *msg, size_t msgsz);

/* Parse, hand the tree to `read` (which fills `out`), free the tree.
 * Returns read's result, or the parse error (-EINVAL for a refused
 * document) with the reason in msg. */
typedef int (*xmlsafe_reader)(xmlDocPtr doc, void *out, char *msg, size_t msgsz);
int xmlsafe_read_fd(int fd, const char *root, xmlsafe_reader read, void *out, char *msg,
                    size_t msgsz);
int xmlsafe_read_mem(const char *buf, size_t len, const char *root, xmlsafe_reader read, void *out,
                     char *msg, size_t msgsz);

/* Small helpers over the tree: first child element with this name, and
 * its text content / attribute as a malloc'd string (NULL when absent). */
xmlNodePtr xml_child(xmlNodePtr parent, const char *name);
char *xml_child_text(xmlNodePtr parent, const char *name);
char *xml_attr(xmlNodePtr node, const char *name);

#endif
