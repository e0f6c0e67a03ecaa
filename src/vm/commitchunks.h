/* commitchunks: a commit-direction merge (JS_COMMIT: IMAGE's data into
 * INTO, its backing) made window by window, so that a replay after a
 * crash starts where the copy stopped instead of from zero.
 *
 * qemu-img commit cannot be resumed: killed, it starts again from the
 * first cluster. So the commit is made as qemu-img convert runs over
 * windows of the virtual disk instead (qimg_argv_convert_window): the
 * source a raw window over IMAGE (read through its chain, -U: the
 * caller's locks keep writers off), the target the same window over INTO
 * with INTO's own backing chain, so that a write into part of a cluster
 * copies the rest from below as qemu does. convert -B writes what IMAGE
 * holds itself (data, and zeros it has allocated: INTO must read zeros
 * there too) and leaves INTO alone where IMAGE holds nothing. A window
 * copied twice is copied the same (IMAGE is not written meanwhile), so a
 * window whose mark was lost is simply copied again.
 *
 * Which windows hold anything comes first, from `qemu-img map` of IMAGE
 * alone: a window IMAGE holds nothing of is skipped with no qemu-img at
 * all (a 1 TiB sparse disk is not 4,096 runs). After each window the
 * daemon fsyncs INTO, then records in the journal (jstep.copied) that
 * IMAGE's data below the window's end is in INTO: a replay starts at
 * that offset. The record also keeps a stamp of IMAGE (inode, size,
 * mtime): an IMAGE written between the crash and the replay (a VM run
 * on it) is copied from zero again, since its windows already copied may
 * have changed.
 *
 * Windows are COMMIT_CHUNK_MIB_DEFAULT MiB (256); VMSTOREFS_COMMIT_CHUNK_MIB
 * sets another size (the tests use 1 MiB windows to have several in a
 * small disk). An IMAGE larger than INTO (a disk grown since the
 * snapshot) is left to qemu-img commit, which grows INTO first: it is
 * not resumable.
 *
 * The window arithmetic (cc_plan_*) is pure, for the unit tests. */
#ifndef VMSTOREFS_COMMITCHUNKS_H
#define VMSTOREFS_COMMITCHUNKS_H

#include "journal/journal.h"
#include "qemu/chain.h"
#include "util/jobs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define COMMIT_CHUNK_MIB_DEFAULT 256

/* What IMAGE holds, window by window. */
struct cc_plan {
    uint64_t size; /* IMAGE's virtual size */
    uint64_t chunk; /* a window's length */
    uint64_t *alloc; /* bytes IMAGE holds in each window */
    size_t n;
    uint64_t total; /* bytes IMAGE holds */
};

/* An empty plan of windows of chunk bytes (> 0) over size: 0, -ENOMEM,
 * or -EFBIG past 2^24 windows. */
int cc_plan_init(struct cc_plan *p, uint64_t size, uint64_t chunk);
/* IMAGE holds [start, start + len) (clipped to the size). */
void cc_plan_add(struct cc_plan *p, uint64_t start, uint64_t len);
/* The next window to copy at or after from: [*off, *off + *len), the
 * rest of from's window or a later one, holding something; false when
 * nothing is left. */
bool cc_plan_next(const struct cc_plan *p, uint64_t from, uint64_t *off, uint64_t *len);
/* Bytes IMAGE holds in the windows that end at or below upto (progress). */
uint64_t cc_plan_below(const struct cc_plan *p, uint64_t upto);
void cc_plan_free(struct cc_plan *p);

/* The window size: VMSTOREFS_COMMIT_CHUNK_MIB (a whole number of MiB,
 * 1..65536) or the default. */
uint64_t cc_chunk_size(void);
/* IMAGE's stamp as the record keeps it (jstep.stamp): "ino:size:sec.nsec". */
void cc_stamp(const struct stat *st, char *out, size_t outsz);
/* Where a commit resumes: the record's offset when its stamp is now's,
 * else 0 (then *changed when the record had progress). */
uint64_t cc_resume_at(const struct jstep *st, const char *now, bool *changed);

/* A commit in progress: prepared (cc_prepare), then copied (cc_copy). */
struct cc_run {
    const struct journal *j;
    const struct jstep *st;
    const struct chain *c; /* pinned: links[0] IMAGE, links[1] INTO */
    struct cc_plan plan;
    char stamp[JSTEP_STAMP_MAX];
    uint64_t from; /* where this run starts */
};

/* Maps IMAGE (c pinned, c->links[1] INTO) and decides where the copy
 * starts: 0, 1 when the commit cannot be made in windows (IMAGE larger
 * than INTO: qemu-img commit's), or -errno with msg. cc_free it after a
 * 0. */
int cc_prepare(struct cc_run *cr, const struct journal *j, const struct jstep *st,
               const struct chain *c, char *msg, size_t msgsz);
/* Copies the windows left, each followed by an fsync of INTO and the
 * record's progress; progress shown on job (may be NULL). Stops
 * (-EINTR) when the mount stops (bgmerge_stopping). */
int cc_copy(struct cc_run *cr, struct job *job, char *msg, size_t msgsz);
void cc_free(struct cc_run *cr);

#endif
