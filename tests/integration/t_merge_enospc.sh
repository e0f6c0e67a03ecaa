#!/bin/bash
# A merge that would run out of space does not start (issue 15: what can
# fail is settled first). The store lives on a small tmpfs (in a private
# mount namespace). rmdir of a snapshot whose merge needs more room than
# is free still returns at once (it only changes the namespace); the
# background merge is refused with ENOSPC before anything is written,
# `sync VMDIR` says so, the snapshot stays gone and every image reads as
# before; once there is room, the next sync has the merge done.
. "$(dirname "$0")/privns.sh"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
need_fuse
need virt-xml-validate xmllint

FS=$TMP/fs S=$TMP/fs/store M=$TMP/mnt
mkdir -p "$FS"
mount -t tmpfs -o size=64M tmpfs "$FS" || skip "cannot mount a tmpfs"
trap 'umount -l "$FS"; cleanup' EXIT

# s1's image holds 8 MiB of its own, s2's 12 MiB: deleting s1 pulls it
# into s2's image, which needs about 8 MiB more.
make_vm "$S" vm 1
model_init vm 1 1048576 32
mount_fs "$S" "$M"
model_write "$M" vm vda 0 8 0x31
model_take "$M" vm s1
model_write "$M" vm vda 8 12 0x32
model_take "$M" vm s2
model_write "$M" vm vda 20 1 0x33

# Leave 4 MiB free.
avail=$(df --output=avail -B1 "$FS" | tail -n 1)
fallocate -l $((avail - 4 * 1048576)) "$FS/filler" || fail "cannot fill the tmpfs"
rmdir "$M/vm/snapshots/s1" || fail "rmdir s1 with 4 MiB free"
err=$(sync "$M/vm" 2>&1) && fail "sync vm succeeded though its merge has no room"
grep -q "No space left on device" <<<"$err" || fail "sync vm: $err, not ENOSPC"
grep -q "merges of vm: attempt 1 failed (No space left on device): the merges need up to [0-9]* KiB" "$DAEMON_LOG" ||
    fail "the refused merge is not logged with its reason"
model_forget vm s1
model_ok "$M" vm
[ -n "$(hidden_dirs "$S" vm)" ] || fail "s1's image is not kept hidden while its merge waits for room"
pass "no room for the merge: rmdir returned, the merge was refused with ENOSPC before it wrote anything, sync said so, vm reads as before"

rm "$FS/filler"
sync "$M/vm" || fail "sync vm once there is room"
model_ok "$M" vm
settled "$S" vm || fail "after the merge: $STORE_ERR"
store_ok "$S" vm
unmount_fs "$M"
pass "with room again, sync had the merge done: no hidden image left, vm reads as before"
