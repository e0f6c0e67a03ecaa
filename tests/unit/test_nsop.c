/* Unit tests for nsop, what a namespace request on the mount means,
 * without a mount: link targets, mkdir of a snapshot, the three steps of
 * GNU `ln -sfn` (symlink -> EEXIST, symlink aside, rename over current),
 * `rm current; ln -s`, renames within and across VMs, and the mkdir that
 * GNU mv tries after EXDEV. Skipped (77) without qemu-img. */
#include "config.h"

#include "check.h"
#include "view/nsop.h"
#include "qemu/qimg.h"
#include "testutil.h"
#include "store/vmstate.h"
#include "vm/current.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

static char dir[TEST_TMP_MAX];
static struct store st;

static int run(const char *cmd)
{
    int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static void test_link_targets(void)
{
    char snap[NAME_MAX_LEN + 1];
    CHECK(nsop_parse_link_target("snapshots/s1", snap, sizeof(snap)));
    CHECK_STR(snap, "s1");
    CHECK(nsop_parse_link_target("./snapshots/s1/", snap, sizeof(snap)));
    CHECK_STR(snap, "s1");
    CHECK(!nsop_parse_link_target("snapshots/", snap, sizeof(snap)));
    CHECK(!nsop_parse_link_target("snapshots/s1/vda.qcow2", snap, sizeof(snap)));
    CHECK(!nsop_parse_link_target("/etc", snap, sizeof(snap)));
    CHECK(!nsop_parse_link_target("../db1/snapshots/s1", snap, sizeof(snap)));
    CHECK(!nsop_parse_link_target("snapshots/.hidden", snap, sizeof(snap)));
    CHECK(!nsop_parse_link_target("snapshots/..", snap, sizeof(snap)));
}

static const char *current(const char *vm)
{
    static char snap[NAME_MAX_LEN + 1];
    if (vmstate_current_hidden(vm) || current_snapshot(&st, vm, snap, sizeof(snap)) < 0)
        strcpy(snap, "(none)");
    return snap;
}

static void test_requests(void)
{
    struct snap_ctx c = { .s = &st, .pid = 4242 };
    struct nsop_result res;
    char target[PATH_MAX];

    /* mkdir: snapshots/<name> is a take, clones/<name> and
     * snapshots/<s>/clones/<name> a clone; the names are checked. */
    CHECK_INT(nsop_mkdir(&c, "/web1/snapshots/s1", 0755, &res), 0);
    CHECK_STR(res.vm, "web1");
    CHECK_STR(current("web1"), "s1");
    CHECK_INT(nsop_mkdir(&c, "/web1/snapshots/-bad", 0755, &res), -EINVAL);
    CHECK(strstr(res.msg, "not a valid snapshot name") != NULL);
    CHECK_INT(nsop_mkdir(&c, "/web1/clones/-x", 0755, &res), -EINVAL);
    CHECK(strstr(res.msg, "not a valid VM name") != NULL);
    CHECK_INT(nsop_mkdir(&c, "/web1/clones/db1", 0755, &res), -EEXIST);
    CHECK_INT(nsop_mkdir(&c, "/web1/snapshots/nope/clones/x", 0755, &res), -ENOENT);
    CHECK_INT(nsop_mkdir(&c, "/web1/disks/x", 0755, &res), NSOP_NOT_MINE);
    CHECK_INT(nsop_mkdir(&c, "/web1/snapshots/s1/x", 0755, &res), NSOP_NOT_MINE);
    /* mkdir NEW at the root: an undefined VM (import.h), for who may
     * create in the store's root. */
    CHECK_INT(nsop_mkdir(&c, "/imported", 0750, &res), 0);
    CHECK_STR(res.vm, "imported");
    CHECK_INT(nsop_mkdir(&c, "/imported", 0750, &res), -EEXIST);
    CHECK_INT(nsop_mkdir(&c, "/-bad", 0750, &res), -EINVAL);
    if (geteuid() == 0) { /* (perm_cred_may asks the kernel as that user) */
        struct snap_ctx u = c;
        u.cred.uid = u.cred.gid = 4711;
        CHECK_INT(nsop_mkdir(&u, "/theirs", 0750, &res), -EACCES);
        CHECK(strstr(res.msg, "may not create entries in the store's root") != NULL);
    }
    /* In a VM being imported, mkdir snapshots/S makes a directory (a
     * take would fail: there is no definition) and rmdir removes it;
     * who may not write the VM's snapshots/ may do neither. */
    CHECK_INT(nsop_mkdir(&c, "/imported/snapshots/s1", 0755, &res), 0);
    if (geteuid() == 0) {
        struct snap_ctx u = c;
        u.cred.uid = u.cred.gid = 4711;
        CHECK_INT(nsop_mkdir(&u, "/imported/snapshots/s2", 0755, &res), -EACCES);
        CHECK(strstr(res.msg, "may not change entries of") != NULL);
        CHECK_INT(nsop_rmdir(&u, "/imported/snapshots/s1", &res), -EACCES);
    }
    CHECK_INT(nsop_rmdir(&c, "/imported/snapshots/s1", &res), 0);
    CHECK_INT(nsop_rmdir(&c, "/imported/snapshots/s1", &res), -ENOENT);

    /* ln -sfn snapshots/installed current, step by step. */
    CHECK_INT(nsop_symlink(&c, "snapshots/installed", "/web1/current", &res), -EEXIST);
    CHECK_INT(nsop_symlink(&c, "snapshots/installed", "/web1/CuAbCdEf", &res), 0);
    CHECK_INT(nsop_pending_link("/web1/CuAbCdEf", target, sizeof(target)), 0);
    CHECK_STR(target, "snapshots/installed");
    CHECK_STR(current("web1"), "s1"); /* nothing happened yet */
    CHECK_INT(nsop_rename(&c, "/web1/CuAbCdEf", "/web1/current", 0, &res), 0);
    CHECK_STR(current("web1"), "installed");
    CHECK_INT(nsop_pending_link("/web1/CuAbCdEf", target, sizeof(target)), -ENOENT);
    /* A link aside to anything but a snapshot is not ours to make. */
    CHECK_INT(nsop_symlink(&c, "/etc/passwd", "/web1/CuXyz", &res), NSOP_NOT_MINE);
    /* ...and a pending link becomes nothing but current. */
    CHECK_INT(nsop_symlink(&c, "snapshots/s1", "/web1/CuTmp", &res), 0);
    CHECK_INT(nsop_rename(&c, "/web1/CuTmp", "/db1/current", 0, &res), -EXDEV);
    CHECK_INT(nsop_unlink(&c, "/web1/CuTmp", &res), 0);
    CHECK_INT(nsop_unlink(&c, "/web1/CuTmp", &res), -ENOENT);

    /* ln runs that never renamed their link: the oldest are forgotten,
     * a new link is always taken. */
    for (int i = 0; i < VMSTATE_MAX_LINKS + 4; i++) {
        char name[32];
        snprintf(name, sizeof(name), "/web1/Cu%06d", i);
        CHECK_INT(nsop_symlink(&c, "snapshots/s1", name, &res), 0);
    }
    CHECK_INT(nsop_pending_link("/web1/Cu000019", target, sizeof(target)), 0);

    /* rm current; ln -s snapshots/s1 current. */
    CHECK_INT(nsop_unlink(&c, "/web1/current", &res), 0);
    CHECK_STR(current("web1"), "(none)");
    CHECK_INT(nsop_unlink(&c, "/web1/current", &res), -ENOENT);
    CHECK_INT(nsop_symlink(&c, "snapshots/nope", "/web1/current", &res), -ENOENT);
    CHECK_INT(nsop_symlink(&c, "snapshots/s1", "/web1/current", &res), 0);
    CHECK_STR(current("web1"), "s1");

    /* Renames: within the VM; onto an existing one; across VMs, after
     * which the same process's mkdir of the target is refused too. */
    CHECK_INT(nsop_rename(&c, "/web1/snapshots/s1", "/web1/snapshots/s2", 0, &res), 0);
    CHECK(res.frozen_changed);
    CHECK_STR(current("web1"), "s2");
    CHECK_INT(nsop_rename(&c, "/web1/snapshots/s2", "/web1/snapshots/installed", 0, &res),
              -EEXIST);
    CHECK_INT(nsop_rename(&c, "/web1/snapshots/s2", "/web1/snapshots/installed/s2", 0, &res),
              -EEXIST);
    CHECK_INT(nsop_rename(&c, "/web1/snapshots/s2", "/web1/snapshots/x", RENAME_EXCHANGE, &res),
              -EINVAL);
    CHECK_INT(nsop_rename(&c, "/web1/snapshots/s2", "/db1/snapshots/s2", 0, &res), -EXDEV);
    struct snap_ctx other = c;
    other.pid = 4343;
    CHECK_INT(nsop_mkdir(&other, "/db1/snapshots/s2", 0755, &res), 0); /* another process: a take */
    CHECK_INT(nsop_rename(&c, "/web1/snapshots/s2", "/db1/snapshots/s3", 0, &res), -EXDEV);
    CHECK_INT(nsop_mkdir(&c, "/db1/snapshots/s3", 0755, &res), -EXDEV);
    CHECK(!store_snap_exists(&st, "db1", "s3"));
    CHECK_INT(nsop_rename(&c, "/web1/disks/vda.qcow2", "/web1/disks/x.qcow2", 0, &res),
              NSOP_NOT_MINE);
}

int main(void)
{
    test_link_targets();
    if (run("command -v qemu-img >/dev/null && command -v qemu-io >/dev/null") != 0)
        CHECK_DONE();
    if (!test_tmp_template(dir, sizeof(dir), "vmstorefs-nsop") || !mkdtemp(dir))
        return 99;
    char cmd[4 * TEST_TMP_MAX], msg[MSG_MAX], path[2 * TEST_TMP_MAX];
    const char *top = getenv("TOP_SRCDIR");
    snprintf(path, sizeof(path), "%s/store", dir);
    snprintf(cmd, sizeof(cmd), "'%s/scripts/make-sample-store' '%s' >/dev/null", top ? top : ".",
             path);
    CHECK_INT(run(cmd), 0);
    log_init("test_nsop", true);
    if (store_check(&st, path, msg, sizeof(msg)) == 0 &&
        qimg_find(NULL, st.qemu_img, sizeof(st.qemu_img), msg, sizeof(msg)) == 0 &&
        store_prepare_meta(&st, msg, sizeof(msg)) == 0)
        test_requests();
    else
        CHECK(!"sample store");
    store_close(&st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    run(cmd);
    CHECK_DONE();
}
