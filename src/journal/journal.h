/* journal: crash-atomic multi-step changes to the store.
 *
 * Every change that touches more than one file is an operation made of
 * two phases, recorded in STORE/.vmstorefs/journal/<id>.json:
 *
 *   prepare  new files (images, XML) are made under the operation's own
 *            directory .vmstorefs/tmp/<id>/, which the view never shows;
 *            nothing a user can see has changed. Rolled BACK on recovery:
 *            the temporary directory is removed. XML is left unsynced
 *            (journal_unsynced) and synced at the commit, side by side.
 *   commit   the record is rewritten with "committed": true, once what it
 *            names is synced (in one batch of parallel fsyncs with the
 *            record's own file). From here on the operation is rolled
 *            FORWARD: its steps are applied in order, each one
 *            idempotent, each durable before any later step that
 *            depends on it (below).
 *
 * The record lists the steps before the commit, so recovery needs nothing
 * but the record: it re-applies every step (a step already done is a
 * no-op), then removes the record (fsynced) and only then the temporary
 * directory: a crash between the two leaves a directory no record names,
 * which the next mount removes. Step kinds are few and generic;
 * later operations (delete with merges, clones) add plans, and a kind
 * only when a plan needs it.
 *
 * The replay contract. Recovery re-applies a committed record from its
 * last progress mark ("done"), so each step must recognise that it is
 * done, and a step that is not safe to replay once later steps have run
 * is followed by a mark when the plan records progress (apply.c,
 * needs_mark; plans with data steps always do):
 *
 *   kind     does                          done when                     replay after later
 *                                                                        steps?
 *   move     rename FROM to TO,            TO exists, or FROM is gone    no (a later step may
 *            RENAME_NOREPLACE              and TO exists                 move TO on, or re-create
 *                                                                        FROM): marked after
 *   replace  rename FROM over TO           FROM is gone                  yes: no plan re-creates
 *                                                                        a replace's source
 *   link     a second name TO for FROM's   TO exists (FROM's file, or    no (a later step may
 *            file (linkat; FROM keeps      FROM's was replaced since:    move TO on and replace
 *            its name)                     then TO holds what FROM was)  FROM): marked after
 *
 * A link is made after the commit only, so a record rolled back has
 * made none (journal_probe_link's own name is gone before the commit),
 * and a record rolled forward finishes the rename that follows it: the
 * file's second name lasts from the link to that rename. It is the
 * daemon's own: the st_nlink > 1 rule (a take of a hard-linked active
 * image is refused, a delete never writes into a linked image) is asked
 * only by operations, which recover their VM's records first (vm_begin),
 * and no step of a replay asks it.
 *   rebase   qemu-img rebase -u (header    IMAGE names NAME with FMT;    yes: it sets the same
 *            edited in place when only     in a group, also when IMAGE   name again
 *            the name changes)             is gone (a later step of the
 *                                          group moved it)
 *   mkdir    make a directory, with the    it exists                     yes
 *            owner and mode of its parent
 *   pull     qemu-img rebase (safe): IMAGE only by its mark; replayed,   no: marked after
 *            copies what it reads through  an IMAGE naming NAME while
 *            its backing FROM, then backs  FROM is still there is set
 *            onto NAME ("" = standalone)   back onto FROM and the copy
 *                                          made again; FROM gone = done
 *   commit   IMAGE's data written into     INTO is gone: its group's     yes, grouped with the
 *            INTO window by window         replace ran, which only       replace that moves INTO
 *            (qemu-img convert; commit -d  follows a commit that         onto IMAGE (a mark
 *            for an IMAGE larger than      succeeded; IMAGE backing      follows the group's
 *            INTO); then INTO gets         onto anything else is an      next marked step);
 *            IMAGE's owner and mode (it    error, never done. Replayed,  resumed at COPIED
 *            takes IMAGE's place)          windows below COPIED are not
 *                                          copied again (same STAMP)
 *
 * A data step is never taken for done from what a header says: qemu-img
 * rebase writes the new backing name into the header before it flushes
 * the metadata of the clusters it copied, so a qemu-img killed between
 * the two leaves a header naming NAME over data the image does not hold.
 * The record keeps what a pull starts from (FROM, its format) for that
 * replay; a record written before it did has none, and its pull is taken
 * for done when the header names NAME, as it always was. A data step
 * returns (and its mark is written) only once qemu-img exited 0 and the
 * image it wrote is fsynced. In recovery the image a data step wrote is
 * also cleared of the clusters an interrupted run leaked (qemu-img check
 * -r leaks): not on an operation's own first run, where nothing leaked.
 *
 * A commit resumes (vm/commitchunks.h): qemu-img commit cannot, and a
 * large one killed near its end would copy everything again. So IMAGE's
 * data goes into INTO window by window (256 MiB of the virtual disk;
 * VMSTOREFS_COMMIT_CHUNK_MIB sets another size, for the tests), each a
 * qemu-img convert that writes what IMAGE holds itself (its zeros too)
 * and leaves the rest of INTO alone. After each window INTO is fsynced
 * and the record rewritten with the step's progress
 * (journal_commit_progress: COPIED, IMAGE's data below that offset is in
 * INTO; STAMP, IMAGE's inode, size and mtime then), the sources of the
 * moves since the last mark synced first, as before any mark. A replay
 * starts at COPIED; a window whose mark was lost is copied again, which
 * writes the same data. An IMAGE whose stamp changed (a qemu wrote it
 * between the crash and the replay: the reason the commit is grouped
 * with its replace) is copied from zero. A record without COPIED (from
 * before) starts at zero, as it always did.
 *
 * Image locks. A run of the record (the operation's own, a retry, a
 * replay) holds qemu's locks on the images it touches (imagelock.h, the
 * set in journal.held) from before the first step that touches each one
 * until the run ends: a data step holds every image of its pinned chain
 * before its qemu-img starts (the image it writes refusing writers and
 * consistent readers, the others writers) and the steps after it find
 * them held, so no qemu opens an image between a data step and what
 * follows it. An operation's first run starts with the locks its check
 * took (vm_commit hands them over); a replay takes them again, and a
 * qemu met then leaves the record for later (-EBUSY) before anything is
 * written. qemu-img runs with qemu's own locking off for held images.
 *
 * The durable order (apply.c, struct pending). A step depends on an
 * earlier one when one of its paths (a, and b unless it is a backing
 * name) is one of the earlier step's, or a directory above or below one:
 * before it runs, the directories (and rebased images) of every earlier
 * step not yet synced are synced together, on threads of their own. A
 * step that depends on none of them runs at once: a power cut may keep
 * it and lose them, which the replay handles, since each step above
 * finds from its own paths alone whether it is done. So the images a
 * take links into snapshots/S share one sync of S, and the overlays
 * that take their places one of disks/. A link's FROM counts as one of
 * its paths: the rename that puts an overlay over the linked name waits
 * for the new name to be durable (else a power cut could keep the
 * rename, lose the link, and the image with it; fsync_rules.pl, rule
 * 6, treats a link as a rename from FROM). A step of a group, and a data
 * step (which reads a whole chain), waits for everything and syncs its
 * own target at once, as every step did before. Everything is synced
 * before each mark and before the record is removed (the sources of
 * moves too: until then a name a power cut brings back is the same file
 * seen twice, which the replay resolves). tests/integration/fsync_rules.pl
 * (rule 6) checks this order in traces of every operation.
 *
 * A group (jstep.group, journal_group_last) is replayed as a whole: no
 * mark inside it.
 *
 * The two data steps take as long as the data they copy. The journal does
 * not run them itself: the layer that knows merges installs the runner
 * (journal_set_data_runner; vm/merge.c, merge_install), which logs a
 * start and an end line and shows them in .jobs while they run. A record
 * with data steps met while no runner is installed stays in the journal
 * (-ENOSYS) for a front end that has one.
 *
 * The code: journal.c (begin, plan, prepare, abort), record.c (records
 * on disk), apply.c (the steps, the commit), progress.c (a data step's
 * progress mark), recover.c (recovery).
 *
 * Paths in records are relative to the store root and resolved beneath
 * it with no symlinks, so a planted record cannot reach outside.
 *
 * Crash testing: VMSTOREFS_CRASH_AT=<op>:<n> makes the process _exit(99)
 * right after the n-th point of an operation named <op> (record written,
 * each prepared file, commit, each step, record removed, temporary
 * directory removed). A prepared XML file and a step may not be synced
 * yet at their points (the durable order above): the exit keeps the
 * page cache; what a power cut would lose, fsync_rules.pl checks.
 * VMSTOREFS_STOP_AT=<op>:<n> stops the process (SIGSTOP) there instead,
 * and =<op> at every point of <op>, for a test to look at the store from
 * outside between two steps; a SIGCONT goes on. */
