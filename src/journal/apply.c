/* apply: a committed operation's steps, applied in order, each one
 * idempotent and made durable before any later step that depends on it
 * (the replay contract is the table in journal.h, the durable order
 * below it). The data steps (pull, commit) are not run
 * here: the layer that knows merges plugs its runner in
 * (journal_set_data_runner; vm/merge.c), so the journal itself never
 * starts a long qemu-img job. */
#include "config.h"

#include "journal/jint.h"

#include "qemu/chain.h"
#include "qemu/qcow2edit.h"
#include "qemu/qimg.h"
#include "qemu/qspec.h"
#include "store/imagelock.h"
#include "store/storeio.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REBASE_TIMEOUT 60

static journal_data_fn data_runner;

void journal_set_data_runner(journal_data_fn fn)
{
    data_runner = fn;
}

static int run_data_step(struct journal *j, const struct jstep *st, char *msg, size_t msgsz)
{
    if (!data_runner) {
        snprintf(msg, msgsz, "%s %s: no data-step runner is installed (a front end must call "
                 "merge_install)", journal_kind_names[st->kind], st->a);
        return -ENOSYS;
    }
    return data_runner(j, st, msg, msgsz);
}

/* The header edited in place when only the name changes (qcow2edit.h:
 * the caller may hold qemu's locks on the image): 0 done (or nothing to
 * do), 1 when qemu-img must do it, or -errno. */
static int edit_in_place(int fd, const char *name, const char *fmt, bool sync, char *msg,
                         size_t msgsz)
{
    struct qcow2_backing now;
    char why[MSG_MAX];
    if (qcow2_read_backing(fd, &now, why, sizeof(why)) < 0 || strcmp(now.format, fmt) != 0 ||
        !now.name[0])
        return 1;
    if (strcmp(now.name, name) == 0)
        return 0;
    int r = sync ? qcow2_set_backing_name(fd, name, msg, msgsz)
                 : qcow2_set_backing_name_unsynced(fd, name, msg, msgsz);
    return r == -ENOSPC ? 1 : r;
}

/* The name does not fit where the old one stands, or the format changes:
 * qemu-img rebase -u, given the file open on fd (with no backing: it
 * opens none in unsafe mode, and must follow no name it finds). */
static int rebase_unsafe(const struct store *s, int fd, const char *image, const char *name,
                         const char *fmt, bool locked, char *msg, size_t msgsz)
{
    struct chain_link link = { "", "qcow2" };
    struct chain one = { &link, &fd, 1, locked };
    char *spec;
    struct spawn_fds fds;
    struct qimg_argv a;
    int r = qspec_chain(&one, 0, false, &spec, &fds);
    if (r < 0)
        return r;
    if ((r = qimg_argv_rebase_unsafe(&a, s->qemu_img, spec, name, fmt)) == 0) {
        qimg_argv_pass(&a, &fds);
        char what[32 + PATH_MAX];
        snprintf(what, sizeof(what), "rebase -u of %s", image);
        r = qimg_run(&a, REBASE_TIMEOUT, what, msg, msgsz);
        if (r == 0)
            msg[0] = '\0'; /* what the in-place edit said no longer applies */
    }
    free(spec);
    return r;
}

int journal_set_backing_fd(const struct store *s, int fd, const char *image, const char *name,
                           const char *fmt, bool locked, char *msg, size_t msgsz)
{
    int r = edit_in_place(fd, name, fmt, true, msg, msgsz);
    return r != 1 ? r : rebase_unsafe(s, fd, image, name, fmt, locked, msg, msgsz);
}

static int busy(const char *image, int r, char *msg, size_t msgsz)
{
    if (r == -EBUSY)
        snprintf(msg, msgsz, "%s is in use (a qemu holds its image lock): left for later", image);
    else
        snprintf(msg, msgsz, "%s: %s", image, strerror(-r));
    return r;
}

/* With lock_steps the image is held (journal.h, held) before the edit
 * and until the run ends; qemu-img, when it must do the edit, is told
 * not to take the locks held for it. Without, qemu-img takes them. */
/* sync: the header edit is synced before it returns; else the caller
 * syncs the image (qemu-img, when it makes the edit, syncs anyway). */
