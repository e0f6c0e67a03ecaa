/* readahead: keep the disk reading ahead of a sequential reader.
 *
 * Through FUSE a reader's data reaches the store file as the daemon's
 * request-sized splices, a few at a time and slightly out of order across
 * threads. The store file's own readahead then runs only a window or two
 * ahead, and the disk idles whenever the daemon catches up with it (a
 * cold sequential read took ~1.0 s through the mount against ~0.8 s
 * directly). Asking for pages with posix_fadvise(WILLNEED) keeps the disk
 * busy, but in single pages, so its requests shrink to 1 MiB and the
 * disk moves less per second.
 *
 * So a streamer thread reads the file ahead of a sequential reader,
 * through its own open file and into /dev/null with sendfile: the
 * kernel's ordinary sequential readahead, in large folios and multi-MiB
 * requests, as for a native reader, and no data copied.
 *
 * A reader streams once its requests form a sequential run (seqrun.h).
 * How far ahead grows with the run, as the kernel's own window does:
 * READAHEAD_RAMP times what the run has read, up to READAHEAD_AHEAD
 * (plus the chunk in flight and the kernel's window on the streamer's
 * file). Chunks already in the page cache (cachestat, Linux 6.5) are
 * skipped. The streamer moves only when the reader does, follows it when
 * it jumps, and ends after READAHEAD_IDLE_S seconds without progress
 * (to start again when the reader moves on) or at end of file (for the
 * rest of that run). At most READAHEAD_MAX_STREAMS run at once. Nothing
 * here changes what a read returns: it only fills the page cache. */
#ifndef VMSTOREFS_READAHEAD_H
#define VMSTOREFS_READAHEAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "datapath/seqrun.h"

enum {
    READAHEAD_RAMP = 4, /* distance ahead, as a multiple of what the run read */
    READAHEAD_AHEAD = 64 << 20, /* the most it is ever ahead of the reader */
    READAHEAD_CHUNK = 4 << 20, /* what it reads per call */
    READAHEAD_IDLE_S = 2,
    READAHEAD_MAX_STREAMS = 4,
};

/* One per open file. All fields are private to readahead.c. */
struct readahead {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int fd; /* the streamer's own open of the file; -1 if none */
    int devnull; /* where it sends what it reads */
    int state; /* see readahead.c */
    bool stop; /* set by readahead_stop */
    bool run_done; /* the streamer hit end of file (or an error) in this run */
    struct seqrun run;
    off_t reader; /* where the streamer's distance is measured from */
    off_t window; /* how far ahead of it the streamer may be */
};

/* ENABLED false: never stream (a reader using O_DIRECT on the store file
 * would not use the page cache a streamer fills). */
void readahead_init(struct readahead *ra, bool enabled);

/* A read of SIZE bytes at OFF from FD (the reader's open file) is being
 * served. Cheap when the reader is not sequential; starts or moves the
 * streamer when it is. */
void readahead_note(struct readahead *ra, int fd, off_t off, size_t size);

/* Whether a streamer thread is running for RA now (tests). */
bool readahead_streaming(struct readahead *ra);

/* Streamer threads started since the daemon began, and the bytes they
 * read (tests). Chunks already in the page cache are skipped, not read. */
unsigned long readahead_threads_started(void);
unsigned long long readahead_bytes_streamed(void);

/* Stops and joins the streamer, if any, and frees what it held. The
 * streamer reads at most READAHEAD_CHUNK more, so this returns promptly. */
void readahead_stop(struct readahead *ra);

#endif
