/* Unit tests for chain: backing chains of images made by qemu-img in a
 * store, each kind of chain that leaves the store refused with a reason
 * naming the image, loops and depth bounded, raw bases accepted, and the
 * header cache answering a second walk (exit 77 without qemu-img). */
#include "config.h"

#include "qemu/chain.h"
#include "qemu/qspec.h"
#include "check.h"
#include "fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[] = "/tmp/vmstorefs-chain-XXXXXX";
static struct store st;

/* STORE/rel, in one of four static buffers. */
static const char *in_store(const char *rel)
{
    static char bufs[4][2 * PATH_MAX];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s/%s", st.root, rel);
    return b;
}

/* qemu-img ARGS... in STORE/dir (no shell); a failure counts, said. */
#define QIMG_IN(dir, ...) qimg_in(dir, (char *const[]){ "qemu-img", __VA_ARGS__, NULL })
static void qimg_in(const char *dir, char *const argv[])
{
    const char *where = in_store(dir);
    int r = fs_mkdir_p(where) == 0 ? fs_spawn(argv, where, NULL, 0, false) : -1;
    if (r != 0) {
        fprintf(stderr, "qemu-img %s in %s failed (%d)\n", argv[1], where, r);
        check_failures++;
    }
}

/* STORE/rel, made: a file of len zero bytes, or holding text when given;
 * a failure counts, said. */
static void put_file(const char *dir, const char *rel, off_t len, const char *text)
{
    const char *path = in_store(rel);
    int fd = fs_mkdir_p(in_store(dir)) == 0
                 ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                 : -1;
    bool ok = fd >= 0 && (text ? write(fd, text, strlen(text)) == (ssize_t)strlen(text)
                               : ftruncate(fd, len) == 0);
    if (fd >= 0)
        close(fd);
    if (!ok) {
        fprintf(stderr, "cannot make %s: %s\n", path, strerror(errno));
        check_failures++;
    }
}

/* A call that sets errno (link, symlink, rename) succeeded, or counts. */
static void must(int r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", what, strerror(errno));
        check_failures++;
    }
}

/* qemu-img create in STORE/dir (so relative names resolve from there);
 * backing "" = standalone; -u: the backing file need not exist. */
static void image(const char *dir, const char *file, const char *backing, const char *fmt)
{
    char *argv[16] = { "qemu-img", "create", "-q", "-f", "qcow2" };
    int n = 5;
    if (backing[0]) {
        argv[n++] = "-b";
        argv[n++] = (char *)backing;
    }
    if (fmt[0]) {
        argv[n++] = "-F";
        argv[n++] = (char *)fmt;
    }
    argv[n++] = "-u";
    argv[n++] = (char *)file;
    argv[n++] = "1M";
    argv[n] = NULL;
    const char *where = in_store(dir);
    int r = fs_mkdir_p(where) == 0 ? fs_spawn(argv, where, NULL, 0, false) : -1;
    if (r != 0) {
        fprintf(stderr, "qemu-img create %s/%s (backing \"%s\" \"%s\") failed (%d)\n", where, file,
                backing, fmt, r);
        check_failures++;
    }
}

/* qemu-img cannot write a backing name without a format any more: the
 * format extension of an image made with one is renamed to a type qemu
 * does not know (and ignores), which is what an old qemu-img left. */
static void drop_format(const char *rel)
{
    /* The extension's magic (0xe2792aca) in the header's first 4 KiB. */
    const char *path = in_store(rel);
    unsigned char h[4096];
    int fd = open(path, O_RDWR | O_CLOEXEC);
    ssize_t n = fd >= 0 ? pread(fd, h, sizeof(h), 0) : -1;
    unsigned char *at = n > 0 ? memmem(h, (size_t)n, "\xe2\x79\x2a\xca", 4) : NULL;
    bool ok = at && pwrite(fd, "\x0b\xad\xf0\xf0", 4, at - h) == 4;
    if (fd >= 0)
        close(fd);
    /* qemu-img sees the backing file and no format of it (one qemu-img
     * info, asked both). */
    char info[8192];
    char *argv[] = { "qemu-img", "info", (char *)path, NULL };
    ok = ok && fs_spawn(argv, NULL, info, sizeof(info), false) == 0 &&
         strstr(info, "backing file:") && !strstr(info, "backing file format");
    if (!ok) {
        fprintf(stderr, "%s: the backing format extension not dropped\n", path);
        check_failures++;
    }
}