static int set_backing(struct journal *j, const char *image, const char *name, const char *fmt,
                       bool sync, char *msg, size_t msgsz)
{
    int fd = store_open_file(j->s, image, O_RDWR);
    int r = fd < 0 || !j->lock_steps
                ? fd
                : imagelock_set_take_fd(&j->held, fd, IMAGELOCK_HELD_OR_WRITE,
                                        JOURNAL_STEP_LOCK_WAIT_MS);
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return busy(image, r, msg, msgsz);
    }
    r = edit_in_place(fd, name, fmt, sync, msg, msgsz);
    if (r == 1)
        r = rebase_unsafe(j->s, fd, image, name, fmt, j->lock_steps, msg, msgsz);
    close(fd);
    return r;
}

int journal_set_backing(struct journal *j, const char *image, const char *name, const char *fmt,
                        char *msg, size_t msgsz)
{
    return set_backing(j, image, name, fmt, true, msg, msgsz);
}

static int run_rebase(struct journal *j, const struct jstep *st, bool sync, char *msg,
                      size_t msgsz)
{
    if (st->group && !storeio_exists(j->s, st->a))
        return 0;
    return set_backing(j, st->a, st->b, st->fmt, sync, msg, msgsz);
}

/* What a run has changed and not synced yet. A step that renames or
 * makes an entry (move, replace, mkdir) does not sync its directory at
 * once: its paths are noted, and the directories are synced together,
 * on threads of their own (storeio_fsync_all), when a later step is
 * about to touch one of those paths (the same name, or one below or
 * above it: it depends on that step, and must never become durable
 * first), before a step that is replayed in a group or copies data,
 * before each mark and before the record goes. A later step that
 * touches none of them is independent of them: a power cut may keep it
 * and lose them, and the replay from the last mark redoes them, each
 * finding on its own paths whether it is done (the table in journal.h),
 * as the independent step finds itself done. So a take syncs snapshots/S
 * once for all the images moved into it, and disks/ once for all the
 * overlays put in place.
 *
 * The sources of moves and replaces are synced with the targets (early:
 * their removal only becomes durable sooner) and at the latest before
 * the next mark and before the record goes: until then a name that
 * comes back after a crash is only the same file seen twice, which the
 * replay resolves (a move finds its target, a replace renames again). */
#define PENDING_DIRS 16
#define PENDING_PATHS 64
struct pending {
    char dirs[PENDING_DIRS][PATH_MAX];
    size_t ndirs;
    /* The paths of the steps whose directories are not synced yet (the
     * steps' own strings). */
    const char *paths[PENDING_PATHS];
    size_t npaths;
};

static int flush_pending(const struct journal *j, struct pending *p, char *msg, size_t msgsz)
{
    const char *list[PENDING_DIRS];
    for (size_t i = 0; i < p->ndirs; i++)
        list[i] = p->dirs[i];
    size_t bad = 0;
    int r = storeio_fsync_all(j->s, list, p->ndirs, &bad);
    /* A source directory a later step removed is gone: nothing in it to
     * keep. */
    if (r < 0 && r != -ENOENT) {
        snprintf(msg, msgsz, "fsync %s: %s", list[bad], strerror(-r));
        return r;
    }
    p->ndirs = p->npaths = 0;
    return 0;
}

/* Is one of a and b the other, or a directory above it? */
static bool related(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;
    return strncmp(a, b, n) == 0 && (la == lb || (la < lb ? b[n] : a[n]) == '/');
}

/* Does path depend on a change not synced yet? */
static bool touches_pending(const struct pending *p, const char *path)
{
    for (size_t i = 0; path && i < p->npaths; i++)
        if (related(path, p->paths[i]))
            return true;
    return false;
}

/* Notes a file or directory to be synced (a full list is synced at
 * once, so that none is ever left out); a source directory (source) in
 * the operation's temporary directory needs none (its removals go with
 * it). */
static int note_sync(const struct journal *j, struct pending *p, const char *tmpdir,
                     const char *dir, bool source, char *msg, size_t msgsz)
{
    size_t tl = strlen(tmpdir);
    if (source && strncmp(dir, tmpdir, tl) == 0 && (dir[tl] == '\0' || dir[tl] == '/'))
        return 0;
    for (size_t i = 0; i < p->ndirs; i++)
        if (strcmp(p->dirs[i], dir) == 0)
            return 0;
    if (p->ndirs == PENDING_DIRS) {
        int r = flush_pending(j, p, msg, msgsz);
        if (r < 0)
            return r;
    }
    snprintf(p->dirs[p->ndirs++], PATH_MAX, "%s", dir);
    return 0;
}

