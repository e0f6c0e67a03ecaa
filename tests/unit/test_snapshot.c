/* Unit tests for the snapshot core without a mount: take, rename and
 * revert on a sample store (scripts/make-sample-store), their refusals
 * (EINVAL, EEXIST, ENOENT, EBUSY from a qemu-style image lock and from a
 * handle open for writing), the VM lock (try, cancel), and a real crash:
 * a child dies at a VMSTOREFS_CRASH_AT point and recovery finishes or
 * undoes what it left. Skipped (77) without qemu-img. */
#include "config.h"

#include "check.h"
#include "samplestore.h"
#include "testutil.h"
#include "journal/journal.h"
#include "util/log.h"
#include "util/names.h"
#include "qemu/qimg.h"
#include "ops/snapshot.h"
#include "store/storeio.h"
#include "store/vmlock.h"
#include "store/vmstate.h"
#include "vm/current.h"
#include "vm/merge.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>


/* Guest data of web1's active image, through its whole chain. */
static bool reads(const char *cmds)
{
    char path[2 * PATH_MAX];
    snprintf(path, sizeof(path), "%s/web1/disks/vda.qcow2", st.root);
    return qio_reads(path, cmds);
}

static bool snap_exists(const char *vm, const char *snap)
{
    return store_snap_exists(&st, vm, snap);
}

static void test_operations(void)
{
    struct snap_ctx c = { .s = &st };
    char msg[MSG_MAX];
    CHECK(open_store("ops"));
    CHECK_INT(snapshot_take(&c, "web1", "s1", msg, sizeof(msg)), 0);
    CHECK_STR(current_of("web1"), "s1");
    CHECK(reads("read -P 0x11 0 4M;read -P 0x22 4M 4M;read -P 0x33 8M 1M"));
    CHECK_INT(snapshot_take(&c, "web1", "s1", msg, sizeof(msg)), -EEXIST);
    CHECK_INT(snapshot_take(&c, "web1", ".hidden", msg, sizeof(msg)), -EINVAL);
    CHECK_INT(snapshot_take(&c, "web1", "a/b", msg, sizeof(msg)), -EINVAL);
    CHECK_INT(snapshot_take(&c, "nosuchvm", "s", msg, sizeof(msg)), -ENOENT);

    CHECK_INT(snapshot_rename(&c, "web1", "s1", "s2", msg, sizeof(msg)), 0);
    CHECK_STR(current_of("web1"), "s2");
    CHECK(!snap_exists("web1", "s1") && snap_exists("web1", "s2"));
    CHECK_INT(snapshot_rename(&c, "web1", "s2", "installed", msg, sizeof(msg)), -EEXIST);
    CHECK_INT(snapshot_rename(&c, "web1", "s2", "-x", msg, sizeof(msg)), -EINVAL);
    CHECK_INT(snapshot_rename(&c, "web1", "nope", "x", msg, sizeof(msg)), -ENOENT);
    CHECK(reads("read -P 0x33 8M 1M"));

    CHECK_INT(snapshot_revert(&c, "web1", "installed", msg, sizeof(msg)), 0);
    CHECK_STR(current_of("web1"), "installed");
    CHECK(reads("read -P 0x11 0 4M;read -P 0 4M 4M;read -P 0 8M 1M"));
    CHECK_INT(snapshot_revert(&c, "web1", "nope", msg, sizeof(msg)), -ENOENT);

    /* A disk added after a snapshot stays attached, as it is, when the VM
     * reverts to that snapshot. */
    char vdz[2 * PATH_MAX], domain[2 * PATH_MAX], disk[4 * PATH_MAX];
    snprintf(vdz, sizeof(vdz), "%s/web1/disks/vdz.qcow2", st.root);
    snprintf(domain, sizeof(domain), "%s/web1/domain.xml", st.root);
    char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2", vdz, "16M", NULL };
    CHECK_INT(fs_spawn(create, NULL, NULL, 0, false), 0);
    snprintf(disk, sizeof(disk),
             "<disk type=\"file\" device=\"disk\"><driver name=\"qemu\" type=\"qcow2\"/><source "
             "file=\"%s\"/><target dev=\"vdz\" bus=\"virtio\"/></disk></devices>",
             vdz);
    CHECK(fs_subst(domain, "</devices>", disk) > 0);
    CHECK_INT(snapshot_revert(&c, "web1", "installed", msg, sizeof(msg)), 0);
    char source[3 * PATH_MAX];
    struct stat sb;
    snprintf(source, sizeof(source), "source file=\"%s\"", vdz);
    CHECK_INT(fs_grep(domain, source), 1);
    CHECK_INT(fs_grep(domain, "dev=\"vdz\""), 1);
    CHECK(stat(vdz, &sb) == 0 && S_ISREG(sb.st_mode));

    /* db1 has two disks and no snapshots: both are taken as one unit. */
    CHECK_INT(snapshot_take(&c, "db1", "first", msg, sizeof(msg)), 0);
    char path[2 * PATH_MAX];
    snprintf(path, sizeof(path), "%s/db1/snapshots/first/vdb.qcow2", st.root);
    CHECK(storeio_exists(&st, path));
    CHECK_INT(journal_pending(&st), 0);

    /* Two disks with one target dev: a definition error, said as such. */
    /* sed -E "s/dev=(['\"])vdb/dev=\1vda/" (the first on a line). */
    snprintf(domain, sizeof(domain), "%s/db1/domain.xml", st.root);
    CHECK(fs_subst(domain, "dev='vdb", "dev='vda") + fs_subst(domain, "dev=\"vdb", "dev=\"vda") > 0);
    CHECK_INT(snapshot_take(&c, "db1", "dup", msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "two disks with target dev vda") != NULL);
    store_close(&st);
}

