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
#include "fsutil.h"
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
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char msg[MSG_MAX];

/* root/rel, in one of four static buffers. */
static const char *at_root(const char *rel)
{
    static char bufs[4][2 * PATH_MAX];
    static int k;
    k = (k + 1) % 4;
    snprintf(bufs[k], sizeof(bufs[k]), "%s/%s", st.root, rel);
    return bufs[k];
}

/* qemu-io reads of web1's image `rel` (a path below web1/): cmds as
 * qio_read's (fsutil.h). */
static bool reads(const char *rel, const char *cmds)
{
    char path[2 * PATH_MAX];
    snprintf(path, sizeof(path), "%s/web1/%s", st.root, rel);
    return qio_reads(path, cmds);
}

/* The paths glob(3) finds for root/pattern, one of them at most in
 * first (when given): their number. */
static int globbed(const char *pattern, char *first, size_t firstsz)
{
    glob_t g;
    int n = glob(at_root(pattern), 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
    if (first && firstsz)
        snprintf(first, firstsz, "%s", n ? g.gl_pathv[0] : "");
    globfree(&g);
    return n;
}

/* test -e root/rel */
static bool exists(const char *rel)
{
    struct stat sb;
    return lstat(at_root(rel), &sb) == 0;
}

/* qemu-img ARGS... (no shell) in root/cwd (NULL: here), its stdout in out
 * when given: its exit status. */
static int qemu_img(const char *cwd, char *out, size_t outsz, char *const args[])
{
    char *argv[16] = { "qemu-img" };
    int n = 1;
    while (args[n - 1] && n < 15) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    return fs_spawn(argv, cwd ? at_root(cwd) : NULL, out, outsz, out != NULL);
}
#define QEMU_IMG(cwd, out, outsz, ...) qemu_img(cwd, out, outsz, (char *const[]){ __VA_ARGS__, NULL })

static ino_t ino(const char *rel)
{
    char path[PATH_MAX * 2];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/web1/%s", st.root, rel);
    return stat(path, &sb) == 0 ? sb.st_ino : 0;
}

/* The qcow2 files below a directory (nftw has no argument for its
 * callback), relative to it. */
static char (*qcow2_found)[PATH_MAX];
static size_t qcow2_n, qcow2_cap, qcow2_skip;

static int qcow2_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (!fs_file_of(path, flag, ".qcow2"))
        return 0;
    if (qcow2_n == qcow2_cap) {
        size_t cap = qcow2_cap ? 2 * qcow2_cap : 64;
        char(*more)[PATH_MAX] = realloc(qcow2_found, cap * sizeof(*more));
        if (!more)
            return -1;
        qcow2_found = more;
        qcow2_cap = cap;
    }
    snprintf(qcow2_found[qcow2_n++], PATH_MAX, "%s", path + qcow2_skip);
    return 0;
}

/* find root/rel -name '*.qcow2': their number (-1 on error), the paths
 * below root/rel in qcow2_found. */
static int find_qcow2(const char *rel)
{
    const char *top = at_root(rel);
    qcow2_n = 0;
    qcow2_skip = strlen(top) + 1;
    return nftw(top, qcow2_one, 16, FTW_PHYS) == 0 ? (int)qcow2_n : -1;
}

/* Every image file under web1 is needed (active, a visible snapshot's, or
 * in a chain of those), the journal is empty, every XML validates. */
