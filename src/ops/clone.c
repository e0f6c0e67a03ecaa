/* clone_create: see clone.h. This file decides and commits; clonecopy.c
 * moves the data, cloneid.c rewrites the identity. */
#include "config.h"

#include "ops/clone.h"
#include "util/monotime.h"

#include "ops/clonecopy.h"
#include "meta/cloneid.h"
#include "vm/macscan.h"
#include "meta/domxml.h"
#include "store/imagelock.h"
#include "util/jobs.h"
#include "util/log.h"
#include "store/storeio.h"
#include "vm/vmmodel.h"
#include "store/vmstate.h"
#include "meta/xmlsafe.h"
#include "vm/merge.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NVRAM_MAX (64u << 20)


/* ---- pins: an active image kept free of qemus and writers ----
 *
 * The writer marks' exclude lock is exclusive, which two clones of one VM
 * in this daemon could not both hold: the first clone to pin an image
 * takes it, later ones share its pin (counted). The image lock is a
 * reader's (imagelock_hold_for_reading): the clone's own qemu-img -U
 * reads past it, qemus that would write cannot start. */
struct pin {
    struct pin *next;
    char image[PATH_MAX];
    int image_fd, writers_fd;
    int refs;
};
static pthread_mutex_t pins_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pin *pins;

static int pin_image(const struct store *s, const char *vm, const char *dev, const char *image,
                     char *msg, size_t msgsz)
{
    if (vmstate_writers(vm, dev) > 0) {
        snprintf(msg, msgsz, "%s is open for writing through the mount", image);
        return -EBUSY;
    }
    int r = 0;
    pthread_mutex_lock(&pins_lock);
    struct pin *p;
    for (p = pins; p && strcmp(p->image, image) != 0; p = p->next)
        ;
    if (p) {
        p->refs++;
        goto out;
    }
    int w = vmlock_writers_exclude(s, vm, dev);
    if (w == -EBUSY) {
        snprintf(msg, msgsz, "%s is open for writing through another mount of the store", image);
        r = w;
        goto out;
    }
    int fd = imagelock_hold_for_reading(s, image);
    if (fd < 0) {
        if (fd == -EBUSY)
            snprintf(msg, msgsz, "%s is in use (a qemu holds its image lock for writing)", image);
        else
            snprintf(msg, msgsz, "%s: %s", image, strerror(-fd));
        if (w >= 0)
            close(w);
        r = fd;
        goto out;
    }
    if (!(p = calloc(1, sizeof(*p)))) {
        imagelock_drop(fd);
        if (w >= 0)
            close(w);
        r = -ENOMEM;
        goto out;
    }
    snprintf(p->image, sizeof(p->image), "%s", image);
    p->image_fd = fd;
    p->writers_fd = w;
    p->refs = 1;
    p->next = pins;
    pins = p;
out:
    pthread_mutex_unlock(&pins_lock);
    return r;
}

static void unpin_image(const char *image)
{
    pthread_mutex_lock(&pins_lock);
    for (struct pin **pp = &pins; *pp; pp = &(*pp)->next) {
        struct pin *p = *pp;
        if (strcmp(p->image, image) != 0)
            continue;
        if (--p->refs == 0) {
            *pp = p->next;
            imagelock_drop(p->image_fd);
            if (p->writers_fd >= 0)
                close(p->writers_fd);
            free(p);
        }
        break;
    }
    pthread_mutex_unlock(&pins_lock);
}

/* ---- the source's lock, shared ---- */

/* Shared, waiting as other operations do. An operation a crash left in
 * the journal is finished first, under the exclusive lock, as vm_begin
 * does: a clone starts from a whole state. */
static int lock_source(const struct snap_ctx *c, const char *vm, struct vmlock *l, char *msg,
                       size_t msgsz)
{
    for (int tries = 0;; tries++) {
        int r = vmlock_acquire_mode(c->s, vm, VMLOCK_SHARED, VMLOCK_OP_WAIT_MS,
                                    VMLOCK_OP_WAIT_MS, c->cancelled, c->arg, l, msg, msgsz);
        if (r < 0)
            return r == -EAGAIN ? -EBUSY : r;
        int pending = journal_pending_for(c->s, vm);
        if (pending == 0)
            return 0;
        vmlock_release(l);
        if (tries > 0 || pending < 0) {
            snprintf(msg, msgsz, "an unfinished operation on %s is in the journal", vm);
            return -EIO;
        }
        struct vmlock x;
        if ((r = vmlock_acquire(c->s, vm, VMLOCK_OP_WAIT_MS, c->cancelled, c->arg, &x, msg,
                                msgsz)) < 0)
            return r;
        r = vm_recover(c->s, vm, msg, msgsz);
        vmlock_release(&x);
        if (r < 0)
            return r;
    }
}

