#include "config.h"

#include "util/statcache.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

struct statcache_entry {
    struct statcache_entry *next_in_bucket;
    struct statcache_entry *newer, *older;
    dev_t dev;
    ino_t ino;
    struct timespec mtim, ctim;
    off_t size;
    void *value;
    size_t cost;
};

static size_t bucket_of(dev_t dev, ino_t ino)
{
    uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
    return (size_t)(h >> 32) % STATCACHE_BUCKETS;
}

static bool same_version(const struct statcache_entry *e, const struct stat *st)
{
    return e->mtim.tv_sec == st->st_mtim.tv_sec && e->mtim.tv_nsec == st->st_mtim.tv_nsec &&
           e->ctim.tv_sec == st->st_ctim.tv_sec && e->ctim.tv_nsec == st->st_ctim.tv_nsec &&
           e->size == st->st_size;
}

static struct statcache_entry **slot_of(struct statcache *c, dev_t dev, ino_t ino)
{
    struct statcache_entry **p = &c->buckets[bucket_of(dev, ino)];
    while (*p && ((*p)->dev != dev || (*p)->ino != ino))
        p = &(*p)->next_in_bucket;
    return p;
}

static void lru_unlink(struct statcache *c, struct statcache_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(struct statcache *c, struct statcache_entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

/* Unlinks the entry *slot points at and frees it. */
static void drop(struct statcache *c, struct statcache_entry **slot)
{
    struct statcache_entry *e = *slot;
    *slot = e->next_in_bucket;
    lru_unlink(c, e);
    c->entries--;
    c->bytes -= e->cost;
    c->free_value(e->value);
    free(e);
}

int statcache_get(struct statcache *c, const struct stat *st, statcache_copy_fn copy, void *out)
{
    int r = -ENOENT;
    pthread_mutex_lock(&c->lock);
    struct statcache_entry **slot = slot_of(c, st->st_dev, st->st_ino);
    if (*slot && same_version(*slot, st)) {
        struct statcache_entry *e = *slot;
        lru_unlink(c, e);
        lru_push(c, e);
        r = copy(e->value, out);
        c->hits++;
    } else {
        /* A changed file's old value can never be used again. */
        if (*slot)
            drop(c, slot);
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

void statcache_put(struct statcache *c, const struct stat *st, void *value, size_t cost)
{
    cost += sizeof(struct statcache_entry);
    struct statcache_entry *e = cost <= c->max_bytes / 4 ? malloc(sizeof(*e)) : NULL;
    if (!e) {
        c->free_value(value);
        return;
    }
    *e = (struct statcache_entry){ .dev = st->st_dev,
                                   .ino = st->st_ino,
                                   .mtim = st->st_mtim,
                                   .ctim = st->st_ctim,
                                   .size = st->st_size,
                                   .value = value,
                                   .cost = cost };
    pthread_mutex_lock(&c->lock);
    struct statcache_entry **slot = slot_of(c, st->st_dev, st->st_ino);
    if (*slot)
        drop(c, slot);
    while (c->oldest && (c->entries + 1 > c->max_entries || c->bytes + cost > c->max_bytes)) {
        struct statcache_entry *old = c->oldest;
        drop(c, slot_of(c, old->dev, old->ino));
    }
    slot = &c->buckets[bucket_of(e->dev, e->ino)];
    e->next_in_bucket = *slot;
    *slot = e;
    lru_push(c, e);
    c->entries++;
    c->bytes += cost;
    pthread_mutex_unlock(&c->lock);
}

void statcache_clear(struct statcache *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->oldest) {
        struct statcache_entry *old = c->oldest;
        drop(c, slot_of(c, old->dev, old->ino));
    }
    c->hits = c->misses = 0;
    pthread_mutex_unlock(&c->lock);
}

void statcache_stats(struct statcache *c, unsigned long *hits, unsigned long *misses)
{
    pthread_mutex_lock(&c->lock);
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->lock);
}