static void expect_backing(int line, const char *rel, int want, const char *name, const char *fmt,
                           const char *path, const char *why)
{
    struct backing_info b;
    char msg[MSG_MAX] = "";
    memset(&b, 'x', sizeof(b));
    int r = chain_backing(&st, in_store(rel), &b, msg, sizeof(msg));
    bool ok = r == want;
    if (ok && want == 0)
        ok = strcmp(b.name, name) == 0 && strcmp(b.format, fmt) == 0 &&
             strcmp(b.path, path[0] ? in_store(path) : "") == 0;
    if (ok && want < 0)
        ok = strstr(msg, why) && strstr(msg, in_store(rel));
    if (!ok) {
        fprintf(stderr, "line %d: chain_backing(%s) = %d (want %d) name \"%.40s\" fmt \"%.16s\" "
                        "path \"%.200s\" msg \"%s\"\n",
                line, rel, r, want, b.name, b.format, b.path, msg);
        check_failures++;
    }
}
#define EXPECT_BACKING(rel, want, name, fmt, path, why) \
    expect_backing(__LINE__, rel, want, name, fmt, path, why)

/* chain_walk of rel: want, and for 0 the links "path:format,..." relative
 * to the store; for an error, a reason containing why and naming the
 * image `who`. */
static void expect_walk(int line, const char *rel, int want, const char *links, const char *why,
                        const char *who)
{
    struct chain c;
    char msg[MSG_MAX] = "", got[8192] = "";
    int r = chain_walk(&st, in_store(rel), &c, msg, sizeof(msg));
    size_t rl = strlen(st.root) + 1;
    for (size_t i = 0; r == 0 && i < c.n && strlen(got) < sizeof(got) - PATH_MAX; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s:%s", i ? "," : "",
                 c.links[i].path + rl, c.links[i].format);
    bool ok = r == want;
    if (ok && want == 0)
        ok = strcmp(got, links) == 0;
    if (ok && want < 0)
        ok = c.n == 0 && c.links == NULL && strstr(msg, why) && strstr(msg, in_store(who));
    if (!ok) {
        fprintf(stderr, "line %d: chain_walk(%s) = %d (want %d) links \"%s\" msg \"%s\"\n", line,
                rel, r, want, got, msg);
        check_failures++;
    }
    chain_free(&c);
}
#define EXPECT_WALK(rel, want, links, why, who) expect_walk(__LINE__, rel, want, links, why, who)