static bool tidy(void)
{
    /* The images of every chain, listed once (one qemu-img per top); then
     * each file must be one of them, by its directory's name and its
     * own. Every XML validates by libvirt's schemas, one xmllint per kind
     * (what virt-xml-validate runs per file), contents validated before
     * not again. Without a shell: this runs at every crash point. */
    static char chains[65536], out[16384];
    size_t at = 0;
    glob_t g;
    chains[0] = '\n';
    at = 1;
    int r = glob(at_root("web1/disks/*.qcow2"), 0, NULL, &g);
    if (r == 0 || r == GLOB_NOMATCH)
        r = glob(at_root("web1/snapshots/[!.]*/*.qcow2"), GLOB_APPEND, NULL, &g);
    bool ok = r == 0 || r == GLOB_NOMATCH;
    /* A top already in a chain listed (a snapshot's image below the
     * active one) has that chain's rest as its own: the same files, read
     * by qemu-img a moment ago. Known by real path. */
    static char seen[65536];
    size_t seen_at = 1;
    seen[0] = '\n';
    seen[1] = '\0';
    for (size_t i = 0; ok && i < g.gl_pathc; i++) {
        char real[PATH_MAX + 2], image[PATH_MAX];
        if (realpath(g.gl_pathv[i], real + 1)) {
            real[0] = '\n';
            strcat(real, "\n");
            if (strstr(seen, real))
                continue;
        }
        ok = QEMU_IMG(NULL, out, sizeof(out), "info", "-U", "--backing-chain", g.gl_pathv[i]) == 0;
        if (!ok)
            fprintf(stderr, "tidy: qemu-img info --backing-chain %s failed\n", g.gl_pathv[i]);
        for (const char *l = out; ok && *l;) {
            size_t len = strcspn(l, "\n");
            if (strncmp(l, "image: ", 7) == 0 && at + len < sizeof(chains)) {
                at += (size_t)snprintf(chains + at, sizeof(chains) - at, "%.*s\n",
                                       (int)(len - 7), l + 7);
                snprintf(image, sizeof(image), "%.*s", (int)(len - 7), l + 7);
                if (realpath(image, real) && seen_at + strlen(real) + 2 < sizeof(seen))
                    seen_at += (size_t)snprintf(seen + seen_at, sizeof(seen) - seen_at, "%s\n",
                                                real);
            }
            l += len + (l[len] == '\n');
        }
    }
    globfree(&g);
    int files = ok ? find_qcow2("web1") : -1;
    ok = files >= 0;
    for (int i = 0; ok && i < files; i++) {
        /* "<dir>/<file>\n", its directory's name and its own, ends a line. */
        char *f = qcow2_found[i], *slash = strrchr(f, '/'), want[PATH_MAX + 2];
        const char *d = f;
        for (const char *p = f; slash && p < slash; p++)
            if (*p == '/')
                d = p + 1;
        snprintf(want, sizeof(want), "%s\n", slash ? d : f);
        bool needed = false;
        for (const char *h = chains; !needed && (h = strstr(h, want)); h++)
            needed = h == chains || h[-1] == '/' || h[-1] == '\n';
        if (!needed) {
            fprintf(stderr, "tidy: web1/%s is in no chain\n", f);
            ok = false;
        }
    }
    ok = ok && fs_empty_dir(at_root(".vmstorefs/journal"));
    char *domain[] = { (char *)at_root("web1/domain.xml") };
    ok = ok && xml_valid("domain", domain, 1);
    if (ok && glob(at_root("web1/snapshots/*/snapshot.xml"), 0, NULL, &g) == 0) {
        ok = xml_valid("domainsnapshot", g.gl_pathv, g.gl_pathc);
        globfree(&g);
    }
    return ok;
}

static const char *const WEB1_ACTIVE = "read -P 0x11 0 4M;read -P 0x22 4M 4M;"
                                       "read -P 0x33 8M 1M;";
