/* Unit tests for qcow2hdr: the backing file name read from real images
 * made by qemu-img, and crafted headers that must be refused. */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "qemu/qcow2hdr.h"

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

static int read_backing(const char *file, struct qcow2_backing *b, char *msg, size_t msgsz)
{
    char path[2 * TEST_TMP_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = qcow2_read_backing(fd, b, msg, msgsz);
    close(fd);
    return r;
}

/* The backing format as qemu-img writes it, and as qemu reads it back. */
static void test_format_real(void)
{
    if (run("command -v qemu-img >/dev/null") != 0)
        return;
    char cmd[2048], msg[256];
    snprintf(cmd, sizeof(cmd),
             "cd %s && qemu-img create -q -f qcow2 -u -b base.qcow2 -F qcow2 fq.qcow2 1M && "
             "qemu-img create -q -f qcow2 -u -b base.raw -F raw fr.qcow2 1M && "
             "qemu-img create -q -f qcow2 -o compat=0.10 -u -b base.raw -F raw fv2.qcow2 1M && "
             "qemu-img create -q -f qcow2 -o cluster_size=2M -u -b b.qcow2 -F qcow2 big.qcow2 1M && "
             "qemu-img create -q -f qcow2 -o data_file=data.raw df.qcow2 1M && "
             "cp fq.qcow2 nofmt.qcow2",
             dir);
    CHECK_INT(run(cmd), 0);
    struct qcow2_backing b;
    CHECK_INT(read_backing("base.qcow2", &b, msg, sizeof(msg)), 0);
    CHECK(!b.name[0] && !b.format[0] && !b.data_file);
    CHECK_INT(read_backing("fq.qcow2", &b, msg, sizeof(msg)), 0);
    CHECK_STR(b.name, "base.qcow2");
    CHECK_STR(b.format, "qcow2");
    CHECK_INT(read_backing("fr.qcow2", &b, msg, sizeof(msg)), 0);
    CHECK_STR(b.format, "raw");
    CHECK_INT(read_backing("fv2.qcow2", &b, msg, sizeof(msg)), 0);
    CHECK_STR(b.format, "raw");
    CHECK_STR(b.name, "base.raw");
    CHECK_INT(read_backing("big.qcow2", &b, msg, sizeof(msg)), 0);
    CHECK_STR(b.format, "qcow2");
    CHECK_INT(read_backing("df.qcow2", &b, msg, sizeof(msg)), 0);
    CHECK(b.data_file);
    CHECK(!b.name[0]);

    /* A name without a format (qemu-img no longer writes one): the format
     * extension renamed to a type qemu ignores; qemu-img then shows none. */
    snprintf(cmd, sizeof(cmd),
             "cd %s && python3 -c 'd=open(\"nofmt.qcow2\",\"r+b\"); h=d.read(4096); "
             "i=h.index(bytes.fromhex(\"e2792aca\")); d.seek(i); d.write(bytes.fromhex(\"0badf0f0\"))' && "
             "! qemu-img info nofmt.qcow2 | grep -q 'backing file format'",
             dir);
    CHECK_INT(run(cmd), 0);
    CHECK_INT(read_backing("nofmt.qcow2", &b, msg, sizeof(msg)), 0);
    CHECK_STR(b.name, "base.qcow2");
    CHECK_STR(b.format, "");
}

/* A version 3 header (104 bytes, 64 KiB clusters) followed by the given
 * extension bytes and then the backing name "base" (or no backing name
 * when name_off is 0); name_off 1 puts the name right after the exts. */
static void craft_v3(const char *file, const unsigned char *ext, size_t extlen, uint64_t name_off,
                     uint64_t incompat)
{
    unsigned char h[104] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
    if (name_off == 1)
        name_off = 104 + extlen;
    for (int i = 0; i < 8; i++)
        h[8 + i] = (unsigned char)(name_off >> (56 - 8 * i));
    h[19] = name_off ? 4 : 0;
    h[23] = 16;
    for (int i = 0; i < 8; i++)
        h[72 + i] = (unsigned char)(incompat >> (56 - 8 * i));
    h[103] = 104;
    char path[2 * TEST_TMP_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "we");
    fwrite(h, 1, sizeof(h), f);
    fwrite(ext, 1, extlen, f);
    if (name_off) {
        fseek(f, (long)name_off, SEEK_SET);
        fwrite("base", 1, 4, f);
    }
    fclose(f);
}

#define FMT_EXT(a, b, c, d, len) 0xE2, 0x79, 0x2A, 0xCA, 0, 0, 0, len, a, b, c, d, 0, 0, 0, 0

static void test_format_crafted(void)
{
    struct qcow2_backing b;
    char msg[256];
    /* two format extensions: the last one wins, as in qemu */
    static const unsigned char two[] = { FMT_EXT('q', 'c', 'o', 'w', 4), FMT_EXT('r', 'a', 'w', 0, 3),
                                         0, 0, 0, 0, 0, 0, 0, 0 };
    craft_v3("two", two, sizeof(two), 1, 0);
    CHECK_INT(read_backing("two", &b, msg, sizeof(msg)), 0);
    CHECK_STR(b.name, "base");
    CHECK_STR(b.format, "raw");
    /* an unknown extension is skipped; the end marker ends the list */
    static const unsigned char skip[] = { 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 3, 'x', 'y', 'z', 0, 0, 0, 0, 0,
                                          FMT_EXT('r', 'a', 'w', 0, 3), 0, 0, 0, 0, 0, 0, 0, 0,
                                          FMT_EXT('v', 'm', 'd', 'k', 4) };
    craft_v3("skip", skip, sizeof(skip), 1, 0);
    CHECK_INT(read_backing("skip", &b, msg, sizeof(msg)), 0);
    CHECK_STR(b.format, "raw");
    /* an extension running past the backing name */
    static const unsigned char over[] = { FMT_EXT('r', 'a', 'w', 0, 40) };
    craft_v3("over", over, sizeof(over), 1, 0);
    CHECK_INT(read_backing("over", &b, msg, sizeof(msg)), -EINVAL);
    CHECK_STR(msg, "header extension out of range");
    /* a format name longer than qemu keeps, or with a NUL in it */
    unsigned char longf[8 + 24 + 8] = { 0xE2, 0x79, 0x2A, 0xCA, 0, 0, 0, 16 };
    memset(longf + 8, 'q', 16);
    craft_v3("longfmt", longf, sizeof(longf), 1, 0);
    CHECK_INT(read_backing("longfmt", &b, msg, sizeof(msg)), -EINVAL);
    CHECK_STR(msg, "backing format name too long");
    static const unsigned char nul[] = { FMT_EXT('r', 0, 'w', 0, 3), 0, 0, 0, 0, 0, 0, 0, 0 };
    craft_v3("nulfmt", nul, sizeof(nul), 1, 0);
    CHECK_INT(read_backing("nulfmt", &b, msg, sizeof(msg)), -EINVAL);
    /* extensions that run on past what is read, with no end marker before
     * the name: refused, not read in part */
    size_t n = QCOW2_EXT_AREA_MAX + 64;
    unsigned char *pad = calloc(1, n);
    for (size_t off = 0; off + 16 <= n; off += 16) {
        pad[off] = 0x12; /* unknown type 0x12000000, 8 bytes of data */
        pad[off + 7] = 8;
    }
    craft_v3("endless", pad, n, 1, 0);
    CHECK_INT(read_backing("endless", &b, msg, sizeof(msg)), -EINVAL);
    CHECK_STR(msg, "header extensions too large");
    free(pad);
    /* the external data file bit alone */
    craft_v3("dfbit", (const unsigned char *)"\0\0\0\0\0\0\0\0", 8, 0, 1 << 2);
    CHECK_INT(read_backing("dfbit", &b, msg, sizeof(msg)), 0);
    CHECK(b.data_file);
    /* the version 2 header of the older tests has no room for v3 fields */
    craft("v3short", 3, 72, 8, "base.img", 8);
    CHECK_INT(read_backing("v3short", &b, msg, sizeof(msg)), -EINVAL);
}

int main(void)
{
    if (!test_tmp_template(dir, sizeof(dir), "vmstorefs-qcow2hdr") || !mkdtemp(dir)) {
        perror("mkdtemp");
        return 99;
    }
    test_real_images();
    test_refusals();
    test_format_real();
    test_format_crafted();
    char cmd[2 * TEST_TMP_MAX];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run(cmd);
    CHECK_DONE();
}
