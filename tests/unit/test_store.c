/* Unit tests for store: checking and preparing a store, path builders,
 * enumeration, backing-name parsing, snapshot times, and deriving the
 * current snapshot from real qemu-img images (skipped, exit 77, when
 * qemu-img is missing and nothing else failed). */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "util/log.h"
#include "util/names.h"
#include "qemu/qimg.h"
#include "util/spawn.h"
#include "store/imagelock.h"
#include "store/store.h"
#include "vm/current.h"
#include "vm/clonelist.h"
#include "store/vmlock.h"
#include "meta/cloneid.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmp[TEST_TMP_MAX];

/* ---- helpers ---- */

/* tmp/<printf-formatted rel>, in a static buffer per slot. */
static const char *at(int slot, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *at(int slot, const char *fmt, ...)
{
    static char bufs[4][PATH_MAX];
    char rel[PATH_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    snprintf(bufs[slot], sizeof(bufs[slot]), "%s/%s", tmp, rel);
    return bufs[slot];
}

static void mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "mkdir %s: %s\n", buf, strerror(errno));
        check_failures++;
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        check_failures++;
        return;
    }
    fputs(text, f);
    fclose(f);
}

static char *read_small(const char *path, char *buf, size_t bufsz)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, bufsz - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Collects enumerated names, sorted, as "a,b,c". */
struct names {
    char text[1024];
    int calls;
    int stop_after; /* return stop_ret after this many calls (0: never) */
    int stop_ret;
};

static int collect(const char *name, void *p)
{
    struct names *n = p;
    n->calls++;
    /* insertion into the comma list, keeping it sorted */
    char items[32][80];
    int count = 0;
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", n->text);
    char *save = NULL;
    for (char *w = strtok_r(copy, ",", &save); w && count < 31; w = strtok_r(NULL, ",", &save))
        snprintf(items[count++], sizeof(items[0]), "%s", w);
    int pos = count;
    for (int i = 0; i < count; i++) {
        if (strcmp(name, items[i]) < 0) {
            pos = i;
            break;
        }
    }
    memmove(items[pos + 1], items[pos], sizeof(items[0]) * (size_t)(count - pos));
    snprintf(items[pos], sizeof(items[0]), "%s", name);
    count++;
    n->text[0] = '\0';
    for (int i = 0; i < count; i++) {
        if (i)
            strcat(n->text, ",");
        strcat(n->text, items[i]);
    }
    return n->stop_after && n->calls >= n->stop_after ? n->stop_ret : 0;
}

/* Runs qemu-img with the given arguments (NULL-terminated). */
static bool qemu_img(const struct store *s, ...)
{
    const char *argv[24];
    int n = 0;
    argv[n++] = s->qemu_img;
    va_list ap;
    va_start(ap, s);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 23)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    struct spawn_result res;
    int r = spawn_run(argv, 60, &res);
    if (r != 0) {
        fprintf(stderr, "qemu-img %s failed: %s\n", argv[1], res.err);
        check_failures++;
    }
    spawn_result_free(&res);
    return r == 0;
}

/* ---- store_check / store_prepare_meta ---- */

/* STORE/REL made and checked (and prepared when PREPARE); the caller
 * store_close()s it. */
static void open_store(struct store *s, const char *rel, bool prepare)
{
    char msg[MSG_MAX] = "";
    mkdir_p(at(0, "%s", rel));
    CHECK_INT(store_check(s, at(0, "%s", rel), msg, sizeof(msg)), 0);
    if (prepare)
        CHECK_INT(store_prepare_meta(s, msg, sizeof(msg)), 0);
}

static void test_check_missing(void)
{
    struct store s;
    char msg[MSG_MAX] = "";
    const char *p = at(0, "no-such-store");
    CHECK_INT(store_check(&s, p, msg, sizeof(msg)), -ENOENT);
    CHECK(strstr(msg, p) != NULL);
}

static void test_check_file(void)
{
    struct store s;
    char msg[MSG_MAX] = "";
    const char *p = at(0, "a-file");
    write_file(p, "x\n");
    CHECK_INT(store_check(&s, p, msg, sizeof(msg)), -ENOTDIR);
    CHECK(strstr(msg, p) != NULL);
}

static void test_check_dir(void)
{
    struct store s;
    char msg[MSG_MAX] = "", want[PATH_MAX];
    mkdir_p(at(0, "st1"));
    CHECK(realpath(at(0, "st1"), want) != NULL);

    memset(&s, 'x', sizeof(s));
    CHECK_INT(store_check(&s, at(0, "/st1/../st1/./"), msg, sizeof(msg)), 0);
    CHECK_STR(s.root, want);

    CHECK_INT(symlink("st1", at(0, "st1-link")), 0);
    CHECK_INT(store_check(&s, at(0, "st1-link"), msg, sizeof(msg)), 0);
    CHECK_STR(s.root, want);

    /* store_check writes nothing */
    CHECK(!is_dir(at(0, "st1/.vmstorefs")));
}

static void test_prepare_meta(void)
{
    struct store s;
    char msg[MSG_MAX] = "", buf[256];
    open_store(&s, "st2", true);
    CHECK(is_dir(at(0, "st2/.vmstorefs")));
    CHECK(is_dir(at(0, "st2/.vmstorefs/journal")));
    CHECK(is_dir(at(0, "st2/.vmstorefs/tmp")));
    CHECK(is_dir(at(0, "st2/.vmstorefs/locks")));
    CHECK_STR(read_small(at(0, "st2/.vmstorefs/format"), buf, sizeof(buf)), "vmstorefs-store 1\n");
    CHECK(access(at(0, "st2/.vmstorefs/format.tmp"), F_OK) < 0);
    /* and the prepared store passes the check */
    store_close(&s);
    CHECK_INT(store_check(&s, at(0, "st2"), msg, sizeof(msg)), 0);
    store_close(&s);
}

