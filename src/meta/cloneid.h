/* cloneid: the clone's identity (SPEC "Clone identity"), what virt-clone
 * and Multipass change when they copy a VM, applied to a parsed libvirt
 * <domain> tree (from xmlsafe). FUSE-free; it reads no image and copies
 * nothing: the clone operation copies what the result lists.
 *
 * cloneid_rewrite turns the source's definition (domain.xml, or the
 * <domain> of a snapshot.xml made into a document) into the clone's:
 *  - <name> = the clone's name; <uuid> new (libuuid); every smbios
 *    <sysinfo><system><entry name='uuid'> = that same uuid (libvirt
 *    refuses a mismatch); <genid>, if present, a new uuid of its own;
 *    <title> and the <domain id> attribute removed.
 *  - every <interface>: a new random MAC 52:54:00:xx:xx:xx (the QEMU
 *    prefix, locally administered), unique against p->in_use, against the
 *    source definition's own MACs and against the clone's other new ones;
 *    its <target dev> (the host tap name) removed.
 *  - each snapshot-able disk (dom_disk_is_snapshotable): <source file> =
 *    CLONE_DIR/disks/<dev>.qcow2 (a fresh <source>, so no index, slices or
 *    seclabels of the old image), <driver type='qcow2'>, and its
 *    <backingStore> chain replaced by an empty <backingStore/> (libvirt's
 *    "no backing file": the clone's disks are standalone). Other disks
 *    (read-only, shareable, CD-ROM, floppy, block) keep their source:
 *    shared, not copied, as virt-clone does.
 *  - <os><nvram>: CLONE_DIR/nvram/<name>_VARS.fd. The old file must be in
 *    the store (STORE/<vm>/..., no "." or ".." components): a definition
 *    naming one elsewhere (/var/lib/libvirt/qemu/nvram, /etc/...) would
 *    have the clone copy a file from outside the store into it, so the
 *    rewrite fails with -EINVAL and says so in msg; the clone operation
 *    refuses the clone with that EINVAL. The caller opens the old file
 *    through store_open (no symlinks).
 *  - each vnc/spice/rdp <graphics> with a fixed port or tlsPort:
 *    autoport='yes', port and tlsPort removed; a fixed websocket port
 *    becomes websocket='-1' (still on, port chosen at start).
 *  - lineage: <metadata><vmstorefs:clone xmlns:vmstorefs=CLONEID_NS
 *    source=VM [snapshot=S] time=SECONDS/> (metadata created if missing,
 *    other namespaces kept; an older element of this namespace - the
 *    source was itself a clone - is replaced).
 * Refused (-EINVAL, reason in msg): invalid names, a clone directory that
 * is not absolute, a domain with more than one <devices> or <os> (libvirt
 * would read disks from each; this module would rewrite only what it
 * checked), two disks with the same target dev, a snapshot-able disk
 * whose dev is not a valid device name (names.h), an nvram that is not a
 * plain file path. -EAGAIN when no unused MAC turned up in
 * CLONEID_MAC_TRIES draws for one interface (the store is nearly full of
 * 52:54:00 MACs, or the random source is broken). On failure the tree is
 * half rewritten: the caller frees it. */
#ifndef VMSTOREFS_CLONEID_H
#define VMSTOREFS_CLONEID_H

#include <libxml/tree.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/macset.h"
#include "util/names.h"

#define CLONEID_NS "https://vmstorefs.org/xmlns/clone/1"
#define CLONEID_NS_PREFIX "vmstorefs"
#define CLONEID_MAC_TRIES 1000

/* Fills buf with n random bytes. */
typedef void (*cloneid_random_fn)(uint8_t *buf, size_t n, void *ctx);

struct cloneid_params {
    const char *name; /* the clone, N */
    const char *store_root; /* STORE, absolute */
    const char *clone_dir; /* STORE/N: the final directory, named in the XML */
    const char *source_vm;
    const char *source_snapshot; /* NULL: a clone of the current state */
    int64_t time; /* creation, seconds since the epoch */
    const struct mac_set *in_use; /* may be NULL */
    /* NULL: getrandom(2). Tests inject a generator to force collisions. */
    cloneid_random_fn random;
    void *random_ctx;
};

struct cloneid_disk {
    char dev[DEV_MAX_LEN + 1];
    char *old_source; /* <source file> in the source definition (NULL if none) */
    char *new_source; /* CLONE_DIR/disks/<dev>.qcow2, the file the caller writes */
};

struct cloneid_result {
    char uuid[37]; /* the clone's new uuid */
    struct cloneid_disk *disks; /* the snapshot-able disks, document order */
    size_t ndisks;
    char *nvram_old, *nvram_new; /* both NULL when there is no nvram */
};

int cloneid_rewrite(xmlDocPtr dom, const struct cloneid_params *p, struct cloneid_result *out,
                    char *msg, size_t msgsz);
void cloneid_result_free(struct cloneid_result *r);

/* ---- lineage (clonelineage.c) ---- */

struct clone_lineage {
    char source[NAME_MAX_LEN + 1];
    char snapshot[NAME_MAX_LEN + 1]; /* "" for a clone of the current state */
    int64_t time;
};

/* Replaces any element of CLONEID_NS in <metadata> (creating it) by the
 * lineage element. snapshot may be NULL. 0 or -ENOMEM. */
int cloneid_set_lineage(xmlDocPtr dom, const char *source, const char *snapshot, int64_t time);
/* Reads the lineage: the first <clone> element of CLONEID_NS directly in
 * <metadata> (an element named clone in another namespace, or none, is
 * not lineage). -ENOENT when there is none; -EINVAL when it is there but
 * a name is missing, over-long or invalid (name_is_valid), or the time is
 * not a non-negative decimal integer. Attributes are read without a
 * namespace: a prefixed source= is not the source. */
int cloneid_read_lineage(xmlDocPtr dom, struct clone_lineage *out);
/* The source renamed: every lineage element directly in the <metadata>
 * of domain (a domain.xml's root, or the <domain> inside a
 * snapshot.xml) whose source is from names to instead, its snapshot and
 * time kept. Returns how many, or -ENOMEM. */
int cloneid_rename_source(xmlNodePtr domain, const char *from, const char *to);
/* Removes every element of CLONEID_NS from <metadata> (and <metadata> when
 * that leaves it empty): `rm <vm>/clones/N` forgets the lineage, not the
 * VM. Returns how many were removed. */
int cloneid_forget_lineage(xmlDocPtr dom);

#endif
