/* record: the journal's records on disk: what a record says (JSON), how
 * it is written (beside its final name, renamed, directory fsynced) and
 * removed, and how one found on disk is read back and checked so that a
 * planted or damaged record reaches nothing outside its own VM. */
#include "config.h"

#include "journal/jint.h"

#include "store/storeio.h"
#include "util/names.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAX (1u << 20)

const char *const journal_kind_names[] = {
    [JS_MOVE] = "move",
    [JS_REPLACE] = "replace",
    [JS_REBASE] = "rebase",
    [JS_MKDIR] = "mkdir",
    [JS_PULL] = "pull",
    [JS_COMMIT] = "commit",
    [JS_LINK] = "link",
};

/* Names kept as given (backing names), not store paths. */
bool jstep_b_is_name(enum jstep_kind k)
{
    return k == JS_REBASE || k == JS_PULL;
}

int journal_meta_path(const struct store *s, const char *sub, const char *name, const char *ext,
                     char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "%s/" STORE_META_DIR "/%s%s%s%s", s->root, sub, *name ? "/" : "",
                     name, ext);
    return n < 0 || (size_t)n >= outsz ? -ENAMETOOLONG : 0;
}

/* ---- writing ---- */

static struct json_object *record_json(const struct journal *j)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int(1));
    json_object_object_add(o, "id", json_object_new_string(j->id));
    json_object_object_add(o, "op", json_object_new_string(j->op));
    json_object_object_add(o, "vm", json_object_new_string(j->vm));
    if (j->nalso) {
        struct json_object *also = json_object_new_array();
        for (size_t i = 0; i < j->nalso; i++)
            json_object_array_add(also, json_object_new_string(j->also[i]));
        json_object_object_add(o, "also", also);
    }
    json_object_object_add(o, "committed", json_object_new_boolean(j->committed));
    json_object_object_add(o, "done", json_object_new_int64((int64_t)j->done));
    struct json_object *steps = json_object_new_array();
    for (size_t i = 0; i < j->nsteps; i++) {
        const struct jstep *st = &j->steps[i];
        struct json_object *so = json_object_new_object();
        json_object_object_add(so, "do", json_object_new_string(journal_kind_names[st->kind]));
        json_object_object_add(so, "a", json_object_new_string(storeio_rel(j->s, st->a)));
        if (st->b)
            json_object_object_add(so, "b",
                                   json_object_new_string(jstep_b_is_name(st->kind)
                                                              ? st->b
                                                              : storeio_rel(j->s, st->b)));
        if (st->fmt)
            json_object_object_add(so, "fmt", json_object_new_string(st->fmt));
        if (st->note)
            json_object_object_add(so, "note", json_object_new_string(st->note));
        if (st->group)
            json_object_object_add(so, "group", json_object_new_boolean(true));
        if (st->from) {
            json_object_object_add(so, "from", json_object_new_string(st->from));
            json_object_object_add(so, "from_fmt", json_object_new_string(st->from_fmt));
        }
        if (st->kind == JS_COMMIT && (st->copied || st->stamp[0])) {
            json_object_object_add(so, "copied", json_object_new_int64((int64_t)st->copied));
            json_object_object_add(so, "stamp", json_object_new_string(st->stamp));
        }
        json_object_array_add(steps, so);
    }
    json_object_object_add(o, "steps", steps);
    return o;
}

/* Written beside its final name, synced (with paths: what the record
 * depends on) and renamed, then the directory fsynced: a record is
 * either the old one or the new one, never half of either, and nothing
 * it says is done can be taken back by a power cut. */
