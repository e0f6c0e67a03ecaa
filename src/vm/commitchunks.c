/* commitchunks: a commit merge made window by window, resumable after a
 * crash (commitchunks.h; journal.h, the replay contract). */
#include "config.h"

#include "vm/commitchunks.h"

#include "vm/bgmerge.h"
#include "qemu/qcow2edit.h"
#include "qemu/qimg.h"
#include "qemu/qspec.h"
#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CC_MAX_WINDOWS (1u << 24)

int cc_plan_init(struct cc_plan *p, uint64_t size, uint64_t chunk)
{
    memset(p, 0, sizeof(*p));
    if (!chunk)
        return -EINVAL;
    uint64_t n = size / chunk + (size % chunk != 0);
    if (n > CC_MAX_WINDOWS)
        return -EFBIG;
    p->size = size;
    p->chunk = chunk;
    p->n = (size_t)n;
    if (n && !(p->alloc = calloc(p->n, sizeof(*p->alloc))))
        return -ENOMEM;
    return 0;
}

void cc_plan_add(struct cc_plan *p, uint64_t start, uint64_t len)
{
    uint64_t end = start < p->size ? (len < p->size - start ? start + len : p->size) : start;
    while (start < end) {
        size_t w = (size_t)(start / p->chunk);
        uint64_t wend = (w + 1) * p->chunk;
        uint64_t part = (end < wend ? end : wend) - start;
        p->alloc[w] += part;
        p->total += part;
        start += part;
    }
}

bool cc_plan_next(const struct cc_plan *p, uint64_t from, uint64_t *off, uint64_t *len)
{
    for (size_t w = (size_t)(from / p->chunk); from < p->size && w < p->n; w++) {
        uint64_t start = (uint64_t)w * p->chunk;
        if (!p->alloc[w])
            continue;
        if (start < from)
            start = from; /* resumed inside the window (another window size) */
        uint64_t end = (w + 1) * p->chunk;
        *off = start;
        *len = (end < p->size ? end : p->size) - start;
        return true;
    }
    return false;
}

uint64_t cc_plan_below(const struct cc_plan *p, uint64_t upto)
{
    uint64_t sum = 0;
    for (size_t w = 0; w < p->n && ((uint64_t)w + 1) * p->chunk <= upto; w++)
        sum += p->alloc[w];
    /* The last window ends at the size, not at a multiple of chunk. */
    if (upto >= p->size && p->n && (uint64_t)p->n * p->chunk > upto)
        sum += p->alloc[p->n - 1];
    return sum;
}

void cc_plan_free(struct cc_plan *p)
{
    free(p->alloc);
    p->alloc = NULL;
    p->n = 0;
}

uint64_t cc_chunk_size(void)
{
    const char *e = getenv("VMSTOREFS_COMMIT_CHUNK_MIB");
    char *end;
    unsigned long mib = e ? strtoul(e, &end, 10) : 0;
    if (!e || end == e || *end || mib < 1 || mib > 65536)
        mib = COMMIT_CHUNK_MIB_DEFAULT;
    return (uint64_t)mib << 20;
}