#ifndef VMSTOREFS_JOURNAL_H
#define VMSTOREFS_JOURNAL_H

#include "store/imagelock.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A rename rewrites the XML of every snapshot below the renamed one: a
 * long history means many steps. */
#define JOURNAL_MAX_STEPS 65536

#define JSTEP_STAMP_MAX 64

enum jstep_kind { JS_MOVE, JS_REPLACE, JS_REBASE, JS_MKDIR, JS_PULL, JS_COMMIT, JS_LINK };

struct jstep {
    enum jstep_kind kind;
    char *a; /* from / image / path */
    char *b; /* to / backing name (NULL when unused) */
    char *fmt; /* backing format for rebase and pull */
    char *note; /* data steps: "S/dev", for the log and .jobs */
    /* One of a group that is replayed as a whole: no progress mark after
     * it, and a rebase of an image that is gone is a step already done
     * (a later step of the group moved it). */
    bool group;
    /* A pull: the backing name and format `a` has before it (FROM in the
     * table above), what a replay starts the copy from. NULL in a record
     * written before they were kept. */
    char *from;
    char *from_fmt;
    /* A commit made in chunks (vm/commitchunks.c): IMAGE's data below
     * this offset of its virtual disk is in INTO and on disk, as of the
     * record's last write (journal_commit_progress); 0 when none is. */
    uint64_t copied;
    /* What IMAGE was when copied was counted (commitchunks.h, a stamp of
     * its inode and times): a replay meeting another IMAGE copies from 0.
     * "" with copied 0. */
    char stamp[JSTEP_STAMP_MAX];
};

