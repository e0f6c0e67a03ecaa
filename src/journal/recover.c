/* recover: finishing what a crash left in the journal: committed records
 * rolled forward (apply.c), others rolled back, stray temporary files
 * removed; and counting what is pending. */
#include "config.h"

#include "journal/jint.h"

#include "store/imagelock.h"
#include "store/storeio.h"
#include "store/vmlock.h"
#include "util/log.h"
#include "util/monotime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STALE_RECORD_SECONDS 60
/* How long a mount's recovery waits for an image's lock to go: enough
 * for a killed daemon's qemu-img to exit after it. */
#define RECOVER_IMAGE_WAIT_MS 10000

/* Had the record's temporary directory begun to go when the crash came?
 * Earlier versions removed it before the record, once every step was
 * applied: then nothing is left to do, while a replay would fail for good
 * on a move into that directory (its target gone with it, its source long
 * gone). Today's order (record.c) leaves no such record: a committed
 * record's directory exists from before its commit, and nothing but the
 * cleanup removes what a move put there. */
static bool cleanup_began(const struct store *s, const struct journal *j)
{
    char tmp[PATH_MAX];
    if (journal_meta_path(s, "tmp", j->id, "", tmp, sizeof(tmp)) < 0)
        return false;
    if (!storeio_exists(s, tmp))
        return true;
    size_t tl = strlen(tmp);
    for (size_t i = 0; i < j->nsteps; i++) {
        const struct jstep *st = &j->steps[i];
        if (st->kind == JS_MOVE && strncmp(st->b, tmp, tl) == 0 && st->b[tl] == '/' &&
            !storeio_exists(s, st->a) && !storeio_exists(s, st->b))
            return true;
    }
    return false;
}

static bool is_image_path(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n > 6 && strcmp(path + n - 6, ".qcow2") == 0;
}

/* A daemon killed in the middle of a merge leaves its qemu-img to die
 * after it (PR_SET_PDEATHSIG): until that one has exited it holds qemu's
 * locks on the images, and a step meeting them would leave the record in
 * the journal, its VM refusing operations. Before a mount serves anything
 * its recovery waits a while for the images the steps left touch; a
 * qemu that stays (a VM running) is then met by the steps, as before. */
static void wait_for_images(const struct store *s, const struct journal *j)
{
    int64_t deadline = now_ms() + RECOVER_IMAGE_WAIT_MS;
    bool said = false;
    for (size_t i = j->done; i < j->nsteps; i++) {
        const struct jstep *st = &j->steps[i];
        const char *paths[2] = { st->a, jstep_b_is_name(st->kind) ? NULL : st->b };
        for (size_t k = 0; k < 2; k++) {
            if (!is_image_path(paths[k]))
                continue;
            int fd = imagelock_hold(s, paths[k]);
            if (fd == -EBUSY) {
                if (!said)
                    log_msg(LOG_NOTICE, "journal: %s of %s: %s is locked (a qemu-img of the "
                            "daemon that stopped may still be exiting): waiting up to %d s",
                            j->op, j->vm, paths[k], RECOVER_IMAGE_WAIT_MS / 1000);
                said = true;
                int64_t left = deadline - now_ms();
                fd = imagelock_hold_wait(s, paths[k], left > 0 ? (int)left : 0);
            }
            if (fd == -EBUSY) {
                log_msg(LOG_WARNING, "journal: %s of %s: %s is still locked after %d s",
                        j->op, j->vm, paths[k], RECOVER_IMAGE_WAIT_MS / 1000);
                return;
            }
            imagelock_drop(fd);
        }
    }
}

static bool (*defer_data)(const char *vm);

void journal_set_defer_data(bool (*defer)(const char *vm))
{
    defer_data = defer;
}

static void release_others(struct vmlock *locks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        vmlock_release(&locks[i]);
    free(locks);
}

/* The locks of the VMs a record names (journal_names_vm) but held, which
 * the caller holds, one try each: a record that changes several VMs (a
 * VM rename) is finished with none of them changing under it. -EBUSY,
 * with none kept, when one is taken. */