static void test_prepare_twice(void)
{
    struct store s;
    char msg[MSG_MAX] = "", buf[256];
    open_store(&s, "st3", true);
    /* mark the file: a rewrite would lose the mark and the inode */
    const char *fmt = at(1, "st3/.vmstorefs/format");
    write_file(fmt, "vmstorefs-store 1\n# marker\n");
    struct stat before, after;
    CHECK_INT(stat(fmt, &before), 0);
    CHECK_INT(store_prepare_meta(&s, msg, sizeof(msg)), 0);
    CHECK_INT(stat(fmt, &after), 0);
    CHECK_INT(after.st_ino, before.st_ino);
    CHECK_STR(read_small(fmt, buf, sizeof(buf)), "vmstorefs-store 1\n# marker\n");
    CHECK(is_dir(at(0, "st3/.vmstorefs/locks")));
    store_close(&s);
}

/* prepare_meta on STORE (already prepared once) must refuse with a
 * message naming REL and saying WHY, and create nothing. */
static void expect_meta_refused(int line, const char *store, const char *rel, int err,
                                const char *why)
{
    struct store s;
    char msg[MSG_MAX] = "";
    CHECK_INT(store_check(&s, at(0, "%s", store), msg, sizeof(msg)), 0);
    int r = store_prepare_meta(&s, msg, sizeof(msg));
    if (r != err || !strstr(msg, rel) || !strstr(msg, why) || !strstr(msg, "refusing")) {
        fprintf(stderr, "line %d: %s/%s: prepare = %d, msg \"%s\", expected %d and \"%s\"\n", line,
                store, rel, r, msg, err, why);
        check_failures++;
    }
    store_close(&s);
}
#define EXPECT_META_REFUSED(store, rel, err, why) \
    expect_meta_refused(__LINE__, store, rel, err, why)

/* journal/, tmp/ and locks/ that are links, files, someone else's or
 * writable by others are refused, not written through; a refused store
 * is left as it was (the missing locks/ is not made). */
static void test_meta_untrusted(void)
{
    static const char *const subs[] = { "journal", "tmp", "locks" };
    struct store s;
    mkdir_p(at(0, "elsewhere"));
    for (size_t i = 0; i < 3; i++) {
        open_store(&s, "mu", true);
        store_close(&s);
        const char *p = at(1, "mu/.vmstorefs/%s", subs[i]);
        CHECK_INT(rmdir(p), 0);
        CHECK_INT(symlink(at(2, "elsewhere"), p), 0);
        if (i != 2)
            CHECK_INT(rmdir(at(2, "mu/.vmstorefs/locks")), 0);
        EXPECT_META_REFUSED("mu", subs[i], -ELOOP, "is a symbolic link, not a directory");
        if (i != 2)
            CHECK(access(at(2, "mu/.vmstorefs/locks"), F_OK) < 0);
        CHECK_INT(unlink(p), 0);
        write_file(p, "");
        EXPECT_META_REFUSED("mu", subs[i], -ENOTDIR, "is not a directory");
        CHECK_INT(unlink(p), 0);
        mkdir_p(p);
        CHECK_INT(chmod(p, 0777), 0);
        EXPECT_META_REFUSED("mu", subs[i], -EPERM, "writable by group or others (mode 0777)");
        CHECK_INT(chmod(p, 0775), 0);
        EXPECT_META_REFUSED("mu", subs[i], -EPERM, "writable by group or others (mode 0775)");
        CHECK_INT(chmod(p, 0755), 0);
        if (geteuid() == 0) {
            CHECK_INT(chown(p, 65534, 65534), 0);
            EXPECT_META_REFUSED("mu", subs[i], -EPERM, "owned by uid 65534, not by the daemon's uid 0");
            CHECK_INT(chown(p, 0, 0), 0);
        }
        open_store(&s, "mu", true);
        store_close(&s);
    }
    if (geteuid() != 0)
        fprintf(stderr, "note: not root; the wrong-owner checks were skipped\n");
    CHECK(access(at(0, "elsewhere/format"), F_OK) < 0);

    /* .vmstorefs itself: a link, or writable by others */
    mkdir_p(at(0, "ml"));
    CHECK_INT(symlink(at(1, "elsewhere"), at(2, "ml/.vmstorefs")), 0);
    char msg[MSG_MAX] = "";
    CHECK_INT(store_check(&s, at(0, "ml"), msg, sizeof(msg)), -ELOOP); /* its format file */
    CHECK(strstr(msg, "symbolic link") != NULL);
    CHECK_INT(unlink(at(0, "ml/.vmstorefs")), 0);
    mkdir_p(at(0, "ml/.vmstorefs"));
    CHECK_INT(chmod(at(0, "ml/.vmstorefs"), 0757), 0);
    EXPECT_META_REFUSED("ml", ".vmstorefs", -EPERM, "writable by group or others");
    CHECK(access(at(0, "ml/.vmstorefs/journal"), F_OK) < 0);
}

/* A first prepare that runs out of inodes half way leaves no .vmstorefs,
 * whole or half made, and nothing beside it. Needs a tiny tmpfs: root. */
static void test_meta_half_made(void)
{
    const char *dir = at(3, "tiny");
    mkdir_p(dir);
    /* root, the aside directory, journal/, tmp/: locks/ is one too many */
    if (geteuid() != 0 || mount("tiny", dir, "tmpfs", 0, "nr_inodes=4,mode=0755") < 0) {
        fprintf(stderr, "note: cannot mount a tmpfs (%s); half-made check skipped\n",
                geteuid() ? "not root" : strerror(errno));
        return;
    }
    struct store s;
    char msg[MSG_MAX] = "";
    CHECK_INT(store_check(&s, dir, msg, sizeof(msg)), 0);
    int r = store_prepare_meta(&s, msg, sizeof(msg));
    CHECK_INT(r, -ENOSPC);
    CHECK(strstr(msg, "No space left") != NULL);
    store_close(&s);
    DIR *d = opendir(dir);
    struct dirent *de;
    int left = 0;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            fprintf(stderr, "left behind after a failed prepare: %s\n", de->d_name);
            left++;
        }
    }
    if (d)
        closedir(d);
    CHECK_INT(left, 0);
    CHECK_INT(umount(dir), 0);
}

