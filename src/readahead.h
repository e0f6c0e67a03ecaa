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
 * So once a reader has read READAHEAD_TRIGGER bytes in sequence, a
 * streamer thread reads the file ahead of it, through its own open file
 * and into /dev/null with sendfile: the kernel's ordinary sequential
 * readahead, in large folios and multi-MiB requests, as for a native
 * reader, and no data copied.
 *
 * How far ahead grows with the run, as the kernel's own window does:
 * READAHEAD_RAMP times what the run has read, up to READAHEAD_AHEAD
 * (plus the chunk in flight and the kernel's window on the streamer's
 * file). A run is requests within READAHEAD_SLACK of each other, either
 * way, since concurrent requests are served out of order; it counts
 * only while at least 3/4 of the span it covers was actually read, so a
 * reader that skips about (a qemu reading clusters, cp skipping holes)
 * or goes over the same blocks again is not a stream. The streamer
 * follows the reader when it jumps, exits after READAHEAD_IDLE_S seconds
 * without progress or at end of file (a later run starts another), and
 * at most READAHEAD_MAX_STREAMS run at once. Nothing here changes what a
 * read returns: it only fills the page cache. */
#ifndef VMSTOREFS_READAHEAD_H
#define VMSTOREFS_READAHEAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum {
    READAHEAD_TRIGGER = 4 << 20, /* bytes read in a run before a streamer starts */
    READAHEAD_RAMP = 4, /* distance ahead, as a multiple of that */
    READAHEAD_AHEAD = 64 << 20, /* the most it is ever ahead of the reader */
    READAHEAD_CHUNK = 4 << 20, /* what it reads per call */
    READAHEAD_SLACK = 16 << 20, /* request reordering still counted as in sequence */
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
    off_t run_start; /* the span of the current run of requests */
    off_t run_end;
    off_t run_read; /* bytes read in it (at most its span) */
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

/* Stops and joins the streamer, if any, and frees what it held. The
 * streamer reads at most READAHEAD_CHUNK more, so this returns promptly. */
void readahead_stop(struct readahead *ra);

#endif
