/* Unit tests for qimg: argv builders, JSON parsing on output captured from
 * the real qemu-img 7.2 (tests/data/qimg/), finding and running qemu-img.
 * The parts that run qemu-img are skipped with a note when it is absent. */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "qemu/qimg.h"
#include "util/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QEMU_IMG "/usr/bin/qemu-img"
/* What the data steps' builders take (qspec.h): specs, never names. */
#define SPEC "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/proc/self/fd/3\"}}"
#define BSPEC "json:{\"driver\":\"qcow2\",\"file\":\"f1\",\"backing\":null}"
/* Two layers, fds 3 (top) and 4 (its backing, the base). */
#define SPEC2                                                                                     \
    "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/proc/self/fd/3\"},"  \
    "\"backing\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":"               \
    "\"/proc/self/fd/4\"},\"backing\":null}}"

/* ---- helpers ---- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 < cap)
            continue;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb)
            free(buf);
        buf = nb;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* The text of tests/data/qimg/NAME (malloc'd), or NULL (a failed check). */
static char *fixture(const char *name)
{
    const char *dir = getenv("TEST_DATA");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/qimg/%s", dir ? dir : "tests/data", name);
    char *text = read_text(path);
    if (!text) {
        fprintf(stderr, "fixture %s missing (set TEST_DATA)\n", path);
        check_failures++;
    }
    return text;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = s ? strlen(s) : 0, b = strlen(suffix);
    return s && a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Compares a built argv with the expected NULL-terminated list. */
static void expect_argv(int line, const struct qimg_argv *a, const char *const *want)
{
    int n = 0;
    while (want[n])
        n++;
    bool ok = a->n == n && a->v[n] == NULL;
    for (int i = 0; ok && i < n; i++)
        ok = a->v[i] && strcmp(a->v[i], want[i]) == 0;
    if (!ok) {
        fprintf(stderr, "line %d: argv mismatch:\n  got     ", line);
        for (int i = 0; i < a->n && i < QIMG_ARGV_MAX; i++)
            fprintf(stderr, " %s", a->v[i] ? a->v[i] : "(null)");
        fprintf(stderr, " [n=%d]\n  expected", a->n);
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %s", want[i]);
        fprintf(stderr, " [n=%d]\n", n);
        check_failures++;
    }
}
#define EXPECT_ARGV(a, ...)                                \
    do {                                                   \
        const char *const want_[] = { __VA_ARGS__, NULL }; \
        expect_argv(__LINE__, a, want_);                   \
    } while (0)

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs an argv (absolute argv[0]) and reports whether it succeeded. */
static bool run(const char *const *argv)
{
    struct spawn_result res;
    int r = spawn_run(argv, 60, &res);
    if (r != 0)
        fprintf(stderr, "%s failed (%d): %s\n", argv[0], r, res.err);
    spawn_result_free(&res);
    return r == 0;
}

/* ---- argv builders ---- */

static void test_argv_info(void)
{
    struct qimg_argv a;
    memset(&a, 0x55, sizeof(a));
    qimg_argv_info(&a, QEMU_IMG, "/s/vm/disks/vda.qcow2", false);
    EXPECT_ARGV(&a, QEMU_IMG, "info", "-U", "--output=json", "/s/vm/disks/vda.qcow2");
    memset(&a, 0x55, sizeof(a));
    qimg_argv_info(&a, QEMU_IMG, "/img", true);
    EXPECT_ARGV(&a, QEMU_IMG, "info", "-U", "--output=json", "--backing-chain", "/img");
}

static void test_argv_create_overlay(void)
{
    struct qimg_argv a;
    memset(&a, 0x55, sizeof(a));
    qimg_argv_create_overlay(&a, QEMU_IMG, "/s/vm/disks/vda.qcow2", "../snapshots/s1/vda.qcow2",
                             "qcow2");
    EXPECT_ARGV(&a, QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "../snapshots/s1/vda.qcow2",
                "-F", "qcow2", "/s/vm/disks/vda.qcow2");
    memset(&a, 0x55, sizeof(a)); /* nothing may be left from the first call */
    qimg_argv_create_overlay(&a, QEMU_IMG, "/o.qcow2", "/b.raw", "raw");
    EXPECT_ARGV(&a, QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "/b.raw", "-F", "raw",
                "/o.qcow2");
}

/* A clone's copy: progress, no locks on a source a VM may run on (-U),
 * out-of-order writes, and copy offload only where reflinks work. */
static void test_argv_convert(void)
{
    struct qimg_argv a;
    memset(&a, 0x55, sizeof(a));
    qimg_argv_convert_collapse(&a, QEMU_IMG, SPEC, "qcow2", "/dst.qcow2", false);
    EXPECT_ARGV(&a, QEMU_IMG, "convert", "-p", "-U", "-W", "-f", "qcow2", "-O", "qcow2", SPEC,
                "/dst.qcow2");
    CHECK(a.fds.n == 0);
    memset(&a, 0x55, sizeof(a));
    qimg_argv_convert_collapse(&a, QEMU_IMG, SPEC, "qcow2", "/dst.qcow2", true);
    EXPECT_ARGV(&a, QEMU_IMG, "convert", "-p", "-U", "-W", "-C", "-f", "qcow2", "-O", "qcow2",
                SPEC, "/dst.qcow2");
}

/* A data step is never given a name: qemu-img would open whatever stands
 * there when it gets to it. */
static void test_argv_names_refused(void)
{
    struct qimg_argv a;
    CHECK_INT(qimg_argv_convert_collapse(&a, QEMU_IMG, "/src.qcow2", "qcow2", "/d", false),
              -EINVAL);
    CHECK(a.overflow);
    CHECK_INT(qimg_argv_rebase(&a, QEMU_IMG, "/top.qcow2", "", "qcow2"), -EINVAL);
    CHECK_INT(qimg_argv_rebase(&a, QEMU_IMG, SPEC, "../s/vda.qcow2", "qcow2"), -EINVAL);
    CHECK_INT(qimg_argv_rebase_unsafe(&a, QEMU_IMG, "/top.qcow2", "../s/vda.qcow2", "qcow2"),
              -EINVAL);
    CHECK_INT(qimg_argv_commit(&a, QEMU_IMG, "/top.qcow2"), -EINVAL);
    CHECK_INT(qimg_argv_check_leaks(&a, QEMU_IMG, "/top.qcow2"), -EINVAL);
    CHECK(a.overflow);
    int fds[2] = { 7, 9 };
    struct spawn_fds f = { fds, 2 };
    CHECK_INT(qimg_argv_commit(&a, QEMU_IMG, SPEC), 0);
    qimg_argv_pass(&a, &f);
    CHECK(a.fds.fd == fds && a.fds.n == 2);
}

static void test_argv_rebase(void)
{
    struct qimg_argv a;
    memset(&a, 0x55, sizeof(a));
    qimg_argv_rebase(&a, QEMU_IMG, SPEC, BSPEC, "qcow2");
    EXPECT_ARGV(&a, QEMU_IMG, "rebase", "-p", "-f", "qcow2", "-b", BSPEC, "-F", "qcow2", SPEC);
    memset(&a, 0x55, sizeof(a));
    qimg_argv_rebase(&a, QEMU_IMG, SPEC, "", "qcow2");
    EXPECT_ARGV(&a, QEMU_IMG, "rebase", "-p", "-f", "qcow2", "-b", "", SPEC);
}

/* The unsafe forms: only header fields change, the backing file is not
 * opened (it may not stand where the name points yet). */
static void test_argv_unsafe(void)
{
    struct qimg_argv a;
    memset(&a, 0x55, sizeof(a));
    qimg_argv_rebase_unsafe(&a, QEMU_IMG, SPEC, "../P/vda.qcow2", "raw");
    EXPECT_ARGV(&a, QEMU_IMG, "rebase", "-q", "-u", "-f", "qcow2", "-b", "../P/vda.qcow2", "-F",
                "raw", SPEC);
    memset(&a, 0x55, sizeof(a));
    qimg_argv_create_unsafe(&a, QEMU_IMG, "/t/o.qcow2", "../snapshots/S/vda.qcow2", "qcow2",
                            "67108864");
    EXPECT_ARGV(&a, QEMU_IMG, "create", "-q", "-f", "qcow2", "-u", "-b",
                "../snapshots/S/vda.qcow2", "-F", "qcow2", "/t/o.qcow2", "67108864");
    CHECK_INT(qimg_errno("qemu-img: o.qcow2: No space left on device"), -ENOSPC);
    CHECK_INT(qimg_errno("qemu-img: Could not open 'x': Failed to get \"write\" lock"), -EBUSY);
    CHECK_INT(qimg_errno("qemu-img: something else"), -EIO);
    CHECK_INT(qimg_errno("qemu-img commit: Is another process using the image [/s/a.qcow2]?"),
              -EBUSY);
    CHECK_INT(qimg_errno("qemu-img: Could not open 'x': Failed to lock byte 100"), -EBUSY);
    /* A broken image is not a busy one. */
    CHECK_INT(qimg_errno("qemu-img: Could not open 'x': Invalid refcount block offset"), -EIO);
    CHECK(qimg_data_timeout(0) >= 3600 && qimg_data_timeout(100ull << 30) > qimg_data_timeout(0));
}

static void test_argv_commit(void)
{
    struct qimg_argv a;
    memset(&a, 0x55, sizeof(a));
    qimg_argv_commit(&a, QEMU_IMG, SPEC);
    EXPECT_ARGV(&a, QEMU_IMG, "commit", "-p", "-f", "qcow2", "-d", SPEC);
}

static void test_argv_check_leaks(void)
{
    struct qimg_argv a;
    memset(&a, 0x55, sizeof(a));
    qimg_argv_check_leaks(&a, QEMU_IMG, SPEC);
    EXPECT_ARGV(&a, QEMU_IMG, "check", "-r", "leaks", "-f", "qcow2", "--output=json", SPEC);
}

/* What qemu-img 7.2 check --output=json prints: each count only when it
 * is not 0. */
static void test_parse_check(void)
{
    struct qimg_check c;
    char msg[256] = "";
    CHECK_INT(qimg_parse_check("{ \"image-end-offset\": 327680, \"total-clusters\": 16384, "
                               "\"check-errors\": 0, \"leaks-fixed\": 8192, \"filename\": "
                               "\"o.qcow2\", \"format\": \"qcow2\" }\n",
                               &c, msg, sizeof(msg)),
              0);
    CHECK(c.leaks_fixed == 8192 && c.leaks == 0 && c.corruptions == 0 && c.check_errors == 0);
    CHECK_INT(qimg_parse_check("{ \"check-errors\": 0, \"leaks\": 19, \"corruptions\": 2 }", &c,
                               msg, sizeof(msg)),
              0);
    CHECK(c.leaks == 19 && c.corruptions == 2 && c.leaks_fixed == 0);
    /* Not a check result: no check-errors, or not JSON. */
    CHECK_INT(qimg_parse_check("{ \"leaks\": 19 }", &c, msg, sizeof(msg)), -EINVAL);
    CHECK_INT(qimg_parse_check("No errors were found on the image.", &c, msg, sizeof(msg)),
              -EINVAL);
}

/* An argument past the limit is never dropped: the vector is marked,
 * every later add fails too, and it stays NULL-terminated. */
static void test_argv_overflow(void)
{
    struct qimg_argv a;
    CHECK_INT(qimg_argv_commit(&a, QEMU_IMG, SPEC), 0);
    CHECK(!a.overflow);
    int added = 0, r = 0;
    while (added < 2 * QIMG_ARGV_MAX && (r = qimg_argv_add(&a, "-x")) == 0)
        added++;
    CHECK_INT(r, -E2BIG);
    CHECK(a.overflow);
    CHECK_INT(a.n, QIMG_ARGV_MAX - 1);
    CHECK(a.v[a.n] == NULL);
    CHECK_INT(qimg_argv_add(&a, "-y"), -E2BIG);
    /* a builder reusing a vector starts clean */
    CHECK_INT(qimg_argv_info(&a, QEMU_IMG, "/img", false), 0);
    CHECK(!a.overflow);
}

/* ---- parsing real output ---- */

/* Parses tests/data/qimg/NAME into INFO; false (a failed check) when the
 * fixture is missing or does not parse. */
static bool parse_fixture(const char *name, struct qimg_info *info)
{
    char *json = fixture(name), msg[256] = "";
    if (!json)
        return false;
    int r = qimg_parse_info(json, info, msg, sizeof(msg));
    free(json);
    CHECK_INT(r, 0);
    return r == 0;
}

static void test_parse_standalone(void)
{
    struct qimg_info info;
    if (!parse_fixture("standalone.json", &info))
        return;
    CHECK_STR(info.format, "qcow2");
    CHECK_INT(info.virtual_size, 67108864);
    CHECK_INT(info.actual_size, 200704);
    CHECK(!info.dirty);
    CHECK(info.filename && info.filename[0] == '/');
    CHECK(ends_with(info.filename, "/base.qcow2"));
    CHECK(info.backing_filename == NULL);
    CHECK(info.full_backing_filename == NULL);
    CHECK_STR(info.backing_format, "");
    qimg_info_clear(&info);
    CHECK(info.filename == NULL);
}

static void test_parse_overlay(void)
{
    struct qimg_info info;
    if (!parse_fixture("overlay.json", &info))
        return;
    CHECK_STR(info.format, "qcow2");
    CHECK_INT(info.virtual_size, 67108864);
    CHECK(ends_with(info.filename, "/mid.qcow2"));
    /* as stored (relative) and as resolved (absolute) */
    CHECK_STR(info.backing_filename, "base.qcow2");
    CHECK(info.full_backing_filename && info.full_backing_filename[0] == '/');
    CHECK(ends_with(info.full_backing_filename, "/base.qcow2"));
    CHECK_STR(info.backing_format, "qcow2");
    qimg_info_clear(&info);
}

static void test_parse_raw(void)
{
    struct qimg_info info;
    if (!parse_fixture("raw.json", &info))
        return;
    CHECK_STR(info.format, "raw");
    CHECK_INT(info.virtual_size, 16777216);
    CHECK_INT(info.actual_size, 4096);
    CHECK(ends_with(info.filename, "/disk.raw"));
    CHECK(info.backing_filename == NULL);
    CHECK_STR(info.backing_format, "");
    qimg_info_clear(&info);
}

static void test_parse_chain(void)
{
    char *json = fixture("chain.json"), msg[256] = "";
    if (!json)
        return;
    struct qimg_info *chain = NULL;
    size_t n = 0;
    CHECK_INT(qimg_parse_chain(json, &chain, &n, msg, sizeof(msg)), 0);
    CHECK_INT(n, 3);
    if (chain && n == 3) {
        CHECK(ends_with(chain[0].filename, "/top.qcow2"));
        CHECK_STR(chain[0].backing_filename, "mid.qcow2");
        CHECK_STR(chain[0].backing_format, "qcow2");
        CHECK(ends_with(chain[1].filename, "/mid.qcow2"));
        CHECK_STR(chain[1].backing_filename, "base.qcow2");
        CHECK(ends_with(chain[2].filename, "/base.qcow2"));
        CHECK(chain[2].backing_filename == NULL);
        CHECK_STR(chain[2].backing_format, "");
        for (size_t i = 0; i < n; i++) {
            CHECK_STR(chain[i].format, "qcow2");
            CHECK_INT(chain[i].virtual_size, 67108864);
        }
    }
    qimg_chain_free(chain, n);
    free(json);
}

static void test_parse_dirty(void)
{
    char msg[256] = "";
    struct qimg_info info;
    CHECK_INT(qimg_parse_info("{\"format\": \"qcow2\", \"virtual-size\": 1, \"dirty-flag\": true}",
                              &info, msg, sizeof(msg)),
              0);
    CHECK(info.dirty);
    CHECK_INT(info.actual_size, 0);
    CHECK(info.filename == NULL);
    qimg_info_clear(&info);
}

/* ---- refusals ---- */

/* parse_info must refuse the fixture with -EINVAL, leave out empty and
 * say something. */
static void expect_info_refused(int line, const char *name, const char *json)
{
    char msg[256] = "";
    struct qimg_info info;
    memset(&info, 0x55, sizeof(info));
    int r = qimg_parse_info(json, &info, msg, sizeof(msg));
    if (r != -EINVAL || info.filename || info.backing_filename || info.format[0] || !msg[0]) {
        fprintf(stderr, "line %d: %s: parse_info = %d, msg \"%s\"\n", line, name, r, msg);
        check_failures++;
    }
    if (r == 0)
        qimg_info_clear(&info);
}

static void info_refuses_fixture(int line, const char *name)
{
    char *json = fixture(name);
    if (json)
        expect_info_refused(line, name, json);
    free(json);
}

static void expect_chain_refused(int line, const char *name, const char *json)
{
    char msg[256] = "";
    static struct qimg_info sentinel;
    struct qimg_info *chain = &sentinel;
    size_t n = 99;
    int r = qimg_parse_chain(json, &chain, &n, msg, sizeof(msg));
    if (r != -EINVAL || chain != NULL || n != 0 || !msg[0]) {
        fprintf(stderr, "line %d: %s: parse_chain = %d, n %zu, msg \"%s\"\n", line, name, r, n,
                msg);
        check_failures++;
    }
    if (r == 0)
        qimg_chain_free(chain, n);
}

static void chain_refuses_fixture(int line, const char *name)
{
    char *json = fixture(name);
    if (json)
        expect_chain_refused(line, name, json);
    free(json);
}

static void test_bad_info(void)
{
    info_refuses_fixture(__LINE__, "bad-truncated.json");
    info_refuses_fixture(__LINE__, "bad-trailing.json");
    info_refuses_fixture(__LINE__, "bad-no-format.json");
    info_refuses_fixture(__LINE__, "bad-negative-size.json");
    info_refuses_fixture(__LINE__, "chain.json"); /* an array, not an object */
    info_refuses_fixture(__LINE__, "bad-empty-array.json");
    expect_info_refused(__LINE__, "empty", "");
    expect_info_refused(__LINE__, "null", "null");
    expect_info_refused(__LINE__, "two objects",
                        "{\"format\":\"raw\",\"virtual-size\":1}{\"format\":\"raw\"}");
    expect_info_refused(__LINE__, "no size", "{\"format\":\"raw\"}");
    expect_info_refused(__LINE__, "string size", "{\"format\":\"raw\",\"virtual-size\":\"1\"}");
    expect_info_refused(__LINE__, "numeric format", "{\"format\":7,\"virtual-size\":1}");
    expect_info_refused(__LINE__, "long format",
                        "{\"format\":\"qcow2qcow2qcow2qcow2qcow2qcow2qcow2qcow2\","
                        "\"virtual-size\":1}");
}

static void test_trailing_whitespace_ok(void)
{
    char msg[256] = "";
    struct qimg_info info;
    CHECK_INT(qimg_parse_info("{\"format\":\"raw\",\"virtual-size\":5}\n \t\r\n", &info, msg,
                              sizeof(msg)),
              0);
    CHECK_INT(info.virtual_size, 5);
    qimg_info_clear(&info);
}

static void test_bad_chain(void)
{
    chain_refuses_fixture(__LINE__, "bad-empty-array.json");
    chain_refuses_fixture(__LINE__, "standalone.json"); /* an object, not an array */
    chain_refuses_fixture(__LINE__, "bad-truncated.json");
    expect_chain_refused(__LINE__, "trailing", "[{\"format\":\"raw\",\"virtual-size\":1}] x");
    /* a bad element after good ones: refused as a whole, nothing leaks */
    expect_chain_refused(__LINE__, "bad element",
                         "[{\"format\":\"qcow2\",\"virtual-size\":1,\"filename\":\"a\","
                         "\"backing-filename\":\"b\"},"
                         "{\"format\":\"raw\",\"virtual-size\":-1,\"filename\":\"b\"}]");
    expect_chain_refused(__LINE__, "non-object element", "[1]");
}

/* ---- finding and running qemu-img ---- */

static void test_find_configured(const char *tmp)
{
    char out[PATH_MAX] = "", msg[512] = "";
    CHECK_INT(qimg_find(QEMU_IMG, out, sizeof(out), msg, sizeof(msg)), 0);
    char want[PATH_MAX];
    CHECK(realpath(QEMU_IMG, want) != NULL);
    CHECK_STR(out, want);

    /* a relative path through a symlink comes out absolute and resolved */
    char lnk[PATH_MAX], cwd[PATH_MAX];
    snprintf(lnk, sizeof(lnk), "%s/qi-link", tmp);
    CHECK_INT(symlink(QEMU_IMG, lnk), 0);
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
    CHECK_INT(chdir(tmp), 0);
    out[0] = '\0';
    CHECK_INT(qimg_find("./qi-link", out, sizeof(out), msg, sizeof(msg)), 0);
    CHECK(out[0] == '/');
    CHECK_STR(out, want);
    CHECK_INT(chdir(cwd), 0);
}

static void test_find_missing(const char *tmp)
{
    char out[PATH_MAX], msg[512] = "", bad[PATH_MAX];
    snprintf(bad, sizeof(bad), "%s/no-such-qemu-img", tmp);
    CHECK_INT(qimg_find(bad, out, sizeof(out), msg, sizeof(msg)), -ENOENT);
    CHECK(strstr(msg, bad) != NULL);

    /* not executable, and a directory: refused the same way */
    char plain[PATH_MAX];
    snprintf(plain, sizeof(plain), "%s/plain", tmp);
    int fd = open(plain, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    msg[0] = '\0';
    CHECK_INT(qimg_find(plain, out, sizeof(out), msg, sizeof(msg)), -ENOENT);
    CHECK(strstr(msg, plain) != NULL);
    CHECK(qimg_find(tmp, out, sizeof(out), msg, sizeof(msg)) < 0);
}

static void test_find_broken(const char *tmp)
{
    /* executable, but `--version` fails: not a usable qemu-img */
    char fake[PATH_MAX], out[PATH_MAX], msg[512] = "";
    snprintf(fake, sizeof(fake), "%s/broken-qemu-img", tmp);
    FILE *f = fopen(fake, "we");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("#!/bin/sh\nexit 1\n", f);
    fclose(f);
    CHECK_INT(chmod(fake, 0755), 0);
    CHECK(qimg_find(fake, out, sizeof(out), msg, sizeof(msg)) < 0);
    CHECK(strstr(msg, fake) != NULL);
}

static void test_find_in_path(const char *tmp)
{
    char out[PATH_MAX] = "", msg[512] = "";
    const char *old = getenv("PATH");
    char *saved = old ? strdup(old) : NULL;

    CHECK_INT(setenv("PATH", tmp, 1), 0);
    CHECK_INT(qimg_find(NULL, out, sizeof(out), msg, sizeof(msg)), -ENOENT);
    CHECK(strstr(msg, "qemu-utils") != NULL);

    /* relative and empty PATH entries are not searched; /usr/bin is */
    CHECK_INT(setenv("PATH", "::.:relative:/usr/bin", 1), 0);
    msg[0] = '\0';
    CHECK_INT(qimg_find(NULL, out, sizeof(out), msg, sizeof(msg)), 0);
    CHECK_STR(out, QEMU_IMG);

    if (saved)
        setenv("PATH", saved, 1);
    else
        unsetenv("PATH");
    free(saved);
}

static void test_info_real(const char *tmp)
{
    char base[PATH_MAX], top[PATH_MAX], msg[512] = "";
    snprintf(base, sizeof(base), "%s/base.qcow2", tmp);
    snprintf(top, sizeof(top), "%s/top.qcow2", tmp);
    const char *mk[] = { QEMU_IMG, "create", "-q", "-f", "qcow2", base, "8M", NULL };
    if (!run(mk)) {
        check_failures++;
        return;
    }
    struct qimg_argv a;
    qimg_argv_create_overlay(&a, QEMU_IMG, top, "base.qcow2", "qcow2");
    CHECK(run(a.v));

    struct qimg_info info;
    CHECK_INT(qimg_info(QEMU_IMG, top, &info, msg, sizeof(msg)), 0);
    CHECK_STR(info.format, "qcow2");
    CHECK_INT(info.virtual_size, 8 << 20);
    CHECK_STR(info.filename, top);
    CHECK_STR(info.backing_filename, "base.qcow2");
    CHECK_STR(info.full_backing_filename, base);
    CHECK_STR(info.backing_format, "qcow2");
    qimg_info_clear(&info);

    /* rebase onto "" makes it standalone; the chain given by descriptor */
    int fds[2] = { open(top, O_RDWR | O_CLOEXEC), open(base, O_RDONLY | O_CLOEXEC) };
    struct spawn_fds f = { fds, 2 };
    CHECK_INT(qimg_argv_rebase(&a, QEMU_IMG, SPEC2, "", "qcow2"), 0);
    qimg_argv_pass(&a, &f);
    CHECK_INT(qimg_run(&a, 60, "rebase", msg, sizeof(msg)), 0);
    close(fds[0]);
    close(fds[1]);
    CHECK_INT(qimg_info(QEMU_IMG, top, &info, msg, sizeof(msg)), 0);
    CHECK(info.backing_filename == NULL);
    CHECK_STR(info.backing_format, "");
    qimg_info_clear(&info);
}

static void test_info_failure(const char *tmp)
{
    char missing[PATH_MAX], msg[512] = "";
    snprintf(missing, sizeof(missing), "%s/missing.qcow2", tmp);
    struct qimg_info info;
    CHECK(qimg_info(QEMU_IMG, missing, &info, msg, sizeof(msg)) < 0);
    CHECK(info.filename == NULL);
    /* qemu-img's own last line, which names the file */
    CHECK(strstr(msg, "qemu-img") != NULL);
    CHECK(strstr(msg, missing) != NULL);
    CHECK(strchr(msg, '\n') == NULL);
}

/* Leaked clusters as a killed writer leaves them (refcounts nothing
 * references): an internal snapshot whose table entry is dropped (the
 * header's snapshot count, at byte 60, set to 0). qemu-img check -r
 * leaks frees them; a second run finds none. */
static void test_repair_leaks(const char *tmp)
{
    char img[PATH_MAX], msg[512] = "";
    snprintf(img, sizeof(img), "%s/leaky.qcow2", tmp);
    const char *mk[] = { QEMU_IMG, "create", "-q", "-f", "qcow2", img, "8M", NULL };
    const char *snap[] = { QEMU_IMG, "snapshot", "-c", "s", img, NULL };
    if (!run(mk) || !run(snap)) {
        check_failures++;
        return;
    }
    int fd = open(img, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "\0\0\0\0", 4, 60) == 4);
    if (fd >= 0)
        close(fd);
    struct qimg_check c;
    int ifd = open(img, O_RDONLY | O_CLOEXEC);
    struct spawn_fds f = { &ifd, 1 };
    CHECK_INT(qimg_repair_leaks(QEMU_IMG, SPEC, &f, 60, &c, msg, sizeof(msg)), 0);
    CHECK(c.leaks_fixed > 0);
    CHECK_INT(qimg_repair_leaks(QEMU_IMG, SPEC, &f, 60, &c, msg, sizeof(msg)), 0);
    CHECK(c.leaks_fixed == 0);
    close(ifd);
    /* No such descriptor passed: qemu-img's complaint, an error. */
    CHECK(qimg_repair_leaks(QEMU_IMG, SPEC, NULL, 60, &c, msg, sizeof(msg)) < 0);
    /* qemu-img names the spec: cut short in the message. */
    CHECK(strstr(msg, "Could not open 'json:{...}'") != NULL);
    /* A name: refused before anything runs. */
    CHECK_INT(qimg_repair_leaks(QEMU_IMG, img, NULL, 60, &c, msg, sizeof(msg)), -EINVAL);
}

static void test_with_qemu_img(void)
{
    if (access(QEMU_IMG, X_OK) != 0) {
        fprintf(stderr, "note: %s not found, skipping qimg_find/qimg_info checks\n", QEMU_IMG);
        return;
    }
    char tmp[TEST_TMP_MAX];
    if (!test_tmp_template(tmp, sizeof(tmp), "vmstorefs-qimg") || !mkdtemp(tmp)) {
        perror("mkdtemp");
        check_failures++;
        return;
    }
    test_find_configured(tmp);
    test_find_missing(tmp);
    test_find_broken(tmp);
    test_find_in_path(tmp);
    test_info_real(tmp);
    test_info_failure(tmp);
    test_repair_leaks(tmp);
    rm_tree(tmp);
}

/* /bin/true runs and exits 0: only what it prints tells it is no qemu-img. */
static void test_is_version(void)
{
    CHECK(qimg_is_version("qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7)\nCopyright ...\n"));
    CHECK(!qimg_is_version(""));
    CHECK(!qimg_is_version(NULL));
    CHECK(!qimg_is_version("qemu-io version 7.2.22\n"));
    CHECK(!qimg_is_version("usage: qemu-img version\n"));
    char msg[256], out[4096];
    int r = qimg_find("/bin/true", out, sizeof(out), msg, sizeof(msg));
    CHECK_INT(r, -ENOEXEC);
    CHECK(strstr(msg, "not qemu-img") != NULL);
}

static int npct;
static double lastpct;
static void note_pct(double pct, void *arg)
{
    (void)arg;
    npct++;
    lastpct = pct;
}

/* qemu-img -p output arrives in arbitrary chunks: a figure split across
 * two reads is still read once, whole; noise is not a figure. */
static void test_progress_parse(void)
{
    struct qimg_progress p = { .on_pct = note_pct };
    const char out[] = "    (0.00/100%)\r    (12.5";
    npct = 0;
    qimg_progress_feed(&p, out, strlen(out));
    CHECK_INT(npct, 1);
    CHECK(lastpct == 0.0);
    qimg_progress_feed(&p, "0/100%)\r", 8);
    CHECK_INT(npct, 2);
    CHECK(lastpct == 12.5);
    qimg_progress_feed(&p, "(oops) (200/100%) (50/10%) (", 28);
    CHECK_INT(npct, 2);
    qimg_progress_feed(&p, "100.00/100%)\n", 13);
    CHECK_INT(npct, 3);
    CHECK(p.pct == 100.0);
}

static bool stop_now(void *arg)
{
    return ++*(int *)arg > 2;
}

/* A cancelled run kills the child at once and says -EINTR; progress is
 * fed from the child's stdout while it runs. */
static void test_run_watched(void)
{
    struct qimg_argv a = { .n = 0 };
    qimg_argv_add(&a, "/bin/sh");
    qimg_argv_add(&a, "-c");
    qimg_argv_add(&a, "printf '(10.00/100%%)\\r'; sleep 0.05; printf '(55.00/100%%)\\r'");
    struct qimg_progress p = { .on_pct = note_pct };
    char msg[256];
    npct = 0;
    CHECK_INT(qimg_run_watched(&a, 10, "test", &p, NULL, NULL, msg, sizeof(msg)), 0);
    CHECK_INT(npct, 2);
    CHECK(p.pct == 55.0);
    struct qimg_argv b = { .n = 0 };
    qimg_argv_add(&b, "/bin/sleep");
    qimg_argv_add(&b, "30");
    int calls = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_INT(qimg_run_watched(&b, 0, "sleep", NULL, stop_now, &calls, msg, sizeof(msg)), -EINTR);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Returned before the sleep could end by itself: it was stopped, not
     * waited for (its own length, not a measure of speed). */
    CHECK(t1.tv_sec - t0.tv_sec < 30);
    CHECK(strstr(msg, "interrupted") != NULL);
    /* Killed by someone else, it says nothing: the signal is named. */
    struct qimg_argv k = { .n = 0 };
    qimg_argv_add(&k, "/bin/sh");
    qimg_argv_add(&k, "-c");
    qimg_argv_add(&k, "kill -9 $$");
    CHECK_INT(qimg_run(&k, 10, "rebase", msg, sizeof(msg)), -EIO);
    CHECK_STR(msg, "qemu-img rebase: killed by signal 9");
}

int main(void)
{
    test_progress_parse();
    test_run_watched();
    test_is_version();
    test_argv_info();
    test_argv_create_overlay();
    test_argv_convert();
    test_argv_names_refused();
    test_argv_rebase();
    test_argv_unsafe();
    test_argv_commit();
    test_argv_check_leaks();
    test_argv_overflow();
    test_parse_check();
    test_parse_standalone();
    test_parse_overlay();
    test_parse_raw();
    test_parse_chain();
    test_parse_dirty();
    test_bad_info();
    test_trailing_whitespace_ok();
    test_bad_chain();
    test_with_qemu_img();
    CHECK_DONE();
}
