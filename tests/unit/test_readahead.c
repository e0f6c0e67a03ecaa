/* Unit tests for readahead: a sequential reader gets the file read ahead
 * of it, within bounds, also when its requests come out of order; readers
 * that jump, skip or reread get nothing; an idle or finished streamer
 * ends and a later run starts another; the number of streamers is
 * capped; stopping joins the thread and closes what it opened. Residency
 * is read with mincore on a file whose pages were dropped first. */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "datapath/readahead.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { MIB = 1 << 20, FILE_MIB = 160, READ = 128 << 10 };

static char path[TEST_TMP_MAX];
static unsigned char *map;
static long page;

/* Percent of [from, to) MiB of the file in the page cache. */
static int resident(int from, int to)
{
    size_t n = (size_t)(to - from) * MIB / (size_t)page;
    unsigned char *vec = malloc(n);
    if (!vec || mincore(map + (size_t)from * MIB, n * (size_t)page, vec) < 0) {
        free(vec);
        return -1;
    }
    size_t in = 0;
    for (size_t i = 0; i < n; i++)
        in += vec[i] & 1;
    free(vec);
    return (int)(in * 100 / n);
}

/* Waits up to 10 s for [from, to) to be at least PCT% resident. */
/* Waits up to 10 s for the streamer to have counted `least` bytes since
 * `before`: its count follows its reads, which the page cache shows
 * first (on a loaded machine, visibly later). */
static bool wait_streamed(unsigned long long before, unsigned long long least)
{
    for (int i = 0; i < 1000; i++) {
        if (readahead_bytes_streamed() - before >= least)
            return true;
        nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
    }
    return false;
}

static bool wait_resident(int from, int to, int pct)
{
    for (int i = 0; i < 1000; i++) {
        if (resident(from, to) >= pct)
            return true;
        nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
    }
    return false;
}

