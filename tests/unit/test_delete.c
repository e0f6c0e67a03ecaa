/* Unit tests for deletes without a mount, on the sample store
 * (scripts/make-sample-store: web1 = installed <- configured <- active,
 * patterns 0x11 at 0+4M, 0x22 at 4M+4M, 0x33 at 8M+1M; db1 = two disks,
 * 0x44 at 0+2M and 0x55 at 0+1M, no snapshots):
 *  - the merge direction follows the allocations (commit when the
 *    dependent is smaller: the frozen file takes the active path; pull
 *    when it is larger: the active file stays), data unchanged;
 *  - several dependents: the image is hidden, current is the nearest
 *    visible ancestor, and the garbage pass merges it when a revert
 *    leaves it one dependent, removes it at none;
 *  - partial snapshots, the last image taking the snapshot with it;
 *  - EBUSY from a qemu-style image lock, changing nothing;
 *  - VM delete, detach, undefine;
 *  - a real crash at every point of both merge directions and of the
 *    hidden case: recovery leaves each as before or as after;
 *  - the replay of a data step trusts no header: a pull whose image
 *    already names the new backing is copied again (and its leaks
 *    freed), a commit whose image backs onto something else is refused;
 *  - hard links: an image whose file has another name is never written
 *    into (hidden, or the other merge direction); a take of one, or a
 *    delete that would rewrite its backing name, is EBUSY;
 *  - renames among hidden images: the parent of a hidden image, the child
 *    of one, the parent of a chain of two; every chain opens and every
 *    image reads as before, later takes and deletes work; the rename
 *    reads this VM's headers only; a crash at every point of it;
 *  - the image graph reads each header once, however many branches;
 *  - ghosts: what a remover still sees. Skipped (77) without qemu-img. */
#include "config.h"

#include "check.h"
#include "vm/delplan.h"
#include "samplestore.h"
#include "testutil.h"
#include "view/ghost.h"
#include "store/imagelock.h"
#include "journal/journal.h"
#include "util/log.h"
#include "util/names.h"
#include "qemu/chain.h"
#include "qemu/qimg.h"
#include "ops/snapshot.h"
#include "store/storeio.h"
#include "ops/vmdelete.h"
#include "store/vmstate.h"
#include "vm/merge.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char msg[MSG_MAX];

/* Runs tmpl with every "%s" replaced by a (the store root). */
static int runf(const char *tmpl, const char *a)
{
    char cmd[8 * PATH_MAX];
    size_t n = 0, al = strlen(a);
    for (const char *p = tmpl; *p && n + al + 1 < sizeof(cmd); p++) {
        if (p[0] == '%' && p[1] == 's') {
            memcpy(cmd + n, a, al);
            n += al;
            p++;
        } else {
            cmd[n++] = *p;
        }
    }
    cmd[n] = '\0';
    return run(cmd);
}

/* qemu-io reads of web1's image `rel` (a path below web1/). */
static bool reads(const char *rel, const char *pattern_args)
{
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "qemu-io -r -f qcow2 %s '%s/web1/%s' >/dev/null 2>&1",
             pattern_args, st.root, rel);
    return run(cmd) == 0;
}

static ino_t ino(const char *rel)
{
    char path[PATH_MAX * 2];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/web1/%s", st.root, rel);
    return stat(path, &sb) == 0 ? sb.st_ino : 0;
}

/* Every image file under web1 is needed (active, a visible snapshot's, or
 * in a chain of those), the journal is empty, every XML validates. */
static bool tidy(void)
{
    /* The images of every chain, listed once; then each file must be one
     * of them (one qemu-img per top, not one per file and top; the names
     * taken apart by the shell, not by basename and grep: this runs at
     * every crash point). Every XML validates by libvirt's schemas, one
     * xmllint per kind (what virt-xml-validate runs per file, from the
     * schema directory virt-xml-validate names). */
    return runf("cd '%s/web1' && chains=$(for top in disks/*.qcow2 "
                "$(ls -d snapshots/[!.]*/*.qcow2 2>/dev/null); do "
                "qemu-img info -U --backing-chain \"$top\"; done | sed -n 's/^image: //p') && "
                "nl='\n' && for f in $(find . -name '*.qcow2'); do d=${f%/*}; "
                "case \"$nl$chains$nl\" in *\"${d##*/}/${f##*/}$nl\"*) ;; *) exit 1 ;; esac; "
                "done && "
                "[ -z \"$(ls -A '%s/.vmstorefs/journal')\" ] && "
                "rng=$(sed -n 's|^SCHEMA=\"\\(/.*\\)/${TYPE}\\.rng\"$|\\1|p' "
                "\"$(command -v virt-xml-validate)\") && [ -n \"$rng\" ] && "
                "xmllint --noout --relaxng \"$rng/domain.rng\" domain.xml 2>/dev/null && "
                "set -- snapshots/*/snapshot.xml && "
                "{ [ ! -e \"$1\" ] || xmllint --noout --relaxng \"$rng/domainsnapshot.rng\" \"$@\" 2>/dev/null; }",
                st.root) == 0;
}

static const char *const WEB1_ACTIVE = "-c 'read -P 0x11 0 4M' -c 'read -P 0x22 4M 4M' "
                                       "-c 'read -P 0x33 8M 1M'";
static const char *const WEB1_CONFIGURED = "-c 'read -P 0x11 0 4M' -c 'read -P 0x22 4M 4M' "
                                           "-c 'read -P 0 8M 1M'";