struct journal {
    const struct store *s;
    char id[64];
    char op[32];
    char vm[80];
    bool committed;
    bool mark_steps; /* record progress after every step */
    /* Each step that moves, replaces or rewrites an image, and each data
     * step for every image of its chain, holds qemu's lock on it (-EBUSY,
     * the record stays, when a qemu has it) from then until the run ends
     * (held): set in recovery, and by an operation that copies data,
     * which hands its own locks over at the commit. */
    bool lock_steps;
    /* The image locks held for this run (imagelock.h): the operation's,
     * taken at its check and handed over (vm_commit), and those steps
     * took. Let go when journal_apply_all returns (or journal_free). */
    struct imagelock_set held;
    /* Read back from disk by recovery: a run of it was interrupted, and
     * a data step repairs the leaks of the image it writes. */
    bool recovering;
    size_t done; /* steps applied, as last recorded */
    struct jstep *steps;
    size_t nsteps, capsteps;
    int point; /* durable points passed, for VMSTOREFS_CRASH_AT */
    /* The other VMs the operation changes besides vm (a VM rename: the
     * new name and the VMs whose XML names the old one), journal_also:
     * its paths may lie in their directories too, a recovery for any of
     * them finishes it, and a recovery takes all their locks. */
    char **also;
    size_t nalso;
    char tmpdir[PATH_MAX]; /* absolute: STORE/.vmstorefs/tmp/<id> */
    /* What the prepare phase made and left unsynced (journal_unsynced):
     * synced at the commit, all at once, before the record says so. */
    char **unsynced;
    size_t nunsynced;
};

