#include "config.h"

#include "vm/vmmodel.h"

#include "meta/domxml.h"
#include "store/imagelock.h"
#include "util/log.h"
#include "qemu/qcow2create.h"
#include "qemu/qcow2edit.h"
#include "store/storeio.h"
#include "store/vmstate.h"
#include "meta/xmlsafe.h"
#include "vm/current.h"
#include "vm/merge.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


int vm_begin(struct vm_model *m, const struct snap_ctx *c, const char *vm, char *msg,
             size_t msgsz)
{
    memset(m, 0, sizeof(*m));
    m->s = c->s;
    m->lock.store_fd = m->lock.vm_fd = -1;
    if (!name_is_valid(vm)) {
        snprintf(msg, msgsz, "not a valid VM name");
        return -EINVAL;
    }
    snprintf(m->vm, sizeof(m->vm), "%s", vm);
    if (store_vm_path(c->s, vm, NULL, m->dir, sizeof(m->dir)) < 0)
        return -ENAMETOOLONG;
    struct stat st;
    if (store_lstat(c->s, m->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, msgsz, "no such VM");
        return -ENOENT;
    }
    /* Nothing is created or moved through a link planted in the store. */
    static const char *const subdirs[] = { "disks", "snapshots" };
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        char sub[PATH_MAX];
        if (store_vm_path(c->s, vm, subdirs[i], sub, sizeof(sub)) < 0)
            return -ENAMETOOLONG;
        int r = store_lstat(c->s, sub, &st);
        if (r == -ENOENT)
            continue;
        if (r < 0 || !S_ISDIR(st.st_mode)) {
            snprintf(msg, msgsz, "%s is %s, not a directory", sub,
                     r == -ELOOP ? "a symbolic link" : "something else");
            return -EINVAL;
        }
    }
    int r = vmlock_acquire(c->s, vm, VMLOCK_OP_WAIT_MS, c->cancelled, c->arg, &m->lock, msg,
                           msgsz);
    if (r < 0)
        return r;
    vmstate_op_begin(vm);
    m->op_running = true;
    /* An operation a crash (of this daemon or another) left half done is
     * finished first: every operation starts from a whole state. */
    r = vm_recover(c->s, vm, msg, msgsz);
    if (r < 0) {
        vm_end(m);
        return r;
    }
    return 0;
}

/* chain_known(dev, arg): the chain of dev's active image is not read
 * (a revert checks the chain its new overlay will have instead). */
static int load_disk(struct vm_model *m, const struct dom_disk *d,
                     bool (*chain_known)(const char *dev, void *arg), void *arg, char *msg,
                     size_t msgsz)
{
    struct vm_disk *vd = &m->disks[m->ndisks];
    memset(vd, 0, sizeof(*vd));
    if (!dev_is_valid(d->dev)) {
        snprintf(msg, msgsz, "disk '%s': not a device name this store allows", d->dev);
        return -EINVAL;
    }
    snprintf(vd->dev, sizeof(vd->dev), "%s", d->dev);
    if (store_disk_path(m->s, m->vm, d->dev, vd->active, sizeof(vd->active)) < 0)
        return -ENAMETOOLONG;
    if (!d->source || strcmp(d->source, vd->active) != 0) {
        snprintf(msg, msgsz, "disk %s: its <source file> is %s, not the store's active image %s",
                 d->dev, d->source ? d->source : "(none)", vd->active);
        return -EINVAL;
    }
    if (d->driver_type[0] && strcmp(d->driver_type, "qcow2") != 0) {
        snprintf(msg, msgsz, "disk %s: driver type %s, not qcow2", d->dev, d->driver_type);
        return -EINVAL;
    }
    if (chain_known && chain_known(d->dev, arg)) {
        m->ndisks++;
        return 0;
    }
    char why[MSG_MAX];
    int r = chain_walk(m->s, vd->active, &vd->chain, why, sizeof(why));
    if (r < 0) {
        snprintf(msg, msgsz, "disk %s: %s", d->dev, why);
        return r == -ENOENT ? -ENOENT : r;
    }
    /* The snapshot it grows from: the backing name, as stored, is
     * ../snapshots/<P>/<dev>.qcow2 (the layout's own parse). */
    struct backing_info b;
    if (chain_backing(m->s, vd->active, &b, why, sizeof(why)) < 0 ||
        !current_parse_backing(b.name, vd->dev, vd->parent, sizeof(vd->parent)))
        vd->parent[0] = '\0';
    m->ndisks++;
    return 0;
}

