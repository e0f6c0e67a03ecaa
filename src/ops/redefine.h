/* redefine: a new definition for a VM, written through the mount
 * (write <vm>/domain.xml: cp, `>`, tee, sed -i's rename, editors; or
 * writing back the domain.xml of an undefined VM).
 *
 * Before anything changes, the text must be: well-formed safe XML
 * (xmlsafe.h) with a <domain> root; named as the VM's directory (a
 * missing <name> is set to it); valid by libvirt's domain schema
 * (xmlschema.h, what virt-xml-validate checks); every snapshot-able
 * disk's source this VM's disks/<dev>.qcow2, there, qcow2, with its
 * chain inside the VM (vm_check_definition, as every operation checks
 * domain.xml); every other disk a file inside the store, and <nvram>
 * inside the VM's directory. Any failure is -EINVAL with the reason in
 * msg, and nothing changes (-EBUSY while a qemu or a writer through the
 * mount holds an active image).
 *
 * Then, as one journaled operation ("redefine"): each snapshot-able disk
 * of the old definition (domain.xml, or the one an undefine kept) that
 * the new one lacks is detached as `rm disks/<dev>.qcow2` would (delplan:
 * its active image goes, frozen ones stay while a snapshot needs them);
 * the new domain.xml is written with each disk's <backingStore> chain
 * spelled out from its images, as the store's layout wants; a definition
 * an undefine kept goes. Snapshots keep their own <domain>. */
#ifndef VMSTOREFS_REDEFINE_H
#define VMSTOREFS_REDEFINE_H

#include "ops/snapshot.h"

#include <stddef.h>

int vm_redefine(const struct snap_ctx *c, const char *vm, const char *xml, size_t len, char *msg,
                size_t msgsz);

#endif
