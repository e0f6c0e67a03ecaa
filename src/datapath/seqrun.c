#include "config.h"

#include "datapath/seqrun.h"

#include <string.h>

enum { WORDS = SEQRUN_BLOCKS / 64 };

void seqrun_init(struct seqrun *r)
{
    /* No offset is within reach of a run that ends this far below 0, so
     * the first request starts a run. */
    memset(r, 0, sizeof(*r));
    r->start = r->end = -2 * (off_t)SEQRUN_SLACK;
}

/* Moves the remembered blocks so that bit 0 is block BASE (> r->base);
 * blocks that fall out are forgotten (their bytes stay in r->read). */
static void slide(struct seqrun *r, off_t base)
{
    off_t shift = base - r->base;
    r->base = base;
    if (shift >= SEQRUN_BLOCKS) {
        memset(r->seen, 0, sizeof(r->seen));
        return;
    }
    int ws = (int)(shift / 64), bs = (int)(shift % 64);
    for (int w = 0; w < WORDS; w++) {
        uint64_t lo = w + ws < WORDS ? r->seen[w + ws] : 0;
        uint64_t hi = w + ws + 1 < WORDS ? r->seen[w + ws + 1] : 0;
        r->seen[w] = bs ? (lo >> bs) | (hi << (64 - bs)) : lo;
    }
}

/* Marks block B read; true if it had not been. Blocks older than what is
 * remembered count as read already. */
static bool see(struct seqrun *r, off_t b)
{
    if (b < r->base)
        return false;
    if (b >= r->base + SEQRUN_BLOCKS)
        slide(r, b - SEQRUN_BLOCKS + 1);
    off_t i = b - r->base;
    uint64_t bit = (uint64_t)1 << (i % 64);
    if (r->seen[i / 64] & bit)
        return false;
    r->seen[i / 64] |= bit;
    return true;
}

/* Of the run's remembered stretch of blocks, how many were read and how
 * many it has. Every request widens the span to cover itself, so no block
 * outside the span is ever marked: the marks in the window are the count. */
static void recent(const struct seqrun *r, int *read, int *blocks)
{
    off_t first = r->start >> SEQRUN_BLOCK_SHIFT, last = (r->end - 1) >> SEQRUN_BLOCK_SHIFT;
    if (first < r->base)
        first = r->base;
    *blocks = (int)(last - first + 1);
    *read = 0;
    for (int w = 0; w < WORDS; w++)
        *read += __builtin_popcountll(r->seen[w]);
}

bool seqrun_add(struct seqrun *r, off_t off, off_t end, bool *new_run)
{
    *new_run = off < r->start - SEQRUN_SLACK || off > r->end + SEQRUN_SLACK;
    if (*new_run) {
        r->start = off;
        r->end = end;
        r->read = 0;
        /* Room below the first request for requests served before it. */
        off_t b = (off >> SEQRUN_BLOCK_SHIFT) - (SEQRUN_SLACK >> SEQRUN_BLOCK_SHIFT);
        r->base = b > 0 ? b : 0;
        memset(r->seen, 0, sizeof(r->seen));
    } else {
        if (off < r->start)
            r->start = off;
        if (end > r->end)
            r->end = end;
    }
    if (end <= off)
        return false;
    for (off_t b = off >> SEQRUN_BLOCK_SHIFT; b <= (end - 1) >> SEQRUN_BLOCK_SHIFT; b++)
        if (see(r, b))
            r->read += (off_t)1 << SEQRUN_BLOCK_SHIFT;
    int read, blocks;
    recent(r, &read, &blocks);
    return r->read >= SEQRUN_TRIGGER && read * 4 >= blocks * 3;
}
