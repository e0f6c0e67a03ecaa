/* journal: crash-atomic multi-step changes to the store.
 *
 * Every change that touches more than one file is an operation made of
 * two phases, recorded in STORE/.vmstorefs/journal/<id>.json:
 *
 *   prepare  new files (images, XML) are made under the operation's own
 *            directory .vmstorefs/tmp/<id>/, which the view never shows;
 *            nothing a user can see has changed. Rolled BACK on recovery:
 *            the temporary directory is removed.
 *   commit   the record is rewritten with "committed": true (fsynced).
 *            From here on the operation is rolled FORWARD: its steps are
 *            applied in order, each one idempotent, each followed by an
 *            fsync of the directories it changed.
 *
 * The record lists the steps before the commit, so recovery needs nothing
 * but the record: it re-applies every step (a step already done is a
 * no-op) and removes the record last. Step kinds are few and generic;
 * later operations (delete with merges, clones) add plans, and a kind
 * only when a plan needs it:
 *
 *   move     rename FROM to TO unless TO exists (RENAME_NOREPLACE): once
 *            done, FROM may be re-created by a later step without the
 *            replay moving it again
 *   replace  rename FROM over TO if FROM exists
 *   rebase   qemu-img rebase -u: set IMAGE's backing name and format
 *   mkdir    make a directory if it is missing
 *   pull     qemu-img rebase (safe): IMAGE copies what it reads through
 *            its backing file and then backs onto NAME instead (NAME ""
 *            makes it standalone). Done when IMAGE already names NAME.
 *   commit   qemu-img commit -d: IMAGE's data is written into its backing
 *            file INTO. Done when INTO is gone or IMAGE no longer backs
 *            onto it (a later step moved INTO into IMAGE's place).
 *
 * The two data steps take as long as the data they copy. They are logged
 * with a start and an end line and shown in .jobs (jobs.h) while they
 * run, and an operation that has them records its progress after every
 * step (journal_mark_steps): a replay after a crash resumes at the step
 * that was running, so a step needs to be idempotent only on its own,
 * not once the steps after it have run.
 *
 * Paths in records are relative to the store root and resolved beneath
 * it with no symlinks, so a planted record cannot reach outside.
 *
 * Crash testing: VMSTOREFS_CRASH_AT=<op>:<n> makes the process _exit(99)
 * right after the n-th durable point of an operation named <op> (record
 * written, each prepared file, commit, each step, record removed). */
#ifndef VMSTOREFS_JOURNAL_H
#define VMSTOREFS_JOURNAL_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>

/* A rename rewrites the XML of every snapshot below the renamed one: a
 * long history means many steps. */
#define JOURNAL_MAX_STEPS 65536

enum jstep_kind { JS_MOVE, JS_REPLACE, JS_REBASE, JS_MKDIR, JS_PULL, JS_COMMIT };

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
};

struct journal {
    const struct store *s;
    char id[64];
    char op[32];
    char vm[80];
    bool committed;
    bool mark_steps; /* record progress after every step */
    /* Each step that moves, replaces or rewrites an image holds qemu's
     * lock on it while it runs (-EBUSY, the record stays, when a qemu has
     * it): set in recovery, and by an operation once it lets go of its
     * own locks for a merge. */
    bool lock_steps;
    size_t done; /* steps applied, as last recorded */
    struct jstep *steps;
    size_t nsteps, capsteps;
    int point; /* durable points passed, for VMSTOREFS_CRASH_AT */
    char tmpdir[PATH_MAX]; /* absolute: STORE/.vmstorefs/tmp/<id> */
};

/* Starts an operation: a fresh id, the record written and fsynced, the
 * temporary directory made. */
int journal_begin(struct journal *j, const struct store *s, const char *op, const char *vm,
                  char *msg, size_t msgsz);

/* Plan steps (paths absolute, below the store root). Before commit only. */
int journal_move(struct journal *j, const char *from, const char *to);
int journal_replace(struct journal *j, const char *from, const char *to);
int journal_rebase(struct journal *j, const char *image, const char *backing, const char *fmt);
int journal_mkdir(struct journal *j, const char *path);
/* The data steps; note is "S/dev" (the snapshot and disk being merged).
 * Either one turns on journal_mark_steps. */
int journal_pull(struct journal *j, const char *image, const char *backing, const char *fmt,
                 const char *note);
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

/* The point of no return: fsyncs the temporary directory, writes the
 * record with its steps as committed, applies every step and removes the
 * record. An error after the commit leaves the record for recovery. */
int journal_commit(struct journal *j, char *msg, size_t msgsz);

/* Gives up before the commit: removes the temporary directory and the
 * record. */
void journal_abort(struct journal *j);
void journal_free(struct journal *j);

/* Finishes every unfinished operation in the journal (or, with vm, those
 * of that VM only): committed ones forward, others back. Also removes
 * temporary directories no record names. Returns the number of
 * operations recovered or -errno. */
int journal_recover(const struct store *s, const char *vm, char *msg, size_t msgsz);

/* How many records name vm (unreadable ones count too): a clone, which
 * holds its source's lock shared, recovers only when this is not 0. */
int journal_pending_for(const struct store *s, const char *vm);

/* How many records the journal holds (for -o ro, which cannot recover). */
int journal_pending(const struct store *s);

/* Counts a durable point of the current operation; exits when
 * VMSTOREFS_CRASH_AT names it. */
void journal_point(struct journal *j);

#endif