static void test_good_chains(void)
{
    image("vm/snapshots/s1", "vda.qcow2", "", "");
    image("vm/snapshots/s2", "vda.qcow2", "../s1/vda.qcow2", "qcow2");
    image("vm/disks", "vda.qcow2", "../snapshots/s2/vda.qcow2", "qcow2");
    EXPECT_BACKING("vm/snapshots/s1/vda.qcow2", 0, "", "", "", "");
    EXPECT_BACKING("vm/disks/vda.qcow2", 0, "../snapshots/s2/vda.qcow2", "qcow2",
                   "vm/snapshots/s2/vda.qcow2", "");
    EXPECT_WALK("vm/disks/vda.qcow2", 0,
                "vm/disks/vda.qcow2:qcow2,vm/snapshots/s2/vda.qcow2:qcow2,"
                "vm/snapshots/s1/vda.qcow2:qcow2",
                "", "");
    EXPECT_WALK("vm/snapshots/s1/vda.qcow2", 0, "vm/snapshots/s1/vda.qcow2:qcow2", "", "");

    /* a raw base under a qcow2 overlay ends the chain (whatever it holds) */
    put_file("vm/snapshots/r", "vm/snapshots/r/base.raw", 1048576, NULL);
    image("vm/snapshots/r2", "vda.qcow2", "../r/base.raw", "raw");
    EXPECT_BACKING("vm/snapshots/r2/vda.qcow2", 0, "../r/base.raw", "raw",
                   "vm/snapshots/r/base.raw", "");
    EXPECT_WALK("vm/snapshots/r2/vda.qcow2", 0,
                "vm/snapshots/r2/vda.qcow2:qcow2,vm/snapshots/r/base.raw:raw", "", "");

    /* "." and "//" change nothing */
    image("vm/snapshots/s3", "vda.qcow2", ".//../s1/./vda.qcow2", "qcow2");
    EXPECT_BACKING("vm/snapshots/s3/vda.qcow2", 0, ".//../s1/./vda.qcow2", "qcow2",
                   "vm/snapshots/s1/vda.qcow2", "");
    /* Another VM's image is not this VM's to read (its owner may be
     * another): refused, so no plan of vm needs to look at vm2. */
    image("vm2/disks", "vda.qcow2", "../../vm/snapshots/s1/vda.qcow2", "qcow2");
    EXPECT_BACKING("vm2/disks/vda.qcow2", -EACCES, "", "", "", "leaves the VM's directory");
    EXPECT_WALK("vm2/disks/vda.qcow2", -EACCES, "", "leaves the VM's directory",
                "vm2/disks/vda.qcow2");
}

static void test_refused_names(void)
{
    char name[PATH_MAX];
    image("bad/abs", "vda.qcow2", "/nonexistent/outside.raw", "raw");
    EXPECT_BACKING("bad/abs/vda.qcow2", -EACCES, "", "", "", "an absolute name");
    /* ../../ out of the store, even when it comes back in */
    image("bad/esc", "vda.qcow2", "../../../outside.qcow2", "qcow2");
    EXPECT_BACKING("bad/esc/vda.qcow2", -EACCES, "", "", "", "leaves the VM's directory");
    snprintf(name, sizeof(name), "../../../%s/vm/snapshots/s1/vda.qcow2", strrchr(st.root, '/') + 1);
    image("bad/back", "vda.qcow2", name, "qcow2");
    EXPECT_BACKING("bad/back/vda.qcow2", -EACCES, "", "", "", "leaves the VM's directory");
    /* through the mount, "x/.." may pass a symbolic link (current) */
    image("bad/updown", "vda.qcow2", "../json/../json/vda.qcow2", "qcow2");
    EXPECT_BACKING("bad/updown/vda.qcow2", -EACCES, "", "", "", "climbs back out");
    image("bad/json", "vda.qcow2",
          "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"/nonexistent/outside.raw\"}}",
          "raw");
    EXPECT_BACKING("bad/json/vda.qcow2", -EACCES, "", "", "", "a json: name");
    image("bad/nbd", "vda.qcow2", "nbd://127.0.0.1:10809/export", "raw");
    EXPECT_BACKING("bad/nbd/vda.qcow2", -EACCES, "", "", "", "a protocol name");
    image("bad/nbdunix", "vda.qcow2", "nbd:unix:/tmp/sock", "raw");
    EXPECT_BACKING("bad/nbdunix/vda.qcow2", -EACCES, "", "", "", "a protocol name");
    image("bad/nofmt", "vda.qcow2", "../../vm/snapshots/s1/vda.qcow2", "qcow2");
    drop_format("bad/nofmt/vda.qcow2");
    EXPECT_BACKING("bad/nofmt/vda.qcow2", -EACCES, "", "", "", "no recorded backing format");
    image("bad/vmdk", "vda.qcow2", "../../vm/snapshots/s1/vda.qcow2", "vmdk");
    EXPECT_BACKING("bad/vmdk/vda.qcow2", -EACCES, "", "", "", "\"vmdk\", not qcow2 or raw");
    /* an external data file is another file qemu opens by name */
    QIMG_IN("bad/data", "create", "-q", "-f", "qcow2", "-o", "data_file=d.raw", "vda.qcow2", "1M");
    EXPECT_BACKING("bad/data/vda.qcow2", -EACCES, "", "", "", "external data file");
    /* the refusals hold anywhere down a chain, named by the image */
    image("bad/top", "vda.qcow2", "../json/vda.qcow2", "qcow2");
    EXPECT_BACKING("bad/top/vda.qcow2", 0, "../json/vda.qcow2", "qcow2", "bad/json/vda.qcow2", "");
    EXPECT_WALK("bad/top/vda.qcow2", -EACCES, "", "a json: name", "bad/json/vda.qcow2");
    EXPECT_WALK("bad/nofmt/vda.qcow2", -EACCES, "", "no recorded backing format",
                "bad/nofmt/vda.qcow2");
}

