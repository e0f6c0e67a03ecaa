/* macscan: the MACs in use in a whole store, read from every VM's files.
 * The parsing is meta/'s (macset.h); the walk over the store is here,
 * above the store layer, so meta/ stays pure XML. */
#ifndef VMSTOREFS_MACSCAN_H
#define VMSTOREFS_MACSCAN_H

#include "meta/macset.h"
#include "store/store.h"

/* Every interface MAC of every VM's domain.xml and of the <domain> in each
 * of its snapshot.xml (a revert brings that definition back), read through
 * store_open and xmlsafe. A VM whose files are missing or refused adds
 * nothing (it cannot be defined either). Returns 0, -ENOMEM, or the
 * -errno of listing the store itself; out is initialised here
 * (mac_set_free it). */
int macscan_collect(const struct store *s, struct mac_set *out);

#endif
