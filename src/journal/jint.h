/* jint: what the journal's files share (not for use outside journal/). */
#ifndef VMSTOREFS_JINT_H
#define VMSTOREFS_JINT_H

#include "journal/journal.h"

#include <stdbool.h>
#include <stddef.h>

#define JS_LAST JS_LINK

/* The name of each step kind in a record. */
extern const char *const journal_kind_names[];

/* Is the step's b a backing name kept as given, not a store path? */
bool jstep_b_is_name(enum jstep_kind k);
/* STORE/.vmstorefs/<sub>[/<name><ext>] */
int journal_meta_path(const struct store *s, const char *sub, const char *name, const char *ext,
                      char *out, size_t outsz);

/* journal.c: appends a step (before the commit only). */
int journal_add_step(struct journal *j, enum jstep_kind kind, const char *a, const char *b,
                     const char *fmt, const char *note);
/* Sets a pull's from and from_fmt (copies): 0 or -ENOMEM. */
int journal_step_from(struct jstep *st, const char *from, const char *from_fmt);

/* record.c */
int journal_write_record(const struct journal *j, char *msg, size_t msgsz);
/* The same, the record's file synced side by side with paths (files and
 * directories), all before the record takes its name. */
int journal_write_record_syncing(const struct journal *j, const char *const *paths, size_t n,
                                 char *msg, size_t msgsz);
/* The record, then the temporary directory (in that order: record.c). */
int journal_remove_record(const struct store *s, const char *id);
int journal_unlink_record(const struct store *s, const char *id);
int journal_remove_tmp(const struct store *s, const char *id);
/* Reads and checks a record found on disk; j is filled (journal_free it
 * whatever is returned). */
int journal_load_record(const struct store *s, const char *path, struct journal *j, char *msg,
                        size_t msgsz);

/* apply.c: applies the steps from j->done on, then removes the record.
 * count_points: an operation's own run (crash points are counted). */
int journal_apply_all(struct journal *j, bool count_points, char *msg, size_t msgsz);

#endif