/* ---- what is copied, and the definition ---- */

struct plan {
    const struct snap_ctx *c;
    const char *vm, *snap, *name;
    char clone_dir[PATH_MAX]; /* STORE/N */
    xmlDocPtr dom; /* the clone's definition, being rewritten */
    struct clonecopy_disk *disks;
    size_t ndisks;
    char (*pinned)[PATH_MAX];
    size_t npinned;
    bool op_running;
    struct cloneid_result id;
};

static int add_disk(struct plan *p, const char *dev, const char *src, char *msg, size_t msgsz)
{
    struct clonecopy_disk *d = &p->disks[p->ndisks];
    memset(d, 0, sizeof(*d));
    snprintf(d->dev, sizeof(d->dev), "%s", dev);
    snprintf(d->src, sizeof(d->src), "%s", src);
    char why[MSG_MAX];
    int r = clonecopy_weight(p->c->s, src, &d->weight, why, sizeof(why));
    if (r < 0) {
        snprintf(msg, msgsz, "disk %s: %s", dev, why);
        return r;
    }
    p->ndisks++;
    return 0;
}

/* The current state: domain.xml, the active images, pinned. */
static int plan_current(struct plan *p, char *msg, size_t msgsz)
{
    struct vm_model m;
    memset(&m, 0, sizeof(m));
    m.s = p->c->s;
    m.lock.store_fd = m.lock.vm_fd = -1;
    snprintf(m.vm, sizeof(m.vm), "%s", p->vm);
    store_vm_path(m.s, p->vm, NULL, m.dir, sizeof(m.dir));
    int r = vm_load_definition(&m, true, msg, msgsz);
    if (r == 0) {
        p->disks = calloc(m.ndisks ? m.ndisks : 1, sizeof(*p->disks));
        p->pinned = calloc(m.ndisks ? m.ndisks : 1, sizeof(*p->pinned));
        r = p->disks && p->pinned ? 0 : -ENOMEM;
    }
    /* New writers through the mount are refused from here on; the ones
     * already there are seen by pin_image. */
    if (r == 0) {
        vmstate_op_begin(p->vm);
        p->op_running = true;
    }
    for (size_t i = 0; r == 0 && i < m.ndisks; i++) {
        if ((r = pin_image(m.s, p->vm, m.disks[i].dev, m.disks[i].active, msg, msgsz)) < 0)
            break;
        snprintf(p->pinned[p->npinned++], PATH_MAX, "%s", m.disks[i].active);
        r = add_disk(p, m.disks[i].dev, m.disks[i].active, msg, msgsz);
    }
    if (r == 0) {
        p->dom = m.dom;
        m.dom = NULL;
    }
    vm_end(&m);
    return r;
}

/* As at S: S's <domain>, S's frozen images (frozen: no pin needed, the
 * shared lock keeps deletes and merges away). A disk S does not cover (a
 * partial snapshot) is left out of the clone and logged. */