static void test_directions(void)
{
    struct snap_ctx c = { .s = &st };
    /* configured (4M) has one dependent, the active image (1M): commit. */
    CHECK(open_store("commit"));
    ino_t frozen = ino("snapshots/configured/vda.qcow2");
    CHECK_INT(snapshot_delete(&c, "web1", "configured", NULL, msg, sizeof(msg)), 0);
    CHECK(ino("disks/vda.qcow2") == frozen);
    CHECK(!store_snap_exists(&st, "web1", "configured"));
    CHECK_STR(current_of("web1"), "installed");
    CHECK(reads("disks/vda.qcow2", WEB1_ACTIVE));
    CHECK(reads("snapshots/installed/vda.qcow2", "-c 'read -P 0x11 0 4M' -c 'read -P 0 4M 4M'"));
    CHECK(tidy());
    CHECK_INT(runf("grep -q configured '%s/web1/domain.xml' '%s/web1/snapshots/installed/snapshot.xml'",
                   st.root),
              1);
    store_close(&st);

    /* The active image holds more than configured: pull. */
    CHECK(open_store("pull"));
    CHECK_INT(runf("qemu-io -f qcow2 -c 'write -q -P 0x33 8M 16M' '%s/web1/disks/vda.qcow2' "
                   ">/dev/null",
                   st.root),
              0);
    ino_t active = ino("disks/vda.qcow2");
    CHECK_INT(snapshot_delete(&c, "web1", "configured", NULL, msg, sizeof(msg)), 0);
    CHECK(ino("disks/vda.qcow2") == active);
    CHECK(reads("disks/vda.qcow2", "-c 'read -P 0x11 0 4M' -c 'read -P 0x22 4M 4M' "
                                   "-c 'read -P 0x33 8M 16M'"));
    CHECK(tidy());
    /* The base with one dependent: merged too, nothing left below. */
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), 0);
    CHECK_STR(current_of("web1"), "(none)");
    CHECK(reads("disks/vda.qcow2", "-c 'read -P 0x11 0 4M' -c 'read -P 0x22 4M 4M'"));
    CHECK_INT(runf("qemu-img info '%s/web1/disks/vda.qcow2' | grep -q '^backing file'", st.root),
              1);
    CHECK(tidy());
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), -ENOENT);
    store_close(&st);
}

static void test_hidden(void)
{
    struct snap_ctx c = { .s = &st };
    CHECK(open_store("hidden"));
    /* Revert to installed: it now has two dependents (configured's image
     * and the new active one). */
    CHECK_INT(snapshot_revert(&c, "web1", "installed", msg, sizeof(msg)), 0);
    CHECK_INT(runf("qemu-io -f qcow2 -c 'write -q -P 0x66 12M 1M' '%s/web1/disks/vda.qcow2' "
                   ">/dev/null",
                   st.root),
              0);
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), 0);
    CHECK(!store_snap_exists(&st, "web1", "installed"));
    CHECK_INT(runf("ls -d '%s'/web1/snapshots/.hidden-*/vda.qcow2 >/dev/null 2>&1", st.root), 0);
    CHECK_STR(current_of("web1"), "(none)");
    CHECK(reads("disks/vda.qcow2", "-c 'read -P 0x11 0 4M' -c 'read -P 0 4M 4M' "
                                   "-c 'read -P 0x66 12M 1M'"));
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK(tidy());
    /* configured had parent installed: now none. */
    CHECK_INT(runf("grep -q '<parent>' '%s/web1/snapshots/configured/snapshot.xml'", st.root), 1);
    /* Reverting to configured discards the branch: the hidden image is
     * down to one dependent (configured's) and is merged into it. */
    CHECK_INT(snapshot_revert(&c, "web1", "configured", msg, sizeof(msg)), 0);
    CHECK_INT(runf("ls -d '%s'/web1/snapshots/.hidden-* >/dev/null 2>&1", st.root), 2);
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK(reads("disks/vda.qcow2", WEB1_CONFIGURED));
    CHECK_STR(current_of("web1"), "configured");
    CHECK(tidy());
    store_close(&st);
}

static void test_partial_and_busy(void)
{
    struct snap_ctx c = { .s = &st };
    CHECK(open_store("partial"));
    CHECK_INT(snapshot_take(&c, "db1", "s1", msg, sizeof(msg)), 0);
    CHECK_INT(runf("qemu-io -f qcow2 -c 'write -q -P 0x45 4M 1M' '%s/db1/disks/vda.qcow2' "
                   ">/dev/null",
                   st.root),
              0);
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/db1/disks/vdb.qcow2", st.root);
    int held = imagelock_hold(&st, path);
    CHECK(held >= 0);
    CHECK_INT(snapshot_delete(&c, "db1", "s1", "vdb", msg, sizeof(msg)), -EBUSY);
    CHECK(strstr(msg, "in use") != NULL);
    CHECK(store_snap_exists(&st, "db1", "s1"));
    CHECK_INT(journal_pending(&st), 0);
    imagelock_drop(held);
    CHECK_INT(snapshot_delete(&c, "db1", "s1", "vdb", msg, sizeof(msg)), 0);
    CHECK(store_snap_exists(&st, "db1", "s1"));
    CHECK_INT(runf("test ! -e '%s/db1/snapshots/s1/vdb.qcow2' && test -e "
                   "'%s/db1/snapshots/s1/vda.qcow2' && grep -q \"name=.vdb. snapshot=.no.\" "
                   "'%s/db1/snapshots/s1/snapshot.xml'",
                   st.root),
              0);
    CHECK_INT(runf("qemu-io -r -f qcow2 -c 'read -P 0x55 0 1M' '%s/db1/disks/vdb.qcow2' "
                   ">/dev/null && qemu-io -r -f qcow2 -c 'read -P 0x44 0 2M' -c 'read -P 0 4M 1M' "
                   "'%s/db1/snapshots/s1/vda.qcow2' >/dev/null",
                   st.root),
              0);
    CHECK_INT(snapshot_delete(&c, "db1", "s1", "vdb", msg, sizeof(msg)), -ENOENT);
    /* The last image takes the snapshot with it. */
    CHECK_INT(snapshot_delete(&c, "db1", "s1", "vda", msg, sizeof(msg)), 0);
    CHECK(!store_snap_exists(&st, "db1", "s1"));
    CHECK_INT(runf("qemu-io -r -f qcow2 -c 'read -P 0x44 0 2M' -c 'read -P 0x45 4M 1M' "
                   "'%s/db1/disks/vda.qcow2' >/dev/null",
                   st.root),
              0);
    store_close(&st);
}