static void test_newer_format(void)
{
    struct store s;
    char msg[MSG_MAX] = "";
    mkdir_p(at(0, "st4/.vmstorefs"));
    write_file(at(0, "st4/.vmstorefs/format"), "vmstorefs-store 99\n");
    CHECK_INT(store_check(&s, at(0, "st4"), msg, sizeof(msg)), -EPROTONOSUPPORT);
    CHECK(strstr(msg, "newer") != NULL);
    CHECK(strstr(msg, "99") != NULL);
}

static void test_garbage_format(void)
{
    static const char *const bad[] = { "garbage\n",
                                       "",
                                       "vmstorefs-store\n",
                                       "vmstorefs-store 0\n",
                                       "vmstorefs-store -1\n",
                                       "VMSTOREFS-STORE 1\n" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct store s;
        char msg[MSG_MAX] = "";
        mkdir_p(at(0, "st5/.vmstorefs"));
        write_file(at(0, "st5/.vmstorefs/format"), bad[i]);
        int r = store_check(&s, at(0, "st5"), msg, sizeof(msg));
        if (r != -EINVAL || !strstr(msg, "format")) {
            fprintf(stderr, "format file \"%s\": store_check = %d, msg \"%s\"\n", bad[i], r, msg);
            check_failures++;
        }
    }
}

/* ---- path builders ---- */

static void test_paths(void)
{
    struct store s;
    snprintf(s.root, sizeof(s.root), "/srv/store");
    char out[PATH_MAX], small[24];
    CHECK_INT(store_vm_path(&s, "web1", NULL, out, sizeof(out)), 0);
    CHECK_STR(out, "/srv/store/web1");
    CHECK_INT(store_vm_path(&s, "web1", "", out, sizeof(out)), 0);
    CHECK_STR(out, "/srv/store/web1");
    CHECK_INT(store_vm_path(&s, "web1", "domain.xml", out, sizeof(out)), 0);
    CHECK_STR(out, "/srv/store/web1/domain.xml");
    CHECK_INT(store_disk_path(&s, "web1", "vda", out, sizeof(out)), 0);
    CHECK_STR(out, "/srv/store/web1/disks/vda.qcow2");
    CHECK_INT(store_snap_path(&s, "web1", "s1", NULL, out, sizeof(out)), 0);
    CHECK_STR(out, "/srv/store/web1/snapshots/s1");
    CHECK_INT(store_snap_path(&s, "web1", "s1", "snapshot.xml", out, sizeof(out)), 0);
    CHECK_STR(out, "/srv/store/web1/snapshots/s1/snapshot.xml");
    CHECK_INT(store_snap_image_path(&s, "web1", "s1", "vdb", out, sizeof(out)), 0);
    CHECK_STR(out, "/srv/store/web1/snapshots/s1/vdb.qcow2");

    CHECK_INT(store_disk_path(&s, "web1", "vda", small, sizeof(small)), -ENAMETOOLONG);
    CHECK_INT(store_snap_image_path(&s, "web1", "s1", "vda", small, sizeof(small)), -ENAMETOOLONG);
    CHECK_INT(store_vm_path(&s, "web1", NULL, small, 16), 0);
    CHECK_INT(store_vm_path(&s, "web1", NULL, small, 15), -ENAMETOOLONG);
}

/* ---- enumeration ---- */