static int plan_snapshot(struct plan *p, char *msg, size_t msgsz)
{
    const struct store *s = p->c->s;
    struct vm_model m;
    memset(&m, 0, sizeof(m));
    m.s = s;
    snprintf(m.vm, sizeof(m.vm), "%s", p->vm);
    xmlDocPtr sdoc;
    int r = vm_load_snapshot(&m, p->snap, &sdoc, msg, msgsz);
    if (r < 0)
        return r;
    xmlNodePtr dnode = xmledit_snapshot_domain(sdoc);
    if (!dnode) {
        snprintf(msg, msgsz, "snapshot %s: snapshot.xml holds no <domain>", p->snap);
        xmlFreeDoc(sdoc);
        return -EINVAL;
    }
    p->dom = xmledit_doc_from_node(dnode);
    xmlFreeDoc(sdoc);
    if (!p->dom)
        return -ENOMEM;
    struct dom_info info;
    char why[MSG_MAX];
    if ((r = domxml_read_doc(p->dom, &info, why, sizeof(why))) < 0) {
        snprintf(msg, msgsz, "snapshot %s: its <domain>: %s", p->snap, why);
        return -EINVAL;
    }
    p->disks = calloc(info.ndisks ? info.ndisks : 1, sizeof(*p->disks));
    if (!p->disks)
        r = -ENOMEM;
    for (size_t i = 0; r == 0 && i < info.ndisks; i++) {
        const struct dom_disk *d = &info.disks[i];
        if (!dom_disk_is_snapshotable(d))
            continue;
        char frozen[PATH_MAX];
        if (!dev_is_valid(d->dev) ||
            store_snap_image_path(s, p->vm, p->snap, d->dev, frozen, sizeof(frozen)) < 0) {
            snprintf(msg, msgsz, "snapshot %s: disk '%s': not a device name this store allows",
                     p->snap, d->dev);
            r = -EINVAL;
        } else if (!storeio_exists(s, frozen)) {
            log_msg(LOG_NOTICE, "clone %s of %s at %s: disk %s is not in the snapshot, left out",
                    p->name, p->vm, p->snap, d->dev);
            xmledit_remove_disk(xmlDocGetRootElement(p->dom), d->dev);
        } else {
            r = add_disk(p, d->dev, frozen, msg, msgsz);
        }
    }
    domxml_free(&info);
    return r;
}

/* VMSTOREFS_MAC_SEED (tests): every clone draws the same sequence of
 * MACs from that seed, so only the MACs in the store (claim_identity)
 * keep two clones' MACs apart: what a test can see fail. */
static void seeded_random(uint8_t *buf, size_t n, void *ctx)
{
    uint64_t *state = ctx;
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(*state >> 56);
    }
}

/* The new identity and the lineage, then our own parse as a check. */
static int rewrite_identity(struct plan *p, char *msg, size_t msgsz)
{
    struct mac_set macs;
    int r = macscan_collect(p->c->s, &macs);
    if (r < 0) {
        snprintf(msg, msgsz, "cannot read the MACs in use in the store: %s", strerror(-r));
        return r;
    }
    struct cloneid_params prm = {
        .name = p->name,
        .store_root = p->c->s->root,
        .clone_dir = p->clone_dir,
        .source_vm = p->vm,
        .source_snapshot = p->snap,
        .time = (int64_t)time(NULL),
        .in_use = &macs,
    };
    const char *seed = getenv("VMSTOREFS_MAC_SEED");
    uint64_t state = seed ? strtoull(seed, NULL, 0) : 0;
    if (seed) {
        prm.random = seeded_random;
        prm.random_ctx = &state;
    }
    r = cloneid_rewrite(p->dom, &prm, &p->id, msg, msgsz);
    mac_set_free(&macs);
    if (r < 0)
        return r;
    struct dom_info info;
    char why[MSG_MAX];
    if (domxml_read_doc(p->dom, &info, why, sizeof(why)) < 0) {
        snprintf(msg, msgsz, "the clone's definition does not read back: %s", why);
        return -EINVAL;
    }
    domxml_free(&info);
    return 0;
}

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->npinned; i++)
        unpin_image(p->pinned[i]);
    free(p->pinned);
    free(p->disks);
    if (p->op_running)
        vmstate_op_end(p->vm);
    if (p->dom)
        xmlFreeDoc(p->dom);
    cloneid_result_free(&p->id);
}

/* ---- the files, in tmp/<id>/N ---- */

/* Whom a file of the clone belongs to (perm.h): the caller, with the
 * permission bits of the source's file it derives from (src; the
 * source's VM directory when src is not there). */
static int owned_like(const struct plan *p, const char *src, struct store_perm *out)
{
    char dir[PATH_MAX];
    int r = perm_of(p->c->s, src, out);
    if (r == -ENOENT && (r = store_vm_path(p->c->s, p->vm, NULL, dir, sizeof(dir))) == 0)
        r = perm_of(p->c->s, dir, out);
    out->uid = p->c->cred.uid;
    out->gid = p->c->cred.gid;
    return r;
}

/* The same for a file of the source VM named by rel ("disks"). */
static int owned_like_rel(const struct plan *p, const char *rel, struct store_perm *out)
{
    char path[PATH_MAX];
    int r = store_vm_path(p->c->s, p->vm, rel, path, sizeof(path));
    return r < 0 ? r : owned_like(p, path, out);
}

