/* macscan: the MACs in use in a whole store, read from every VM's files.
 * The parsing is meta/'s (macset.h); the walk over the store is here,
 * above the store layer, so meta/ stays pure XML. */
#ifndef VMSTOREFS_MACSCAN_H
#define VMSTOREFS_MACSCAN_H

#include "meta/macset.h"
#include "store/store.h"

/* Every interface MAC of every VM's domain.xml, of the <domain> in each
 * of its snapshot.xml (a revert brings that definition back), and of each
 * definition an operation has prepared but not yet moved into place
 * (STORE/.vmstorefs/tmp/<id>/<N>/domain.xml: a clone still copying), read
 * through store_open and xmlsafe. Under vmlock_macs, what a clone writes
 * there before it lets go is what the next scan sees. A VM whose files are missing or refused adds
 * nothing (it cannot be defined either). Returns 0, -ENOMEM, or the
 * -errno of listing the store itself; out is initialised here
 * (mac_set_free it). */
int macscan_collect(const struct store *s, struct mac_set *out);

#endif