static void make_enum_store(struct store *s)
{
    open_store(s, "en", true);
    static const char *const dirs[] = {
        "web1/disks/vdd.qcow2",
        "web1/snapshots/s1",
        "web1/snapshots/s2",
        "web1/snapshots/.h",
        "web1/snapshots/bad name",
        "db-2",
        "bad name",
        "-x",
        ".hidden",
        "web1/snapshots/s1/vdc.qcow2",
    };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        mkdir_p(at(0, "en/%s", dirs[i]));
    static const char *const files[] = {
        "afile",
        "web1/disks/vda.qcow2",
        "web1/disks/vdb.qcow2",
        "web1/disks/notes.txt",
        "web1/disks/VDA.qcow2",
        "web1/disks/.vde.qcow2",
        "web1/disks/vdf.qcow2.bak",
        "web1/snapshots/x",
        "web1/snapshots/s1/vda.qcow2",
        "web1/snapshots/s1/snapshot.xml",
        "web1/snapshots/s1/vdb.raw",
        "web1/snapshots/s2/vdb.qcow2",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        write_file(at(0, "en/%s", files[i]), "");
    CHECK_INT(symlink("vda.qcow2", at(0, "en/web1/disks/vdc.qcow2")), 0);
    CHECK_INT(symlink("web1", at(0, "en/linkvm")), 0);
    CHECK_INT(symlink("s1", at(0, "en/web1/snapshots/s3")), 0);
    CHECK_INT(symlink("vda.qcow2", at(0, "en/web1/snapshots/s1/vde.qcow2")), 0);
}

static void test_list_vms(const struct store *s)
{
    struct names n = { 0 };
    CHECK_INT(store_list_vms(s, collect, &n), 0);
    CHECK_STR(n.text, "db-2,web1");
}

static void test_list_disks(const struct store *s)
{
    struct names n = { 0 };
    CHECK_INT(store_list_disks(s, "web1", collect, &n), 0);
    CHECK_STR(n.text, "vda,vdb");
    struct names none = { 0 };
    CHECK_INT(store_list_disks(s, "db-2", collect, &none), 0);
    CHECK_STR(none.text, "");
    CHECK_INT(store_list_disks(s, "no-such-vm", collect, &none), 0);
    CHECK_INT(none.calls, 0);
}

static void test_list_snapshots(const struct store *s)
{
    struct names n = { 0 };
    CHECK_INT(store_list_snapshots(s, "web1", collect, &n), 0);
    CHECK_STR(n.text, "s1,s2");
    struct names none = { 0 };
    CHECK_INT(store_list_snapshots(s, "db-2", collect, &none), 0);
    CHECK_INT(none.calls, 0);
}

static void test_list_snap_images(const struct store *s)
{
    struct names n = { 0 };
    CHECK_INT(store_list_snap_images(s, "web1", "s1", collect, &n), 0);
    CHECK_STR(n.text, "vda");
    struct names n2 = { 0 };
    CHECK_INT(store_list_snap_images(s, "web1", "s2", collect, &n2), 0);
    CHECK_STR(n2.text, "vdb");
    struct names none = { 0 };
    CHECK_INT(store_list_snap_images(s, "web1", "nope", collect, &none), 0);
    CHECK_INT(none.calls, 0);
}

static void test_list_stops(const struct store *s)
{
    struct names n = { .stop_after = 1, .stop_ret = 1 };
    CHECK_INT(store_list_vms(s, collect, &n), 0);
    CHECK_INT(n.calls, 1);
    struct names e = { .stop_after = 1, .stop_ret = -EIO };
    CHECK_INT(store_list_disks(s, "web1", collect, &e), -EIO);
    CHECK_INT(e.calls, 1);
}

static void test_exists(const struct store *s)
{
    CHECK(store_snap_exists(s, "web1", "s1"));
    CHECK(!store_snap_exists(s, "web1", ".h"));
    CHECK(!store_snap_exists(s, "web1", "x"));
    CHECK(!store_snap_exists(s, "web1", "nope"));
    CHECK(!store_snap_exists(s, "db-2", "s1"));
}

static void test_enumeration(void)
{
    struct store s;
    make_enum_store(&s);
    test_list_vms(&s);
    test_list_disks(&s);
    test_list_snapshots(&s);
    test_list_snap_images(&s);
    test_list_stops(&s);
    test_exists(&s);
    store_close(&s);
}

/* ---- backing names and snapshot times ---- */

static void test_parse_active_backing(void)
{
    char snap[NAME_MAX_LEN + 1];
    strcpy(snap, "untouched");
    CHECK(current_parse_backing("../snapshots/s1/vda.qcow2", "vda", snap, sizeof(snap)));
    CHECK_STR(snap, "s1");
    CHECK(current_parse_backing("../snapshots/before-upgrade_2.0/nvme0n1.qcow2", "nvme0n1",
                                     snap, sizeof(snap)));
    CHECK_STR(snap, "before-upgrade_2.0");

    static const char *const bad[] = {
        "../snapshots/s1/vdb.qcow2", /* another disk's image */
        "/srv/store/vm/snapshots/s1/vda.qcow2",
        "../snapshots/../x/vda.qcow2",
        "../snapshots/.h/vda.qcow2",
        "../snapshots/-s/vda.qcow2",
        "../snapshots/s1/../s2/vda.qcow2",
        "../snapshots//vda.qcow2",
        "../snapshots/vda.qcow2",
        "../snapshots/s1/vda.qcow2/",
        "../snapshots/s1/vda.qcow2.bak",
        "../snapshots/s1/x/vda.qcow2",
        "snapshots/s1/vda.qcow2",
        "./../snapshots/s1/vda.qcow2",
        "../snapshots/bad name/vda.qcow2",
        "../disks/vda.qcow2",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (current_parse_backing(bad[i], "vda", snap, sizeof(snap))) {
            fprintf(stderr, "current_parse_backing(\"%s\") accepted (%s)\n", bad[i], snap);
            check_failures++;
        }
    }
    /* a snapshot name longer than the caller's buffer is refused */
    char tiny[3];
    CHECK(!current_parse_backing("../snapshots/s12/vda.qcow2", "vda", tiny, sizeof(tiny)));
    CHECK(current_parse_backing("../snapshots/s1/vda.qcow2", "vda", tiny, sizeof(tiny)));
}

static void test_snap_ctime(void)
{
    struct store s;
    char msg[MSG_MAX] = "";
    mkdir_p(at(0, "ct/vm/snapshots/s1"));
    mkdir_p(at(0, "ct/vm/snapshots/s2"));
    mkdir_p(at(0, "ct/vm/snapshots/s3"));
    CHECK_INT(store_check(&s, at(0, "ct"), msg, sizeof(msg)), 0);
    write_file(at(0, "ct/vm/snapshots/s1/snapshot.xml"),
               "<domainsnapshot><name>s1</name><creationTime>1700000042</creationTime>"
               "</domainsnapshot>\n");
    write_file(at(0, "ct/vm/snapshots/s2/snapshot.xml"), "<domainsnapshot><name>s2</name>");
    int64_t t = -1;
    CHECK_INT(store_snap_ctime(&s, "vm", "s1", &t), 0);
    CHECK_INT(t, 1700000042);
    t = -1;
    CHECK_INT(store_snap_ctime(&s, "vm", "s2", &t), -EINVAL);
    CHECK_INT(store_snap_ctime(&s, "vm", "s3", &t), -ENOENT);
    CHECK_INT(t, -1);
}

/* store_snap_info: a private copy, from the cache while the file is
 * unchanged, parsed again once it is replaced or rewritten. */
static void test_snap_info_cache(void)
{
    struct store s;
    char msg[MSG_MAX] = "";
    mkdir_p(at(0, "sc/vm/snapshots/s1"));
    mkdir_p(at(0, "sc/vm/snapshots/bad"));
    CHECK_INT(store_check(&s, at(0, "sc"), msg, sizeof(msg)), 0);
    const char *xml = at(1, "sc/vm/snapshots/s1/snapshot.xml");
    write_file(xml, "<domainsnapshot><name>s1</name><description>first</description>"
                    "<creationTime>1700000001</creationTime><parent><name>s0</name></parent>"
                    "<disks><disk name='vda'/><disk name='vdb' snapshot='no'/></disks>"
                    "</domainsnapshot>\n");
    store_snap_cache_clear();
    unsigned long h0, m0, h, m;
    store_snap_cache_stats(&h0, &m0);
    struct snap_info a, b;
    CHECK_INT(store_snap_info(&s, "vm", "s1", &a, msg, sizeof(msg)), 0);
    store_snap_cache_stats(&h, &m);
    CHECK_INT(m - m0, 1);
    CHECK_STR(a.name, "s1");
    CHECK_STR(a.parent, "s0");
    CHECK_STR(a.description, "first");
    CHECK_INT(a.creation_time, 1700000001);
    CHECK_INT(a.ndisks, 1);
    CHECK(a.ndisks == 1 && strcmp(a.disks[0], "vda") == 0);
    a.name[0] = 'X'; /* the copy is the caller's */
    snapxml_free(&a);
    CHECK_INT(store_snap_info(&s, "vm", "s1", &b, msg, sizeof(msg)), 0);
    int64_t t = 0;
    CHECK_INT(store_snap_ctime(&s, "vm", "s1", &t), 0);
    CHECK_INT(t, 1700000001);
    store_snap_cache_stats(&h, &m);
    CHECK_INT(m - m0, 1); /* parsed once */
    CHECK_INT(h - h0, 2);
    CHECK_STR(b.name, "s1");
    CHECK_STR(b.description, "first");
    snapxml_free(&b);

    /* replaced by rename: another inode, parsed again */
    const char *tmpxml = at(2, "sc/vm/snapshots/s1/.new");
    write_file(tmpxml, "<domainsnapshot><name>s1</name><description>second</description>"
                       "<creationTime>1700000002</creationTime></domainsnapshot>\n");
    CHECK_INT(rename(tmpxml, xml), 0);
    CHECK_INT(store_snap_info(&s, "vm", "s1", &a, msg, sizeof(msg)), 0);
    CHECK_STR(a.description, "second");
    CHECK(a.parent == NULL);
    snapxml_free(&a);
    /* rewritten in place, same size: the new mtime tells */
    write_file(xml, "<domainsnapshot><name>s1</name><description>third!</description>"
                    "<creationTime>1700000003</creationTime></domainsnapshot>\n");
    struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1800000000, 123 } };
    CHECK_INT(utimensat(AT_FDCWD, xml, ts, 0), 0);
    CHECK_INT(store_snap_ctime(&s, "vm", "s1", &t), 0);
    CHECK_INT(t, 1700000003);
    store_snap_cache_stats(&h, &m);
    CHECK_INT(m - m0, 3);

    /* a malformed file is not parsed again either, and says why each time */
    write_file(at(1, "sc/vm/snapshots/bad/snapshot.xml"), "<domainsnapshot><name>b</name>");
    for (int i = 0; i < 2; i++) {
        msg[0] = '\0';
        CHECK_INT(store_snap_info(&s, "vm", "bad", &a, msg, sizeof(msg)), -EINVAL);
        CHECK(strstr(msg, "not well-formed") && strstr(msg, "bad/snapshot.xml"));
        CHECK(a.name == NULL);
    }
    store_snap_cache_stats(&h, &m);
    CHECK_INT(m - m0, 4);
    CHECK_INT(store_snap_info(&s, "vm", "none", &a, msg, sizeof(msg)), -ENOENT);
    store_close(&s);
}

