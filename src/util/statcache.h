/* statcache: parsed metadata kept while the file it came from is unchanged.
 *
 * snapshot.xml is read on every stat of a snapshot directory, `current` and
 * `ls -l`; qcow2 headers on every open and every `current`. Results are kept
 * keyed by the file's identity and version: (st_dev, st_ino) find the entry,
 * and it is used only while st_mtim, st_ctim (both with nanoseconds) and
 * st_size are still what they were when it was read. A file replaced by
 * rename is another inode; one rewritten in place has a new mtime/ctime.
 *
 * Thread-safe (one mutex per cache; values are copied out under it, so a
 * caller never holds a pointer into the cache). Bounded: at most
 * max_entries entries and max_bytes of their declared cost, the least
 * recently used dropped first. FUSE-free. */
#ifndef VMSTOREFS_STATCACHE_H
#define VMSTOREFS_STATCACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#define STATCACHE_BUCKETS 1024

struct statcache_entry;

struct statcache {
    pthread_mutex_t lock;
    size_t max_entries, max_bytes;
    void (*free_value)(void *value);
    struct statcache_entry *buckets[STATCACHE_BUCKETS];
    struct statcache_entry *newest, *oldest; /* the LRU list */
    size_t entries, bytes;
    unsigned long hits, misses; /* for tests and measurements */
};

#define STATCACHE_INIT(max_entries_, max_bytes_, free_value_)                         \
    {                                                                                \
        .lock = PTHREAD_MUTEX_INITIALIZER, .max_entries = (max_entries_),            \
        .max_bytes = (max_bytes_), .free_value = (free_value_)                       \
    }

/* Copies the value kept for the file with these attributes into out with
 * copy (called under the lock) and returns copy's result (0 for a hit);
 * -ENOENT when nothing current is kept. */
typedef int (*statcache_copy_fn)(const void *value, void *out);
int statcache_get(struct statcache *c, const struct stat *st, statcache_copy_fn copy, void *out);

/* Keeps value (owned by the cache from now on, freed with free_value) for
 * the file with these attributes, replacing what was kept for the inode.
 * cost is the value's memory in bytes; a value costing more than a quarter
 * of max_bytes is freed at once, not kept. */
void statcache_put(struct statcache *c, const struct stat *st, void *value, size_t cost);

/* Drops everything and zeroes the counters (tests). */
void statcache_clear(struct statcache *c);
/* The counters: lookups answered, and lookups that found nothing current. */
void statcache_stats(struct statcache *c, unsigned long *hits, unsigned long *misses);

#endif
