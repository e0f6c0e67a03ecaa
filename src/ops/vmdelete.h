/* vmdelete: deleting a VM, detaching a disk, undefining a VM (see
 * vmdelete.c). Each returns 0 or -errno with one line in msg. */
#ifndef VMSTOREFS_VMDELETE_H
#define VMSTOREFS_VMDELETE_H
#include "ops/snapshot.h"
int vm_delete(const struct snap_ctx *c, const char *vm, char *msg, size_t msgsz);
int disk_detach(const struct snap_ctx *c, const char *vm, const char *dev, char *msg,
                size_t msgsz);
/* Where an undefine keeps the definition, in the VM's directory. */
#define UNDEFINED_XML ".domain.xml.undefined"
int vm_undefine(const struct snap_ctx *c, const char *vm, char *msg, size_t msgsz);
/* Puts back the definition an undefine kept: -EEXIST when the VM is
 * defined, -ENOENT when none was kept. */
int vm_define_kept(const struct snap_ctx *c, const char *vm, char *msg, size_t msgsz);
int clone_forget(const struct snap_ctx *c, const char *vm, const char *clone, char *msg,
                 size_t msgsz);
#endif