/* ---- the current snapshot, with real images ---- */

static void make_snapshot(const struct store *s, const char *vm, const char *snap, long ctime,
                          const char *const *devs)
{
    char path[PATH_MAX], xml[256];
    CHECK_INT(store_snap_path(s, vm, snap, NULL, path, sizeof(path)), 0);
    mkdir_p(path);
    CHECK_INT(store_snap_path(s, vm, snap, "snapshot.xml", path, sizeof(path)), 0);
    snprintf(xml, sizeof(xml),
             "<domainsnapshot><name>%s</name><creationTime>%ld</creationTime>"
             "</domainsnapshot>\n",
             snap, ctime);
    write_file(path, xml);
    for (; *devs; devs++) {
        CHECK_INT(store_snap_image_path(s, vm, snap, *devs, path, sizeof(path)), 0);
        qemu_img(s, "create", "-q", "-f", "qcow2", path, "1M", NULL);
    }
}

/* An active image: standalone when backing is NULL. */
static void make_active(const struct store *s, const char *vm, const char *dev, const char *backing)
{
    char path[PATH_MAX];
    CHECK_INT(store_vm_path(s, vm, "disks", path, sizeof(path)), 0);
    mkdir_p(path);
    CHECK_INT(store_disk_path(s, vm, dev, path, sizeof(path)), 0);
    if (backing)
        qemu_img(s, "create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", path, NULL);
    else
        qemu_img(s, "create", "-q", "-f", "qcow2", path, "1M", NULL);
}

static void expect_current(int line, const struct store *s, const char *vm, const char *want)
{
    char out[NAME_MAX_LEN + 1] = "";
    int r = current_snapshot(s, vm, out, sizeof(out));
    if (want ? (r != 0 || strcmp(out, want) != 0) : r != -ENOENT) {
        fprintf(stderr, "line %d: current of %s = %d \"%s\", expected %s\n", line, vm, r, out,
                want ? want : "-ENOENT");
        check_failures++;
    }
}
#define EXPECT_CURRENT(s, vm, want) expect_current(__LINE__, s, vm, want)

