#include "config.h"

#include "ctl/lvirt.h"

#include "meta/snapxml.h"
#include "meta/xmlsafe.h"
#include "ops/importtree.h"
#include "store/storeio.h"
#include "store/vmlock.h"
#include "util/log.h"
#include "util/spawn.h"
#include "vm/current.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A virsh answers in seconds; one that hangs (a libvirtd gone) ends. */
#define VIRSH_TIMEOUT_SEC 120

struct texts {
    struct import_text *v;
    char **bufs; /* owned: v[i].xml, v[i].what */
    size_t n, cap, nbufs, capbufs;
};

static char *keep(struct texts *t, char *p)
{
    if (!p)
        return NULL;
    if (t->nbufs == t->capbufs) {
        size_t cap = t->capbufs ? 2 * t->capbufs : 16;
        char **n = realloc(t->bufs, cap * sizeof(*n));
        if (!n) {
            free(p);
            return NULL;
        }
        t->bufs = n;
        t->capbufs = cap;
    }
    return t->bufs[t->nbufs++] = p;
}

static int add_text(struct texts *t, char *xml, size_t len, const char *what)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 8;
        struct import_text *n = realloc(t->v, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        t->v = n;
        t->cap = cap;
    }
    char *w = keep(t, strdup(what));
    if (!keep(t, xml) || !w)
        return -ENOMEM;
    t->v[t->n++] = (struct import_text){ xml, len, w };
    return 0;
}

static void texts_free(struct texts *t)
{
    for (size_t i = 0; i < t->nbufs; i++)
        free(t->bufs[i]);
    free(t->bufs);
    free(t->v);
}

/* A whole file (bounded as any XML the store reads). */
static int read_file(const char *path, char **out, size_t *len, char *msg, size_t msgsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(msg, msgsz, "%s: %s", path, strerror(errno));
        return -errno;
    }
    char *buf = malloc(XMLSAFE_MAX_BYTES + 1);
    size_t n = 0;
    ssize_t k = 0;
    while (buf && n <= XMLSAFE_MAX_BYTES &&
           (k = read(fd, buf + n, XMLSAFE_MAX_BYTES + 1 - n)) > 0)
        n += (size_t)k;
    int e = k < 0 ? errno : 0;
    close(fd);
    if (!buf)
        return -ENOMEM;
    if (e || n > XMLSAFE_MAX_BYTES) {
        free(buf);
        snprintf(msg, msgsz, "%s: %s", path, e ? strerror(e) : "larger than an XML file may be");
        return e ? -e : -EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int lvirt_import_dir(const struct snap_ctx *c, const char *name, const char *dir, char *msg,
                     size_t msgsz)
{
    char base[PATH_MAX], path[PATH_MAX * 2];
    if (!realpath(dir, base)) {
        snprintf(msg, msgsz, "%s: %s", dir, strerror(errno));
        return -errno;
    }
    struct texts t = { 0 };
    char *xml;
    size_t len;
    snprintf(path, sizeof(path), "%s/domain.xml", base);
    int r = read_file(path, &xml, &len, msg, msgsz);
    if (r == 0)
        r = add_text(&t, xml, len, path);
    snprintf(path, sizeof(path), "%s/snapshots", base);
    DIR *d = r == 0 ? opendir(path) : NULL;
    for (struct dirent *e; d && r == 0 && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".xml") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/snapshots/%s", base, e->d_name);
        if ((r = read_file(path, &xml, &len, msg, msgsz)) == 0)
            r = add_text(&t, xml, len, path);
    }
    if (d)
        closedir(d);
    if (r == 0) {
        struct import_source src = { t.v[0], t.v + 1, t.n - 1, base };
        r = vm_import_tree(c, name, &src, msg, msgsz);
    }
    texts_free(&t);
    return r;
}