static void test_vm_entries(void)
{
    struct snap_ctx c = { .s = &st };
    CHECK(open_store("entries"));
    /* Detach: the disk leaves the definition; the frozen images stay. */
    CHECK_INT(snapshot_take(&c, "db1", "s1", msg, sizeof(msg)), 0);
    CHECK_INT(disk_detach(&c, "db1", "vdb", msg, sizeof(msg)), 0);
    CHECK_INT(runf("grep -q \"dev=.vdb.\" '%s/db1/domain.xml'", st.root), 1);
    CHECK_INT(runf("test ! -e '%s/db1/disks/vdb.qcow2' && qemu-io -r -f qcow2 -c 'read -P 0x55 0 "
                   "1M' '%s/db1/snapshots/s1/vdb.qcow2' >/dev/null",
                   st.root),
              0);
    /* s1's <disks> named the active image as where vdb's changes went:
     * it is gone, and no snapshot.xml names it; each still validates. */
    CHECK_INT(runf("grep -l '/db1/disks/vdb.qcow2' '%s'/db1/snapshots/*/snapshot.xml", st.root), 1);
    CHECK_INT(runf("virt-xml-validate '%s/db1/snapshots/s1/snapshot.xml' domainsnapshot "
                   ">/dev/null",
                   st.root),
              0);
    CHECK_INT(disk_detach(&c, "db1", "vdb", msg, sizeof(msg)), -ENOENT);
    /* A VM a qemu runs keeps its definition. */
    char active[PATH_MAX * 2];
    snprintf(active, sizeof(active), "%s/db1/disks/vda.qcow2", st.root);
    int running = imagelock_hold(&st, active);
    CHECK(running >= 0);
    CHECK_INT(runf("cp '%s/db1/domain.xml' '%s.db1.xml'", st.root), 0);
    CHECK_INT(vm_undefine(&c, "db1", msg, sizeof(msg)), -EBUSY);
    CHECK_INT(runf("cmp -s '%s/db1/domain.xml' '%s.db1.xml'", st.root), 0);
    imagelock_drop(running);
    /* Undefine keeps everything, the definition aside (.domain.xml.undefined)
     * byte for byte, and define puts it back. */
    CHECK_INT(vm_undefine(&c, "db1", msg, sizeof(msg)), 0);
    CHECK_INT(runf("test ! -e '%s/db1/domain.xml' && test -e '%s/db1/disks/vda.qcow2' && "
                   "cmp -s '%s/db1/.domain.xml.undefined' '%s.db1.xml'",
                   st.root),
              0);
    CHECK_INT(vm_undefine(&c, "db1", msg, sizeof(msg)), -ENOENT);
    CHECK_INT(vm_define_kept(&c, "db1", msg, sizeof(msg)), 0);
    CHECK_INT(runf("cmp -s '%s/db1/domain.xml' '%s.db1.xml' && test ! -e "
                   "'%s/db1/.domain.xml.undefined'",
                   st.root),
              0);
    CHECK_INT(vm_define_kept(&c, "db1", msg, sizeof(msg)), -EEXIST);
    CHECK_INT(vm_undefine(&c, "db1", msg, sizeof(msg)), 0);
    /* A VM held by a qemu is not deleted; then it is, whole, no merge. */
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/web1/snapshots/installed/vda.qcow2", st.root);
    int held = imagelock_hold(&st, path);
    CHECK_INT(vm_delete(&c, "web1", msg, sizeof(msg)), -EBUSY);
    CHECK_INT(runf("test -e '%s/web1/domain.xml'", st.root), 0);
    imagelock_drop(held);
    CHECK_INT(vm_delete(&c, "web1", msg, sizeof(msg)), 0);
    CHECK_INT(runf("test ! -e '%s/web1' && [ -z \"$(ls -A '%s/.vmstorefs/tmp')\" ]", st.root), 0);
    CHECK_INT(vm_delete(&c, "web1", msg, sizeof(msg)), -ENOENT);
    CHECK_INT(journal_pending(&st), 0);
    store_close(&st);
}

/* A child deletes web1's snapshot snap (renames it to `to`, when given)
 * and dies at point n of the operation; returns its exit status. */
