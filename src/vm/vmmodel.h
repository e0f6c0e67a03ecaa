/* vmmodel: a VM as the snapshot operations see it, and what they share:
 * the lock-and-recover prologue, the definition's snapshot-able disks
 * with their chains and image locks, loading and writing XML through the
 * journal, relative backing names. Internal to snaptake.c, snaprename.c
 * and snaprevert.c. */
#ifndef VMSTOREFS_VMMODEL_H
#define VMSTOREFS_VMMODEL_H

#include "qemu/chain.h"
#include "store/imagelock.h"
#include "journal/journal.h"
#include "util/log.h"
#include "util/names.h"
#include "vm/opctx.h"
#include "meta/xmledit.h"

#include <libxml/tree.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct vm_disk {
    char dev[DEV_MAX_LEN + 1];
    char active[PATH_MAX]; /* STORE/<vm>/disks/<dev>.qcow2 */
    struct chain chain; /* of the active image, links[0] = active */
    char parent[NAME_MAX_LEN + 1]; /* the snapshot it grows from, "" when none */
};

struct vm_model {
    const struct store *s;
    char vm[NAME_MAX_LEN + 1];
    char dir[PATH_MAX]; /* STORE/<vm> */
    xmlDocPtr dom; /* domain.xml; NULL when the VM has none */
    struct vm_disk *disks; /* the snapshot-able disks */
    size_t ndisks;
    int *locks; /* writer-mark locks held (vmlock.h) */
    size_t nlocks, caplocks;
    struct imagelock_set images; /* qemu's image locks held (imagelock.h) */
    struct vmlock lock;
    bool op_running; /* vmstate_op_begin was called */
};

/* Validates the names, takes the VM's lock and recovers its journal. */
int vm_begin(struct vm_model *m, const struct snap_ctx *c, const char *vm, char *msg,
             size_t msgsz);
/* Reads domain.xml and its snapshot-able disks (each must be the store's
 * active image of a valid dev, with an intact chain). required: a VM with
 * no domain.xml is -EINVAL; otherwise m->dom stays NULL. */
int vm_load_definition(struct vm_model *m, bool required, char *msg, size_t msgsz);
/* Would vm_load_definition accept doc as m's domain.xml? The same checks,
 * for a definition about to be written (a revert's): a definition every
 * later operation refuses must never be written. chain_known(dev, arg)
 * (may be NULL) says a disk's chain is checked by the caller (the one it
 * will have, not the active image's now). 0, or -EINVAL with the reason. */
int vm_check_definition(const struct vm_model *m, xmlDocPtr doc,
                        bool (*chain_known)(const char *dev, void *arg), void *arg, char *msg,
                        size_t msgsz);
/* -EBUSY unless image is free: not open for writing through the mount
 * (dev given) and not held by any qemu. Holds qemu off it until vm_end
 * (or, for a plan that copies data, until the journal's run ends). */
int vm_hold_image(struct vm_model *m, const char *image, const char *dev, char *msg,
                  size_t msgsz);
/* -EBUSY when a qemu has image open for writing; else keeps writers off
 * it (IMAGELOCK_READ, unless it is held already): an image a merge of
 * the plan will read, below the one it writes. */
int vm_hold_image_read(struct vm_model *m, const char *image, char *msg, size_t msgsz);
void vm_end(struct vm_model *m);
/* Lets go of the image locks (writer marks stay). */
void vm_drop_image_locks(struct vm_model *m);
/* journal_commit. A plan that copies data (journal_has_data_steps)
 * hands its image locks to the journal (journal.h, held): they stay
 * held, with no gap, through the merges and the steps after them, the
 * merges' qemu-img running with qemu's own locking off (qspec.h), and
 * every image a step touches besides is held from that step to the run's
 * end (lock_steps). Writers through any mount stay refused (writer marks
 * stay). When a step fails after the commit (out of space, say), the
 * locks are let go and the journal finished at once, under the VM's
 * lock, taking them again: after the commit the operation happens, or
 * the call fails loudly (-ENOSPC when it ran out of space, -EBUSY when a
 * qemu took an image, else -EIO). */
