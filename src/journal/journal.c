/* journal: an operation's life before its commit: begin (record and
 * temporary directory), the plan's steps, the prepared files, the crash
 * points the tests use, and abort. Applying steps is apply.c, records on
 * disk record.c, recovery recover.c (see journal.h for the contract). */
#include "config.h"

#include "journal/jint.h"

#include "store/storeio.h"
#include "util/log.h"
#include "util/names.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

void journal_point(struct journal *j)
{
    j->point++;
    char want[64];
    snprintf(want, sizeof(want), "%s:%d", j->op, j->point);
    const char *stop = getenv("VMSTOREFS_STOP_AT");
    if (stop && (strcmp(stop, j->op) == 0 || strcmp(stop, want) == 0)) {
        /* The whole process stops (every thread), as a kill -STOP would
         * stop it there, until a SIGCONT: what another process sees of
         * the store at this point (tests/integration/t_take_atomic.sh). */
        log_msg(LOG_WARNING, "VMSTOREFS_STOP_AT=%s: stopping at point %d of %s", stop, j->point,
                j->op);
        raise(SIGSTOP);
    }
    const char *at = getenv("VMSTOREFS_CRASH_AT");
    if (!at)
        return;
    if (strcmp(at, want) == 0) {
        log_msg(LOG_WARNING, "VMSTOREFS_CRASH_AT=%s: exiting now", at);
        _exit(99);
    }
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
    if (journal_meta_path(s, "tmp", j->id, "", j->tmpdir, sizeof(j->tmpdir)) < 0)
        return -ENAMETOOLONG;
    int r = journal_write_record(j, msg, msgsz);
    if (r < 0)
        return r;
    journal_point(j);
    /* The daemon's alone: what is prepared in it already has the owner
     * and mode it will have in place, which may be looser than the
     * directory it will stand in (a 0644 disk in a 0700 VM). */
    struct store_perm own = perm_private(0700);
    char tmproot[PATH_MAX];
    snprintf(tmproot, sizeof(tmproot), "%s", j->tmpdir);
    *strrchr(tmproot, '/') = '\0';
    /* tmp/ is synced with the rest of the prepare phase, at the commit:
     * until then a power cut that takes the directory back takes back
     * nothing the record says is done. */
    if ((r = storeio_mkdir_as(s, j->tmpdir, &own)) < 0 || (r = journal_unsynced(j, tmproot)) < 0) {
        snprintf(msg, msgsz, "cannot create %s: %s", j->tmpdir, strerror(-r));
        journal_remove_record(s, j->id);
        return r;
    }
    return 0;
}

int journal_add_step(struct journal *j, enum jstep_kind kind, const char *a, const char *b,
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
    if (!storeio_rel(j->s, a) || (b && !jstep_b_is_name(kind) && !storeio_rel(j->s, b)))
        return -EXDEV;
    struct jstep *st = &j->steps[j->nsteps];
    st->kind = kind;
    st->a = strdup(a);
    st->b = b ? strdup(b) : NULL;
    st->fmt = fmt ? strdup(fmt) : NULL;
    st->note = note ? strdup(note) : NULL;
    /* realloc'd memory: only journal_group_last sets group, only a pull
     * its from. */
    st->group = false;
    st->from = st->from_fmt = NULL;
    st->copied = 0;
    st->stamp[0] = '\0';
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

int journal_move(struct journal *j, const char *from, const char *to)
{
    return journal_add_step(j, JS_MOVE, from, to, NULL, NULL);
}
int journal_link(struct journal *j, const char *from, const char *to)
{
    return journal_add_step(j, JS_LINK, from, to, NULL, NULL);
}
int journal_replace(struct journal *j, const char *from, const char *to)
{
    return journal_add_step(j, JS_REPLACE, from, to, NULL, NULL);
}
int journal_rebase(struct journal *j, const char *image, const char *backing, const char *fmt)
{
    return journal_add_step(j, JS_REBASE, image, backing, fmt, NULL);
}
int journal_mkdir(struct journal *j, const char *path)
{
    return journal_add_step(j, JS_MKDIR, path, NULL, NULL, NULL);
}

void journal_mark_steps(struct journal *j)
{
    j->mark_steps = true;
}

/* Appends a copy of str to the list *v of *n: 0 or -ENOMEM. */
static int strv_add(char ***v, size_t *n, const char *str)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    *v = nv;
    if (!(nv[*n] = strdup(str)))
        return -ENOMEM;
    (*n)++;
    return 0;
}

int journal_also(struct journal *j, const char *vm)
{
    if (j->committed)
        return -E2BIG;
    if (!name_is_valid(vm))
        return -EINVAL;
    return journal_names_vm(j, vm) ? 0 : strv_add(&j->also, &j->nalso, vm);
}

bool journal_names_vm(const struct journal *j, const char *vm)
{
    if (strcmp(j->vm, vm) == 0)
        return true;
    for (size_t i = 0; i < j->nalso; i++)
        if (strcmp(j->also[i], vm) == 0)
            return true;
    return false;
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

int journal_step_from(struct jstep *st, const char *from, const char *from_fmt)
{
    st->from = strdup(from);
    st->from_fmt = strdup(from_fmt);
    if (st->from && st->from_fmt)
        return 0;
    free(st->from);
    free(st->from_fmt);
    st->from = st->from_fmt = NULL;
    return -ENOMEM;
}

int journal_pull(struct journal *j, const char *image, const char *backing, const char *fmt,
                 const char *from, const char *from_fmt, const char *note)
{
    j->mark_steps = true;
    int r = journal_add_step(j, JS_PULL, image, backing, fmt, note);
    return r < 0 ? r : journal_step_from(&j->steps[j->nsteps - 1], from, from_fmt);
}

int journal_commit_down(struct journal *j, const char *image, const char *into,
                        const char *note)
{
    j->mark_steps = true;
    return journal_add_step(j, JS_COMMIT, image, into, NULL, note);
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

int journal_unsynced(struct journal *j, const char *path)
{
    for (size_t i = 0; i < j->nunsynced; i++)
        if (strcmp(j->unsynced[i], path) == 0)
            return 0;
    return strv_add(&j->unsynced, &j->nunsynced, path);
}

void journal_abort(struct journal *j)
{
    if (!j->committed)
        journal_remove_record(j->s, j->id);
}

void journal_free(struct journal *j)
{
    imagelock_set_release(&j->held);
    for (size_t i = 0; i < j->nsteps; i++) {
        free(j->steps[i].a);
        free(j->steps[i].b);
        free(j->steps[i].fmt);
        free(j->steps[i].note);
        free(j->steps[i].from);
        free(j->steps[i].from_fmt);
    }
    free(j->steps);
    j->steps = NULL;
    j->nsteps = j->capsteps = 0;
    for (size_t i = 0; i < j->nunsynced; i++)
        free(j->unsynced[i]);
    free(j->unsynced);
    j->unsynced = NULL;
    j->nunsynced = 0;
    for (size_t i = 0; i < j->nalso; i++)
        free(j->also[i]);
    free(j->also);
    j->also = NULL;
    j->nalso = 0;
}

