/* Unit tests for qcow2hdr: the backing file name read from real images
 * made by qemu-img, and crafted headers that must be refused. */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "qcow2hdr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[TEST_TMP_MAX];

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int backing_of(const char *file, char *out, size_t outsz, char *msg, size_t msgsz)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = qcow2_backing_name(fd, out, outsz, msg, msgsz);
    close(fd);
    return r;
}

/* Writes a 72-byte version-N header with a backing name at offset 72. */
static void craft(const char *file, uint32_t version, uint64_t off, uint32_t len, const char *name,
                  size_t namelen)
{
    unsigned char h[72] = { 'Q', 'F', 'I', 0xfb };
    for (int i = 0; i < 4; i++)
        h[4 + i] = (unsigned char)(version >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        h[8 + i] = (unsigned char)(off >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        h[16 + i] = (unsigned char)(len >> (24 - 8 * i));
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "we");
    fwrite(h, 1, sizeof(h), f);
    fwrite(name, 1, namelen, f);
    fclose(f);
}

static void test_real_images(void)
{
    char cmd[1024], out[QCOW2_BACKING_MAX + 1], msg[256];
    snprintf(cmd, sizeof(cmd),
             "cd %s && qemu-img create -q -f qcow2 base.qcow2 1M && "
             "qemu-img create -q -f qcow2 -b ../snapshots/s1/vda.qcow2 -F qcow2 -u top.qcow2 1M && "
             "qemu-img create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 v2.qcow2",
             dir);
    /* Without qemu-img only these checks are skipped; with it, making
     * the images must work. */
    if (run("command -v qemu-img >/dev/null") != 0) {
        fprintf(stderr, "note: qemu-img not installed; real-image checks skipped\n");
        return;
    }
    CHECK_INT(run(cmd), 0);
    CHECK_INT(backing_of("base.qcow2", out, sizeof(out), msg, sizeof(msg)), 0);
    CHECK_STR(out, "");
    CHECK_INT(backing_of("top.qcow2", out, sizeof(out), msg, sizeof(msg)), 0);
    CHECK_STR(out, "../snapshots/s1/vda.qcow2");
    CHECK_INT(backing_of("v2.qcow2", out, sizeof(out), msg, sizeof(msg)), 0);
    CHECK_STR(out, "base.qcow2");
    /* a buffer too small for the name is refused, not truncated */
    CHECK_INT(backing_of("top.qcow2", out, 8, msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "too long") != NULL);
}

static void test_refusals(void)
{
    char out[QCOW2_BACKING_MAX + 1], msg[256];
    craft("v99", 99, 0, 0, "", 0);
    CHECK_INT(backing_of("v99", out, sizeof(out), msg, sizeof(msg)), -EINVAL);
    CHECK_STR(msg, "unsupported qcow2 version 99");

    craft("raw", 3, 0, 0, "", 0);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/raw", dir);
    FILE *f = fopen(path, "r+e");
    fputc('X', f); /* break the magic */
    fclose(f);
    CHECK_INT(backing_of("raw", out, sizeof(out), msg, sizeof(msg)), -EINVAL);
    CHECK_STR(msg, "not a qcow2 image");

    craft("short", 3, 0, 0, "", 0);
    snprintf(path, sizeof(path), "%s/short", dir);
    CHECK(truncate(path, 40) == 0);
    CHECK_INT(backing_of("short", out, sizeof(out), msg, sizeof(msg)), -EINVAL);

    craft("ok", 3, 72, 8, "base.img", 8);
    CHECK_INT(backing_of("ok", out, sizeof(out), msg, sizeof(msg)), 0);
    CHECK_STR(out, "base.img");

    craft("pastend", 3, 72, 100, "base.img", 8);
    CHECK_INT(backing_of("pastend", out, sizeof(out), msg, sizeof(msg)), -EINVAL);
    CHECK_STR(msg, "backing file name out of range");

    craft("huge", 3, 72, 4096, "x", 1);
    CHECK_INT(backing_of("huge", out, sizeof(out), msg, sizeof(msg)), -EINVAL);

    craft("farofs", 3, (uint64_t)1 << 62, 8, "base.img", 8);
    CHECK_INT(backing_of("farofs", out, sizeof(out), msg, sizeof(msg)), -EINVAL);

    craft("nul", 3, 72, 8, "ba\0e.img", 8);
    CHECK_INT(backing_of("nul", out, sizeof(out), msg, sizeof(msg)), -EINVAL);
    CHECK_STR(msg, "backing file name contains a NUL byte");

    craft("zerolen", 3, 72, 0, "", 0);
    CHECK_INT(backing_of("zerolen", out, sizeof(out), msg, sizeof(msg)), -EINVAL);
}

int main(void)
{
    if (!test_tmp_template(dir, sizeof(dir), "vmstorefs-qcow2hdr") || !mkdtemp(dir)) {
        perror("mkdtemp");
        return 99;
    }
    test_real_images();
    test_refusals();
    char cmd[PATH_MAX];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run(cmd);
    CHECK_DONE();
}
