/* snapshot_delete: rmdir <vm>/snapshots/S (every disk) and
 * rm <vm>/snapshots/S/<dev>.qcow2 (one disk leaves S: a partial snapshot).
 *
 * Each of S's images leaves by the rules of delplan.h (removed, merged
 * the cheap way, or hidden; hidden too when the background worker runs,
 * which merges it later: bgmerge.h), then the garbage pass; every XML is
 * written
 * from the graph as it will be; S's children take S's parent. When S has
 * no image left, S itself goes (its directory is moved into the
 * operation's temporary directory). One journaled operation, "delete". */
#include "config.h"

#include "ops/snapshot.h"

#include "vm/bgmerge.h"
#include "vm/delplan.h"
#include "util/log.h"
#include "util/monotime.h"
#include "store/storeio.h"
#include "store/vmstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct del {
    struct delplan dp;
    const char *snap;
    const char *only; /* one disk, or NULL for all */
    size_t nimages, released;
};

static int release_one(const char *dev, void *arg)
{
    struct del *d = arg;
    d->nimages++;
    if (d->only && strcmp(dev, d->only) != 0)
        return 0;
    char path[PATH_MAX], note[NAME_MAX_LEN + DEV_MAX_LEN + 2];
    int r = store_snap_image_path(d->dp.m->s, d->dp.m->vm, d->snap, dev, path, sizeof(path));
    if (r < 0)
        return r;
    int f = igraph_find(&d->dp.g, path);
    if (f < 0) {
        snprintf(d->dp.msg, d->dp.msgsz, "%s: not part of the VM's images", path);
        return -EINVAL;
    }
    snprintf(note, sizeof(note), "%s/%s", d->snap, dev);
    d->released++;
    return delplan_release(&d->dp, f, note);
}

static int plan(struct del *d)
{
    struct delplan *dp = &d->dp;
    int r = store_list_snap_images(dp->m->s, dp->m->vm, d->snap, release_one, d);
    if (r < 0)
        return r;
    if (d->only && d->released == 0) {
        snprintf(dp->msg, dp->msgsz, "snapshot %s has no image of %s", d->snap, d->only);
        return -ENOENT;
    }
    if ((r = delplan_gc(dp)) < 0)
        return r;
    bool whole = !d->only || d->nimages == 1;
    struct delxml x = { .deleted = whole ? d->snap : NULL };
    if (!whole) {
        x.partial_snap = d->snap;
        x.partial_dev = d->only;
    }
    r = delplan_write_xml(dp, &x);
    if (r < 0 || !whole)
        return r;
    char dir[PATH_MAX], to[PATH_MAX];
    if ((r = store_snap_path(dp->m->s, dp->m->vm, d->snap, NULL, dir, sizeof(dir))) < 0)
        return r;
    if ((size_t)snprintf(to, sizeof(to), "%s/snapdir", dp->j->tmpdir) >= sizeof(to))
        return -ENAMETOOLONG;
    return journal_move(dp->j, dir, to);
}

struct del_args {
    const char *snap, *dev;
};

static int plan_delete(struct vm_model *m, struct journal *j, const void *arg, char *msg,
                       size_t msgsz)
{
    const struct del_args *a = arg;
    if (!name_is_valid(a->snap) || !store_snap_exists(m->s, m->vm, a->snap)) {
        snprintf(msg, msgsz, "no snapshot %s", a->snap);
        return -ENOENT;
    }
    struct del d = { .snap = a->snap, .only = a->dev };
    int r = vm_load_definition(m, false, msg, msgsz);
    if (r == 0 && (r = delplan_init(&d.dp, m, msg, msgsz)) == 0 &&
        (r = delplan_attach(&d.dp, j)) == 0)
        r = plan(&d);
    delplan_free(&d.dp);
    return r;
}

int snapshot_delete(const struct snap_ctx *c, const char *vm, const char *snap, const char *dev,
                    char *msg, size_t msgsz)
{
    int64_t t0 = now_ms();
    struct del_args a = { snap, dev };
    int r = vm_run(c, vm, "delete", plan_delete, &a, msg, msgsz);
    if (r == 0)
        bgmerge_kick(vm); /* the merges it left, when the worker runs */
    if (r == 0)
        log_msg(LOG_INFO, "deleted %s%s of snapshot %s of %s in %.3f s",
                dev ? "disk " : "every disk", dev ? dev : "", snap, vm,
                (double)(now_ms() - t0) / 1000.0);
    return r;
}