/* Notes the directory holding path. */
static int note_dir(const struct journal *j, struct pending *p, const char *tmpdir,
                    const char *path, bool source, char *msg, size_t msgsz)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    return note_sync(j, p, tmpdir, dir, source, msg, msgsz);
}

/* The step st just applied (deferred: it synced nothing) is noted: its
 * directories, and its paths for the steps after it. */
static int note_step(const struct journal *j, struct pending *p, const char *tmpdir,
                     const struct jstep *st, char *msg, size_t msgsz)
{
    if (p->npaths + 2 > PENDING_PATHS) {
        int r = flush_pending(j, p, msg, msgsz);
        if (r < 0)
            return r;
    }
    int r;
    if (st->kind == JS_REBASE)
        r = note_sync(j, p, tmpdir, st->a, false, msg, msgsz); /* the header it wrote */
    else if (st->kind == JS_LINK)
        r = note_dir(j, p, tmpdir, st->b, false, msg, msgsz); /* FROM's directory is as it was */
    else if ((r = note_dir(j, p, tmpdir, st->kind == JS_MKDIR ? st->a : st->b, false, msg,
                           msgsz)) == 0 &&
             st->kind != JS_MKDIR)
        r = note_dir(j, p, tmpdir, st->a, true, msg, msgsz);
    if (r < 0)
        return r;
    /* A link's FROM is a path of it too: a step that replaces FROM would
     * take the file's only durable name away before its new one is. */
    p->paths[p->npaths++] = st->a;
    if (st->kind == JS_MOVE || st->kind == JS_REPLACE || st->kind == JS_LINK)
        p->paths[p->npaths++] = st->b;
    return 0;
}

/* Can st's sync be left to a later flush (struct pending)? Renames,
 * mkdirs and header edits outside a group. */
static bool deferrable(const struct jstep *st)
{
    return !st->group && st->kind != JS_PULL && st->kind != JS_COMMIT;
}

/* qemu's lock on an existing image a step moves, held from now until the
 * run ends (a merge's, taken at its check or by its data step, is there
 * already: no gap between steps): -EBUSY when a qemu has it. Only images
 * (.qcow2 files): directories and XML have none. */
static int lock_image(struct journal *j, const char *path, char *msg, size_t msgsz)
{
    size_t n = strlen(path);
    if (n < 6 || strcmp(path + n - 6, ".qcow2") != 0 || !storeio_exists(j->s, path))
        return 0;
    int r = imagelock_set_take(&j->held, j->s, path, IMAGELOCK_HELD_OR_WRITE,
                               JOURNAL_STEP_LOCK_WAIT_MS);
    /* Another error is not ours to judge here: the step reports what it
     * meets. */
    return r == -EBUSY ? busy(path, r, msg, msgsz) : 0;
}

static int apply_step_unlocked(struct journal *j, const struct jstep *st, bool defer,
                               char *msg, size_t msgsz);

/* defer: a move, replace or mkdir syncs nothing (the caller notes it:
 * struct pending); else it syncs its target's directory. */
static int apply_step(struct journal *j, const struct jstep *st, bool defer, char *msg,
                      size_t msgsz)
{
    /* Data steps lock their chains; a rebase locks its image. */
    if (!j->lock_steps || (st->kind != JS_MOVE && st->kind != JS_REPLACE && st->kind != JS_LINK))
        return apply_step_unlocked(j, st, defer, msg, msgsz);
    int r = lock_image(j, st->a, msg, msgsz);
    if (r == 0)
        r = lock_image(j, st->b, msg, msgsz);
    return r < 0 ? r : apply_step_unlocked(j, st, defer, msg, msgsz);
}

