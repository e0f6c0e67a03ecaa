/* names: the naming rules of the store, in one place.
 *
 * VM and snapshot names: 1-64 bytes of [A-Za-z0-9._+-], not starting with
 * '.' or '-' (so no hidden files, no option look-alikes, no "." or "..").
 * Disk device names (vda, sdb, hdc, nvme0n1 ...): 1-32 bytes of [a-z0-9],
 * starting with a letter; an image file is "<dev>.qcow2". */
#ifndef VMSTOREFS_NAMES_H
#define VMSTOREFS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_MAX_LEN 64
#define DEV_MAX_LEN 32
#define IMAGE_SUFFIX ".qcow2"

bool name_is_valid(const char *name);
/* STORE/lost+found: the check's repair moves orphans there (never a
 * valid name, so never a VM or a snapshot). */
#define LOST_FOUND "lost+found"
bool dev_is_valid(const char *dev);
/* If file is "<dev>.qcow2" with a valid dev, copies dev into out (size
 * DEV_MAX_LEN + 1) and returns true. */
bool dev_from_image_name(const char *file, char *out, size_t outsz);

/* snapshots/.hidden-<hex>: where the images of deleted snapshots that
 * other images still read are kept (delplan.h). Never a valid name, so
 * never listed; reachable through the mount for the chains that lead
 * there. */
#define HIDDEN_DIR_PREFIX ".hidden-"
bool name_is_hidden_dir(const char *name);
#endif