int journal_write_record_syncing(const struct journal *j, const char *const *paths, size_t n,
                                 char *msg, size_t msgsz)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    char tmpname[80];
    snprintf(tmpname, sizeof(tmpname), ".%s", j->id);
    if (journal_meta_path(j->s, "journal", j->id, ".json", path, sizeof(path)) < 0 ||
        journal_meta_path(j->s, "journal", tmpname, ".tmp", tmp, sizeof(tmp)) < 0)
        return -ENAMETOOLONG;
    const char **all = malloc((n + 1) * sizeof(*all));
    if (!all)
        return -ENOMEM;
    all[0] = tmp;
    for (size_t i = 0; i < n; i++)
        all[i + 1] = paths[i];
    struct json_object *o = record_json(j);
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    storeio_unlink(j->s, tmp);
    struct store_perm own = perm_private(0600);
    int r = storeio_write_new_unsynced(j->s, tmp, text, strlen(text), &own);
    json_object_put(o);
    size_t bad = 0;
    bool said = false;
    if (r == 0 && (r = storeio_fsync_all(j->s, all, n + 1, &bad)) < 0) {
        snprintf(msg, msgsz, "fsync %s: %s", all[bad], strerror(-r));
        said = true;
    }
    free(all);
    if (r == 0)
        r = storeio_rename(j->s, tmp, path, 0);
    if (r == 0)
        r = storeio_fsync_parent(j->s, path);
    if (r < 0) {
        storeio_unlink(j->s, tmp);
        if (!said)
            snprintf(msg, msgsz, "cannot write the journal record %s: %s", path, strerror(-r));
    }
    return r;
}

int journal_write_record(const struct journal *j, char *msg, size_t msgsz)
{
    return journal_write_record_syncing(j, NULL, 0, msg, msgsz);
}

/* The record goes first, durably, and the temporary directory after it:
 * a crash in between leaves a directory no record names, which the next
 * mount removes (recover.c). The other order could leave a committed
 * record whose moves into that directory find neither end. */