/* virsh in PATH, absolute (spawn runs no shell and no PATH search). */
static int find_virsh(char *out, size_t outsz)
{
    const char *env = getenv("PATH");
    char path[4096];
    snprintf(path, sizeof(path), "%s", env && *env ? env : "/usr/bin:/bin");
    for (char *save, *p = strtok_r(path, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
        if (p[0] != '/')
            continue;
        if ((size_t)snprintf(out, outsz, "%s/virsh", p) < outsz && access(out, X_OK) == 0)
            return 0;
    }
    return -ENOENT;
}

/* virsh [-c URI] ARGS...: its stdout (malloc'd, owned by the caller). */
static int virsh(const char *uri, const char *const *args, char **out, size_t *len, char *msg,
                 size_t msgsz)
{
    char exe[PATH_MAX];
    if (find_virsh(exe, sizeof(exe)) < 0) {
        snprintf(msg, msgsz, "no virsh in PATH: libvirt's client is needed to reach libvirt");
        return -ENOENT;
    }
    const char *argv[16];
    size_t n = 0;
    argv[n++] = exe;
    argv[n++] = "-q";
    if (uri) {
        argv[n++] = "-c";
        argv[n++] = uri;
    }
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct spawn_result res;
    int r = spawn_run(argv, VIRSH_TIMEOUT_SEC, &res);
    if (r < 0) {
        char line[MSG_MAX];
        spawn_last_err_line(&res, line, sizeof(line));
        snprintf(msg, msgsz, "virsh %s %s: %s", args[0], args[1] ? args[1] : "",
                 line[0] ? line : strerror(-r));
    } else if (out) {
        *out = res.out;
        *len = res.out_len;
        res.out = NULL;
    }
    spawn_result_free(&res);
    return r;
}

int lvirt_import_libvirt(const struct snap_ctx *c, const char *name, const char *uri,
                         const char *domain, char *msg, size_t msgsz)
{
    struct texts t = { 0 };
    char *xml, *names = NULL;
    size_t len;
    const char *dump[] = { "dumpxml", "--inactive", "--security-info", domain, NULL };
    const char *list[] = { "snapshot-list", domain, "--name", NULL };
    int r = virsh(uri, dump, &xml, &len, msg, msgsz);
    if (r == 0)
        r = add_text(&t, xml, len, "virsh dumpxml");
    if (r == 0)
        r = virsh(uri, list, &names, &len, msg, msgsz);
    char *save = NULL;
    for (char *s = r == 0 ? strtok_r(names, "\n", &save) : NULL; s && r == 0;
         s = strtok_r(NULL, "\n", &save)) {
        if (!*s)
            continue;
        const char *one[] = { "snapshot-dumpxml", domain, s, NULL };
        char what[256];
        snprintf(what, sizeof(what), "virsh snapshot-dumpxml %.200s", s);
        if ((r = virsh(uri, one, &xml, &len, msg, msgsz)) == 0)
            r = add_text(&t, xml, len, what);
    }
    free(names);
    if (r == 0) {
        struct import_source src = { t.v[0], t.v + 1, t.n - 1, NULL };
        r = vm_import_tree(c, name, &src, msg, msgsz);
    }
    texts_free(&t);
    return r;
}

struct snaps {
    const struct store *s;
    const char *vm;
    struct snap_info *v;
    size_t n, cap;
};

static int add_snap(const char *name, void *arg)
{
    struct snaps *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct snap_info *n = realloc(l->v, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        l->v = n;
        l->cap = cap;
    }
    char why[MSG_MAX];
    memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
    int r = store_snap_info(l->s, l->vm, name, &l->v[l->n], why, sizeof(why));
    if (r == 0)
        l->n++;
    return r;
}

struct order {
    int depth; /* 0: a root */
    int64_t ctime;
    size_t i;
};

static int cmp_order(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    return x->ctime < y->ctime ? -1 : x->ctime > y->ctime;
}

/* The snapshots parents first (depth in the tree, then creation time):
 * libvirt refuses a snapshot whose parent it does not know. Each parent
 * found once, each walk up bounded (a loop ends it). */
static struct order *parents_first(const struct snaps *l)
{
    struct order *o = calloc(l->n ? l->n : 1, sizeof(*o));
    int *up = calloc(l->n ? l->n : 1, sizeof(*up));
    for (size_t i = 0; o && up && i < l->n; i++) {
        up[i] = -1;
        for (size_t k = 0; l->v[i].parent && k < l->n; k++)
            if (strcmp(l->v[k].name, l->v[i].parent) == 0)
                up[i] = (int)k;
    }
    for (size_t i = 0; o && up && i < l->n; i++) {
        o[i] = (struct order){ 0, l->v[i].creation_time, i };
        for (int p = up[i]; p >= 0 && o[i].depth <= (int)l->n; p = up[p])
            o[i].depth++;
    }
    if (o && up)
        qsort(o, l->n, sizeof(*o), cmp_order);
    free(up);
    if (!up) {
        free(o);
        return NULL;
    }
    return o;
}

int lvirt_export(const struct snap_ctx *c, const char *vm, const char *uri, char *msg,
                 size_t msgsz)
{
    char xml[PATH_MAX], cur[PATH_MAX] = "";
    struct vmlock lock;
    /* Shared: the store's XML does not change while libvirt reads it. */
    int r = vmlock_acquire_mode(c->s, vm, VMLOCK_SHARED, VMLOCK_OP_WAIT_MS, VMLOCK_OP_WAIT_MS,
                                c->cancelled, c->arg, &lock, msg, msgsz);
    if (r < 0)
        return r;
    struct snaps l = { .s = c->s, .vm = vm };
    if (store_vm_path(c->s, vm, "domain.xml", xml, sizeof(xml)) < 0 || !storeio_exists(c->s, xml)) {
        snprintf(msg, msgsz, "%s has no domain.xml", vm);
        r = -ENOENT;
    }
    if (r == 0)
        r = store_list_snapshots(c->s, vm, add_snap, &l);
    if (r < 0 && !msg[0])
        snprintf(msg, msgsz, "cannot read %s's snapshots: %s", vm, strerror(-r));
    if (current_snapshot(c->s, vm, cur, sizeof(cur)) < 0)
        cur[0] = '\0';
    const char *def[] = { "define", xml, NULL };
    if (r == 0)
        r = virsh(uri, def, NULL, NULL, msg, msgsz);
    struct order *o = r == 0 ? parents_first(&l) : NULL;
    if (r == 0 && !o)
        r = -ENOMEM;
    for (size_t k = 0; r == 0 && k < l.n; k++) {
        const struct snap_info *si = &l.v[o[k].i];
        char path[PATH_MAX];
        if (store_snap_path(c->s, vm, si->name, "snapshot.xml", path, sizeof(path)) < 0)
            r = -ENAMETOOLONG;
        const char *redef[] = { "snapshot-create", vm, path, "--redefine", "--validate",
                                strcmp(cur, si->name) == 0 ? "--current" : NULL, NULL };
        if (r == 0)
            r = virsh(uri, redef, NULL, NULL, msg, msgsz);
    }
    free(o);
    for (size_t i = 0; i < l.n; i++)
        snapxml_free(&l.v[i]);
    free(l.v);
    vmlock_release(&lock);
    if (r == 0)
        printf("defined %s in libvirt with %zu snapshot%s%s%s\n", vm, l.n, l.n == 1 ? "" : "s",
               cur[0] ? ", current " : "", cur);
    return r;
}
