#include "config.h"

#include "journal.h"

#include "chain.h"
#include "imagelock.h"
#include "jobs.h"
#include "log.h"
#include "monotime.h"
#include "names.h"
#include "qcow2edit.h"
#include "qimg.h"
#include "storeio.h"
#include "vmlock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdint.h>
#include <uuid/uuid.h>

#define RECORD_MAX (1u << 20)
#define REBASE_TIMEOUT 60
#define STALE_RECORD_SECONDS 60

static const char *const kind_names[] = {
    [JS_MOVE] = "move",
    [JS_REPLACE] = "replace",
    [JS_REBASE] = "rebase",
    [JS_MKDIR] = "mkdir",
    [JS_PULL] = "pull",
    [JS_COMMIT] = "commit",
};
#define JS_LAST JS_COMMIT

/* Names kept as given (backing names), not store paths. */
static bool b_is_name(enum jstep_kind k)
{
    return k == JS_REBASE || k == JS_PULL;
}

static int meta_path(const struct store *s, const char *sub, const char *name, const char *ext,
                     char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "%s/" STORE_META_DIR "/%s%s%s%s", s->root, sub, *name ? "/" : "",
                     name, ext);
    return n < 0 || (size_t)n >= outsz ? -ENAMETOOLONG : 0;
}

void journal_point(struct journal *j)
{
    j->point++;
    const char *at = getenv("VMSTOREFS_CRASH_AT");
    if (!at)
        return;
    char want[64];
    snprintf(want, sizeof(want), "%s:%d", j->op, j->point);
    if (strcmp(at, want) == 0) {
        log_msg(LOG_WARNING, "VMSTOREFS_CRASH_AT=%s: exiting now", at);
        _exit(99);
    }
}

/* ---- the record ---- */

static struct json_object *record_json(const struct journal *j)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int(1));
    json_object_object_add(o, "id", json_object_new_string(j->id));
    json_object_object_add(o, "op", json_object_new_string(j->op));
    json_object_object_add(o, "vm", json_object_new_string(j->vm));
    json_object_object_add(o, "committed", json_object_new_boolean(j->committed));
    json_object_object_add(o, "done", json_object_new_int64((int64_t)j->done));
    struct json_object *steps = json_object_new_array();
    for (size_t i = 0; i < j->nsteps; i++) {
        const struct jstep *st = &j->steps[i];
        struct json_object *so = json_object_new_object();
        json_object_object_add(so, "do", json_object_new_string(kind_names[st->kind]));
        json_object_object_add(so, "a", json_object_new_string(storeio_rel(j->s, st->a)));
        if (st->b)
            json_object_object_add(so, "b",
                                   json_object_new_string(b_is_name(st->kind)
                                                              ? st->b
                                                              : storeio_rel(j->s, st->b)));
        if (st->fmt)
            json_object_object_add(so, "fmt", json_object_new_string(st->fmt));
        if (st->note)
            json_object_object_add(so, "note", json_object_new_string(st->note));
        if (st->group)
            json_object_object_add(so, "group", json_object_new_boolean(true));
        json_object_array_add(steps, so);
    }
    json_object_object_add(o, "steps", steps);
    return o;
}

/* Written beside its final name and renamed, then the directory fsynced:
 * a record is either the old one or the new one, never half of either. */
static int write_record(struct journal *j, char *msg, size_t msgsz)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    char tmpname[80];
    snprintf(tmpname, sizeof(tmpname), ".%s", j->id);
    if (meta_path(j->s, "journal", j->id, ".json", path, sizeof(path)) < 0 ||
        meta_path(j->s, "journal", tmpname, ".tmp", tmp, sizeof(tmp)) < 0)
        return -ENAMETOOLONG;
    struct json_object *o = record_json(j);
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    storeio_unlink(j->s, tmp);
    int r = storeio_write_new(j->s, tmp, text, strlen(text));
    json_object_put(o);
    if (r == 0)
        r = storeio_rename(j->s, tmp, path, 0);
    if (r == 0)
        r = storeio_fsync_parent(j->s, path);
    if (r < 0) {
        storeio_unlink(j->s, tmp);
        snprintf(msg, msgsz, "cannot write the journal record %s: %s", path, strerror(-r));
    }
    return r;
}