static int crash_op_at(int n, const char *snap, const char *to)
{
    pid_t pid = fork();
    if (pid == 0) {
        char at[32];
        snprintf(at, sizeof(at), "%s:%d", to ? "rename" : "delete", n);
        setenv("VMSTOREFS_CRASH_AT", at, 1);
        struct snap_ctx c = { .s = &st };
        int r = to ? snapshot_rename(&c, "web1", snap, to, msg, sizeof(msg))
                   : snapshot_delete(&c, "web1", snap, NULL, msg, sizeof(msg));
        _exit(r == 0 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Point n of the operation (crash_op_at), then recovery as the next
 * mount runs it. False when the operation passed point n and finished:
 * there are no more points. */
static bool crash_and_recover(const char *name, int n, const char *snap, const char *to)
{
    int status = crash_op_at(n, snap, to);
    if (status == 0)
        return false;
    CHECK_INT(status, 99);
    int pending = journal_pending(&st);
    int rec = vm_recover(&st, NULL, msg, sizeof(msg));
    if (rec != pending)
        fprintf(stderr, "%s: crash at %d: recovery: %s\n", name, n, msg);
    CHECK_INT(rec, pending);
    return true;
}

/* setup: a shell command run on the fresh store before the delete. */
static void crash_case(const char *name, const char *setup, const char *snap,
                       const char *active_reads)
{
    int points = 0;
    struct snap_ctx c = { .s = &st };
    for (int n = test_crash_first(); n < 60; n += test_crash_stride()) {
        CHECK(open_store(name));
        if (setup && runf(setup, st.root) != 0) {
            CHECK(!"setup failed");
            break;
        }
        if (strcmp(snap, "installed") == 0)
            CHECK_INT(snapshot_revert(&c, "web1", "installed", msg, sizeof(msg)), 0);
        if (!crash_and_recover(name, n, snap, NULL))
            break;
        points = n; /* every point up to n, run or (stride) passed over */
        bool gone = !store_snap_exists(&st, "web1", snap);
        /* The data is the same either way; the structure is whole. */
        CHECK(reads("disks/vda.qcow2", active_reads));
        if (strcmp(snap, "installed") == 0)
            CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
        if (!gone)
            CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
        CHECK(tidy());
        CHECK_INT(runf("[ -z \"$(ls -A '%s/.vmstorefs/tmp')\" ]", st.root), 0);
        store_close(&st);
    }
    store_close(&st);
    CHECK(points >= 5);
    fprintf(stderr, "delete (%s) has %d crash points\n", name, points);
}

/* The active image written over 16M: deleting configured pulls. */
static const char *const PULL_SETUP =
    "qemu-io -f qcow2 -c 'write -q -P 0x33 8M 16M' '%s/web1/disks/vda.qcow2' >/dev/null";
static const char *const PULLED_ACTIVE = "-c 'read -P 0x11 0 4M' -c 'read -P 0x22 4M 4M' "
                                         "-c 'read -P 0x33 8M 16M'";

static void test_crash(void)
{
    crash_case("crash-commit", NULL, "configured", WEB1_ACTIVE);
    crash_case("crash-pull", PULL_SETUP, "configured", PULLED_ACTIVE);
    crash_case("crash-hidden", NULL, "installed", "-c 'read -P 0x11 0 4M' -c 'read -P 0 4M 4M'");
}

/* A fresh store `name` (setup run on it) whose delete of snap crashed
 * right at its commit: the record committed, no step applied. Crashes
 * at points *point (1 when 0), *point + 1, ... until one leaves the
 * record committed, and keeps that point in *point for the next call of
 * the same delete; false when none does. */
static bool crash_at_commit(const char *name, const char *setup, const char *snap, int *point)
{
    for (int n = *point ? *point : 1; n < 20; n++) {
        if (!open_store(name) || (setup && runf(setup, st.root) != 0) ||
            crash_op_at(n, snap, NULL) != 99)
            break;
        if (runf("grep -qsE '\"committed\": ?true' '%s'/.vmstorefs/journal/*.json", st.root) == 0) {
            *point = n;
            return true;
        }
        store_close(&st);
    }
    store_close(&st);
    return false;
}

/* The commit points of deleting configured by pull and by commit. */
static int pull_commit_point, commit_commit_point;

/* What a qemu-img rebase killed between writing its header and flushing
 * the metadata of what it copied leaves (journal.h, the replay
 * contract): the delete of configured committed, its pull not marked,
 * the active image's header already naming installed's image, and none
 * of configured's data referenced by the active image. Recovery sets it
 * back onto configured's image and copies again; only then does
 * configured's image go. leaks: the image also holds leaked clusters
 * (an internal snapshot's, its table entry dropped: refcounts nothing
 * references), which recovery frees. */
static void pull_header_first(bool leaks)
{
    CHECK(crash_at_commit("crash-pull", PULL_SETUP, "configured", &pull_commit_point));
    CHECK_INT(runf("grep -qsE '\"done\": ?0' '%s'/.vmstorefs/journal/*.json", st.root), 0);
    CHECK_INT(runf("cd '%s/web1/disks' && qemu-img rebase -u -f qcow2 -F qcow2 "
                   "-b ../snapshots/installed/vda.qcow2 vda.qcow2",
                   st.root),
              0);
    if (leaks)
        CHECK_INT(runf("cd '%s/web1/disks' && qemu-img snapshot -c leak vda.qcow2 && "
                       "printf '\\0\\0\\0\\0' | dd of=vda.qcow2 bs=1 seek=60 conv=notrunc "
                       "status=none; qemu-img check -q vda.qcow2 2>/dev/null; [ $? = 3 ]",
                       st.root),
                  0);
    /* configured's data (0x22) is in no image the active one reads now. */
    CHECK(!reads("disks/vda.qcow2", PULLED_ACTIVE));
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK_INT(vm_recover(&st, NULL, msg, sizeof(msg)), 1);
    CHECK(!store_snap_exists(&st, "web1", "configured"));
    CHECK(reads("disks/vda.qcow2", PULLED_ACTIVE));
    CHECK_STR(current_of("web1"), "installed");
    CHECK(tidy());
    CHECK_INT(runf("qemu-img check -q '%s/web1/disks/vda.qcow2'", st.root), 0);
    store_close(&st);
}

/* The commit's replay: qemu-img commit -d never changes the image it
 * reads, so an image that no longer backs onto the one it is committed
 * into was changed by something else; the commit is not taken for done
 * (configured's image would then replace the active one, whose data was
 * never committed): recovery refuses and changes nothing. */
static void commit_header_changed(void)
{
    CHECK(crash_at_commit("crash-commit", NULL, "configured", &commit_commit_point));
    CHECK_INT(runf("cd '%s/web1/disks' && qemu-img rebase -u -f qcow2 -F qcow2 "
                   "-b ../snapshots/installed/vda.qcow2 vda.qcow2",
                   st.root),
              0);
    CHECK(vm_recover(&st, NULL, msg, sizeof(msg)) < 0);
    CHECK_INT(journal_pending(&st), 1);
    CHECK(store_snap_exists(&st, "web1", "configured"));
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK(reads("disks/vda.qcow2", "-c 'read -P 0x11 0 4M' -c 'read -P 0 4M 4M' "
                                   "-c 'read -P 0x33 8M 1M'"));
    store_close(&st);
}

static void test_replay_data_steps(void)
{
    /* The stores test_crash made (a sample store is made once a name). */
    pull_header_first(false);
    pull_header_first(true);
    commit_header_changed();
}

/* A mount's recovery (vm_recover with no VM) while a child holds the
 * image's lock, as a killed daemon's qemu-img does until it has exited.
 * The child lets go once recovery says it waits: it reads what this
 * process logs (stderr, through a pipe, passed on). Without the wait,
 * recovery meets the lock, fails, and the child still holds it at the
 * end. Returns what vm_recover returned. */
static int recover_while_held(const char *image)
{
    int logp[2], ready[2];
    if (pipe(logp) < 0 || pipe(ready) < 0)
        return -errno;
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(logp[1]);
        close(ready[0]);
        int fd = imagelock_hold(&st, image);
        if (write(ready[1], fd >= 0 ? "y" : "n", 1) != 1)
            _exit(2);
        close(ready[1]);
        FILE *in = fdopen(logp[0], "r");
        char line[MSG_MAX];
        while (in && fgets(line, sizeof(line), in)) {
            fputs(line, stderr);
            if (fd >= 0 && strstr(line, "waiting up to")) {
                imagelock_drop(fd);
                fd = -1;
            }
        }
        _exit(fd < 0 ? 0 : 1);
    }
    close(logp[0]);
    close(ready[1]);
    char c = 'n';
    CHECK(read(ready[0], &c, 1) == 1 && c == 'y');
    close(ready[0]);
    int saved = dup(STDERR_FILENO);
    dup2(logp[1], STDERR_FILENO);
    close(logp[1]);
    int r = vm_recover(&st, NULL, msg, sizeof(msg));
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    int status;
    waitpid(pid, &status, 0);
    /* 0: it let go when recovery asked for the lock. */
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return r;
}

/* The image graph reads each image's header once, however many chains
 * share it: a VM "comb" of a linear chain c1 <- ... <- c6 and six images
 * growing from c6 (the active one and five branch tips t1-t5), made
 * with qemu-img alone. Walking each tip's whole chain would read seven
 * headers a tip. */
static void test_graph_cost(void)
{
    CHECK(open_store("graph-cost"));
    CHECK_INT(runf("cd '%s' && mkdir -p comb/disks comb/snapshots/c1 && cd comb/snapshots && "
                   "qemu-img create -q -f qcow2 c1/vda.qcow2 16M && "
                   "for i in 2 3 4 5 6; do mkdir c$i && qemu-img create -q -f qcow2 "
                   "-b ../c$((i - 1))/vda.qcow2 -F qcow2 c$i/vda.qcow2 || exit 1; done && "
                   "for i in 1 2 3 4 5; do mkdir t$i && "
                   "qemu-img create -q -f qcow2 -b ../c6/vda.qcow2 -F qcow2 t$i/vda.qcow2 || exit 1; "
                   "done && qemu-img create -q -f qcow2 -b ../snapshots/c6/vda.qcow2 -F qcow2 "
                   "../disks/vda.qcow2",
                   st.root),
              0);
    struct igraph g;
    unsigned long hits, misses;
    chain_cache_clear();
    CHECK_INT(igraph_build(&st, "comb", &g, msg, sizeof(msg)), 0);
    chain_cache_stats(&hits, &misses);
    CHECK_INT(g.count, 12);
    CHECK_INT(hits + misses, g.count);
    /* Every parent as the headers have it. */
    int tips = 0;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/comb/snapshots/c6/vda.qcow2", st.root);
    int c6 = igraph_find(&g, path);
    CHECK(c6 >= 0);
    for (size_t i = 0; i < g.count; i++)
        tips += g.n[i].parent == c6;
    CHECK_INT(tips, 6);
    size_t depth = 0;
    for (int k = c6; k >= 0 && depth <= g.count; k = g.n[k].parent)
        depth++;
    CHECK_INT(depth, 6);
    igraph_free(&g);
    store_close(&st);
}

/* ---- Renames among hidden images ----
 * A model of web1's history from the sample's active state on: write k
 * (from 0) puts 0xa0+k on 64k at 16+k MiB of vda; a snapshot holds the
 * writes made before it was taken (a mask), the active image those of
 * the snapshot it last grew from and its own since. Every operation goes
 * through the core and the model together. */
#define HM_MAX 12
struct hmodel {
    int writes;
    unsigned active;
    size_t n;
    char name[HM_MAX][NAME_MAX_LEN + 1];
    unsigned mask[HM_MAX];
};
static struct hmodel hm;

static int hm_find(const char *snap)
{
    for (size_t i = 0; i < hm.n; i++)
        if (strcmp(hm.name[i], snap) == 0)
            return (int)i;
    return -1;
}

static int hm_take(const char *snap)
{
    struct snap_ctx c = { .s = &st };
    char cmd[2 * PATH_MAX];
    int k = hm.writes++;
    snprintf(cmd, sizeof(cmd),
             "qemu-io -f qcow2 -c 'write -q -P %d %dM 64k' '%s/web1/disks/vda.qcow2' >/dev/null",
             0xa0 + k, 16 + k, st.root);
    hm.active |= 1u << k;
    int r = run(cmd) == 0 ? snapshot_take(&c, "web1", snap, msg, sizeof(msg)) : -EIO;
    if (r == 0 && hm.n < HM_MAX) {
        snprintf(hm.name[hm.n], sizeof(hm.name[0]), "%s", snap);
        hm.mask[hm.n++] = hm.active;
    }
    return r;
}

static int hm_revert(const char *snap)
{
    struct snap_ctx c = { .s = &st };
    int i = hm_find(snap);
    int r = i < 0 ? -ENOENT : snapshot_revert(&c, "web1", snap, msg, sizeof(msg));
    if (r == 0)
        hm.active = hm.mask[i];
    return r;
}

static int hm_delete(const char *snap)
{
    struct snap_ctx c = { .s = &st };
    int i = hm_find(snap);
    int r = i < 0 ? -ENOENT : snapshot_delete(&c, "web1", snap, NULL, msg, sizeof(msg));
    if (r == 0) {
        hm.n--;
        memmove(&hm.name[i], &hm.name[i + 1], (hm.n - (size_t)i) * sizeof(hm.name[0]));
        memmove(&hm.mask[i], &hm.mask[i + 1], (hm.n - (size_t)i) * sizeof(hm.mask[0]));
    }
    return r;
}

/* The model's side of a rename (the crash test finds it done or not). */
static void hm_renamed(const char *from, const char *to)
{
    int i = hm_find(from);
    if (i >= 0)
        snprintf(hm.name[i], sizeof(hm.name[0]), "%s", to);
}

/* Does an XML file of web1 name snapshot snap (its directory in a path,
 * or its name as a <name> or a <parent>)? */
static bool xml_names(const char *snap)
{
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "grep -rqs --include='*.xml' -e 'snapshots/%s/' -e '<name>%s</name>' '%s/web1'", snap,
             snap, st.root);
    return run(cmd) == 0;
}

/* A rename, after which no XML names the old snapshot. */
static int hm_rename(const char *from, const char *to)
{
    struct snap_ctx c = { .s = &st };
    int r = snapshot_rename(&c, "web1", from, to, msg, sizeof(msg));
    if (r < 0)
        return r;
    hm_renamed(from, to);
    return xml_names(from) ? -EINVAL : 0;
}

/* One image's reads for hm_reads: opened (with its whole chain), each
 * write of the model read as mask says, over the sample's data. */
static size_t hm_image_reads(char *out, size_t outsz, const char *rel, unsigned mask)
{
    size_t at = (size_t)snprintf(out, outsz, " -c 'open -r -o driver=qcow2 %s/web1/%s' %s",
                                 st.root, rel, WEB1_ACTIVE);
    for (int k = 0; k < hm.writes && at < outsz; k++)
        at += (size_t)snprintf(out + at, outsz - at, " -c 'read -P %d %dM 64k'",
                               mask & (1u << k) ? 0xa0 + k : 0, 16 + k);
    if (at < outsz)
        at += (size_t)snprintf(out + at, outsz - at, " -c close");
    return at;
}

/* Every modelled image (each snapshot's and the active one) reads as the
 * model says, all in one qemu-io: an image whose chain does not open, or
 * data not where the model has it, fails it (qemu-io's complaint on
 * stderr). */
static bool hm_reads(void)
{
    char cmd[32 * 1024];
    size_t at = (size_t)snprintf(cmd, sizeof(cmd), "o=$(qemu-io");
    for (size_t i = 0; i <= hm.n && at < sizeof(cmd); i++) {
        char rel[NAME_MAX_LEN + 32];
        if (i < hm.n)
            snprintf(rel, sizeof(rel), "snapshots/%s/vda.qcow2", hm.name[i]);
        else
            snprintf(rel, sizeof(rel), "disks/vda.qcow2");
        at += hm_image_reads(cmd + at, sizeof(cmd) - at, rel, i < hm.n ? hm.mask[i] : hm.active);
    }
    if (at < sizeof(cmd))
        at += (size_t)snprintf(cmd + at, sizeof(cmd) - at,
                               " 2>&1); bad=$(printf '%%s\\n' \"$o\" | "
                               "grep -i -e fail -e error -e 'could not' -e \"can't\" -e 'no file'); "
                               "[ -z \"$bad\" ] || { printf 'web1: %%s\\n' \"$bad\" | head -n 3 >&2; "
                               "exit 1; }");
    return at < sizeof(cmd) && run(cmd) == 0;
}

/* hm_reads, and every image file is needed, every XML valid (tidy). */
static bool hm_ok(void)
{
    return hm_reads() && tidy();
}

static int hidden_dirs(void)
{
    return runf("exit $(ls -d '%s'/web1/snapshots/.hidden-* 2>/dev/null | wc -l)", st.root);
}

/* The CloudStack deletion sequence up to its hidden image: s1 <- s2 <-
 * s3, revert to s2, s4; deleting s2 (dependents s3 and s4) hides its
 * image, whose parent is s1's. */
static bool hm_hidden_fixture(const char *name)
{
    memset(&hm, 0, sizeof(hm));
    if (!open_store(name))
        return false;
    int r = hm_take("s1");
    if (r == 0)
        r = hm_take("s2");
    if (r == 0)
        r = hm_take("s3");
    if (r == 0)
        r = hm_revert("s2");
    if (r == 0)
        r = hm_take("s4");
    if (r == 0)
        r = hm_delete("s2");
    if (r < 0)
        fprintf(stderr, "%s: building the fixture: %s\n", name, msg);
    return r == 0 && hidden_dirs() == 1;
}

/* Issue 15: a rename plans its backing names on the image graph. s1's
 * image is the hidden image's parent: renaming s1 rewrites the hidden
 * image's name of it, or the active disk and s3, s4 no longer open and
 * every later operation on the VM is refused. Then renaming s3, which
 * grows from the hidden image; a take and deletes afterwards (t1 merges
 * with the hidden image, its one dependent; deleting u3 leaves the
 * hidden image one dependent, s4). The rename reads the headers of
 * web1's images only, a few times at most: none of db1's (which has
 * more than web1). */
static void test_rename_hidden(void)
{
    struct snap_ctx c = { .s = &st };
    CHECK(hm_hidden_fixture("rename-hidden"));
    for (int i = 1; i <= 3; i++) {
        char snap[8];
        snprintf(snap, sizeof(snap), "x%d", i);
        CHECK_INT(snapshot_take(&c, "db1", snap, msg, sizeof(msg)), 0);
    }
    int images = runf("exit $(find '%s/web1' -name '*.qcow2' | wc -l)", st.root);
    unsigned long hits, misses;
    chain_cache_clear();
    CHECK_INT(hm_rename("s1", "t1"), 0);
    chain_cache_stats(&hits, &misses);
    /* The active chain is read twice (the definition's disks, the
     * graph), the image rewritten once more, the others once. */
    CHECK(hits + misses > 0 && hits + misses <= 3 * (unsigned long)images);
    CHECK_INT(runf("qemu-img info -U '%s'/web1/snapshots/.hidden-*/vda.qcow2 | "
                   "grep -q '^backing file: \\.\\./t1/vda\\.qcow2 '",
                   st.root),
              0);
    CHECK(hm_ok());
    CHECK_INT(hm_rename("s3", "u3"), 0);
    CHECK(hm_reads());
    CHECK_INT(hm_take("s5"), 0);
    CHECK_INT(hm_delete("t1"), 0);
    CHECK_INT(hidden_dirs(), 1);
    CHECK(hm_reads());
    CHECK_INT(hm_delete("u3"), 0);
    CHECK_INT(hidden_dirs(), 0);
    CHECK(hm_ok());
    store_close(&st);
}

/* Two hidden images in one chain: s0 <- s1 <- s2 <- s3, revert to s1,
 * s4, revert to s2, s5; deleting s2 hides it (dependents s3, s5), then
 * deleting s1 hides it too (the hidden s2 and s4). Renaming s0, the
 * lower hidden image's parent, rewrites that one; the upper one's name
 * of the lower one stays. */
static void test_rename_two_hidden(void)
{
    memset(&hm, 0, sizeof(hm));
    CHECK(open_store("rename-hidden2"));
    const char *seq[] = { "s0", "s1", "s2", "s3" };
    for (size_t i = 0; i < 4; i++)
        CHECK_INT(hm_take(seq[i]), 0);
    CHECK_INT(hm_revert("s1"), 0);
    CHECK_INT(hm_take("s4"), 0);
    CHECK_INT(hm_revert("s2"), 0);
    CHECK_INT(hm_take("s5"), 0);
    CHECK_INT(hm_delete("s2"), 0);
    CHECK_INT(hm_delete("s1"), 0);
    CHECK_INT(hidden_dirs(), 2);
    CHECK_INT(hm_rename("s0", "t0"), 0);
    CHECK(hm_reads());
    CHECK_INT(hm_take("s6"), 0);
    CHECK_INT(hm_delete("t0"), 0);
    CHECK(hm_ok());
    store_close(&st);
}

/* The files of web1 (and of the store's journal and temporary
 * directories), t1's as s1's: the same before and after the rename. */
static bool tree_of(char *out, size_t outsz)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && find web1 .vmstorefs/journal .vmstorefs/tmp -mindepth 1 | "
             "sed 's|^web1/snapshots/t1|web1/snapshots/s1|' | sort",
             st.root);
    FILE *p = popen(cmd, "r");
    if (!p)
        return false;
    size_t n = fread(out, 1, outsz - 1, p);
    out[n] = '\0';
    return pclose(p) == 0 && n < outsz - 1;
}

