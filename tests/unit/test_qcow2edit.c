/* Unit tests for qcow2edit: the backing name rewritten in place, read
 * back by qemu-img itself; the refusals (-ENOSPC) that send the caller to
 * qemu-img rebase -u; the virtual size. Skipped (77) without qemu-img. */
#include "config.h"

#include "check.h"
#include "qemu/qcow2edit.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[TEST_TMP_MAX];

static int run(const char *cmd)
{
    int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static void make(const char *name, const char *opts)
{
    char cmd[4 * TEST_TMP_MAX];
    snprintf(cmd, sizeof(cmd), "cd '%s' && qemu-img create -q -f qcow2 %s %s 64M", dir, opts, name);
    CHECK_INT(run(cmd), 0);
}

static int set_name(const char *name, const char *backing, char *msg, size_t msgsz)
{
    char path[2 * TEST_TMP_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -errno;
    int r = qcow2_set_backing_name(fd, backing, msg, msgsz);
    close(fd);
    return r;
}

/* What qemu-img itself reads from the header (the backing files do not
 * exist here, so `qemu-img check` cannot open the images). */
static bool qemu_sees(const char *name, const char *backing)
{
    char cmd[4 * TEST_TMP_MAX];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && qemu-img info -U --output=json %s >/dev/null && "
             "qemu-img info -U --output=json %s | "
             "grep -q '\"backing-filename\": \"%s\"' && qemu-img info -U --output=json %s | "
             "grep -q '\"backing-filename-format\": \"qcow2\"'",
             dir, name, name, backing, name);
    return run(cmd) == 0;
}

int main(void)
{
    if (run("command -v qemu-img >/dev/null") != 0)
        return 77;
    if (!test_tmp_template(dir, sizeof(dir), "vmstorefs-qcow2edit") || !mkdtemp(dir))
        return 99;
    char msg[512];

    make("a.qcow2", "-u -b ../snapshots/S/vda.qcow2 -F qcow2");
    /* Shorter (a take: disks/ to snapshots/S/), then longer (a rename). */
    CHECK_INT(set_name("a.qcow2", "../P/vda.qcow2", msg, sizeof(msg)), 0);
    CHECK(qemu_sees("a.qcow2", "../P/vda.qcow2"));
    CHECK_INT(set_name("a.qcow2", "../a-much-longer-snapshot-name/vda.qcow2", msg, sizeof(msg)), 0);
    CHECK(qemu_sees("a.qcow2", "../a-much-longer-snapshot-name/vda.qcow2"));

    /* No backing name to replace: qemu-img's job. */
    make("plain.qcow2", "");
    CHECK_INT(set_name("plain.qcow2", "../x/vda.qcow2", msg, sizeof(msg)), -ENOSPC);

    /* 512-byte clusters: a name that would leave the header cluster. */
    make("small.qcow2", "-o cluster_size=512 -u -b b.qcow2 -F qcow2");
    char longname[600];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    CHECK_INT(set_name("small.qcow2", longname, msg, sizeof(msg)), -ENOSPC);
    CHECK(qemu_sees("small.qcow2", "b.qcow2")); /* untouched */

    /* Not qcow2 at all. */
    char path[2 * TEST_TMP_MAX];
    snprintf(path, sizeof(path), "%s/raw", dir);
    FILE *f = fopen(path, "w");
    fputs("not an image, long enough to have a header-sized start........", f);
    fclose(f);
    CHECK_INT(set_name("raw", "../x", msg, sizeof(msg)), -EINVAL);

    snprintf(path, sizeof(path), "%s/a.qcow2", dir);
    int fd = open(path, O_RDONLY);
    unsigned long long size = 0;
    CHECK_INT(qcow2_virtual_size(fd, &size), 0);
    CHECK_INT(size, 64ull << 20);
    close(fd);

    char cmd[2 * TEST_TMP_MAX];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    run(cmd);
    CHECK_DONE();
}
