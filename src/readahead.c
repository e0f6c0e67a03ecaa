#include "readahead.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <unistd.h>

enum { IDLE, RUNNING, DONE };

/* Streamer threads alive now, across all open files. */
static int streams;

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

void readahead_init(struct readahead *ra)
{
    *ra = (struct readahead){ .fd = -1, .devnull = -1, .state = IDLE };
    pthread_mutex_init(&ra->mu, NULL);
    pthread_cond_init(&ra->cv, NULL);
}

/* Where the streamer should read next, given where it is: never behind
 * the reader, and back to it when the reader has jumped backwards. */
static off_t next_pos(const struct readahead *ra, off_t pos)
{
    if (pos < ra->reader || pos > ra->reader + READAHEAD_AHEAD + READAHEAD_CHUNK)
        return ra->reader;
    return pos;
}

static void *stream(void *arg)
{
    struct readahead *ra = arg;
    pthread_mutex_lock(&ra->mu);
    off_t pos = ra->reader;
    for (;;) {
        while (!ra->stop && (pos = next_pos(ra, pos)) >= ra->reader + READAHEAD_AHEAD)
            pthread_cond_wait(&ra->cv, &ra->mu);
        if (ra->stop)
            break;
        pthread_mutex_unlock(&ra->mu);
        /* Reads into the page cache and drops the data: no copy. At end
         * of file, or on an error, the kernel's own readahead remains. */
        ssize_t n = sendfile(ra->devnull, ra->fd, &pos, READAHEAD_CHUNK);
        pthread_mutex_lock(&ra->mu);
        if (n <= 0)
            break;
    }
    pthread_mutex_unlock(&ra->mu);
    give_slot();
    return NULL;
}

/* Called with ra->mu held, when the reader has just become sequential. */
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
            return;
        }
    }
    give_slot();
    ra->state = DONE; /* cannot stream this file: do not try again */
}

void readahead_note(struct readahead *ra, int fd, off_t off, size_t size)
{
    /* Offsets near the largest one would overflow the streamer's sums;
     * no file is that large, so no streaming reader gets there. */
    const off_t limit = INT64_MAX - READAHEAD_AHEAD - 2 * (off_t)READAHEAD_CHUNK;
    if (off < 0 || (off_t)size > limit - off)
        return;
    off_t end = off + (off_t)size;
    pthread_mutex_lock(&ra->mu);
    bool in_sequence =
        off >= ra->last_end - READAHEAD_SLACK && off <= ra->last_end + READAHEAD_SLACK;
    if (!in_sequence) {
        ra->seq_bytes = (off_t)size;
        ra->last_end = end;
    } else if (end > ra->last_end) {
        /* Only new ground counts: a reader going over the same blocks
         * again (a qemu rereading its tables) is not streaming. */
        ra->seq_bytes += end - ra->last_end;
        ra->last_end = end;
    }
    /* Only an established sequential run moves the streamer, so random
     * readers (a qemu) never make it read anything; a run that starts
     * over behind the last one (a reader going back) takes it back. */
    if (ra->seq_bytes >= READAHEAD_TRIGGER && ra->reader != ra->last_end) {
        ra->reader = ra->last_end;
        if (ra->state == IDLE)
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
    bool running = ra->state == RUNNING;
    ra->state = DONE;
    pthread_cond_signal(&ra->cv);
    pthread_mutex_unlock(&ra->mu);
    if (running)
        pthread_join(ra->thread, NULL);
    if (ra->fd >= 0)
        close(ra->fd);
    if (ra->devnull >= 0)
        close(ra->devnull);
    ra->fd = ra->devnull = -1;
    pthread_cond_destroy(&ra->cv);
    pthread_mutex_destroy(&ra->mu);
}
