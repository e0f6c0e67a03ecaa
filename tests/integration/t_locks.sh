#!/bin/bash
# qemu's image locks hold across the mount: while a qemu has an image open
# for writing through the store path, opening it for writing through the
# mount fails, and the other way round; once the holder is gone the
# image opens again. (A running VM's disk must never be written by
# someone going through the mount.)
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"

# hold IMAGE: qio_hold on IMAGE, db1's vda by the store path or the mount's.
hold() {
    qio_hold "$1" "$S/db1/disks/vda.qcow2"
}
release() {
    qio_release
}

hold "$S/db1/disks/vda.qcow2"
expect_fail "write through the mount while a qemu holds the store path" 'Failed to get "write" lock' \
    qemu-io -f qcow2 -c 'write -P 0x99 0 64k' "$M/db1/disks/vda.qcow2"
release
read_pattern "$S/db1/disks/vda.qcow2" 0x44 0 64k
pass "a qemu on the store path locks the image against writers through the mount"

hold "$M/db1/disks/vda.qcow2"
expect_fail "write through the store while a qemu holds the mount path" 'Failed to get "write" lock' \
    qemu-io -f qcow2 -c 'write -P 0x99 0 64k' "$S/db1/disks/vda.qcow2"
expect_fail "second writer through the mount" 'Failed to get "write" lock' \
    qemu-io -f qcow2 -c 'write -P 0x99 0 64k' "$M/db1/disks/vda.qcow2"
qemu-img info -U "$M/db1/disks/vda.qcow2" >/dev/null || fail "qemu-img info -U refused while locked"
release
pass "a qemu through the mount locks the image against other writers, in the store and the mount"

# The kernel releases a closed FUSE file asynchronously: allow it 2 s.
for i in $(seq 20); do
    qemu-io -f qcow2 -c 'write -P 0x98 0 64k' "$M/db1/disks/vda.qcow2" >/dev/null 2>&1 && break
    sleep 0.1
done
read_pattern "$M/db1/disks/vda.qcow2" 0x98 0 64k
read_pattern "$S/db1/disks/vda.qcow2" 0x98 0 64k
pass "locks go away with their holder"

unmount_fs "$M"
