/* vpath: what a path inside the mount means.
 *
 *   /                                   V_ROOT
 *   /.jobs                              V_JOBS
 *   /<vm>                               V_VM
 *   /<vm>/domain.xml                    V_DOMXML
 *   /<vm>/disks[/<dev>.qcow2]           V_DISKS, V_DISK
 *   /<vm>/snapshots[/<snap>[/<dev>.qcow2]]  V_SNAPS, V_SNAP, V_SNAP_IMAGE
 *   /<vm>/snapshots/<snap>/snapshot.xml V_SNAP_XML: the store's metadata,
 *   an entry of the view only while the VM is being imported (import.h)
 *   /<vm>/snapshots/<snap>/clones[/<n>] V_SNAP_CLONES, V_SNAP_CLONE
 *   <snap> may also be a hidden directory (.hidden-<hex>, delplan.h):
 *   reachable for the backing chains that lead there, never listed
 *   /<vm>/clones[/<n>]                  V_CLONES, V_CLONE
 *   /<vm>/current                       V_CURRENT
 *   /<vm>/<dir>/<name>[/...]            V_BASE: anything else below a
 *   directory of the VM that is none of the above: the images its chains
 *   reach outside disks/ and snapshots/ (a raw base), and the directories
 *   on the way, read-only, never listed (view.h). "/<vm>/<dir>" itself is
 *   no vpath (a name there may be a link `ln -sfn` is making):
 *   view_base_dir answers for it.
 *
 * Pure string work: it says nothing about whether the entry exists. A
 * path no entry could ever have (bad names, unknown components) is
 * -ENOENT. */
#ifndef VMSTOREFS_VPATH_H
#define VMSTOREFS_VPATH_H

#include "util/names.h"

enum vkind {
    V_ROOT,
    V_JOBS,
    V_VM,
    V_DOMXML,
    V_DISKS,
    V_DISK,
    V_SNAPS,
    V_SNAP,
    V_SNAP_IMAGE,
    V_SNAP_XML,
    V_SNAP_CLONES,
    V_SNAP_CLONE,
    V_CLONES,
    V_CLONE,
    V_CURRENT,
    V_BASE,
};

#define VPATH_BASE_MAX (5 * (NAME_MAX_LEN + 1))

struct vpath {
    enum vkind kind;
    char vm[NAME_MAX_LEN + 1];
    char snap[NAME_MAX_LEN + 1];
    char dev[DEV_MAX_LEN + 1];
    char name[NAME_MAX_LEN + 1]; /* clone name */
    char base[VPATH_BASE_MAX]; /* V_BASE: "<dir>/<name>..." below the VM's directory */
};

int vpath_parse(const char *path, struct vpath *out);
const char *vpath_kind_name(enum vkind kind);

#define JOBS_FILE ".jobs"

#endif
