/* check: the report, the kinds, and the order a check goes in (check.h).
 * The images are checkimg.c's, the XML and identities checkxml.c's, the
 * repairs checkfix.c's. */
#include "config.h"

#include "ops/checkint.h"

#include "journal/journal.h"
#include "meta/xmlschema.h"
#include "store/vmlock.h"
#include "util/log.h"
#include "util/monotime.h"
#include "vm/merge.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kinds, as the reports and the man page name them. */
static const char *const kind_names[CK_COUNT] = {
    [CK_BAD_HEADER] = "bad-header",
    [CK_BACKING_ESCAPE] = "backing-escape",
    [CK_BACKING_NO_FORMAT] = "backing-no-format",
    [CK_BACKING_LOOP] = "backing-loop",
    [CK_CHAIN_TOO_DEEP] = "chain-too-deep",
    [CK_BACKING_MISSING] = "backing-missing",
    [CK_SHARED_PARENT] = "shared-parent",
    [CK_DISK_MISSING] = "disk-missing",
    [CK_SNAPXML_MISSING] = "snapshot-xml-missing",
    [CK_SNAP_FILE_MISSING] = "snapshot-file-missing",
    [CK_SNAP_PARENT] = "snapshot-parent",
    [CK_ORPHAN] = "orphan",
    [CK_XML_UNSAFE] = "xml-unsafe",
    [CK_XML_SCHEMA] = "xml-schema",
    [CK_XML_OUTSIDE] = "xml-outside",
    [CK_NAME_MISMATCH] = "name-mismatch",
    [CK_DUP_UUID] = "duplicate-uuid",
    [CK_DUP_MAC] = "duplicate-mac",
    [CK_DUP_NAME] = "duplicate-name",
    [CK_JOURNAL] = "journal-unfinished",
    [CK_JOURNAL_STRAY] = "journal-stray",
    [CK_LEAKS] = "leaked-clusters",
    [CK_CORRUPT] = "image-corrupt",
    [CK_TIMEOUT] = "check-timeout",
    [CK_PERM_LOOSE] = "perm-loose",
};

const char *check_kind_name(enum check_kind k)
{
    return k < CK_COUNT ? kind_names[k] : "?";
}

bool check_kind_enabled(enum check_kind k)
{
    const char *skip = getenv("VMSTOREFS_CHECK_SKIP");
    if (!skip || !skip[0])
        return true;
    size_t n = strlen(kind_names[k]);
    for (const char *p = skip; (p = strstr(p, kind_names[k])) != NULL; p += n)
        if ((p == skip || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return false;
    return true;
}

__attribute__((format(printf, 1, 0))) static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

struct check_finding *check_add(struct check_report *rep, enum check_kind k, const char *vm,
                                const char *file, const char *fmt, ...)
{
    if (!check_kind_enabled(k))
        return NULL;
    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? rep->cap * 2 : 16;
        struct check_finding *nf = realloc(rep->f, cap * sizeof(*nf));
        if (!nf)
            return NULL;
        rep->f = nf;
        rep->cap = cap;
    }
    struct check_finding *f = &rep->f[rep->n];
    memset(f, 0, sizeof(*f));
    va_list ap;
    va_start(ap, fmt);
    f->detail = vfmt(fmt, ap);
    va_end(ap);
    f->kind = k;
    f->vm = strdup(vm ? vm : "");
    f->file = strdup(file ? file : "");
    if (!f->detail || !f->vm || !f->file) {
        free(f->detail);
        free(f->vm);
        free(f->file);
        return NULL;
    }
    rep->n++;
    return f;
}

void check_action(struct check_finding *f, bool repaired, const char *fmt, ...)
{
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    free(f->action);
    f->action = vfmt(fmt, ap);
    va_end(ap);
    f->repaired = repaired;
}

void check_oper(struct check_report *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = vfmt(fmt, ap);
    va_end(ap);
    if (!line)
        return;
    char *all = NULL;
    if (asprintf(&all, "%s%s%s", rep->oper ? rep->oper : "", rep->oper ? "\n" : "", line) >= 0) {
        free(rep->oper);
        rep->oper = all;
    }
    free(line);
}

void check_report_free(struct check_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        free(rep->f[i].vm);
        free(rep->f[i].file);
        free(rep->f[i].detail);
        free(rep->f[i].action);
    }
    free(rep->f);
    free(rep->oper);
    memset(rep, 0, sizeof(*rep));
}