/* tmp/<id>/N + the part of path below STORE/N. */
static int tmp_twin(const struct plan *p, const char *tmpn, const char *path, char *out,
                    size_t outsz)
{
    size_t n = strlen(p->clone_dir);
    if (strncmp(path, p->clone_dir, n) != 0 || path[n] != '/')
        return -EINVAL;
    return (size_t)snprintf(out, outsz, "%s%s", tmpn, path + n) < outsz ? 0 : -ENAMETOOLONG;
}

static int copy_nvram(struct plan *p, struct journal *j, const char *tmpn, char *msg,
                      size_t msgsz)
{
    if (!p->id.nvram_old)
        return 0;
    const struct store *s = p->c->s;
    char dst[PATH_MAX], dir[PATH_MAX];
    int r = tmp_twin(p, tmpn, p->id.nvram_new, dst, sizeof(dst));
    if (r < 0) {
        snprintf(msg, msgsz, "nvram %s: not below the clone's directory", p->id.nvram_new);
        return r;
    }
    snprintf(dir, sizeof(dir), "%s", dst);
    *strrchr(dir, '/') = '\0';
    struct store_perm dp, fp;
    if ((r = owned_like_rel(p, "", &dp)) < 0 || (r = owned_like(p, p->id.nvram_old, &fp)) < 0)
        return r;
    if (strcmp(dir, tmpn) != 0 && (r = storeio_mkdir_as(s, dir, &dp)) < 0 && r != -EEXIST)
        return r;
    char *data = NULL;
    size_t len = 0;
    /* A definition naming an nvram file that is not there: the clone
     * gets none either, and libvirt makes a fresh one from its template. */
    r = storeio_read(s, p->id.nvram_old, NVRAM_MAX, &data, &len);
    if (r == -ENOENT) {
        log_msg(LOG_NOTICE, "clone %s of %s: nvram %s does not exist, none copied", p->name,
                p->vm, p->id.nvram_old);
        return 0;
    }
    if (r == 0)
        r = storeio_write_new_as(s, dst, data, len, &fp);
    free(data);
    if (r == 0)
        r = storeio_fsync_parent(s, dst);
    if (r < 0) {
        snprintf(msg, msgsz, "cannot copy nvram %s: %s", p->id.nvram_old, strerror(-r));
        return r;
    }
    return journal_prepared(j, dst, msg, msgsz);
}

static uint64_t total_weight(const struct plan *p)
{
    uint64_t t = 0;
    for (size_t i = 0; i < p->ndisks; i++)
        t += p->disks[i].weight;
    return t;
}

/* N, N/disks, N/snapshots: the caller's, with the modes of the
 * source's. */
static int make_dirs(const struct plan *p, const char *tmpn, char *msg, size_t msgsz)
{
    static const char *const sub[] = { "", "disks", "snapshots" };
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof(path), "%s%s%s", tmpn, *sub[i] ? "/" : "", sub[i]) >=
            sizeof(path))
            return -ENAMETOOLONG;
        struct store_perm dp;
        int r = owned_like_rel(p, sub[i], &dp);
        if (r == 0)
            r = storeio_mkdir_as(p->c->s, path, &dp);
        if (r < 0) {
            snprintf(msg, msgsz, "cannot make %s: %s", path, strerror(-r));
            return r;
        }
    }
    return 0;
}

static int sync_dirs(const struct store *s, const char *tmpn)
{
    static const char *const sub[] = { "/disks", "/snapshots", "" };
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s%s", tmpn, sub[i]);
        int r = storeio_fsync(s, path);
        if (r < 0)
            return r;
    }
    return 0;
}

/* tmp/<id>/N: the clone's directory while it is made. */
static int tmp_clone_dir(const struct plan *p, const struct journal *j, char *out, size_t outsz)
{
    return (size_t)snprintf(out, outsz, "%s/%s", j->tmpdir, p->name) >= outsz ? -ENAMETOOLONG : 0;
}

/* The new identity, drawn and written into the store under the MAC lock
 * (vmlock_macs): the definition is in tmp/<id>/N/domain.xml before the
 * lock goes, where the scan of every later clone, in this daemon or
 * another, finds its MACs (macscan.h) while this one copies. */
