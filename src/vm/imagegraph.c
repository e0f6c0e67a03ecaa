#include "config.h"

#include "vm/imagegraph.h"

#include "qemu/chain.h"
#include "qemu/qcow2check.h"
#include "util/log.h"
#include "store/storeio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void igraph_free(struct igraph *g)
{
    for (size_t i = 0; i < g->count; i++)
        free(g->n[i].why);
    free(g->n);
    g->n = NULL;
    g->count = g->cap = 0;
}

int igraph_check_open(const struct store *s, struct igraph *g, int i, char *msg, size_t msgsz)
{
    struct gnode *nd = &g->n[i];
    if (nd->fit == 0 && strcmp(nd->format, "raw") == 0)
        nd->fit = 1; /* no header: qemu reads it as it is */
    if (nd->fit == 0) {
        char why[MSG_MAX];
        int fd = store_open_read(s, nd->path, why, sizeof(why));
        int r = fd < 0 ? fd : qcow2_check_header(fd, why, sizeof(why));
        if (fd >= 0)
            close(fd);
        if (r == -ENOMEM || r == -EMFILE || r == -ENFILE) {
            snprintf(msg, msgsz, "%s: %s", nd->path, strerror(-r));
            return r; /* not a property of the image: asked again */
        }
        nd->fit = r == 0 ? 1 : -1;
        if (r < 0 && asprintf(&nd->why, "%s: %s", nd->path, why) < 0)
            nd->why = NULL;
    }
    if (nd->fit > 0)
        return 0;
    snprintf(msg, msgsz, "%s", nd->why ? nd->why : nd->path);
    return -EINVAL;
}

int igraph_find(const struct igraph *g, const char *path)
{
    for (size_t i = 0; i < g->count; i++)
        if (strcmp(g->n[i].path, path) == 0)
            return (int)i;
    return -1;
}

