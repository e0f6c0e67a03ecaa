/* delplan: what a delete does to a VM's images, planned on its image
 * graph (imagegraph.h) and recorded in a journal (journal.h).
 *
 * The rules (SPEC §2, CloudStack's made safe), for an image F leaving:
 *   no dependents    F is removed (moved into the operation's temporary
 *                    directory, which goes with the record)
 *   one dependent C  F and C are merged in the cheaper direction: the one
 *                    that copies fewer allocated bytes.
 *                      pull:   C copies F's data (qemu-img rebase, safe)
 *                              and backs onto F's parent; F is removed.
 *                              Costs about F's allocation.
 *                      commit: C's data is written into F (qemu-img
 *                              commit -d), F gets C's relative backing
 *                              name and takes C's place. Costs about C's
 *                              allocation. F has no other dependent, so
 *                              nothing else reads what changes.
 *   several          F moves to a hidden directory; its dependents'
 *                    backing names follow.
 * A file with another name (st_nlink > 1: a hard link elsewhere reads,
 * maybe writes, the same data) is never written into: as F it counts as
 * one more dependent (hidden, not merged), as C it takes the commit
 * direction, as a dependent whose backing name would change it makes the
 * delete EBUSY.
 * Then the garbage pass: a hidden image with no dependent left is
 * removed, one with a single dependent is merged, until nothing changes.
 * Nothing a visible snapshot, an active image or a hidden ancestor still
 * reads is ever removed: removal needs zero dependents.
 *
 * Each image the plan touches is held (vm_hold_image: -EBUSY when a qemu
 * has it or it is open for writing through a mount), and the images
 * below a merge's are kept from writers (vm_hold_image_read): the locks
 * stay held through the merges (vm_commit, journal.h). Afterwards every XML
 * (domain.xml, the snapshots' <domain> chains, <disks> sources) is
 * written from the graph as it will be. Internal to snapdelete.c,
 * vmdelete.c and snaprevert.c. */
#ifndef VMSTOREFS_DELPLAN_H
#define VMSTOREFS_DELPLAN_H
#include "vm/imagegraph.h"
#include "vm/vmmodel.h"

#include <stdint.h>

struct path_move {
    char *old;
    char *now; /* "" when removed */
};

struct delplan {
    struct vm_model *m;
    struct journal *j;
    struct igraph g;
    char hidden_dir[PATH_MAX];
    bool hidden_made;
    unsigned nrm;
    struct path_move *moves;
    size_t nmoves;
    bool changed; /* any step planned */
    /* Merges are left to the background worker (bgmerge.h): an image
     * with one dependent is hidden like one with several, and the
     * garbage pass only removes what nothing reads. Set by delplan_init
     * while the worker runs; delplan_collect, the worker's pass, clears
     * it. */
    bool defer;
    uint64_t need_bytes; /* what the merges planned may write at most */
    char *msg;
    size_t msgsz;
};

/* Reads the VM's image graph (nothing is planned yet). */
int delplan_init(struct delplan *dp, struct vm_model *m, char *msg, size_t msgsz);
/* The journal the plan goes into (its hidden directory is named after
 * the operation), and what pins the images: other VMs' images backing
 * onto them. */
int delplan_attach(struct delplan *dp, struct journal *j);
void delplan_free(struct delplan *dp);
/* F leaves (its snapshot is deleted, or the disk leaves it): the rules
 * above by F's dependents. note is "S/dev" for the log. */
int delplan_release(struct delplan *dp, int f, const char *note);
/* Removes node i, which must have no dependents (an active image being
 * detached, a VM's image). */
int delplan_remove(struct delplan *dp, int i);
/* The garbage pass over hidden images (with dp->defer, removals only). */
int delplan_gc(struct delplan *dp);
/* What the XML says beyond the graph's chains. */
struct delxml {
    const char *deleted; /* a snapshot going away: its children get its parent */
    const char *partial_snap, *partial_dev; /* a disk leaving a snapshot: snapshot='no' */
    const char *detach_dev; /* a disk leaving domain.xml */
};
/* Writes domain.xml and the snapshots' XML from the graph (x may be
 * NULL). */
int delplan_write_xml(struct delplan *dp, const struct delxml *x);
/* The garbage pass with its merges, as operation "gc" under the lock the
 * caller holds: the background worker's work, or (no worker) the end of
 * an operation that may have left hidden images with fewer dependents. */
int delplan_collect(struct vm_model *m, char *msg, size_t msgsz);
/* After such an operation (a revert, a detach, a delete): the garbage
 * pass now, or queued for the worker when it runs. */
int delplan_settle(struct vm_model *m, char *msg, size_t msgsz);
/* The garbage pass on every VM that has hidden images, as a mount starts
 * (after the journal's recovery): a pass a crash undid, or one the
 * operation before it could not finish, is done now. Returns how many
 * VMs were looked at. */
int delplan_collect_store(const struct store *s);
#endif
