#!/bin/bash
# A chain that ends in a raw base (allowed by the store format: SPEC §1)
# is walked with each image's recorded format: the raw file is never
# read as a qcow2 header (issue 16, item 8). Before, deleting the
# snapshot just above the base pulled its image into the active one and
# then walked the new backing chain as qcow2 from the raw file: the
# delete failed after its commit and left a record no recovery could
# replay, so every later operation on the VM answered EIO.
#
# Both ways a delete runs: vmstorefs-ctl merges in the operation itself,
# the mount hides the image and its background worker merges (sync waits
# for it). Each time the guest data is checked from the store with
# qemu-io read -P and the whole disk with qemu-img compare against a
# flattened copy taken before, and the VM then takes and deletes again.
# The chain also opens through the mount, which serves the raw base where
# the store has it (read-only, as raw; nothing else of its directory).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate xmllint

S=$TMP/store M=$TMP/mnt
CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || skip "no vmstorefs-ctl beside $VMSTOREFS"

# raw_vm NAME: a VM whose vda is an overlay on base/vda.raw (0x10 at
# 0+1M), with snapshot s1 taken and 0x21 written at 1M+1M after it.
raw_vm() {
    make_vm "$S" "$1" 1 --raw-base
    mkdir -p "$S/.vmstorefs"
    "$CTL" "$S" take "$1" s1 >/dev/null 2>&1 || fail "$1: take s1"
    qemu-io -f qcow2 -c "write -q -P 0x21 1M 1M" "$S/$1/disks/vda.qcow2" >/dev/null ||
        fail "$1: write 0x21"
}

# flat VM OUT: what the guest reads on vda, as one standalone image.
flat() {
    qemu-img convert -U -f qcow2 -O qcow2 "$S/$1/disks/vda.qcow2" "$2" || fail "$1: cannot flatten vda"
}

# reads_as_before VM FLAT: the guest data is what it was (FLAT), the
# chain still ends in the raw base, and the store is sound.
reads_as_before() {
    local vm=$1 out
    out=$(qemu-io -r -f qcow2 -c "read -P 0x10 0 1M" -c "read -P 0x21 1M 1M" \
        -c "read -P 0 2M 1M" "$S/$vm/disks/vda.qcow2" 2>&1) || fail "$vm: guest data: $out"
    out=$(qemu-img compare -f qcow2 -F qcow2 "$S/$vm/disks/vda.qcow2" "$2" 2>&1) ||
        fail "$vm: differs from before the delete: $out"
    out=$(qemu-img info -U --backing-chain "$S/$vm/disks/vda.qcow2" 2>&1)
    grep -q "^image: .*/base/vda.raw$" <<<"$out" || fail "$vm: the chain no longer ends in the raw base: $out"
    check_store "$S" "$vm"
}

# still_changes VM HOW: a take and a delete of it work (HOW: ctl or mount).
still_changes() {
    local vm=$1 how=$2
    if [ "$how" = ctl ]; then
        "$CTL" "$S" take "$vm" s9 >/dev/null 2>&1 || fail "$vm: take s9 after the delete"
        "$CTL" "$S" delete "$vm" s9 >/dev/null 2>&1 || fail "$vm: delete s9 after the delete"
    else
        mkdir "$M/$vm/snapshots/s9" || fail "$vm: mkdir s9 after the delete"
        rmdir "$M/$vm/snapshots/s9" || fail "$vm: rmdir s9 after the delete"
        sync "$M/$vm" || fail "$vm: sync after rmdir s9"
    fi
}

# Without the mount: the delete's own merge (a pull onto the raw base).
raw_vm a
flat a "$TMP/a.before"
out=$("$CTL" "$S" delete a s1 2>&1) || fail "ctl delete a s1: $out"
[ ! -e "$S/a/snapshots/s1" ] || fail "a: s1 is still there"
reads_as_before a "$TMP/a.before"
still_changes a ctl
reads_as_before a "$TMP/a.before"
pass "vmstorefs-ctl delete of the snapshot above a raw base: merged, the data reads as before, take and delete work after it"

# through_mount VM: the chain opens through the mount as from the store:
# the raw base is served where the store has it (read-only, as raw),
# nothing else of base/ is, and the VM's listing does not show it.
through_mount() {
    local vm=$1 out img
    for img in disks/vda.qcow2 $( [ -e "$S/$vm/snapshots/s1" ] && echo snapshots/s1/vda.qcow2); do
        out=$(qemu-img compare -f qcow2 -F qcow2 "$M/$vm/$img" "$S/$vm/$img" 2>&1) ||
            fail "$vm: $img through the mount: $out"
    done
    out=$(qemu-io -r -f qcow2 -c "read -P 0x10 0 1M" -c "read -P 0x21 1M 1M" "$M/$vm/disks/vda.qcow2" 2>&1) ||
        fail "$vm: guest data through the mount: $out"
    cmp "$M/$vm/base/vda.raw" "$S/$vm/base/vda.raw" || fail "$vm: base/vda.raw differs through the mount"
    [ "$(ls "$M/$vm/base")" = vda.raw ] || fail "$vm: base/ lists $(ls "$M/$vm/base")"
    [ -e "$M/$vm/base/notes.txt" ] && fail "$vm: base/notes.txt, no image of a chain, is served"
    ls "$M/$vm" | grep -qx base && fail "$vm: the VM's listing shows base"
    expect_fail "$vm: write into the base" "Read-only file system" dd if=/dev/zero of="$M/$vm/base/vda.raw" bs=512 count=1 conv=notrunc
    expect_fail "$vm: rm of the base" "Operation not permitted" rm "$M/$vm/base/vda.raw"
}

# Through the mount: rmdir, and the background worker's merge.
raw_vm b
echo "not an image" >"$S/b/base/notes.txt"
flat b "$TMP/b.before"
mount_fs "$S" "$M"
through_mount b
pass "a chain ending in a raw base opens through the mount: the base is served read-only, as raw, and nothing else of base/"
rmdir "$M/b/snapshots/s1" || fail "rmdir b/snapshots/s1"
sync "$M/b" || fail "sync b: the background merge failed"
grep -q "merge of b disk vda (snapshot .*direction=pull.*done" "$DAEMON_LOG" ||
    fail "b: no merge was logged as done"
reads_as_before b "$TMP/b.before"
still_changes b mount
reads_as_before b "$TMP/b.before"
through_mount b
unmount_fs "$M"
pass "rmdir of the snapshot above a raw base through the mount: merged by the worker, the data reads as before, take and delete work after it"
