#include "config.h"

#include "fuse/nodetable.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct handle_ref {
    void *handle;
    bool first;
    struct handle_ref *next;
};

struct node {
    uint64_t id;
    uint64_t nlookup; /* the kernel's references (FORGET gives them back) */
    struct node_ident ident;
    bool bound; /* parent and name are set, and the node is in the name hash */
    struct node *parent; /* holds one of parent->children */
    char *name;
    unsigned children; /* bound nodes naming this one as their parent */
    struct handle_ref *handles;
    struct node *id_next, *name_next;
};

struct nodetable {
    pthread_mutex_t mu;
    uint64_t next_id;
    size_t count;
    size_t nbuckets; /* a power of two; both hashes have as many */
    struct node **by_id, **by_name;
    struct node root;
};

void node_ident_of(const struct stat *st, struct node_ident *id)
{
    id->type = st->st_mode & S_IFMT;
    /* Directories and links are functions of their path (vpath.h): a
     * VM directory is the same VM whatever its store inode. Files are
     * the bytes of one store file, and those get replaced. */
    id->dev = S_ISREG(st->st_mode) ? st->st_dev : 0;
    id->ino = S_ISREG(st->st_mode) ? st->st_ino : 0;
}

bool node_ident_same(const struct node_ident *a, const struct node_ident *b)
{
    return a->type == b->type && a->dev == b->dev && a->ino == b->ino;
}

static size_t id_slot(const struct nodetable *t, uint64_t id)
{
    return (size_t)(id * 0x9E3779B97F4A7C15ull >> 17) & (t->nbuckets - 1);
}

static size_t name_slot(const struct nodetable *t, uint64_t parent, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull ^ parent;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return (size_t)(h ^ h >> 29) & (t->nbuckets - 1);
}

static struct node *get(struct nodetable *t, uint64_t id)
{
    if (id == NODE_ROOT)
        return &t->root;
    for (struct node *n = t->by_id[id_slot(t, id)]; n; n = n->id_next)
        if (n->id == id)
            return n;
    return NULL;
}

