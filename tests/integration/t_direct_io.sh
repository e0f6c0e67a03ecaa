#!/bin/bash
# O_DIRECT writers (qemu with cache=none, qemu-img -t none, dd
# oflag=direct) write active images through the mount: libfuse's buffers
# are not aligned as O_DIRECT wants, and offsets and sizes need not be
# either. What they write is read back through the mount (O_DIRECT too)
# and from the store.
. "$(dirname "$0")/lib.sh"
need_fuse
need cmp dd

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"
A=$M/db1/disks/vda.qcow2 SA=$S/db1/disks/vda.qcow2

out=$(qemu-io -t none -f qcow2 -c 'write -P 0x5a 0 64k' -c 'write -P 0x5b 1M 1M' "$A" 2>&1) ||
    fail "qemu-io -t none write through the mount: $out"
out=$(qemu-io -t none -r -f qcow2 -c 'read -P 0x5a 0 64k' -c 'read -P 0x5b 1M 1M' "$A" 2>&1) ||
    fail "qemu-io -t none read back through the mount: $out"
read_pattern "$SA" 0x5a 0 64k
read_pattern "$SA" 0x5b 1M 1M
qemu-img check -q "$SA" || fail "image corrupt after O_DIRECT writes through the mount"
pass "qemu-io -t none writes through the mount, reads back and lands in the store"

qemu-img create -q -f qcow2 "$TMP/src.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x6c 4M 512k' "$TMP/src.qcow2" >/dev/null
out=$(qemu-img convert -t none -n -f qcow2 -O qcow2 "$TMP/src.qcow2" "$A" 2>&1) ||
    fail "qemu-img convert -t none -n onto an image in the mount: $out"
read_pattern "$SA" 0x6c 4M 512k
pass "qemu-img convert -t none -n writes onto an image in the mount"

# dd with sizes and offsets no device block fits, and aligned ones.
B=$M/db1/disks/vdb.qcow2 SB=$S/db1/disks/vdb.qcow2
head -c 1000 /dev/urandom >"$TMP/odd"
head -c 65536 /dev/urandom >"$TMP/even"
dd if="$TMP/odd" of="$B" bs=1000 seek=3 oflag=direct conv=notrunc status=none ||
    fail "dd oflag=direct bs=1000 into an image in the mount"
dd if="$TMP/even" of="$B" bs=64k seek=2 oflag=direct conv=notrunc status=none ||
    fail "dd oflag=direct bs=64k into an image in the mount"
cmp -n 1000 "$TMP/odd" <(tail -c +3001 "$SB") || fail "unaligned O_DIRECT write not in the store"
cmp -n 65536 "$TMP/even" <(tail -c +131073 "$SB") || fail "aligned O_DIRECT write not in the store"
cmp -n 65536 "$TMP/even" <(dd if="$B" bs=64k skip=2 count=1 iflag=direct status=none) ||
    fail "O_DIRECT read through the mount differs"
pass "dd oflag=direct writes, aligned or not, land in the store"

unmount_fs "$M"
