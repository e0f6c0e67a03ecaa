/* imagelock: refuse to touch an image a qemu has open, and keep a qemu
 * from opening it while we work.
 *
 * qemu guards every image it opens with fcntl OFD locks on bytes of the
 * image file itself (block/file-posix.c: byte 100+n for each permission
 * it holds, 200+n for each it refuses to share, n < 8). A write lock on
 * [100, 300) therefore succeeds only when no qemu (and no qemu-img or
 * qemu-io, through the mount or not: the mount forwards their locks to the
 * store file) holds the image, and while it is held any qemu that tries
 * to open the image fails to take its locks and gives up (imagelock_hold:
 * recovery's look for a killed daemon's qemu-img). An operation's own
 * locks (struct imagelock_set, below) are qemu's, as qemu-img would hold
 * them, so that they refuse exactly what its qemu-img would. */
#ifndef VMSTOREFS_IMAGELOCK_H
#define VMSTOREFS_IMAGELOCK_H

#include "store/store.h"

#include <sys/types.h>

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
 * opening it for writing (or resizing it) while the descriptor returned
 * is open (IMAGELOCK_READ's bytes). Several
 * such holders (two clones) share the image, and each lets readers in. */
#define IMAGELOCK_PERM_WRITE 1 /* BLK_PERM_WRITE's bit */
int imagelock_hold_for_reading(const struct store *s, const char *path);
void imagelock_drop(int fd);

/* The locks the daemon holds for an operation that copies data (a
 * merge), from its check until its last step: a qemu that opens an image
 * in between must fail, never win a race with the merge's own qemu-img.
 * That qemu-img runs with qemu's locking turned off for the images held
 * here (qspec.h, chain.locked): the daemon holds qemu's locks on its
 * behalf, on descriptors of its own (O_CLOEXEC, OFD locks: a forked
 * child's copies go at its exec, and the child is handed only its
 * chain's descriptors, which hold no lock), so they last from one step
 * to the next whatever runs in between.
 *
 * They are qemu's own locks, as qemu-img would hold them itself (read
 * locks on single bytes; taken, then the conflicting bytes looked at):
 *   IMAGELOCK_WRITE  the image the merge writes: holds consistent read,
 *                    write and resize (100 + n) and shares neither write
 *                    nor resize (200 + n). Every writer is refused
 *                    ("Failed to get "write" lock"), and so is every
 *                    reader that asks for a consistent image (qemu's
 *                    default: it refuses to share write); a reader with
 *                    force-share (-U) is let in, as it always was by
 *                    qemu-img's locks, and reads at its own risk.
 *   IMAGELOCK_READ   an image the merge only reads (its lower layers,
 *                    the one a pull empties, the dependent a commit
 *                    copies): shares neither write nor resize. Writers
 *                    are refused; readers (a backup) go on.
 * One descriptor per image (by inode: a path a step renamed still finds
 * its lock), its mode changed in place: WRITE to READ lets the held
 * permissions go (never fails), READ to WRITE adds them (-EBUSY when a
 * consistent reader is in, the READ lock kept), so the image is never
 * unheld. A mount forwards the locks of its readers and writers to the
 * store file: they meet these as any qemu does. */
#define IMAGELOCK_PERM_CONSISTENT_READ 0 /* BLK_PERM_CONSISTENT_READ's bit */
#define IMAGELOCK_PERM_RESIZE 3 /* BLK_PERM_RESIZE's bit */
enum imagelock_mode {
    IMAGELOCK_READ = 1,
    IMAGELOCK_WRITE = 2,
    /* Whatever is held already, else READ (a check: an image a merge
     * of the same plan writes stays WRITE) or WRITE (a step that renames
     * or edits an image: under a reader that is harmless, under a writer
     * not). */
    IMAGELOCK_HELD_OR_READ = 3,
    IMAGELOCK_HELD_OR_WRITE = 4,
};
struct imagelock_held {
    dev_t dev;
    ino_t ino;
    int fd;
    enum imagelock_mode mode;
};
struct imagelock_set {
    struct imagelock_held *v;
    size_t n, cap;
};
/* The image at path held as mode, retried for up to wait_ms while a
 * qemu has it (imagelock_hold_wait): 0, -EBUSY, or another -errno
 * (-ENOENT: no such image). */
int imagelock_set_take(struct imagelock_set *ls, const struct store *s, const char *path,
                       enum imagelock_mode mode, int wait_ms);
/* The same for the image open on fd (a pinned chain's descriptor: the
 * lock is taken on a new descriptor of the same inode, never on fd). */
int imagelock_set_take_fd(struct imagelock_set *ls, int fd, enum imagelock_mode mode,
                          int wait_ms);
/* Lets every lock go. */
void imagelock_set_release(struct imagelock_set *ls);

#endif