/* The rename of the hidden image's parent, crashed at every durable
 * point: recovery leaves s1 or t1 (never both, never neither), every
 * chain whole, every image reading as before, the same files, and no
 * XML naming the other one. The fixture is built once and kept as the
 * store's pristine copy (samplestore.h): each crash point starts from a
 * byte-exact copy of it. The states before and after are checked in
 * full (tidy) once each; each crash point by what tells them apart. */
static void test_rename_crash(void)
{
    char cmd[4 * PATH_MAX], files[8192], got[8192];
    CHECK(hm_hidden_fixture("rename-crash"));
    CHECK(hm_ok());
    CHECK(tree_of(files, sizeof(files)));
    store_close(&st);
    snprintf(cmd, sizeof(cmd),
             "rm -rf '%s/.pristine-rename-crash' && cp -a '%s/rename-crash' "
             "'%s/.pristine-rename-crash'",
             dir, dir, dir);
    CHECK_INT(run(cmd), 0);
    struct hmodel before = hm;
    int points = 0;
    for (int n = test_crash_first(); n < 60; n += test_crash_stride()) {
        CHECK(open_store("rename-crash"));
        hm = before;
        if (!crash_and_recover("rename-crash", n, "s1", "t1")) {
            hm_renamed("s1", "t1");
            CHECK(hm_ok());
            break;
        }
        points = n; /* every point up to n, run or (stride) passed over */
        bool after = store_snap_exists(&st, "web1", "t1");
        CHECK(after != store_snap_exists(&st, "web1", "s1"));
        if (after)
            hm_renamed("s1", "t1");
        bool ok = hm_reads() && tree_of(got, sizeof(got)) && strcmp(got, files) == 0 &&
                  !xml_names(after ? "s1" : "t1");
        if (!ok)
            fprintf(stderr, "rename crash at %d: not as %s\n", n, after ? "after" : "before");
        CHECK(ok);
        store_close(&st);
    }
    store_close(&st);
    CHECK(points >= 8);
    fprintf(stderr, "rename with a hidden child has %d crash points\n", points);
}