/* The locks a running VM's qemu holds on its disk (block/file-posix.c):
 * read locks on its permissions' bytes, consistent read (100) and write
 * (101), and on the byte of the one it does not share, write (201). */
static int hold_as_running_vm(const char *path)
{
    static const struct { off_t start, len; } bytes[] = { { 100, 2 }, { 201, 1 } };
    int fd = open(path, O_RDONLY);
    for (size_t i = 0; fd >= 0 && i < sizeof(bytes) / sizeof(bytes[0]); i++) {
        struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = bytes[i].start,
                            .l_len = bytes[i].len };
        if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void test_busy(void)
{
    struct snap_ctx c = { .s = &st };
    char msg[MSG_MAX], path[2 * PATH_MAX];
    CHECK(open_store("busy"));
    /* A qemu running the VM holds the image. */
    snprintf(path, sizeof(path), "%s/web1/disks/vda.qcow2", st.root);
    int fd = hold_as_running_vm(path);
    CHECK(fd >= 0);
    CHECK_INT(snapshot_take(&c, "web1", "s1", msg, sizeof(msg)), -EBUSY);
    CHECK(strstr(msg, "vda.qcow2") != NULL);
    CHECK_INT(snapshot_revert(&c, "web1", "installed", msg, sizeof(msg)), -EBUSY);
    CHECK_INT(snapshot_rename(&c, "web1", "configured", "c2", msg, sizeof(msg)), -EBUSY);
    CHECK(!snap_exists("web1", "s1") && snap_exists("web1", "configured"));
    close(fd);
    /* A qemu holding only the image a rename moves (with its directory). */
    snprintf(path, sizeof(path), "%s/web1/snapshots/configured/vda.qcow2", st.root);
    fd = hold_as_running_vm(path);
    CHECK(fd >= 0);
    CHECK_INT(snapshot_rename(&c, "web1", "configured", "c2", msg, sizeof(msg)), -EBUSY);
    CHECK(snap_exists("web1", "configured") && !snap_exists("web1", "c2"));
    close(fd);
    /* A writer and an operation exclude each other: while one runs, a
     * new writer is refused. */
    vmstate_op_begin("web1");
    CHECK_INT(vmstate_writer_add("web1", "vda"), -EBUSY);
    CHECK_INT(vmstate_writer_add("db1", "vda"), 0);
    vmstate_writer_remove("db1", "vda");
    vmstate_op_end("web1");
    /* A handle open for writing through the mount. */
    CHECK_INT(vmstate_writer_add("web1", "vda"), 0);
    CHECK_INT(snapshot_take(&c, "web1", "s1", msg, sizeof(msg)), -EBUSY);
    vmstate_writer_remove("web1", "vda");
    CHECK_INT(snapshot_take(&c, "web1", "s1", msg, sizeof(msg)), 0);
    CHECK_INT(journal_pending(&st), 0);
    store_close(&st);
}

/* A byte right after the active image's backing name: the name cannot be
 * rewritten in place, qemu-img must do it, and it cannot while the
 * operation holds the image's locks. The rename must still finish. */
static void test_crowded_header(void)
{
    struct snap_ctx c = { .s = &st };
    char msg[MSG_MAX], path[2 * PATH_MAX];
    CHECK(open_store("crowded"));
    snprintf(path, sizeof(path), "%s/web1/disks/vda.qcow2", st.root);
    int fd = open(path, O_RDWR);
    unsigned char h[20];
    CHECK(fd >= 0 && pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h));
    unsigned long long off = 0;
    for (int i = 8; i < 16; i++)
        off = off << 8 | h[i];
    unsigned len = (unsigned)h[16] << 24 | (unsigned)h[17] << 16 | (unsigned)h[18] << 8 | h[19];
    CHECK(pwrite(fd, "X", 1, (off_t)(off + len)) == 1);
    close(fd);
    CHECK_INT(snapshot_rename(&c, "web1", "configured", "configured-renamed", msg, sizeof(msg)),
              0);
    CHECK_INT(journal_pending(&st), 0);
    CHECK_STR(current_of("web1"), "configured-renamed");
    CHECK(reads("read -P 0x22 4M 4M;read -P 0x33 8M 1M"));
    store_close(&st);
}