static int lock_others(const struct store *s, const struct journal *j, const char *held,
                       struct vmlock **out, size_t *n, char *msg, size_t msgsz)
{
    *out = NULL;
    *n = 0;
    if (!j->nalso)
        return 0;
    struct vmlock *l = calloc(j->nalso + 1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    for (size_t i = 0; i <= j->nalso; i++) {
        const char *other = i == 0 ? j->vm : j->also[i - 1];
        if (strcmp(other, held) == 0)
            continue;
        char why[MSG_MAX];
        int r = vmlock_acquire(s, other, 0, NULL, NULL, &l[*n], why, sizeof(why));
        if (r < 0) {
            snprintf(msg, msgsz, "%s of %s also changes %s, which is busy: %s", j->op, j->vm,
                     other, why);
            release_others(l, *n);
            *n = 0;
            return r;
        }
        (*n)++;
    }
    *out = l;
    return 0;
}

/* 0 when done (or not this call's), 1 when left to the background
 * worker, -errno. */
static int recover_one(const struct store *s, const char *path, const char *vm, int *done,
                       char *msg, size_t msgsz)
{
    struct journal j;
    int r = journal_load_record(s, path, &j, msg, msgsz);
    if (r < 0) {
        journal_free(&j);
        /* Within one VM's operation, another VM's unreadable record is
         * not this operation's to fail on: the next mount reports it. */
        return vm ? 0 : r;
    }
    if (vm && !journal_names_vm(&j, vm)) {
        journal_free(&j);
        return 0;
    }
    /* Without vm the caller holds no lock: the operation may be running
     * in another daemon right now, and is recovered only if its VM's lock
     * is free. The record is read again under the lock: what was read
     * before may have been finished (and removed) by its owner since. */
    struct vmlock lk = { -1, -1 };
    if (!vm) {
        char why[MSG_MAX], vmname[sizeof(j.vm)];
        snprintf(vmname, sizeof(vmname), "%s", j.vm);
        journal_free(&j);
        r = vmlock_acquire(s, vmname[0] ? vmname : NULL, 0, NULL, NULL, &lk, why, sizeof(why));
        if (r < 0)
            return r == -EBUSY ? 0 : r;
        if (!storeio_exists(s, path)) {
            vmlock_release(&lk);
            return 0;
        }
        if ((r = journal_load_record(s, path, &j, msg, msgsz)) < 0 || strcmp(j.vm, vmname) != 0) {
            vmlock_release(&lk);
            journal_free(&j);
            return r < 0 ? r : 0;
        }
    }
    /* The other VMs it changes: theirs too, whoever the caller is. */
    struct vmlock *others = NULL;
    size_t nothers = 0;
    r = lock_others(s, &j, vm ? vm : j.vm, &others, &nothers, msg, msgsz);
    if (r < 0) {
        vmlock_release(&lk);
        journal_free(&j);
        /* Busy: its own operation may be running (a mount skips it, as
         * for its own VM); an operation of one of its VMs waits. */
        return vm || r != -EBUSY ? r : 0;
    }
    if (j.committed && journal_has_data_steps(&j) && defer_data && defer_data(j.vm)) {
        /* Its merge is the background worker's (journal_set_defer_data):
         * a mount serves first, an operation on the VM waits for it. */
        release_others(others, nothers);
        vmlock_release(&lk);
        journal_free(&j);
        return 1;
    }
    if (j.committed && cleanup_began(s, &j)) {
        log_msg(LOG_NOTICE, "journal: %s of %s: every step was applied before a crash while its "
                "temporary directory was removed", j.op, j.vm);
        r = journal_remove_record(s, j.id);
        if (r < 0)
            snprintf(msg, msgsz, "cannot remove journal record %s: %s", j.id, strerror(-r));
    } else if (j.committed) {
        /* With vm, an operation of this daemon recovers under the VM's
         * lock while a request waits on it: no long wait there. */
        if (!vm)
            wait_for_images(s, &j);
        r = journal_apply_all(&j, false, msg, msgsz);
    } else {
        r = journal_remove_record(s, j.id);
        if (r < 0)
            snprintf(msg, msgsz, "cannot roll back %s: %s", j.id, strerror(-r));
    }
    if (r == 0) {
        log_msg(LOG_NOTICE, "journal: %s of %s %s", j.op, j.vm[0] ? j.vm : "the store",
                j.committed ? "finished (rolled forward)" : "undone (rolled back)");
        (*done)++;
    }
    release_others(others, nothers);
    vmlock_release(&lk);
    journal_free(&j);
    return r;
}

typedef int (*dir_visit_fn)(const struct store *s, const char *dir, const char *name, void *arg);

static int walk_meta_dir(const struct store *s, const char *sub, dir_visit_fn fn, void *arg)
{
    char dir[PATH_MAX];
    if (journal_meta_path(s, sub, "", "", dir, sizeof(dir)) < 0)
        return -ENAMETOOLONG;
    int fd = store_open(s, dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return fd == -ENOENT ? 0 : fd;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    /* Names first: the visitors change the directory. */
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof(*names));
            if (!nn)
                break;
            names = nn;
        }
        if ((names[n] = strdup(de->d_name)) != NULL)
            n++;
    }
    closedir(d);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        if (r == 0)
            r = fn(s, dir, names[i], arg);
        free(names[i]);
    }
    free(names);
    return r;
}

