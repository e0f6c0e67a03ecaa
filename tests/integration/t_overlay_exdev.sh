#!/bin/bash
# A store on overlayfs (issue 15): a directory of the lower layer cannot
# be renamed there (EXDEV, unless the overlay has redirect_dir=on), so an
# operation that would move one (delete or rename of a snapshot made
# before the overlay, deleting the VM) is refused with EXDEV before its
# commit and changes nothing; `rm -r VM` stops at the first such rmdir and
# leaves no record for the next mount. What moves only files or
# directories the overlay made itself still works: take, write, revert,
# delete and rename of a new snapshot, clone and deleting the clone; and
# the merge of a hidden image of the lower layer, whose directory stays,
# empty.
# The lower layer is a store built with vmstorefs-ctl; upper and work are
# on a tmpfs; all of it in a private mount namespace.
. "$(dirname "$0")/privns.sh"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate xmllint perl

CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || fail "vmstorefs-ctl was not built next to $VMSTOREFS"
L=$TMP/lower U=$TMP/up S=$TMP/ov M=$TMP/mnt
mkdir -p "$U" "$S"

# The lower store: vm with s1 (0x11 in slot 0) <- s2 (0x22 in slot 1)
# <- active (0x33 in slot 2), built where the overlay will be (its XML
# names its images there), then moved to be the lower layer.
make_vm "$S" vm 1
qemu-io -c 'write -q -P 0x11 0 1M' "$S/vm/disks/vda.qcow2" >/dev/null || fail "write s1's data"
"$CTL" "$S" take vm s1 2>/dev/null || fail "ctl take s1"
qemu-io -c 'write -q -P 0x22 1M 1M' "$S/vm/disks/vda.qcow2" >/dev/null || fail "write s2's data"
"$CTL" "$S" take vm s2 2>/dev/null || fail "ctl take s2"
qemu-io -c 'write -q -P 0x33 2M 1M' "$S/vm/disks/vda.qcow2" >/dev/null || fail "write the active data"
# h: s1's image hidden in the lower layer (its dependents: s2's image and
# the active image, of a branch from s1).
make_vm "$S" h 1
qemu-io -c 'write -q -P 0x11 0 1M' "$S/h/disks/vda.qcow2" >/dev/null || fail "write h's s1 data"
"$CTL" "$S" take h s1 2>/dev/null || fail "ctl take h s1"
qemu-io -c 'write -q -P 0x22 1M 1M' "$S/h/disks/vda.qcow2" >/dev/null || fail "write h's s2 data"
"$CTL" "$S" take h s2 2>/dev/null && "$CTL" "$S" revert h s1 2>/dev/null || fail "ctl take h s2, revert h s1"
qemu-io -c 'write -q -P 0x33 2M 1M' "$S/h/disks/vda.qcow2" >/dev/null || fail "write h's branch"
"$CTL" "$S" delete h s1 2>/dev/null || fail "ctl delete h s1"
ls -d "$S"/h/snapshots/.hidden-* >/dev/null 2>&1 || fail "h's s1 is not hidden"
mv "$S" "$L" && mkdir "$S" || fail "cannot move the store to $L"

mount -t tmpfs -o size=256M tmpfs "$U" || skip "cannot mount a tmpfs"
mkdir "$U/upper" "$U/work"
mount -t overlay overlay -o "lowerdir=$L,upperdir=$U/upper,workdir=$U/work,redirect_dir=off" "$S" ||
    skip "cannot mount an overlayfs"
trap 'umount -l "$S"; umount -l "$U"; cleanup' EXIT
mount_fs "$S" "$M"

# reads IMAGE PAT0 PAT1 PAT2: slots 0, 1, 2 (1 MiB each) read so.
reads() {
    local img=$1 i=0 p
    shift
    for p in "$@"; do
        read_pattern "$img" "$p" "$((i++))M" 1M
    done
}

# vm_state: tree_state of vm but the sizes of directories: the overlay
# copies a directory up (its size is the upper file system's) when a
# file in it is opened for writing, as an operation's image locks do.
vm_state() {
    tree_state "$S/vm" | sed 's/^\(\S* \)[0-9]* \(7[0-7][0-7] \)/\1\2/'
}

# exdev "what" CMD...: CMD fails with EXDEV (the daemon logs why) and
# vm's files are as they were; nothing is left in the journal.
exdev() {
    local what=$1 before
    shift
    before=$(vm_state)
    expect_refusal "$what" "Invalid cross-device link" "refused .*EXDEV" "$@"
    [ "$(vm_state)" = "$before" ] || fail "$what: refused, but the store changed: $(diff <(echo "$before") <(vm_state))"
    journal_empty "$S"
}

