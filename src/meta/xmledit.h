/* xmledit: the changes snapshots make to libvirt XML.
 *
 * What the store's XML means (checked against libvirt 9.0):
 *  - domain.xml: each snapshot-able disk's <source file> is its active
 *    image STORE/<vm>/disks/<dev>.qcow2, with the whole backing chain
 *    spelled out as nested <backingStore> elements, ended by an empty
 *    <backingStore/>.
 *  - snapshot.xml (<domainsnapshot>): the embedded <domain> is the
 *    definition as it was at the snapshot, its disk <source> the file that
 *    holds the state at the snapshot (snapshots/<S>/<dev>.qcow2) with the
 *    chain below it; <disks><disk><source> is the overlay that receives
 *    the changes made after the snapshot (disks/<dev>.qcow2 while S is
 *    current, the next snapshot's image once one is taken on top).
 * Trees come from xmlsafe; nothing here reads files. */
#ifndef VMSTOREFS_XMLEDIT_H
#define VMSTOREFS_XMLEDIT_H

#include <libxml/tree.h>
#include <stddef.h>
#include <stdint.h>

struct xml_chain_link {
    const char *path;
    const char *format;
};

/* The <disk> of <domain> whose <target dev> is dev, or NULL. */
xmlNodePtr xmledit_find_disk(xmlNodePtr domain, const char *dev);
/* Sets the disk's <source file> and replaces its <backingStore> chain by
 * `below` (nearest first); -ENOENT when there is no such disk. */
int xmledit_set_disk(xmlNodePtr domain, const char *dev, const char *source,
                     const struct xml_chain_link *below, size_t n);

/* A new <domainsnapshot> (state shutoff, memory snapshot='no', an empty
 * <disks>) holding a copy of domain. parent may be NULL. */
xmlDocPtr xmledit_new_snapshot(const char *name, const char *description, const char *parent,
                               int64_t creation_time, xmlNodePtr domain);
/* Adds <disk name=dev snapshot='external' type='file'> with the overlay
 * source, or snapshot='no' when source is NULL. */
int xmledit_snapshot_add_disk(xmlDocPtr snap, const char *dev, const char *source);
/* Sets <disks><disk name=dev><source file> (if that disk is external). */
int xmledit_snapshot_set_disk_source(xmlDocPtr snap, const char *dev, const char *source);
/* Every <disks><disk> whose <source file> is path loses its <source> (the
 * overlay it named is gone: a detached disk's active image); the disk
 * stays external, and a revert gives it a source again. Returns how
 * many. */
int xmledit_snapshot_forget_source(xmlDocPtr snap, const char *path);
xmlNodePtr xmledit_snapshot_domain(xmlDocPtr snap);

/* Sets the text of root's first child element `name`, creating it. */
int xmledit_set_child_text(xmlNodePtr root, const char *name, const char *text);
/* Replaces node's content (children included) by text, escaped. */
int xmledit_set_text(xmlNodePtr node, const char *text);
/* <parent><name>parent</name></parent>, or no <parent> when NULL. */
int xmledit_set_parent(xmlDocPtr snap, const char *parent);
/* Every <source file> and <backingStore><source file> under node that
 * starts with old_prefix + '/' gets new_prefix instead. Returns how many. */
int xmledit_rewrite_prefix(xmlNodePtr node, const char *old_prefix, const char *new_prefix);

/* Every attribute value and text under node (node's own included) that
 * is old_dir or names something below it (old_dir + '/') gets new_dir
 * instead: a VM's directory renamed, wherever its XML names it (disk
 * sources and chains, <nvram>, <kernel>, <initrd>, <loader>, a serial
 * log...). Returns how many, or -ENOMEM. */
int xmledit_rewrite_dir(xmlNodePtr node, const char *old_dir, const char *new_dir);

/* Every <source file> under node that is exactly old_path gets new_path.
 * Returns how many. */
int xmledit_rewrite_path(xmlNodePtr node, const char *old_path, const char *new_path);
/* Removes the <disk> whose <target dev> is dev; -ENOENT when none. */
int xmledit_remove_disk(xmlNodePtr domain, const char *dev);
/* <disks><disk name=dev snapshot='no'/>: the disk left the snapshot (a
 * partial snapshot, as oVirt has them). */
int xmledit_snapshot_disk_off(xmlDocPtr snap, const char *dev);
/* A new document whose root is a copy of node (e.g. a snapshot's
 * <domain> made into a domain.xml). */
xmlDocPtr xmledit_doc_from_node(xmlNodePtr node);
/* Serialises doc (malloc'd, NUL-terminated). */
int xmledit_dump(xmlDocPtr doc, char **out, size_t *len);

#endif
