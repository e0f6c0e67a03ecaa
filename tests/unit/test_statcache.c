/* Unit tests for statcache: a value is found only while the file's
 * identity and version are unchanged, the least recently used goes first
 * when a bound is reached, oversized values are not kept, and concurrent
 * use from threads is safe (run under the thread sanitizer or not). */
#include "config.h"

#include "check.h"
#include "util/statcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int frees;

static void free_int(void *v)
{
    __atomic_add_fetch(&frees, 1, __ATOMIC_SEQ_CST);
    free(v);
}

static int copy_int(const void *v, void *out)
{
    *(int *)out = *(const int *)v;
    return 0;
}

static int *boxed(int v)
{
    int *p = malloc(sizeof(*p));
    *p = v;
    return p;
}

static struct stat file(ino_t ino, time_t mtime, off_t size)
{
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_dev = 7;
    st.st_ino = ino;
    st.st_mtim.tv_sec = mtime;
    st.st_ctim.tv_sec = mtime;
    st.st_size = size;
    return st;
}

static int get(struct statcache *c, struct stat st)
{
    int v = -1;
    int r = statcache_get(c, &st, copy_int, &v);
    return r == 0 ? v : r;
}

static void test_versions(void)
{
    struct statcache c = STATCACHE_INIT(16, 1 << 20, free_int);
    struct stat a = file(1, 100, 10);
    CHECK_INT(get(&c, a), -ENOENT);
    statcache_put(&c, &a, boxed(42), sizeof(int));
    CHECK_INT(get(&c, a), 42);
    struct stat changed = a;
    changed.st_mtim.tv_nsec = 1; /* a rewrite within the same second */
    CHECK_INT(get(&c, changed), -ENOENT);
    CHECK_INT(get(&c, a), -ENOENT); /* the stale value was dropped */
    statcache_put(&c, &a, boxed(1), sizeof(int));
    changed = a;
    changed.st_size = 11;
    CHECK_INT(get(&c, changed), -ENOENT);
    statcache_put(&c, &a, boxed(2), sizeof(int));
    changed = a;
    changed.st_ctim.tv_nsec = 5; /* rewritten, then its mtime set back */
    CHECK_INT(get(&c, changed), -ENOENT);
    statcache_put(&c, &a, boxed(3), sizeof(int));
    changed = a;
    changed.st_dev = 8; /* the same inode number on another file system */
    CHECK_INT(get(&c, changed), -ENOENT);
    CHECK_INT(get(&c, a), 3);
    statcache_put(&c, &a, boxed(4), sizeof(int)); /* replaces */
    CHECK_INT(get(&c, a), 4);
    CHECK_INT(c.entries, 1);
    unsigned long h, m;
    statcache_stats(&c, &h, &m);
    CHECK(h >= 3 && m >= 5);
    statcache_clear(&c);
    CHECK_INT(c.entries, 0);
    CHECK_INT(c.bytes, 0);
}

static void test_bounds(void)
{
    frees = 0;
    struct statcache c = STATCACHE_INIT(3, 1 << 20, free_int);
    for (int i = 1; i <= 3; i++) {
        struct stat st = file((ino_t)i, 1, 1);
        statcache_put(&c, &st, boxed(i), sizeof(int));
    }
    CHECK_INT(get(&c, file(1, 1, 1)), 1); /* 1 is now the most recent */
    struct stat four = file(4, 1, 1);
    statcache_put(&c, &four, boxed(4), sizeof(int));
    CHECK_INT(c.entries, 3);
    CHECK_INT(get(&c, file(2, 1, 1)), -ENOENT); /* the least recent went */
    CHECK_INT(get(&c, file(1, 1, 1)), 1);
    CHECK_INT(get(&c, file(3, 1, 1)), 3);
    CHECK_INT(get(&c, file(4, 1, 1)), 4);
    CHECK_INT(frees, 1);
    statcache_clear(&c);
    CHECK_INT(frees, 4);

    /* bytes: a value over a quarter of the cap is not kept; the rest
     * push out the oldest until they fit */
    struct statcache b = STATCACHE_INIT(100, 4096, free_int);
    struct stat big = file(9, 1, 1);
    statcache_put(&b, &big, boxed(9), 2000);
    CHECK_INT(get(&b, big), -ENOENT);
    CHECK_INT(b.bytes, 0);
    for (int i = 1; i <= 20; i++) {
        struct stat st = file((ino_t)i, 1, 1);
        statcache_put(&b, &st, boxed(i), 500);
        CHECK(b.bytes <= 4096);
    }
    CHECK_INT(get(&b, file(20, 1, 1)), 20);
    CHECK_INT(get(&b, file(1, 1, 1)), -ENOENT);
    CHECK(b.entries < 8);
    statcache_clear(&b);
}

static struct statcache shared = STATCACHE_INIT(64, 1 << 20, free_int);

static void *hammer(void *arg)
{
    int seed = (int)(long)arg;
    for (int i = 0; i < 20000; i++) {
        struct stat st = file((ino_t)((i * 7 + seed) % 200), i % 3, 1);
        int v = get(&shared, st);
        if (v != -ENOENT && v != (int)st.st_ino * 10 + (int)st.st_mtim.tv_sec)
            __atomic_add_fetch(&check_failures, 1, __ATOMIC_SEQ_CST);
        if (v == -ENOENT)
            statcache_put(&shared, &st, boxed((int)st.st_ino * 10 + (int)st.st_mtim.tv_sec),
                          sizeof(int));
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        CHECK_INT(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(shared.entries <= 64);
    statcache_clear(&shared);
}

int main(void)
{
    test_versions();
    test_bounds();
    test_threads();
    CHECK_DONE();
}
