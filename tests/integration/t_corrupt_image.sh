#!/bin/bash
# A merge that qemu-img could not even start (an image whose header
# qemu refuses: here an L1 table of 0x7fffffff entries) is refused before
# its operation commits, and the VM goes on accepting operations (issue
# 16, item 9). Before, the first data step failed after the commit and
# left a record no recovery could replay: every later operation on the
# VM answered EIO.
#   - vmstorefs-ctl delete (merges in the operation): EINVAL, the
#     reason names the image, nothing changes;
#   - rmdir through the mount (plans the merge the worker will run):
#     refused the same way, one log line;
#   - a hidden image that becomes mergeable later (its other dependent
#     discarded by a revert) and is damaged meanwhile: the worker's merge
#     is refused before it commits, sync says why, takes still work, and
#     once the image is repaired the merge runs.
# After every refusal the VM's directory in the store is as it was, and
# after the repair every image reads what it held (qemu-io read -P).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate xmllint od

S=$TMP/store M=$TMP/mnt
CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || skip "no vmstorefs-ctl beside $VMSTOREFS"

L1_AT=36 # the header's be32 L1 table size (QEMU docs/interop/qcow2.txt)
# damage IMAGE: its L1 table size becomes 0x7fffffff (SAVED keeps what it was).
damage() {
    SAVED=$(od -An -tx1 -j$L1_AT -N4 "$1" | tr -d ' \n')
    printf '\x7f\xff\xff\xff' | dd of="$1" bs=1 seek=$L1_AT conv=notrunc status=none ||
        fail "cannot damage $1"
    qemu-img info "$1" >/dev/null 2>&1 && fail "qemu-img still opens $1"
}
# repair IMAGE: what damage changed is put back (as qemu-img check -r
# would, by hand).
repair() {
    printf "$(sed 's/../\\x&/g' <<<"$SAVED")" | dd of="$1" bs=1 seek=$L1_AT conv=notrunc status=none ||
        fail "cannot repair $1"
    qemu-img check -q "$1" || fail "$1 is not whole again"
}
# reads ROOT IMAGE "PAT OFF LEN"...: the image reads so (qemu-io read -P).
reads() {
    local img=$1/$2 r out cmds=()
    shift 2
    for r in "$@"; do
        cmds+=(-c "read -P $r")
    done
    out=$(qemu-io -r -f qcow2 "${cmds[@]}" "$img" 2>&1) || fail "$img: expected $*: $out"
}
# vm_with_two VM: snapshots s1 (0x10 at 0+1M, 0x31 at 1M) and s2 (0x32
# at 2M) of vda, and 0x33 at 3M in the active image.
vm_with_two() {
    make_vm "$S" "$1" 1
    mkdir -p "$S/.vmstorefs"
    qemu-io -f qcow2 -c "write -q -P 0x31 1M 1M" "$S/$1/disks/vda.qcow2" >/dev/null &&
        "$CTL" "$S" take "$1" s1 >/dev/null 2>&1 &&
        qemu-io -f qcow2 -c "write -q -P 0x32 2M 1M" "$S/$1/disks/vda.qcow2" >/dev/null &&
        "$CTL" "$S" take "$1" s2 >/dev/null 2>&1 &&
        qemu-io -f qcow2 -c "write -q -P 0x33 3M 1M" "$S/$1/disks/vda.qcow2" >/dev/null ||
        fail "$1: cannot build s1 and s2"
}
ALL_ACTIVE=("0x10 0 1M" "0x31 1M 1M" "0x32 2M 1M" "0x33 3M 1M")

# 1. vmstorefs-ctl: the delete of s2 merges s2's image and the active
# one; qemu-img would open s1's image below them, which is damaged.
vm_with_two a
damage "$S/a/snapshots/s1/vda.qcow2"
before=$(tree_state "$S/a")
out=$("$CTL" "$S" delete a s2 2>&1) && fail "ctl delete a s2 succeeded over a damaged image"
grep -q "EINVAL: the merge of s2/vda cannot run: $S/a/snapshots/s1/vda.qcow2: L1 table too large" <<<"$out" ||
    fail "ctl delete a s2: expected EINVAL naming s1's image, got: $out"