/* Returns false when qemu-img is missing (nothing checked). */
static bool test_current(void)
{
    struct store s;
    char msg[MSG_MAX] = "";
    open_store(&s, "cur", false);
    if (qimg_find(NULL, s.qemu_img, sizeof(s.qemu_img), msg, sizeof(msg)) < 0) {
        fprintf(stderr, "note: %s; skipping store_current_snapshot checks\n", msg);
        store_close(&s);
        return false;
    }
    static const char *const vda[] = { "vda", NULL }, *const both[] = { "vda", "vdb", NULL };

    /* no snapshot at all, and no disks at all */
    make_active(&s, "plain", "vda", NULL);
    EXPECT_CURRENT(&s, "plain", NULL);
    mkdir_p(at(0, "cur/empty"));
    EXPECT_CURRENT(&s, "empty", NULL);

    /* one disk growing from s1 */
    make_snapshot(&s, "one", "s1", 1000, vda);
    make_active(&s, "one", "vda", "../snapshots/s1/vda.qcow2");
    EXPECT_CURRENT(&s, "one", "s1");

    /* backing names of other shapes do not count */
    make_snapshot(&s, "odd", "s1", 1000, both);
    make_active(&s, "odd", "vda", at(1, "cur/odd/snapshots/s1/vda.qcow2")); /* absolute */
    make_active(&s, "odd", "vdb", "../snapshots/s1/vda.qcow2"); /* wrong dev */
    EXPECT_CURRENT(&s, "odd", NULL);

    /* a partial snapshot: the newest one wins, whichever disk names it */
    make_snapshot(&s, "two", "s1", 1000, both);
    make_snapshot(&s, "two", "s2", 2000, both);
    make_active(&s, "two", "vda", "../snapshots/s1/vda.qcow2");
    make_active(&s, "two", "vdb", "../snapshots/s2/vdb.qcow2");
    EXPECT_CURRENT(&s, "two", "s2");
    make_snapshot(&s, "rev", "s1", 2000, both);
    make_snapshot(&s, "rev", "s2", 1000, both);
    make_active(&s, "rev", "vda", "../snapshots/s1/vda.qcow2");
    make_active(&s, "rev", "vdb", "../snapshots/s2/vdb.qcow2");
    EXPECT_CURRENT(&s, "rev", "s1");

    /* two takes in one second (creation times tie, a partial delete
     * left vda on the older one): the snapshot whose image lies under
     * the other's is the older, whichever disk is read first */
    for (int i = 0; i < 2; i++) {
        const char *vm = i ? "tie2" : "tie", *lng = i ? "vda" : "vdb", *shrt = i ? "vdb" : "vda";
        make_snapshot(&s, vm, "s1", 1000, both);
        make_snapshot(&s, vm, "s2", 1000, both);
        char name[32];
        snprintf(name, sizeof(name), "../s1/%s.qcow2", lng);
        qemu_img(&s, "rebase", "-q", "-u", "-f", "qcow2", "-b", name, "-F", "qcow2",
                 at(1, "cur/%s/snapshots/s2/%s.qcow2", vm, lng), NULL);
        snprintf(name, sizeof(name), "../snapshots/s1/%s.qcow2", shrt);
        make_active(&s, vm, shrt, name);
        snprintf(name, sizeof(name), "../snapshots/s2/%s.qcow2", lng);
        make_active(&s, vm, lng, name);
        EXPECT_CURRENT(&s, vm, "s2");
    }

    /* the image changes under the cache: the answer follows */
    qemu_img(&s, "rebase", "-q", "-u", "-f", "qcow2", "-b", "../snapshots/s1/vdb.qcow2", "-F",
             "qcow2", at(1, "cur/two/disks/vdb.qcow2"), NULL);
    EXPECT_CURRENT(&s, "two", "s1");
    qemu_img(&s, "rebase", "-q", "-u", "-f", "qcow2", "-b", "../snapshots/s2/vda.qcow2", "-F",
             "qcow2", at(1, "cur/two/disks/vda.qcow2"), NULL);
    EXPECT_CURRENT(&s, "two", "s2");

    /* a snapshot reached through a chain that leaves the store does not
     * count, whichever image of the chain leaves it */
    static const char *const escapes[] = { "/nonexistent/base.raw", "../../../../../base.raw",
                                           "json:{\"file.filename\":\"/nonexistent/base.raw\"}",
                                           "nbd://127.0.0.1:10809/x" };
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        char vm[16];
        snprintf(vm, sizeof(vm), "esc%zu", i);
        make_snapshot(&s, vm, "s1", 1000, vda);
        make_snapshot(&s, vm, "s2", 2000, vda);
        make_active(&s, vm, "vda", "../snapshots/s2/vda.qcow2");
        EXPECT_CURRENT(&s, vm, "s2");
        qemu_img(&s, "rebase", "-q", "-u", "-f", "qcow2", "-b", escapes[i], "-F", "raw",
                 at(1, "cur/%s/snapshots/s%zu/vda.qcow2", vm, 1 + i % 2), NULL);
        if (i % 2 == 0)
            qemu_img(&s, "rebase", "-q", "-u", "-f", "qcow2", "-b", "../s1/vda.qcow2", "-F",
                     "qcow2", at(1, "cur/%s/snapshots/s2/vda.qcow2", vm), NULL);
        EXPECT_CURRENT(&s, vm, NULL);
    }

    /* a backing snapshot that no longer exists does not count */
    char path[PATH_MAX];
    CHECK_INT(store_snap_path(&s, "one", "s1", NULL, path, sizeof(path)), 0);
    CHECK_INT(rename(path, at(1, "cur/one/snapshots/.gone")), 0);
    EXPECT_CURRENT(&s, "one", NULL);
    store_close(&s);
    return true;
}

/* The kept answers of current_snapshot (current.c): a VM left alone for
 * a while is answered without a walk; a change this process makes (a
 * lock released) or one in disks/ or snapshots/ made by hand is seen at
 * once. Without the cache the hit count stays; without the generation
 * or the key the answers below stay stale. */
