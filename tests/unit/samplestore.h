/* What the tests of operations on the sample store share: a shell
 * command's status, a fresh copy of scripts/make-sample-store (web1:
 * installed <- configured <- active; db1: two disks, no snapshots) opened
 * as a store with its metadata, the snapshot current in a VM, and the
 * scratch directory they all live in. Each test file includes it once. */
#ifndef VMSTOREFS_SAMPLESTORE_H
#define VMSTOREFS_SAMPLESTORE_H

#include "util/log.h"
#include "util/names.h"
#include "qemu/qimg.h"
#include "store/store.h"
#include "fsutil.h"
#include "testutil.h"
#include "store/vmstate.h"
#include "vm/current.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static char dir[512];
static struct store st;

static int run(const char *cmd)
{
    int r = system(cmd);
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

/* sed -i 's|from|to|g' on every *.xml below a tree (nftw has no
 * argument for its callback). */
static const char *xml_from, *xml_to;

static int xml_subst_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (!fs_file_of(path, flag, ".xml"))
        return 0;
    return fs_subst(path, xml_from, xml_to) < 0 ? -1 : 0;
}

/* dir/name: a new sample store, opened as st (vmstate forgotten). The
 * first store of a name is a copy of dir/.base, which
 * make-sample-store builds once per test program (a second or more of
 * qemu-img and qemu-io processes each time, here), with the absolute
 * paths its XML names (the only place a path of the store is written:
 * backing names are relative) moved to dir/name: what the script makes
 * at dir/name. It is kept aside as dir/.pristine-<name>; later ones of
 * that name (the crash loops make one per crash point) are copies of it,
 * byte for byte (fsutil.h, no shell: the crash loops make one a crash
 * point). Copies only to the same path: domain.xml names its own
 * absolute paths. */
static bool open_store(const char *name)
{
    char path[PATH_MAX + 64], pristine[PATH_MAX + 64], base[PATH_MAX + 64], why[MSG_MAX];
    char from[PATH_MAX + 72], to[PATH_MAX + 72];
    const char *top = getenv("TOP_SRCDIR");
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(pristine, sizeof(pristine), "%s/.pristine-%s", dir, name);
    snprintf(base, sizeof(base), "%s/.base", dir);
    if (fs_rm_rf(path) < 0)
        return false;
    struct stat sb;
    if (stat(pristine, &sb) == 0) {
        if (fs_copy_tree(pristine, path) < 0)
            return false;
    } else {
        char script[PATH_MAX];
        snprintf(script, sizeof(script), "%s/scripts/make-sample-store", top ? top : ".");
        char *argv[] = { script, base, NULL };
        if (stat(base, &sb) < 0 && fs_spawn(argv, NULL, NULL, 0, false) != 0) {
            fprintf(stderr, "%s %s failed\n", script, base);
            return false;
        }
        snprintf(from, sizeof(from), "%s/", base);
        snprintf(to, sizeof(to), "%s/", path);
        xml_from = from;
        xml_to = to;
        if (fs_copy_tree(base, path) < 0 || nftw(path, xml_subst_one, 16, FTW_PHYS) != 0 ||
            fs_copy_tree(path, pristine) < 0)
            return false;
    }
    vmstate_reset();
    /* qemu-img found (its --version run) once a test program: the same
     * binary every store. */
    static char qemu_img[sizeof(st.qemu_img)];
    if (store_check(&st, path, why, sizeof(why)) != 0 ||
        (!qemu_img[0] && qimg_find(NULL, qemu_img, sizeof(qemu_img), why, sizeof(why)) != 0)) {
        fprintf(stderr, "%s: %s\n", path, why);
        return false;
    }
    snprintf(st.qemu_img, sizeof(st.qemu_img), "%s", qemu_img);
    if (store_prepare_meta(&st, why, sizeof(why)) != 0) {
        fprintf(stderr, "%s: %s\n", path, why);
        return false;
    }
    return true;
}

/* The snapshot vm grows from, "(none)" when none. */
static const char *current_of(const char *vm)
{
    static char snap[NAME_MAX_LEN + 1];
    if (current_snapshot(&st, vm, snap, sizeof(snap)) < 0)
        strcpy(snap, "(none)");
    return snap;
}

/* The scratch directory (under $TMPDIR), with the log to stderr as tag;
 * 77 (skip) without the tools named in need (a shell test), 1 when it
 * cannot be made, else 0. */
static int sample_setup(const char *tag, const char *need)
{
    if (run(need) != 0)
        return 77;
    snprintf(dir, sizeof(dir), "%s/vmstorefs-%s.XXXXXX", test_tmpdir_or("/tmp"), tag);
    if (!mkdtemp(dir))
        return 1;
    log_init(tag, true);
    return 0;
}

static void sample_teardown(void)
{
    fs_rm_rf(dir);
}
#endif
