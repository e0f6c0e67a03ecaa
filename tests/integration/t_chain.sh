#!/bin/bash
# Backing chains resolve inside the mount: qemu-img follows the relative
# backing names of the active image and the frozen images through the
# mount, and what the guest would read through the mount is exactly what
# it reads from the store.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"

chain=$(qemu-img info --backing-chain --output=json "$M/web1/disks/vda.qcow2") ||
    fail "qemu-img info --backing-chain through the mount"
n=$(grep -c '"filename"' <<<"$chain")
[ "$n" -eq 3 ] || fail "chain through the mount has $n images, expected 3"
grep '"filename"' <<<"$chain" | grep -v "\"$M/" && fail "a chain element resolved outside the mount"
pass "qemu-img info --backing-chain resolves all 3 images inside the mount"

read_pattern "$M/web1/disks/vda.qcow2" 0x11 0 4M
read_pattern "$M/web1/disks/vda.qcow2" 0x22 4M 4M
read_pattern "$M/web1/disks/vda.qcow2" 0x33 8M 1M
read_pattern "$M/web1/snapshots/installed/vda.qcow2" 0 4M 4M
pass "guest data reads through the mount layer by layer"

qemu-img compare -f qcow2 -F qcow2 "$M/web1/disks/vda.qcow2" "$S/web1/disks/vda.qcow2" >/dev/null ||
    fail "active disk through the mount differs from the store"
qemu-img compare -f qcow2 -F qcow2 "$M/web1/snapshots/configured/vda.qcow2" \
    "$S/web1/snapshots/configured/vda.qcow2" >/dev/null || fail "frozen image differs"
pass "qemu-img compare: mount and store read the same"

qemu-img convert -O qcow2 "$M/web1/disks/vda.qcow2" "$TMP/flat.qcow2" || fail "convert through the mount"
qemu-img compare "$TMP/flat.qcow2" "$S/web1/disks/vda.qcow2" >/dev/null || fail "converted copy differs"
pass "qemu-img convert reads the whole chain through the mount"

unmount_fs "$M"
