/* checkimg: the images of one VM (check.h): headers, backing names, the
 * graph of what backs onto what, orphans, modes, and qemu-img check.
 *
 * Unlike chain_walk, which stops at the first bad link (what an
 * operation needs), the check reads every image once and keeps going, so
 * that one bad header does not hide the rest: each image's own header
 * and name are judged here, the chains afterwards on the graph. */
#include "config.h"

#include "ops/checkint.h"

#include "qemu/chain.h"
#include "qemu/qcow2check.h"
#include "qemu/qcow2hdr.h"
#include "qemu/qcow2refs.h"
#include "qemu/qimg.h"
#include "qemu/qspec.h"
#include "store/imagelock.h"
#include "store/storeio.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cvm_find(const struct cvm *v, const char *path)
{
    for (size_t i = 0; i < v->count; i++)
        if (strcmp(v->n[i].path, path) == 0)
            return (int)i;
    return -1;
}

static int add_node(struct cvm *v, const char *path, enum cnode_kind kind, const char *dir)
{
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct cnode *nn = realloc(v->n, cap * sizeof(*nn));
        if (!nn)
            return -ENOMEM;
        v->n = nn;
        v->cap = cap;
    }
    struct cnode *n = &v->n[v->count];
    memset(n, 0, sizeof(*n));
    n->parent = -1;
    n->missing = -1;
    n->kind = kind;
    if ((size_t)snprintf(n->path, sizeof(n->path), "%s", path) >= sizeof(n->path))
        return -ENAMETOOLONG;
    snprintf(n->dir, sizeof(n->dir), "%s", dir ? dir : "");
    const char *base = strrchr(path, '/');
    if (!dev_from_image_name(base ? base + 1 : path, n->dev, sizeof(n->dev)))
        n->dev[0] = '\0';
    return (int)v->count++;
}

/* ---- the scan of the VM's directories ---- */

struct scan {
    struct cvm *v;
    char dir[PATH_MAX];
    const char *snap; /* the snapshots/ directory being read, NULL for disks/ */
    bool hidden;
    int err;
};

static int scan_file(const char *name, void *ctx)
{
    struct scan *sc = ctx;
    char path[PATH_MAX], dev[DEV_MAX_LEN + 1];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", sc->dir, name) >= sizeof(path))
        return 0;
    if (sc->snap && strcmp(name, "snapshot.xml") == 0 && !sc->hidden) {
        sc->v->snaps[sc->v->nsnaps - 1].has_xml = true;
        return 0;
    }
    struct stat st;
    bool image = dev_from_image_name(name, dev, sizeof(dev)) &&
                 store_lstat(sc->v->s, path, &st) == 0 && S_ISREG(st.st_mode);
    /* Anything else in disks/ or a snapshot's directory is a file nothing
     * refers to: a node of kind N_OTHER, never read as an image. */
    int i = add_node(sc->v, path, !image ? N_OTHER : !sc->snap ? N_ACTIVE
                                               : sc->hidden   ? N_HIDDEN
                                                              : N_FROZEN,
                     sc->snap);
    if (i < 0)
        return sc->err = i;
    sc->v->n[i].exists = true;
    if (!image) {
        sc->v->n[i].dev[0] = '\0';
        sc->v->n[i].stray = true;
    }
    return 0;
}

