#include "config.h"

#include "vm/current.h"

#include "qemu/chain.h"
#include "util/log.h"
#include "util/names.h"
#include "store/vmlock.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

bool current_parse_backing(const char *backing, const char *dev, char *snap, size_t snapsz)
{
    static const char prefix[] = "../snapshots/";
    if (strncmp(backing, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *name = backing + sizeof(prefix) - 1;
    const char *slash = strchr(name, '/');
    if (!slash || (size_t)(slash - name) >= snapsz)
        return false;
    char file[DEV_MAX_LEN + sizeof(IMAGE_SUFFIX) + 1];
    if (snprintf(file, sizeof(file), "%s" IMAGE_SUFFIX, dev) >= (int)sizeof(file) ||
        strcmp(slash + 1, file) != 0)
        return false;
    memcpy(snap, name, (size_t)(slash - name));
    snap[slash - name] = '\0';
    return name_is_valid(snap);
}

struct current_ctx {
    const struct store *s;
    const char *vm;
    char best[NAME_MAX_LEN + 1];
    int64_t best_time;
};

/* The snapshot one active image grows from, or "": its whole chain must
 * pass chain_walk (logged once when it does not); the first image below
 * the active one that is a snapshot's (snapshots/<S>/<dev>.qcow2) names
 * S. Hidden images (snapshots/.hidden-*, the images of deleted snapshots
 * that are still needed) are passed over: the VM then grows from the
 * nearest visible ancestor, as libvirt makes a deleted current snapshot's
 * parent current. other_below (other not ""): whether an image of
 * snapshot other lies below snap's in this chain, which makes snap the
 * later one whatever their creation times say (they have one-second
 * steps: two takes in one second tie). */
static void backing_snapshot(const struct store *s, const char *vm, const char *dev, char *snap,
                             size_t snapsz, const char *other, bool *other_below)
{
    char path[PATH_MAX], msg[MSG_MAX], prefix[PATH_MAX], file[DEV_MAX_LEN + 8];
    snap[0] = '\0';
    *other_below = false;
    if (store_disk_path(s, vm, dev, path, sizeof(path)) < 0 ||
        store_vm_path(s, vm, "snapshots/", prefix, sizeof(prefix)) < 0)
        return;
    snprintf(file, sizeof(file), "/%s" IMAGE_SUFFIX, dev);
    struct chain c;
    int r = chain_walk(s, path, &c, msg, sizeof(msg));
    if (r < 0) {
        log_once(LOG_WARNING, path, msg, "image %s is not served: %s", path, msg);
        return;
    }
    size_t pl = strlen(prefix), ol = strlen(other);
    size_t k;
    for (k = 1; k < c.n; k++) {
        const char *p = c.links[k].path;
        const char *slash = strncmp(p, prefix, pl) == 0 ? strchr(p + pl, '/') : NULL;
        if (!slash || strcmp(slash, file) != 0 || (size_t)(slash - p - pl) >= snapsz)
            break;
        snprintf(snap, snapsz, "%.*s", (int)(slash - p - pl), p + pl);
        if (name_is_valid(snap) && store_snap_exists(s, vm, snap))
            break;
        if (!name_is_hidden_dir(snap)) {
            snap[0] = '\0';
            break;
        }
        snap[0] = '\0';
    }
    for (k++; snap[0] && ol && k < c.n && !*other_below; k++) {
        const char *p = c.links[k].path;
        *other_below = strncmp(p, prefix, pl) == 0 && strncmp(p + pl, other, ol) == 0 &&
                       p[pl + ol] == '/';
    }
    chain_free(&c);
}

static int current_visit(const char *dev, void *p)
{
    struct current_ctx *c = p;
    char snap[NAME_MAX_LEN + 1];
    bool best_below;
    backing_snapshot(c->s, c->vm, dev, snap, sizeof(snap), c->best, &best_below);
    /* Disks of one VM mostly grow from the same snapshot: read its
     * snapshot.xml once, not once per disk. */
    if (!snap[0] || strcmp(snap, c->best) == 0)
        return 0;
    int64_t t = 0;
    store_snap_ctime(c->s, c->vm, snap, &t);
    if (!c->best[0] || t > c->best_time || (t == c->best_time && best_below)) {
        strcpy(c->best, snap);
        c->best_time = t;
    }
    return 0;
}

/* ---- the cache ----
 *
 * Deriving `current` walks every disk's chain (an open per link), and
 * the kernel asks for it on every stat and listing of a VM: a walk over
 * the mount (find, ls -lR, a backup) paid a chain walk per disk for
 * each of a VM's entries. So the answer is kept per VM with a key that
 * changes whenever it may:
 *   - every change this daemon makes ends with a lock released
 *     (vmlock_generation): no answer from before is used after one;
 *   - a change made elsewhere (by hand, another daemon) renames, creates
 *     or removes something in disks/ or snapshots/ (a take, a revert, a
 *     delete, a rename all do), or rewrites an active image's header: the
 *     key holds those two directories' and every active image's inode,
 *     mtime and ctime (and the images' sizes). A change within the
 *     clock's tick of an earlier one would leave the mtime as it was,
 *     so an answer whose key holds a time less than CURRENT_SETTLE_S old
 *     is not kept.
 * A header of a frozen image rewritten by hand, in place, and no entry
 * of snapshots/ changed, is not seen until one is: `current` may then
 * name a snapshot whose chain is refused, which opening it still checks. */
#define CURRENT_CACHE_SLOTS 1024
#define CURRENT_KEY_MAX 18 /* disks/, snapshots/, 16 active images */
#define CURRENT_SETTLE_S 2

struct stat_key {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct current_slot {
    char vm[NAME_MAX_LEN + 1];
    unsigned long generation;
    size_t nkey;
    struct stat_key key[CURRENT_KEY_MAX];
    int result; /* 0 or -ENOENT */
    char snap[NAME_MAX_LEN + 1];
};

static struct current_slot *slots;
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned long hits;

unsigned long current_cache_hits(void)
{
    return hits;
}

static void key_of(const struct stat *st, struct stat_key *k)
{
    memset(k, 0, sizeof(*k));
    k->dev = st->st_dev;
    k->ino = st->st_ino;
    k->size = S_ISREG(st->st_mode) ? st->st_size : 0;
    k->mtime = st->st_mtim;
    k->ctime = st->st_ctim;
}

struct key_ctx {
    const struct store *s;
    const char *vm;
    struct stat_key *key;
    size_t n;
    bool full;
};

static int key_disk(const char *dev, void *p)
{
    struct key_ctx *k = p;
    char path[PATH_MAX];
    struct stat st;
    if (k->n == CURRENT_KEY_MAX) {
        k->full = true;
        return 1;
    }
    if (store_disk_path(k->s, k->vm, dev, path, sizeof(path)) < 0 ||
        store_lstat(k->s, path, &st) < 0) {
        k->full = true; /* gone meanwhile: not a key to keep */
        return 1;
    }
    key_of(&st, &k->key[k->n++]);
    return 0;
}

/* The key of vm now (n entries), false when there is none to keep. */
static bool vm_key(const struct store *s, const char *vm, struct stat_key *key, size_t *n)
{
    static const char *const dirs[] = { "disks", "snapshots" };
    struct key_ctx k = { s, vm, key, 0, false };
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_MAX];
        struct stat st;
        if (store_vm_path(s, vm, dirs[i], path, sizeof(path)) < 0 ||
            store_lstat(s, path, &st) < 0)
            return false;
        key_of(&st, &key[k.n++]);
    }
    if (store_list_disks(s, vm, key_disk, &k) < 0 || k.full)
        return false;
    *n = k.n;
    return true;
}

static bool settled(const struct stat_key *key, size_t n)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (size_t i = 0; i < n; i++)
        if (now.tv_sec - key[i].mtime.tv_sec < CURRENT_SETTLE_S ||
            now.tv_sec - key[i].ctime.tv_sec < CURRENT_SETTLE_S)
            return false;
    return true;
}

