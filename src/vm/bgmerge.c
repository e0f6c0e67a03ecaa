/* bgmerge: the background worker that runs each VM's deferred merges
 * (bgmerge.h). One thread, one VM at a time: merges are disk-bound, and
 * two at once would only share the disk. */
#include "config.h"

#include "vm/bgmerge.h"

#include "journal/journal.h"
#include "store/storeio.h"
#include "util/jobs.h"
#include "util/log.h"
#include "util/monotime.h"
#include "util/names.h"
#include "vm/delplan.h"
#include "vm/vmmodel.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct queued {
    char vm[NAME_MAX_LEN + 1];
    int64_t first_ms; /* when it was queued (the walkers' deferral counts from here) */
    int64_t due_ms; /* not before */
    bool running;
    bool kicked; /* changed again while running: run once more */
    bool urgent; /* someone waits (bgmerge_wait): no deferral for walkers */
    unsigned attempts; /* failed in a row */
    int last_err;
    unsigned generation; /* attempts ended, for waiters */
    struct job *job; /* its line in .jobs while queued */
    struct queued *next;
};

static __thread bool on_worker; /* this thread is the worker */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER; /* the worker waits here */
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER; /* bgmerge_wait waits here */
static struct queued *queue;
static const struct store *store;
static pthread_t worker;
static bool running, stopping;
static bool accepting; /* bgmerge_prepare was called: work is queued */
static bool (*walked_fn)(const char *vm);
static bool (*reading_fn)(const char *path);
static void (*changed_fn)(const char *vm);

void bgmerge_set_changed(void (*changed)(const char *vm))
{
    changed_fn = changed;
}

void bgmerge_set_walked(bool (*walked)(const char *vm))
{
    walked_fn = walked;
}

void bgmerge_set_reading(bool (*reading)(const char *path))
{
    reading_fn = reading;
}

bool bgmerge_image_read(const char *path)
{
    return reading_fn && reading_fn(path);
}

bool bgmerge_active(void)
{
    pthread_mutex_lock(&mu);
    bool r = accepting && !stopping;
    pthread_mutex_unlock(&mu);
    return r;
}

bool bgmerge_stopping(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&mu);
    bool r = stopping;
    pthread_mutex_unlock(&mu);
    return r;
}

static struct queued *find(const char *vm)
{
    for (struct queued *q = queue; q; q = q->next)
        if (strcmp(q->vm, vm) == 0)
            return q;
    return NULL;
}

static void unlink_queued(struct queued *q)
{
    for (struct queued **p = &queue; *p; p = &(*p)->next)
        if (*p == q) {
            *p = q->next;
            break;
        }
    if (q->job)
        jobs_finish(q->job);
    free(q);
}

void bgmerge_kick(const char *vm)
{
    pthread_mutex_lock(&mu);
    if (!accepting || stopping || !name_is_valid(vm)) {
        pthread_mutex_unlock(&mu);
        return;
    }
    int64_t now = now_ms();
    struct queued *q = find(vm);
    if (!q && (q = calloc(1, sizeof(*q))) != NULL) {
        snprintf(q->vm, sizeof(q->vm), "%s", vm);
        q->first_ms = now;
        q->job = jobs_start("merge-queued", vm, "", 0);
        q->next = queue;
        queue = q;
    }
    if (q) {
        /* A change restarts the quiet time, not a back-off. */
        if (q->attempts == 0 && q->due_ms < now + BGMERGE_QUIET_MS)
            q->due_ms = now + BGMERGE_QUIET_MS;
        q->kicked = q->running;
        pthread_cond_signal(&work_cv);
    }
    pthread_mutex_unlock(&mu);
}

static int has_hidden(const char *name, void *arg)
{
    (void)arg;
    return name_is_hidden_dir(name);
}

void bgmerge_kick_if_hidden(const char *vm)
{
    char dir[PATH_MAX];
    if (store && store_vm_path(store, vm, "snapshots", dir, sizeof(dir)) == 0 &&
        storeio_each(store, dir, has_hidden, NULL) > 0)
        bgmerge_kick(vm);
}

static int kick_vm_if_hidden(const char *vm, void *arg)
{
    (void)arg;
    bgmerge_kick_if_hidden(vm);
    return 0;
}

void bgmerge_kick_store(void)
{
    if (store)
        store_list_vms(store, kick_vm_if_hidden, NULL);
}

/* The garbage pass of one VM, under its lock: 0 when nothing is left to
 * do (or the VM is gone: a VM delete drops its merges). */
static int run_vm(const char *vm, char *msg, size_t msgsz)
{
    struct snap_ctx c = { .s = store, .cancelled = bgmerge_stopping };
    struct vm_model m;
    int r = vm_begin(&m, &c, vm, msg, msgsz);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if ((r = vm_load_definition(&m, false, msg, msgsz)) == 0)
        r = delplan_collect(&m, msg, msgsz);
    vm_end(&m);
    return r;
}

static int64_t backoff_ms(unsigned attempts)
{
    int64_t ms = 1000;
    for (unsigned i = 1; i < attempts && ms < BGMERGE_MAX_BACKOFF_MS; i++)
        ms *= 2;
    return ms < BGMERGE_MAX_BACKOFF_MS ? ms : BGMERGE_MAX_BACKOFF_MS;
}