struct recover_ctx {
    const char *vm;
    int done;
    int failed;
    int err; /* the errno all failures share, else -EIO */
    int deferred; /* left to the background worker */
    char *msg;
    size_t msgsz;
};

static int visit_record(const struct store *s, const char *dir, const char *name, void *arg)
{
    struct recover_ctx *c = arg;
    size_t len = strlen(name);
    if (name[0] == '.' || len < 6 || strcmp(name + len - 5, ".json") != 0)
        return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int r = recover_one(s, path, c->vm, &c->done, c->msg, c->msgsz);
    if (r == 1)
        c->deferred++;
    else if (r < 0) {
        log_msg(LOG_ERR, "journal: cannot recover %s: %s", path, c->msg);
        c->failed++;
        r = r == -EDQUOT ? -ENOSPC : r;
        c->err = c->failed == 1 ? r : c->err == r ? r : -EIO;
    }
    return 0;
}

/* A temporary directory whose record is gone: its operation finished or
 * was undone, and a crash came before the directory went (the record goes
 * first: record.c). Nothing refers to it. */
static int visit_tmp(const struct store *s, const char *dir, const char *name, void *arg)
{
    (void)arg;
    char rec[PATH_MAX], path[PATH_MAX];
    if (journal_meta_path(s, "journal", name, ".json", rec, sizeof(rec)) < 0 || storeio_exists(s, rec))
        return 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (storeio_rmtree(s, path) == 0)
        log_msg(LOG_NOTICE, "journal: removed %s, left by an unfinished operation", path);
    return 0;
}

/* A record's temporary file (.<id>.tmp, record.c) a crash left while it
 * was written. Every writer of a record holds the store's lock (shared,
 * with its VM's: vmlock.h), so with that lock exclusive (one try: the
 * mount's own recovery holds nothing else) every one is left over; when
 * another daemon is working, only one nobody has touched for a while. */
static int visit_record_temp(const struct store *s, const char *dir, const char *name,
                             void *arg)
{
    bool alone = *(bool *)arg;
    size_t len = strlen(name);
    if (name[0] != '.' || len < 5 || strcmp(name + len - 4, ".tmp") != 0)
        return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct stat st;
    if (store_lstat(s, path, &st) == 0 && S_ISREG(st.st_mode) &&
        (alone || time(NULL) - st.st_mtime > STALE_RECORD_SECONDS) &&
        storeio_unlink(s, path) == 0)
        log_msg(LOG_NOTICE, "journal: removed %s, a record a crash left half written", path);
    return 0;
}

static void remove_record_temps(const struct store *s)
{
    struct vmlock lk;
    char why[MSG_MAX];
    bool alone = vmlock_acquire(s, NULL, 0, NULL, NULL, &lk, why, sizeof(why)) == 0;
    walk_meta_dir(s, "journal", visit_record_temp, &alone);
    if (alone)
        vmlock_release(&lk);
}

