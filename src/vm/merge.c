/* merge: the journal's data steps, pull (safe qemu-img rebase) and
 * commit (qemu-img commit -d), run with their log lines and their line in
 * .jobs. Plugged into the journal (journal_set_data_runner) by
 * merge_install, which every front end calls before it recovers or
 * commits anything; vm_recover does both. */
#include "config.h"

#include "vm/merge.h"

#include "vm/bgmerge.h"
#include "qemu/chain.h"
#include "qemu/qimg.h"
#include "store/storeio.h"
#include "util/jobs.h"
#include "util/log.h"
#include "util/monotime.h"
#include "util/names.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Bytes a data step moves at most: the allocation of the image it reads. */
static uint64_t allocated(const struct store *s, const char *path)
{
    struct stat st;
    return store_lstat(s, path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
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

/* Runs a merge's qemu-img with its log lines and its line in .jobs. */
static int run_merge(const struct journal *j, const struct jstep *st, const struct qimg_argv *a,
                     uint64_t bytes, char *msg, size_t msgsz)
{
    const char *dir = st->kind == JS_PULL ? "pull" : "commit";
    char dev[DEV_MAX_LEN + 1] = "?", snap[NAME_MAX_LEN + 1] = "?";
    const char *slash = st->note ? strrchr(st->note, '/') : NULL;
    if (slash) {
        snprintf(snap, sizeof(snap), "%.*s", (int)(slash - st->note), st->note);
        snprintf(dev, sizeof(dev), "%s", slash + 1);
    }
    log_msg(LOG_INFO, "merge of %s disk %s (snapshot %s): direction=%s bytes=%llu started", j->vm,
            dev, snap, dir, (unsigned long long)bytes);
    struct merge_progress mp = { jobs_start("merge", j->vm, st->note, bytes), bytes };
    struct qimg_progress p = { .on_pct = merge_pct, .arg = &mp };
    int64_t t0 = now_ms();
    /* A mount stopping stops the background worker's merge: the record
     * stays and the next mount runs it again. */
    int r = qimg_run_watched(a, qimg_data_timeout(bytes), st->kind == JS_PULL ? "rebase" : "commit", &p,
                             bgmerge_stopping, NULL, msg, msgsz);
    jobs_finish(mp.job);
    double secs = (double)(now_ms() - t0) / 1000.0;
    if (r == 0)
        log_msg(LOG_INFO,
                "merge of %s disk %s (snapshot %s): direction=%s bytes=%llu done in %.2f s "
                "(%.1f MiB/s)",
                j->vm, dev, snap, dir, (unsigned long long)bytes, secs,
                secs > 0 ? (double)bytes / 1048576.0 / secs : 0.0);
    else
        log_msg(LOG_ERR, "merge of %s disk %s (snapshot %s): direction=%s failed after %.2f s: %s",
                j->vm, dev, snap, dir, secs, msg);
    return r;
}

/* A data step runs qemu-img on files it checks first: regular files
 * beneath the root, the image still backing onto what the plan said. */
static int merge_run_step(const struct journal *j, const struct jstep *st, char *msg, size_t msgsz)
{
    struct backing_info now;
    int r = chain_backing(j->s, st->a, &now, msg, msgsz);
    if (r < 0)
        return r;
    struct qimg_argv a;
    uint64_t bytes;
    if (st->kind == JS_PULL) {
        if (strcmp(now.name, st->b) == 0 && (!st->b[0] || strcmp(now.format, st->fmt) == 0))
            return 0;
        /* qemu-img reads the whole new backing chain: it must pass the
         * checks every chain of the store passes. */
        if (st->b[0]) {
            char target[PATH_MAX];
            struct chain c;
            if ((r = chain_check_name(j->s, st->a, st->b, st->fmt, target, sizeof(target), msg,
                                      msgsz)) < 0 ||
                (r = chain_walk(j->s, target, &c, msg, msgsz)) < 0)
                return r;
            chain_free(&c);
        }
        bytes = now.path[0] ? allocated(j->s, now.path) : 0;
        r = qimg_argv_rebase(&a, j->s->qemu_img, st->a, st->b, st->fmt ? st->fmt : "");
    } else {
        if (!storeio_exists(j->s, st->b) || strcmp(now.path, st->b) != 0)
            return 0;
        bytes = allocated(j->s, st->a);
        r = qimg_argv_commit(&a, j->s->qemu_img, st->a);
    }
    return r < 0 ? r : run_merge(j, st, &a, bytes, msg, msgsz);
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