static int apply_step_unlocked(struct journal *j, const struct jstep *st, bool defer,
                               char *msg, size_t msgsz)
{
    const struct store *s = j->s;
    int r = 0;
    switch (st->kind) {
    case JS_MOVE:
        r = storeio_rename(s, st->a, st->b, RENAME_NOREPLACE);
        /* Done before: the target is there (and the source may have been
         * re-created by a later step), or the source is gone. */
        if (r == -EEXIST || (r == -ENOENT && storeio_exists(s, st->b)))
            r = 0;
        if (r == 0 && !defer)
            r = storeio_fsync_parent(s, st->b);
        break;
    case JS_REPLACE:
        if (!storeio_exists(s, st->a))
            return 0;
        r = storeio_rename(s, st->a, st->b, 0);
        if (r == 0 && !defer)
            r = storeio_fsync_parent(s, st->b);
        break;
    case JS_LINK:
        r = storeio_link(s, st->a, st->b);
        /* Done before: TO is there (FROM's file; or FROM was replaced
         * since, and TO holds the file FROM named), or FROM is gone and
         * TO is there. */
        if (r == -EEXIST || (r == -ENOENT && storeio_exists(s, st->b)))
            r = 0;
        if (r == 0 && !defer)
            r = storeio_fsync_parent(s, st->b);
        break;
    case JS_REBASE:
        return run_rebase(j, st, !defer, msg, msgsz);
    case JS_MKDIR:
        r = storeio_mkdir(s, st->a);
        if (r == -EEXIST)
            r = 0;
        if (r == 0 && !defer)
            r = storeio_fsync_parent(s, st->a);
        break;
    case JS_PULL:
        return run_data_step(j, st, msg, msgsz);
    case JS_COMMIT:
        if ((r = run_data_step(j, st, msg, msgsz)) < 0)
            return r;
        /* INTO is about to take IMAGE's place (the replace grouped with
         * it): it takes IMAGE's owner and mode too, or a merge would hand
         * a tenant's active disk the frozen image's. Done already when
         * either is gone. */
        r = perm_like(s, st->b, st->a);
        if (r == -ENOENT)
            r = 0;
        break;
    }
    if (r < 0)
        snprintf(msg, msgsz, "%s %s: %s", journal_kind_names[st->kind], st->a, strerror(-r));
    return r;
}

/* Replaying a step from the start is safe for every kind on its own
 * (each checks whether it is done), but not always once later steps ran:
 * a move whose target a later step moved on finds neither, and a data
 * step should not run twice. Progress is recorded after those; after a
 * rename of XML or a header edit (most steps) it costs a record write
 * for nothing. A group is replayed whole. */
static bool needs_mark(const struct jstep *st)
{
    return !st->group && (st->kind == JS_MOVE || st->kind == JS_LINK || st->kind == JS_PULL ||
                          st->kind == JS_COMMIT);
}

static int apply_all(struct journal *j, bool count_points, char *msg, size_t msgsz);

/* The locks held for the run go with it, whatever its end: a run left
 * for later takes them again, before any step of it runs. */
int journal_apply_all(struct journal *j, bool count_points, char *msg, size_t msgsz)
{
    int r = apply_all(j, count_points, msg, msgsz);
    imagelock_set_release(&j->held);
    return r;
}

