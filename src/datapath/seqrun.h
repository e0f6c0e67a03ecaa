/* seqrun: which read requests of an open file form a sequential run.
 *
 * Requests reach the daemon from several threads, so a sequential reader
 * is seen slightly out of order, and a direct-I/O read is split into
 * requests answered in any order. A run is therefore every request
 * within SEQRUN_SLACK of the span the run covers, either way. A run is
 * sequential when it has read SEQRUN_TRIGGER distinct bytes and at least
 * 3/4 of the most recent SEQRUN_WINDOW bytes of its span, counted in
 * SEQRUN_BLOCK blocks: a reader that skips ahead (a qemu reading
 * clusters, cp jumping over holes) covers too little, and one that reads
 * the same blocks again adds nothing. */
#ifndef VMSTOREFS_SEQRUN_H
#define VMSTOREFS_SEQRUN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    SEQRUN_SLACK = 16 << 20, /* distance from the span still in the run */
    SEQRUN_TRIGGER = 4 << 20, /* distinct bytes read before it counts */
    SEQRUN_BLOCK_SHIFT = 17, /* 128 KiB blocks */
    SEQRUN_BLOCKS = 256, /* blocks remembered: 32 MiB */
};
#define SEQRUN_WINDOW ((off_t)SEQRUN_BLOCKS << SEQRUN_BLOCK_SHIFT)

struct seqrun {
    off_t start, end; /* the span of the run */
    off_t read; /* distinct bytes read in it (whole blocks) */
    off_t base; /* block number of bit 0 of seen */
    uint64_t seen[SEQRUN_BLOCKS / 64];
};

void seqrun_init(struct seqrun *r);

/* Folds the request [OFF, END) into the run, or starts a new run with it
 * (then *NEW_RUN is set). True when the run is sequential. Offsets must
 * be below INT64_MAX / 2. */
bool seqrun_add(struct seqrun *r, off_t off, off_t end, bool *new_run);

#endif
