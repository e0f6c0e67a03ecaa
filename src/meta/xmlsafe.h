/* xmlsafe: the only way vmstorefs turns bytes into an XML tree.
 *
 * Store XML is untrusted input (a user can write domain.xml, copy a VM in),
 * so parsing never touches the network, never loads or honours a DTD,
 * never expands entities, and refuses documents over XMLSAFE_MAX_BYTES.
 * libvirt's own XML never has a DOCTYPE, so one is refused outright. */
#ifndef VMSTOREFS_XMLSAFE_H
#define VMSTOREFS_XMLSAFE_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

#define XMLSAFE_MAX_BYTES (1u << 20)

/* Bounds checked by a linear pre-scan before libxml2 sees a document.
 * libxml2 2.9 checks each attribute of an element against all earlier ones,
 * so one element with 100,000 attributes (1 MiB) costs ~19 s of CPU; its
 * tree costs ~120 bytes a node, so 1 MiB of `<a/>` would be 30 MiB.
 * libvirt's own XML is far inside these: its widest elements (<cpu>,
 * <interface>'s <driver>, <disk>'s <source>) carry about a dozen
 * attributes; a domain with hundreds of disks and 4096 hot-pluggable
 * <vcpu/> entries has well under 10,000 elements; nesting is about ten
 * levels (deeper only through <backingStore>, which libvirt itself reads
 * with libxml2's default depth limit of 256, the limit kept here). */
#define XMLSAFE_MAX_ATTRS 256 /* on one element */
#define XMLSAFE_MAX_ELEMENTS 32768 /* in the document */
#define XMLSAFE_MAX_DEPTH 256 /* nesting of elements */

/* The pre-scan alone: 0, or -EINVAL with the bound exceeded in msg (also
 * for a DOCTYPE, refused before any of it is parsed). It counts what a
 * well-formed document holds; a malformed one is left to libxml2. */
int xmlsafe_prescan(const char *buf, size_t len, char *msg, size_t msgsz);

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
/* Is n an element called name? Has n attribute attr equal to value? */
bool xml_is_elem(xmlNodePtr n, const char *name);
bool xml_attr_is(xmlNodePtr n, const char *attr, const char *value);

#endif
