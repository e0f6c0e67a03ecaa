/* bases: the images a VM's chains reach outside its disks/ and
 * snapshots/ (a raw base at STORE/<vm>/base/vda.raw, say: SPEC §1 allows
 * one), which the mount serves where the store has them, so that a chain
 * opens through the mount as it opens from the store (its backing names
 * are relative). Only those files, and the directories on the way to
 * them, are served; nothing else of the VM's directory is. FUSE-free. */
#ifndef VMSTOREFS_BASES_H
#define VMSTOREFS_BASES_H

#include "store/store.h"

#include <stddef.h>
#include <sys/types.h>

enum base_kind {
    BASE_NONE, /* nothing the VM's chains reach */
    BASE_FILE, /* an image of a chain (its format in fmt) */
    BASE_DIR, /* a directory with such an image below it */
};

/* What path (absolute, in the store, below STORE/<vm>/) is to vm's
 * chains. Reads every chain of the VM (imagegraph.h, headers cached): a
 * VM with a chain that does not pass its checks serves no base. */
enum base_kind bases_lookup(const struct store *s, const char *vm, const char *path, char *fmt,
                            size_t fmtsz);

/* Calls fill(ctx, name, type) for each entry of directory dir (below
 * STORE/<vm>/) that is such an image or a directory on the way to one:
 * what the mount lists there. */
int bases_list(const struct store *s, const char *vm, const char *dir,
               int (*fill)(void *ctx, const char *name, mode_t type), void *ctx);

#endif
