#include "config.h"

#include "ops/clonecopy.h"

#include "qemu/chain.h"
#include "qemu/qimg.h"
#include "qemu/qspec.h"
#include "store/storeio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Creates path beneath the root (it must not exist) for writing. */
static int create_file(const struct store *s, const char *path)
{
    const char *name;
    int dfd = storeio_parent(s, path, &name);
    if (dfd < 0)
        return dfd;
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    int e = errno;
    close(dfd);
    return fd < 0 ? -e : fd;
}

/* dst, new, sharing the extents of the file open on in. */
static int reflink_fd(const struct store *s, int in, const char *dst)
{
    int out = create_file(s, dst);
    if (out < 0)
        return out;
    int r = ioctl(out, FICLONE, in) < 0 ? -errno : 0;
    close(out);
    return r;
}

static int reflink_file(const struct store *s, const char *src, const char *dst)
{
    char why[MSG_MAX];
    int in = store_open_read(s, src, why, sizeof(why));
    if (in < 0)
        return in;
    int r = reflink_fd(s, in, dst);
    close(in);
    return r;
}

bool clonecopy_reflinks(const struct store *s, const char *dir)
{
    char a[PATH_MAX], b[PATH_MAX];
    if ((size_t)snprintf(a, sizeof(a), "%s/.reflink-a", dir) >= sizeof(a) ||
        (size_t)snprintf(b, sizeof(b), "%s/.reflink-b", dir) >= sizeof(b))
        return false;
    bool ok = storeio_write_new(s, a, "vmstorefs", 9) == 0 && reflink_file(s, a, b) == 0;
    storeio_unlink(s, a);
    storeio_unlink(s, b);
    return ok;
}

int clonecopy_weight(const struct store *s, const char *image, uint64_t *weight, char *msg,
                     size_t msgsz)
{
    struct chain c;
    char why[MSG_MAX];
    int r = chain_walk(s, image, &c, why, sizeof(why));
    if (r < 0) {
        snprintf(msg, msgsz, "%s", why);
        return r;
    }
    *weight = 0;
    for (size_t i = 0; i < c.n; i++) {
        struct stat st;
        if (store_lstat(s, c.links[i].path, &st) == 0)
            *weight += (uint64_t)st.st_blocks * 512;
    }
    chain_free(&c);
    return 0;
}

struct copy_run {
    const struct store *s;
    bool reflinks;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t running;
};

struct worker {
    struct copy_run *run;
    struct clonecopy_disk *d;
};

static void on_pct(double pct, void *arg)
{
    struct worker *w = arg;
    pthread_mutex_lock(&w->run->lock);
    w->d->pct = pct;
    pthread_mutex_unlock(&w->run->lock);
}

static bool worker_stopped(void *arg)
{
    return atomic_load(&((struct copy_run *)arg)->stop);
}

/* The source chain is pinned (chain_pin) and qemu-img reads exactly
 * those files (qspec.h): the source VM's owner may rename and swap images
 * in its directory while the clone copies, and a name reopened later
 * could be a file outside the VM. The copy goes to the clone's temporary
 * directory, which only the daemon writes. */
static void copy_one(struct worker *w)
{
    struct clonecopy_disk *d = w->d;
    const struct store *s = w->run->s;
    struct chain c;
    if ((d->err = chain_pin(s, d->src, &c, d->msg, sizeof(d->msg))) < 0)
        return;
    /* A disk with no chain on a reflink file system: the file is its own
     * collapsed copy, shared extent by extent. */
    if (w->run->reflinks && c.n == 1) {
        if (reflink_fd(s, c.fds[0], d->dst) == 0) {
            on_pct(100.0, w);
            chain_free(&c);
            return;
        }
        storeio_unlink(s, d->dst); /* fall back to converting */
    }
    char *spec;
    struct spawn_fds fds;
    struct qimg_argv a;
    if ((d->err = qspec_chain(&c, 0, true, &spec, &fds)) == 0) {
        if ((d->err = qimg_argv_convert_collapse(&a, s->qemu_img, spec, "qcow2", d->dst,
                                                 w->run->reflinks)) == 0) {
            qimg_argv_pass(&a, &fds);
            struct qimg_progress p = { .on_pct = on_pct, .arg = w };
            d->err = qimg_run_watched(&a, qimg_data_timeout(d->weight), "convert", &p,
                                      worker_stopped, w->run, d->msg, sizeof(d->msg));
        }
        free(spec);
    }
    chain_free(&c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    copy_one(w);
    /* One disk failing (ENOSPC) dooms the clone: the others stop too. */
    if (w->d->err < 0)
        atomic_store(&w->run->stop, true);
    pthread_mutex_lock(&w->run->lock);
    w->run->running--;
    pthread_cond_signal(&w->run->cond);
    pthread_mutex_unlock(&w->run->lock);
    return NULL;
}

static void report(struct copy_run *run, struct clonecopy_disk *d, size_t n, struct job *job)
{
    if (!job)
        return;
    double done = 0;
    pthread_mutex_lock(&run->lock);
    for (size_t i = 0; i < n; i++)
        done += d[i].pct / 100.0 * (double)d[i].weight;
    pthread_mutex_unlock(&run->lock);
    jobs_progress(job, (uint64_t)done);
}

int clonecopy_run(const struct store *s, struct clonecopy_disk *d, size_t n, bool reflinks,
                  struct job *job, bool (*cancelled)(void *), void *arg, char *msg, size_t msgsz)
{
    struct copy_run run = { .s = s, .reflinks = reflinks };
    atomic_init(&run.stop, false);
    pthread_mutex_init(&run.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&run.cond, &ca);
    pthread_condattr_destroy(&ca);
    struct worker *w = calloc(n ? n : 1, sizeof(*w));
    pthread_t *t = calloc(n ? n : 1, sizeof(*t));
    bool *started = calloc(n ? n : 1, sizeof(*started));
    int r = w && t && started ? 0 : -ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++) {
        d[i].err = 0;
        d[i].msg[0] = '\0';
        d[i].pct = 0;
        w[i] = (struct worker){ &run, &d[i] };
        pthread_mutex_lock(&run.lock);
        run.running++;
        pthread_mutex_unlock(&run.lock);
        started[i] = pthread_create(&t[i], NULL, worker_main, &w[i]) == 0;
        if (!started[i])
            worker_main(&w[i]); /* no thread: this one copies it */
    }
    bool interrupted = false;
    pthread_mutex_lock(&run.lock);
    while (run.running > 0) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += CLONECOPY_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&run.cond, &run.lock, &until);
        pthread_mutex_unlock(&run.lock);
        if (!interrupted && cancelled && cancelled(arg)) {
            interrupted = true;
            atomic_store(&run.stop, true);
        }
        report(&run, d, n, job);
        pthread_mutex_lock(&run.lock);
    }
    pthread_mutex_unlock(&run.lock);
    for (size_t i = 0; i < n && started; i++)
        if (started[i])
            pthread_join(t[i], NULL);
    /* A disk's own failure wins over the -EINTR of the disks it stopped. */
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (d[i].err < 0 && d[i].err != -EINTR) {
            snprintf(msg, msgsz, "disk %s: %s", d[i].dev,
                     d[i].msg[0] ? d[i].msg : strerror(-d[i].err));
            r = d[i].err;
        }
    }
    if (r == 0 && (interrupted || atomic_load(&run.stop))) {
        snprintf(msg, msgsz, "interrupted: the partial copy is removed");
        r = -EINTR;
    }
    free(w);
    free(t);
    free(started);
    pthread_cond_destroy(&run.cond);
    pthread_mutex_destroy(&run.lock);
    return r;
}