exdev "rmdir of a lower snapshot" rmdir "$M/vm/snapshots/s1"
exdev "rename of a lower snapshot" rename_syscall "$M/vm/snapshots/s2" "$M/vm/snapshots/r2"
exdev "rmdir of a lower VM" rmdir "$M/vm"
reads "$M/vm/snapshots/s2/vda.qcow2" 0x11 0x22 0x00
reads "$M/vm/disks/vda.qcow2" 0x11 0x22 0x33
pass "lower directories: rmdir and rename of a snapshot, rmdir of the VM refused with EXDEV, nothing changed"

# What the overlay made itself moves.
qemu-io -c 'write -q -P 0x44 3M 1M' "$M/vm/disks/vda.qcow2" >/dev/null || fail "write through the mount"
mkdir "$M/vm/snapshots/t" || fail "take t on the overlay"
qemu-io -c 'write -q -P 0x55 0 1M' "$M/vm/disks/vda.qcow2" >/dev/null || fail "write after t"
rename_syscall "$M/vm/snapshots/t" "$M/vm/snapshots/t2" || fail "rename of the new snapshot t"
mkdir "$M/vm/snapshots/u" || fail "take u"
ln -sfn snapshots/t2 "$M/vm/current" || fail "revert to t2"
reads "$M/vm/disks/vda.qcow2" 0x11 0x22 0x33
read_pattern "$M/vm/disks/vda.qcow2" 0x44 3M 1M
rmdir "$M/vm/snapshots/u" || fail "delete of the new snapshot u"
sync "$M/vm" || fail "sync vm after deleting u"
mkdir "$M/vm/clones/c" || fail "clone of vm"
reads "$M/c/disks/vda.qcow2" 0x11 0x22 0x33
rmdir "$M/c" || fail "rmdir of the clone c"
[ ! -e "$M/c" ] && [ ! -e "$S/c" ] || fail "the clone c is still there"
reads "$M/vm/snapshots/t2/vda.qcow2" 0x11 0x22 0x33
reads "$M/vm/snapshots/s2/vda.qcow2" 0x11 0x22 0x00
journal_empty "$S"
check_store "$S" vm
pass "on the overlay: write, take, rename and delete of new snapshots, revert, clone and its rmdir work"

# A revert leaves the lower hidden image one dependent: it is merged
# (into s2's image, copied up), and its directory, which cannot move,
# stays behind empty rather than the merge failing for good.
ln -sfn snapshots/s2 "$M/h/current" || fail "revert h to s2"
sync "$M/h" || fail "sync h: the merge of the lower hidden image did not finish"
reads "$M/h/snapshots/s2/vda.qcow2" 0x11 0x22 0x00
reads "$M/h/disks/vda.qcow2" 0x11 0x22 0x00
[ -z "$(find "$S"/h/snapshots/.hidden-* -type f)" ] || fail "h's hidden image is still there"
journal_empty "$S"
check_store "$S" h
pass "a hidden image in the lower layer merged after a revert; its directory stays, empty"

# rm -r of the VM: the walk removes entries with their own meanings and
# stops at the first directory of the lower layer it cannot move; no
# record is left, the next mount serves the VM.
err=$(rm -r "$M/vm" 2>&1) && fail "rm -r vm succeeded on a lower VM"
grep -q "Invalid cross-device link" <<<"$err" || fail "rm -r vm: $err, not EXDEV"
journal_empty "$S"
unmount_fs "$M"
mount_fs "$S" "$M"
[ -d "$M/vm/snapshots/s1" ] || fail "s1 is gone after rm -r was refused"
journal_empty "$S"
unmount_fs "$M"
pass "rm -r of a lower VM: EXDEV, no record left, the next mount serves the VM"

# The operations' temporary directory on a file system of its own (a
# mount over .vmstorefs/tmp): the take's overlays are made there and its
# frozen names linked from the VM, which EXDEV forbids. The take probes
# the link before its commit and is refused with EXDEV, the VM
# unchanged, no record left (before the probe, the commit went through
# and its first rename out of tmp/ failed, leaving a record no replay
# could finish).
mount -t tmpfs -o size=64M,mode=0755 tmpfs "$S/.vmstorefs/tmp" || fail "cannot mount a tmpfs on .vmstorefs/tmp"
vm_state() { (cd "$S/h" && find . -printf '%p %s %i\n' | sort); }
before=$(vm_state)
mount_fs "$S" "$M"
expect_refusal "a take with .vmstorefs/tmp on another file system" "Invalid cross-device link" \
    "cannot give .* a second name" mkdir "$M/h/snapshots/x"
unmount_fs "$M"
[ "$(vm_state)" = "$before" ] || fail "the refused take changed h"
journal_empty "$S"
umount "$S/.vmstorefs/tmp" || fail "cannot unmount the tmpfs on .vmstorefs/tmp"
pass "a take with .vmstorefs/tmp on another file system: EXDEV before its commit, nothing changed"
