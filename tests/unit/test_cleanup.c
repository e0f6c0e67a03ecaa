/* Unit tests of the journal's cleanup with every operation, on the sample
 * store (scripts/make-sample-store): a crash as an operation removes its
 * record, once every step is applied, is finished by the next recovery
 *  - in today's order (the record goes first, then the temporary
 *    directory): the crash right after the record leaves the directory
 *    only, which recovery removes;
 *  - in the order earlier versions had (the directory first): the crash
 *    just before the record leaves a committed record whose temporary
 *    directory is gone. Replaying its moves into that directory (VM
 *    delete, undefine, detach, snapshot delete) finds neither end: that
 *    record failed on every recovery, and every operation on its VM with
 *    it. Recovery must see it as done.
 * Each crash is made where it happens: the test wraps unlinkat, the call
 * that removes a record, and dies there (for the old order, after
 * removing the directory as that order did). Skipped (77) without
 * qemu-img. */
#include "config.h"

#include "check.h"
#include "samplestore.h"
#include "testutil.h"
#include "journal/journal.h"
#include "ops/clone.h"
#include "ops/snapshot.h"
#include "ops/vmdelete.h"
#include "vm/merge.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum crash { NO_CRASH, OLD_ORDER, AFTER_RECORD };
static enum crash crash;

/* A journal record's own name: <id>.json in .vmstorefs/journal (not the
 * .<id>.tmp a record is written as). */
static bool is_record(int dirfd, const char *name, char *id, size_t idsz)
{
    size_t n = strlen(name);
    char link[64], dirpath[PATH_MAX];
    if (name[0] == '.' || n < 6 || n - 5 >= idsz || strcmp(name + n - 5, ".json") != 0)
        return false;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
    ssize_t len = readlink(link, dirpath, sizeof(dirpath) - 1);
    if (len < 0)
        return false;
    dirpath[len] = '\0';
    size_t dl = (size_t)len, sl = strlen("/.vmstorefs/journal");
    if (dl < sl || strcmp(dirpath + dl - sl, "/.vmstorefs/journal") != 0)
        return false;
    snprintf(id, idsz, "%.*s", (int)(n - 5), name);
    return true;
}

/* The library's unlinkat calls land here (the test binary's definition
 * is the one the static library links to). */
int unlinkat(int dirfd, const char *name, int flags)
{
    char id[128];
    bool record = crash != NO_CRASH && flags == 0 && is_record(dirfd, name, id, sizeof(id));
    if (record && crash == OLD_ORDER) {
        char tmp[PATH_MAX + 256];
        snprintf(tmp, sizeof(tmp), "%s/.vmstorefs/tmp/%s", st.root, id);
        _exit(fs_rm_rf(tmp) == 0 ? 99 : 98);
    }
    int r = (int)syscall(SYS_unlinkat, dirfd, name, flags);
    if (record)
        _exit(r == 0 ? 99 : 98);
    return r;
}

typedef int (*op_fn)(const struct snap_ctx *c, char *msg, size_t msgsz);

static int take(const struct snap_ctx *c, char *msg, size_t msgsz)
{
    return snapshot_take(c, "db1", "s1", msg, msgsz);
}
static int delete_commit(const struct snap_ctx *c, char *msg, size_t msgsz)
{
    return snapshot_delete(c, "web1", "configured", NULL, msg, msgsz);
}
static int delete_partial(const struct snap_ctx *c, char *msg, size_t msgsz)
{
    return snapshot_delete(c, "web1", "installed", "vda", msg, msgsz);
}
static int revert(const struct snap_ctx *c, char *msg, size_t msgsz)
{
    return snapshot_revert(c, "web1", "installed", msg, msgsz);
}
static int rename_snap(const struct snap_ctx *c, char *msg, size_t msgsz)
{
    return snapshot_rename(c, "web1", "configured", "conf2", msg, msgsz);
}
static int detach(const struct snap_ctx *c, char *msg, size_t msgsz)
{
    return disk_detach(c, "db1", "vdb", msg, msgsz);
}
static int undefine(const struct snap_ctx *c, char *msg, size_t msgsz)
{
    return vm_undefine(c, "db1", msg, msgsz);
}
static int delete_vm(const struct snap_ctx *c, char *msg, size_t msgsz)
{
    return vm_delete(c, "db1", msg, msgsz);
}
static int clone_vm(const struct snap_ctx *c, char *msg, size_t msgsz)
{
    return clone_create(c, "web1", NULL, "c1", msg, msgsz);
}

static const struct {
    const char *name;
    op_fn op;
    const char *after; /* a path below the root that tells the state after it: */
    bool file;         /* a file there after it (else nothing there) */
    const char *web1_current; /* where web1 grows from after it */
} ops[] = {
    { "take", take, "db1/snapshots/s1/vdb.qcow2", true, "configured" },
    { "delete", delete_commit, "web1/snapshots/configured", false, "installed" },
    { "delete one disk", delete_partial, "web1/snapshots/installed", false, "configured" },
    { "revert", revert, "web1/snapshots/configured/vda.qcow2", true, "installed" },
    { "rename", rename_snap, "web1/snapshots/conf2/vda.qcow2", true, "conf2" },
    { "detach", detach, "db1/disks/vdb.qcow2", false, "configured" },
    { "undefine", undefine, "db1/domain.xml", false, "configured" },
    { "VM delete", delete_vm, "db1", false, "configured" },
    { "clone", clone_vm, "c1/disks/vda.qcow2", true, "configured" },
};

/* test -f root/rel when file, else test ! -e root/rel (said when not). */
static bool holds(const char *rel, bool file)
{
    char path[4 * PATH_MAX];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", st.root, rel);
    bool ok = file ? stat(path, &sb) == 0 && S_ISREG(sb.st_mode)
                   : lstat(path, &sb) < 0 && errno == ENOENT;
    if (!ok)
        fprintf(stderr, "%s: %s\n", path, file ? "not a file" : "still there");
    return ok;
}

static void crash_case(size_t k, enum crash how)
{
    const char *mode = how == OLD_ORDER ? "old order" : "record removed";
    char msg[MSG_MAX];
    CHECK(open_store("cleanup"));
    pid_t pid = fork();
    if (pid == 0) {
        crash = how;
        struct snap_ctx c = { .s = &st };
        _exit(ops[k].op(&c, msg, sizeof(msg)) == 0 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
        fprintf(stderr, "%s (%s): the operation did not die as it removed its record\n",
                ops[k].name, mode);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 99);
    /* The old order: the record, committed, without its directory. */
    CHECK_INT(journal_pending(&st), how == OLD_ORDER ? 1 : 0);
    int r = vm_recover(&st, NULL, msg, sizeof(msg));
    if (r != (how == OLD_ORDER ? 1 : 0))
        fprintf(stderr, "%s (%s): recovery returned %d: %s\n", ops[k].name, mode, r, msg);
    CHECK_INT(r, how == OLD_ORDER ? 1 : 0);
    CHECK(holds(ops[k].after, ops[k].file));
    CHECK_STR(current_of("web1"), ops[k].web1_current);
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s/.vmstorefs/tmp", st.root);
    CHECK(fs_empty_dir(tmp));
    CHECK_INT(journal_pending(&st), 0);
    store_close(&st);
}

int main(void)
{
    int setup = sample_setup("test_cleanup",
                             "command -v qemu-img >/dev/null && command -v qemu-io >/dev/null");
    if (setup != 0)
        return setup;
    merge_install();
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        crash_case(k, OLD_ORDER);
        crash_case(k, AFTER_RECORD);
    }
    sample_teardown();
    CHECK_DONE();
}
