#include "config.h"

#include "datapath/readahead.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum {
    IDLE, /* no thread: one starts when the reader streams */
    RUNNING, /* a thread is reading ahead */
    EXITED, /* the thread has ended by itself (idle, end of file): join it */
    OFF, /* never again: disabled, cannot stream this file, or stopped */
};

/* Streamer threads alive now, across all open files; ever started; and
 * bytes they have read from the disk or cache. */
static int streams;
static unsigned long started;
static unsigned long long streamed;

unsigned long readahead_threads_started(void)
{
    return __atomic_load_n(&started, __ATOMIC_RELAXED);
}

unsigned long long readahead_bytes_streamed(void)
{
    return __atomic_load_n(&streamed, __ATOMIC_RELAXED);
}

/* cachestat(2), Linux 6.5: how much of a range is in the page cache. Not
 * in Debian 12's headers; the number is the same on every architecture. */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

/* Whether [POS, POS + LEN) is all in the page cache already, so reading
 * it ahead would only cost CPU. False when the kernel cannot tell. */
static bool cached(int fd, off_t pos, size_t len)
{
    struct {
        uint64_t off, len;
    } range = { (uint64_t)pos, len };
    struct {
        uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
    } cs;
    long page = sysconf(_SC_PAGESIZE);
    return syscall(__NR_cachestat, fd, &range, &cs, 0) == 0 && cs.nr_cache >= len / (size_t)page;
}

static bool take_slot(void)
{
    int n = __atomic_load_n(&streams, __ATOMIC_RELAXED);
    while (n < READAHEAD_MAX_STREAMS)
        if (__atomic_compare_exchange_n(&streams, &n, n + 1, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return true;
    return false;
}

static void give_slot(void)
{
    __atomic_sub_fetch(&streams, 1, __ATOMIC_RELAXED);
}

void readahead_init(struct readahead *ra, bool enabled)
{
    *ra = (struct readahead){ .fd = -1, .devnull = -1, .state = enabled ? IDLE : OFF };
    seqrun_init(&ra->run);
    pthread_mutex_init(&ra->mu, NULL);
    /* The idle timeout must not jump with the wall clock. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&ra->cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* Where the streamer should read next, given where it is: never behind
 * the reader, and back to it when the reader has jumped backwards. */
static off_t next_pos(const struct readahead *ra, off_t pos)
{
    if (pos < ra->reader || pos > ra->reader + ra->window + READAHEAD_CHUNK)
        return ra->reader;
    return pos;
}

/* Called with ra->mu held: waits until the streamer may read at *POS.
 * False when it should end: stopped, or no progress for a while. */
static bool wait_for_room(struct readahead *ra, off_t *pos)
{
    while (!ra->stop && (*pos = next_pos(ra, *pos)) >= ra->reader + ra->window) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += READAHEAD_IDLE_S;
        if (pthread_cond_timedwait(&ra->cv, &ra->mu, &deadline) == ETIMEDOUT)
            return false;
    }
    return !ra->stop;
}

static void *stream(void *arg)
{
    struct readahead *ra = arg;
    pthread_mutex_lock(&ra->mu);
    off_t pos = ra->reader;
    while (wait_for_room(ra, &pos)) {
        pthread_mutex_unlock(&ra->mu);
        ssize_t n = READAHEAD_CHUNK;
        if (cached(ra->fd, pos, READAHEAD_CHUNK)) {
            pos += READAHEAD_CHUNK;
        } else {
            /* Reads into the page cache and drops the data: no copy. At
             * end of file, or on an error, the kernel's readahead remains. */
            n = sendfile(ra->devnull, ra->fd, &pos, READAHEAD_CHUNK);
            if (n > 0)
                __atomic_add_fetch(&streamed, (unsigned long long)n, __ATOMIC_RELAXED);
        }
        pthread_mutex_lock(&ra->mu);
        if (n <= 0) {
            ra->run_done = true; /* nothing more to read ahead in this run */
            break;
        }
    }
    give_slot();
    if (ra->state == RUNNING)
        ra->state = EXITED;
    pthread_mutex_unlock(&ra->mu);
    return NULL;
}

static void close_fds(struct readahead *ra)
{
    if (ra->fd >= 0)
        close(ra->fd);
    if (ra->devnull >= 0)
        close(ra->devnull);
    ra->fd = ra->devnull = -1;
}

/* Called with ra->mu held, when the reader streams and no thread runs. */
static void start(struct readahead *ra, int fd)
{
    if (!take_slot())
        return; /* busy: stay idle and try again on a later read */
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    /* Its own open file (the same inode), so its sequential readahead
     * state is its own, untouched by the reader's requests. */
    ra->fd = open(self, O_RDONLY | O_CLOEXEC);
    ra->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (ra->fd >= 0 && ra->devnull >= 0) {
        /* The thread takes no signals: SIGTERM must reach a FUSE thread,
         * whose blocking read it interrupts, or the daemon would not stop. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int r = pthread_create(&ra->thread, NULL, stream, ra);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r == 0) {
            ra->state = RUNNING;
            __atomic_add_fetch(&started, 1, __ATOMIC_RELAXED);
            return;
        }
    }
    give_slot();
    close_fds(ra);
    ra->state = OFF; /* cannot stream this file: do not try again */
}

void readahead_note(struct readahead *ra, int fd, off_t off, size_t size)
{
    /* seqrun's sums need offsets below INT64_MAX / 2; no file is that
     * large, so no streaming reader gets there. */
    const off_t limit = INT64_MAX / 4;
    if (off < 0 || off > limit || (off_t)size > limit)
        return;
    pthread_mutex_lock(&ra->mu);
    if (ra->state == OFF) {
        pthread_mutex_unlock(&ra->mu);
        return;
    }
    bool new_run;
    bool sequential = seqrun_add(&ra->run, off, off + (off_t)size, &new_run);
    if (new_run)
        ra->run_done = false;
    off_t window = ra->run.read * READAHEAD_RAMP;
    if (window > READAHEAD_AHEAD)
        window = READAHEAD_AHEAD;
    /* Only a reader that moved moves the streamer: one that stays put
     * (rereading what it has) lets it go idle and end. */
    if (sequential && (ra->reader != ra->run.end || ra->window != window)) {
        ra->reader = ra->run.end;
        ra->window = window;
        if (ra->state == EXITED) {
            pthread_join(ra->thread, NULL); /* it has returned or is about to */
            close_fds(ra);
            ra->state = IDLE;
        }
        if (ra->state == IDLE && !ra->run_done)
            start(ra, fd);
        pthread_cond_signal(&ra->cv);
    }
    pthread_mutex_unlock(&ra->mu);
}

bool readahead_streaming(struct readahead *ra)
{
    pthread_mutex_lock(&ra->mu);
    bool running = ra->state == RUNNING;
    pthread_mutex_unlock(&ra->mu);
    return running;
}

void readahead_stop(struct readahead *ra)
{
    pthread_mutex_lock(&ra->mu);
    ra->stop = true;
    bool joinable = ra->state == RUNNING || ra->state == EXITED;
    ra->state = OFF;
    pthread_cond_signal(&ra->cv);
    pthread_mutex_unlock(&ra->mu);
    if (joinable)
        pthread_join(ra->thread, NULL);
    close_fds(ra);
    pthread_cond_destroy(&ra->cv);
    pthread_mutex_destroy(&ra->mu);
}