/* The checks of a definition (vm_load_definition): m->disks from doc. */
static int read_definition(struct vm_model *m, xmlDocPtr doc,
                           bool (*chain_known)(const char *dev, void *arg), void *arg, char *msg,
                           size_t msgsz)
{
    char why[MSG_MAX];
    struct dom_info info = { 0 };
    int r = domxml_read_doc(doc, &info, why, sizeof(why));
    if (r < 0) {
        snprintf(msg, msgsz, "domain.xml: %s", why);
        return -EINVAL;
    }
    m->disks = calloc(info.ndisks ? info.ndisks : 1, sizeof(*m->disks));
    if (!m->disks) {
        domxml_free(&info);
        return -ENOMEM;
    }
    for (size_t i = 0; r == 0 && i < info.ndisks; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(info.disks[k].dev, info.disks[i].dev) == 0) {
                snprintf(msg, msgsz, "domain.xml has two disks with target dev %s",
                         info.disks[i].dev);
                r = -EINVAL;
            }
        }
        if (r == 0 && dom_disk_is_snapshotable(&info.disks[i]))
            r = load_disk(m, &info.disks[i], chain_known, arg, msg, msgsz);
    }
    domxml_free(&info);
    return r;
}

int vm_load_definition(struct vm_model *m, bool required, char *msg, size_t msgsz)
{
    char path[PATH_MAX], why[MSG_MAX];
    if (store_vm_path(m->s, m->vm, "domain.xml", path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    int fd = store_open_read(m->s, path, why, sizeof(why));
    if (fd < 0) {
        if (fd == -ENOENT && !required)
            return 0;
        /* Deleted meanwhile (by another daemon): no such VM. */
        if (fd == -ENOENT && store_vm_path(m->s, m->vm, "", path, sizeof(path)) == 0 &&
            !storeio_exists(m->s, path)) {
            snprintf(msg, msgsz, "the VM %s no longer exists", m->vm);
            return -ENOENT;
        }
        snprintf(msg, msgsz, "the VM has no usable domain.xml (%s)", why);
        return -EINVAL;
    }
    int err = 0;
    m->dom = xmlsafe_parse_fd(fd, "domain", &err, why, sizeof(why));
    close(fd);
    if (!m->dom) {
        snprintf(msg, msgsz, "domain.xml: %s", why);
        return -EINVAL;
    }
    return read_definition(m, m->dom, NULL, NULL, msg, msgsz);
}

int vm_check_definition(const struct vm_model *m, xmlDocPtr doc,
                        bool (*chain_known)(const char *dev, void *arg), void *arg, char *msg,
                        size_t msgsz)
{
    struct vm_model t;
    memset(&t, 0, sizeof(t));
    t.s = m->s;
    memcpy(t.vm, m->vm, sizeof(t.vm));
    memcpy(t.dir, m->dir, sizeof(t.dir));
    int r = read_definition(&t, doc, chain_known, arg, msg, msgsz);
    for (size_t i = 0; i < t.ndisks; i++)
        chain_free(&t.disks[i].chain);
    free(t.disks);
    return r;
}

static int hold_failed(const char *image, int r, char *msg, size_t msgsz)
{
    if (r == -EBUSY)
        snprintf(msg, msgsz, "%s is in use (a qemu holds its image lock)", image);
    else if (r < 0)
        snprintf(msg, msgsz, "%s: %s", image, strerror(-r));
    return r;
}

int vm_hold_image(struct vm_model *m, const char *image, const char *dev, char *msg,
                  size_t msgsz)
{
    if (dev && vmstate_writers(m->vm, dev) > 0) {
        snprintf(msg, msgsz, "%s is open for writing through the mount", image);
        return -EBUSY;
    }
    if (dev) {
        if (m->nlocks == m->caplocks) {
            size_t cap = m->caplocks ? 2 * m->caplocks : 8;
            int *nl = realloc(m->locks, cap * sizeof(*nl));
            if (!nl)
                return -ENOMEM;
            m->locks = nl;
            m->caplocks = cap;
        }
        /* Writers through the mounts of other daemons (vmlock.h). */
        int w = vmlock_writers_exclude(m->s, m->vm, dev);
        if (w == -EBUSY) {
            snprintf(msg, msgsz, "%s is open for writing through another mount of the store",
                     image);
            return w;
        }
        if (w >= 0)
            m->locks[m->nlocks++] = w;
    }
    /* A short wait: a refusal should mean a qemu, not a helper this
     * daemon forked a moment ago (imagelock_hold_wait). */
    return hold_failed(image, imagelock_set_take(&m->images, m->s, image, IMAGELOCK_WRITE, 200),
                       msg, msgsz);
}

int vm_hold_image_read(struct vm_model *m, const char *image, char *msg, size_t msgsz)
{
    return hold_failed(image,
                       imagelock_set_take(&m->images, m->s, image, IMAGELOCK_HELD_OR_READ, 200),
                       msg, msgsz);
}

void vm_drop_image_locks(struct vm_model *m)
{
    imagelock_set_release(&m->images);
}

static void drop_locks(struct vm_model *m)
{
    for (size_t i = 0; i < m->nlocks; i++)
        imagelock_drop(m->locks[i]);
    m->nlocks = 0;
    imagelock_set_release(&m->images);
}

int vm_commit(struct vm_model *m, struct journal *j, char *msg, size_t msgsz)
{
    if (journal_has_data_steps(j)) {
        /* Handed over whole: the journal holds them from here on. */
        imagelock_set_release(&j->held);
        j->held = m->images;
        memset(&m->images, 0, sizeof(m->images));
        j->lock_steps = true;
    }
    int r = journal_commit(j, msg, msgsz);
    if (r < 0 && !j->committed) {
        journal_abort(j); /* the commit record could not be written */
        return r;
    }
    if (r == 0)
        return r;
    char again[MSG_MAX];
    drop_locks(m);
    int rr = vm_recover(m->s, m->vm, again, sizeof(again));
    if (rr < 0) {
        log_msg(LOG_ERR, "%s of %s: cannot finish after its commit: %s", j->op, m->vm, again);
        snprintf(msg, msgsz, "could not finish after its commit (%s): it will be finished on "
                             "the next operation on this VM or the next mount", again);
        /* Out of space while it copied (a merge: the free-space check
         * before the commit held, then something else filled the disk),
         * or an image a qemu took meanwhile (one of another daemon):
         * ENOSPC or EBUSY, as the caller can act on them. */
        return rr == -ENOSPC || rr == -EBUSY ? rr : -EIO;
    }
    log_msg(LOG_NOTICE, "%s of %s finished on a second try", j->op, m->vm);
    return 0;
}

void vm_end(struct vm_model *m)
{
    drop_locks(m);
    free(m->locks);
    m->locks = NULL;
    m->caplocks = 0;
    for (size_t i = 0; i < m->ndisks; i++)
        chain_free(&m->disks[i].chain);
    free(m->disks);
    m->disks = NULL;
    m->ndisks = 0;
    if (m->dom)
        xmlFreeDoc(m->dom);
    m->dom = NULL;
    if (m->op_running)
        vmstate_op_end(m->vm);
    m->op_running = false;
    vmlock_release(&m->lock);
}

int vm_run(const struct snap_ctx *c, const char *vm, const char *op, vm_plan_fn plan,
           const void *arg, char *msg, size_t msgsz)
{
    struct vm_model m;
    int r = vm_begin(&m, c, vm, msg, msgsz);
    if (r < 0)
        return r;
    struct journal j;
    if ((r = journal_begin(&j, c->s, op, vm, msg, msgsz)) == 0) {
        r = plan(&m, &j, arg, msg, msgsz);
        if (r == 0)
            r = vm_commit(&m, &j, msg, msgsz);
        else
            journal_abort(&j);
        journal_free(&j);
    }
    vm_end(&m);
    if (r == 0)
        vmstate_changed(vm);
    return r;
}

int vm_load_snapshot(struct vm_model *m, const char *snap, xmlDocPtr *out, char *msg,
                     size_t msgsz)
{
    char path[PATH_MAX], why[MSG_MAX];
    if (store_snap_path(m->s, m->vm, snap, "snapshot.xml", path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    int fd = store_open_read(m->s, path, why, sizeof(why));
    if (fd < 0) {
        snprintf(msg, msgsz, "snapshot %s: snapshot.xml: %s", snap, why);
        return fd == -ENOENT ? -EINVAL : fd;
    }
    int err = 0;
    *out = xmlsafe_parse_fd(fd, "domainsnapshot", &err, why, sizeof(why));
    close(fd);
    if (!*out) {
        snprintf(msg, msgsz, "snapshot %s: snapshot.xml: %s", snap, why);
        return -EINVAL;
    }
    return 0;
}

int vm_xml_perm(const struct store *s, const char *vm, struct store_perm *out)
{
    static const char *const from[] = { "domain.xml", ".domain.xml.undefined", "" };
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        char path[PATH_MAX];
        if (store_vm_path(s, vm, from[i], path, sizeof(path)) < 0)
            return -ENAMETOOLONG;
        int r = perm_of(s, path, out);
        if (r == -ENOENT)
            continue;
        if (r == 0 && !from[i][0])
            out->mode &= 0666;
        return r;
    }
    return -ENOENT;
}

int vm_write_temp(struct journal *j, xmlDocPtr doc, const char *name,
                  const struct store_perm *perm, char *out, size_t outsz, char *msg, size_t msgsz)
{
    if ((size_t)snprintf(out, outsz, "%s/%s", j->tmpdir, name) >= outsz)
        return -ENAMETOOLONG;
    char *text;
    size_t len;
    int r = xmledit_dump(doc, &text, &len);
    if (r < 0)
        return r;
    r = storeio_write_new_unsynced(j->s, out, text, len, perm);
    free(text);
    /* Synced at the commit, side by side with the rest (journal_unsynced):
     * no other process reads it before. The commit syncs the temporary
     * directory itself; a directory below it (snap/ for
     * snap/snapshot.xml) is noted too. */
    if (r == 0)
        r = journal_unsynced(j, out);
    if (r == 0 && strchr(name, '/')) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", out);
        *strrchr(dir, '/') = '\0';
        r = journal_unsynced(j, dir);
    }
    if (r < 0) {
        snprintf(msg, msgsz, "cannot write %s: %s", out, strerror(-r));
        return r;
    }
    journal_point(j);
    return 0;
}

int vm_write_xml(const struct vm_model *m, struct journal *j, xmlDocPtr doc, const char *name,
                 char *out, size_t outsz, char *msg, size_t msgsz)
{
    struct store_perm xp;
    int r = vm_xml_perm(m->s, m->vm, &xp);
    if (r < 0) {
        snprintf(msg, msgsz, "%s: cannot tell who owns the VM's XML: %s", m->vm, strerror(-r));
        return r;
    }
    return vm_write_temp(j, doc, name, &xp, out, outsz, msg, msgsz);
}

/* One overlay, written in the temporary directory (qcow2create.h): made
 * 0600, given the owner and mode of the image it stands in for before a
 * byte is written, and fsynced, so that it is whole before any rename
 * puts it in place. Runs on its own thread: touches only req and the
 * store. */
static void *create_one(void *arg)
{
    struct overlay_req *req = arg;
    char why[MSG_MAX];
    int fd = store_open_read(req->s, req->sized_like, why, sizeof(why));
    unsigned long long size = 0;
    int r = fd < 0 ? fd : qcow2_virtual_size(fd, &size);
    if (fd >= 0)
        close(fd);
    if (r < 0) {
        snprintf(req->msg, sizeof(req->msg), "%s: cannot read its size", req->sized_like);
        req->err = r;
        return NULL;
    }
    struct store_perm perm;
    if ((r = perm_of(req->s, req->perm_like, &perm)) < 0) {
        snprintf(req->msg, sizeof(req->msg), "%s: cannot tell its owner and mode: %s",
                 req->perm_like, strerror(-r));
        req->err = r;
        return NULL;
    }
    if ((r = storeio_create_as(req->s, req->path, &perm, &fd)) < 0) {
        snprintf(req->msg, sizeof(req->msg), "cannot create %s: %s", req->path, strerror(-r));
        req->err = r;
        return NULL;
    }
    char err[256];
    r = qcow2_write_overlay(fd, size, req->backing, "qcow2", err, sizeof(err));
    if (r == 0 && fsync(fd) < 0) {
        r = -errno;
        snprintf(err, sizeof(err), "fsync: %s", strerror(errno));
    }
    close(fd);
    if (r < 0)
        snprintf(req->msg, sizeof(req->msg), "%s: %s", req->path, err);
    req->err = r;
    return NULL;
}

void vm_overlay_req(struct overlay_req *req, const char *snap, const char *dev,
                    const char *sized_like, const char *perm_like)
{
    snprintf(req->name, sizeof(req->name), "disk-%s.qcow2", dev);
    snprintf(req->backing, sizeof(req->backing), "../snapshots/%s/%s" IMAGE_SUFFIX, snap, dev);
    req->sized_like = sized_like;
    req->perm_like = perm_like;
}

/* A worker: takes requests until none is left. */
static void *overlay_worker(void *arg)
{
    struct overlay_batch *b = arg;
    for (size_t i; (i = atomic_fetch_add(&b->next, 1)) < b->n;)
        create_one(&b->reqs[i]);
    return NULL;
}

int vm_overlays_start(struct vm_model *m, struct journal *j, struct overlay_req *reqs, size_t n,
                      struct overlay_batch *b)
{
    for (size_t i = 0; i < n; i++) {
        reqs[i].s = m->s;
        reqs[i].err = 0;
        reqs[i].msg[0] = '\0';
        if ((size_t)snprintf(reqs[i].path, sizeof(reqs[i].path), "%s/%s", j->tmpdir,
                             reqs[i].name) >= sizeof(reqs[i].path))
            return -ENAMETOOLONG;
    }
    b->reqs = reqs;
    b->n = n;
    atomic_init(&b->next, 0);
    /* Side by side: the fsyncs of files written at once wait on the
     * disk together (and share the file system's journal commits) where
     * one after the other each would wait alone. */
    b->nthreads = 0;
    while (b->nthreads < n && b->nthreads < OVERLAY_PARALLEL &&
           pthread_create(&b->t[b->nthreads], NULL, overlay_worker, b) == 0)
        b->nthreads++;
    return 0;
}

int vm_overlays_finish(struct overlay_batch *b, struct journal *j, char *msg, size_t msgsz)
{
    for (size_t i = 0; i < b->nthreads; i++)
        pthread_join(b->t[i], NULL);
    overlay_worker(b); /* what no thread took (none could be started) */
    for (size_t i = 0; i < b->n; i++) {
        if (b->reqs[i].err < 0) {
            snprintf(msg, msgsz, "%s",
                     b->reqs[i].msg[0] ? b->reqs[i].msg : strerror(-b->reqs[i].err));
            return b->reqs[i].err;
        }
    }
    /* Each was synced where it was written: one crash point each. */
    for (size_t i = 0; i < b->n; i++)
        journal_point(j);
    return 0;
}

int vm_create_overlays(struct vm_model *m, struct journal *j, struct overlay_req *reqs, size_t n,
                       char *msg, size_t msgsz)
{
    struct overlay_batch b;
    int r = vm_overlays_start(m, j, reqs, n, &b);
    return r < 0 ? r : vm_overlays_finish(&b, j, msg, msgsz);
}

struct xml_chain_link *vm_xml_chain(const struct chain *c, size_t from, size_t *n)
{
    *n = c->n > from ? c->n - from : 0;
    struct xml_chain_link *l = calloc(*n ? *n : 1, sizeof(*l));
    for (size_t i = 0; l && i < *n; i++) {
        l[i].path = c->links[from + i].path;
        l[i].format = c->links[from + i].format;
    }
    return l;
}

int vm_relpath(const char *from_dir, const char *to, char *out, size_t outsz)
{
    /* Longest common prefix ending at a component boundary. */
    size_t common = 0;
    for (size_t i = 0;; i++) {
        char a = from_dir[i], b = to[i];
        if ((a == '\0' || a == '/') && (b == '/' || b == '\0'))
            common = i;
        if (a == '\0' || b == '\0' || a != b)
            break;
    }
    size_t o = 0;
    out[0] = '\0';
    for (const char *p = from_dir + common; *p; p++) {
        if (*p == '/' && p[1] && p[1] != '/') {
            if (o + 3 >= outsz)
                return -ENAMETOOLONG;
            memcpy(out + o, "../", 3);
            o += 3;
        }
    }
    const char *rest = to + common;
    while (*rest == '/')
        rest++;
    if (o + strlen(rest) + 1 > outsz)
        return -ENAMETOOLONG;
    strcpy(out + o, rest);
    return 0;
}