int check_exit_status(const struct check_report *rep)
{
    int st = rep->oper ? 8 : 0;
    for (size_t i = 0; i < rep->n; i++)
        st |= rep->f[i].repaired ? 1 : 4;
    return st;
}

static size_t count_left(const struct check_report *rep)
{
    size_t left = 0;
    for (size_t i = 0; i < rep->n; i++)
        left += !rep->f[i].repaired;
    return left;
}

void check_summary(const struct check_report *rep, char *out, size_t outsz)
{
    size_t o = (size_t)snprintf(out, outsz, "%zu VM(s), %zu image(s), %zu XML file(s): ",
                                rep->vms, rep->images, rep->xml_files);
    if (!rep->n && !rep->oper) {
        snprintf(out + (o < outsz ? o : outsz - 1), o < outsz ? outsz - o : 1, "clean%s",
                 rep->busy ? " (some VMs busy, not checked)" : "");
        return;
    }
    o += (size_t)snprintf(out + (o < outsz ? o : outsz - 1), o < outsz ? outsz - o : 1,
                          "%zu problem(s)", rep->n);
    const char *sep = " (";
    for (int k = 0; k < CK_COUNT; k++) {
        size_t c = 0;
        for (size_t i = 0; i < rep->n; i++)
            c += rep->f[i].kind == (enum check_kind)k;
        if (!c || o >= outsz)
            continue;
        o += (size_t)snprintf(out + o, outsz - o, "%s%zu %s", sep, c, kind_names[k]);
        sep = ", ";
    }
    if (o < outsz && sep[0] == ',')
        o += (size_t)snprintf(out + o, outsz - o, ")");
    if (o < outsz && rep->oper)
        o += (size_t)snprintf(out + o, outsz - o, "; operational errors (see vmstorefs --check)");
    if (o < outsz && rep->busy)
        snprintf(out + o, outsz - o, "; %zu VM(s) busy, not checked", rep->busy);
}

static void print_json(FILE *out, const struct check_report *rep)
{
    struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
    json_object_object_add(o, "store", json_object_new_string(rep->store));
    json_object_object_add(o, "repair", json_object_new_boolean(rep->repair));
    json_object_object_add(o, "cheap", json_object_new_boolean(rep->cheap));
    json_object_object_add(o, "vms", json_object_new_int64((int64_t)rep->vms));
    json_object_object_add(o, "images", json_object_new_int64((int64_t)rep->images));
    json_object_object_add(o, "xml_files", json_object_new_int64((int64_t)rep->xml_files));
    json_object_object_add(o, "refcounts_counted", json_object_new_int64((int64_t)rep->counted));
    json_object_object_add(o, "qemu_checks", json_object_new_int64((int64_t)rep->qemu_checks));
    for (size_t i = 0; i < rep->n; i++) {
        const struct check_finding *f = &rep->f[i];
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "kind", json_object_new_string(kind_names[f->kind]));
        json_object_object_add(e, "vm", json_object_new_string(f->vm));
        json_object_object_add(e, "file", json_object_new_string(f->file));
        json_object_object_add(e, "detail", json_object_new_string(f->detail));
        json_object_object_add(e, "repaired", json_object_new_boolean(f->repaired));
        if (f->action)
            json_object_object_add(e, "action", json_object_new_string(f->action));
        json_object_array_add(arr, e);
    }
    json_object_object_add(o, "findings", arr);
    json_object_object_add(o, "repaired",
                           json_object_new_int64((int64_t)(rep->n - count_left(rep))));
    json_object_object_add(o, "left", json_object_new_int64((int64_t)count_left(rep)));
    json_object_object_add(o, "operational_errors",
                           rep->oper ? json_object_new_string(rep->oper) : NULL);
    json_object_object_add(o, "seconds", json_object_new_double(rep->seconds));
    json_object_object_add(o, "status", json_object_new_int(check_exit_status(rep)));
    fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