static void test_broken_files(void)
{
    /* not a qcow2 image, at the top or where a qcow2 was recorded */
    put_file("br/txt", "br/txt/vda.qcow2", 0, "text\n");
    EXPECT_BACKING("br/txt/vda.qcow2", -EINVAL, "", "", "", "not a qcow2 image");
    EXPECT_WALK("br/txt/vda.qcow2", -EINVAL, "", "not a qcow2 image", "br/txt/vda.qcow2");
    put_file("br/r", "br/r/base.raw", 1048576, NULL);
    image("br/onraw", "vda.qcow2", "../r/base.raw", "qcow2");
    EXPECT_WALK("br/onraw/vda.qcow2", -EINVAL, "", "not a qcow2 image", "br/r/base.raw");
    /* missing */
    image("br/miss", "vda.qcow2", "nope.qcow2", "qcow2");
    EXPECT_WALK("br/miss/vda.qcow2", -ENOENT, "", "br/miss/nope.qcow2 is missing",
                "br/miss/vda.qcow2");
    /* a symbolic link inside the store, to an image inside the store */
    image("br/link", "vda.qcow2", "l.qcow2", "qcow2");
    must(symlink("../../vm/snapshots/s1/vda.qcow2", in_store("br/link/l.qcow2")), "ln -s");
    EXPECT_WALK("br/link/vda.qcow2", -EACCES, "", "a symbolic link", "br/link/l.qcow2");
    /* loops: a -> b -> a, and a -> a, and a hard link back */
    image("br/loop", "a.qcow2", "b.qcow2", "qcow2");
    image("br/loop", "b.qcow2", "a.qcow2", "qcow2");
    EXPECT_BACKING("br/loop/a.qcow2", 0, "b.qcow2", "qcow2", "br/loop/b.qcow2", "");
    EXPECT_WALK("br/loop/a.qcow2", -ELOOP, "", "loops back to", "br/loop/b.qcow2");
    image("br/self", "a.qcow2", "", ""); /* create refuses a.qcow2 on itself; rebase does not */
    QIMG_IN("br/self", "rebase", "-q", "-u", "-b", "a.qcow2", "-F", "qcow2", "a.qcow2");
    EXPECT_WALK("br/self/a.qcow2", -ELOOP, "", "loops back to", "br/self/a.qcow2");
    image("br/hard", "a.qcow2", "b.qcow2", "qcow2");
    must(link(in_store("br/hard/a.qcow2"), in_store("br/hard/b.qcow2")), "ln");
    EXPECT_WALK("br/hard/a.qcow2", -ELOOP, "", "loops back to", "br/hard/a.qcow2");
}

/* CHAIN_MAX_DEPTH images may chain; one more is refused. The images are
 * copies of one made by qemu-img with the backing name patched, cut to
 * their first 4 KiB (all a header read needs). */
