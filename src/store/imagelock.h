/* imagelock: refuse to touch an image a qemu has open, and keep a qemu
 * from opening it while we work.
 *
 * qemu guards every image it opens with fcntl OFD locks on bytes of the
 * image file itself (block/file-posix.c: byte 100+n for each permission
 * it holds, 200+n for each it refuses to share, n < 8). A write lock on
 * [100, 300) therefore succeeds only when no qemu (and no qemu-img or
 * qemu-io, through the mount or not: the mount forwards their locks to the
 * store file) holds the image, and while it is held any qemu that tries
 * to open the image fails to take its locks and gives up. */
#ifndef VMSTOREFS_IMAGELOCK_H
#define VMSTOREFS_IMAGELOCK_H

#include "store/store.h"

#define IMAGELOCK_START 100
#define IMAGELOCK_LEN 200

/* Returns a descriptor holding the lock, -EBUSY when a qemu holds the
 * image, or another -errno (-ENOENT: no such image). */
int imagelock_hold(const struct store *s, const char *path);
/* imagelock_hold, retried for up to wait_ms while the image is held. A
 * lock this process has just dropped can look held for a moment: a
 * helper it forks for another operation (a qemu-img) holds a copy of
 * every descriptor until it execs, O_CLOEXEC closing them only then, and
 * an OFD lock lives as long as any copy. So a conflict is believed only
 * once it lasts. */
int imagelock_hold_wait(const struct store *s, const char *path, int wait_ms);
/* For a reader that must see the image unchanged (a clone, copying it
 * with qemu-img -U, which takes qemu's read lock on byte 100): -EBUSY when
 * a qemu has the image open for writing; otherwise keeps any qemu from
 * opening it for writing while the descriptor returned is open. Several
 * such holders (two clones) share the image, and each lets readers in. */
#define IMAGELOCK_PERM_WRITE 1 /* BLK_PERM_WRITE's bit */
int imagelock_hold_for_reading(const struct store *s, const char *path);
void imagelock_drop(int fd);


#endif