/* Starts an operation: a fresh id, the record written and fsynced, the
 * temporary directory made. */
int journal_begin(struct journal *j, const struct store *s, const char *op, const char *vm,
                  char *msg, size_t msgsz);

/* The operation also changes vm's directory (journal.also). Before
 * commit only; 0, -EINVAL for a name that is no VM's, -ENOMEM. */
int journal_also(struct journal *j, const char *vm);
/* Does the record name vm (as its own VM or as one it also changes)? */
bool journal_names_vm(const struct journal *j, const char *vm);

/* Plan steps (paths absolute, below the store root). Before commit only. */
int journal_move(struct journal *j, const char *from, const char *to);
int journal_replace(struct journal *j, const char *from, const char *to);
int journal_rebase(struct journal *j, const char *image, const char *backing, const char *fmt);
int journal_mkdir(struct journal *j, const char *path);
/* A hard link: to, a new name for the file at from (the take's frozen
 * name for the active image: ops/snaptake.c). The plan must know that
 * the store has hard links: journal_probe_link. */
int journal_link(struct journal *j, const char *from, const char *to);
/* The data steps; note is "S/dev" (the snapshot and disk being merged).
 * Either one turns on journal_mark_steps. A pull names the backing image
 * has when the step runs (from, from_fmt) besides the one it gets. */
int journal_pull(struct journal *j, const char *image, const char *backing, const char *fmt,
                 const char *from, const char *from_fmt, const char *note);
int journal_commit_down(struct journal *j, const char *image, const char *into,
                        const char *note);
/* The step just added is grouped with the next one (jstep.group). */
void journal_group_last(struct journal *j);
/* Does the plan copy data (pull or commit steps)? */
bool journal_has_data_steps(const struct journal *j);
/* Records progress after every step from here on. */
void journal_mark_steps(struct journal *j);

/* A file of the prepare phase is complete: fsyncs it and counts a point. */
int journal_prepared(struct journal *j, const char *path, char *msg, size_t msgsz);
/* A file or directory of the prepare phase (in the temporary directory,
 * or the directory holding it) left unsynced: the commit syncs it, with
 * the others, side by side, before the record it writes. For what no
 * other process reads before the commit (XML the daemon writes). 0 or
 * -ENOMEM. */
int journal_unsynced(struct journal *j, const char *path);

/* The point of no return. First every directory a move or replace step
 * renames is probed (storeio_rename_probe): one that cannot be renamed
 * (an overlayfs lower directory) fails the commit with -EXDEV before
 * anything changed. Then it writes the record with its steps as
 * committed, syncing side by side, before the record takes its name,
 * the record's file, the temporary directory and what the prepare phase
 * left unsynced (journal_unsynced); applies every step, removes the
 * record, then the temporary directory. An error after the commit leaves
 * the record for recovery. */
int journal_commit(struct journal *j, char *msg, size_t msgsz);

/* Can path (a directory) be renamed on the store's file system? The
 * probe journal_commit makes (storeio_rename_probe, with a scratch
 * directory in the operation's temporary directory): 0, or -EXDEV for
 * a directory of an overlayfs lower layer. A plan may do without such a
 * rename (vm/delplan.c leaves an emptied hidden directory in place). */
int journal_probe_rename(const struct journal *j, const char *path);

/* Can the file at path (below the store root) get a second name by a
 * step of this operation? The probe links it into the operation's
 * temporary directory and unlinks it again (nothing else changes): 0; 1
 * when the store's file system has no hard links (EPERM, EOPNOTSUPP,
 * ENOSYS; EMLINK: no more for this file), for a plan to do without; else
 * -errno (-EXDEV: the temporary directory and path lie on two file
 * systems). */
int journal_probe_link(const struct journal *j, const char *path);

/* Gives up before the commit: removes the temporary directory and the
 * record. */