static int claim_identity(struct plan *p, struct journal *j, char *msg, size_t msgsz)
{
    char tmpn[PATH_MAX], name[NAME_MAX_LEN + 16], tmp[PATH_MAX];
    int r = tmp_clone_dir(p, j, tmpn, sizeof(tmpn));
    if (r == 0)
        r = make_dirs(p, tmpn, msg, msgsz);
    if (r < 0)
        return r;
    int lock = vmlock_macs(p->c->s, VMLOCK_OP_WAIT_MS, p->c->cancelled, p->c->arg, msg, msgsz);
    if (lock < 0)
        return lock;
    r = rewrite_identity(p, msg, msgsz);
    snprintf(name, sizeof(name), "%s/domain.xml", p->name);
    struct store_perm xp;
    if (r == 0 && (r = vm_xml_perm(p->c->s, p->vm, &xp)) == 0) {
        xp.uid = p->c->cred.uid;
        xp.gid = p->c->cred.gid;
        r = vm_write_temp(j, p->dom, name, &xp, tmp, sizeof(tmp), msg, msgsz);
    }
    close(lock);
    return r;
}

static int prepare(struct plan *p, struct journal *j, char *msg, size_t msgsz)
{
    const struct store *s = p->c->s;
    char tmpn[PATH_MAX];
    int r = tmp_clone_dir(p, j, tmpn, sizeof(tmpn));
    if (r < 0)
        return r;
    for (size_t i = 0; i < p->ndisks; i++) {
        if ((size_t)snprintf(p->disks[i].dst, sizeof(p->disks[i].dst), "%s/disks/%s" IMAGE_SUFFIX,
                             tmpn, p->disks[i].dev) >= sizeof(p->disks[i].dst))
            return -ENAMETOOLONG;
    }
    bool reflinks = clonecopy_reflinks(s, j->tmpdir);
    uint64_t total = total_weight(p);
    struct job *job = jobs_start("clone", p->vm, p->name, total);
    int64_t t0 = now_ms();
    log_msg(LOG_INFO, "clone %s of %s%s%s: copying %zu disk%s, %.1f MiB%s", p->name, p->vm,
            p->snap ? " at " : "", p->snap ? p->snap : "", p->ndisks, p->ndisks == 1 ? "" : "s",
            (double)total / 1048576.0, reflinks ? " (reflinks)" : "");
    r = clonecopy_run(s, p->disks, p->ndisks, reflinks, job, p->c->cancelled, p->c->arg, msg,
                      msgsz);
    if (job)
        jobs_finish(job);
    if (r < 0)
        return r;
    double secs = (double)(now_ms() - t0) / 1000.0;
    log_msg(LOG_INFO, "clone %s of %s: copied %.1f MiB in %.2f s (%.1f MiB/s)", p->name, p->vm,
            (double)total / 1048576.0, secs,
            secs > 0 ? (double)total / 1048576.0 / secs : 0.0);
    /* qemu-img (or the reflink) made each one root's in the journal's
     * private directory: the caller's now, with its source's mode. */
    for (size_t i = 0; r == 0 && i < p->ndisks; i++) {
        struct store_perm fp;
        if ((r = owned_like(p, p->disks[i].src, &fp)) == 0 &&
            (r = perm_set(s, p->disks[i].dst, &fp)) < 0)
            snprintf(msg, msgsz, "%s: cannot give it its owner and mode: %s", p->disks[i].dst,
                     strerror(-r));
        if (r == 0)
            r = journal_prepared(j, p->disks[i].dst, msg, msgsz);
    }
    if (r == 0)
        r = copy_nvram(p, j, tmpn, msg, msgsz);
    if (r == 0 && (r = sync_dirs(s, tmpn)) < 0)
        snprintf(msg, msgsz, "cannot sync %s: %s", tmpn, strerror(-r));
    if (r == 0)
        r = journal_move(j, tmpn, p->clone_dir);
    return r;
}

/* ---- the operation ---- */

/* N's own lock, taken without waiting: held, it says a clone named N is
 * being made (here or by another daemon). */
