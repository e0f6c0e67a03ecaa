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

/* dir/name: a new sample store, opened as st (vmstate forgotten). The
 * first store of a name is a copy of dir/.base, which
 * make-sample-store builds once per test program (a second or more of
 * qemu-img and qemu-io processes each time, here), with the absolute
 * paths its XML names (the only place a path of the store is written:
 * backing names are relative) moved to dir/name: what the script makes
 * at dir/name. It is kept aside as dir/.pristine-<name>; later ones of
 * that name (the crash loops make one per crash point) are copies of it,
 * byte for byte. Copies only to the same path: domain.xml names its own
 * absolute paths. */
static bool open_store(const char *name)
{
    char path[PATH_MAX + 64], cmd[8 * PATH_MAX], why[MSG_MAX];
    const char *top = getenv("TOP_SRCDIR");
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(cmd, sizeof(cmd),
             "rm -rf '%s' && if [ -d '%s/.pristine-%s' ]; then cp -a '%s/.pristine-%s' '%s'; "
             "else { [ -d '%s/.base' ] || '%s/scripts/make-sample-store' '%s/.base' >/dev/null; } && "
             "cp -a '%s/.base' '%s' && find '%s' -name '*.xml' -exec sed -i 's|%s/\\.base/|%s/|g' {} + && "
             "cp -a '%s' '%s/.pristine-%s'; fi",
             path, dir, name, dir, name, path, dir, top ? top : ".", dir, dir, path, path, dir, path,
             path, dir, name);
    if (run(cmd) != 0)
        return false;
    vmstate_reset();
    return store_check(&st, path, why, sizeof(why)) == 0 &&
           qimg_find(NULL, st.qemu_img, sizeof(st.qemu_img), why, sizeof(why)) == 0 &&
           store_prepare_meta(&st, why, sizeof(why)) == 0;
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
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    run(cmd);
}
#endif
