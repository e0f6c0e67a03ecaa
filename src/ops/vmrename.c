/* vm_rename: see vmrename.h. The plan is one move (the VM's directory)
 * and the XML files that name it, each rewritten in the journal's
 * temporary directory and put in place by a replace step; the move comes
 * first, so the VM's own files are replaced where they stand after it. */
#include "config.h"

#include "ops/vmrename.h"

#include "meta/cloneid.h"
#include "meta/xmledit.h"
#include "meta/xmlsafe.h"
#include "ops/vmdelete.h"
#include "store/storeio.h"
#include "store/vmstate.h"
#include "util/log.h"
#include "vm/bgmerge.h"
#include "vm/imagegraph.h"
#include "vm/merge.h"
#include "vm/vmmodel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The largest XML file read: what xmlsafe parses is far smaller. */
#define XML_READ_MAX (16u << 20)

/* Another VM whose XML names this one (a clone's lineage, a shared
 * CD-ROM's path), locked while its files are rewritten. */
struct other {
    char vm[NAME_MAX_LEN + 1];
    struct vmlock lock;
};

struct vmren {
    const struct snap_ctx *c;
    const struct store *s;
    struct vm_model m;
    const char *from, *to;
    char from_dir[PATH_MAX], to_dir[PATH_MAX];
    struct vmlock to_lock;
    bool to_locked;
    struct other *others;
    size_t nothers;
    struct journal *j;
    unsigned nfiles; /* XML files rewritten */
    char *msg;
    size_t msgsz;
};

/* ---- the XML files of a VM ---- */

/* Called for each XML file of a VM that may name another (rel below its
 * directory; snapshot: a snapshot.xml, else a <domain>). Non-zero stops. */
typedef int (*xml_file_fn)(struct vmren *rn, const char *vm, const char *rel, bool snapshot);

struct each_snap {
    struct vmren *rn;
    const char *vm;
    xml_file_fn fn;
};

static int each_snap_one(const char *snap, void *arg)
{
    struct each_snap *e = arg;
    char rel[2 * NAME_MAX_LEN + 32];
    snprintf(rel, sizeof(rel), "snapshots/%s/snapshot.xml", snap);
    return e->fn(e->rn, e->vm, rel, true);
}

/* domain.xml, the definition an undefine kept, each snapshot's
 * snapshot.xml (the hidden directories of deleted snapshots hold images
 * only). */
static int each_xml(struct vmren *rn, const char *vm, xml_file_fn fn)
{
    int r = fn(rn, vm, "domain.xml", false);
    if (r == 0)
        r = fn(rn, vm, UNDEFINED_XML, false);
    struct each_snap e = { rn, vm, fn };
    return r ? r : store_list_snapshots(rn->s, vm, each_snap_one, &e);
}

/* The file's bytes (-ENOENT when there is none), parsed. */
static int load_xml(struct vmren *rn, const char *path, bool snapshot, xmlDocPtr *out)
{
    char *data = NULL, why[MSG_MAX];
    size_t len = 0;
    *out = NULL;
    int r = storeio_read(rn->s, path, XML_READ_MAX, &data, &len);
    if (r < 0) {
        if (r != -ENOENT)
            snprintf(rn->msg, rn->msgsz, "%s: %s", path, strerror(-r));
        return r;
    }
    *out = xmlsafe_parse_mem(data, len, snapshot ? "domainsnapshot" : "domain", why,
                             sizeof(why));
    free(data);
    if (!*out) {
        snprintf(rn->msg, rn->msgsz, "%s: %s", path, why);
        return -EINVAL;
    }
    return 0;
}

/* vm's file rel (its path into path), parsed, with the <domain> in it:
 * 1, 0 when there is no such file, or -errno. */
static int open_xml(struct vmren *rn, const char *vm, const char *rel, bool snapshot, char *path,
                    xmlDocPtr *doc, xmlNodePtr *dom)
{
    if (store_vm_path(rn->s, vm, rel, path, PATH_MAX) < 0)
        return -ENAMETOOLONG;
    int r = load_xml(rn, path, snapshot, doc);
    if (r < 0)
        return r == -ENOENT ? 0 : r;
    *dom = snapshot ? xmledit_snapshot_domain(*doc) : xmlDocGetRootElement(*doc);
    return 1;
}

