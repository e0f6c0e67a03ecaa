#include "config.h"

#include "vm/clonelist.h"

#include "meta/cloneid.h"
#include "util/log.h"
#include "util/statcache.h"
#include "util/monotime.h"
#include "store/vmlock.h"
#include "meta/xmlsafe.h"

#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What is kept per domain.xml: its lineage's source, "" for none (also
 * for an unreadable file: it names no source until it changes). */
struct lineage_value {
    char source[NAME_MAX_LEN + 1];
};

static struct statcache cache = STATCACHE_INIT(4096, 1u << 20, free);

static int copy_value(const void *value, void *out)
{
    memcpy(out, value, sizeof(struct lineage_value));
    return 0;
}

static void read_lineage(const struct store *s, int fd, struct lineage_value *v)
{
    char why[MSG_MAX];
    int err = 0;
    xmlDocPtr doc = xmlsafe_parse_fd(fd, "domain", &err, why, sizeof(why));
    struct clone_lineage l;
    (void)s;
    v->source[0] = '\0';
    if (doc && cloneid_read_lineage(doc, &l) == 0)
        snprintf(v->source, sizeof(v->source), "%s", l.source);
    if (doc)
        xmlFreeDoc(doc);
}

static int clonelist_source(const struct store *s, const char *vm, char *out, size_t outsz)
{
    char path[PATH_MAX], why[MSG_MAX];
    out[0] = '\0';
    if (store_vm_path(s, vm, "domain.xml", path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    struct stat st;
    int r = store_lstat(s, path, &st);
    if (r < 0 || !S_ISREG(st.st_mode))
        return r < 0 ? r : -ENOENT;
    struct lineage_value v;
    if (statcache_get(&cache, &st, copy_value, &v) != 0) {
        int fd = store_open_read(s, path, why, sizeof(why));
        if (fd < 0)
            return fd;
        /* Keyed on what the open file is, not what stat saw before. */
        if (fstat(fd, &st) < 0) {
            close(fd);
            return -errno;
        }
        read_lineage(s, fd, &v);
        close(fd);
        struct lineage_value *kept = malloc(sizeof(*kept));
        if (kept) {
            *kept = v;
            statcache_put(&cache, &st, kept, sizeof(*kept));
        }
    }
    return (size_t)snprintf(out, outsz, "%s", v.source) < outsz ? 0 : -ENAMETOOLONG;
}

bool clonelist_is_clone(const struct store *s, const char *vm, const char *clone)
{
    char src[NAME_MAX_LEN + 1];
    return clonelist_source(s, clone, src, sizeof(src)) == 0 && strcmp(src, vm) == 0;
}

/* ---- the store's lineages, scanned once for many listings ----
 *
 * Listing <vm>/clones reads every VM's lineage; a walk over the mount
 * (find, ls -lR, a backup) lists every VM's clones/, which made it cost
 * VMs x VMs stats. The lineages of the whole store are therefore kept
 * from one scan and used again while
 *   - this daemon changed nothing (vmlock_generation: a clone, a rename,
 *     `rm clones/N` end with a lock released), and
 *   - the store's directory is as it was (no VM made, removed or renamed
 *     by hand or by another daemon), and
 *   - the scan is less than CLONELIST_FRESH_MS old: a lineage edited in
 *     place by hand is seen within that time, as the kernel sees any
 *     change made outside the mount only once the attributes it keeps
 *     (fuse/node.h TIMEOUT, 1 s) expire. */
#define CLONELIST_FRESH_MS 1000

struct lineage_entry {
    char vm[NAME_MAX_LEN + 1];
    char source[NAME_MAX_LEN + 1];
};

struct lineages {
    struct lineage_entry *e;
    size_t n, cap;
    char root[PATH_MAX];
    unsigned long generation;
    struct stat dir;
    int64_t made_ms;
};

static struct lineages kept;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned long scans;

unsigned long clonelist_scans(void)
{
    return scans;
}

struct scan_ctx {
    const struct store *s;
    struct lineages *l;
};

static int scan_vm(const char *name, void *p)
{
    struct scan_ctx *c = p;
    char src[NAME_MAX_LEN + 1];
    if (clonelist_source(c->s, name, src, sizeof(src)) < 0 || !src[0] ||
        strlen(name) > NAME_MAX_LEN)
        return 0;
    if (c->l->n == c->l->cap) {
        size_t cap = c->l->cap ? 2 * c->l->cap : 64;
        struct lineage_entry *ne = realloc(c->l->e, cap * sizeof(*ne));
        if (!ne)
            return -ENOMEM;
        c->l->e = ne;
        c->l->cap = cap;
    }
    struct lineage_entry *e = &c->l->e[c->l->n++];
    strcpy(e->vm, name);
    strcpy(e->source, src);
    return 0;
}

static bool same_dir(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The clones of vm (names, one after another, each NUL-ended) into a
 * buffer of the caller's (free it), from the kept scan or a new one. */
static int clones_of(const struct store *s, const char *vm, char **out, size_t *outlen)
{
    struct stat dir;
    int r = store_lstat(s, s->root, &dir);
    if (r < 0)
        return r;
    /* Read before the scan: a change ending meanwhile makes it stale. */
    unsigned long gen = vmlock_generation();
    pthread_mutex_lock(&kept_lock);
    if (!kept.e || strcmp(kept.root, s->root) != 0 || kept.generation != gen ||
        !same_dir(&kept.dir, &dir) || now_ms() - kept.made_ms >= CLONELIST_FRESH_MS) {
        struct lineages l = { 0 };
        struct scan_ctx c = { s, &l };
        int64_t t = now_ms();
        scans++;
        r = store_list_vms(s, scan_vm, &c);
        if (r < 0 || !l.e) {
            free(l.e);
            l.e = calloc(1, sizeof(*l.e)); /* an empty scan is still one */
            l.n = 0;
            if (!l.e)
                r = -ENOMEM;
        }
        if (r < 0) {
            free(l.e);
            pthread_mutex_unlock(&kept_lock);
            return r;
        }
        free(kept.e);
        kept = l;
        snprintf(kept.root, sizeof(kept.root), "%s", s->root);
        kept.generation = gen;
        kept.dir = dir;
        kept.made_ms = t;
    }
    FILE *f = open_memstream(out, outlen);
    for (size_t i = 0; f && i < kept.n; i++)
        if (strcmp(kept.e[i].source, vm) == 0)
            fwrite(kept.e[i].vm, 1, strlen(kept.e[i].vm) + 1, f);
    pthread_mutex_unlock(&kept_lock);
    if (!f || fclose(f) != 0)
        return -ENOMEM;
    return 0;
}

int clonelist_each(const struct store *s, const char *vm, store_name_fn fn, void *ctx)
{
    char *names = NULL;
    size_t len = 0;
    int r = clones_of(s, vm, &names, &len);
    for (size_t at = 0; r == 0 && at < len; at += strlen(names + at) + 1) {
        /* Still a clone now (its own definition, one stat): the kept
         * scan may be up to CLONELIST_FRESH_MS old. */
        if (clonelist_is_clone(s, vm, names + at))
            r = fn(names + at, ctx);
    }
    free(names);
    return r;
}