static void test_current_cache(void)
{
    struct store s;
    static const char *const both[] = { "vda", "vdb", NULL };
    open_store(&s, "curcache", true);
    char msg[MSG_MAX] = "";
    CHECK_INT(qimg_find(NULL, s.qemu_img, sizeof(s.qemu_img), msg, sizeof(msg)), 0);
    /* a partial snapshot: vda grows from s1, vdb from s2 (the newer) */
    make_snapshot(&s, "vm", "s1", 1000, both);
    make_snapshot(&s, "vm", "s2", 2000, both);
    make_active(&s, "vm", "vda", "../snapshots/s1/vda.qcow2");
    make_active(&s, "vm", "vdb", "../snapshots/s2/vdb.qcow2");
    /* Answers are kept only once the key's times are a tick behind. */
    sleep(3);
    EXPECT_CURRENT(&s, "vm", "s2");
    unsigned long hits = current_cache_hits();
    EXPECT_CURRENT(&s, "vm", "s2");
    CHECK(current_cache_hits() == hits + 1);

    /* s1 made the newer in place (no entry of snapshots/ changes): by
     * hand, unseen (what current.c says it does not watch)... */
    write_file(at(0, "curcache/vm/snapshots/s1/snapshot.xml"),
               "<domainsnapshot><name>s1</name><creationTime>3000</creationTime>"
               "</domainsnapshot>\n");
    EXPECT_CURRENT(&s, "vm", "s2");
    /* ...by an operation of this daemon: seen once its lock goes */
    struct vmlock l;
    CHECK_INT(vmlock_acquire(&s, "vm", 0, NULL, NULL, &l, msg, sizeof(msg)), 0);
    vmlock_release(&l);
    EXPECT_CURRENT(&s, "vm", "s1");

    /* by hand, in snapshots/: s1 renamed, vda's chain is broken */
    sleep(3);
    EXPECT_CURRENT(&s, "vm", "s1");
    hits = current_cache_hits();
    EXPECT_CURRENT(&s, "vm", "s1");
    CHECK(current_cache_hits() == hits + 1);
    CHECK_INT(rename(at(0, "curcache/vm/snapshots/s1"), at(1, "curcache/vm/snapshots/s9")),
              0);
    EXPECT_CURRENT(&s, "vm", "s2");
    store_close(&s);
}

static void write_domain(const struct store *s, const char *vm, const char *source)
{
    char path[PATH_MAX];
    CHECK_INT(store_vm_path(s, vm, NULL, path, sizeof(path)), 0);
    mkdir_p(path);
    CHECK_INT(store_vm_path(s, vm, "domain.xml", path, sizeof(path)), 0);
    if (!source) {
        write_file(path, "<domain type='kvm'><name>x</name></domain>\n");
        return;
    }
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<domain type='kvm'><name>x</name><metadata><vmstorefs:clone "
             "xmlns:vmstorefs='" CLONEID_NS "' source='%s' time='1'/></metadata></domain>\n",
             source);
    write_file(path, xml);
}

static int add_name(const char *name, void *p)
{
    char *out = p;
    strcat(out, name);
    strcat(out, " ");
    return 0;
}

static const char *clones_of(const struct store *s, const char *vm)
{
    static char out[256];
    out[0] = '\0';
    CHECK_INT(clonelist_each(s, vm, add_name, out), 0);
    return out;
}

/* clonelist_each: one scan of the store serves the listings of every
 * VM (a walk over the mount lists each VM's clones/), and what this
 * daemon changes or a VM made by hand is seen at once. Without the kept
 * scan every listing scans. */
static void test_clonelist_scan(void)
{
    struct store s;
    open_store(&s, "clones", true);
    write_domain(&s, "a", NULL);
    write_domain(&s, "b", "a");
    write_domain(&s, "c", "a");
    write_domain(&s, "d", "b");
    unsigned long scans = clonelist_scans();
    CHECK_STR(clones_of(&s, "a"), "b c ");
    CHECK_STR(clones_of(&s, "b"), "d ");
    CHECK_STR(clones_of(&s, "c"), "");
    CHECK_STR(clones_of(&s, "d"), "");
    CHECK(clonelist_scans() - scans <= 2); /* one, or two across a second's end */
    /* a VM made by hand: the store's directory changed */
    write_domain(&s, "e", "c");
    CHECK_STR(clones_of(&s, "c"), "e ");
    /* a lineage forgotten, by hand: no longer listed (each name listed
     * is read again) */
    write_domain(&s, "e", NULL);
    CHECK_STR(clones_of(&s, "c"), "");
    /* a lineage set by an operation of this daemon (its lock released):
     * listed at once */
    write_domain(&s, "e", "d");
    char msg[MSG_MAX];
    struct vmlock l;
    CHECK_INT(vmlock_acquire(&s, "e", 0, NULL, NULL, &l, msg, sizeof(msg)), 0);
    vmlock_release(&l);
    CHECK_STR(clones_of(&s, "d"), "e ");
    store_close(&s);
}

/* store_open: beneath the root, no symlink anywhere; store_open_file:
 * regular files only, without blocking on a FIFO. */
