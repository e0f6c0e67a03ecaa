/* vmlock: the locks that serialize changes, across threads and daemons.
 *
 * Two daemons may mount one store (two hosts sharing it over NFS or
 * CephFS), so the locks live in the store: fcntl OFD locks on
 * STORE/.vmstorefs/locks/<vm> for one VM, and on locks/.store for the set
 * of VMs. OFD locks belong to the open file description, so two threads
 * of one daemon exclude each other as two daemons do, and a daemon that
 * dies releases its locks with its descriptors. NFSv4 and CephFS carry
 * fcntl locks between hosts.
 *
 * A change to one VM holds locks/.store shared and locks/<vm> exclusive
 * (a VM being created, a clone, is locked by its new name); a clone holds
 * its source's lock shared (vmlock_acquire_mode). locks/.store exclusive
 * (vmlock_acquire with no VM) therefore means that no operation runs
 * anywhere: the journal's recovery takes it for what belongs to no VM.
 * Clones draw their MACs under locks/.macs (vmlock_macs). Readers of the
 * view take no lock at all. */
#ifndef VMSTOREFS_VMLOCK_H
#define VMSTOREFS_VMLOCK_H

#include "store/store.h"

#include <stdbool.h>

struct vmlock {
    int store_fd;
    int vm_fd;
};

/* Asked between attempts while waiting; true gives up with -EINTR (a
 * FUSE interrupt, the daemon stopping). NULL waits until granted. */
typedef bool (*vmlock_cancelled_fn)(void *arg);

/* The locks of one VM (vm) or of the whole store (vm NULL), waiting at
 * most wait_ms for them (0: one try), then -EBUSY.
 *
 * Why the wait is bounded: the request that waits (mkdir, rename,
 * symlink through the mount) holds the kernel's lock on the directory it
 * changes until it is answered, and every lookup of a name not cached in
 * that directory waits with it. Operations are short (tens of ms), so a
 * short wait lets them queue; behind anything longer, EBUSY says so. */
#define VMLOCK_OP_WAIT_MS 2000
int vmlock_acquire(const struct store *s, const char *vm, unsigned wait_ms,
                   vmlock_cancelled_fn cancelled, void *arg, struct vmlock *out, char *msg,
                   size_t msgsz);
/* The same with the VM's lock taken in a mode: chain-changing operations
 * take it exclusive; a clone, which only reads the VM's images and must
 * not keep a second clone of the same VM waiting, shared. The store lock
 * and the VM's lock wait for their own times; a busy VM lock is -EAGAIN
 * (a busy store lock -EBUSY), so a caller can tell them apart. */
enum vmlock_mode { VMLOCK_EXCLUSIVE, VMLOCK_SHARED };
int vmlock_acquire_mode(const struct store *s, const char *vm, enum vmlock_mode mode,
                        unsigned store_wait_ms, unsigned vm_wait_ms,
                        vmlock_cancelled_fn cancelled, void *arg, struct vmlock *out, char *msg,
                        size_t msgsz);
void vmlock_release(struct vmlock *l);
/* How many times this process has released a lock: every change this
 * daemon makes to the store ends with one, so a value derived from the
 * store with the count unchanged since has seen all of this daemon's
 * changes (what others change is for the caller's own key to catch). */
unsigned long vmlock_generation(void);

/* MACs unique in the store: a clone scans the MACs in use, draws its new
 * ones and writes them into the store (its definition, prepared in the
 * journal's temporary directory, where the next scan sees it) under
 * locks/.macs exclusive, so that two clones, of one daemon or of two,
 * never draw the same. Not locks/.store: every operation, that clone
 * too, holds it shared while it runs, so it is never free to take
 * exclusive. Waits at most wait_ms; returns the descriptor holding the
 * lock (close it to let go), -EBUSY or -EINTR. */
int vmlock_macs(const struct store *s, unsigned wait_ms, vmlock_cancelled_fn cancelled,
                void *arg, char *msg, size_t msgsz);

/* A handle open for writing through one daemon must also stop an
 * operation of another daemon on the same store, which cannot see this
 * daemon's handles. Both sides lock STORE/.vmstorefs/locks/<vm>@<dev>
 * ('@' is in no VM name): the writer shared, for as long as its handle
 * is open; the operation exclusive, for as long as it runs. A file of its
 * own, not bytes of the image: locks through the mount on the image
 * itself (a whole-file lockf) must not meet these. Each returns the
 * descriptor that holds the lock, or -EBUSY while the other side holds
 * it. */
int vmlock_writer_mark(const struct store *s, const char *vm, const char *dev);
int vmlock_writers_exclude(const struct store *s, const char *vm, const char *dev);

#endif