int clone_reserve_name(const struct snap_ctx *c, const char *name, struct vmlock *l, char *msg,
                       size_t msgsz)
{
    char dir[PATH_MAX];
    if (store_vm_path(c->s, name, NULL, dir, sizeof(dir)) < 0)
        return -ENAMETOOLONG;
    if (storeio_exists(c->s, dir)) {
        snprintf(msg, msgsz, "%s already exists in the store", name);
        return -EEXIST;
    }
    int r = vmlock_acquire_mode(c->s, name, VMLOCK_EXCLUSIVE, VMLOCK_OP_WAIT_MS, 0, c->cancelled,
                                c->arg, l, msg, msgsz);
    if (r == -EAGAIN) {
        snprintf(msg, msgsz, "a clone named %s is being created", name);
        return -EEXIST;
    }
    if (r < 0)
        return r;
    /* Created meanwhile, or a clone of that name a crash left behind. */
    if (storeio_exists(c->s, dir)) {
        snprintf(msg, msgsz, "%s already exists in the store", name);
        r = -EEXIST;
    } else if ((r = vm_recover(c->s, name, msg, msgsz)) > 0) {
        r = storeio_exists(c->s, dir) ? -EEXIST : 0;
        if (r < 0)
            snprintf(msg, msgsz, "%s already exists in the store", name);
    }
    if (r < 0)
        vmlock_release(l);
    return r < 0 ? r : 0;
}

static int run(struct plan *p, char *msg, size_t msgsz)
{
    const struct store *s = p->c->s;
    int r = p->snap ? plan_snapshot(p, msg, msgsz) : plan_current(p, msg, msgsz);
    if (r == 0 && p->ndisks == 0) {
        snprintf(msg, msgsz, "the VM has no disk that can be cloned");
        r = -EINVAL;
    }
    if (r < 0)
        return r;
    struct journal j;
    if ((r = journal_begin(&j, s, "clone", p->name, msg, msgsz)) < 0)
        return r;
    r = claim_identity(p, &j, msg, msgsz);
    if (r == 0)
        r = prepare(p, &j, msg, msgsz);
    if (r == 0) {
        r = journal_commit(&j, msg, msgsz);
        if (r < 0 && j.committed) {
            /* Finish it now, under N's lock, or say it stays for later. */
            char again[MSG_MAX];
            if (vm_recover(s, p->name, again, sizeof(again)) >= 0)
                r = 0;
        }
    }
    if (r < 0 && !j.committed)
        journal_abort(&j);
    journal_free(&j);
    return r;
}

int clone_create(const struct snap_ctx *c, const char *vm, const char *snap, const char *newname,
                 char *msg, size_t msgsz)
{
    int64_t t0 = now_ms();
    if (!name_is_valid(newname)) {
        snprintf(msg, msgsz, "'%s' is not a valid VM name (1-64 of A-Z a-z 0-9 . _ + -, "
                             "not starting with . or -)", newname);
        return -EINVAL;
    }
    char dir[PATH_MAX];
    struct stat st;
    if (!name_is_valid(vm) || store_vm_path(c->s, vm, NULL, dir, sizeof(dir)) < 0 ||
        store_lstat(c->s, dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, msgsz, "no such VM");
        return -ENOENT;
    }
    /* A new VM is a new entry in the store's root: the caller needs the
     * right to make one there, as `mkdir STORE/N` would (write and
     * search), not only the right to write this VM's clones/. */
    if (!perm_cred_may(c->s, &c->cred, c->s->root, W_OK | X_OK)) {
        snprintf(msg, msgsz, "uid %u may not create entries in the store's root %s",
                 (unsigned)c->cred.uid, c->s->root);
        return -EACCES;
    }
    struct vmlock name_lock, src_lock;
    int r = clone_reserve_name(c, newname, &name_lock, msg, msgsz);
    if (r < 0)
        return r;
    if ((r = lock_source(c, vm, &src_lock, msg, msgsz)) < 0) {
        vmlock_release(&name_lock);
        return r;
    }
    if (snap && !store_snap_exists(c->s, vm, snap)) {
        snprintf(msg, msgsz, "no snapshot %s", snap);
        r = -ENOENT;
    }
    struct plan p = { .c = c, .vm = vm, .snap = snap, .name = newname };
    if (r == 0 && store_vm_path(c->s, newname, NULL, p.clone_dir, sizeof(p.clone_dir)) < 0)
        r = -ENAMETOOLONG;
    if (r == 0)
        r = run(&p, msg, msgsz);
    size_t ndisks = p.ndisks;
    plan_free(&p);
    vmlock_release(&src_lock);
    vmlock_release(&name_lock);
    if (r == 0)
        log_msg(LOG_INFO, "cloned %s%s%s as %s (%zu disk%s) in %lld ms", vm, snap ? " at " : "",
                snap ? snap : "", newname, ndisks, ndisks == 1 ? "" : "s",
                (long long)(now_ms() - t0));
    return r;
}
