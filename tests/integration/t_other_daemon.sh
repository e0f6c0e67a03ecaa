#!/bin/bash
# What a second daemon on the store (two-daemon-soak found both) sees of
# an operation the other one is running, with that daemon stood in for
# by a process holding the VM's lock and changing the store by hand:
#   - an image whose chain the operation is changing (a step has moved a
#     backing file, the next one renames the dependent's backing name) is
#     busy, EBUSY; with no operation running, the same broken chain is
#     refused as ever (EACCES);
#   - a VM deleted while an operation waits for its lock: that operation
#     answers ENOENT (no such VM), not EINVAL (no usable domain.xml).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need perl

CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || fail "vmstorefs-ctl was not built next to $VMSTOREFS"
S=$TMP/store M=$TMP/mnt
make_vm "$S" vm 1
make_vm "$S" gone 1
"$CTL" "$S" take vm s1 2>/dev/null && "$CTL" "$S" take vm s2 2>/dev/null &&
    "$CTL" "$S" take gone s1 2>/dev/null || fail "ctl take"
mount_fs "$S" "$M"

IMG=$M/vm/snapshots/s2/vda.qcow2
mv "$S/vm/snapshots/s1/vda.qcow2" "$S/vm/snapshots/s1/vda.moved" || fail "mv s1's image"
lock_hold "$S/.vmstorefs/locks/vm"
expect_fail "open of an image whose chain an operation is changing" "Device or resource busy" \
    qemu-io -r -f qcow2 -c 'read 0 512' "$IMG"
lock_release
expect_fail "open of an image whose chain is broken" "Permission denied" \
    qemu-io -r -f qcow2 -c 'read 0 512' "$IMG"
mv "$S/vm/snapshots/s1/vda.moved" "$S/vm/snapshots/s1/vda.qcow2" || fail "mv s1's image back"
read_pattern "$IMG" "$(disk_pattern 0)" 0 1M
pass "a chain another daemon's operation is changing: EBUSY; broken with no operation: EACCES"

lock_hold "$S/.vmstorefs/locks/gone"
"$CTL" "$S" take gone s2 2>"$TMP/take.err" &
take=$!
# The take waits for the lock once it has it open.
for ((i = 0; i < 100; i++)); do
    ls -l "/proc/$take/fd" 2>/dev/null | grep -q "locks/gone$" && break
    kill -0 "$take" 2>/dev/null || break
    nap 0.02
done
ls -l "/proc/$take/fd" 2>/dev/null | grep -q "locks/gone$" || fail "the take did not wait for gone's lock"
rm -rf "$S/gone"
lock_release
wait "$take" && fail "the take of a VM deleted meanwhile succeeded"
grep -q "ENOENT" "$TMP/take.err" || fail "the take of a VM deleted meanwhile: $(cat "$TMP/take.err"), not ENOENT"
pass "a VM deleted while an operation waited for its lock: ENOENT"
unmount_fs "$M"
