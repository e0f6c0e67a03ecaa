/* merge: the journal's data steps, pull (safe qemu-img rebase) and
 * commit (window by window, resumable: commitchunks.h; qemu-img commit
 * -d for an image larger than its backing), run with their log lines and
 * their line in .jobs. Plugged into the journal (journal_set_data_runner) by
 * merge_install, which every front end calls before it recovers or
 * commits anything; vm_recover does both.
 *
 * A step is done when qemu-img exited 0 and the image it wrote is
 * fsynced, never because a header says so (journal.h, the replay
 * contract): a replayed pull whose image already names the new backing
 * is set back onto the one it started from and copied again, and in
 * recovery the written image's leaked clusters are freed.
 *
 * Before its qemu-img starts, a step holds qemu's locks on every image of
 * its pinned chain in the journal's set (hold_chain; those the check took
 * are there already) until the run ends, and qemu-img, given the chain
 * with "locking": "off", takes none itself: no qemu can open an image
 * between the check and the merge, or between the merge and the steps
 * after it (journal.h, image locks). */
#include "config.h"

#include "vm/merge.h"

#include "vm/bgmerge.h"
#include "vm/commitchunks.h"
#include "qemu/chain.h"
#include "qemu/qcow2hdr.h"
#include "qemu/qimg.h"
#include "qemu/qspec.h"
#include "store/storeio.h"
#include "util/jobs.h"
#include "util/log.h"
#include "util/monotime.h"
#include "util/names.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes a data step moves at most: the allocation of the image it reads
 * (open on fd). */