static int apply_all(struct journal *j, bool count_points, char *msg, size_t msgsz)
{
    struct pending p = { .ndirs = 0, .npaths = 0 };
    char tmpdir[PATH_MAX];
    if (journal_meta_path(j->s, "tmp", j->id, "", tmpdir, sizeof(tmpdir)) < 0)
        return -ENAMETOOLONG;
    /* What steps synced before a crash was synced then: only this run's
     * are noted. */
    for (size_t i = j->done; i < j->nsteps; i++) {
        const struct jstep *st = &j->steps[i];
        bool defer = deferrable(st);
        int r = 0;
        /* A step waits for the unsynced steps it depends on; a group's
         * and a data step (which reads a whole chain) for all of them. */
        if (!defer || touches_pending(&p, st->a) ||
            (st->b && !jstep_b_is_name(st->kind) && touches_pending(&p, st->b)))
            r = flush_pending(j, &p, msg, msgsz);
        if (r == 0)
            r = apply_step(j, st, defer, msg, msgsz);
        if (r == 0 && defer)
            r = note_step(j, &p, tmpdir, st, msg, msgsz);
        else if (r == 0 && (st->kind == JS_MOVE || st->kind == JS_REPLACE))
            r = note_dir(j, &p, tmpdir, st->a, true, msg, msgsz); /* its source */
        if (r < 0)
            return r;
        if (j->mark_steps && i + 1 < j->nsteps && needs_mark(st)) {
            /* Everything so far is synced before the mark says it needs
             * no replay. */
            if ((r = flush_pending(j, &p, msg, msgsz)) < 0)
                return r;
            j->done = i + 1;
            if ((r = journal_write_record(j, msg, msgsz)) < 0)
                return r;
        }
        if (count_points)
            journal_point(j);
    }
    int r = flush_pending(j, &p, msg, msgsz);
    if (r < 0)
        return r;
    /* The record first, the temporary directory after it (record.c). */
    if ((r = journal_unlink_record(j->s, j->id)) < 0) {
        snprintf(msg, msgsz, "cannot remove journal record %s: %s", j->id, strerror(-r));
        return r;
    }
    if (count_points)
        journal_point(j);
    /* The operation is whole without it: a directory left here is the
     * next mount's to remove. */
    if ((r = journal_remove_tmp(j->s, j->id)) < 0)
        log_msg(LOG_WARNING, "%s of %s: cannot remove %s (the next mount will): %s", j->op,
                j->vm, tmpdir, strerror(-r));
    return 0;
}

/* Every rename the plan makes of a directory that exists now must be
 * possible, or the operation fails here, before its commit, with EXDEV
 * and nothing changed: on an overlayfs store (without redirect_dir=on) a
 * directory of the lower layer cannot be renamed, which after the commit
 * would leave a record no replay can finish. Directories the operation
 * made itself (in its temporary directory) can always move. */
int journal_probe_rename(const struct journal *j, const char *path)
{
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof(full), "%s/rename-probe", j->tmpdir) >= sizeof(full))
        return -ENAMETOOLONG;
    return storeio_rename_probe(j->s, path, full);
}

int journal_probe_link(const struct journal *j, const char *path)
{
    char probe[PATH_MAX];
    if ((size_t)snprintf(probe, sizeof(probe), "%s/link-probe", j->tmpdir) >= sizeof(probe))
        return -ENAMETOOLONG;
    int r = storeio_link(j->s, path, probe);
    if (r == 0)
        return storeio_unlink(j->s, probe);
    /* vfat and the like (EPERM), file systems that refuse links
     * (EOPNOTSUPP, ENOSYS), a file at its file system's link limit. */
    if (r == -EPERM || r == -EOPNOTSUPP || r == -ENOSYS || r == -EMLINK)
        return 1;
    return r;
}

static int probe_renames(struct journal *j, char *msg, size_t msgsz)
{
    size_t tl = strlen(j->tmpdir);
    for (size_t i = 0; i < j->nsteps; i++) {
        const struct jstep *st = &j->steps[i];
        if ((st->kind != JS_MOVE && st->kind != JS_REPLACE) ||
            (strncmp(st->a, j->tmpdir, tl) == 0 && st->a[tl] == '/'))
            continue;
        int r = journal_probe_rename(j, st->a);
        if (r == -EXDEV) {
            snprintf(msg, msgsz, "%s cannot be renamed on the store's file system (EXDEV: a "
                     "directory of an overlayfs lower layer, mounted without redirect_dir=on?): "
                     "nothing was changed", st->a);
        } else if (r < 0) {
            snprintf(msg, msgsz, "rename probe for %s: %s", st->a, strerror(-r));
        }
        if (r < 0)
            return r;
    }
    return 0;
}

int journal_commit(struct journal *j, char *msg, size_t msgsz)
{
    int r = probe_renames(j, msg, msgsz);
    if (r < 0)
        return r;
    if ((r = journal_unsynced(j, j->tmpdir)) < 0)
        return r;
    j->committed = true;
    if ((r = journal_write_record_syncing(j, (const char *const *)j->unsynced, j->nunsynced, msg,
                                          msgsz)) < 0) {
        j->committed = false;
        return r;
    }
    journal_point(j);
    r = journal_apply_all(j, true, msg, msgsz);
    if (r == 0)
        journal_point(j);
    else
        log_msg(LOG_WARNING, "%s of %s stopped after its commit: %s", j->op, j->vm, msg);
    return r;
}