static bool always(void *arg)
{
    (void)arg;
    return true;
}

static void test_locks(void)
{
    char msg[MSG_MAX];
    CHECK(open_store("locks"));
    struct vmlock a, b, w;
    CHECK_INT(vmlock_acquire(&st, "web1", 0, NULL, NULL, &a, msg, sizeof(msg)), 0);
    /* A second holder (another thread, another daemon) waits, a bounded
     * time, and gives up on an interrupt. */
    CHECK_INT(vmlock_acquire(&st, "web1", 0, NULL, NULL, &b, msg, sizeof(msg)), -EBUSY);
    CHECK_INT(vmlock_acquire(&st, "web1", 200, NULL, NULL, &b, msg, sizeof(msg)), -EBUSY);
    CHECK_INT(vmlock_acquire(&st, "web1", 60000, always, NULL, &b, msg, sizeof(msg)), -EINTR);
    /* ...but other VMs go on, and the whole store is taken only when free. */
    CHECK_INT(vmlock_acquire(&st, "db1", 0, NULL, NULL, &b, msg, sizeof(msg)), 0);
    CHECK_INT(vmlock_acquire(&st, NULL, 0, NULL, NULL, &w, msg, sizeof(msg)), -EBUSY);
    vmlock_release(&a);
    vmlock_release(&b);
    CHECK_INT(vmlock_acquire(&st, NULL, 0, NULL, NULL, &w, msg, sizeof(msg)), 0);
    vmlock_release(&w);
    /* A holder that lets go within the bound: the waiter gets the lock. */
    pid_t pid = fork();
    if (pid == 0) {
        struct vmlock h;
        char m2[MSG_MAX];
        if (vmlock_acquire(&st, "web1", 0, NULL, NULL, &h, m2, sizeof(m2)) < 0)
            _exit(1);
        usleep(300000);
        _exit(0);
    }
    usleep(100000);
    CHECK_INT(vmlock_acquire(&st, "web1", VMLOCK_OP_WAIT_MS, NULL, NULL, &a, msg, sizeof(msg)), 0);
    vmlock_release(&a);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_INT(vmlock_acquire(&st, "../x", 0, NULL, NULL, &w, msg, sizeof(msg)), -EINVAL);
    store_close(&st);
}