static int remove_record(const struct store *s, const char *id)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (meta_path(s, "tmp", id, "", tmp, sizeof(tmp)) < 0 ||
        meta_path(s, "journal", id, ".json", path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    int r = storeio_rmtree(s, tmp);
    if (r == 0) {
        r = storeio_unlink(s, path);
        if (r == -ENOENT)
            r = 0;
    }
    if (r == 0)
        r = storeio_fsync_parent(s, path);
    return r;
}

int journal_begin(struct journal *j, const struct store *s, const char *op, const char *vm,
                  char *msg, size_t msgsz)
{
    memset(j, 0, sizeof(*j));
    j->s = s;
    uuid_t u;
    uuid_generate(u);
    uuid_unparse_lower(u, j->id);
    snprintf(j->op, sizeof(j->op), "%s", op);
    snprintf(j->vm, sizeof(j->vm), "%s", vm ? vm : "");
    if (meta_path(s, "tmp", j->id, "", j->tmpdir, sizeof(j->tmpdir)) < 0)
        return -ENAMETOOLONG;
    int r = write_record(j, msg, msgsz);
    if (r < 0)
        return r;
    journal_point(j);
    if ((r = storeio_mkdir(s, j->tmpdir)) < 0 || (r = storeio_fsync_parent(s, j->tmpdir)) < 0) {
        snprintf(msg, msgsz, "cannot create %s: %s", j->tmpdir, strerror(-r));
        remove_record(s, j->id);
        return r;
    }
    return 0;
}

static int add_step_note(struct journal *j, enum jstep_kind kind, const char *a, const char *b,
                         const char *fmt, const char *note)
{
    if (j->nsteps == JOURNAL_MAX_STEPS || j->committed)
        return -E2BIG;
    if (j->nsteps == j->capsteps) {
        size_t cap = j->capsteps ? 2 * j->capsteps : 16;
        struct jstep *ns = realloc(j->steps, cap * sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        j->steps = ns;
        j->capsteps = cap;
    }
    if (!storeio_rel(j->s, a) || (b && !b_is_name(kind) && !storeio_rel(j->s, b)))
        return -EXDEV;
    struct jstep *st = &j->steps[j->nsteps];
    st->kind = kind;
    st->a = strdup(a);
    st->b = b ? strdup(b) : NULL;
    st->fmt = fmt ? strdup(fmt) : NULL;
    st->note = note ? strdup(note) : NULL;
    st->group = false; /* realloc'd memory: only journal_group_last sets it */
    if (!st->a || (b && !st->b) || (fmt && !st->fmt) || (note && !st->note)) {
        free(st->a);
        free(st->b);
        free(st->fmt);
        free(st->note);
        return -ENOMEM;
    }
    j->nsteps++;
    return 0;
}

static int add_step(struct journal *j, enum jstep_kind kind, const char *a, const char *b,
                    const char *fmt)
{
    return add_step_note(j, kind, a, b, fmt, NULL);
}

int journal_move(struct journal *j, const char *from, const char *to)
{
    return add_step(j, JS_MOVE, from, to, NULL);
}
int journal_replace(struct journal *j, const char *from, const char *to)
{
    return add_step(j, JS_REPLACE, from, to, NULL);
}
int journal_rebase(struct journal *j, const char *image, const char *backing, const char *fmt)
{
    return add_step(j, JS_REBASE, image, backing, fmt);
}
int journal_mkdir(struct journal *j, const char *path)
{
    return add_step(j, JS_MKDIR, path, NULL, NULL);
}

void journal_mark_steps(struct journal *j)
{
    j->mark_steps = true;
}

bool journal_has_data_steps(const struct journal *j)
{
    for (size_t i = 0; i < j->nsteps; i++)
        if (j->steps[i].kind == JS_PULL || j->steps[i].kind == JS_COMMIT)
            return true;
    return false;
}

void journal_group_last(struct journal *j)
{
    if (j->nsteps)
        j->steps[j->nsteps - 1].group = true;
}

int journal_pull(struct journal *j, const char *image, const char *backing, const char *fmt,
                 const char *note)
{
    j->mark_steps = true;
    return add_step_note(j, JS_PULL, image, backing, fmt, note);
}

int journal_commit_down(struct journal *j, const char *image, const char *into,
                        const char *note)
{
    j->mark_steps = true;
    return add_step_note(j, JS_COMMIT, image, into, NULL, note);
}

int journal_prepared(struct journal *j, const char *path, char *msg, size_t msgsz)
{
    int r = storeio_fsync(j->s, path);
    if (r < 0) {
        snprintf(msg, msgsz, "fsync %s: %s", path, strerror(-r));
        return r;
    }
    journal_point(j);
    return 0;
}

/* ---- applying steps (each idempotent) ---- */

/* The header is edited in place when only the name changes (qcow2edit.h:
 * the caller may hold qemu's locks on the image); qemu-img rebase -u
 * does the rest. Running it again sets the same name: idempotent. */
/* lock: hold qemu's lock on the image for the in-place edit (journal.h,
 * lock_steps); qemu-img takes it itself. */
static int run_rebase(const struct store *s, const struct jstep *st, bool lock, char *msg,
                      size_t msgsz)
{
    if (st->group && !storeio_exists(s, st->a))
        return 0;
    struct backing_info now;
    int r = chain_backing(s, st->a, &now, msg, msgsz);
    if (r == 0 && strcmp(now.name, st->b) == 0 && strcmp(now.format, st->fmt) == 0)
        return 0;
    if (r == 0 && strcmp(now.format, st->fmt) == 0) {
        int fd = lock ? imagelock_hold(s, st->a) : store_open_file(s, st->a, O_RDWR);
        if (fd == -EBUSY) {
            snprintf(msg, msgsz, "%s is in use (a qemu holds its image lock): left for later",
                     st->a);
            return fd;
        }
        if (fd < 0) {
            snprintf(msg, msgsz, "%s: %s", st->a, strerror(-fd));
            return fd;
        }
        r = qcow2_set_backing_name(fd, st->b, msg, msgsz);
        close(fd);
        if (r != -ENOSPC)
            return r;
    }
    /* qemu-img opens the image by name: it must be a regular file
     * beneath the root. */
    int fd = store_open_file(s, st->a, O_RDONLY);
    if (fd < 0) {
        snprintf(msg, msgsz, "%s: %s", st->a, strerror(-fd));
        return fd;
    }
    close(fd);
    struct qimg_argv a;
    if ((r = qimg_argv_rebase_unsafe(&a, s->qemu_img, st->a, st->b, st->fmt)) < 0)
        return r;
    r = qimg_run(&a, REBASE_TIMEOUT, "rebase -u", msg, msgsz);
    if (r == 0)
        msg[0] = '\0'; /* what the in-place edit said no longer applies */
    return r;
}

/* ---- the data steps ---- */

/* Bytes a data step moves at most: the allocation of the image it reads. */
static uint64_t allocated(const struct store *s, const char *path)
{
    struct stat st;
    return store_lstat(s, path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

struct merge_progress {
    struct job *job;
    uint64_t bytes;
};

static void merge_pct(double pct, void *arg)
{
    struct merge_progress *mp = arg;
    jobs_progress(mp->job, (uint64_t)((double)mp->bytes * pct / 100.0));
}

/* Runs a merge's qemu-img with its log lines and its line in .jobs. */
static int run_merge(const struct journal *j, const struct jstep *st, const struct qimg_argv *a,
                     uint64_t bytes, char *msg, size_t msgsz)
{
    const char *dir = st->kind == JS_PULL ? "pull" : "commit";
    char dev[DEV_MAX_LEN + 1] = "?", snap[NAME_MAX_LEN + 1] = "?";
    const char *slash = st->note ? strrchr(st->note, '/') : NULL;
    if (slash) {
        snprintf(snap, sizeof(snap), "%.*s", (int)(slash - st->note), st->note);
        snprintf(dev, sizeof(dev), "%s", slash + 1);
    }
    log_msg(LOG_INFO, "merge of %s disk %s (snapshot %s): direction=%s bytes=%llu started", j->vm,
            dev, snap, dir, (unsigned long long)bytes);
    struct merge_progress mp = { jobs_start("merge", j->vm, st->note, bytes), bytes };
    struct qimg_progress p = { .on_pct = merge_pct, .arg = &mp };
    int64_t t0 = now_ms();
    int r = qimg_run_watched(a, qimg_data_timeout(bytes), st->kind == JS_PULL ? "rebase" : "commit", &p, NULL,
                             NULL, msg, msgsz);
    jobs_finish(mp.job);
    double secs = (double)(now_ms() - t0) / 1000.0;
    if (r == 0)
        log_msg(LOG_INFO,
                "merge of %s disk %s (snapshot %s): direction=%s bytes=%llu done in %.2f s "
                "(%.1f MiB/s)",
                j->vm, dev, snap, dir, (unsigned long long)bytes, secs,
                secs > 0 ? (double)bytes / 1048576.0 / secs : 0.0);
    else
        log_msg(LOG_ERR, "merge of %s disk %s (snapshot %s): direction=%s failed after %.2f s: %s",
                j->vm, dev, snap, dir, secs, msg);
    return r;
}

/* A data step runs qemu-img on files it checks first: regular files
 * beneath the root, the image still backing onto what the plan said. */
static int run_data_step(const struct journal *j, const struct jstep *st, char *msg, size_t msgsz)
{
    struct backing_info now;
    int r = chain_backing(j->s, st->a, &now, msg, msgsz);
    if (r < 0)
        return r;
    struct qimg_argv a;
    uint64_t bytes;
    if (st->kind == JS_PULL) {
        if (strcmp(now.name, st->b) == 0 && (!st->b[0] || strcmp(now.format, st->fmt) == 0))
            return 0;
        /* qemu-img reads the whole new backing chain: it must pass the
         * checks every chain of the store passes. */
        if (st->b[0]) {
            char target[PATH_MAX];
            struct chain c;
            if ((r = chain_check_name(j->s, st->a, st->b, st->fmt, target, sizeof(target), msg,
                                      msgsz)) < 0 ||
                (r = chain_walk(j->s, target, &c, msg, msgsz)) < 0)
                return r;
            chain_free(&c);
        }
        bytes = now.path[0] ? allocated(j->s, now.path) : 0;
        r = qimg_argv_rebase(&a, j->s->qemu_img, st->a, st->b, st->fmt ? st->fmt : "");
    } else {
        if (!storeio_exists(j->s, st->b) || strcmp(now.path, st->b) != 0)
            return 0;
        bytes = allocated(j->s, st->a);
        r = qimg_argv_commit(&a, j->s->qemu_img, st->a);
    }
    return r < 0 ? r : run_merge(j, st, &a, bytes, msg, msgsz);
}

/* Each step makes its target durable (the directory it changed) before
 * the next one runs: a later step may replace what an earlier one moved
 * away, and must never become durable first. The source directories are
 * synced once, before the record goes: until then a name that comes back
 * after a crash is only the same file seen twice, which the replay
 * resolves (a move finds its target, a replace renames again). */
struct synced {
    char dirs[8][PATH_MAX];
    size_t n;
};

static void note_source(struct synced *sy, const char *tmpdir, const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return;
    *slash = '\0';
    size_t tl = strlen(tmpdir);
    if (strncmp(dir, tmpdir, tl) == 0 && (dir[tl] == '\0' || dir[tl] == '/'))
        return; /* removed with the operation's temporary directory */
    for (size_t i = 0; i < sy->n; i++)
        if (strcmp(sy->dirs[i], dir) == 0)
            return;
    if (sy->n < sizeof(sy->dirs) / sizeof(sy->dirs[0]))
        strcpy(sy->dirs[sy->n++], dir);
}

/* qemu's lock on an existing image a step touches: -EBUSY when a qemu
 * has it. Only images (.qcow2 files): directories and XML have none. */
static int lock_image(const struct store *s, const char *path, int *fd, char *msg, size_t msgsz)
{
    *fd = -1;
    size_t n = strlen(path);
    if (n < 6 || strcmp(path + n - 6, ".qcow2") != 0 || !storeio_exists(s, path))
        return 0;
    *fd = imagelock_hold(s, path);
    if (*fd == -EBUSY) {
        snprintf(msg, msgsz, "%s is in use (a qemu holds its image lock): left for later", path);
        return -EBUSY;
    }
    if (*fd < 0)
        *fd = -1; /* not ours to judge here: the step reports what it meets */
    return 0;
}

static int apply_step_unlocked(const struct journal *j, const struct jstep *st, char *msg,
                               size_t msgsz);

static int apply_step(const struct journal *j, const struct jstep *st, char *msg, size_t msgsz)
{
    /* Data steps: qemu-img takes the locks; a rebase holds its own. */
    if (!j->lock_steps || (st->kind != JS_MOVE && st->kind != JS_REPLACE))
        return apply_step_unlocked(j, st, msg, msgsz);
    int fa, fb = -1;
    int r = lock_image(j->s, st->a, &fa, msg, msgsz);
    if (r == 0)
        r = lock_image(j->s, st->b, &fb, msg, msgsz);
    if (r == 0)
        r = apply_step_unlocked(j, st, msg, msgsz);
    imagelock_drop(fa);
    imagelock_drop(fb);
    return r;
}

static int apply_step_unlocked(const struct journal *j, const struct jstep *st, char *msg,
                               size_t msgsz)
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
        if (r == 0)
            r = storeio_fsync_parent(s, st->b);
        break;
    case JS_REPLACE:
        if (!storeio_exists(s, st->a))
            return 0;
        r = storeio_rename(s, st->a, st->b, 0);
        if (r == 0)
            r = storeio_fsync_parent(s, st->b);
        break;
    case JS_REBASE:
        return run_rebase(s, st, j->lock_steps, msg, msgsz);
    case JS_MKDIR:
        r = storeio_mkdir(s, st->a);
        if (r == -EEXIST)
            r = 0;
        if (r == 0)
            r = storeio_fsync_parent(s, st->a);
        break;
    case JS_PULL:
    case JS_COMMIT:
        return run_data_step(j, st, msg, msgsz);
    }
    if (r < 0)
        snprintf(msg, msgsz, "%s %s: %s", kind_names[st->kind], st->a, strerror(-r));
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
    return !st->group && (st->kind == JS_MOVE || st->kind == JS_PULL || st->kind == JS_COMMIT);
}

static int sync_sources(const struct journal *j, struct synced *sy, char *msg, size_t msgsz)
{
    for (size_t i = 0; i < sy->n; i++) {
        char probe[PATH_MAX + 4];
        snprintf(probe, sizeof(probe), "%s/x", sy->dirs[i]);
        int r = storeio_fsync_parent(j->s, probe);
        if (r < 0 && r != -ENOENT) {
            snprintf(msg, msgsz, "fsync %s: %s", sy->dirs[i], strerror(-r));
            return r;
        }
    }
    sy->n = 0;
    return 0;
}

static int apply_all(struct journal *j, bool count_points, char *msg, size_t msgsz)
{
    struct synced sy = { .n = 0 };
    char tmpdir[PATH_MAX];
    if (meta_path(j->s, "tmp", j->id, "", tmpdir, sizeof(tmpdir)) < 0)
        return -ENAMETOOLONG;
    /* Sources of moves made before a crash were synced then: only this
     * run's are noted. */
    for (size_t i = j->done; i < j->nsteps; i++) {
        int r = apply_step(j, &j->steps[i], msg, msgsz);
        if (r < 0)
            return r;
        if (j->steps[i].kind == JS_MOVE || j->steps[i].kind == JS_REPLACE)
            note_source(&sy, tmpdir, j->steps[i].a);
        if (j->mark_steps && i + 1 < j->nsteps && needs_mark(&j->steps[i])) {
            /* The step's own target is durable; the sources so far are
             * synced before the mark says they need no replay. */
            if ((r = sync_sources(j, &sy, msg, msgsz)) < 0)
                return r;
            j->done = i + 1;
            if ((r = write_record(j, msg, msgsz)) < 0)
                return r;
        }
        if (count_points)
            journal_point(j);
    }
    int r = sync_sources(j, &sy, msg, msgsz);
    if (r < 0)
        return r;
    r = remove_record(j->s, j->id);
    if (r < 0)
        snprintf(msg, msgsz, "cannot remove journal record %s: %s", j->id, strerror(-r));
    return r;
}

int journal_commit(struct journal *j, char *msg, size_t msgsz)
{
    int r = storeio_fsync(j->s, j->tmpdir);
    if (r < 0) {
        snprintf(msg, msgsz, "fsync %s: %s", j->tmpdir, strerror(-r));
        return r;
    }
    j->committed = true;
    if ((r = write_record(j, msg, msgsz)) < 0) {
        j->committed = false;
        return r;
    }
    journal_point(j);
    r = apply_all(j, true, msg, msgsz);
    if (r == 0)
        journal_point(j);
    else
        log_msg(LOG_WARNING, "%s of %s stopped after its commit: %s", j->op, j->vm, msg);
    return r;
}

void journal_abort(struct journal *j)
{
    if (!j->committed)
        remove_record(j->s, j->id);
}

void journal_free(struct journal *j)
{
    for (size_t i = 0; i < j->nsteps; i++) {
        free(j->steps[i].a);
        free(j->steps[i].b);
        free(j->steps[i].fmt);
        free(j->steps[i].note);
    }
    free(j->steps);
    j->steps = NULL;
    j->nsteps = j->capsteps = 0;
}

/* ---- recovery ---- */

static const char *get_str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* A relative path from a record: no absolute names, no "..", so it stays
 * below the root even before store_open checks it. */
/* A component "." or "..", or an empty one ("a//b"). */
static bool has_dot_component(const char *rel)
{
    for (const char *p = rel;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return true;
        p += n;
        if (!*p)
            return false;
        p++;
    }
}

/* A record touches only its own VM's directory and its own temporary
 * directory: a record planted or damaged cannot reach anything else. */
static bool own_path(const struct journal *j, const char *rel)
{
    char tmp[128];
    size_t vl = strlen(j->vm), tl;
    snprintf(tmp, sizeof(tmp), STORE_META_DIR "/tmp/%s", j->id);
    tl = strlen(tmp);
    /* The VM's directory itself too: a VM delete moves it away, a clone
     * moves it into place. */
    if (vl && strncmp(rel, j->vm, vl) == 0 && (rel[vl] == '\0' || (rel[vl] == '/' && rel[vl + 1])))
        return true;
    return strncmp(rel, tmp, tl) == 0 && (rel[tl] == '\0' || rel[tl] == '/');
}

static int abs_from_rel(const struct store *s, const char *rel, char *out, size_t outsz)
{
    /* A component "..", not the two dots inside a name like v1..2. */
    if (!rel || !*rel || rel[0] == '/' || has_dot_component(rel))
        return -EINVAL;
    int n = snprintf(out, outsz, "%s/%s", s->root, rel);
    return n < 0 || (size_t)n >= outsz ? -ENAMETOOLONG : 0;
}

static int load_step_kind(struct journal *j, const char *k, const char *a, const char *b,
                          const char *fmt, const char *note);

static int load_step(struct journal *j, struct json_object *so)
{
    const char *k = get_str(so, "do");
    const char *a = get_str(so, "a");
    const char *b = get_str(so, "b");
    const char *fmt = get_str(so, "fmt");
    const char *note = get_str(so, "note");
    struct json_object *g;
    bool group = json_object_object_get_ex(so, "group", &g) && json_object_get_boolean(g);
    size_t before = j->nsteps;
    int r = load_step_kind(j, k, a, b, fmt, note);
    if (r == 0 && group && j->nsteps > before)
        j->steps[j->nsteps - 1].group = true;
    return r;
}

static int load_step_kind(struct journal *j, const char *k, const char *a, const char *b,
                          const char *fmt, const char *note)
{
    char pa[PATH_MAX], pb[PATH_MAX];
    for (int kind = 0; k && kind <= JS_LAST; kind++) {
        if (strcmp(k, kind_names[kind]) != 0)
            continue;
        if (abs_from_rel(j->s, a, pa, sizeof(pa)) < 0 || !own_path(j, a))
            return -EINVAL;
        if (kind == JS_REBASE) {
            /* The name is checked again (chain.h) when the image is read. */
            if (!b || !*b || !fmt || (strcmp(fmt, "qcow2") != 0 && strcmp(fmt, "raw") != 0) ||
                b[0] == '/' || strchr(b, ':'))
                return -EINVAL;
            return add_step(j, JS_REBASE, pa, b, fmt);
        }
        if (note && (strlen(note) > 2 * NAME_MAX_LEN + 1 || !strchr(note, '/')))
            return -EINVAL;
        if (kind == JS_PULL) {
            /* "" = standalone; otherwise as a rebase's name. */
            if (!b || (*b && (!fmt || (strcmp(fmt, "qcow2") != 0 && strcmp(fmt, "raw") != 0) ||
                              b[0] == '/' || strchr(b, ':'))))
                return -EINVAL;
            j->mark_steps = true;
            return add_step_note(j, JS_PULL, pa, b, *b ? fmt : NULL, note);
        }
        if (kind == JS_MOVE || kind == JS_REPLACE || kind == JS_COMMIT) {
            if (abs_from_rel(j->s, b, pb, sizeof(pb)) < 0 || !own_path(j, b))
                return -EINVAL;
            if (kind == JS_COMMIT)
                j->mark_steps = true;
            return add_step_note(j, (enum jstep_kind)kind, pa, pb, NULL, note);
        }
        return add_step(j, (enum jstep_kind)kind, pa, NULL, NULL);
    }
    return -EINVAL;
}

static int load_record(const struct store *s, const char *path, struct journal *j, char *msg,
                       size_t msgsz)
{
    memset(j, 0, sizeof(*j));
    j->s = s;
    char *text;
    size_t len;
    int r = storeio_read(s, path, RECORD_MAX, &text, &len);
    if (r < 0) {
        snprintf(msg, msgsz, "%s: %s", path, strerror(-r));
        return r;
    }
    struct json_object *o = json_tokener_parse(text);
    free(text);
    const char *id = o ? get_str(o, "id") : NULL;
    const char *op = o ? get_str(o, "op") : NULL;
    const char *vm = o ? get_str(o, "vm") : NULL;
    struct json_object *committed, *steps, *done;
    r = -EINVAL;
    if (id && op && vm && strlen(id) < sizeof(j->id) && strlen(op) < sizeof(j->op) &&
        name_is_valid(vm) && !strchr(id, '/') && id[0] != '.' &&
        json_object_object_get_ex(o, "committed", &committed) &&
        json_object_object_get_ex(o, "steps", &steps) &&
        json_object_is_type(steps, json_type_array)) {
        strcpy(j->id, id);
        strcpy(j->op, op);
        snprintf(j->vm, sizeof(j->vm), "%s", vm);
        r = 0;
        for (size_t i = 0; r == 0 && i < json_object_array_length(steps); i++)
            r = load_step(j, json_object_array_get_idx(steps, i));
        j->committed = json_object_get_boolean(committed);
        /* Nobody holds the images for a record found on disk. */
        j->lock_steps = true;
        if (json_object_object_get_ex(o, "done", &done)) {
            int64_t d = json_object_get_int64(done);
            if (d < 0 || (size_t)d > j->nsteps)
                r = -EINVAL;
            else
                j->done = (size_t)d;
        }
    }
    json_object_put(o);
    if (r < 0)
        snprintf(msg, msgsz, "%s: not a journal record this version understands", path);
    return r;
}

static int recover_one(const struct store *s, const char *path, const char *vm, int *done,
                       char *msg, size_t msgsz)
{
    struct journal j;
    int r = load_record(s, path, &j, msg, msgsz);
    if (r < 0) {
        journal_free(&j);
        /* Within one VM's operation, another VM's unreadable record is
         * not this operation's to fail on: the next mount reports it. */
        return vm ? 0 : r;
    }
    if (vm && strcmp(vm, j.vm) != 0) {
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
        if ((r = load_record(s, path, &j, msg, msgsz)) < 0 || strcmp(j.vm, vmname) != 0) {
            vmlock_release(&lk);
            journal_free(&j);
            return r < 0 ? r : 0;
        }
    }
    if (j.committed) {
        r = apply_all(&j, false, msg, msgsz);
    } else {
        r = remove_record(s, j.id);
        if (r < 0)
            snprintf(msg, msgsz, "cannot roll back %s: %s", j.id, strerror(-r));
    }
    if (r == 0) {
        log_msg(LOG_NOTICE, "journal: %s of %s %s", j.op, j.vm[0] ? j.vm : "the store",
                j.committed ? "finished (rolled forward)" : "undone (rolled back)");
        (*done)++;
    }
    vmlock_release(&lk);
    journal_free(&j);
    return r;
}

typedef int (*dir_visit_fn)(const struct store *s, const char *dir, const char *name, void *arg);

static int walk_meta_dir(const struct store *s, const char *sub, dir_visit_fn fn, void *arg)
{
    char dir[PATH_MAX];
    if (meta_path(s, sub, "", "", dir, sizeof(dir)) < 0)
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
    if (recover_one(s, path, c->vm, &c->done, c->msg, c->msgsz) < 0) {
        log_msg(LOG_ERR, "journal: cannot recover %s: %s", path, c->msg);
        c->failed++;
    }
    return 0;
}

/* A temporary directory whose record is gone, or a record's temporary
 * file left by a crash while it was written: nothing refers to it. */
static int visit_tmp(const struct store *s, const char *dir, const char *name, void *arg)
{
    (void)arg;
    char rec[PATH_MAX], path[PATH_MAX];
    if (meta_path(s, "journal", name, ".json", rec, sizeof(rec)) < 0 || storeio_exists(s, rec))
        return 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (storeio_rmtree(s, path) == 0)
        log_msg(LOG_NOTICE, "journal: removed %s, left by an unfinished operation", path);
    return 0;
}

static int visit_stale_record_tmp(const struct store *s, const char *dir, const char *name,
                                  void *arg)
{
    (void)arg;
    size_t len = strlen(name);
    if (name[0] != '.' || len < 5 || strcmp(name + len - 4, ".tmp") != 0)
        return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    /* Another daemon may be writing its record right now: only a file
     * nobody has touched for a while is left over from a crash. */
    struct stat st;
    if (store_lstat(s, path, &st) == 0 && time(NULL) - st.st_mtime > STALE_RECORD_SECONDS)
        storeio_unlink(s, path);
    return 0;
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
        walk_meta_dir(s, "journal", visit_stale_record_tmp, NULL);
        walk_meta_dir(s, "tmp", visit_tmp, NULL);
    }
    if (c.failed) {
        snprintf(msg, msgsz, "%d unfinished operation(s) could not be recovered (see the log)",
                 c.failed);
        return -EIO;
    }
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
    if (load_record(s, path, &j, msg, sizeof(msg)) < 0 || strcmp(j.vm, p->vm) == 0)
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
