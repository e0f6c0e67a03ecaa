/* Unit tests for qcow2create: the overlays it writes are what qemu-img
 * create makes, as qemu itself sees them. For parents of every cluster
 * size qemu opens (512 B-2 MiB), qcow2 v2 and v3, with and without a
 * backing file of their own, raw, and of odd sizes: the native overlay
 * and the one `qemu-img create -u` makes (the command the daemon ran
 * before, qimg_argv_create_unsafe) give the same `qemu-img info` (format
 * specific fields, cluster size, virtual size, backing name and format),
 * and so does `qemu-img create` without -u (it opens the parent and takes
 * nothing from it but the size); `qemu-img check` finds nothing;
 * `qemu-img compare` finds the overlay identical to its parent; qemu-io
 * writes into it read back, and the check stays clean. Also the limits
 * (2 PiB, qemu-img's too) and the refused names. Skipped (77) without
 * qemu-img and qemu-io. */
#include "config.h"

#include "check.h"
#include "qemu/qcow2check.h"
#include "qemu/qcow2create.h"
#include "qemu/qcow2edit.h"
#include "qemu/qcow2hdr.h"
#include "qemu/qimg.h"
#include "fsutil.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[TEST_TMP_MAX];
static char qemu_img[PATH_MAX];

/* Runs a shell command in dir/sub; its exit status. */
static int sh(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(const char *sub, const char *fmt, ...)
{
    char cmd[4096], body[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "cd '%s/%s' && { %s; }", dir, sub, body);
    int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static void path_of(char *out, size_t outsz, const char *sub, const char *name)
{
    snprintf(out, outsz, "%s/%s/%s", dir, sub, name);
}

/* The native overlay sub/name: created 0600, written, fsynced. */
static int write_native(const char *sub, const char *name, uint64_t size, const char *backing,
                        const char *fmt)
{
    char path[PATH_MAX], msg[256];
    path_of(path, sizeof(path), sub, name);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int r = qcow2_write_overlay(fd, size, backing, fmt, msg, sizeof(msg));
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    if (r < 0)
        fprintf(stderr, "%s: %s\n", path, msg);
    return r;
}

/* What the daemon ran before: qemu-img create -q -f qcow2 -u ... */
static int write_qemu(const char *sub, const char *name, uint64_t size, const char *backing,
                      const char *fmt)
{
    char path[PATH_MAX], sz[32], msg[512];
    path_of(path, sizeof(path), sub, name);
    snprintf(sz, sizeof(sz), "%" PRIu64, size);
    struct qimg_argv a;
    int r = qimg_argv_create_unsafe(&a, qemu_img, path, backing, fmt, sz);
    if (r == 0)
        r = qimg_run(&a, 60, "create", msg, sizeof(msg));
    if (r < 0)
        fprintf(stderr, "%s: %s\n", path, msg);
    return r;
}

/* qemu-img ARGS... in dir/sub, no shell: its exit status. */
#define QEMU_IMG(sub, ...)                                                                    \
    fs_spawn((char *const[]){ "qemu-img", __VA_ARGS__, NULL }, subdir(sub), NULL, 0, false)

static const char *subdir(const char *sub)
{
    static char path[PATH_MAX];
    path_of(path, sizeof(path), sub, "");
    return path;
}

/* `qemu-img info --output=json` of sub/name less its lines with the
 * file's own name and allocation (grep -v -e '"filename"' -e
 * '"actual-size"'), into out; false (said) when it fails. Asked once for
 * a file whose inode, size and times have not changed since (the
 * native overlay is compared with two references). */
static bool info_of(const char *sub, const char *name, char *out, size_t outsz)
{
    static struct {
        char path[PATH_MAX];
        struct stat sb;
        char info[8192];
    } last[2];
    static int next;
    char path[PATH_MAX], raw[8192];
    struct stat sb;
    path_of(path, sizeof(path), sub, name);
    if (stat(path, &sb) < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return false;
    }
    for (int i = 0; i < 2; i++)
        if (strcmp(last[i].path, path) == 0 && last[i].sb.st_ino == sb.st_ino &&
            last[i].sb.st_dev == sb.st_dev && last[i].sb.st_size == sb.st_size &&
            last[i].sb.st_mtim.tv_sec == sb.st_mtim.tv_sec &&
            last[i].sb.st_mtim.tv_nsec == sb.st_mtim.tv_nsec &&
            last[i].sb.st_ctim.tv_sec == sb.st_ctim.tv_sec &&
            last[i].sb.st_ctim.tv_nsec == sb.st_ctim.tv_nsec) {
            snprintf(out, outsz, "%s", last[i].info);
            return true;
        }
    char *argv[] = { "qemu-img", "info", "--output=json", (char *)name, NULL };
    if (fs_spawn(argv, subdir(sub), raw, sizeof(raw), false) != 0) {
        fprintf(stderr, "qemu-img info %s failed\n", path);
        return false;
    }
    size_t at = 0;
    out[0] = '\0';
    for (const char *l = raw; *l;) {
        size_t len = strcspn(l, "\n");
        if (!memmem(l, len, "\"filename\"", 10) && !memmem(l, len, "\"actual-size\"", 13) &&
            at < outsz)
            at += (size_t)snprintf(out + at, outsz - at, "%.*s\n", (int)len, l);
        l += len + (l[len] == '\n');
    }
    snprintf(last[next].path, sizeof(last[next].path), "%s", path);
    last[next].sb = sb;
    snprintf(last[next].info, sizeof(last[next].info), "%s", out);
    next = !next;
    return at < outsz;
}

/* qemu-img info of a and b, less the file's own name and allocation,
 * are the same; both said when not. */
static bool same_info(const char *sub, const char *a, const char *b)
{
    char ia[8192], ib[8192];
    if (!info_of(sub, a, ia, sizeof(ia)) || !info_of(sub, b, ib, sizeof(ib)))
        return false;
    if (strcmp(ia, ib) == 0)
        return true;
    fprintf(stderr, "%s/%s and %s differ in qemu-img info:\n%s---\n%s", sub, a, b, ia, ib);
    return false;
}

/* Our own readers agree: the header passes qemu's open checks, and the
 * backing name and format are the ones given. */
static void check_own_readers(const char *sub, const char *name, const char *backing,
                              const char *fmt, uint64_t size)
{
    char path[PATH_MAX], msg[256];
    path_of(path, sizeof(path), sub, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK_INT(qcow2_check_header(fd, msg, sizeof(msg)), 0);
    struct qcow2_backing b;
    CHECK_INT(qcow2_read_backing(fd, &b, msg, sizeof(msg)), 0);
    CHECK_STR(b.name, backing);
    CHECK_STR(b.format, fmt);
    CHECK(!b.data_file);
    unsigned long long vs = 0;
    CHECK_INT(qcow2_virtual_size(fd, &vs), 0);
    CHECK_INT(vs, (size + 511) & ~511ull);
    close(fd);
}

struct parent_case {
    const char *name; /* subdirectory */
    const char *make; /* shell: makes the parent (and its own backing) */
    const char *file, *fmt; /* the parent */
    const char *write; /* qemu-io offset and length written into the overlay */
};

static const struct parent_case cases[] = {
    { "c512", "qemu-img create -q -f qcow2 -o cluster_size=512 p.qcow2 64M && "
              "qemu-io -f qcow2 -c 'write -q -P 0x11 0 1M' p.qcow2 >/dev/null",
      "p.qcow2", "qcow2", "512K 64K" },
    { "c4k", "qemu-img create -q -f qcow2 -o cluster_size=4096 p.qcow2 64M && "
             "qemu-io -f qcow2 -c 'write -q -P 0x12 4096 1M' p.qcow2 >/dev/null",
      "p.qcow2", "qcow2", "0 4096" },
    { "c64k", "qemu-img create -q -f qcow2 p.qcow2 64M && "
              "qemu-io -f qcow2 -c 'write -q -P 0x13 1M 1M' p.qcow2 >/dev/null",
      "p.qcow2", "qcow2", "1536K 1M" },
    { "c2m", "qemu-img create -q -f qcow2 -o cluster_size=2M p.qcow2 64M && "
             "qemu-io -f qcow2 -c 'write -q -P 0x14 3M 1M' p.qcow2 >/dev/null",
      "p.qcow2", "qcow2", "3584K 4K" },
    { "v2", "qemu-img create -q -f qcow2 -o compat=0.10 p.qcow2 64M && "
            "qemu-io -f qcow2 -c 'write -q -P 0x15 0 1M' p.qcow2 >/dev/null",
      "p.qcow2", "qcow2", "64K 64K" },
    /* A parent with its own backing file: the overlay sees both. */
    { "chain", "qemu-img create -q -f qcow2 -o cluster_size=4096 g.qcow2 64M && "
               "qemu-io -f qcow2 -c 'write -q -P 0x16 0 2M' g.qcow2 >/dev/null && "
               "qemu-img create -q -f qcow2 -b g.qcow2 -F qcow2 p.qcow2 && "
               "qemu-io -f qcow2 -c 'write -q -P 0x17 1M 2M' p.qcow2 >/dev/null",
      "p.qcow2", "qcow2", "512K 1M" },
    { "v2chain", "qemu-img create -q -f raw g.raw 64M && "
                 "qemu-io -f raw -c 'write -q -P 0x18 0 2M' g.raw >/dev/null && "
                 "qemu-img create -q -f qcow2 -o compat=0.10 -b g.raw -F raw p.qcow2 && "
                 "qemu-io -f qcow2 -c 'write -q -P 0x19 1M 64K' p.qcow2 >/dev/null",
      "p.qcow2", "qcow2", "0 512" },
    { "raw", "qemu-img create -q -f raw p.raw 8M && "
             "qemu-io -f raw -c 'write -q -P 0x1a 0 1M' p.raw >/dev/null",
      "p.raw", "raw", "4M 1M" },
    /* Odd sizes: qemu-img rounds the overlay up to a whole sector. */
    { "raw1", "printf x >p.raw", "p.raw", "raw", "0 512" },
    { "raw511", "head -c 511 /dev/zero | tr '\\0' y >p.raw", "p.raw", "raw", "0 512" },
    /* 1 GiB + 512: three L2 tables' worth of L1, the last partly used. */
    { "g1s", "qemu-img create -q -f qcow2 p.qcow2 1073742336 && "
             "qemu-io -f qcow2 -c 'write -q -P 0x1b 1G 512' p.qcow2 >/dev/null",
      "p.qcow2", "qcow2", "1073741824 512" },
    /* 4 TiB: an L1 table of exactly one cluster. */
    { "t4", "qemu-img create -q -f qcow2 p.qcow2 4T && "
            "qemu-io -f qcow2 -c 'write -q -P 0x1c 4398046445568 64K' p.qcow2 >/dev/null",
      "p.qcow2", "qcow2", "4398046510592 512" },
};

static uint64_t parent_size(const struct parent_case *c)
{
    char path[PATH_MAX];
    path_of(path, sizeof(path), c->name, c->file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned long long size = 0;
    struct stat st;
    if (fd < 0)
        return 0;
    if (strcmp(c->fmt, "qcow2") == 0)
        CHECK_INT(qcow2_virtual_size(fd, &size), 0);
    else if (fstat(fd, &st) == 0)
        size = (unsigned long long)st.st_size;
    close(fd);
    return size;
}

static void test_parent(const struct parent_case *c)
{
    fprintf(stderr, "-- %s\n", c->name);
    char sub[PATH_MAX];
    path_of(sub, sizeof(sub), c->name, "");
    CHECK_INT(mkdir(sub, 0700), 0);
    CHECK_INT(sh(c->name, "%s", c->make), 0);
    uint64_t size = parent_size(c);
    CHECK(size > 0);
    CHECK_INT(write_native(c->name, "native.qcow2", size, c->file, c->fmt), 0);
    CHECK_INT(write_qemu(c->name, "ref.qcow2", size, c->file, c->fmt), 0);
    CHECK(same_info(c->name, "native.qcow2", "ref.qcow2"));
    /* qemu-img create that opens the parent: the same cluster size, not
     * the parent's. */
    CHECK_INT(QEMU_IMG(c->name, "create", "-q", "-f", "qcow2", "-b", (char *)c->file, "-F",
                       (char *)c->fmt, "safe.qcow2"),
              0);
    CHECK(same_info(c->name, "native.qcow2", "safe.qcow2"));
    check_own_readers(c->name, "native.qcow2", c->file, c->fmt, size);
    CHECK_INT(QEMU_IMG(c->name, "check", "-q", "-f", "qcow2", "native.qcow2"), 0);
    CHECK_INT(QEMU_IMG(c->name, "compare", "-q", "-f", "qcow2", "-F", (char *)c->fmt,
                       "native.qcow2", (char *)c->file),
              0);
    /* Written through qemu, read back; the rest still the parent's. */
    char native[PATH_MAX], io[64];
    path_of(native, sizeof(native), c->name, "native.qcow2");
    snprintf(io, sizeof(io), "write -q -P 0xc7 %s", c->write);
    CHECK(qio_do(native, io));
    snprintf(io, sizeof(io), "read -q -P 0xc7 %s", c->write);
    CHECK(qio_do(native, io));
    CHECK_INT(QEMU_IMG(c->name, "check", "-q", "-f", "qcow2", "native.qcow2"), 0);
    CHECK_INT(QEMU_IMG(c->name, "compare", "-q", "-f", "qcow2", "-F", (char *)c->fmt,
                       "native.qcow2", (char *)c->file),
              1);
}

/* Sizes given directly, against qemu-img create -u with the same. */
static void test_sizes(void)
{
    static const uint64_t sizes[] = { 0, 1, 511, 512, 1073742336ull, 4398046511104ull,
                                      (uint64_t)2 << 50 /* 2 PiB: the largest L1 qemu opens */ };
    char sub[PATH_MAX];
    path_of(sub, sizeof(sub), "sizes", "");
    CHECK_INT(mkdir(sub, 0700), 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char n[64], q[64];
        snprintf(n, sizeof(n), "n%zu.qcow2", i);
        snprintf(q, sizeof(q), "q%zu.qcow2", i);
        fprintf(stderr, "-- size %" PRIu64 "\n", sizes[i]);
        CHECK_INT(write_native("sizes", n, sizes[i], "../S/vda.qcow2", "qcow2"), 0);
        CHECK_INT(write_qemu("sizes", q, sizes[i], "../S/vda.qcow2", "qcow2"), 0);
        CHECK(same_info("sizes", n, q));
        check_own_readers("sizes", n, "../S/vda.qcow2", "qcow2", sizes[i]);
        /* The same length: the L1 table ends the file, as qemu's. */
        char pn[PATH_MAX], pq[PATH_MAX];
        struct stat sn, sq;
        path_of(pn, sizeof(pn), "sizes", n);
        path_of(pq, sizeof(pq), "sizes", q);
        CHECK(stat(pn, &sn) == 0 && stat(pq, &sq) == 0 && sn.st_size == sq.st_size);
        CHECK_INT(sn.st_mode & 07777, 0600);
    }
    /* One sector more than 2 PiB: qemu-img refuses it as well. */
    uint64_t over = ((uint64_t)2 << 50) + 512;
    CHECK_INT(write_native("sizes", "big.qcow2", over, "b", "qcow2"), -EFBIG);
    CHECK(write_qemu("sizes", "bigq.qcow2", over, "b", "qcow2") < 0);
    CHECK_INT(write_native("sizes", "max.qcow2", UINT64_MAX, "b", "qcow2"), -EFBIG);
}

/* Names qemu would refuse to open are not written. */
static void test_names(void)
{
    char sub[PATH_MAX], name[1025];
    path_of(sub, sizeof(sub), "names", "");
    CHECK_INT(mkdir(sub, 0700), 0);
    memset(name, 'a', 1023);
    name[1023] = '\0';
    CHECK_INT(write_native("names", "long.qcow2", 1 << 20, name, "qcow2"), 0);
    char info[8192];
    CHECK(info_of("names", "long.qcow2", info, sizeof(info)));
    check_own_readers("names", "long.qcow2", name, "qcow2", 1 << 20);
    name[1023] = 'a';
    name[1024] = '\0';
    CHECK_INT(write_native("names", "toolong.qcow2", 1 << 20, name, "qcow2"), -EINVAL);
    CHECK_INT(write_native("names", "nobacking.qcow2", 1 << 20, "", "qcow2"), -EINVAL);
    CHECK_INT(write_native("names", "nofmt.qcow2", 1 << 20, "b", ""), -EINVAL);
    CHECK_INT(write_native("names", "longfmt.qcow2", 1 << 20, "b", "0123456789abcdef"), -EINVAL);
}

int main(void)
{
    char msg[512];
    if (system("command -v qemu-io >/dev/null") != 0 ||
        qimg_find(NULL, qemu_img, sizeof(qemu_img), msg, sizeof(msg)) < 0)
        return 77;
    if (!test_tmp_template(dir, sizeof(dir), "vmstorefs-qcow2create") || !mkdtemp(dir))
        return 99;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        test_parent(&cases[i]);
    test_sizes();
    test_names();
    if (fs_rm_rf(dir) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    CHECK_DONE();
}
