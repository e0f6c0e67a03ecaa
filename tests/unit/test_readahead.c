/* Unit tests for readahead: a sequential reader gets the file read ahead
 * of it, within bounds; a random reader, or one going over the same
 * blocks again, gets nothing; the number of streamers is capped; stopping
 * joins the thread and closes what it opened. Residency is read with
 * mincore on a file whose pages were dropped first. */
#include "check.h"
#include "readahead.h"

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

enum { MIB = 1 << 20, FILE_MIB = 128, READ = 128 << 10 };

static char path[] = "/var/tmp/vmstorefs-readahead-XXXXXX";
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

static void test_random_reader(int fd)
{
    struct readahead ra;
    readahead_init(&ra);
    const int offs[] = { 0, 50, 10, 90, 30, 70, 5, 120 };
    for (int i = 0; i < 8; i++)
        readahead_note(&ra, fd, (off_t)offs[i] * MIB, READ);
    /* The same blocks over and over: no new ground, no stream. */
    for (int i = 0; i < 200; i++)
        readahead_note(&ra, fd, 0, 64 << 10);
    CHECK(!readahead_streaming(&ra));
    readahead_stop(&ra);
    CHECK(resident(16, FILE_MIB) == 0);
}

static void test_sequential_reader(int fd)
{
    int fds_before = count_fds();
    struct readahead ra;
    readahead_init(&ra);
    read_seq(&ra, fd, 0, 2);
    CHECK(!readahead_streaming(&ra)); /* 2 MiB: not yet a stream */
    read_seq(&ra, fd, 2, 8);
    CHECK(readahead_streaming(&ra));
    /* Well past what the kernel's own readahead would fetch. */
    CHECK(wait_resident(16, 64, 90));
    /* Bounded: never more than READAHEAD_AHEAD (+ one chunk and the
     * kernel's window) past the reader at 8 MiB. */
    CHECK_INT(resident(112, FILE_MIB), 0);
    /* It follows the reader. */
    read_seq(&ra, fd, 8, 48);
    CHECK(wait_resident(100, 112, 90));
    readahead_stop(&ra);
    CHECK_INT(count_fds(), fds_before);
}

static void test_stream_cap(int fd)
{
    struct readahead ra[READAHEAD_MAX_STREAMS + 1];
    for (int i = 0; i <= READAHEAD_MAX_STREAMS; i++) {
        readahead_init(&ra[i]);
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
    test_random_reader(fd);
    CHECK(drop_cache(fd) == 0);
    test_sequential_reader(fd);
    CHECK(drop_cache(fd) == 0);
    test_stream_cap(fd);
    munmap(map, (size_t)FILE_MIB * MIB);
    close(fd);
    CHECK_DONE();
}