static int drop_cache(int fd)
{
    return fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0 ? 0 : -1;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A reader of [from, to) MiB in READ-sized requests. */
static void read_seq(struct readahead *ra, int fd, off_t from, off_t to)
{
    for (off_t off = from * MIB; off < to * MIB; off += READ)
        readahead_note(ra, fd, off, READ);
}

/* Waits up to 10 s for the page cache to stop growing (0.3 s steady). */
static void wait_steady(void)
{
    int last = -1, same = 0;
    for (int i = 0; i < 1000 && same < 30; i++) {
        int now = resident(0, FILE_MIB);
        same = now == last ? same + 1 : 0;
        last = now;
        nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
    }
}

/* Waits up to 10 s for the streamer to have ended by itself. */
static bool wait_not_streaming(struct readahead *ra)
{
    for (int i = 0; i < 1000; i++) {
        if (!readahead_streaming(ra))
            return true;
        nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
    }
    return false;
}

static void test_not_streams(int fd)
{
    struct readahead ra;
    readahead_init(&ra, true);
    /* Jumping about. */
    const int offs[] = { 0, 50, 10, 90, 30, 70, 5, 120 };
    for (int i = 0; i < 8; i++)
        readahead_note(&ra, fd, (off_t)offs[i] * MIB, READ);
    /* The same blocks over and over: no new ground. */
    for (int i = 0; i < 200; i++)
        readahead_note(&ra, fd, 0, 64 << 10);
    /* Skipping forward: 64 KiB of every 1.5 MiB, over the whole file. */
    for (off_t off = 0; off + (64 << 10) < (off_t)FILE_MIB * MIB; off += 3 * MIB / 2)
        readahead_note(&ra, fd, off, 64 << 10);
    CHECK(!readahead_streaming(&ra));
    readahead_stop(&ra);

    /* Disabled (an O_DIRECT store file): not even a sequential reader. */
    readahead_init(&ra, false);
    read_seq(&ra, fd, 0, 16);
    CHECK(!readahead_streaming(&ra));
    readahead_stop(&ra);
    CHECK_INT(resident(0, FILE_MIB), 0);
}

static void test_sequential_reader(int fd)
{
    int fds_before = count_fds();
    struct readahead ra;
    readahead_init(&ra, true);
    read_seq(&ra, fd, 0, 2);
    CHECK(!readahead_streaming(&ra)); /* 2 MiB: not yet a stream */
    read_seq(&ra, fd, 2, 16);
    CHECK(readahead_streaming(&ra));
    /* 4 x 16 MiB read: 64 MiB ahead, past what the kernel would fetch. */
    CHECK(wait_resident(24, 72, 90));
    /* ... and no further: the reader is at 16 MiB. */
    wait_steady();
    CHECK_INT(resident(112, FILE_MIB), 0);
    /* It follows the reader. */
    read_seq(&ra, fd, 16, 48);
    CHECK(wait_resident(100, 112, 90));
    /* Without progress, even while the reader rereads what it has, it
     * ends by itself; and comes back with progress. */
    bool ended = false;
    for (int i = 0; i < 1000 && !ended; i++) {
        read_seq(&ra, fd, 40, 48);
        ended = !readahead_streaming(&ra);
        nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
    }
    CHECK(ended);
    read_seq(&ra, fd, 48, 50);
    CHECK(readahead_streaming(&ra));
    readahead_stop(&ra);
    CHECK_INT(count_fds(), fds_before);
}

static void test_out_of_order(int fd)
{
    struct readahead ra;
    readahead_init(&ra, true);
    /* Batches of four 1 MiB requests served last first, as concurrent
     * FUSE threads may (libfuse splits 4 MiB direct reads). */
    for (off_t batch = 0; batch < 16; batch += 4)
        for (off_t i = 3; i >= 0; i--)
            readahead_note(&ra, fd, (batch + i) * MIB, MIB);
    CHECK(readahead_streaming(&ra));
    readahead_stop(&ra);
}

static void test_end_of_file(int fd)
{
    struct readahead ra;
    readahead_init(&ra, true);
    read_seq(&ra, fd, FILE_MIB - 40, FILE_MIB - 24);
    CHECK(wait_not_streaming(&ra)); /* 64 MiB ahead: it reached the end */
    /* The rest of the file: nothing left to read ahead, no new threads. */
    unsigned long before = readahead_threads_started();
    read_seq(&ra, fd, FILE_MIB - 24, FILE_MIB);
    CHECK_INT(readahead_threads_started(), before);
    /* Back to the start: a new run, a new streamer. */
    read_seq(&ra, fd, 0, 8);
    CHECK(readahead_streaming(&ra));
    CHECK_INT(readahead_threads_started(), before + 1);
    CHECK(wait_resident(16, 40, 90));
    readahead_stop(&ra);
}

/* What is in the page cache already is skipped, not read again. */
static void test_cached_skipped(int fd)
{
    /* Exactly [0, 96) MiB: a plain read would also read ahead past it. */
    for (off_t off = 0; off < 96 * MIB; off += READ) /* the kernel caps each call */
        CHECK(posix_fadvise(fd, off, READ, POSIX_FADV_WILLNEED) == 0);
    CHECK(wait_resident(0, 96, 100));
    CHECK_INT(resident(96, FILE_MIB), 0);
    unsigned long long before = readahead_bytes_streamed();
    struct readahead ra;
    readahead_init(&ra, true);
    read_seq(&ra, fd, 0, 16); /* streams to 80 MiB, all cached */
    CHECK(readahead_streaming(&ra));
    wait_steady();
    usleep(200 * 1000);
    printf("streamed %llu bytes over a cached range\n", readahead_bytes_streamed() - before);
    CHECK(readahead_bytes_streamed() - before < READAHEAD_CHUNK);
    /* Past what is cached it reads again. */
    read_seq(&ra, fd, 16, 48);
    CHECK(wait_resident(100, 112, 90));
    CHECK(wait_streamed(before, 8 * MIB));
    readahead_stop(&ra);
}

static void test_stream_cap(int fd)
{
    struct readahead ra[READAHEAD_MAX_STREAMS + 1];
    for (int i = 0; i <= READAHEAD_MAX_STREAMS; i++) {
        readahead_init(&ra[i], true);
        read_seq(&ra[i], fd, 0, 8);
    }
    for (int i = 0; i < READAHEAD_MAX_STREAMS; i++)
        CHECK(readahead_streaming(&ra[i]));
    CHECK(!readahead_streaming(&ra[READAHEAD_MAX_STREAMS]));
    /* A slot freed is taken by the next read of the waiting reader. */
    readahead_stop(&ra[0]);
    read_seq(&ra[READAHEAD_MAX_STREAMS], fd, 8, 9);
    CHECK(readahead_streaming(&ra[READAHEAD_MAX_STREAMS]));
    for (int i = 1; i <= READAHEAD_MAX_STREAMS; i++)
        readahead_stop(&ra[i]);
}

int main(void)
{
    page = sysconf(_SC_PAGESIZE);
    /* /var/tmp by default, not /tmp: the page-cache checks need a file
     * on a disk, and /tmp is often tmpfs. */
    snprintf(path, sizeof(path), "%s/vmstorefs-readahead-XXXXXX", test_tmpdir_or("/var/tmp"));
    int fd = mkstemp(path);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    unlink(path);
    char *buf = malloc(MIB);
    CHECK(buf != NULL);
    if (!buf)
        CHECK_DONE();
    memset(buf, 0x5a, MIB);
    for (int i = 0; i < FILE_MIB; i++)
        CHECK(pwrite(fd, buf, MIB, (off_t)i * MIB) == MIB);
    free(buf);
    map = mmap(NULL, (size_t)FILE_MIB * MIB, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(map != MAP_FAILED);
    if (map == MAP_FAILED || drop_cache(fd) < 0)
        CHECK_DONE();
    if (resident(0, FILE_MIB) != 0) {
        printf("SKIP: the page cache of %s cannot be dropped (tmpfs?)\n", path);
        return 77;
    }
    test_not_streams(fd);
    CHECK(drop_cache(fd) == 0);
    test_sequential_reader(fd);
    test_out_of_order(fd);
    CHECK(drop_cache(fd) == 0);
    test_end_of_file(fd);
    CHECK(drop_cache(fd) == 0);
    test_cached_skipped(fd);
    test_stream_cap(fd);
    munmap(map, (size_t)FILE_MIB * MIB);
    close(fd);
    CHECK_DONE();
}
