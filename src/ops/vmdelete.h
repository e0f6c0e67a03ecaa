/* vmdelete: deleting a VM, detaching a disk, undefining a VM (see
 * vmdelete.c). Each returns 0 or -errno with one line in msg. */
#ifndef VMSTOREFS_VMDELETE_H
#define VMSTOREFS_VMDELETE_H
#include "ops/snapshot.h"
int vm_delete(const struct snap_ctx *c, const char *vm, char *msg, size_t msgsz);
/* Would vm_delete be refused? 0, or its -errno and reason; nothing
 * changes either way. */
int vm_deletable(const struct snap_ctx *c, const char *vm, char *msg, size_t msgsz);
int disk_detach(const struct snap_ctx *c, const char *vm, const char *dev, char *msg,
                size_t msgsz);
int vm_undefine(const struct snap_ctx *c, const char *vm, char *msg, size_t msgsz);
int clone_forget(const struct snap_ctx *c, const char *vm, const char *clone, char *msg,
                 size_t msgsz);
#endif