static struct current_slot *slot_of(const char *vm)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = vm; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &slots[h % CURRENT_CACHE_SLOTS];
}

static bool cached(const char *vm, unsigned long gen, const struct stat_key *key, size_t n,
                   int *result, char *snap)
{
    bool hit = false;
    pthread_mutex_lock(&slots_lock);
    struct current_slot *sl = slots ? slot_of(vm) : NULL;
    if (sl && sl->generation == gen && strcmp(sl->vm, vm) == 0 && sl->nkey == n &&
        memcmp(sl->key, key, n * sizeof(*key)) == 0) {
        *result = sl->result;
        strcpy(snap, sl->snap);
        hit = true;
    }
    pthread_mutex_unlock(&slots_lock);
    if (hit)
        hits++;
    return hit;
}

static void keep(const char *vm, unsigned long gen, const struct stat_key *key, size_t n,
                 int result, const char *snap)
{
    if (strlen(vm) > NAME_MAX_LEN || !settled(key, n))
        return;
    pthread_mutex_lock(&slots_lock);
    if (!slots)
        slots = calloc(CURRENT_CACHE_SLOTS, sizeof(*slots));
    if (slots) {
        struct current_slot *sl = slot_of(vm);
        strcpy(sl->vm, vm);
        sl->generation = gen;
        sl->nkey = n;
        memcpy(sl->key, key, n * sizeof(*key));
        sl->result = result;
        strcpy(sl->snap, snap);
    }
    pthread_mutex_unlock(&slots_lock);
}

int current_snapshot(const struct store *s, const char *vm, char *out, size_t outsz)
{
    struct current_ctx c = { .s = s, .vm = vm };
    struct stat_key key[CURRENT_KEY_MAX];
    size_t n = 0;
    /* Read before the key and the walk: a change that ends meanwhile
     * makes what is kept below stale on arrival. */
    unsigned long gen = vmlock_generation();
    bool keyed = vm_key(s, vm, key, &n);
    int r;
    if (!keyed || !cached(vm, gen, key, n, &r, c.best)) {
        if ((r = store_list_disks(s, vm, current_visit, &c)) < 0)
            return r;
        r = c.best[0] ? 0 : -ENOENT;
        if (keyed)
            keep(vm, gen, key, n, r, c.best);
    }
    if (r < 0)
        return r;
    if (strlen(c.best) >= outsz)
        return -ENAMETOOLONG;
    strcpy(out, c.best);
    return 0;
}
