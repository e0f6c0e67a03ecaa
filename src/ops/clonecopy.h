/* clonecopy: the data half of a clone, FUSE-free. Each disk's whole
 * chain becomes one standalone qcow2 in the clone's temporary directory.
 *
 * How, measured on this machine (ext4, 1.8 GiB in a 3-image chain,
 * collapsed to 1.6 GiB; figures in the commit and the closing
 * note): `qemu-img convert -W` with the default cache was the fastest
 * convert (~1.9-2.2 s); -m 16 gained nothing, -t none/-T none was ~2x
 * slower, -C (copy offload) on ext4 ~3x slower. So -W, and -C only on a
 * file system with reflinks (clonecopy_reflinks), where a disk with no
 * backing chain is cloned whole with FICLONE (metadata only).
 *
 * Disks are copied side by side, one thread each (a qemu-img spends
 * much of its time waiting for I/O). The caller's thread stays in
 * clonecopy_run, the only one that asks `cancelled` (a FUSE interrupt is
 * only visible from the request's own thread) and reports progress to
 * .jobs every CLONECOPY_TICK_MS. */
#ifndef VMSTOREFS_CLONECOPY_H
#define VMSTOREFS_CLONECOPY_H

#include "util/jobs.h"
#include "util/log.h"
#include "util/names.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

#define CLONECOPY_TICK_MS 100

struct clonecopy_disk {
    char dev[DEV_MAX_LEN + 1];
    char src[PATH_MAX]; /* the top of the chain: active or frozen image (qcow2) */
    uint64_t weight; /* allocated bytes of the whole chain: the work it stands for */
    char dst[PATH_MAX]; /* the new image, which must not exist */
    /* out */
    int err;
    char msg[MSG_MAX];
    double pct; /* 0..100, written by its thread under the copy's lock */
};

/* Does the file system holding dir share extents (FICLONE works)? Tried
 * on two scratch files made and removed in dir. */
bool clonecopy_reflinks(const struct store *s, const char *dir);

/* The allocated bytes of the chain below image (st_blocks of each link). */
int clonecopy_weight(const struct store *s, const char *image, uint64_t *weight, char *msg,
                     size_t msgsz);

/* Copies every disk, reporting to job (may be NULL). Returns 0, the first
 * disk's error (msg from it) or -EINTR when cancelled(arg) said so: the
 * running qemu-imgs are killed within CLONECOPY_TICK_MS plus the spawn
 * poll. Files made stay for the caller to remove (journal_abort). */
int clonecopy_run(const struct store *s, struct clonecopy_disk *d, size_t n, bool reflinks,
                  struct job *job, bool (*cancelled)(void *), void *arg, char *msg, size_t msgsz);

#endif