void igraph_dir(const struct gnode *node, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s", node->path);
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

/* What a path is within the VM: STORE/<vm>/disks/<dev>.qcow2, or
 * STORE/<vm>/snapshots/<dir>/<dev>.qcow2 with dir a valid name or a
 * hidden one. */
static void classify(const struct store *s, const char *vm, struct gnode *nd)
{
    char vmdir[PATH_MAX];
    nd->kind = G_OTHER;
    if (store_vm_path(s, vm, NULL, vmdir, sizeof(vmdir)) < 0)
        return;
    size_t vl = strlen(vmdir);
    if (strncmp(nd->path, vmdir, vl) != 0 || nd->path[vl] != '/')
        return;
    const char *rest = nd->path + vl + 1;
    if (strncmp(rest, "disks/", 6) == 0 && !strchr(rest + 6, '/') &&
        dev_from_image_name(rest + 6, nd->dev, sizeof(nd->dev))) {
        nd->kind = G_ACTIVE;
        return;
    }
    if (strncmp(rest, "snapshots/", 10) != 0)
        return;
    const char *d = rest + 10, *slash = strchr(d, '/');
    if (!slash || strchr(slash + 1, '/') || (size_t)(slash - d) > NAME_MAX ||
        !dev_from_image_name(slash + 1, nd->dev, sizeof(nd->dev)))
        return;
    snprintf(nd->dir, sizeof(nd->dir), "%.*s", (int)(slash - d), d);
    if (name_is_valid(nd->dir))
        nd->kind = G_FROZEN;
    else if (name_is_hidden_dir(nd->dir))
        nd->kind = G_HIDDEN;
    else
        nd->dev[0] = '\0';
}

static int add_node(const struct store *s, const char *vm, struct igraph *g, const char *path,
                    const char *format)
{
    int at = igraph_find(g, path);
    if (at >= 0)
        return at;
    if (g->count == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 32;
        struct gnode *nn = realloc(g->n, cap * sizeof(*nn));
        if (!nn)
            return -ENOMEM;
        g->n = nn;
        g->cap = cap;
    }
    struct gnode *nd = &g->n[g->count];
    memset(nd, 0, sizeof(*nd));
    snprintf(nd->path, sizeof(nd->path), "%s", path);
    snprintf(nd->format, sizeof(nd->format), "%s", format);
    nd->parent = -1;
    classify(s, vm, nd);
    struct stat st;
    if (store_lstat(s, path, &st) == 0) {
        nd->alloc = (uint64_t)st.st_blocks * 512;
        nd->links = (unsigned)st.st_nlink;
    }
    return (int)g->count++;
}

static bool in_graph(const char *path, void *arg)
{
    return igraph_find(arg, path) >= 0;
}

/* One image and its chain, each link a node with its parent set. The
 * walk ends at the first link already in the graph (added, with its
 * chain, from an image met before): each image's header is read once,
 * not once for every chain it is in (a history with many branches would
 * cost images x depth). */
static int add_image(const struct store *s, const char *vm, struct igraph *g, const char *path,
                     char *msg, size_t msgsz)
{
    if (igraph_find(g, path) >= 0)
        return 0;
    struct chain c;
    char why[MSG_MAX];
    int r = chain_walk_until(s, path, in_graph, g, &c, why, sizeof(why));
    if (r < 0) {
        snprintf(msg, msgsz, "%s: %s", path, why);
        return r;
    }
    int below = -1;
    for (size_t k = c.n; k-- > 0;) {
        int at = add_node(s, vm, g, c.links[k].path, c.links[k].format);
        if (at < 0) {
            r = at;
            break;
        }
        if (g->n[at].parent < 0)
            g->n[at].parent = below;
        below = at;
    }
    chain_free(&c);
    return r < 0 ? r : 0;
}

struct build_ctx {
    const struct store *s;
    const char *vm;
    struct igraph *g;
    const char *dir; /* snapshots/ directory being listed */
    char *msg;
    size_t msgsz;
};

static int visit_active(const char *dev, void *arg)
{
    struct build_ctx *b = arg;
    char path[PATH_MAX];
    int r = store_disk_path(b->s, b->vm, dev, path, sizeof(path));
    return r < 0 ? r : add_image(b->s, b->vm, b->g, path, b->msg, b->msgsz);
}

static int visit_frozen(const char *dev, void *arg)
{
    struct build_ctx *b = arg;
    char path[PATH_MAX];
    int r = store_snap_image_path(b->s, b->vm, b->dir, dev, path, sizeof(path));
    return r < 0 ? r : add_image(b->s, b->vm, b->g, path, b->msg, b->msgsz);
}

/* One directory of snapshots/: a visible snapshot or a hidden one (both
 * are read; store_list_snapshots skips the hidden ones). */
static int visit_snapshot_dir(const char *name, void *arg)
{
    struct build_ctx *b = arg;
    if (!name_is_hidden_dir(name) && !name_is_valid(name))
        return 0;
    b->dir = name;
    return store_list_snap_images(b->s, b->vm, name, visit_frozen, b);
}

static int visit_snapshot_dirs(struct build_ctx *b)
{
    char dir[PATH_MAX];
    int r = store_vm_path(b->s, b->vm, "snapshots", dir, sizeof(dir));
    return r < 0 ? r : storeio_each(b->s, dir, visit_snapshot_dir, b);
}

int igraph_build(const struct store *s, const char *vm, struct igraph *g, char *msg,
                 size_t msgsz)
{
    memset(g, 0, sizeof(*g));
    struct build_ctx b = { s, vm, g, NULL, msg, msgsz };
    int r = store_list_disks(s, vm, visit_active, &b);
    if (r == 0)
        r = visit_snapshot_dirs(&b);
    if (r < 0)
        igraph_free(g);
    return r;
}

size_t igraph_dependents(const struct igraph *g, int i, int *out, size_t max)
{
    size_t n = 0;
    for (size_t k = 0; k < g->count; k++) {
        if (g->n[k].gone || g->n[k].parent != i)
            continue;
        if (n < max)
            out[n] = (int)k;
        n++;
    }
    return n;
}

struct xml_chain_link *igraph_chain(const struct igraph *g, int i, size_t *n)
{
    *n = 0;
    for (int k = g->n[i].parent; k >= 0 && *n <= g->count; k = g->n[k].parent)
        (*n)++;
    struct xml_chain_link *l = calloc(*n ? *n : 1, sizeof(*l));
    size_t at = 0;
    for (int k = g->n[i].parent; l && k >= 0 && at < *n; k = g->n[k].parent) {
        l[at].path = g->n[k].path;
        l[at].format = g->n[k].format;
        at++;
    }
    return l;
}
