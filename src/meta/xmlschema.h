/* xmlschema: libvirt's own schemas (the RELAX NG files virt-xml-validate
 * reads), applied in process to trees xmlsafe parsed.
 *
 * virt-xml-validate FILE TYPE is `xmllint --relaxng SCHEMAS/TYPE.rng`:
 * a process per file, and the schema compiled each time (~50 ms). The
 * store's check validates every domain.xml and snapshot.xml, a thousand
 * in a large store, so a schema is compiled once per process here and
 * each document costs well under a millisecond. The schema files are
 * the system's (trusted), found where virt-xml-validate finds them
 * (VMSTOREFS_SCHEMAS overrides, for tests). */
#ifndef VMSTOREFS_XMLSCHEMA_H
#define VMSTOREFS_XMLSCHEMA_H

#include <libxml/tree.h>
#include <stddef.h>

/* The default directory of libvirt's schemas. */
#define XMLSCHEMA_DIR "/usr/share/libvirt/schemas"

/* Does doc validate as TYPE ("domain", "domainsnapshot")? 0 yes; -EINVAL
 * with the first complaint in msg; -ENOENT (msg says so) when the schema
 * cannot be found or compiled: no verdict. Not thread-safe: one caller
 * at a time (the check is one thread). */
int xmlschema_validate(xmlDocPtr doc, const char *type, char *msg, size_t msgsz);
/* Frees the compiled schemas. */
void xmlschema_cleanup(void);

#endif
