#!/bin/bash
# A revert writes only a definition the daemon itself accepts (issue 16,
# item 10). The definition a revert restores is the snapshot's <domain>;
# one that names a disk outside the store (a snapshot.xml edited by hand,
# or planted) used to be written as domain.xml, and every later operation
# on the VM refused it: a VM nothing could change again. The restored
# definition now passes the checks every operation makes of domain.xml
# first (vm_check_definition); the revert is refused with EINVAL, one log
# line says why, nothing changes, and the VM still takes and deletes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate xmllint

S=$TMP/store M=$TMP/mnt O=$TMP/outside
make_vm "$S" vm 1
mkdir -p "$O"
qemu-img create -q -f qcow2 "$O/x.qcow2" 16M || fail "cannot make $O/x.qcow2"
mount_fs "$S" "$M"
qemu-io -f qcow2 -c "write -q -P 0x31 1M 1M" "$M/vm/disks/vda.qcow2" >/dev/null || fail "write 0x31"
mkdir "$M/vm/snapshots/s1" || fail "mkdir s1"
qemu-io -f qcow2 -c "write -q -P 0x32 2M 1M" "$M/vm/disks/vda.qcow2" >/dev/null || fail "write 0x32"

# s1's <domain> gains a writable disk vdb outside the store (the file
# is edited in the store, as a hand or a tenant would).
x=$S/vm/snapshots/s1/snapshot.xml
disk="<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$O/x.qcow2'/><target dev='vdb' bus='virtio'/></disk>"
sed -i "s|</devices>|$disk</devices>|" "$x" || fail "cannot edit $x"
grep -q "$O/x.qcow2" "$x" || fail "$x does not name the outside disk"

before=$(tree_state "$S/vm") outside=$(tree_state "$O")
expect_refusal "revert to s1 whose <domain> names a disk outside the store" "Invalid argument" \
    "snapshot s1: its definition would not be usable: disk vdb: its <source file> is $O/x.qcow2, not the store's active image" \
    ln -sfn snapshots/s1 "$M/vm/current"
[ "$(tree_state "$S/vm")" = "$before" ] || fail "the refused revert changed the VM"
[ "$(tree_state "$O")" = "$outside" ] || fail "the refused revert changed the outside disk"
grep -q "$O" "$S/vm/domain.xml" && fail "domain.xml names the outside disk"
journal_empty "$S"
out=$(qemu-io -r -f qcow2 -c "read -P 0x31 1M 1M" -c "read -P 0x32 2M 1M" "$M/vm/disks/vda.qcow2" 2>&1) ||
    fail "vda after the refused revert: $out"
pass "revert to a snapshot whose <domain> names a disk outside the store: EINVAL, one log line, nothing changed"

# The VM still changes: a take, a delete (its merge included).
mkdir "$M/vm/snapshots/s2" || fail "mkdir s2 after the refused revert"
qemu-io -f qcow2 -c "write -q -P 0x33 3M 1M" "$M/vm/disks/vda.qcow2" >/dev/null || fail "write 0x33"
rmdir "$M/vm/snapshots/s2" || fail "rmdir s2 after the refused revert"
sync "$M/vm" || fail "sync vm after rmdir s2"
out=$(qemu-io -r -f qcow2 -c "read -P 0x31 1M 1M" -c "read -P 0x32 2M 1M" -c "read -P 0x33 3M 1M" \
    "$M/vm/disks/vda.qcow2" 2>&1) || fail "vda after take and delete: $out"
out=$(qemu-io -r -f qcow2 -c "read -P 0x31 1M 1M" -c "read -P 0 2M 2M" "$M/vm/snapshots/s1/vda.qcow2" 2>&1) ||
    fail "s1 after take and delete: $out"
unmount_fs "$M"
check_store "$S" vm
pass "after the refused revert the VM takes and deletes, and reads as it should"
