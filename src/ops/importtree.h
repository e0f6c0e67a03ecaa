/* importtree: a whole VM brought into the store from libvirt's files: a
 * <domain> definition, the <domainsnapshot> of each of its external
 * snapshots, and the images they name (wherever libvirt keeps them).
 * The core of `vmstorefs-ctl STORE import NEW DIR|--libvirt DOMAIN`
 * (ctl/lvirt.c gathers the XML from a running libvirt with virsh).
 *
 * The layout it builds (SPEC §1): libvirt's image frozen at snapshot S
 * (S's embedded <domain>'s disk source) becomes NEW/snapshots/S/<dev>.qcow2,
 * the domain's disk source NEW/disks/<dev>.qcow2; each backing name is
 * rewritten relative (../S/<dev>.qcow2, ../snapshots/S/<dev>.qcow2) by the
 * daemon's own header edit (qcow2edit.h); domain.xml and each
 * snapshot.xml name the store's paths, with the chains spelled out, as
 * the store's other operations write them.
 *
 * Every image is checked by the daemon's own header parser (qcow2hdr.h)
 * from the descriptor it is then copied from, before anything else sees
 * it (no qemu-img runs in an import at all): qcow2 as the definition
 * says (never probed; raw images are not imported), no external data
 * file, a backing name that is not json: or a protocol, with a recorded
 * format, resolving to the image of the same disk frozen at the nearest
 * ancestor snapshot (the active image: to one of that disk's frozen
 * images), so every chain stays inside what is imported, has no loop
 * and is no deeper than the snapshots (<= CHAIN_MAX_DEPTH). The copies
 * are then checked again as the store checks a definition written
 * through the mount (vm_check_definition on the new directory, each
 * frozen image's chain_walk) before the commit.
 *
 * Images are read under qemu's image lock (IMAGELOCK_READ): an image a
 * qemu has open for writing is refused (-EBUSY), and no qemu starts
 * writing one while it is copied. Copies are reflinks (FICLONE) where
 * the file systems allow, else a copy of the allocated extents.
 *
 * Everything is made in the journal's temporary directory and moved to
 * STORE/NEW by one committed step, as a clone is: a crash at any point
 * leaves either nothing (recovery removes the temporary directory) or
 * the whole VM.
 *
 * Refusals, each changing nothing: -EINVAL (a bad name, malformed XML,
 * a disk that is not a qcow2 file, an image that does not match its
 * definition, a snapshot tree with a missing parent or a loop), -EACCES
 * (the caller may not create an entry in the store's root; a backing
 * file outside the chain being imported, an external data file),
 * -EEXIST, -EBUSY (a qemu holds an image), -ENOENT (an image missing). */
#ifndef VMSTOREFS_IMPORTTREE_H
#define VMSTOREFS_IMPORTTREE_H

#include "ops/snapshot.h"

#include <stddef.h>

struct import_text {
    const char *xml;
    size_t len;
    const char *what; /* for messages: the file it came from */
};

struct import_source {
    struct import_text domain;
    const struct import_text *snaps;
    size_t nsnaps;
    /* Relative <source file> names resolve here (a directory of XML and
     * images); NULL: only absolute names are accepted. */
    const char *base_dir;
};

int vm_import_tree(const struct snap_ctx *c, const char *name, const struct import_source *src,
                   char *msg, size_t msgsz);

#endif