static void test_depth(void)
{
    image("deep", "t", "b0001.qcow2", "qcow2");
    char last[16], t[4096], b[4096], name[32];
    snprintf(last, sizeof(last), "b%04d.qcow2", CHAIN_MAX_DEPTH);
    image("deep", last, "", "");
    snprintf(name, sizeof(name), "deep/%s", last);
    CHECK_INT(truncate(in_store(name), 4096), 0);
    /* b0000 .. b(MAX-1): t's first 4 KiB with every "b0001" made b(i+1). */
    int fd = open(in_store("deep/t"), O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && pread(fd, t, sizeof(t), 0) == (ssize_t)sizeof(t));
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < CHAIN_MAX_DEPTH; i++) {
        char next[8];
        snprintf(next, sizeof(next), "b%04d", i + 1);
        memcpy(b, t, sizeof(b));
        for (char *p = b; (p = memmem(p, sizeof(b) - (size_t)(p - b), "b0001", 5)); p += 5)
            memcpy(p, next, 5);
        snprintf(name, sizeof(name), "deep/b%04d.qcow2", i);
        fd = open(in_store(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(fd >= 0 && write(fd, b, sizeof(b)) == (ssize_t)sizeof(b));
        if (fd >= 0)
            close(fd);
    }
    struct chain c;
    char msg[MSG_MAX] = "";
    CHECK_INT(chain_walk(&st, in_store("deep/b0001.qcow2"), &c, msg, sizeof(msg)), 0);
    CHECK_INT(c.n, CHAIN_MAX_DEPTH);
    chain_free(&c);
    CHECK_INT(chain_walk(&st, in_store("deep/b0000.qcow2"), &c, msg, sizeof(msg)), -ELOOP);
    CHECK(strstr(msg, "deeper than") != NULL);
    CHECK(c.n == 0 && c.links == NULL);
}

/* A second walk reads no header; a changed image is read again. A header
 * changed less than a timestamp tick ago is never kept (it could change
 * again unseen): the images here must have settled first. */
static void test_cache(void)
{
    unsigned long h0, m0, h1, m1, h2, m2;
    struct chain c;
    char msg[MSG_MAX];
    sleep(3);
    chain_cache_clear();
    chain_cache_stats(&h0, &m0);
    CHECK_INT(chain_walk(&st, in_store("vm/disks/vda.qcow2"), &c, msg, sizeof(msg)), 0);
    chain_free(&c);
    chain_cache_stats(&h1, &m1);
    CHECK_INT(m1 - m0, 3);
    CHECK_INT(chain_walk(&st, in_store("vm/disks/vda.qcow2"), &c, msg, sizeof(msg)), 0);
    chain_free(&c);
    chain_cache_stats(&h2, &m2);
    CHECK_INT(h2 - h1, 3);
    CHECK_INT(m2 - m1, 0);
    /* rebased in place: the new name is seen at once */
    QIMG_IN("vm/disks", "rebase", "-q", "-u", "-f", "qcow2", "-b", "../snapshots/s1/vda.qcow2", "-F",
            "qcow2", "vda.qcow2");
    EXPECT_WALK("vm/disks/vda.qcow2", 0, "vm/disks/vda.qcow2:qcow2,vm/snapshots/s1/vda.qcow2:qcow2",
                "", "");
    QIMG_IN("vm/disks", "rebase", "-q", "-u", "-f", "qcow2", "-b", "/nonexistent/outside.raw", "-F",
            "raw", "vda.qcow2");
    EXPECT_WALK("vm/disks/vda.qcow2", -EACCES, "", "an absolute name", "vm/disks/vda.qcow2");
    /* Just changed: read every time until it settles. */
    unsigned long h3, m3, h4, m4;
    QIMG_IN("vm/disks", "rebase", "-q", "-u", "-f", "qcow2", "-b", "../snapshots/s1/vda.qcow2", "-F",
            "qcow2", "vda.qcow2");
    struct backing_info b;
    chain_cache_stats(&h3, &m3);
    CHECK_INT(chain_backing(&st, in_store("vm/disks/vda.qcow2"), &b, msg, sizeof(msg)), 0);
    CHECK_INT(chain_backing(&st, in_store("vm/disks/vda.qcow2"), &b, msg, sizeof(msg)), 0);
    chain_cache_stats(&h4, &m4);
    CHECK_INT(h4 - h3, 0);
    CHECK_INT(m4 - m3, 2);
}

/* Walked from an open descriptor, the first link is the file open there,
 * whatever stands at its path now. */
static void test_walk_fd(void)
{
    char msg[MSG_MAX];
    struct chain c;
    QIMG_IN("vm/disks", "create", "-q", "-f", "qcow2", "-b", "../snapshots/s1/vda.qcow2", "-F",
            "qcow2", "fd.qcow2");
    QIMG_IN("vm/disks", "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F", "raw",
            "evil.qcow2", "64M");
    int fd = open(in_store("vm/disks/fd.qcow2"), O_RDONLY);
    CHECK(fd >= 0);
    must(rename(in_store("vm/disks/evil.qcow2"), in_store("vm/disks/fd.qcow2")), "mv");
    CHECK_INT(chain_walk(&st, in_store("vm/disks/fd.qcow2"), &c, msg, sizeof(msg)), -EACCES);
    CHECK_INT(chain_walk_fd(&st, fd, in_store("vm/disks/fd.qcow2"), &c, msg, sizeof(msg)), 0);
    CHECK(c.n >= 2);
    chain_free(&c);
    close(fd);
}

/* chain_pin keeps each link open, and the spec names those descriptors
 * (3 + i in the child), every backing given, never a path. */
static void test_pin_spec(void)
{
    char msg[MSG_MAX];
    struct chain c;
    /* whatever the caller's struct held before (clonecopy.c's is on the
     * stack): chain_pin says nothing holds the locks, so qemu-img takes
     * its own */
    memset(&c, 0xff, sizeof(c));
    image("pin/snapshots/a", "vda.qcow2", "", "");
    image("pin/snapshots/b", "vda.qcow2", "../a/vda.qcow2", "qcow2");
    image("pin/disks", "vda.qcow2", "../snapshots/b/vda.qcow2", "qcow2");
    CHECK_INT(chain_pin(&st, in_store("pin/disks/vda.qcow2"), &c, msg, sizeof(msg)), 0);
    CHECK_INT(c.n, 3);
    CHECK(!c.locked);
    for (size_t i = 0; c.fds && i < c.n; i++) {
        struct stat a, b;
        CHECK(fstat(c.fds[i], &a) == 0 && stat(c.links[i].path, &b) == 0 && a.st_ino == b.st_ino);
    }
    char *spec = NULL, *bspec = NULL;
    struct spawn_fds fds;
    CHECK_INT(qspec_chain(&c, 0, true, &spec, &fds), 0);
    CHECK(fds.fd == c.fds && fds.n == 3);
    CHECK_STR(spec, "json:{\"driver\":\"qcow2\",\"node-name\":\"n0\",\"file\":{\"driver\":\"file\","
                    "\"node-name\":\"f0\",\"filename\":\"/proc/self/fd/3\"},\"backing\":{\"driver\":"
                    "\"qcow2\",\"node-name\":\"n1\",\"file\":{\"driver\":\"file\",\"node-name\":\"f1\","
                    "\"filename\":\"/proc/self/fd/4\"},\"backing\":{\"driver\":\"qcow2\",\"node-name\":"
                    "\"n2\",\"file\":{\"driver\":\"file\",\"node-name\":\"f2\",\"filename\":"
                    "\"/proc/self/fd/5\"},\"backing\":null}}}");
    free(spec);
    /* held by the daemon (a merge): every file node turns qemu's locking
     * off, and nothing else changes */
    c.locked = true;
    CHECK_INT(qspec_chain(&c, 0, true, &spec, &fds), 0);
    CHECK_STR(spec, "json:{\"driver\":\"qcow2\",\"node-name\":\"n0\",\"file\":{\"driver\":\"file\","
                    "\"node-name\":\"f0\",\"filename\":\"/proc/self/fd/3\",\"locking\":\"off\"},"
                    "\"backing\":{\"driver\":\"qcow2\",\"node-name\":\"n1\",\"file\":{\"driver\":"
                    "\"file\",\"node-name\":\"f1\",\"filename\":\"/proc/self/fd/4\",\"locking\":"
                    "\"off\"},\"backing\":{\"driver\":\"qcow2\",\"node-name\":\"n2\",\"file\":{"
                    "\"driver\":\"file\",\"node-name\":\"f2\",\"filename\":\"/proc/self/fd/5\","
                    "\"locking\":\"off\"},\"backing\":null}}}");
    free(spec);
    c.locked = false;
    /* one layer alone (a leak repair), from the second */
    CHECK_INT(qspec_chain(&c, 1, false, &spec, &fds), 0);
    CHECK(fds.fd == c.fds + 1 && fds.n == 1);
    CHECK_STR(spec, "json:{\"driver\":\"qcow2\",\"node-name\":\"n0\",\"file\":{\"driver\":\"file\","
                    "\"node-name\":\"f0\",\"filename\":\"/proc/self/fd/3\"},\"backing\":null}");
    free(spec);
    /* a pull's new backing: the open node, with its own backing as open */
    CHECK_INT(qspec_backing(&c, 0, 1, &bspec), 0);
    CHECK_STR(bspec, "json:{\"driver\":\"qcow2\",\"file\":\"f1\",\"backing\":\"n2\"}");
    free(bspec);
    CHECK_INT(qspec_backing(&c, 0, 2, &bspec), 0);
    CHECK_STR(bspec, "json:{\"driver\":\"qcow2\",\"file\":\"f2\",\"backing\":null}");
    free(bspec);
    CHECK_INT(qspec_backing(&c, 0, 3, &bspec), -EINVAL);
    /* a commit's window (vm/commitchunks.c): a target window from layer
     * 1 names the chain's own descriptors from 4 on, under its prefix */
    CHECK_INT(qspec_window(&c, 1, 4194304, 1048576, "t", &spec), 0);
    CHECK_STR(spec, "json:{\"driver\":\"raw\",\"node-name\":\"tw\",\"offset\":4194304,"
                    "\"size\":1048576,\"file\":{\"driver\":\"qcow2\",\"node-name\":\"tn0\","
                    "\"file\":{\"driver\":\"file\",\"node-name\":\"tf0\",\"filename\":"
                    "\"/proc/self/fd/4\"},\"backing\":{\"driver\":\"qcow2\",\"node-name\":\"tn1\","
                    "\"file\":{\"driver\":\"file\",\"node-name\":\"tf1\",\"filename\":"
                    "\"/proc/self/fd/5\"},\"backing\":null}}}");
    free(spec);
    CHECK_INT(qspec_window(&c, 3, 0, 1, "s", &spec), -EINVAL);
    chain_free(&c);
    /* a raw base ends the spec, as raw, with no backing option */
    CHECK_INT(chain_pin(&st, in_store("vm/snapshots/r2/vda.qcow2"), &c, msg, sizeof(msg)), 0);
    CHECK_INT(qspec_chain(&c, 0, true, &spec, &fds), 0);
    CHECK(spec && strstr(spec, ",\"backing\":{\"driver\":\"raw\",\"node-name\":\"n1\",\"file\":"
                               "{\"driver\":\"file\",\"node-name\":\"f1\",\"filename\":"
                               "\"/proc/self/fd/4\"}}}") != NULL);
    free(spec);
    CHECK_INT(qspec_backing(&c, 0, 1, &bspec), 0);
    CHECK_STR(bspec, "json:{\"driver\":\"raw\",\"file\":\"f1\"}");
    free(bspec);
    chain_free(&c);
    /* not pinned: no spec */
    CHECK_INT(chain_walk(&st, in_store("pin/disks/vda.qcow2"), &c, msg, sizeof(msg)), 0);
    CHECK_INT(qspec_chain(&c, 0, true, &spec, &fds), -EINVAL);
    chain_free(&c);
}

int main(void)
{
    if (system("command -v qemu-img >/dev/null") != 0) {
        fprintf(stderr, "qemu-img not installed\n");
        return 77;
    }
    char msg[MSG_MAX];
    if (!mkdtemp(tmp) || store_check(&st, tmp, msg, sizeof(msg)) < 0) {
        perror(tmp);
        return 99;
    }
    test_good_chains();
    test_refused_names();
    test_broken_files();
    test_depth();
    test_cache();
    test_walk_fd();
    test_pin_spec();
    store_close(&st);
    fs_rm_rf(tmp);
    log_once_reset();
    CHECK_DONE();
}