static uint64_t allocated(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

struct merge_progress {
    struct job *job;
    uint64_t bytes;
};

static void merge_pct(double pct, void *arg)
{
    struct merge_progress *mp = arg;
    jobs_progress(mp->job, (uint64_t)((double)mp->bytes * pct / 100.0));
}

/* The snapshot and disk a data step merges, from its note "S/dev". */
struct merge_names {
    char snap[NAME_MAX_LEN + 1];
    char dev[DEV_MAX_LEN + 1];
};

static void merge_names(const struct jstep *st, struct merge_names *n)
{
    const char *slash = st->note ? strrchr(st->note, '/') : NULL;
    snprintf(n->snap, sizeof(n->snap), "?");
    snprintf(n->dev, sizeof(n->dev), "?");
    if (slash) {
        snprintf(n->snap, sizeof(n->snap), "%.*s", (int)(slash - st->note), st->note);
        snprintf(n->dev, sizeof(n->dev), "%s", slash + 1);
    }
}

/* What a merge runs between its log lines: one qemu-img (a pull; a
 * commit that cannot be made in windows), or a commit's windows
 * (commitchunks.h). */
struct merge_work {
    const struct qimg_argv *a;
    struct cc_run *cr;
};

/* Runs a merge's qemu-img with its log lines and its line in .jobs. The
 * vector's image is a spec of the pinned chain (qspec.h): what qemu-img
 * opens is what was checked here, whatever the VM's owner renames. */
static int run_merge(const struct journal *j, const struct jstep *st, const struct merge_work *w,
                     uint64_t bytes, char *msg, size_t msgsz)
{
    const char *dir = st->kind == JS_PULL ? "pull" : "commit";
    struct merge_names n;
    merge_names(st, &n);
    log_msg(LOG_INFO, "merge of %s disk %s (snapshot %s): direction=%s bytes=%llu started", j->vm,
            n.dev, n.snap, dir, (unsigned long long)bytes);
    struct merge_progress mp = { jobs_start("merge", j->vm, st->note, bytes), bytes };
    struct qimg_progress p = { .on_pct = merge_pct, .arg = &mp };
    int64_t t0 = now_ms();
    /* A mount stopping stops the background worker's merge: the record
     * stays and the next mount runs it again. */
    int r = w->cr ? cc_copy(w->cr, mp.job, msg, msgsz)
                  : qimg_run_watched(w->a, qimg_data_timeout(bytes),
                                     st->kind == JS_PULL ? "rebase" : "commit", &p,
                                     bgmerge_stopping, NULL, msg, msgsz);
    jobs_finish(mp.job);
    double secs = (double)(now_ms() - t0) / 1000.0;
    if (r == 0)
        log_msg(LOG_INFO,
                "merge of %s disk %s (snapshot %s): direction=%s bytes=%llu done in %.2f s "
                "(%.1f MiB/s)",
                j->vm, n.dev, n.snap, dir, (unsigned long long)bytes, secs,
                secs > 0 ? (double)bytes / 1048576.0 / secs : 0.0);
    else
        log_msg(LOG_ERR, "merge of %s disk %s (snapshot %s): direction=%s failed after %.2f s: %s",
                j->vm, n.dev, n.snap, dir, secs, msg);
    return r;
}

/* A run of the operation was interrupted (recovery): its qemu-img may
 * have been killed after it allocated clusters and before it referenced
 * them. They waste space only, but qemu-img check reports them, so the
 * layer just written (links[at] of the pinned chain) is cleared of them.
 * A failure here is logged, not the step's: the data is whole. */
static void repair_leaks(const struct journal *j, const struct jstep *st, const struct chain *c,
                         size_t at, uint64_t bytes)
{
    struct merge_names n;
    struct qimg_check chk;
    char why[MSG_MAX];
    char *spec;
    struct spawn_fds fds;
    const char *image = c->links[at].path;
    merge_names(st, &n);
    int r = qspec_chain(c, at, false, &spec, &fds);
    if (r == 0) {
        r = qimg_repair_leaks(j->s->qemu_img, spec, &fds, qimg_data_timeout(bytes), &chk, why,
                              sizeof(why));
        free(spec);
    } else {
        snprintf(why, sizeof(why), "%s", strerror(-r));
    }
    if (r < 0)
        log_msg(LOG_WARNING,
                "merge of %s disk %s (snapshot %s): replayed; leaked clusters of %s not "
                "repaired: %s",
                j->vm, n.dev, n.snap, image, why);
    else
        log_msg(chk.leaks_fixed ? LOG_NOTICE : LOG_INFO,
                "merge of %s disk %s (snapshot %s): replayed; %llu leaked cluster(s) of %s freed",
                j->vm, n.dev, n.snap, (unsigned long long)chk.leaks_fixed, image);
}

/* After qemu-img: the step is done (and the journal marks it) only once
 * what it wrote (links[at]) is on disk. qemu-img flushes as it closes;
 * the fsync here does not depend on that. */
static int finish(const struct journal *j, const struct jstep *st, const struct chain *c,
                  size_t at, uint64_t bytes, int r, char *msg, size_t msgsz)
{
    if (r < 0)
        return r;
    if (j->recovering)
        repair_leaks(j, st, c, at, bytes);
    if (fsync(c->fds[at]) < 0) {
        r = -errno;
        snprintf(msg, msgsz, "fsync %s: %s", c->links[at].path, strerror(-r));
    }
    return r;
}

/* qemu-img's vector for the pinned chain c, run as a merge. */
static int run_spec(const struct journal *j, const struct jstep *st, struct qimg_argv *a,
                    const struct spawn_fds *fds, uint64_t bytes, char *msg, size_t msgsz)
{
    qimg_argv_pass(a, fds);
    struct merge_work w = { a, NULL };
    return run_merge(j, st, &w, bytes, msg, msgsz);
}

/* A pull whose qemu-img finished wrote the spec of its new backing into
 * the header (qimg.h): a crash before the real name was set leaves that
 * string, which no chain check passes. The replay sets it back onto where
 * the pull started and copies again. 1 when it did, 0 when the header
 * names no spec (msg untouched), or -errno. */
static int unspec_header(struct journal *j, const struct jstep *st, char *msg,
                         size_t msgsz)
{
    char why[MSG_MAX];
    struct qcow2_backing b;
    int fd = store_open_read(j->s, st->a, why, sizeof(why));
    int r = fd < 0 ? fd : qcow2_read_backing(fd, &b, why, sizeof(why));
    if (fd >= 0)
        close(fd);
    if (r < 0 || strncmp(b.name, "json:", 5) != 0 || !st->from)
        return 0; /* the chain check's refusal stands */
    log_msg(LOG_NOTICE,
            "pull into %s: its header names the spec qemu-img was given, the pull was not "
            "recorded as done: set back onto %s and copied again",
            st->a, st->from);
    r = journal_set_backing(j, st->a, st->from, st->from_fmt, msg, msgsz);
    return r < 0 ? r : 1;
}

/* Where a pull starts (journal.h, the replay contract): *done when there
 * is nothing to copy; otherwise the header names the backing the copy
 * starts from. */
static int pull_start(struct journal *j, const struct jstep *st,
                      const struct backing_info *now, bool *done, char *msg, size_t msgsz)
{
    bool names_new =
        strcmp(now->name, st->b) == 0 && (!st->b[0] || strcmp(now->format, st->fmt) == 0);
    *done = false;
    if (!st->from) {
        /* A record from before pulls kept where they start: the header
         * is all there is to go by. */
        *done = names_new;
        return 0;
    }
    char from[PATH_MAX];
    int r = chain_check_name(j->s, st->a, st->from, st->from_fmt, from, sizeof(from), msg, msgsz);
    if (r < 0 || strcmp(now->path, from) == 0)
        return r;
    if (!names_new) {
        snprintf(msg, msgsz,
                 "pull into %s: it backs onto %s, neither where the pull starts (%s) "
                 "nor where it goes (%s)",
                 st->a, now->name[0] ? now->name : "nothing", st->from,
                 st->b[0] ? st->b : "nothing");
        return -EINVAL;
    }
    /* The image the pull empties leaves only after the pull's mark: gone,
     * a later step ran. */
    if (!storeio_exists(j->s, from)) {
        *done = true;
        return 0;
    }
    log_msg(LOG_NOTICE,
            "pull into %s: its header names %s, but the pull was not recorded as done (the "
            "copied data may not be referenced): set back onto %s and copied again",
            st->a, st->b[0] ? st->b : "no backing file", st->from);
    r = journal_set_backing(j, st->a, st->from, st->from_fmt, msg, msgsz);
    return r < 0 ? r : 1;
}

/* Every image of the pinned chain c held (journal.h, held) until the
 * run ends, links[written] as the one the step writes (refusing every
 * other opener), the others as read (refusing writers: readers of a
 * lower layer, a backup, go on). Those the operation held since its
 * check are there already, in the mode its check took; nothing held is
 * let go. Then qemu-img is told not to lock (chain.locked). */
static int hold_chain(struct journal *j, struct chain *c, size_t written, char *msg,
                      size_t msgsz)
{
    for (size_t i = 0; i < c->n; i++) {
        int r = imagelock_set_take_fd(&j->held, c->fds[i],
                                      i == written ? IMAGELOCK_WRITE : IMAGELOCK_READ,
                                      JOURNAL_STEP_LOCK_WAIT_MS);
        if (r == -EBUSY) {
            snprintf(msg, msgsz, "%s is in use (%s): left for later", c->links[i].path,
                     i == written ? "a qemu has it open; the merge writes it"
                                  : "a qemu has it open for writing; the merge reads it");
            return r;
        }
        if (r < 0) {
            snprintf(msg, msgsz, "%s: cannot lock it: %s", c->links[i].path, strerror(-r));
            return r;
        }
    }
    c->locked = true;
    return 0;
}

/* A data step runs qemu-img on files it checks first and holds open:
 * regular files beneath the root, the image backing onto what the plan
 * said, the whole chain inside the VM. */
static int run_pull(struct journal *j, const struct jstep *st, char *msg, size_t msgsz)
{
    struct backing_info now;
    bool done;
    int r = chain_backing(j->s, st->a, &now, msg, msgsz);
    if (r == -EACCES) {
        /* Refused: the header may name qemu-img's spec (a crash between
         * the rebase and the real name), which is set back first. */
        int u = unspec_header(j, st, msg, msgsz);
        r = u > 0 ? chain_backing(j->s, st->a, &now, msg, msgsz) : u < 0 ? u : r;
    }
    if (r < 0 || (r = pull_start(j, st, &now, &done, msg, msgsz)) < 0 || done)
        return r;
    /* It may have been set back. Everything qemu-img reads (the old chain
     * and the new backing chain, below it) is pinned here. */
    struct chain c;
    if ((r = chain_pin(j->s, st->a, &c, msg, msgsz)) < 0)
        return r;
    char target[PATH_MAX] = "";
    if (st->b[0])
        r = chain_check_name(j->s, st->a, st->b, st->fmt, target, sizeof(target), msg, msgsz);
    /* The new backing is what the old one backs onto: a pull takes one
     * layer out of the chain. */
    if (r == 0 && (c.n < 2 || (target[0] ? c.n < 3 || strcmp(c.links[2].path, target) != 0
                                          : c.n != 2))) {
        snprintf(msg, msgsz, "pull into %s: its backing file does not back onto %s", st->a,
                 st->b[0] ? st->b : "nothing");
        r = -EINVAL;
    }
    char *spec = NULL, *bspec = NULL;
    struct spawn_fds fds;
    struct qimg_argv a;
    if (r == 0)
        r = hold_chain(j, &c, 0, msg, msgsz);
    if (r == 0)
        r = qspec_chain(&c, 0, true, &spec, &fds);
    if (r == 0 && target[0])
        r = qspec_backing(&c, 0, 2, &bspec);
    if (r == 0)
        r = qimg_argv_rebase(&a, j->s->qemu_img, spec, bspec ? bspec : "",
                             st->fmt ? st->fmt : "");
    if (r == 0) {
        uint64_t bytes = allocated(c.fds[1]);
        r = run_spec(j, st, &a, &fds, bytes, msg, msgsz);
        /* qemu-img wrote the new backing's spec as its name: the real,
         * relative one goes in, on the same file. */
        int rw = r == 0 && target[0] ? storeio_reopen(c.fds[0], O_RDWR) : -1;
        if (r == 0 && target[0])
            r = rw < 0 ? rw
                       : journal_set_backing_fd(j->s, rw, st->a, st->b, st->fmt, true, msg, msgsz);
        if (rw >= 0)
            close(rw);
        r = finish(j, st, &c, 0, bytes, r, msg, msgsz);
    }
    free(spec);
    free(bspec);
    chain_free(&c);
    return r;
}

static int run_commit(struct journal *j, const struct jstep *st, char *msg, size_t msgsz)
{
    /* INTO leaves only by the replace grouped after this step, which
     * runs only once the commit succeeded. */
    if (!storeio_exists(j->s, st->b))
        return 0;
    struct chain c;
    int r = chain_pin(j->s, st->a, &c, msg, msgsz);
    if (r < 0)
        return r;
    /* qemu-img commit writes into what the image backs onto: the pinned
     * file the plan named. */
    if (c.n < 2 || strcmp(c.links[1].path, st->b) != 0) {
        snprintf(msg, msgsz, "commit of %s into %s: it backs onto %s", st->a, st->b,
                 c.n < 2 ? "nothing" : c.links[1].path);
        chain_free(&c);
        return -EINVAL;
    }
    if ((r = hold_chain(j, &c, 1, msg, msgsz)) < 0) {
        chain_free(&c);
        return r;
    }
    /* Window by window, resumable (commitchunks.h); qemu-img commit only
     * for an image larger than what it is committed into. */
    struct cc_run cr;
    if ((r = cc_prepare(&cr, j, st, &c, msg, msgsz)) != 1) {
        if (r == 0) {
            struct merge_work w = { NULL, &cr };
            uint64_t bytes = cr.plan.total;
            r = finish(j, st, &c, 1, bytes, run_merge(j, st, &w, bytes, msg, msgsz), msg, msgsz);
            cc_free(&cr);
        }
        chain_free(&c);
        return r;
    }
    char *spec;
    struct spawn_fds fds;
    struct qimg_argv a;
    if ((r = qspec_chain(&c, 0, true, &spec, &fds)) == 0) {
        if ((r = qimg_argv_commit(&a, j->s->qemu_img, spec)) == 0) {
            uint64_t bytes = allocated(c.fds[0]);
            r = finish(j, st, &c, 1, bytes, run_spec(j, st, &a, &fds, bytes, msg, msgsz), msg,
                       msgsz);
        }
        free(spec);
    }
    chain_free(&c);
    return r;
}

static int merge_run_step(struct journal *j, const struct jstep *st, char *msg, size_t msgsz)
{
    return st->kind == JS_PULL ? run_pull(j, st, msg, msgsz) : run_commit(j, st, msg, msgsz);
}

void merge_install(void)
{
    journal_set_data_runner(merge_run_step);
}

int vm_recover(const struct store *s, const char *vm, char *msg, size_t msgsz)
{
    merge_install();
    return journal_recover(s, vm, msg, msgsz);
}
