#include "config.h"

#include "vm/current.h"

#include "qemu/chain.h"
#include "util/log.h"
#include "util/names.h"

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

int current_snapshot(const struct store *s, const char *vm, char *out, size_t outsz)
{
    struct current_ctx c = { .s = s, .vm = vm };
    int r = store_list_disks(s, vm, current_visit, &c);
    if (r < 0)
        return r;
    if (!c.best[0])
        return -ENOENT;
    if (strlen(c.best) >= outsz)
        return -ENAMETOOLONG;
    strcpy(out, c.best);
    return 0;
}