int vm_commit(struct vm_model *m, struct journal *j, char *msg, size_t msgsz);

/* One journaled operation named op on vm: vm_begin, journal_begin, plan
 * (which adds the steps and prepares the files), vm_commit (or
 * journal_abort when plan fails), vm_end; vmstate_changed on success. */
typedef int (*vm_plan_fn)(struct vm_model *m, struct journal *j, const void *arg, char *msg,
                          size_t msgsz);
int vm_run(const struct snap_ctx *c, const char *vm, const char *op, vm_plan_fn plan,
           const void *arg, char *msg, size_t msgsz);
/* Reads a snapshot's snapshot.xml as a tree. */
int vm_load_snapshot(struct vm_model *m, const char *snap, xmlDocPtr *out, char *msg,
                     size_t msgsz);
/* Writes doc as a new file `name` in the journal's temporary directory
 * (path returned in out), owned as perm says, and counts it prepared;
 * unsynced until the commit (journal_unsynced): no other process may
 * read it before. */
int vm_write_temp(struct journal *j, xmlDocPtr doc, const char *name,
                  const struct store_perm *perm, char *out, size_t outsz, char *msg, size_t msgsz);
/* The owner and mode of the XML the daemon writes for vm (its
 * domain.xml, snapshot.xml files): those of its domain.xml, else of the
 * definition an undefine kept, else the VM directory's without its x
 * bits. */
int vm_xml_perm(const struct store *s, const char *vm, struct store_perm *out);
/* vm_write_temp of XML for m's VM, owned as vm_xml_perm says. */
int vm_write_xml(const struct vm_model *m, struct journal *j, xmlDocPtr doc, const char *name,
                 char *out, size_t outsz, char *msg, size_t msgsz);
#define OVERLAY_PARALLEL 8

/* An empty qcow2 overlay to make in the journal's temporary directory:
 * tmp/<name>, backed by `backing` (a name relative to where it will
 * stand), sized as the image at sized_like. */
struct overlay_req {
    char name[DEV_MAX_LEN + 16];
    char backing[PATH_MAX];
    const char *sized_like;
    const char *perm_like; /* the file whose owner and mode it takes */
    char path[PATH_MAX]; /* out: where it was made */
    const struct store *s;
    int err;
    char msg[MSG_MAX];
};
/* An overlay for disk dev that will stand at disks/<dev>.qcow2 on
 * snapshots/<snap>/<dev>.qcow2, sized as sized_like, with the owner and
 * mode of perm_like. */
void vm_overlay_req(struct overlay_req *req, const char *snap, const char *dev,
                    const char *sized_like, const char *perm_like);
/* Overlays written on worker threads (at most OVERLAY_PARALLEL) while
 * the caller prepares the rest of its plan: their fsyncs wait on the
 * disk side by side with the caller's own. */
struct overlay_batch {
    struct overlay_req *reqs;
    size_t n;
    atomic_size_t next; /* the next request a worker takes */
    pthread_t t[OVERLAY_PARALLEL];
    size_t nthreads;
};
/* Sets each request's path in the journal's temporary directory and
 * starts writing them (qcow2create.h: each with its owner and mode, and
 * fsynced). reqs must stay until vm_overlays_finish, which must be
 * called once this returned 0, whatever happens in between. */
int vm_overlays_start(struct vm_model *m, struct journal *j, struct overlay_req *reqs, size_t n,
                      struct overlay_batch *b);
/* Waits for them all (writes those no thread could take), then counts
 * each prepared; the first failure, with its reason in msg. */
int vm_overlays_finish(struct overlay_batch *b, struct journal *j, char *msg, size_t msgsz);
/* vm_overlays_start, then vm_overlays_finish. */
int vm_create_overlays(struct vm_model *m, struct journal *j, struct overlay_req *reqs, size_t n,
                       char *msg, size_t msgsz);

/* The chain of an image as XML links, from links[from] on (paths and
 * formats point into c). */
struct xml_chain_link *vm_xml_chain(const struct chain *c, size_t from, size_t *n);

/* Relative path from directory from_dir to path to (both absolute and
 * normalised). */
int vm_relpath(const char *from_dir, const char *to, char *out, size_t outsz);


#endif