/* doc, written to the temporary directory with the owner and mode of
 * src (the file it rewrites), replaces dst. */
static int stage(struct vmren *rn, xmlDocPtr doc, const char *src, const char *dst)
{
    struct store_perm perm;
    char name[32], tmp[PATH_MAX];
    int r = perm_of(rn->s, src, &perm);
    if (r < 0) {
        snprintf(rn->msg, rn->msgsz, "%s: %s", src, strerror(-r));
        return r;
    }
    snprintf(name, sizeof(name), "x%u.xml", rn->nfiles++);
    r = vm_write_temp(rn->j, doc, name, &perm, tmp, sizeof(tmp), rn->msg, rn->msgsz);
    return r < 0 ? r : journal_replace(rn->j, tmp, dst);
}

/* One of the VM's own files: every path into its directory names the
 * new one, and the domain (a snapshot's too: a revert restores it) is
 * named as the directory. Replaced where it stands after the move. */
static int own_file(struct vmren *rn, const char *vm, const char *rel, bool snapshot)
{
    char src[PATH_MAX], dst[PATH_MAX];
    xmlDocPtr doc;
    xmlNodePtr dom;
    if (store_vm_path(rn->s, rn->to, rel, dst, sizeof(dst)) < 0)
        return -ENAMETOOLONG;
    int r = open_xml(rn, vm, rel, snapshot, src, &doc, &dom);
    if (r <= 0)
        return r;
    r = xmledit_rewrite_dir(xmlDocGetRootElement(doc), rn->from_dir, rn->to_dir);
    if (r >= 0 && dom)
        r = xmledit_set_child_text(dom, "name", rn->to);
    if (r >= 0)
        r = stage(rn, doc, src, dst);
    xmlFreeDoc(doc);
    return r < 0 ? r : 0;
}

/* Another VM's file: its lineage, if the VM is its source, and any path
 * into the VM's directory. Written only when one of them was there. */
static int other_file(struct vmren *rn, const char *vm, const char *rel, bool snapshot)
{
    char path[PATH_MAX];
    xmlDocPtr doc;
    xmlNodePtr dom;
    int r = open_xml(rn, vm, rel, snapshot, path, &doc, &dom);
    if (r <= 0)
        return r;
    int n = xmledit_rewrite_dir(xmlDocGetRootElement(doc), rn->from_dir, rn->to_dir);
    int l = n >= 0 && dom ? cloneid_rename_source(dom, rn->from, rn->to) : 0;
    r = n < 0 ? n : l < 0 ? l : 0;
    if (r == 0 && n + l > 0)
        r = stage(rn, doc, path, path);
    xmlFreeDoc(doc);
    return r;
}

/* Does data hold s? */
static bool has(const char *data, size_t len, const char *s)
{
    return memmem(data, len, s, strlen(s)) != NULL;
}

/* 1 when the file may name the VM: it holds the VM's directory (a path
 * into it) or the name as a whole attribute value (a lineage's source),
 * or, when the store's path has characters XML escapes, the name at all.
 * A byte search: the files of the store's other VMs are read, and only
 * those that may name it are parsed (other_file decides). */
static int mentions(struct vmren *rn, const char *vm, const char *rel, bool snapshot)
{
    (void)snapshot;
    char path[PATH_MAX], *data = NULL, q1[NAME_MAX_LEN + 3], q2[NAME_MAX_LEN + 3];
    size_t len = 0;
    if (store_vm_path(rn->s, vm, rel, path, sizeof(path)) < 0 ||
        storeio_read(rn->s, path, XML_READ_MAX, &data, &len) < 0)
        return 0;
    snprintf(q1, sizeof(q1), "\"%s\"", rn->from);
    snprintf(q2, sizeof(q2), "'%s'", rn->from);
    bool escaped = strpbrk(rn->s->root, "&<>\"'") != NULL;
    int hit = escaped ? has(data, len, rn->from)
                      : has(data, len, rn->from_dir) || has(data, len, q1) || has(data, len, q2);
    free(data);
    return hit;
}

/* ---- the other VMs that name it ---- */

static void release_others(struct vmren *rn)
{
    for (size_t i = 0; i < rn->nothers; i++)
        vmlock_release(&rn->others[i].lock);
    rn->nothers = 0;
}