/* Review findings, each a test: an image of another VM whose backing
 * name climbs into this VM does not pin this VM's images (no chain the
 * daemon follows leaves its VM, so no plan looks at other VMs: its cost
 * stays that of one VM; a hard link is the one way to share an image,
 * test_hard_links); a planted .hidden-<word>
 * directory is not ours to collect; recovery does not rename an image
 * a qemu holds (the record stays), and a mount's recovery waits for a
 * lock that goes. */
static void test_pins_and_recovery(void)
{
    struct snap_ctx c = { .s = &st };
    CHECK(open_store("pins"));
    CHECK_INT(runf("mkdir -p '%s/other/disks' '%s/other/snapshots' && cd '%s/other/disks' && "
                   "qemu-img create -q -f qcow2 -b ../../web1/snapshots/installed/vda.qcow2 "
                   "-F qcow2 vda.qcow2",
                   st.root),
              0);
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), 0);
    CHECK(!store_snap_exists(&st, "web1", "installed"));
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK_INT(journal_pending(&st), 0);
    CHECK(tidy());
    store_close(&st);
    CHECK(open_store("pins-b"));
    CHECK_INT(runf("mkdir -p '%s/web1/snapshots/.hidden-backup' && "
                   "cp '%s/web1/snapshots/installed/vda.qcow2' "
                   "'%s/web1/snapshots/.hidden-backup/vda.qcow2'",
                   st.root),
              0);
    CHECK_INT(delplan_collect_store(&st), 0);
    CHECK_INT(runf("test -f '%s/web1/snapshots/.hidden-backup/vda.qcow2'", st.root), 0);
    store_close(&st);
    /* A crash right after the commit record of a commit-direction delete
     * (configured into the active image's place), then a qemu takes the
     * active image before the next mount: recovery leaves it. */
    CHECK(crash_at_commit("crash-commit", NULL, "configured", &commit_commit_point));
    CHECK_INT(journal_pending(&st), 1);
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/web1/disks/vda.qcow2", st.root);
    int held = imagelock_hold(&st, path);
    CHECK(held >= 0);
    /* An operation's own recovery (the VM named: a request waits on it)
     * meets the lock at once. */
    CHECK(vm_recover(&st, "web1", msg, sizeof(msg)) < 0);
    CHECK_INT(journal_pending(&st), 1);
    imagelock_drop(held);
    CHECK(reads("disks/vda.qcow2", WEB1_ACTIVE));
    /* A mount's recovery waits for a lock that goes, as a killed
     * daemon's qemu-img's does once it has exited. */
    CHECK_INT(recover_while_held(path), 1);
    CHECK(!store_snap_exists(&st, "web1", "configured"));
    CHECK(reads("disks/vda.qcow2", WEB1_ACTIVE));
    CHECK(tidy());
    store_close(&st);
}

