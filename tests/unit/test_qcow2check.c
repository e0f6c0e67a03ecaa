/* Unit tests for qcow2check: images made by qemu-img pass; each header
 * field qemu checks when it opens an image, set out of its limits in a
 * copy of a real image, is refused, and qemu-img refuses that copy too
 * (so the check never refuses what qemu opens, nor passes what it will
 * not). */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "qemu/qcow2check.h"

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

static int check_file(const char *file, char *msg, size_t msgsz)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    msg[0] = '\0';
    int r = qcow2_check_header(fd, msg, msgsz);
    close(fd);
    return r;
}

/* Does qemu-img open it (read-write, as a merge does)? */
static bool qemu_opens(const char *file)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "qemu-io -f qcow2 -c 'read 0 512' %s/%s >/dev/null 2>&1", dir,
             file);
    return run(cmd) == 0;
}

static bool make(const char *file, const char *opts, const char *size)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 %s %s/%s %s", opts, dir, file, size);
    return run(cmd) == 0;
}

/* A copy of base.qcow2 named file with the big-endian value v of width
 * bytes at offset off. */
static void patched(const char *file, off_t off, uint64_t v, int width)
{
    char cmd[2 * PATH_MAX], path[PATH_MAX];
    snprintf(cmd, sizeof(cmd), "cp %s/base.qcow2 %s/%s", dir, dir, file);
    CHECK_INT(run(cmd), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    unsigned char b[8];
    for (int i = 0; i < width; i++)
        b[i] = (unsigned char)(v >> (8 * (width - 1 - i)));
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0 && pwrite(fd, b, (size_t)width, off) == width);
    if (fd >= 0)
        close(fd);
}

/* What qemu-img makes, with the options that change what the check
 * reads: each passes. */
static void test_real_images(void)
{
    static const char *const made[][3] = {
        { "base.qcow2", "", "64M" }, /* the copy the refusals patch */
        { "v2.qcow2", "-o compat=0.10", "64M" },
        { "small-clusters.qcow2", "-o cluster_size=512", "64G" },
        { "huge.qcow2", "-o cluster_size=2M", "16P" },
        { "extl2.qcow2", "-o extended_l2=on", "64M" },
        { "zstd.qcow2", "-o compression_type=zstd", "64M" },
        { "refbits.qcow2", "-o refcount_bits=64", "64M" },
    };
    char msg[256];
    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
        CHECK(make(made[i][0], made[i][1], made[i][2]));
        int r = check_file(made[i][0], msg, sizeof(msg));
        if (r != 0) {
            fprintf(stderr, "%s: refused (%d): %s\n", made[i][0], r, msg);
            check_failures++;
        }
    }
}

struct bad {
    const char *file;
    off_t off;
    uint64_t value;
    int width;
    const char *why; /* a part of the reason */
};

static void test_refusals(void)
{
    static const struct bad cases[] = {
        { "l1max", 36, 0x7fffffff, 4, "L1 table too large" },
        { "l1small", 36, 0, 4, "L1 table too small" },
        { "l1unaligned", 40, 0x30001, 8, "L1 table offset invalid" },
        { "l1overflow", 40, 0xffffffffffff0000ull, 8, "L1 table offset invalid" },
        { "noreftable", 56, 0, 4, "no refcount table" },
        { "reftablebig", 56, 0x10000, 4, "refcount table too large" },
        { "reftableunaligned", 48, 0x10200, 8, "refcount table offset invalid" },
        { "snapshots", 60, 65537, 4, "snapshot table too large" },
        { "snapunaligned", 64, 0x200, 8, "snapshot table offset invalid" },
        { "cluster8", 20, 8, 4, "cluster size" },
        { "cluster22", 20, 22, 4, "cluster size" },
        { "crypt", 32, 1, 4, "encrypted" },
        { "corrupt", 72, 2, 8, "marked corrupt" },
        { "unknownbit", 72, 1ull << 40, 8, "unsupported incompatible feature" },
        { "refcountorder", 96, 7, 4, "refcount width" },
        { "hdrlen", 100, 0x20000, 4, "header exceeds cluster size" },
        { "hdrshort", 100, 100, 4, "header too short" },
        { "version", 4, 4, 4, "unsupported qcow2 version" },
        { "backingoff", 8, 0x20000, 8, "invalid backing file offset" },
        { "hugesize", 24, 0x7fffffffffffffffull, 8, "virtual size too large" },
    };
    char msg[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad *c = &cases[i];
        patched(c->file, c->off, c->value, c->width);
        int r = check_file(c->file, msg, sizeof(msg));
        if (r != -EINVAL || !strstr(msg, c->why)) {
            fprintf(stderr, "%s: got %d \"%s\", expected -EINVAL \"%s\"\n", c->file, r, msg,
                    c->why);
            check_failures++;
        }
        if (qemu_opens(c->file)) {
            fprintf(stderr, "%s: refused, but qemu-img opens it\n", c->file);
            check_failures++;
        }
    }
    /* Not qcow2 at all, and too short to be. */
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "head -c 65536 /dev/zero > %s/raw.img && printf QFI > %s/short.img",
             dir, dir);
    CHECK_INT(run(cmd), 0);
    CHECK_INT(check_file("raw.img", msg, sizeof(msg)), -EINVAL);
    CHECK_INT(check_file("short.img", msg, sizeof(msg)), -EINVAL);
}

int main(void)
{
    if (run("command -v qemu-img >/dev/null && command -v qemu-io >/dev/null") != 0)
        return 77;
    if (!test_tmp_template(dir, sizeof(dir), "vmstorefs-qcow2check") || !mkdtemp(dir)) {
        perror("mkdtemp");
        return 99;
    }
    test_real_images();
    test_refusals();
    char cmd[2 * TEST_TMP_MAX];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run(cmd);
    CHECK_DONE();
}