/* vm names the VM somewhere: locked (waiting as operations do), with
 * what a crash left of its own operations finished first. */
static int take_other(const char *vm, void *arg)
{
    struct vmren *rn = arg;
    if (strcmp(vm, rn->from) == 0 || strcmp(vm, rn->to) == 0 || !each_xml(rn, vm, mentions))
        return 0;
    struct other *no = realloc(rn->others, (rn->nothers + 1) * sizeof(*no));
    if (!no)
        return -ENOMEM;
    rn->others = no;
    struct other *o = &no[rn->nothers];
    snprintf(o->vm, sizeof(o->vm), "%s", vm);
    char why[MSG_MAX];
    int r = vmlock_acquire(rn->s, vm, VMLOCK_OP_WAIT_MS, rn->c->cancelled, rn->c->arg, &o->lock,
                           why, sizeof(why));
    if (r < 0) {
        snprintf(rn->msg, rn->msgsz, "VM %s, whose definition names %s, is busy: %s", vm,
                 rn->from, why);
        return r;
    }
    rn->nothers++;
    if (journal_pending_for(rn->s, vm) != 0 && (r = vm_recover(rn->s, vm, why, sizeof(why))) < 0)
        snprintf(rn->msg, rn->msgsz, "VM %s, whose definition names %s: %s", vm, rn->from, why);
    return r < 0 ? r : 0;
}

/* ---- checks before anything is written ---- */

/* The new name's lock, taken without waiting: held, it says a VM of that
 * name is being made (a clone) or renamed to. */
static int reserve_new(struct vmren *rn)
{
    int r = vmlock_acquire_mode(rn->s, rn->to, VMLOCK_EXCLUSIVE, VMLOCK_OP_WAIT_MS, 0,
                                rn->c->cancelled, rn->c->arg, &rn->to_lock, rn->msg, rn->msgsz);
    if (r == -EAGAIN) {
        snprintf(rn->msg, rn->msgsz, "a VM named %s is being created", rn->to);
        return -EEXIST;
    }
    if (r < 0)
        return r;
    rn->to_locked = true;
    /* A clone of that name a crash left, finished or undone first. */
    if (!storeio_exists(rn->s, rn->to_dir) && (r = vm_recover(rn->s, rn->to, rn->msg,
                                                                rn->msgsz)) < 0)
        return r;
    if (storeio_exists(rn->s, rn->to_dir)) {
        snprintf(rn->msg, rn->msgsz, "%s already exists in the store", rn->to);
        return -EEXIST;
    }
    return 0;
}

/* Every image of the VM, hidden ones too, kept from qemu (and the active
 * ones from writers through any mount) until the end: a qemu holding one
 * would go on opening it by its old path. */
static int hold_images(struct vmren *rn)
{
    struct igraph g;
    char why[MSG_MAX];
    int r = igraph_build(rn->s, rn->from, &g, why, sizeof(why));
    if (r < 0) {
        /* Not a missing VM, whatever the walk met: EINVAL (EACCES for a
         * chain that leaves the VM, as everywhere). */
        snprintf(rn->msg, rn->msgsz, "its images could not all be held: %s", why);
        return r == -EACCES ? r : -EINVAL;
    }
    for (size_t i = 0; r == 0 && i < g.count; i++) {
        const struct gnode *nd = &g.n[i];
        if (nd->kind != G_OTHER)
            r = vm_hold_image(&rn->m, nd->path, nd->kind == G_ACTIVE ? nd->dev : NULL, rn->msg,
                              rn->msgsz);
    }
    igraph_free(&g);
    return r;
}

/* ---- the operation ---- */

static int plan(struct vmren *rn)
{
    int r = journal_also(rn->j, rn->to);
    for (size_t i = 0; r == 0 && i < rn->nothers; i++)
        r = journal_also(rn->j, rn->others[i].vm);
    if (r == 0)
        r = journal_move(rn->j, rn->from_dir, rn->to_dir);
    if (r == 0)
        r = each_xml(rn, rn->from, own_file);
    for (size_t i = 0; r == 0 && i < rn->nothers; i++)
        r = each_xml(rn, rn->others[i].vm, other_file);
    return r;
}

/* journal_commit; a step failing after the commit is tried again at
 * once, as vm_commit does, by a recovery that takes the other VMs' locks
 * itself (journal.h, also): they are let go first. */