static const char *const WEB1_CONFIGURED = "read -P 0x11 0 4M;read -P 0x22 4M 4M;"
                                           "read -P 0 8M 1M;";

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
    CHECK(reads("snapshots/installed/vda.qcow2", "read -P 0x11 0 4M;read -P 0 4M 4M;"));
    CHECK(tidy());
    CHECK_INT(fs_grep(at_root("web1/domain.xml"), "configured"), 0);
    CHECK_INT(fs_grep(at_root("web1/snapshots/installed/snapshot.xml"), "configured"), 0);
    store_close(&st);

    /* The active image holds more than configured: pull. */
    CHECK(open_store("pull"));
    CHECK(qio_do(at_root("web1/disks/vda.qcow2"), "write -q -P 0x33 8M 16M"));
    ino_t active = ino("disks/vda.qcow2");
    CHECK_INT(snapshot_delete(&c, "web1", "configured", NULL, msg, sizeof(msg)), 0);
    CHECK(ino("disks/vda.qcow2") == active);
    CHECK(reads("disks/vda.qcow2", "read -P 0x11 0 4M;read -P 0x22 4M 4M;"
                                   "read -P 0x33 8M 16M;"));
    CHECK(tidy());
    /* The base with one dependent: merged too, nothing left below. */
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), 0);
    CHECK_STR(current_of("web1"), "(none)");
    CHECK(reads("disks/vda.qcow2", "read -P 0x11 0 4M;read -P 0x22 4M 4M;"));
    char info[4096];
    CHECK_INT(QEMU_IMG(NULL, info, sizeof(info), "info", (char *)at_root("web1/disks/vda.qcow2")), 0);
    CHECK(!fs_match("^backing file", info));
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
    CHECK(qio_do(at_root("web1/disks/vda.qcow2"), "write -q -P 0x66 12M 1M"));
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), 0);
    CHECK(!store_snap_exists(&st, "web1", "installed"));
    CHECK(globbed("web1/snapshots/.hidden-*/vda.qcow2", NULL, 0) > 0);
    CHECK_STR(current_of("web1"), "(none)");
    CHECK(reads("disks/vda.qcow2", "read -P 0x11 0 4M;read -P 0 4M 4M;"
                                   "read -P 0x66 12M 1M;"));
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK(tidy());
    /* configured had parent installed: now none. */
    CHECK_INT(fs_grep(at_root("web1/snapshots/configured/snapshot.xml"), "<parent>"), 0);
    /* Reverting to configured discards the branch: the hidden image is
     * down to one dependent (configured's) and is merged into it. */
    CHECK_INT(snapshot_revert(&c, "web1", "configured", msg, sizeof(msg)), 0);
    CHECK_INT(globbed("web1/snapshots/.hidden-*", NULL, 0), 0);
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
    CHECK(qio_do(at_root("db1/disks/vda.qcow2"), "write -q -P 0x45 4M 1M"));
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
    CHECK(!exists("db1/snapshots/s1/vdb.qcow2") && exists("db1/snapshots/s1/vda.qcow2"));
    CHECK_INT(fs_grep(at_root("db1/snapshots/s1/snapshot.xml"), "name=.vdb. snapshot=.no."), 1);
    struct qio q;
    qio_init(&q);
    qio_read(&q, at_root("db1/disks/vdb.qcow2"), "read -P 0x55 0 1M");
    qio_read(&q, at_root("db1/snapshots/s1/vda.qcow2"), "read -P 0x44 0 2M;read -P 0 4M 1M");
    CHECK(qio_ok(&q));
    CHECK_INT(snapshot_delete(&c, "db1", "s1", "vdb", msg, sizeof(msg)), -ENOENT);
    /* The last image takes the snapshot with it. */
    CHECK_INT(snapshot_delete(&c, "db1", "s1", "vda", msg, sizeof(msg)), 0);
    CHECK(!store_snap_exists(&st, "db1", "s1"));
    CHECK(qio_reads(at_root("db1/disks/vda.qcow2"), "read -P 0x44 0 2M;read -P 0x45 4M 1M"));
    store_close(&st);
}