void cc_stamp(const struct stat *st, char *out, size_t outsz)
{
    snprintf(out, outsz, "%" PRIu64 ":%" PRIu64 ":%" PRId64 ".%09ld", (uint64_t)st->st_ino,
             (uint64_t)st->st_size, (int64_t)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
}

uint64_t cc_resume_at(const struct jstep *st, const char *now, bool *changed)
{
    *changed = false;
    if (!st->copied)
        return 0;
    if (strcmp(st->stamp, now) == 0)
        return st->copied;
    *changed = true;
    return 0;
}

static void cc_extent(uint64_t start, uint64_t len, bool allocated, void *arg)
{
    if (allocated)
        cc_plan_add(arg, start, len);
}

int cc_prepare(struct cc_run *cr, const struct journal *j, const struct jstep *st,
               const struct chain *c, char *msg, size_t msgsz)
{
    memset(cr, 0, sizeof(*cr));
    cr->j = j;
    cr->st = st;
    cr->c = c;
    struct stat sb;
    if (fstat(c->fds[0], &sb) < 0) {
        int r = -errno;
        snprintf(msg, msgsz, "commit of %s: %s", st->a, strerror(-r));
        return r;
    }
    cc_stamp(&sb, cr->stamp, sizeof(cr->stamp));
    /* The map pass sees IMAGE alone: what it holds itself. */
    char *spec;
    struct spawn_fds fds;
    unsigned long long size = 0, into_size = 0;
    int r = qspec_chain(c, 0, false, &spec, &fds);
    if (r < 0)
        return r;
    /* The windows are laid over the size IMAGE's header gives; the map
     * must cover exactly that. */
    if ((r = qcow2_virtual_size(c->fds[0], &size)) < 0 ||
        (r = cc_plan_init(&cr->plan, size, cc_chunk_size())) < 0) {
        free(spec);
        snprintf(msg, msgsz, "commit of %s: %s", st->a,
                 r == -EINVAL ? "not a qcow2 image" : strerror(-r));
        return r;
    }
    uint64_t mapped;
    r = qimg_map(j->s->qemu_img, spec, &fds, qimg_data_timeout(0), cc_extent, &cr->plan, &mapped,
                 msg, msgsz);
    free(spec);
    if (r == 0 && mapped != size) {
        snprintf(msg, msgsz, "commit of %s: qemu-img map covers %" PRIu64 " bytes, not its size %llu",
                 st->a, mapped, size);
        r = -EIO;
    }
    if (r < 0) {
        cc_free(cr);
        return r;
    }
    if (strcmp(c->links[1].format, "qcow2") == 0) {
        r = qcow2_virtual_size(c->fds[1], &into_size);
    } else {
        struct stat ib;
        r = fstat(c->fds[1], &ib) < 0 ? -errno : 0;
        into_size = r == 0 ? (unsigned long long)ib.st_size : 0;
    }
    if (r < 0) {
        snprintf(msg, msgsz, "commit into %s: %s", st->b,
                 r == -EINVAL ? "not a qcow2 image" : strerror(-r));
        cc_free(cr);
        return r;
    }
    if (size > into_size) {
        cc_free(cr);
        return 1;
    }
    bool changed;
    cr->from = cc_resume_at(st, cr->stamp, &changed);
    if (changed)
        log_msg(LOG_NOTICE,
                "commit of %s into %s: the image changed since %" PRIu64 " bytes were copied "
                "(a qemu wrote it?): copied again from the start",
                st->a, st->b, st->copied);
    else if (cr->from)
        log_msg(LOG_NOTICE, "commit of %s into %s: resumed at %" PRIu64 " of %llu bytes",
                st->a, st->b, cr->from, size);
    return 0;
}

struct cc_progress {
    struct job *job;
    uint64_t before, bytes;
};

static void cc_pct(double pct, void *arg)
{
    struct cc_progress *cp = arg;
    if (cp->job)
        jobs_progress(cp->job, cp->before + (uint64_t)((double)cp->bytes * pct / 100.0));
}

/* One window [off, off + len): IMAGE's part copied into INTO's. */
static int copy_window(const struct cc_run *cr, uint64_t off, uint64_t len, struct cc_progress *cp,
                       char *msg, size_t msgsz)
{
    char *src = NULL, *dst = NULL;
    struct qimg_argv a;
    int r = qspec_window(cr->c, 0, off, len, "s", &src);
    if (r == 0)
        r = qspec_window(cr->c, 1, off, len, "t", &dst);
    if (r == 0)
        r = qimg_argv_convert_window(&a, cr->j->s->qemu_img, src, dst);
    if (r == 0) {
        struct spawn_fds fds = { cr->c->fds, cr->c->n };
        struct qimg_progress p = { .on_pct = cc_pct, .arg = cp };
        qimg_argv_pass(&a, &fds);
        char what[64];
        snprintf(what, sizeof(what), "convert (commit window at %" PRIu64 ")", off);
        r = qimg_run_watched(&a, qimg_data_timeout(cp->bytes), what, &p, bgmerge_stopping, NULL,
                             msg, msgsz);
    } else {
        snprintf(msg, msgsz, "commit of %s: %s", cr->st->a, strerror(-r));
    }
    free(src);
    free(dst);
    return r;
}

int cc_copy(struct cc_run *cr, struct job *job, char *msg, size_t msgsz)
{
    uint64_t off, len, at = cr->from;
    struct cc_progress cp = { job, cc_plan_below(&cr->plan, at), 0 };
    if (job)
        jobs_progress(job, cp.before);
    while (cc_plan_next(&cr->plan, at, &off, &len)) {
        cp.bytes = cr->plan.alloc[off / cr->plan.chunk];
        int r = copy_window(cr, off, len, &cp, msg, msgsz);
        /* What qemu-img wrote is on disk before the record says so. */
        if (r == 0 && fsync(cr->c->fds[1]) < 0) {
            r = -errno;
            snprintf(msg, msgsz, "fsync %s: %s", cr->c->links[1].path, strerror(-r));
        }
        if (r == 0)
            r = journal_commit_progress(cr->j, cr->st, off + len, cr->stamp, msg, msgsz);
        if (r < 0)
            return r;
        at = off + len;
        cp.before = cc_plan_below(&cr->plan, at);
        if (job)
            jobs_progress(job, cp.before);
    }
    return 0;
}

void cc_free(struct cc_run *cr)
{
    cc_plan_free(&cr->plan);
}
