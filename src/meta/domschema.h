/* domschema: is a <domain> valid by libvirt's own schema?
 *
 * `virt-xml-validate FILE domain` is `xmllint --relaxng
 * SCHEMAS/domain.rng FILE`; the same check runs here in-process with
 * libxml2's RelaxNG validator, so a redefine pays no fork and exec (the
 * schema is parsed once, ~40 ms, and kept; a validation is well under a
 * millisecond for a libvirt-sized document). The schemas are libvirt's
 * installed ones (DOMSCHEMA_DIR, or VMSTOREFS_SCHEMAS for tests); when
 * they are missing the check is skipped and says so once in the log
 * (the store then relies on the other checks, as before). */
#ifndef VMSTOREFS_DOMSCHEMA_H
#define VMSTOREFS_DOMSCHEMA_H

#include <libxml/tree.h>
#include <stddef.h>

#define DOMSCHEMA_DIR "/usr/share/libvirt/schemas"

/* 0 when doc validates (or no schema is installed); -EINVAL with the
 * first complaint of the validator in msg. */
int domschema_check(xmlDocPtr doc, char *msg, size_t msgsz);

#endif