int journal_unlink_record(const struct store *s, const char *id)
{
    char path[PATH_MAX];
    if (journal_meta_path(s, "journal", id, ".json", path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    int r = storeio_unlink(s, path);
    if (r == -ENOENT)
        r = 0;
    if (r == 0)
        r = storeio_fsync_parent(s, path);
    return r;
}

int journal_remove_tmp(const struct store *s, const char *id)
{
    char tmp[PATH_MAX];
    if (journal_meta_path(s, "tmp", id, "", tmp, sizeof(tmp)) < 0)
        return -ENAMETOOLONG;
    return storeio_rmtree(s, tmp);
}

int journal_remove_record(const struct store *s, const char *id)
{
    int r = journal_unlink_record(s, id);
    return r < 0 ? r : journal_remove_tmp(s, id);
}

/* ---- reading back ---- */

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

/* rel is vm's directory or below it. The directory itself too: a VM
 * delete moves it away, a clone moves it into place. */
static bool in_vm(const char *rel, const char *vm)
{
    size_t vl = strlen(vm);
    return vl && strncmp(rel, vm, vl) == 0 && (rel[vl] == '\0' || (rel[vl] == '/' && rel[vl + 1]));
}

/* A record touches only its own VM's directory, those of the VMs it
 * names as also changed (journal.also) and its own temporary directory:
 * a record planted or damaged cannot reach anything else. */
static bool own_path(const struct journal *j, const char *rel)
{
    char tmp[128];
    size_t tl;
    snprintf(tmp, sizeof(tmp), STORE_META_DIR "/tmp/%s", j->id);
    tl = strlen(tmp);
    if (in_vm(rel, j->vm))
        return true;
    for (size_t i = 0; i < j->nalso; i++)
        if (in_vm(rel, j->also[i]))
            return true;
    return strncmp(rel, tmp, tl) == 0 && (rel[tl] == '\0' || rel[tl] == '/');
}

/* The record's "also" (optional): valid VM names, read before the steps
 * whose paths they allow. */
static int load_also(struct journal *j, struct json_object *o)
{
    struct json_object *also;
    if (!json_object_object_get_ex(o, "also", &also))
        return 0;
    if (!json_object_is_type(also, json_type_array))
        return -EINVAL;
    for (size_t i = 0; i < json_object_array_length(also); i++) {
        struct json_object *v = json_object_array_get_idx(also, i);
        if (!json_object_is_type(v, json_type_string))
            return -EINVAL;
        int r = journal_also(j, json_object_get_string(v));
        if (r < 0)
            return r;
    }
    return 0;
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
static int load_pull_from(struct journal *j, const char *from, const char *from_fmt);

/* A commit's progress: an offset and the stamp of the image it was
 * counted on (no path, nothing to follow); a record from before commits
 * were made in chunks has neither. */
static int load_commit_progress(struct journal *j, struct json_object *so)
{
    struct jstep *st = &j->steps[j->nsteps - 1];
    struct json_object *c;
    const char *stamp = get_str(so, "stamp");
    bool has = json_object_object_get_ex(so, "copied", &c);
    if (!has && !stamp)
        return 0;
    if (!has || !stamp || st->kind != JS_COMMIT || !json_object_is_type(c, json_type_int) ||
        json_object_get_int64(c) < 0 || strlen(stamp) >= JSTEP_STAMP_MAX ||
        strspn(stamp, "0123456789.:-") != strlen(stamp))
        return -EINVAL;
    st->copied = (uint64_t)json_object_get_int64(c);
    snprintf(st->stamp, sizeof(st->stamp), "%s", stamp);
    return 0;
}

static int load_step(struct journal *j, struct json_object *so)
{
    const char *k = get_str(so, "do");
    const char *a = get_str(so, "a");
    const char *b = get_str(so, "b");
    const char *fmt = get_str(so, "fmt");
    const char *note = get_str(so, "note");
    const char *from = get_str(so, "from");
    struct json_object *g;
    bool group = json_object_object_get_ex(so, "group", &g) && json_object_get_boolean(g);
    size_t before = j->nsteps;
    int r = load_step_kind(j, k, a, b, fmt, note);
    if (r < 0 || j->nsteps == before)
        return r;
    if (group)
        j->steps[j->nsteps - 1].group = true;
    if ((r = load_commit_progress(j, so)) < 0)
        return r;
    /* Only a pull has one; a record from before it was kept has none. */
    if (from && j->steps[j->nsteps - 1].kind != JS_PULL)
        return -EINVAL;
    return from ? load_pull_from(j, from, get_str(so, "from_fmt")) : 0;
}

/* A backing name as a rebase gives it: relative, no protocol, a format
 * the store knows. Checked again (chain.h) when the image is read. */
static bool backing_name_ok(const char *name, const char *fmt)
{
    return name && *name && fmt && (strcmp(fmt, "qcow2") == 0 || strcmp(fmt, "raw") == 0) &&
           name[0] != '/' && !strchr(name, ':');
}

static int load_pull_from(struct journal *j, const char *from, const char *from_fmt)
{
    if (!backing_name_ok(from, from_fmt))
        return -EINVAL;
    return journal_step_from(&j->steps[j->nsteps - 1], from, from_fmt);
}

static int load_step_kind(struct journal *j, const char *k, const char *a, const char *b,
                          const char *fmt, const char *note)
{
    char pa[PATH_MAX], pb[PATH_MAX];
    for (int kind = 0; k && kind <= JS_LAST; kind++) {
        if (strcmp(k, journal_kind_names[kind]) != 0)
            continue;
        if (abs_from_rel(j->s, a, pa, sizeof(pa)) < 0 || !own_path(j, a))
            return -EINVAL;
        if (kind == JS_REBASE) {
            if (!backing_name_ok(b, fmt))
                return -EINVAL;
            return journal_add_step(j, JS_REBASE, pa, b, fmt, NULL);
        }
        if (note && (strlen(note) > 2 * NAME_MAX_LEN + 1 || !strchr(note, '/')))
            return -EINVAL;
        if (kind == JS_PULL) {
            /* "" = standalone; otherwise as a rebase's name. */
            if (!b || (*b && !backing_name_ok(b, fmt)))
                return -EINVAL;
            j->mark_steps = true;
            return journal_add_step(j, JS_PULL, pa, b, *b ? fmt : NULL, note);
        }
        if (kind == JS_MOVE || kind == JS_REPLACE || kind == JS_COMMIT || kind == JS_LINK) {
            if (abs_from_rel(j->s, b, pb, sizeof(pb)) < 0 || !own_path(j, b))
                return -EINVAL;
            if (kind == JS_COMMIT)
                j->mark_steps = true;
            return journal_add_step(j, (enum jstep_kind)kind, pa, pb, NULL, note);
        }
        return journal_add_step(j, (enum jstep_kind)kind, pa, NULL, NULL, NULL);
    }
    return -EINVAL;
}

int journal_load_record(const struct store *s, const char *path, struct journal *j, char *msg,
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
        r = load_also(j, o);
        for (size_t i = 0; r == 0 && i < json_object_array_length(steps); i++)
            r = load_step(j, json_object_array_get_idx(steps, i));
        j->committed = json_object_get_boolean(committed);
        /* Nobody holds the images for a record found on disk. */
        j->lock_steps = true;
        j->recovering = true;
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

