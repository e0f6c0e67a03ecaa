/* current: which snapshot a VM's active disks grow from, derived from the
 * store (never stored in it, so it cannot go stale there): the mount's
 * `current` link, a take's parent, a revert's starting point.
 *
 * It walks chains (qemu/chain.h), which is why it lives above the store
 * layer rather than in store.c: the store enumerates, the VM layer
 * interprets. */
#ifndef VMSTOREFS_CURRENT_H
#define VMSTOREFS_CURRENT_H

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>

/* The snapshot the active disks grow from (kept per VM while nothing
 * that may change it has changed: current.c says what is watched): each active image whose
 * backing file is ../snapshots/<S>/<dev>.qcow2 names S; when disks name
 * different snapshots (a partial snapshot), the newest one wins. A disk
 * whose backing chain leaves the store, loops or is otherwise refused by
 * chain_walk (chain.h) names no snapshot (logged once).
 * -ENOENT when no disk grows from a snapshot. */
int current_snapshot(const struct store *s, const char *vm, char *out, size_t outsz);

/* Parses "../snapshots/<S>/<dev>.qcow2" (the backing name an active image
 * carries); writes S to snap. False for any other shape. */
bool current_parse_backing(const char *backing, const char *dev, char *snap, size_t snapsz);

/* How many answers current_snapshot took from its cache (for tests). */
unsigned long current_cache_hits(void);

#endif