/* Hard links: a second name of an image's file (another VM's image, a copy
 * made with ln) reads, and may write, the same data, so nothing here may
 * write into that file. The name is made beside the store (the same file
 * system), and its bytes are compared before and after. */
static bool link_image(const char *rel, const char *name)
{
    char cmd[6 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "ln '%s/web1/%s' '%s/%s' && md5sum <'%s/%s' >'%s/%s.md5'",
             st.root, rel, dir, name, dir, name, dir, name);
    return run(cmd) == 0;
}

static bool link_unchanged(const char *name)
{
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "md5sum <'%s/%s' | cmp -s - '%s/%s.md5'", dir, name, dir, name);
    return run(cmd) == 0;
}

static void unlink_image(const char *name)
{
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "rm -f '%s/%s' '%s/%s.md5'", dir, name, dir, name);
    run(cmd);
}

static void test_hard_links(void)
{
    struct snap_ctx c = { .s = &st };
    char cmd[4 * PATH_MAX];
    /* configured's image has one dependent (the active image, smaller:
     * commit) and a second name, which counts as another dependent: the
     * image is hidden, not committed into. */
    CHECK(open_store("links-f"));
    ino_t frozen = ino("snapshots/configured/vda.qcow2");
    CHECK(link_image("snapshots/configured/vda.qcow2", "configured.link"));
    CHECK_INT(snapshot_delete(&c, "web1", "configured", NULL, msg, sizeof(msg)), 0);
    CHECK(!store_snap_exists(&st, "web1", "configured"));
    CHECK(link_unchanged("configured.link"));
    snprintf(cmd, sizeof(cmd), "find '%s/web1/snapshots' -inum %lu -path '*/.hidden-*' | grep -q .",
             st.root, (unsigned long)frozen);
    CHECK_INT(run(cmd), 0);
    CHECK(reads("disks/vda.qcow2", WEB1_ACTIVE));
    CHECK(tidy());
    /* The other name gone, the garbage pass merges it. */
    unlink_image("configured.link");
    CHECK_INT(delplan_collect_store(&st), 1);
    CHECK_INT(runf("ls -d '%s'/web1/snapshots/.hidden-* >/dev/null 2>&1", st.root), 2);
    CHECK(reads("disks/vda.qcow2", WEB1_ACTIVE));
    CHECK(tidy());
    store_close(&st);

    /* The active image holds more than configured (pull would write into
     * it) and has a second name: commit instead; configured's file takes
     * the active path, the other name keeps the old active file as it was. */
    CHECK(open_store("links-c"));
    CHECK_INT(runf("qemu-io -f qcow2 -c 'write -q -P 0x33 8M 16M' '%s/web1/disks/vda.qcow2' "
                   ">/dev/null",
                   st.root),
              0);
    frozen = ino("snapshots/configured/vda.qcow2");
    CHECK(link_image("disks/vda.qcow2", "active.link"));
    CHECK_INT(snapshot_delete(&c, "web1", "configured", NULL, msg, sizeof(msg)), 0);
    CHECK(ino("disks/vda.qcow2") == frozen);
    CHECK(link_unchanged("active.link"));
    CHECK(reads("disks/vda.qcow2", "-c 'read -P 0x11 0 4M' -c 'read -P 0x22 4M 4M' "
                                   "-c 'read -P 0x33 8M 16M'"));
    CHECK(tidy());
    unlink_image("active.link");

    /* A take would freeze (and rewrite the header of) an active image
     * that another name may still write: EBUSY, nothing changes. */
    CHECK(link_image("disks/vda.qcow2", "take.link"));
    CHECK_INT(snapshot_take(&c, "web1", "s1", msg, sizeof(msg)), -EBUSY);
    CHECK(strstr(msg, "hard links") != NULL);
    CHECK(!store_snap_exists(&st, "web1", "s1"));
    CHECK(link_unchanged("take.link"));
    CHECK_INT(journal_pending(&st), 0);
    unlink_image("take.link");
    CHECK_INT(snapshot_take(&c, "web1", "s1", msg, sizeof(msg)), 0);
    store_close(&st);

    /* After a revert to installed, its image has two dependents (the
     * new active image and configured's): deleting installed hides it
     * and rewrites their backing names, which configured's file, with a
     * second name, must not get: EBUSY, nothing changes. */
    CHECK(open_store("links-h"));
    CHECK_INT(snapshot_revert(&c, "web1", "installed", msg, sizeof(msg)), 0);
    CHECK(link_image("snapshots/configured/vda.qcow2", "dependent.link"));
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), -EBUSY);
    CHECK(strstr(msg, "hard links") != NULL);
    CHECK(store_snap_exists(&st, "web1", "installed"));
    CHECK(link_unchanged("dependent.link"));
    CHECK_INT(journal_pending(&st), 0);
    unlink_image("dependent.link");
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), 0);
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK(tidy());
    store_close(&st);
}