int journal_recover(const struct store *s, const char *vm, char *msg, size_t msgsz)
{
    struct recover_ctx c = { .vm = vm, .msg = msg, .msgsz = msgsz };
    int r = walk_meta_dir(s, "journal", visit_record, &c);
    if (r < 0) {
        snprintf(msg, msgsz, "cannot read the journal: %s", strerror(-r));
        return r;
    }
    if (!vm) {
        remove_record_temps(s);
        walk_meta_dir(s, "tmp", visit_tmp, NULL);
    }
    if (c.failed) {
        snprintf(msg, msgsz, "%d unfinished operation(s) could not be recovered (see the log)",
                 c.failed);
        /* A full disk, or an image a qemu (of another daemon) holds, is
         * said as such: the work is retried (sync VMDIR reports ENOSPC
         * or EBUSY, not an I/O error). */
        return c.err == -ENOSPC || c.err == -EBUSY ? c.err : -EIO;
    }
    if (vm && c.deferred) {
        snprintf(msg, msgsz, "a merge a crash left is being finished in the background");
        return -EBUSY;
    }
    if (c.deferred)
        log_msg(LOG_NOTICE, "journal: %d unfinished merge(s) left to the background worker",
                c.deferred);
    return c.done;
}

static int count_record(const struct store *s, const char *dir, const char *name, void *arg)
{
    (void)s;
    (void)dir;
    size_t len = strlen(name);
    if (name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0)
        (*(int *)arg)++;
    return 0;
}

struct pending_for {
    const char *vm;
    int n;
};

static int count_vm_record(const struct store *s, const char *dir, const char *name, void *arg)
{
    struct pending_for *p = arg;
    size_t len = strlen(name);
    if (name[0] == '.' || len < 6 || strcmp(name + len - 5, ".json") != 0)
        return 0;
    char path[PATH_MAX], msg[MSG_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct journal j;
    /* A record that cannot be read counts: recovery is what reports it. */
    if (journal_load_record(s, path, &j, msg, sizeof(msg)) < 0 || journal_names_vm(&j, p->vm))
        p->n++;
    journal_free(&j);
    return 0;
}

int journal_pending_for(const struct store *s, const char *vm)
{
    struct pending_for p = { vm, 0 };
    int r = walk_meta_dir(s, "journal", count_vm_record, &p);
    return r < 0 ? r : p.n;
}

int journal_pending(const struct store *s)
{
    int n = 0;
    int r = walk_meta_dir(s, "journal", count_record, &n);
    return r < 0 ? r : n;
}

struct each_ctx {
    void (*fn)(const struct journal_entry *e, void *arg);
    void *arg;
};

static int each_record(const struct store *s, const char *dir, const char *name, void *arg)
{
    struct each_ctx *c = arg;
    size_t len = strlen(name);
    if (name[0] == '.' || len < 6 || strcmp(name + len - 5, ".json") != 0)
        return 0;
    char path[PATH_MAX], msg[MSG_MAX] = "", id[64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(id, sizeof(id), "%.*s", (int)(len - 5), name);
    struct journal j;
    int r = journal_load_record(s, path, &j, msg, sizeof(msg));
    struct journal_entry e = { .path = path, .id = id, .op = r < 0 ? "" : j.op,
                               .vm = r < 0 ? "" : j.vm, .committed = r == 0 && j.committed,
                               .unreadable = r < 0, .why = msg };
    c->fn(&e, c->arg);
    journal_free(&j);
    return 0;
}

static int each_tmp(const struct store *s, const char *dir, const char *name, void *arg)
{
    struct each_ctx *c = arg;
    char rec[PATH_MAX], path[PATH_MAX];
    if (journal_meta_path(s, "journal", name, ".json", rec, sizeof(rec)) < 0 ||
        storeio_exists(s, rec))
        return 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct journal_entry e = { .path = path, .id = name, .op = "", .vm = "", .stray_tmp = true,
                               .why = "" };
    c->fn(&e, c->arg);
    return 0;
}

int journal_each(const struct store *s, void (*fn)(const struct journal_entry *e, void *arg),
                 void *arg)
{
    struct each_ctx c = { fn, arg };
    int r = walk_meta_dir(s, "journal", each_record, &c);
    return r < 0 ? r : walk_meta_dir(s, "tmp", each_tmp, &c);
}