static struct node *child(struct nodetable *t, const struct node *parent, const char *name)
{
    for (struct node *n = t->by_name[name_slot(t, parent->id, name)]; n; n = n->name_next)
        if (n->parent == parent && strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static void unlink_from(struct node **slot, struct node *n, bool by_id)
{
    for (; *slot; slot = by_id ? &(*slot)->id_next : &(*slot)->name_next) {
        if (*slot == n) {
            *slot = by_id ? n->id_next : n->name_next;
            return;
        }
    }
}

/* Doubling keeps chains short for a listing of thousands of snapshots;
 * a failed allocation only leaves them longer. */
static void grow(struct nodetable *t)
{
    size_t nb = t->nbuckets * 2;
    struct node **ids = calloc(nb, sizeof(*ids)), **names = calloc(nb, sizeof(*names));
    if (!ids || !names) {
        free(ids);
        free(names);
        return;
    }
    struct node **old_ids = t->by_id, **old_names = t->by_name;
    size_t old_nb = t->nbuckets;
    t->by_id = ids;
    t->by_name = names;
    t->nbuckets = nb;
    for (size_t i = 0; i < old_nb; i++) {
        for (struct node *n = old_ids[i], *next; n; n = next) {
            next = n->id_next;
            size_t s = id_slot(t, n->id);
            n->id_next = ids[s];
            ids[s] = n;
        }
        for (struct node *n = old_names[i], *next; n; n = next) {
            next = n->name_next;
            size_t s = name_slot(t, n->parent->id, n->name);
            n->name_next = names[s];
            names[s] = n;
        }
    }
    free(old_ids);
    free(old_names);
}

static void maybe_free(struct nodetable *t, struct node *n);

static void unbind(struct nodetable *t, struct node *n)
{
    if (!n->bound)
        return;
    unlink_from(&t->by_name[name_slot(t, n->parent->id, n->name)], n, false);
    struct node *parent = n->parent;
    free(n->name);
    n->name = NULL;
    n->parent = NULL;
    n->bound = false;
    parent->children--;
    maybe_free(t, parent);
}

/* NAME (owned, already allocated) in PARENT becomes N's name. The new
 * parent is referenced before the old one is let go, so moving within
 * one directory never frees it. */
static void bind(struct nodetable *t, struct node *n, struct node *parent, char *name)
{
    parent->children++;
    unbind(t, n);
    n->parent = parent;
    n->name = name;
    n->bound = true;
    size_t s = name_slot(t, parent->id, name);
    n->name_next = t->by_name[s];
    t->by_name[s] = n;
}

/* A node goes when nothing can name it any more: the kernel forgot it, no
 * handle is open on it and no bound node has it as its directory. */
static void maybe_free(struct nodetable *t, struct node *n)
{
    if (n == &t->root || n->nlookup || n->handles || n->children)
        return;
    unbind(t, n);
    unlink_from(&t->by_id[id_slot(t, n->id)], n, true);
    t->count--;
    free(n);
}

struct nodetable *nodetable_new(void)
{
    struct nodetable *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->nbuckets = 1024;
    t->by_id = calloc(t->nbuckets, sizeof(*t->by_id));
    t->by_name = calloc(t->nbuckets, sizeof(*t->by_name));
    if (!t->by_id || !t->by_name) {
        free(t->by_id);
        free(t->by_name);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->next_id = NODE_ROOT + 1;
    t->root.id = NODE_ROOT;
    t->root.ident.type = S_IFDIR;
    t->root.bound = true;
    return t;
}

void nodetable_free(struct nodetable *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (struct node *n = t->by_id[i], *next; n; n = next) {
            next = n->id_next;
            for (struct handle_ref *h = n->handles, *hn; h; h = hn) {
                hn = h->next;
                free(h);
            }
            free(n->name);
            free(n);
        }
    }
    free(t->by_id);
    free(t->by_name);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* A directory requests may be made in: known, and still where it was. */
static int live_dir(struct nodetable *t, uint64_t id, struct node **out)
{
    struct node *p = get(t, id);
    if (!p)
        return -ENOENT;
    if (!p->bound)
        return -ESTALE;
    *out = p;
    return 0;
}

int nodetable_lookup(struct nodetable *t, uint64_t parent, const char *name,
                     const struct node_ident *id, uint64_t *out)
{
    pthread_mutex_lock(&t->mu);
    struct node *p, *n = NULL;
    int r = live_dir(t, parent, &p);
    if (r == 0 && (n = child(t, p, name)) != NULL && node_ident_same(&n->ident, id)) {
        n->nlookup++;
        *out = n->id;
        goto out;
    }
    if (r < 0)
        goto out;
    char *nm = strdup(name);
    struct node *fresh = calloc(1, sizeof(*fresh));
    if (!nm || !fresh) {
        free(nm);
        free(fresh);
        r = -ENOMEM;
        goto out;
    }
    if (n) {
        p->children++; /* p stays while its child leaves */
        unbind(t, n); /* displaced: another file stands at its name now */
        maybe_free(t, n);
        p->children--;
    }
    if (t->count >= t->nbuckets * 2)
        grow(t);
    fresh->id = t->next_id++;
    fresh->nlookup = 1;
    fresh->ident = *id;
    size_t s = id_slot(t, fresh->id);
    fresh->id_next = t->by_id[s];
    t->by_id[s] = fresh;
    t->count++;
    bind(t, fresh, p, nm);
    *out = fresh->id;
out:
    pthread_mutex_unlock(&t->mu);
    return r;
}

void nodetable_forget(struct nodetable *t, uint64_t id, uint64_t n)
{
    pthread_mutex_lock(&t->mu);
    struct node *node = get(t, id);
    if (node && node != &t->root) {
        node->nlookup = n < node->nlookup ? node->nlookup - n : 0;
        maybe_free(t, node);
    }
    pthread_mutex_unlock(&t->mu);
}

static int path_locked(struct nodetable *t, uint64_t id, char *buf, size_t size)
{
    struct node *n = get(t, id);
    if (!n)
        return -ENOENT;
    if (size < 2)
        return -ENAMETOOLONG;
    /* Built from the end of the buffer towards its start, then moved. */
    size_t pos = size - 1;
    buf[pos] = '\0';
    for (; n != &t->root; n = n->parent) {
        if (!n->bound)
            return -ESTALE;
        size_t len = strlen(n->name);
        if (len + 1 > pos)
            return -ENAMETOOLONG;
        pos -= len;
        memcpy(buf + pos, n->name, len);
        buf[--pos] = '/';
    }
    if (pos == size - 1)
        buf[--pos] = '/';
    memmove(buf, buf + pos, size - pos);
    return 0;
}

int nodetable_path(struct nodetable *t, uint64_t id, char *buf, size_t size)
{
    pthread_mutex_lock(&t->mu);
    int r = path_locked(t, id, buf, size);
    pthread_mutex_unlock(&t->mu);
    return r;
}

int nodetable_child_path(struct nodetable *t, uint64_t parent, const char *name, char *buf,
                         size_t size)
{
    int r = nodetable_path(t, parent, buf, size);
    if (r < 0)
        return r;
    size_t len = strlen(buf), add = strlen(name);
    bool slash = strcmp(buf, "/") != 0;
    if (len + slash + add + 1 > size)
        return -ENAMETOOLONG;
    if (slash)
        buf[len++] = '/';
    memcpy(buf + len, name, add + 1);
    return 0;
}

bool nodetable_confirm(struct nodetable *t, uint64_t id, const struct node_ident *now)
{
    pthread_mutex_lock(&t->mu);
    struct node *n = get(t, id);
    bool same = n && (n == &t->root || node_ident_same(&n->ident, now));
    if (n && !same)
        unbind(t, n);
    pthread_mutex_unlock(&t->mu);
    return same;
}

void nodetable_removed(struct nodetable *t, uint64_t parent, const char *name)
{
    pthread_mutex_lock(&t->mu);
    struct node *p = get(t, parent), *n = p && p->bound ? child(t, p, name) : NULL;
    if (n) {
        unbind(t, n);
        maybe_free(t, n);
    }
    pthread_mutex_unlock(&t->mu);
}

int nodetable_renamed(struct nodetable *t, uint64_t from_parent, const char *from_name,
                      uint64_t to_parent, const char *to_name, bool exchange)
{
    pthread_mutex_lock(&t->mu);
    struct node *fp = get(t, from_parent), *tp = get(t, to_parent);
    fp = fp && fp->bound ? fp : NULL;
    tp = tp && tp->bound ? tp : NULL;
    struct node *a = fp ? child(t, fp, from_name) : NULL;
    struct node *b = tp ? child(t, tp, to_name) : NULL;
    char *an = a && tp ? strdup(to_name) : NULL;
    char *bn = b && exchange && fp ? strdup(from_name) : NULL;
    int r = (a && tp && !an) || (b && exchange && fp && !bn) ? -ENOMEM : 0;
    /* The directories stay while names move between them; both names
     * are let go first, so neither binding meets the other. */
    if (fp)
        fp->children++;
    if (tp)
        tp->children++;
    if (a)
        unbind(t, a);
    if (b)
        unbind(t, b);
    if (an)
        bind(t, a, tp, an);
    if (bn)
        bind(t, b, fp, bn);
    if (a)
        maybe_free(t, a);
    if (b)
        maybe_free(t, b);
    if (fp)
        fp->children--, maybe_free(t, fp);
    if (tp)
        tp->children--, maybe_free(t, tp);
    pthread_mutex_unlock(&t->mu);
    return r;
}

int nodetable_find(struct nodetable *t, const char *path, uint64_t *id)
{
    char name[256];
    pthread_mutex_lock(&t->mu);
    struct node *n = &t->root;
    int r = 0;
    for (const char *p = path; n && *p;) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (!len)
            break;
        if (len >= sizeof(name)) {
            n = NULL;
            break;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        n = child(t, n, name);
        p += len;
    }
    if (n)
        *id = n->id;
    else
        r = -ENOENT;
    pthread_mutex_unlock(&t->mu);
    return r;
}

int nodetable_open(struct nodetable *t, uint64_t id, void *handle, bool first)
{
    struct handle_ref *ref = malloc(sizeof(*ref));
    if (!ref)
        return -ENOMEM;
    ref->handle = handle;
    ref->first = first;
    pthread_mutex_lock(&t->mu);
    struct node *n = get(t, id);
    if (n) {
        /* Writers at the front, in the order they came; others after. */
        struct handle_ref **p = &n->handles;
        while (*p && (!first || (*p)->first))
            p = &(*p)->next;
        ref->next = *p;
        *p = ref;
    }
    pthread_mutex_unlock(&t->mu);
    if (!n)
        free(ref);
    return n ? 0 : -ENOENT;
}

void nodetable_close(struct nodetable *t, uint64_t id, void *handle)
{
    pthread_mutex_lock(&t->mu);
    struct node *n = get(t, id);
    for (struct handle_ref **p = n ? &n->handles : NULL; p && *p; p = &(*p)->next) {
        if ((*p)->handle == handle) {
            struct handle_ref *gone = *p;
            *p = gone->next;
            free(gone);
            break;
        }
    }
    if (n)
        maybe_free(t, n);
    pthread_mutex_unlock(&t->mu);
}

int nodetable_with_handle(struct nodetable *t, uint64_t id, int (*fn)(void *handle, void *arg),
                          void *arg)
{
    pthread_mutex_lock(&t->mu);
    struct node *n = get(t, id);
    int r = n && n->handles ? fn(n->handles->handle, arg) : -ENOENT;
    pthread_mutex_unlock(&t->mu);
    return r;
}

size_t nodetable_count(struct nodetable *t, size_t *bound)
{
    pthread_mutex_lock(&t->mu);
    size_t c = t->count;
    size_t b = 0; /* counted here, not kept: only tests ask */
    for (size_t i = 0; bound && i < t->nbuckets; i++)
        for (struct node *n = t->by_name[i]; n; n = n->name_next)
            b++;
    if (bound)
        *bound = b;
    pthread_mutex_unlock(&t->mu);
    return c;
}
