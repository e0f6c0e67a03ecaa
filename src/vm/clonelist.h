/* clonelist: which VMs are clones of a VM, for the mount's <vm>/clones/.
 *
 * Derived, never stored twice: a VM is a clone of <vm> when the lineage
 * in its domain.xml (cloneid.h) names <vm> as its source. A scan stats
 * every VM's domain.xml; the lineage is parsed again only when the file
 * changed (a statcache keyed on inode, mtime, ctime and size). One scan
 * serves every listing for up to a second while nothing in the store's
 * directory or made by this daemon changed (clonelist.c says why), so a
 * walk over the whole mount does not cost VMs x VMs stats. FUSE-free. */
#ifndef VMSTOREFS_CLONELIST_H
#define VMSTOREFS_CLONELIST_H

#include "store/store.h"

#include <stdbool.h>

/* Calls fn(name, ctx) for each VM whose lineage names vm as source. */
int clonelist_each(const struct store *s, const char *vm, store_name_fn fn, void *ctx);
/* Is clone a VM whose lineage names vm as its source? */
bool clonelist_is_clone(const struct store *s, const char *vm, const char *clone);
/* How many scans of the store clonelist_each has made (for tests). */
unsigned long clonelist_scans(void);

#endif
