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
 * reader, and no data copied. The streamer stays at most READAHEAD_AHEAD
 * bytes ahead of the reader's sequential progress, waits when it is that
 * far ahead, and follows the reader when it jumps. At most
 * READAHEAD_MAX_STREAMS run at once; other readers get only the kernel's
 * own readahead. Nothing here changes what a read returns: it only warms
 * the page cache. */
#ifndef VMSTOREFS_READAHEAD_H
#define VMSTOREFS_READAHEAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum {
    READAHEAD_TRIGGER = 4 << 20, /* sequential bytes before a streamer starts */
    READAHEAD_AHEAD = 64 << 20, /* how far ahead of the reader it may be */
    READAHEAD_CHUNK = 4 << 20, /* what it reads per call */
    READAHEAD_SLACK = 2 << 20, /* request reordering still counted as in sequence */
    READAHEAD_MAX_STREAMS = 4,
};

/* One per open file. All fields are private to readahead.c. */
struct readahead {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int fd; /* the streamer's own open of the file; -1 if none */
    int devnull; /* where it sends what it reads */
    int state; /* idle, running, done (see readahead.c) */
    bool stop; /* set by readahead_stop */
    off_t last_end; /* the furthest end of the current sequential run */
    off_t seq_bytes; /* new bytes read in that run */
    off_t reader; /* end of the reader's sequential progress */
};

void readahead_init(struct readahead *ra);

/* A read of SIZE bytes at OFF from FD (the reader's open file) is being
 * served. Cheap when the reader is not sequential; starts the streamer
 * when it has become so. */
void readahead_note(struct readahead *ra, int fd, off_t off, size_t size);

/* Whether a streamer thread has been started for RA (tests). */
bool readahead_streaming(struct readahead *ra);

/* Stops and joins the streamer, if any, and frees what it held. The
 * streamer reads at most READAHEAD_CHUNK more, so this returns promptly. */
void readahead_stop(struct readahead *ra);

#endif
