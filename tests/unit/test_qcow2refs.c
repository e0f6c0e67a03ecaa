/* Unit tests for qcow2refs: the refcount count the store's check makes
 * before it runs qemu-img check. On images qemu-img makes and writes
 * (data, zeros, discards, a commit, small clusters, version 2, metadata
 * preallocation, lazy refcounts) it agrees with qemu-img check: clean;
 * what it does not count (internal snapshots, compressed clusters) it
 * leaves to qemu-img; and every damage qemu-img check reports (leaked
 * clusters, a refcount too high or too low, an L1 or L2 entry's COPIED
 * flag) it does not call clean, whatever its own reason. */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "qemu/qcow2refs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[TEST_TMP_MAX];

/* Commands run in the test's directory (main chdirs there). */
static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int counted(const char *file, char *why, size_t whysz)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    why[0] = '\0';
    int r = qcow2_refcounts_clean(fd, why, whysz);
    close(fd);
    return r;
}

/* qemu-img check's verdict: 0 clean, 2 corrupt, 3 leaks. */
static int qemu_check(const char *file)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "qemu-img check -q -f qcow2 %s >/dev/null 2>&1", file);
    return run(cmd);
}

static uint64_t be64_at(const char *file, off_t off)
{
    unsigned char b[8] = { 0 };
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && pread(fd, b, 8, off) == 8);
    if (fd >= 0)
        close(fd);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

/* A copy of a.qcow2 named file with bytes written at off. */
static void patched(const char *file, off_t off, const void *bytes, size_t n)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof(cmd), "cp a.qcow2 %s", file);
    CHECK_INT(run(cmd), 0);
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0 && pwrite(fd, bytes, n, off) == (ssize_t)n);
    if (fd >= 0)
        close(fd);
}

static void test_clean_images(void)
{
    static const char *const steps[] = {
        "qemu-img create -q -f qcow2 a.qcow2 256M && qemu-io -f qcow2 -c 'write -P 1 0 10M'"
        " -c 'write -z 20M 1M' -c 'discard 0 1M' -c 'write -P 2 100M 64k' a.qcow2 >/dev/null",
        "qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2 && qemu-io -f qcow2"
        " -c 'write -P 3 5M 3M' -c 'write -z -u 50M 2M' b.qcow2 >/dev/null",
        "cp a.qcow2 c0.qcow2 && qemu-img create -q -f qcow2 -b c0.qcow2 -F qcow2 c.qcow2"
        " && qemu-io -f qcow2 -c 'write -P 5 1M 2M' c.qcow2 >/dev/null && qemu-img commit -q c.qcow2",
        "qemu-img create -q -f qcow2 -o cluster_size=4096 d.qcow2 64M && qemu-io -f qcow2"
        " -c 'write -P 4 0 3M' d.qcow2 >/dev/null",
        "qemu-img create -q -f qcow2 -o compat=0.10 e.qcow2 64M && qemu-io -f qcow2"
        " -c 'write 0 1M' e.qcow2 >/dev/null",
        "qemu-img create -q -f qcow2 -o preallocation=metadata f.qcow2 32M",
        "qemu-img create -q -f qcow2 -o lazy_refcounts=on h.qcow2 16M",
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        CHECK_INT(run(steps[i]), 0);
    static const char *const clean[] = { "a.qcow2", "b.qcow2", "c0.qcow2", "d.qcow2",
                                         "e.qcow2", "f.qcow2", "h.qcow2" };
    char why[256];
    for (size_t i = 0; i < sizeof(clean) / sizeof(clean[0]); i++) {
        CHECK_INT(qemu_check(clean[i]), 0);
        int r = counted(clean[i], why, sizeof(why));
        if (r != 1) {
            fprintf(stderr, "%s: not counted clean (%d): %s\n", clean[i], r, why);
            check_failures++;
        }
    }
    /* What is not counted here goes to qemu-img. */
    CHECK_INT(run("cp d.qcow2 s.qcow2 && qemu-img snapshot -c s1 s.qcow2"), 0);
    CHECK_INT(run("qemu-img convert -O qcow2 -c a.qcow2 z.qcow2"), 0);
    CHECK_INT(counted("s.qcow2", why, sizeof(why)), 0);
    CHECK(strstr(why, "internal snapshots"));
    CHECK_INT(counted("z.qcow2", why, sizeof(why)), 0);
    CHECK(strstr(why, "compressed"));
}

static void test_damage(void)
{
    char why[256];
    uint64_t l1 = be64_at("a.qcow2", 40), rb = be64_at("a.qcow2", (off_t)be64_at("a.qcow2", 48));
    static const unsigned char zero8[8] = { 0 }, two[2] = { 0, 2 }, none[2] = { 0, 0 },
                               l1_uncopied[1] = { 0 };
    struct {
        const char *file;
        off_t off;
        const void *bytes;
        size_t n;
        int qemu; /* what qemu-img check exits with */
    } cases[] = {
        { "l1gone.qcow2", (off_t)l1, zero8, 8, 3 },        /* an L2 table and its data leaked */
        { "uncopied.qcow2", (off_t)l1, l1_uncopied, 1, 2 }, /* the L1 entry's COPIED flag */
        { "refhigh.qcow2", (off_t)(rb + 2 * 5), two, 2, 2 }, /* a data cluster's refcount 2 */
        { "reflow.qcow2", (off_t)(rb + 2 * 5), none, 2, 2 }, /* ... and 0 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        patched(cases[i].file, cases[i].off, cases[i].bytes, cases[i].n);
        CHECK_INT(qemu_check(cases[i].file), cases[i].qemu);
        int r = counted(cases[i].file, why, sizeof(why));
        if (r != 0) {
            fprintf(stderr, "%s: counted %d, expected 0 (not clean)\n", cases[i].file, r);
            check_failures++;
        }
    }
    /* A leaked cluster past the last one: its refcount set to 1. */
    uint64_t size = 0;
    {
        FILE *f = fopen("a.qcow2", "rb");
        CHECK(f && fseek(f, 0, SEEK_END) == 0);
        size = f ? (uint64_t)ftell(f) : 0;
        if (f)
            fclose(f);
    }
    uint64_t cl = (size + 65535) / 65536;
    static const unsigned char one[2] = { 0, 1 };
    patched("leak.qcow2", (off_t)(rb + 2 * cl), one, 2);
    CHECK(truncate("leak.qcow2", (off_t)((cl + 1) * 65536)) == 0);
    CHECK_INT(qemu_check("leak.qcow2"), 3);
    CHECK_INT(counted("leak.qcow2", why, sizeof(why)), 0);
    CHECK(strstr(why, "refcount 1, used 0"));
}

int main(void)
{
    if (run("command -v qemu-img >/dev/null && command -v qemu-io >/dev/null") != 0)
        return 77;
    if (!test_tmp_template(dir, sizeof(dir), "vmstorefs-qcow2refs") || !mkdtemp(dir)) {
        perror("mkdtemp");
        return 99;
    }
    if (chdir(dir) < 0) {
        perror(dir);
        return 99;
    }
    test_clean_images();
    test_damage();
    char cmd[TEST_TMP_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run(cmd);
    CHECK_DONE();
}