/* A child takes a snapshot and dies at point n; returns its exit status. */
static int crash_take_at(int n, const char *snap)
{
    pid_t pid = fork();
    if (pid == 0) {
        char at[32];
        snprintf(at, sizeof(at), "take:%d", n);
        setenv("VMSTOREFS_CRASH_AT", at, 1);
        struct snap_ctx c = { .s = &st };
        char msg[MSG_MAX];
        _exit(snapshot_take(&c, "db1", snap, msg, sizeof(msg)) == 0 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_crash(void)
{
    char msg[MSG_MAX], tmp[4 * PATH_MAX];
    int points = 0;
    for (int n = test_crash_first(); n < 40; n = test_crash_next(n, 10)) {
        CHECK(open_store("crash"));
        int status = crash_take_at(n, "s");
        if (status == 0) {
            store_close(&st);
            snprintf(tmp, sizeof(tmp), "%s/crash", dir);
            fs_rm_rf(tmp);
            break;
        }
        points = n; /* every point up to n, run or (stride) passed over */
        CHECK_INT(status, 99);
        /* The last point comes after the record is gone. */
        int pending = journal_pending(&st);
        CHECK(pending == 1 || pending == 0);
        CHECK_INT(vm_recover(&st, NULL, msg, sizeof(msg)), pending);
        CHECK_INT(journal_pending(&st), 0);
        /* Before the commit: as before; after it: as after. Never half. */
        bool taken = store_snap_exists(&st, "db1", "s");
        char cur[NAME_MAX_LEN + 1] = "";
        current_snapshot(&st, "db1", cur, sizeof(cur));
        CHECK_STR(cur, taken ? "s" : "");
        struct qio q;
        qio_init(&q);
        snprintf(tmp, sizeof(tmp), "%s/db1/disks/vda.qcow2", st.root);
        qio_read(&q, tmp, "read -P 0x44 0 2M");
        snprintf(tmp, sizeof(tmp), "%s/db1/disks/vdb.qcow2", st.root);
        qio_read(&q, tmp, "read -P 0x55 0 1M");
        CHECK(qio_ok(&q));
        snprintf(tmp, sizeof(tmp), "%s/.vmstorefs/tmp", st.root);
        CHECK(fs_empty_dir(tmp));
        store_close(&st);
        snprintf(tmp, sizeof(tmp), "%s/crash", dir);
        fs_rm_rf(tmp);
    }
    /* A name with two dots in it (valid: not a ".." component) must not
     * make its record unreadable. */
    CHECK(open_store("dots"));
    CHECK_INT(crash_take_at(8, "v1..2"), 99);
    CHECK_INT(vm_recover(&st, NULL, msg, sizeof(msg)), 1);
    CHECK(store_snap_exists(&st, "db1", "v1..2"));
    CHECK_INT(journal_pending(&st), 0);
    store_close(&st);
    /* record, snapshot.xml, two overlays, domain.xml, commit, steps, done */
    CHECK(points >= 10);
    fprintf(stderr, "take of a 2-disk VM has at least %d crash points\n", points);
}

int main(void)
{
    int setup = sample_setup("test_snapshot",
                             "command -v qemu-img >/dev/null && command -v qemu-io >/dev/null");
    if (setup != 0)
        return setup;
    test_operations();
    test_busy();
    test_locks();
    test_crowded_header();
    test_crash();
    sample_teardown();
    CHECK_DONE();
}
