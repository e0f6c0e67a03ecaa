/* domxml: what vmstorefs reads from a libvirt <domain> definition.
 *
 * Parsing goes through xmlsafe (no network, no entities, size limit). This
 * module reads the definition; it never writes domain.xml (redefinition
 * and the clone identity rewrite build on it). */
#ifndef VMSTOREFS_DOMXML_H
#define VMSTOREFS_DOMXML_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

struct dom_disk {
    char device[16]; /* disk, cdrom, floppy, lun */
    char type[16]; /* file, block, network, volume */
    char dev[33]; /* <target dev>, "" when absent */
    char driver_type[16]; /* <driver type>: qcow2, raw ... "" when absent */
    char *source; /* <source file> (or dev), NULL when absent */
    bool readonly;
    bool shareable;
};

struct dom_info {
    char *name;
    char *uuid;
    struct dom_disk *disks;
    size_t ndisks;
};

/* -ENOENT when the file is missing, -EINVAL (reason in msg) when it is not
 * a usable <domain>: malformed, no <name>, a disk without <target dev>. */
int domxml_parse_fd(int fd, struct dom_info *out, char *msg, size_t msgsz);
int domxml_parse_mem(const char *buf, size_t len, struct dom_info *out, char *msg, size_t msgsz);
/* The same from a tree already parsed (by xmlsafe), for a caller that
 * also edits it. */
int domxml_read_doc(xmlDocPtr doc, struct dom_info *out, char *msg, size_t msgsz);
void domxml_free(struct dom_info *info);

/* Disks that take part in snapshots: writable, unshared, file-backed
 * disks (libvirt and virt-clone leave read-only/shareable/CD-ROM alone). */
bool dom_disk_is_snapshotable(const struct dom_disk *d);

#endif