static void test_vm_entries(void)
{
    struct snap_ctx c = { .s = &st };
    CHECK(open_store("entries"));
    /* Detach: the disk leaves the definition; the frozen images stay. */
    CHECK_INT(snapshot_take(&c, "db1", "s1", msg, sizeof(msg)), 0);
    CHECK_INT(disk_detach(&c, "db1", "vdb", msg, sizeof(msg)), 0);
    CHECK_INT(fs_grep(at_root("db1/domain.xml"), "dev=.vdb."), 0);
    CHECK(!exists("db1/disks/vdb.qcow2"));
    CHECK(qio_reads(at_root("db1/snapshots/s1/vdb.qcow2"), "read -P 0x55 0 1M"));
    /* s1's <disks> named the active image as where vdb's changes went:
     * it is gone, and no snapshot.xml names it; each still validates. */
    glob_t g;
    CHECK_INT(glob(at_root("db1/snapshots/*/snapshot.xml"), 0, NULL, &g), 0);
    for (size_t i = 0; i < g.gl_pathc; i++)
        CHECK_INT(fs_grep(g.gl_pathv[i], "/db1/disks/vdb.qcow2"), 0);
    globfree(&g);
    char *s1xml[] = { (char *)at_root("db1/snapshots/s1/snapshot.xml") };
    CHECK(xml_valid("domainsnapshot", s1xml, 1));
    CHECK_INT(disk_detach(&c, "db1", "vdb", msg, sizeof(msg)), -ENOENT);
    /* A VM a qemu runs keeps its definition. */
    char active[PATH_MAX * 2];
    snprintf(active, sizeof(active), "%s/db1/disks/vda.qcow2", st.root);
    int running = imagelock_hold(&st, active);
    CHECK(running >= 0);
    char kept[PATH_MAX + 16];
    snprintf(kept, sizeof(kept), "%s.db1.xml", st.root);
    CHECK_INT(fs_copy_file(at_root("db1/domain.xml"), kept), 0);
    CHECK_INT(vm_undefine(&c, "db1", msg, sizeof(msg)), -EBUSY);
    CHECK(fs_same(at_root("db1/domain.xml"), kept));
    imagelock_drop(running);
    /* Undefine keeps everything, the definition aside (.domain.xml.undefined)
     * byte for byte, and define puts it back. */
    CHECK_INT(vm_undefine(&c, "db1", msg, sizeof(msg)), 0);
    CHECK(!exists("db1/domain.xml") && exists("db1/disks/vda.qcow2"));
    CHECK(fs_same(at_root("db1/.domain.xml.undefined"), kept));
    CHECK_INT(vm_undefine(&c, "db1", msg, sizeof(msg)), -ENOENT);
    CHECK_INT(vm_define_kept(&c, "db1", msg, sizeof(msg)), 0);
    CHECK(fs_same(at_root("db1/domain.xml"), kept) && !exists("db1/.domain.xml.undefined"));
    CHECK_INT(vm_define_kept(&c, "db1", msg, sizeof(msg)), -EEXIST);
    CHECK_INT(vm_undefine(&c, "db1", msg, sizeof(msg)), 0);
    /* A VM held by a qemu is not deleted; then it is, whole, no merge. */
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/web1/snapshots/installed/vda.qcow2", st.root);
    int held = imagelock_hold(&st, path);
    CHECK_INT(vm_delete(&c, "web1", msg, sizeof(msg)), -EBUSY);
    CHECK(exists("web1/domain.xml"));
    imagelock_drop(held);
    CHECK_INT(vm_delete(&c, "web1", msg, sizeof(msg)), 0);
    CHECK(!exists("web1") && fs_empty_dir(at_root(".vmstorefs/tmp")));
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

/* setup: a qemu-io write to web1's active image on the fresh store
 * before the delete. */
static void crash_case(const char *name, const char *setup, const char *snap,
                       const char *active_reads)
{
    int points = 0;
    struct snap_ctx c = { .s = &st };
    for (int n = test_crash_first(); n < 60; n = test_crash_next(n, 5)) {
        CHECK(open_store(name));
        if (setup && !qio_do(at_root("web1/disks/vda.qcow2"), setup)) {
            CHECK(!"setup failed");
            break;
        }
        if (strcmp(snap, "installed") == 0)
            CHECK_INT(snapshot_revert(&c, "web1", "installed", msg, sizeof(msg)), 0);
        if (!crash_and_recover(name, n, snap, NULL))
            break;
        points = n; /* every point up to n, run or (stride) passed over */
        bool gone = !store_snap_exists(&st, "web1", snap);
        /* The data is the same either way; the structure is whole. One
         * qemu-io reads the active image and, when it is still there or
         * was not the one deleted, configured's. */
        struct qio q;
        qio_init(&q);
        qio_read(&q, at_root("web1/disks/vda.qcow2"), active_reads);
        if (strcmp(snap, "installed") == 0 || !gone)
            qio_read(&q, at_root("web1/snapshots/configured/vda.qcow2"), WEB1_CONFIGURED);
        CHECK(qio_ok(&q));
        CHECK(tidy());
        CHECK(fs_empty_dir(at_root(".vmstorefs/tmp")));
        store_close(&st);
    }
    store_close(&st);
    CHECK(points >= 5);
    fprintf(stderr, "delete (%s) has at least %d crash points\n", name, points);
}

/* The active image written over 16M: deleting configured pulls. */
static const char *const PULL_SETUP = "write -q -P 0x33 8M 16M";
static const char *const PULLED_ACTIVE = "read -P 0x11 0 4M;read -P 0x22 4M 4M;"
                                         "read -P 0x33 8M 16M;";

static void test_crash(void)
{
    crash_case("crash-commit", NULL, "configured", WEB1_ACTIVE);
    crash_case("crash-pull", PULL_SETUP, "configured", PULLED_ACTIVE);
    crash_case("crash-hidden", NULL, "installed", "read -P 0x11 0 4M;read -P 0 4M 4M;");
}

/* Does a journal record say "key": value (grep -E '"key": ?value')? */
static bool journal_says(const char *key, const char *value)
{
    char spaced[128], tight[128];
    glob_t g;
    bool hit = false;
    snprintf(spaced, sizeof(spaced), "\"%s\": %s", key, value);
    snprintf(tight, sizeof(tight), "\"%s\":%s", key, value);
    if (glob(at_root(".vmstorefs/journal/*.json"), 0, NULL, &g) != 0)
        return false;
    for (size_t i = 0; !hit && i < g.gl_pathc; i++)
        hit = fs_grep(g.gl_pathv[i], spaced) == 1 || fs_grep(g.gl_pathv[i], tight) == 1;
    globfree(&g);
    return hit;
}

/* A fresh store `name` (setup, a write as crash_case's, run on it) whose delete of snap crashed
 * right at its commit: the record committed, no step applied. Crashes
 * at points *point (1 when 0), *point + 1, ... until one leaves the
 * record committed, and keeps that point in *point for the next call of
 * the same delete; false when none does. */
static bool crash_at_commit(const char *name, const char *setup, const char *snap, int *point)
{
    for (int n = *point ? *point : 1; n < 20; n++) {
        if (!open_store(name) || (setup && !qio_do(at_root("web1/disks/vda.qcow2"), setup)) ||
            crash_op_at(n, snap, NULL) != 99)
            break;
        if (journal_says("committed", "true")) {
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
    CHECK(journal_says("done", "0"));
    CHECK_INT(QEMU_IMG("web1/disks", NULL, 0, "rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b",
                       "../snapshots/installed/vda.qcow2", "vda.qcow2"),
              0);
    if (leaks) {
        /* An internal snapshot, then the header's count of them (4 bytes
         * at 60) zeroed: its clusters leak; qemu-img check says 3. */
        CHECK_INT(QEMU_IMG("web1/disks", NULL, 0, "snapshot", "-c", "leak", "vda.qcow2"), 0);
        int fd = open(at_root("web1/disks/vda.qcow2"), O_WRONLY | O_CLOEXEC);
        CHECK(fd >= 0 && pwrite(fd, "\0\0\0\0", 4, 60) == 4);
        if (fd >= 0)
            close(fd);
        char out[4096];
        CHECK_INT(QEMU_IMG("web1/disks", out, sizeof(out), "check", "-q", "vda.qcow2"), 3);
    }
    /* configured's data (0x22) is in no image the active one reads now. */
    CHECK(!reads("disks/vda.qcow2", PULLED_ACTIVE));
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK_INT(vm_recover(&st, NULL, msg, sizeof(msg)), 1);
    CHECK(!store_snap_exists(&st, "web1", "configured"));
    CHECK(reads("disks/vda.qcow2", PULLED_ACTIVE));
    CHECK_STR(current_of("web1"), "installed");
    CHECK(tidy());
    CHECK_INT(QEMU_IMG(NULL, NULL, 0, "check", "-q", (char *)at_root("web1/disks/vda.qcow2")), 0);
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
    CHECK_INT(QEMU_IMG("web1/disks", NULL, 0, "rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b",
                       "../snapshots/installed/vda.qcow2", "vda.qcow2"),
              0);
    CHECK(vm_recover(&st, NULL, msg, sizeof(msg)) < 0);
    CHECK_INT(journal_pending(&st), 1);
    CHECK(store_snap_exists(&st, "web1", "configured"));
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK(reads("disks/vda.qcow2", "read -P 0x11 0 4M;read -P 0 4M 4M;"
                                   "read -P 0x33 8M 1M;"));
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
    CHECK(mkdir(at_root("comb"), 0755) == 0 && mkdir(at_root("comb/disks"), 0755) == 0 &&
          mkdir(at_root("comb/snapshots"), 0755) == 0);
    for (int i = 1; i <= 11; i++) {
        /* c1..c6 a chain, t1..t5 (7..11) on c6. */
        char sub[32], image[48], backing[32];
        snprintf(sub, sizeof(sub), "comb/snapshots/%c%d", i <= 6 ? 'c' : 't', i <= 6 ? i : i - 6);
        snprintf(image, sizeof(image), "%s/vda.qcow2", strrchr(sub, '/') + 1);
        snprintf(backing, sizeof(backing), "../c%d/vda.qcow2", i <= 6 ? i - 1 : 6);
        CHECK(mkdir(at_root(sub), 0755) == 0);
        if (i == 1)
            CHECK_INT(QEMU_IMG("comb/snapshots", NULL, 0, "create", "-q", "-f", "qcow2", image, "16M"), 0);
        else
            CHECK_INT(QEMU_IMG("comb/snapshots", NULL, 0, "create", "-q", "-f", "qcow2", "-b", backing,
                               "-F", "qcow2", image),
                      0);
    }
    CHECK_INT(QEMU_IMG("comb/disks", NULL, 0, "create", "-q", "-f", "qcow2", "-b",
                       "../snapshots/c6/vda.qcow2", "-F", "qcow2", "vda.qcow2"),
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
    char cmd[64];
    int k = hm.writes++;
    snprintf(cmd, sizeof(cmd), "write -q -P %d %dM 64k", 0xa0 + k, 16 + k);
    hm.active |= 1u << k;
    int r = qio_do(at_root("web1/disks/vda.qcow2"), cmd)
                ? snapshot_take(&c, "web1", snap, msg, sizeof(msg))
                : -EIO;
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
static char xml_name_pat[2][NAME_MAX_LEN + 32];

static int xml_names_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (!fs_file_of(path, flag, ".xml"))
        return 0;
    return fs_grep(path, xml_name_pat[0]) == 1 || fs_grep(path, xml_name_pat[1]) == 1;
}

static bool xml_names(const char *snap)
{
    /* grep -rqs --include='*.xml' -e 'snapshots/SNAP/' -e '<name>SNAP</name>' web1 */
    snprintf(xml_name_pat[0], sizeof(xml_name_pat[0]), "snapshots/%s/", snap);
    snprintf(xml_name_pat[1], sizeof(xml_name_pat[1]), "<name>%s</name>", snap);
    return nftw(at_root("web1"), xml_names_one, 16, FTW_PHYS) == 1;
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

/* Every modelled image (each snapshot's and the active one) reads as the
 * model says, all in one qemu-io (each opened with its whole chain, each
 * write of the model read as its mask says, over the sample's data): an
 * image whose chain does not open, or data not where the model has it,
 * fails it (which one said on stderr). */
static bool hm_reads(void)
{
    struct qio q;
    qio_init(&q);
    for (size_t i = 0; i <= hm.n; i++) {
        char rel[NAME_MAX_LEN + 32], cmds[HM_MAX * 32 + 128];
        if (i < hm.n)
            snprintf(rel, sizeof(rel), "web1/snapshots/%s/vda.qcow2", hm.name[i]);
        else
            snprintf(rel, sizeof(rel), "web1/disks/vda.qcow2");
        unsigned mask = i < hm.n ? hm.mask[i] : hm.active;
        size_t at = (size_t)snprintf(cmds, sizeof(cmds), "%s", WEB1_ACTIVE);
        for (int k = 0; k < hm.writes && at < sizeof(cmds); k++)
            at += (size_t)snprintf(cmds + at, sizeof(cmds) - at, "read -P %d %dM 64k;",
                                   mask & (1u << k) ? 0xa0 + k : 0, 16 + k);
        qio_read(&q, at_root(rel), cmds);
    }
    return qio_ok(&q);
}

/* hm_reads, and every image file is needed, every XML valid (tidy). */
static bool hm_ok(void)
{
    return hm_reads() && tidy();
}

static int hidden_dirs(void)
{
    return globbed("web1/snapshots/.hidden-*", NULL, 0);
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
    int images = find_qcow2("web1");
    unsigned long hits, misses;
    chain_cache_clear();
    CHECK_INT(hm_rename("s1", "t1"), 0);
    chain_cache_stats(&hits, &misses);
    /* The active chain is read twice (the definition's disks, the
     * graph), the image rewritten once more, the others once. */
    CHECK(hits + misses > 0 && hits + misses <= 3 * (unsigned long)images);
    char hidden[2 * PATH_MAX], info[4096] = "";
    CHECK_INT(globbed("web1/snapshots/.hidden-*/vda.qcow2", hidden, sizeof(hidden)), 1);
    CHECK_INT(QEMU_IMG(NULL, info, sizeof(info), "info", "-U", hidden), 0);
    CHECK(fs_match("^backing file: \\.\\./t1/vda\\.qcow2 ", info));
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
static char *tree_names[1024];
static size_t tree_n;

static int tree_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    if (ftw->level == 0) /* find -mindepth 1 */
        return 0;
    if (tree_n == sizeof(tree_names) / sizeof(tree_names[0]))
        return -1;
    /* Relative to the root, t1's as s1's (sed 's|^web1/snapshots/t1|...s1|'). */
    const char *rel = path + strlen(st.root) + 1, *t1 = "web1/snapshots/t1";
    bool renamed = strncmp(rel, t1, strlen(t1)) == 0;
    if (asprintf(&tree_names[tree_n], "%s%s", renamed ? "web1/snapshots/s1" : rel,
                 renamed ? rel + strlen(t1) : "") < 0)
        return -1;
    tree_n++;
    return 0;
}

static bool tree_of(char *out, size_t outsz)
{
    /* find web1 .vmstorefs/journal .vmstorefs/tmp -mindepth 1 | sed | sort */
    static const char *const tops[] = { "web1", ".vmstorefs/journal", ".vmstorefs/tmp" };
    bool ok = true;
    tree_n = 0;
    for (size_t i = 0; ok && i < 3; i++)
        ok = nftw(at_root(tops[i]), tree_one, 16, FTW_PHYS) == 0;
    return fs_join_sorted(tree_names, tree_n, out, outsz) >= 0 && ok;
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
    char files[8192], got[8192];
    CHECK(hm_hidden_fixture("rename-crash"));
    CHECK(hm_ok());
    CHECK(tree_of(files, sizeof(files)));
    store_close(&st);
    char pristine[PATH_MAX], fixture[PATH_MAX];
    snprintf(pristine, sizeof(pristine), "%s/.pristine-rename-crash", dir);
    snprintf(fixture, sizeof(fixture), "%s/rename-crash", dir);
    CHECK(fs_rm_rf(pristine) == 0 && fs_copy_tree(fixture, pristine) == 0);
    struct hmodel before = hm;
    int points = 0;
    for (int n = test_crash_first(); n < 60; n = test_crash_next(n, 8)) {
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
    fprintf(stderr, "rename with a hidden child has at least %d crash points\n", points);
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
    CHECK(mkdir(at_root("other"), 0755) == 0 && mkdir(at_root("other/disks"), 0755) == 0 &&
          mkdir(at_root("other/snapshots"), 0755) == 0);
    CHECK_INT(QEMU_IMG("other/disks", NULL, 0, "create", "-q", "-f", "qcow2", "-b",
                       "../../web1/snapshots/installed/vda.qcow2", "-F", "qcow2", "vda.qcow2"),
              0);
    CHECK_INT(snapshot_delete(&c, "web1", "installed", NULL, msg, sizeof(msg)), 0);
    CHECK(!store_snap_exists(&st, "web1", "installed"));
    CHECK(reads("snapshots/configured/vda.qcow2", WEB1_CONFIGURED));
    CHECK_INT(journal_pending(&st), 0);
    CHECK(tidy());
    store_close(&st);
    CHECK(open_store("pins-b"));
    CHECK_INT(mkdir(at_root("web1/snapshots/.hidden-backup"), 0755), 0);
    CHECK_INT(fs_copy_file(at_root("web1/snapshots/installed/vda.qcow2"),
                           at_root("web1/snapshots/.hidden-backup/vda.qcow2")),
              0);
    CHECK_INT(delplan_collect_store(&st), 0);
    struct stat sb;
    CHECK(stat(at_root("web1/snapshots/.hidden-backup/vda.qcow2"), &sb) == 0 && S_ISREG(sb.st_mode));
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
 * system), and its bytes are compared before and after (with a copy of
 * them, name.orig). */
static bool link_image(const char *rel, const char *name)
{
    char path[2 * PATH_MAX], orig[2 * PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(orig, sizeof(orig), "%s/%s.orig", dir, name);
    char image[PATH_MAX];
    snprintf(image, sizeof(image), "web1/%s", rel);
    if (link(at_root(image), path) < 0) {
        fprintf(stderr, "ln web1/%s %s: %s\n", rel, path, strerror(errno));
        return false;
    }
    return fs_copy_file(path, orig) == 0;
}

static bool link_unchanged(const char *name)
{
    char path[2 * PATH_MAX], orig[2 * PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(orig, sizeof(orig), "%s/%s.orig", dir, name);
    bool same = fs_same(path, orig);
    if (!same)
        fprintf(stderr, "%s changed\n", path);
    return same;
}

static void unlink_image(const char *name)
{
    char path[2 * PATH_MAX], orig[2 * PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(orig, sizeof(orig), "%s/%s.orig", dir, name);
    unlink(path);
    unlink(orig);
}

/* find web1/snapshots -inum INO -path '*\/.hidden-*' | grep -q . */
static ino_t hidden_ino;

static int hidden_ino_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    return sb->st_ino == hidden_ino && strstr(path, "/.hidden-") != NULL;
}

static bool hidden_has_inode(ino_t ino)
{
    hidden_ino = ino;
    return nftw(at_root("web1/snapshots"), hidden_ino_one, 16, FTW_PHYS) == 1;
}

static void test_hard_links(void)
{
    struct snap_ctx c = { .s = &st };
    /* configured's image has one dependent (the active image, smaller:
     * commit) and a second name, which counts as another dependent: the
     * image is hidden, not committed into. */
    CHECK(open_store("links-f"));
    ino_t frozen = ino("snapshots/configured/vda.qcow2");
    CHECK(link_image("snapshots/configured/vda.qcow2", "configured.link"));
    CHECK_INT(snapshot_delete(&c, "web1", "configured", NULL, msg, sizeof(msg)), 0);
    CHECK(!store_snap_exists(&st, "web1", "configured"));
    CHECK(link_unchanged("configured.link"));
    CHECK(hidden_has_inode(frozen));
    CHECK(reads("disks/vda.qcow2", WEB1_ACTIVE));
    CHECK(tidy());
    /* The other name gone, the garbage pass merges it. */
    unlink_image("configured.link");
    CHECK_INT(delplan_collect_store(&st), 1);
    CHECK_INT(globbed("web1/snapshots/.hidden-*", NULL, 0), 0);
    CHECK(reads("disks/vda.qcow2", WEB1_ACTIVE));
    CHECK(tidy());
    store_close(&st);

    /* The active image holds more than configured (pull would write into
     * it) and has a second name: commit instead; configured's file takes
     * the active path, the other name keeps the old active file as it was. */
    CHECK(open_store("links-c"));
    CHECK(qio_do(at_root("web1/disks/vda.qcow2"), "write -q -P 0x33 8M 16M"));
    frozen = ino("snapshots/configured/vda.qcow2");
    CHECK(link_image("disks/vda.qcow2", "active.link"));
    CHECK_INT(snapshot_delete(&c, "web1", "configured", NULL, msg, sizeof(msg)), 0);
    CHECK(ino("disks/vda.qcow2") == frozen);
    CHECK(link_unchanged("active.link"));
    CHECK(reads("disks/vda.qcow2", "read -P 0x11 0 4M;read -P 0x22 4M 4M;"
                                   "read -P 0x33 8M 16M;"));
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
