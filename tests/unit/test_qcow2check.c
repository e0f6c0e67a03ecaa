/* Unit tests for qcow2check: images made by qemu-img pass; each header
 * field qemu checks when it opens an image, set out of its limits in a
 * copy of a real image, is refused, and qemu-img refuses that copy too
 * (so the check never refuses what qemu opens, nor passes what it will
 * not). */
#include "config.h"

#include "check.h"
#include "fsutil.h"
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

/* How many of the n files qemu opens (read-write, as a merge does) and
 * reads 512 bytes of, all asked of one qemu-io (open, read, close each):
 * a file it opens says "read 512/512 bytes". At most 32. */
static int qemu_opens(const char *const files[], size_t n)
{
    char *argv[4 + 6 * 32] = { "qemu-io" }, cmds[32][PATH_MAX + 64];
    int argc = 1;
    for (size_t i = 0; i < n && i < 32; i++) {
        snprintf(cmds[i], sizeof(cmds[i]), "open -o driver=qcow2 %s/%s", dir, files[i]);
        argv[argc++] = "-c";
        argv[argc++] = cmds[i];
        argv[argc++] = "-c";
        argv[argc++] = "read 0 512";
        argv[argc++] = "-c";
        argv[argc++] = "close";
    }
    argv[argc] = NULL;
    static char out[65536];
    if (n > 32)
        return -1;
    if (fs_spawn_merged(argv, out, sizeof(out)) < 0) {
        /* Killed (qemu-io aborting on one of them): each alone, where
         * that means it does not open. */
        int opened = 0;
        for (size_t i = 0; n > 1 && i < n; i++)
            opened += qemu_opens(&files[i], 1);
        return opened;
    }
    int opened = 0;
    for (const char *p = out; (p = strstr(p, "read 512/512 bytes")); p++)
        opened++;
    return opened;
}

static bool make(const char *file, const char *opts, const char *size)
{
    char path[PATH_MAX], o[64];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    snprintf(o, sizeof(o), "%s", opts[0] ? opts + strlen("-o ") : "");
    char *with[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-o", o, path, (char *)size, NULL };
    char *without[] = { "qemu-img", "create", "-q", "-f", "qcow2", path, (char *)size, NULL };
    return fs_spawn(opts[0] ? with : without, NULL, NULL, 0, false) == 0;
}

/* A copy of base.qcow2 named file with the big-endian value v of width
 * bytes at offset off. */
static void patched(const char *file, off_t off, uint64_t v, int width)
{
    char base[PATH_MAX], path[PATH_MAX];
    snprintf(base, sizeof(base), "%s/base.qcow2", dir);
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    CHECK_INT(fs_copy_file(base, path), 0);
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
    }
    /* qemu opens none of them (one qemu-io); else each alone, to say which. */
    const char *files[sizeof(cases) / sizeof(cases[0])];
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++)
        files[i] = cases[i].file;
    int opened = qemu_opens(files, n);
    CHECK_INT(opened, 0);
    for (size_t i = 0; opened != 0 && i < n; i++)
        if (qemu_opens(&files[i], 1) != 0)
            fprintf(stderr, "%s: refused, but qemu-img opens it\n", files[i]);
    /* Not qcow2 at all, and too short to be. */
    char raw[PATH_MAX], shorter[PATH_MAX];
    snprintf(raw, sizeof(raw), "%s/raw.img", dir);
    snprintf(shorter, sizeof(shorter), "%s/short.img", dir);
    int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 65536) == 0);
    if (fd >= 0)
        close(fd);
    fd = open(shorter, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && write(fd, "QFI", 3) == 3);
    if (fd >= 0)
        close(fd);
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
    fs_rm_rf(dir);
    CHECK_DONE();
}
