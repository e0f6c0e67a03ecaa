/* xmlschema: libvirt's own schemas (the RELAX NG files virt-xml-validate
 * reads), applied in process to trees xmlsafe parsed.
 *
 * virt-xml-validate FILE TYPE is `xmllint --relaxng SCHEMAS/TYPE.rng`:
 * a process per file, and the schema compiled each time (~50 ms). The
 * store's check validates every domain.xml and snapshot.xml, a thousand
 * in a large store, so a schema is compiled once per process here and
 * each document costs well under a millisecond. The schema files are
 * the system's (trusted), found where virt-xml-validate finds them
 * (VMSTOREFS_SCHEMAS overrides, for tests). A redefine through the
 * mount checks the new <domain> here too (xmlschema_check_domain). */
#ifndef VMSTOREFS_XMLSCHEMA_H
#define VMSTOREFS_XMLSCHEMA_H

#include <libxml/tree.h>
#include <stddef.h>

/* The default directory of libvirt's schemas. */
#define XMLSCHEMA_DIR "/usr/share/libvirt/schemas"

/* Does doc validate as TYPE ("domain", "domainsnapshot")? 0 yes; -EINVAL
 * with the first complaint in msg; -ENOENT (msg says so) when the schema
 * cannot be found or compiled: no verdict. Validations run one at a
 * time (a lock). */
int xmlschema_validate(xmlDocPtr doc, const char *type, char *msg, size_t msgsz);
/* The redefine's check: 0 when doc validates as a domain, or when no
 * schema is installed (then the check is skipped, said once in the log;
 * the store relies on its other checks); -EINVAL with "not valid by
 * libvirt's domain schema (first complaint)" in msg. */
int xmlschema_check_domain(xmlDocPtr doc, char *msg, size_t msgsz);
/* Frees the compiled schemas. */
void xmlschema_cleanup(void);

#endif