static int commit(struct vmren *rn)
{
    int r = journal_commit(rn->j, rn->msg, rn->msgsz);
    if (r == 0)
        return 0;
    if (!rn->j->committed) {
        journal_abort(rn->j);
        return r;
    }
    release_others(rn);
    if (rn->to_locked)
        vmlock_release(&rn->to_lock);
    rn->to_locked = false;
    vm_drop_image_locks(&rn->m);
    char again[MSG_MAX];
    int rr = vm_recover(rn->s, rn->from, again, sizeof(again));
    if (rr < 0) {
        log_msg(LOG_ERR, "vmrename of %s: cannot finish after its commit: %s", rn->from, again);
        snprintf(rn->msg, rn->msgsz, "could not finish after its commit (%s): it will be "
                                     "finished on the next operation on this VM or the next "
                                     "mount", again);
        return rr == -ENOSPC || rr == -EBUSY ? rr : -EIO;
    }
    log_msg(LOG_NOTICE, "vmrename of %s finished on a second try", rn->from);
    return 0;
}

static int run(struct vmren *rn)
{
    int r = reserve_new(rn);
    if (r == 0)
        r = hold_images(rn);
    if (r == 0)
        r = store_list_vms(rn->s, take_other, rn);
    if (r < 0)
        return r;
    struct journal j;
    if ((r = journal_begin(&j, rn->s, "vmrename", rn->from, rn->msg, rn->msgsz)) < 0)
        return r;
    rn->j = &j;
    r = plan(rn);
    if (r == 0)
        r = commit(rn);
    else
        journal_abort(&j);
    journal_free(&j);
    return r;
}

int vm_rename(const struct snap_ctx *c, const char *vm, const char *newname, char *msg,
              size_t msgsz)
{
    if (!name_is_valid(newname)) {
        snprintf(msg, msgsz, "'%s' is not a valid VM name (1-64 of A-Z a-z 0-9 . _ + -, "
                             "not starting with . or -)", newname);
        return -EINVAL;
    }
    struct vmren rn = { .c = c, .s = c->s, .from = vm, .to = newname, .msg = msg,
                        .msgsz = msgsz };
    if (!name_is_valid(vm) ||
        store_vm_path(c->s, vm, NULL, rn.from_dir, sizeof(rn.from_dir)) < 0 ||
        !storeio_exists(c->s, rn.from_dir)) {
        snprintf(msg, msgsz, "no such VM");
        return -ENOENT;
    }
    if (strcmp(vm, newname) == 0)
        return 0; /* rename(2) onto itself */
    if (store_vm_path(c->s, newname, NULL, rn.to_dir, sizeof(rn.to_dir)) < 0)
        return -ENAMETOOLONG;
    if (storeio_exists(c->s, rn.to_dir)) {
        snprintf(msg, msgsz, "%s already exists in the store", newname);
        return -EEXIST;
    }
    /* The name moves in the store's root, as `mv STORE/VM STORE/NEW`
     * would need the right to (write and search there). */
    if (!perm_cred_may(c->s, &c->cred, c->s->root, W_OK | X_OK)) {
        snprintf(msg, msgsz, "uid %u may not change entries in the store's root %s",
                 (unsigned)c->cred.uid, c->s->root);
        return -EACCES;
    }
    int r = vm_begin(&rn.m, c, vm, msg, msgsz);
    if (r < 0)
        return r;
    r = run(&rn);
    unsigned nfiles = rn.nfiles;
    size_t nothers = rn.nothers;
    release_others(&rn);
    free(rn.others);
    if (rn.to_locked)
        vmlock_release(&rn.to_lock);
    vm_end(&rn.m);
    if (r < 0)
        return r;
    /* Nothing the daemon keeps for the old name answers for it again (a
     * VM made under it later starts afresh); queued merges follow. */
    vmstate_forget(vm);
    vmstate_changed(newname);
    bgmerge_kick_if_hidden(newname);
    log_msg(LOG_INFO, "renamed VM %s to %s (%u XML file%s rewritten, %zu other VM%s)", vm,
            newname, nfiles, nfiles == 1 ? "" : "s", nothers, nothers == 1 ? "" : "s");
    return 0;
}