static int collect(void *ctx, const char *name, mode_t type)
{
    (void)type;
    strcat(ctx, name);
    strcat(ctx, ",");
    return 0;
}

static void test_ghosts(void)
{
    ghost_reset();
    CHECK_INT(ghost_add(10, "/vm/snapshots/s", S_IFDIR), 0);
    CHECK_INT(ghost_add(10, "/vm/snapshots/s/vda.qcow2", S_IFREG), 0);
    mode_t t;
    CHECK_INT(ghost_stat(10, "/vm/snapshots/s", &t), 0);
    CHECK(S_ISDIR(t));
    CHECK_INT(ghost_stat(11, "/vm/snapshots/s", &t), -ENOENT); /* another process */
    char names[256] = "";
    CHECK_INT(ghost_list(10, "/vm/snapshots/s", collect, names), 0);
    CHECK_STR(names, "vda.qcow2,");
    CHECK_INT(ghost_remove(10, "/vm/snapshots/s"), -ENOTEMPTY);
    CHECK_INT(ghost_remove(10, "/vm/snapshots/s/vda.qcow2"), 0);
    CHECK_INT(ghost_remove(10, "/vm/snapshots/s"), 0);
    CHECK_INT(ghost_remove(10, "/vm/snapshots/s"), -ENOENT);
    ghost_walker_open(10, "vm");
    ghost_walker_open(10, "vm");
    CHECK(ghost_is_walker(10, "vm") && !ghost_is_walker(11, "vm"));
    CHECK(ghost_vm_walked("vm") && !ghost_vm_walked("other"));
    ghost_walker_close(10, "vm");
    CHECK(ghost_is_walker(10, "vm"));
    ghost_walker_close(10, "vm");
    CHECK(!ghost_is_walker(10, "vm") && !ghost_vm_walked("vm"));
}

int main(void)
{
    test_ghosts();
    int setup = sample_setup("test_delete",
                             "command -v qemu-img >/dev/null && command -v qemu-io >/dev/null && command -v virt-xml-validate >/dev/null");
    if (setup != 0)
        return setup;
    test_directions();
    test_hidden();
    test_partial_and_busy();
    test_vm_entries();
    test_crash();
    test_replay_data_steps();
    test_graph_cost();
    test_rename_hidden();
    test_rename_two_hidden();
    test_rename_crash();
    test_pins_and_recovery();
    test_hard_links();
    sample_teardown();
    CHECK_DONE();
}
