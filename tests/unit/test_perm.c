/* Unit tests for perm (the owner and mode of what the daemon creates,
 * and what a caller may do) and the storeio calls that use it: a new
 * directory takes its parent's owner and mode, a new file the one given
 * and never a set-id bit, the daemon's own files are 0600, and the
 * kernel's answer for another uid and its groups; a file written unsynced
 * and a batch of fsyncs. The parts that give
 * files to other users need root (skipped otherwise, exit 77 when
 * nothing else ran). */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "store/perm.h"
#include "store/storeio.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[TEST_TMP_MAX];
static struct store s;

static const char *at(const char *rel)
{
    static char buf[4][PATH_MAX + 64];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(buf[slot], sizeof(buf[slot]), "%.*s/%s", PATH_MAX - 1, s.root, rel);
    return buf[slot];
}

/* "uid:gid mode" of path, for one comparison. */
static const char *owner_mode(const char *path)
{
    static char out[64];
    struct stat st;
    if (lstat(path, &st) < 0)
        return "missing";
    snprintf(out, sizeof(out), "%u:%u %04o", (unsigned)st.st_uid, (unsigned)st.st_gid,
             (unsigned)(st.st_mode & 07777));
    return out;
}

static void test_private(void)
{
    char want[64];
    CHECK_INT(storeio_write_new(&s, at("own"), "x", 1), 0);
    snprintf(want, sizeof(want), "%u:%u 0600", (unsigned)geteuid(), (unsigned)getegid());
    CHECK_STR(owner_mode(at("own")), want);
}

/* storeio_write_new_unsynced makes the same private file; a batch of
 * fsyncs wider than the threads it runs on syncs every path, and names
 * the one that is missing. */
static void test_unsynced_and_fsync_all(void)
{
    char want[64];
    const struct store_perm own = perm_private(0600);
    CHECK_INT(storeio_write_new_unsynced(&s, at("later"), "xy", 2, &own), 0);
    snprintf(want, sizeof(want), "%u:%u 0600", (unsigned)geteuid(), (unsigned)getegid());
    CHECK_STR(owner_mode(at("later")), want);
    CHECK_INT(storeio_write_new_unsynced(&s, at("later"), "xy", 2, &own), -EEXIST);
    char file[PATH_MAX + 64], dir[PATH_MAX + 64], gone[PATH_MAX + 64];
    snprintf(file, sizeof(file), "%s", at("later"));
    CHECK_INT(storeio_mkdir(&s, at("d")), 0);
    snprintf(dir, sizeof(dir), "%s", at("d"));
    snprintf(gone, sizeof(gone), "%s", at("gone"));
    const char *paths[STOREIO_FSYNC_PARALLEL + 3];
    size_t n = sizeof(paths) / sizeof(paths[0]);
    for (size_t i = 0; i < n; i++)
        paths[i] = i % 2 ? dir : file;
    size_t bad = 99;
    CHECK_INT(storeio_fsync_all(&s, paths, n, &bad), 0);
    CHECK_INT((int)bad, 99);
    paths[n - 2] = gone;
    CHECK_INT(storeio_fsync_all(&s, paths, n, &bad), -ENOENT);
    CHECK_INT((int)bad, (int)(n - 2));
    CHECK_INT(storeio_fsync_all(&s, paths, 0, NULL), 0);
}

static void test_given(void)
{
    /* Set-id and sticky bits are dropped: a root-owned copy of a
     * tenant's set-uid file must not be one. */
    struct store_perm p = { 4711, 4800, 06755 };
    CHECK_INT(storeio_write_new_as(&s, at("given"), "x", 1, &p), 0);
    CHECK_STR(owner_mode(at("given")), "4711:4800 0755");
    struct store_perm q = { 4711, 4711, 0640 };
    CHECK_INT(storeio_mkdir_as(&s, at("vm"), &q), 0);
    CHECK_STR(owner_mode(at("vm")), "4711:4711 0640");
    CHECK_INT(chmod(at("vm"), 0710), 0);
    CHECK_INT(perm_like(&s, at("given"), at("vm")), 0);
    CHECK_STR(owner_mode(at("given")), "4711:4711 0710");
}

static void test_mkdir_inherits(void)
{
    /* vm is 4711:4711 0710 (test_given). */
    CHECK_INT(storeio_mkdir(&s, at("vm/snapshots")), 0);
    CHECK_STR(owner_mode(at("vm/snapshots")), "4711:4711 0710");
    CHECK_INT(storeio_mkdir(&s, at("vm/snapshots")), -EEXIST);
}

static void test_cred_may(void)
{
    struct store_cred root = { 0 };
    struct store_cred owner = { .uid = 4711, .gid = 4711 };
    struct store_cred stranger = { .uid = 4712, .gid = 4712 };
    struct store_cred member = { .uid = 4712, .gid = 4712, .ngroups = 1, .groups = { 4711 } };
    /* vm: 4711:4711 0710, in a root that everyone may search. */
    CHECK_INT(chmod(s.root, 0711), 0);
    CHECK(perm_cred_may(&s, &root, at("vm"), W_OK | X_OK));
    CHECK(perm_cred_may(&s, &owner, at("vm"), W_OK | X_OK));
    CHECK(!perm_cred_may(&s, &stranger, at("vm"), X_OK));
    CHECK(perm_cred_may(&s, &member, at("vm"), X_OK));
    CHECK(!perm_cred_may(&s, &member, at("vm"), W_OK));
    /* The root itself: write is root's only, until a group has it. */
    CHECK(!perm_cred_may(&s, &owner, s.root, W_OK | X_OK));
    CHECK_INT(chown(s.root, 0, 4711), 0);
    CHECK_INT(chmod(s.root, 0771), 0);
    CHECK(perm_cred_may(&s, &owner, s.root, W_OK | X_OK));
    CHECK(!perm_cred_may(&s, &stranger, s.root, W_OK | X_OK));
    /* Search on the root is checked on the way to an entry. */
    CHECK_INT(chmod(s.root, 0770), 0);
    CHECK_INT(chmod(at("vm"), 0777), 0);
    CHECK(!perm_cred_may(&s, &stranger, at("vm"), X_OK));
    CHECK_INT(chmod(s.root, 0700), 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    if (!test_tmp_template(tmp, sizeof(tmp), "vmstorefs-perm") || !mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char msg[256];
    CHECK_INT(store_check(&s, tmp, msg, sizeof(msg)), 0);
    test_private();
    test_unsynced_and_fsync_all();
    bool root = geteuid() == 0;
    if (root) {
        test_given();
        test_mkdir_inherits();
        test_cred_may();
    }
    store_close(&s);
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (!root && !check_failures)
        return 77;
    CHECK_DONE();
}