static void timed_wait(int64_t until_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wait = until_ms - now_ms();
    if (wait < 1)
        wait = 1;
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (wait % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&work_cv, &mu, &ts);
}

/* The queued VM due first, or NULL. */
static struct queued *next_due(void)
{
    struct queued *best = NULL;
    for (struct queued *q = queue; q; q = q->next)
        if (!best || q->due_ms < best->due_ms)
            best = q;
    return best;
}

static void *work(void *arg)
{
    (void)arg;
    on_worker = true;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct queued *q = next_due();
        if (!q) {
            pthread_cond_wait(&work_cv, &mu);
            continue;
        }
        int64_t now = now_ms();
        if (q->due_ms > now) {
            timed_wait(q->due_ms);
            continue;
        }
        char vm[NAME_MAX_LEN + 1];
        snprintf(vm, sizeof(vm), "%s", q->vm);
        pthread_mutex_unlock(&mu);
        bool walked = walked_fn && walked_fn(vm);
        pthread_mutex_lock(&mu);
        if (walked && !q->urgent && now - q->first_ms < BGMERGE_MAX_DEFER_MS) {
            q->due_ms = now + BGMERGE_QUIET_MS;
            continue;
        }
        q->running = true;
        q->kicked = false;
        pthread_mutex_unlock(&mu);

        char msg[MSG_MAX] = "";
        int r = run_vm(vm, msg, sizeof(msg));
        if (changed_fn)
            changed_fn(vm); /* also after a failure: a merge may have run */

        pthread_mutex_lock(&mu);
        q->running = false;
        q->generation++;
        if (r == 0 && !q->kicked) {
            unlink_queued(q);
        } else if (r == 0) {
            q->urgent = false;
            q->attempts = 0;
            q->last_err = 0;
            q->due_ms = now_ms() + BGMERGE_QUIET_MS;
        } else {
            q->urgent = false;
            q->attempts++;
            q->last_err = r;
            q->due_ms = now_ms() + backoff_ms(q->attempts);
            if (!stopping)
                log_msg(LOG_WARNING, "merges of %s: attempt %u failed (%s): %s; again in %lld s",
                        vm, q->attempts, strerror(-r), msg,
                        (long long)(backoff_ms(q->attempts) / 1000));
        }
        pthread_cond_broadcast(&done_cv);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* A committed record with data steps met by a recovery: the worker's,
 * unless this is the worker. */
static bool defer_to_worker(const char *vm)
{
    if (on_worker || !bgmerge_active())
        return false;
    bgmerge_kick(vm);
    return true;
}

void bgmerge_prepare(const struct store *s)
{
    pthread_mutex_lock(&mu);
    store = s;
    accepting = true;
    stopping = false;
    pthread_mutex_unlock(&mu);
    journal_set_defer_data(defer_to_worker);
}

int bgmerge_start(const struct store *s)
{
    if (!bgmerge_active())
        bgmerge_prepare(s);
    pthread_mutex_lock(&mu);
    if (running) {
        pthread_mutex_unlock(&mu);
        return 0;
    }
    int r = pthread_create(&worker, NULL, work, NULL);
    running = r == 0;
    if (r != 0)
        accepting = false;
    pthread_mutex_unlock(&mu);
    if (r != 0)
        journal_set_defer_data(NULL);
    return -r;
}

void bgmerge_stop(void)
{
    journal_set_defer_data(NULL);
    pthread_mutex_lock(&mu);
    if (!running) {
        accepting = false;
        pthread_mutex_unlock(&mu);
        return;
    }
    stopping = true;
    pthread_cond_broadcast(&work_cv);
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&mu);
    pthread_join(worker, NULL);
    pthread_mutex_lock(&mu);
    while (queue)
        unlink_queued(queue);
    running = false;
    accepting = false;
    stopping = false; /* merges run by anyone else are no longer cancelled */
    pthread_mutex_unlock(&mu);
}

int bgmerge_wait(const char *vm, bool (*cancelled)(void *), void *arg)
{
    pthread_mutex_lock(&mu);
    struct queued *q = find(vm);
    unsigned gen = q ? q->generation : 0;
    int r = 0;
    while (!stopping && (q = find(vm)) != NULL) {
        if (q->generation != gen && q->last_err && !q->running) {
            r = q->last_err;
            break;
        }
        /* A waiter (sync VMDIR, which opens the directory it syncs: a
         * walker by its look) wants the work now, and a failed attempt
         * tried again at once rather than after its back-off. */
        if (!q->running && (!q->urgent || q->due_ms > now_ms())) {
            q->urgent = true;
            q->due_ms = now_ms();
            pthread_cond_signal(&work_cv);
        }
        pthread_mutex_unlock(&mu);
        bool stop = cancelled && cancelled(arg);
        pthread_mutex_lock(&mu);
        if (stop) {
            r = -EINTR;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&done_cv, &mu, &ts);
    }
    if (r == 0 && stopping && find(vm))
        r = -ESHUTDOWN;
    pthread_mutex_unlock(&mu);
    return r;
}