static int add_snap(struct cvm *v, const char *name, bool hidden)
{
    if (v->nsnaps == v->capsnaps) {
        size_t cap = v->capsnaps ? v->capsnaps * 2 : 16;
        struct csnap *ns = realloc(v->snaps, cap * sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        v->snaps = ns;
        v->capsnaps = cap;
    }
    struct csnap *c = &v->snaps[v->nsnaps++];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->hidden = hidden;
    return 0;
}

static int scan_snapshots(struct cvm *v)
{
    struct scan top = { .v = v };
    /* The names first: the walk adds nodes, and a repair moves entries. */
    struct check_names names = { 0 };
    if ((size_t)snprintf(top.dir, sizeof(top.dir), "%s/snapshots", v->dir) >= sizeof(top.dir))
        return -ENAMETOOLONG;
    int r = storeio_each(v->s, top.dir, check_names_add, &names);
    for (size_t i = 0; i < names.n && r == 0; i++) {
        const char *name = names.v[i];
        struct scan sc = { .v = v, .snap = name, .hidden = name_is_hidden_dir(name) };
        if ((size_t)snprintf(sc.dir, sizeof(sc.dir), "%s/%s", top.dir, name) >= sizeof(sc.dir))
            continue;
        struct stat st;
        bool dir = store_lstat(v->s, sc.dir, &st) == 0 && S_ISDIR(st.st_mode);
        if (!dir || (!sc.hidden && !name_is_valid(name))) {
            /* No snapshot can be named so: nothing refers to it. */
            int k = add_node(v, sc.dir, N_OTHER, NULL);
            if (k < 0)
                r = k;
            else
                v->n[k].exists = v->n[k].stray = true;
            continue;
        }
        r = add_snap(v, name, sc.hidden);
        if (r == 0)
            r = storeio_each(v->s, sc.dir, scan_file, &sc);
        if (r == 0 && sc.err)
            r = sc.err;
    }
    check_names_free(&names);
    return r;
}

/* ---- each image's own header and backing name ---- */

static bool inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

static void read_node(struct cvm *v, int i)
{
    struct cnode *n = &v->n[i];
    char why[MSG_MAX];
    if (store_lstat(v->s, n->path, &n->st) < 0)
        return;
    n->exists = true;
    if (n->raw)
        return;
    int fd = store_open_read(v->s, n->path, why, sizeof(why));
    if (fd < 0) {
        check_add(v->rep, CK_BAD_HEADER, v->vm, n->path, "cannot be opened: %s", why);
        return;
    }
    v->rep->images++;
    struct qcow2_backing b;
    int r = check_kind_enabled(CK_BAD_HEADER) ? qcow2_check_header(fd, why, sizeof(why)) : 0;
    if (r == 0)
        r = qcow2_read_backing(fd, &b, why, sizeof(why));
    close(fd);
    if (r < 0) {
        check_add(v->rep, CK_BAD_HEADER, v->vm, n->path, "not a qcow2 image qemu opens: %s",
                  r == -EINVAL ? why : strerror(-r));
        n->broken = true;
        return;
    }
    n->header_ok = true;
    if (b.data_file) {
        check_add(v->rep, CK_BACKING_ESCAPE, v->vm, n->path,
                  "names an external data file: qemu would open another file by name");
        n->broken = true;
    }
    if (!b.name[0])
        return;
    if (!b.format[0]) {
        check_add(v->rep, CK_BACKING_NO_FORMAT, v->vm, n->path,
                  "backing file %s has no recorded format: qemu would probe it", b.name);
        n->broken = true;
    }
    char path[PATH_MAX];
    snprintf(n->backing_fmt, sizeof(n->backing_fmt), "%s", b.format);
    if (chain_check_name(v->s, n->path, b.name, b.format[0] ? b.format : "qcow2", path,
                         sizeof(path), why, sizeof(why)) < 0) {
        /* chain.h's reason names the image first: the finding does. */
        size_t pl = strlen(n->path);
        const char *reason = strncmp(why, n->path, pl) == 0 && why[pl] == ':' ? why + pl + 2 : why;
        check_add(v->rep, CK_BACKING_ESCAPE, v->vm, n->path, "%s", reason);
        n->broken = true;
        return;
    }
    if (!inside(path, v->dir)) {
        check_add(v->rep, CK_BACKING_ESCAPE, v->vm, n->path,
                  "backing file %s is outside the VM's directory", b.name);
        n->broken = true;
        return;
    }
    snprintf(n->backing, sizeof(n->backing), "%s", path);
    struct stat st;
    if (store_lstat(v->s, path, &st) < 0 || !S_ISREG(st.st_mode)) {
        n->broken = true;
        /* Relinked (with repair) once the whole graph is known. */
        if (check_add(v->rep, CK_BACKING_MISSING, v->vm, n->path,
                      "backing file %s (%s) does not exist", b.name, path))
            n->missing = (long)v->rep->n - 1;
        return;
    }
    int p = cvm_find(v, path);
    if (p < 0) {
        /* A file the VM's directories do not list (a raw base beside
         * them): part of the graph from here. */
        p = add_node(v, path, N_OTHER, NULL);
        if (p < 0)
            return;
        v->n[p].raw = strcmp(b.format, "raw") == 0;
        n = &v->n[i];
    }
    n->parent = p;
    v->n[p].ndeps++;
}

/* ---- the graph ---- */

/* Walks up from i: a loop is said once (at the loop's first image met),
 * a chain deeper than the limit once, at its top. */
static void walk_up(struct cvm *v, int i, int stamp)
{
    int depth = 0;
    for (int k = i; k >= 0; k = v->n[k].parent) {
        if (v->n[k].mark == stamp) {
            if (!v->n[k].loop_said) {
                for (int m = k;; m = v->n[m].parent) {
                    v->n[m].loop_said = true;
                    if (v->n[m].parent == k)
                        break;
                }
                check_add(v->rep, CK_BACKING_LOOP, v->vm, v->n[k].path,
                          "its backing chain comes back to it");
            }
            return;
        }
        if (v->n[k].loop_said)
            return;
        v->n[k].mark = stamp;
        if (++depth > CHAIN_MAX_DEPTH) {
            check_add(v->rep, CK_CHAIN_TOO_DEEP, v->vm, v->n[i].path,
                      "its backing chain is deeper than %d images", CHAIN_MAX_DEPTH);
            return;
        }
    }
}

static void check_graph(struct cvm *v)
{
    for (size_t i = 0; i < v->count; i++) {
        /* Every chain is walked from its top (an image nothing backs
         * onto) and each loop from one of its images: a loop has no top. */
        if (v->n[i].ndeps == 0 || v->n[i].mark == 0)
            if (check_kind_enabled(CK_BACKING_LOOP) || check_kind_enabled(CK_CHAIN_TOO_DEEP))
                walk_up(v, (int)i, (int)i + 1);
    }
    /* An image two disks grow from: a merge for one would change the
     * other. Each image's dependents are of its own disk. */
    for (size_t i = 0; i < v->count; i++) {
        const struct cnode *n = &v->n[i];
        if (n->parent < 0)
            continue;
        const struct cnode *p = &v->n[n->parent];
        if (p->dev[0] && n->dev[0] && strcmp(p->dev, n->dev) != 0)
            check_add(v->rep, CK_SHARED_PARENT, v->vm, p->path,
                      "backs disk %s (%s) as well as disk %s", n->dev, n->path, p->dev);
    }
}

/* An image looser than the image it grows from: the daemon's overlays
 * take their source's owner and mode (perm.h), so a looser one was not
 * made by it, or was changed since. */
static void check_modes(struct cvm *v)
{
    for (size_t i = 0; i < v->count; i++) {
        const struct cnode *n = &v->n[i];
        if (n->parent < 0 || n->kind == N_OTHER || !n->exists)
            continue;
        const struct cnode *p = &v->n[n->parent];
        if (!p->exists || p->kind == N_OTHER)
            continue;
        mode_t extra = n->st.st_mode & ~p->st.st_mode & 0777;
        if (extra || n->st.st_uid != p->st.st_uid)
            check_add(v->rep, CK_PERM_LOOSE, v->vm, n->path,
                      "mode %04o owner %u, looser than %s it grows from (mode %04o owner %u)",
                      (unsigned)(n->st.st_mode & 07777), (unsigned)n->st.st_uid, p->path,
                      (unsigned)(p->st.st_mode & 07777), (unsigned)p->st.st_uid);
    }
}

int check_images(struct cvm *v)
{
    struct scan sc = { .v = v };
    if ((size_t)snprintf(sc.dir, sizeof(sc.dir), "%s/disks", v->dir) >= sizeof(sc.dir))
        return -ENAMETOOLONG;
    int r = storeio_each(v->s, sc.dir, scan_file, &sc);
    if (r == 0 && sc.err)
        r = sc.err;
    if (r == 0)
        r = scan_snapshots(v);
    if (r < 0)
        return r;
    /* Nodes are added as backing names reach new files: read each once. */
    for (size_t i = 0; i < v->count; i++)
        if (!v->n[i].stray)
            read_node(v, (int)i);
    check_graph(v);
    if (check_kind_enabled(CK_PERM_LOOSE))
        check_modes(v);
    return 0;
}

void check_relinks(struct cvm *v)
{
    for (size_t i = 0; i < v->count && v->o->repair; i++)
        if (v->n[i].missing >= 0)
            fix_relink(v, &v->rep->f[v->n[i].missing], (int)i);
}

/* ---- orphans ---- */

void check_orphans(struct cvm *v)
{
    for (size_t i = 0; i < v->count; i++) {
        struct cnode *n = &v->n[i];
        if (!n->exists || n->ndeps || n->referenced)
            continue;
        /* Only what XML that was read would list: an image is never
         * taken for an orphan because the file that lists it is broken
         * (that file is the finding), nor a snapshot's images when its
         * snapshot.xml is missing (regenerated from them). */
        const struct csnap *snap = NULL;
        for (size_t k = 0; k < v->nsnaps; k++)
            if (strcmp(v->snaps[k].name, n->dir) == 0)
                snap = &v->snaps[k];
        const char *why = NULL;
        if (n->stray)
            why = "not a file the store has there";
        else if (n->kind == N_HIDDEN)
            why = "a hidden image nothing backs onto";
        else if (n->kind == N_FROZEN && snap && snap->xml_ok)
            why = "an image its snapshot.xml does not list, and nothing backs onto";
        else if (n->kind == N_ACTIVE && v->dom_ok)
            why = "an active image the definition has no disk for";
        if (!why)
            continue;
        struct check_finding *f = check_add(v->rep, CK_ORPHAN, v->vm, n->path, "%s", why);
        if (f && v->o->repair) {
            fix_orphan(v, f, (int)i);
            if (f->repaired)
                n->exists = false;
        }
    }
}

/* ---- qemu-img check, per image ---- */

struct qjob {
    struct cvm *v;
    int node;
    int err;
    bool counted; /* qcow2refs.h found every refcount right: no qemu-img */
    struct qimg_check chk;
    char msg[MSG_MAX];
};

struct qpool {
    struct qjob *jobs;
    size_t n;
    atomic_size_t next;
    bool repair;
    unsigned timeout;
    const char *qemu_img;
};

/* qemu-img check of one image alone: a chain of one link (the
 * descriptor this opened), its backing given as null, so that neither a
 * broken nor a looping parent is ever opened. */
static void run_job(struct qpool *p, struct qjob *j, bool repair)
{
    const struct cnode *n = &j->v->n[j->node];
    struct chain_link link;
    memset(&link, 0, sizeof(link));
    snprintf(link.path, sizeof(link.path), "%s", n->path);
    strcpy(link.format, "qcow2");
    int fd = store_open_file(j->v->s, n->path, (repair ? O_RDWR : O_RDONLY) | O_NOFOLLOW);
    if (fd < 0) {
        j->err = fd;
        snprintf(j->msg, sizeof(j->msg), "cannot open: %s", strerror(-fd));
        return;
    }
    /* Counted here first: qemu-img only for an image whose counts do
     * not all agree (or that uses what is not counted here). */
    char why[256];
    if (!repair && qcow2_refcounts_clean(fd, why, sizeof(why)) == 1) {
        j->counted = true;
        j->err = 0;
        memset(&j->chk, 0, sizeof(j->chk));
        close(fd);
        return;
    }
    j->counted = false;
    struct chain c = { .links = &link, .fds = &fd, .n = 1 };
    char *spec = NULL;
    struct spawn_fds fds;
    j->err = qspec_chain(&c, 0, false, &spec, &fds);
    if (j->err == 0)
        j->err = qimg_check_image(p->qemu_img, spec, &fds, p->timeout, repair, &j->chk, j->msg,
                                  sizeof(j->msg));
    else
        snprintf(j->msg, sizeof(j->msg), "%s", strerror(-j->err));
    free(spec);
    close(fd);
}

static void *worker(void *arg)
{
    struct qpool *p = arg;
    for (;;) {
        size_t k = atomic_fetch_add(&p->next, 1);
        if (k >= p->n)
            return NULL;
        run_job(p, &p->jobs[k], p->repair);
    }
}

static void run_pool(struct qpool *p, unsigned parallel)
{
    pthread_t t[32];
    size_t nt = 0;
    atomic_store(&p->next, 0);
    if (parallel > 32)
        parallel = 32;
    for (; nt + 1 < parallel && nt + 1 < p->n; nt++)
        if (pthread_create(&t[nt], NULL, worker, p) != 0)
            break;
    worker(p);
    for (size_t i = 0; i < nt; i++)
        pthread_join(t[i], NULL);
}

void check_qemu(struct cvm *v)
{
    if (!check_kind_enabled(CK_LEAKS) && !check_kind_enabled(CK_CORRUPT) &&
        !check_kind_enabled(CK_TIMEOUT))
        return;
    struct qpool p = { .timeout = v->o->timeout_sec ? v->o->timeout_sec : CHECK_TIMEOUT_DEFAULT,
                       .qemu_img = v->s->qemu_img };
    p.jobs = calloc(v->count ? v->count : 1, sizeof(*p.jobs));
    if (!p.jobs)
        return;
    for (size_t i = 0; i < v->count; i++)
        if (v->n[i].exists && v->n[i].header_ok)
            p.jobs[p.n++] = (struct qjob){ .v = v, .node = (int)i };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned parallel = v->o->parallel ? v->o->parallel : (unsigned)(cpus > 0 ? cpus * 2 : 2);
    run_pool(&p, parallel);
    for (size_t k = 0; k < p.n; k++)
        v->rep->qemu_checks += !p.jobs[k].counted;
    v->rep->counted += p.n;
    size_t nfix = 0;
    for (size_t k = 0; k < p.n; k++) {
        struct qjob *j = &p.jobs[k];
        const char *path = v->n[j->node].path;
        if (j->err == -ETIMEDOUT) {
            check_add(v->rep, CK_TIMEOUT, v->vm, path, "qemu-img check did not end within %u s",
                      p.timeout);
        } else if (j->err == -EBUSY) {
            /* A qemu has it open for writing: its leaks are its own. */
            log_msg(LOG_INFO, "check: %s is in use, not checked by qemu-img: %s", path, j->msg);
        } else if (j->err < 0) {
            check_add(v->rep, CK_CORRUPT, v->vm, path, "%s", j->msg);
        } else {
            if (j->chk.corruptions || j->chk.check_errors)
                check_add(v->rep, CK_CORRUPT, v->vm, path,
                          "qemu-img check: %llu corruption(s), %llu check error(s)",
                          (unsigned long long)j->chk.corruptions,
                          (unsigned long long)j->chk.check_errors);
            if (j->chk.leaks && check_kind_enabled(CK_LEAKS))
                p.jobs[nfix++] = *j;
        }
    }
    /* Leaks found: each one said, and with repair freed (-r leaks), the
     * image's own qemu-img taking its write lock. */
    for (size_t k = 0; k < nfix; k++) {
        struct qjob *j = &p.jobs[k];
        struct check_finding *f = check_add(v->rep, CK_LEAKS, v->vm, v->n[j->node].path,
                                            "%llu leaked cluster(s)",
                                            (unsigned long long)j->chk.leaks);
        if (!f || !v->o->repair)
            continue;
        struct qpool one = p;
        one.jobs = j;
        one.n = 1;
        uint64_t before = j->chk.leaks;
        /* Writers through a mount kept off an active image; qemu-img
         * takes qemu's own lock (a qemu holding it: refused). */
        const char *busy;
        struct check_hold h = { -1, -1 };
        if (v->n[j->node].kind == N_ACTIVE && check_hold(v, j->node, &h, &busy) < 0) {
            check_action(f, false, "%s", busy);
            continue;
        }
        if (v->n[j->node].kind == N_ACTIVE && h.image >= 0) {
            imagelock_drop(h.image); /* qemu-img takes it itself */
            h.image = -1;
        }
        run_job(&one, j, true);
        if (v->n[j->node].kind == N_ACTIVE)
            check_release(&h);
        if (j->err == 0 && !j->chk.leaks && !j->chk.corruptions)
            check_action(f, true, "qemu-img check -r leaks freed %llu cluster(s)",
                         (unsigned long long)(j->chk.leaks_fixed ? j->chk.leaks_fixed : before));
        else
            check_action(f, false, "qemu-img check -r leaks: %s",
                         j->err < 0 ? j->msg : "leaks left");
    }
    free(p.jobs);
}

void cvm_free(struct cvm *v)
{
    free(v->n);
    free(v->snaps);
    if (v->dom)
        xmlFreeDoc(v->dom);
    v->n = NULL;
    v->snaps = NULL;
    v->dom = NULL;
}