[ "$(tree_state "$S/a")" = "$before" ] || fail "a: the refused delete changed the VM"
journal_empty "$S"
"$CTL" "$S" take a s3 >/dev/null 2>&1 || fail "a: take s3 after the refusal"
repair "$S/a/snapshots/s1/vda.qcow2"
out=$("$CTL" "$S" delete a s2 2>&1) || fail "a: delete s2 once repaired: $out"
"$CTL" "$S" delete a s3 >/dev/null 2>&1 || fail "a: delete s3 once repaired"
reads "$S" a/disks/vda.qcow2 "${ALL_ACTIVE[@]}"
reads "$S" a/snapshots/s1/vda.qcow2 "0x10 0 1M" "0x31 1M 1M" "0 2M 2M"
check_store "$S" a
pass "ctl delete over a damaged image: EINVAL naming it, nothing changed, take works; once repaired the delete runs and every image reads as before"

# 2. Through the mount: rmdir s2 plans the merge the worker would run.
vm_with_two b
mount_fs "$S" "$M"
damage "$S/b/snapshots/s1/vda.qcow2"
before=$(tree_state "$S/b")
expect_refusal "rmdir s2 over a damaged image" "Invalid argument" \
    "refused rmdir /b/snapshots/s2: the merge of s2/vda cannot run: $S/b/snapshots/s1/vda.qcow2: L1 table too large" \
    rmdir "$M/b/snapshots/s2"
[ "$(tree_state "$S/b")" = "$before" ] || fail "b: the refused rmdir changed the VM"
[ -d "$M/b/snapshots/s2" ] || fail "b: s2 left the listing"
mkdir "$M/b/snapshots/s3" || fail "b: mkdir s3 after the refusal"
repair "$S/b/snapshots/s1/vda.qcow2"
rmdir "$M/b/snapshots/s2" || fail "b: rmdir s2 once repaired"
rmdir "$M/b/snapshots/s3" || fail "b: rmdir s3 once repaired"
sync "$M/b" || fail "b: sync once repaired"
reads "$M" b/disks/vda.qcow2 "${ALL_ACTIVE[@]}"
reads "$M" b/snapshots/s1/vda.qcow2 "0x10 0 1M" "0x31 1M 1M" "0 2M 2M"
pass "rmdir over a damaged image: EINVAL and one log line naming it, nothing changed, mkdir works; once repaired the deletes run and every image reads as before"

# 3. The worker's merge meets the damage: s1's image is hidden with two
# dependents (s2's image, and the overlay a revert to s1 made), damaged,
# then down to one when rmdir s2 removes s2's image (nothing to merge:
# the rmdir succeeds); the worker's merge of it is refused before it
# commits.
vm_with_two c
ln -sfn snapshots/s1 "$M/c/current" || fail "c: revert to s1"
qemu-io -f qcow2 -c "write -q -P 0x34 3M 1M" "$M/c/disks/vda.qcow2" >/dev/null || fail "c: write 0x34"
rmdir "$M/c/snapshots/s1" || fail "c: rmdir s1 (two dependents: hidden)"
sync "$M/c" || fail "c: sync after rmdir s1"
hidden=$(echo "$S"/c/snapshots/.hidden-*/vda.qcow2)
[ -f "$hidden" ] || fail "c: s1's image is not hidden"
damage "$hidden"
rmdir "$M/c/snapshots/s2" || fail "c: rmdir s2 (no dependent: removed)"
before=$(tree_state "$S/c")
err=$(sync "$M/c" 2>&1) && fail "c: sync succeeded though the merge cannot run"
grep -q "Invalid argument" <<<"$err" || fail "c: sync: expected EINVAL, got: $err"
grep -q "merges of c: attempt [0-9]* failed (Invalid argument): the merge of .hidden-[0-9a-f]*/vda cannot run: $hidden: L1 table too large" "$DAEMON_LOG" ||
    fail "c: the refused merge is not logged naming the image"
[ "$(tree_state "$S/c")" = "$before" ] || fail "c: the refused merge changed the VM"
journal_empty "$S"
mkdir "$M/c/snapshots/s3" || fail "c: mkdir s3 after the refused merge"
repair "$hidden"
rmdir "$M/c/snapshots/s3" || fail "c: rmdir s3 once repaired"
sync "$M/c" || fail "c: sync once repaired"
lists_nothing "$S/c/snapshots" || fail "c: left in snapshots/: $(ls -A "$S/c/snapshots")"
reads "$M" c/disks/vda.qcow2 "0x10 0 1M" "0x31 1M 1M" "0 2M 1M" "0x34 3M 1M"
unmount_fs "$M"
check_store "$S"
pass "the worker's merge over a damaged hidden image: refused before its commit, sync says EINVAL, mkdir works; once repaired it runs and the active image reads as before"