static void test_store_open(void)
{
    char msg[MSG_MAX];
    mkdir_p(at(0, "so/a/b"));
    FILE *f = fopen(at(0, "so/a/b/f"), "we");
    fputs("x", f);
    fclose(f);
    CHECK_INT(symlink("b", at(0, "so/a/link")), 0);
    CHECK_INT(symlink("/etc/hostname", at(0, "so/a/b/host")), 0);
    CHECK_INT(mkfifo(at(0, "so/a/b/fifo"), 0644), 0);
    struct store s;
    CHECK_INT(store_check(&s, at(0, "so"), msg, sizeof(msg)), 0);

    int fd = store_open(&s, s.root, O_PATH);
    CHECK(fd >= 0);
    close(fd);
    fd = store_open(&s, at(0, "so/a/b/f"), O_RDONLY);
    CHECK(fd >= 0);
    close(fd);
    CHECK_INT(store_open(&s, at(0, "so/a/link/f"), O_RDONLY), -ELOOP);
    CHECK_INT(store_open(&s, at(0, "so/a/b/host"), O_RDONLY), -ELOOP);
    CHECK_INT(store_open(&s, "/etc/hostname", O_RDONLY), -EXDEV);
    CHECK_INT(store_open(&s, at(0, "so/a/../../so/a/b/f"), O_RDONLY), -EXDEV);
    struct stat st;
    CHECK_INT(store_lstat(&s, at(0, "so/a/link"), &st), -ELOOP);
    CHECK_INT(store_lstat(&s, at(0, "so/a/b"), &st), 0);
    CHECK(S_ISDIR(st.st_mode));

    fd = store_open_file(&s, at(0, "so/a/b/f"), O_RDONLY);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
        close(fd);
    }
    /* An open that waited for a writer of the FIFO would wait forever:
     * the alarm ends the test then (SIGALRM), a watchdog, not a measure. */
    alarm(60);
    CHECK_INT(store_open_file(&s, at(0, "so/a/b/fifo"), O_RDONLY), -ENOENT);
    alarm(0);
    CHECK_INT(store_open_file(&s, at(0, "so/a/b"), O_RDONLY), -ENOENT);
    CHECK_INT(store_open_file(&s, at(0, "so/a/b/host"), O_RDONLY), -ELOOP);

    /* store_open_read says why in words fit for a log line */
    CHECK_INT(store_open_read(&s, at(0, "so/a/b/missing.xml"), msg, sizeof(msg)), -ENOENT);
    CHECK_STR(msg, "No such file or directory");
    CHECK_INT(store_open_read(&s, at(0, "so/a/link/f"), msg, sizeof(msg)), -ELOOP);
    CHECK_STR(msg, "a symbolic link, not followed");
    store_close(&s);
}

/* ---- imagelock sets ---- */

/* A merge's locks (imagelock.h): WRITE keeps every other holder out, READ
 * only writers; a mode changes in place and the image is never unheld;
 * a set finds an image by inode; the locks outlive a forked child. */
static void test_imagelock_set(void)
{
    struct store s;
    open_store(&s, "il", false);
    const char *img = at(1, "il/a.qcow2"), *moved = at(2, "il/b.qcow2");
    write_file(img, "not even qcow2: the locks are on bytes of the file\n");
    struct imagelock_set a = { 0 }, b = { 0 };

    CHECK_INT(imagelock_set_take(&a, &s, img, IMAGELOCK_WRITE, 0), 0);
    CHECK(a.n == 1 && (fcntl(a.v[0].fd, F_GETFD) & FD_CLOEXEC));
    CHECK_INT(imagelock_set_take(&b, &s, img, IMAGELOCK_WRITE, 0), -EBUSY);
    CHECK_INT(imagelock_set_take(&b, &s, img, IMAGELOCK_READ, 0), -EBUSY);
    CHECK_INT(b.n, 0);
    CHECK_INT(imagelock_hold_for_reading(&s, img), -EBUSY); /* a clone's read */
    CHECK_INT(imagelock_hold(&s, img), -EBUSY);
    /* held: the same descriptor, in the mode it has */
    CHECK_INT(imagelock_set_take(&a, &s, img, IMAGELOCK_HELD_OR_READ, 0), 0);
    CHECK(a.n == 1 && a.v[0].mode == IMAGELOCK_WRITE);

    /* a child forked (and gone) takes nothing with it */
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    CHECK(pid > 0 && waitpid(pid, NULL, 0) == pid);
    CHECK_INT(imagelock_set_take(&b, &s, img, IMAGELOCK_READ, 0), -EBUSY);

    /* down to READ: readers in, writers still out */
    CHECK_INT(imagelock_set_take(&a, &s, img, IMAGELOCK_READ, 0), 0);
    int reader = imagelock_hold_for_reading(&s, img);
    CHECK(reader >= 0);
    CHECK_INT(imagelock_set_take(&b, &s, img, IMAGELOCK_READ, 0), 0);
    CHECK_INT(imagelock_hold(&s, img), -EBUSY);
    /* up to WRITE refused while they read: the READ lock stays */
    CHECK_INT(imagelock_set_take(&a, &s, img, IMAGELOCK_WRITE, 0), -EBUSY);
    CHECK(a.n == 1 && a.v[0].mode == IMAGELOCK_READ);
    imagelock_drop(reader);
    imagelock_set_release(&b);
    CHECK_INT(imagelock_hold(&s, img), -EBUSY);
    CHECK_INT(imagelock_set_take(&a, &s, img, IMAGELOCK_WRITE, 0), 0);
    CHECK_INT(imagelock_hold_for_reading(&s, img), -EBUSY);

    /* found by inode under a new name */
    CHECK_INT(rename(img, moved), 0);
    CHECK_INT(imagelock_set_take(&a, &s, moved, IMAGELOCK_HELD_OR_WRITE, 0), 0);
    CHECK_INT(a.n, 1);
    imagelock_set_release(&a);
    int fd = imagelock_hold(&s, moved);
    CHECK(fd >= 0);
    imagelock_drop(fd);
    CHECK_INT(imagelock_set_take(&a, &s, img, IMAGELOCK_READ, 0), -ENOENT);
    store_close(&s);
}

int main(void)
{
    if (!test_tmp_template(tmp, sizeof(tmp), "vmstorefs-store") || !mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_store_open();
    test_check_missing();
    test_check_file();
    test_check_dir();
    test_prepare_meta();
    test_prepare_twice();
    test_meta_untrusted();
    test_meta_half_made();
    test_newer_format();
    test_garbage_format();
    test_paths();
    test_enumeration();
    test_parse_active_backing();
    test_snap_ctime();
    test_snap_info_cache();
    test_imagelock_set();
    bool have_qemu_img = test_current();
    if (have_qemu_img)
        test_current_cache();
    test_clonelist_scan();

    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    log_once_reset();
    if (!have_qemu_img && !check_failures)
        return 77;
    CHECK_DONE();
}