void journal_abort(struct journal *j);
void journal_free(struct journal *j);

/* Finishes every unfinished operation in the journal (or, with vm, those
 * of that VM only): committed ones forward, others back. Without vm (a
 * mount, vmstorefs-ctl recover) it also waits up to 10 s for the image
 * locks a killed daemon's qemu-img still holds while it exits, and
 * removes temporary directories no record names and records a crash left
 * half written. Returns the number of operations recovered or -errno
 * (-ENOSPC or -EBUSY when every one that could not be finished ran out
 * of space, or met an image a qemu holds; else -EIO). */
int journal_recover(const struct store *s, const char *vm, char *msg, size_t msgsz);

/* How many records name vm (journal_names_vm; unreadable ones count
 * too): a clone, which holds its source's lock shared, recovers only
 * when this is not 0. */
int journal_pending_for(const struct store *s, const char *vm);

/* How many records the journal holds (for -o ro, which cannot recover). */
int journal_pending(const struct store *s);

/* What the journal holds, as the store's check reports it (ops/check.h):
 * each record (path, id, op, vm, committed, or unreadable with why), and
 * each temporary directory no record names (stray_tmp: what a crash
 * between a record's removal and its directory's leaves). Read only. */
struct journal_entry {
    const char *path;
    const char *id;
    const char *op; /* "" when unreadable or a stray directory */
    const char *vm;
    bool committed;
    bool unreadable;
    bool stray_tmp;
    const char *why; /* unreadable: the reason */
};
int journal_each(const struct store *s, void (*fn)(const struct journal_entry *e, void *arg),
                 void *arg);

/* Counts a durable point of the current operation; exits when
 * VMSTOREFS_CRASH_AT names it. */
void journal_point(struct journal *j);

/* Runs one data step (JS_PULL or JS_COMMIT) of j to completion: 0 when
 * it is done (or was already), else -errno with msg saying why. */
typedef int (*journal_data_fn)(struct journal *j, const struct jstep *st, char *msg,
                               size_t msgsz);
/* How long a step waits for an image's lock before it leaves the
 * operation for later (-EBUSY): a lock held only by a helper this
 * daemon forked for another operation goes within milliseconds
 * (imagelock_hold_wait); a qemu's stays. */
#define JOURNAL_STEP_LOCK_WAIT_MS 2000
/* Installs the data-step runner for the whole process (vm/merge.c). */
void journal_set_data_runner(journal_data_fn fn);
/* Recovery leaves a committed record with data steps alone when
 * defer(vm) says so (the mount's background worker will finish it:
 * vm/bgmerge.h): a mount's recovery goes on with the others, so a long
 * merge never holds up the mount; an operation's own recovery of that VM
 * answers -EBUSY. NULL (the default): every record is finished at once. */
void journal_set_defer_data(bool (*defer)(const char *vm));

/* A commit step's progress (jstep.copied, jstep.stamp) recorded: the
 * record is rewritten (and fsynced, as at every mark) with st's copied
 * and stamp set to these. st is one of j's steps. The runner calls it
 * once what it copied is on disk. */
int journal_commit_progress(const struct journal *j, const struct jstep *st, uint64_t copied,
                            const char *stamp, char *msg, size_t msgsz);

/* What a rebase step does, for a runner that must set a backing name
 * back: IMAGE's header names NAME with FMT (in place when only the name
 * changes). With j->lock_steps, IMAGE is held (j->held) from then on.
 * 0 when it does (or did already), else -errno with msg. */
int journal_set_backing(struct journal *j, const char *image, const char *name, const char *fmt,
                        char *msg, size_t msgsz);
/* The same on the image open (read-write) on fd, with no lock taken: a
 * data step's pinned image (vm/merge.c). image is for messages; locked:
 * the caller holds qemu's locks on it (a qemu-img run for the edit is
 * told not to take them). */
int journal_set_backing_fd(const struct store *s, int fd, const char *image, const char *name,
                           const char *fmt, bool locked, char *msg, size_t msgsz);

#endif
