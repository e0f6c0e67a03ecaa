/* lvirt: vmstorefs-ctl's import and export, between the store and
 * libvirt's files or a running libvirt.
 *
 *   import NEW DIR                 DIR/domain.xml, DIR/snapshots/<any>.xml
 *                                  (relative image names resolve in DIR)
 *   import NEW --libvirt DOMAIN    `virsh dumpxml --inactive --security-info
 *                                  DOMAIN` and `virsh snapshot-dumpxml` of
 *                                  each of its snapshots
 *   export VM                      `virsh define STORE/VM/domain.xml`, then
 *                                  `virsh snapshot-create VM FILE --redefine`
 *                                  of each snapshot.xml, parents first, the
 *                                  current one with --current
 *
 * libvirt is reached by running virsh (absolute path from PATH, no shell,
 * LC_ALL=C, a timeout: util/spawn.h), with -c URI when one is given
 * (--connect URI): a command-line tool that runs once needs nothing more,
 * and the daemon, which would talk to libvirt through its C API
 * (libvirt-dev), does not link this. The store-side work is
 * ops/importtree.h's. */
#ifndef VMSTOREFS_LVIRT_H
#define VMSTOREFS_LVIRT_H

#include "ops/snapshot.h"

#include <stddef.h>

int lvirt_import_dir(const struct snap_ctx *c, const char *name, const char *dir, char *msg,
                     size_t msgsz);
int lvirt_import_libvirt(const struct snap_ctx *c, const char *name, const char *uri,
                         const char *domain, char *msg, size_t msgsz);
int lvirt_export(const struct snap_ctx *c, const char *vm, const char *uri, char *msg,
                 size_t msgsz);

#endif
