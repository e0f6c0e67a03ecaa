/* Unit tests for seqrun: which request patterns form a sequential run.
 * Plain and out-of-order sequential readers do, after SEQRUN_TRIGGER
 * bytes; skipping, rereading and random readers do not; a sparse past
 * is forgotten after SEQRUN_WINDOW of dense reading; jumps start runs. */
#include "config.h"

#include "check.h"
#include "datapath/seqrun.h"

#include <stdint.h>

enum { KIB = 1 << 10, MIB = 1 << 20 };

static bool add(struct seqrun *r, off_t off, off_t len)
{
    bool new_run;
    return seqrun_add(r, off, off + len, &new_run);
}

/* Reads [from, to) in LEN requests; returns the offset at which the run
 * first counted as sequential (-1 if never) and whether it stayed so. */
static off_t read_seq(struct seqrun *r, off_t from, off_t to, off_t len, bool *stayed)
{
    off_t first = -1;
    *stayed = true;
    for (off_t off = from; off < to; off += len) {
        bool seq = add(r, off, len);
        if (seq && first < 0)
            first = off;
        if (!seq && first >= 0)
            *stayed = false;
    }
    return first;
}

static void test_sequential(void)
{
    struct seqrun r;
    seqrun_init(&r);
    bool new_run, stayed;
    CHECK(!seqrun_add(&r, 0, 128 * KIB, &new_run));
    CHECK(new_run);
    CHECK(!seqrun_add(&r, 128 * KIB, 256 * KIB, &new_run));
    CHECK(!new_run);
    off_t first = read_seq(&r, 256 * KIB, 100 * MIB, 128 * KIB, &stayed);
    CHECK_INT(first, SEQRUN_TRIGGER - 128 * KIB); /* the request that completes 4 MiB */
    CHECK(stayed); /* also after the remembered blocks slide (> 32 MiB) */
    CHECK_INT(r.end, 100 * MIB);
    CHECK_INT(r.read, 100 * MIB);
    /* Reading it all again adds nothing. */
    read_seq(&r, 0, 100 * MIB, MIB, &stayed);
    CHECK_INT(r.read, 100 * MIB);
}

static void test_out_of_order(void)
{
    struct seqrun r;
    seqrun_init(&r);
    bool seq = false;
    /* 4 MiB direct reads split in 1 MiB requests, served last first. */
    for (off_t batch = 0; batch < 64; batch += 4)
        for (off_t i = 3; i >= 0; i--)
            seq = add(&r, (batch + i) * MIB, MIB);
    CHECK(seq);
    CHECK_INT(r.read, 64 * MIB);
}

static void test_not_sequential(void)
{
    struct seqrun r;
    bool seq = false;
    /* Skipping forward: 64 KiB of every 1.5 MiB. */
    seqrun_init(&r);
    for (off_t off = 0; off < 160 * MIB; off += 3 * MIB / 2)
        seq |= add(&r, off, 64 * KIB);
    CHECK(!seq);
    /* The same blocks over and over. */
    seqrun_init(&r);
    for (int i = 0; i < 1000; i++)
        seq |= add(&r, (i % 4) * 64 * KIB, 64 * KIB);
    CHECK(!seq);
    CHECK_INT(r.read, 256 * KIB);
    /* Random 64 KiB reads over 1 GiB (a guest's random I/O). */
    seqrun_init(&r);
    uint32_t x = 12345;
    for (int i = 0; i < 4000; i++) {
        x = x * 1103515245 + 12345;
        seq |= add(&r, (off_t)(x % (1 << 14)) * 64 * KIB, 64 * KIB);
    }
    CHECK(!seq);
}

static void test_sparse_past_forgotten(void)
{
    struct seqrun r;
    seqrun_init(&r);
    for (off_t off = 0; off < 160 * MIB; off += 3 * MIB / 2)
        add(&r, off, 64 * KIB);
    bool stayed;
    off_t first = read_seq(&r, 160 * MIB, 260 * MIB, 128 * KIB, &stayed);
    CHECK(first >= 0 && first < 160 * MIB + SEQRUN_WINDOW);
    CHECK(stayed);
}

static void test_jumps(void)
{
    struct seqrun r;
    seqrun_init(&r);
    bool new_run, stayed;
    read_seq(&r, 0, 8 * MIB, 128 * KIB, &stayed);
    /* Within the slack: the same run. */
    seqrun_add(&r, 8 * MIB + SEQRUN_SLACK - MIB, 8 * MIB + SEQRUN_SLACK, &new_run);
    CHECK(!new_run);
    CHECK(!seqrun_add(&r, 500 * MIB, 500 * MIB + 128 * KIB, &new_run));
    CHECK(new_run);
    CHECK_INT(r.read, 128 * KIB);
    CHECK(!seqrun_add(&r, 0, 128 * KIB, &new_run)); /* back to the start */
    CHECK(new_run);
    CHECK(read_seq(&r, 128 * KIB, 8 * MIB, 128 * KIB, &stayed) >= 0);
}

int main(void)
{
    test_sequential();
    test_out_of_order();
    test_not_sequential();
    test_sparse_past_forgotten();
    test_jumps();
    CHECK_DONE();
}