void check_print(FILE *out, const struct check_report *rep, bool json)
{
    if (json) {
        print_json(out, rep);
        return;
    }
    for (size_t i = 0; i < rep->n; i++) {
        const struct check_finding *f = &rep->f[i];
        fprintf(out, "%s: %s: %s: %s", f->vm[0] ? f->vm : "(store)", kind_names[f->kind],
                f->file, f->detail);
        if (f->action)
            fprintf(out, " [%s: %s]", f->repaired ? "repaired" : "left", f->action);
        fputc('\n', out);
    }
    if (rep->oper)
        fprintf(out, "operational error: %s\n", rep->oper);
    char sum[1024];
    check_summary(rep, sum, sizeof(sum));
    fprintf(out, "%s%s: %s; %zu repaired, %zu left (%.1f s)\n", rep->store,
            rep->repair ? " (repair)" : "", sum, rep->n - count_left(rep), count_left(rep),
            rep->seconds);
}

/* ---- the journal ---- */

struct jlist {
    const struct store *s;
    struct check_report *rep;
    bool lock;
};

/* A record whose VM's lock is held belongs to an operation running now
 * (in a mount beside the check): it is not left over. */
static bool vm_busy(const struct store *s, const char *vm)
{
    struct vmlock lk;
    char why[MSG_MAX];
    if (!vm[0] || !name_is_valid(vm))
        return false;
    int r = vmlock_acquire_mode(s, vm, VMLOCK_SHARED, 0, 0, NULL, NULL, &lk, why, sizeof(why));
    if (r < 0)
        return true;
    vmlock_release(&lk);
    return false;
}

static void on_journal_entry(const struct journal_entry *e, void *arg)
{
    struct jlist *l = arg;
    if (e->stray_tmp) {
        /* A directory an operation is filling has its record: none here,
         * so the operation is over (or never committed). */
        check_add(l->rep, CK_JOURNAL_STRAY, "", e->path,
                  "a temporary directory no journal record names");
        return;
    }
    if (l->lock && vm_busy(l->s, e->vm))
        return;
    if (e->unreadable)
        check_add(l->rep, CK_JOURNAL, "", e->path, "an unreadable journal record: %s", e->why);
    else
        check_add(l->rep, CK_JOURNAL, e->vm, e->path, "an unfinished %s operation (%s)", e->op,
                  e->committed ? "committed: recovery rolls it forward"
                               : "not committed: recovery rolls it back");
}

/* With repair, the recovery a mount runs (vmstorefs-ctl recover); what it
 * could not finish is listed again and left. */
static void check_journal(const struct store *s, const struct check_opts *o,
                          struct check_report *rep)
{
    struct jlist l = { s, rep, o->lock };
    size_t first = rep->n;
    if (!check_kind_enabled(CK_JOURNAL) && !check_kind_enabled(CK_JOURNAL_STRAY))
        return;
    int r = journal_each(s, on_journal_entry, &l);
    if (r < 0) {
        check_oper(rep, "cannot read the journal: %s", strerror(-r));
        return;
    }
    if (!o->repair || rep->n == first)
        return;
    char msg[MSG_MAX] = "";
    merge_install();
    int rec = vm_recover(s, NULL, msg, sizeof(msg));
    /* What is still there is left; the rest was finished or undone. */
    struct check_report again = { 0 };
    struct jlist l2 = { s, &again, o->lock };
    journal_each(s, on_journal_entry, &l2);
    for (size_t i = first; i < rep->n; i++) {
        bool left = false;
        for (size_t k = 0; k < again.n; k++)
            left |= strcmp(again.f[k].file, rep->f[i].file) == 0;
        if (left)
            check_action(&rep->f[i], false, "recovery could not finish it: %s",
                         rec < 0 ? msg : "see the log");
        else
            check_action(&rep->f[i], true, "%s",
                         rep->f[i].kind == CK_JOURNAL_STRAY ? "removed by the journal's recovery"
                         : strstr(rep->f[i].detail, "rolls it back")
                             ? "rolled back by the journal's recovery"
                             : "rolled forward by the journal's recovery");
    }
    check_report_free(&again);
}

/* ---- the VMs ---- */

int check_names_add(const char *name, void *list)
{
    struct check_names *l = list;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name)))
        return -ENOMEM;
    l->n++;
    return 0;
}

void check_names_free(struct check_names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static void check_vm(const struct store *s, const struct check_opts *o, struct check_report *rep,
                     struct check_ids *ids, const char *vm)
{
    struct vmlock lk = { -1, -1 };
    char why[MSG_MAX];
    unsigned wait = o->skip_busy ? 0 : 10000;
    int r = o->lock ? vmlock_acquire_mode(s, vm, o->repair ? VMLOCK_EXCLUSIVE : VMLOCK_SHARED,
                                          o->skip_busy ? 0 : VMLOCK_OP_WAIT_MS, wait, NULL, NULL,
                                          &lk, why, sizeof(why))
                    : 0;
    if (r < 0 && o->skip_busy && (r == -EBUSY || r == -EAGAIN)) {
        rep->busy++;
        return;
    }
    if (r < 0) {
        check_oper(rep, "%s: not checked: %s", vm, why);
        return;
    }
    struct cvm v = { .s = s, .o = o, .rep = rep, .vm = vm };
    if (store_vm_path(s, vm, NULL, v.dir, sizeof(v.dir)) == 0) {
        rep->vms++;
        r = check_images(&v);
        if (r < 0) {
            check_oper(rep, "%s: cannot read its images: %s", vm, strerror(-r));
        } else {
            check_domain_xml(&v);
            check_snapshot_xml(&v);
            check_relinks(&v);
            check_orphans(&v);
            if (!o->cheap)
                check_qemu(&v);
            check_ids_add(ids, &v);
        }
    }
    cvm_free(&v);
    if (o->lock)
        vmlock_release(&lk);
}

int check_run(const struct store *s, const struct check_opts *o, struct check_report *rep,
              char *msg, size_t msgsz)
{
    memset(rep, 0, sizeof(*rep));
    int64_t t0 = now_ms();
    snprintf(rep->store, sizeof(rep->store), "%s", s->root);
    rep->repair = o->repair;
    rep->cheap = o->cheap;
    if (!o->no_journal)
        check_journal(s, o, rep);
    struct check_names names = { 0 };
    int r = store_list_vms(s, check_names_add, &names);
    if (r < 0) {
        snprintf(msg, msgsz, "cannot list the store %s: %s", s->root, strerror(-r));
        check_names_free(&names);
        return r;
    }
    struct check_ids *ids = check_ids_new();
    if (!ids) {
        snprintf(msg, msgsz, "out of memory");
        r = -ENOMEM;
    }
    for (size_t i = 0; i < names.n; i++)
        if (ids && !(o->stop && atomic_load(o->stop)))
            check_vm(s, o, rep, ids, names.v[i]);
    check_names_free(&names);
    if (ids) {
        check_ids_report(ids, rep);
        check_ids_free(ids);
    }
    rep->seconds = (double)(now_ms() - t0) / 1000.0;
    return r;
}

int check_main(const struct store *s, const struct check_opts *o, bool json, FILE *out,
               char *msg, size_t msgsz)
{
    struct check_report rep;
    int r = check_run(s, o, &rep, msg, msgsz);
    int status = 8;
    if (r == 0) {
        check_print(out, &rep, json);
        status = check_exit_status(&rep);
    }
    check_report_free(&rep);
    xmlschema_cleanup();
    return status;
}
