#!/bin/bash
# mv VM NEW at the root of the mount renames the VM (SPEC: `mv <vm> <new>`):
# its directory, <name> and every path in domain.xml and in its snapshots'
# snapshot.xml (their <domain> too, which a revert restores), and its
# clones' lineage. On a VM with two snapshots branching from a deleted
# one (its images hidden, read by both chains) and a clone with a
# snapshot of its own:
#  - after `mv two neo` every snapshot and active disk reads as before
#    through the mount, `current` and the listing are unchanged, the XML
#    names neo (and validates), the clone lists under neo/clones and its
#    lineage (domain.xml and its snapshot's <domain>) names neo; two is
#    gone; take, revert, delete and clone work on neo; a VM made under the
#    old name (a clone named two) starts afresh: no clone listed, no link
#    of the old VM's;
#  - refusals change nothing and log one line: EEXIST (a VM, `mv two c1`
#    into it, a file in the store), EINVAL (a bad name, into a VM's
#    directory: no snapshot taken by mv's copy), EBUSY (a qemu on an image
#    through the mount or on the store's file, a merge of the VM running);
#  - vmstorefs-ctl rename-vm is the same call;
#  - the daemon killed at each durable point of the rename
#    (VMSTOREFS_CRASH_AT=vmrename:N): after a remount the VM is whole
#    under exactly one name, with its data, rolled back before the commit
#    and forward from it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate xmllint
crash_sampling

S=$TMP/store M=$TMP/mnt
CTL=${VMSTOREFS%/*}/vmstorefs-ctl
MAX_POINTS=40

qio() {
    qemu-io -f qcow2 -c "write -q -P $2 $3 64k" "$1" >/dev/null || fail "fixture: write $1"
}

# ---- the fixture ----
make_vm "$S" two 2
echo notes >"$S/notes"
mount_fs "$S" "$M"
V=$M/two
mkdir "$V/snapshots/S1" || fail "fixture: mkdir S1"
qio "$V/disks/vda.qcow2" 0x41 1M
qio "$V/disks/vdb.qcow2" 0x42 1M
mkdir "$V/snapshots/S2" || fail "fixture: mkdir S2"
ln -sfn snapshots/S1 "$V/current" || fail "fixture: revert to S1"
qio "$V/disks/vda.qcow2" 0x51 2M
qio "$V/disks/vdb.qcow2" 0x52 2M
mkdir "$V/snapshots/S3" || fail "fixture: mkdir S3"
rmdir "$V/snapshots/S1" || fail "fixture: rmdir S1"
qio "$V/disks/vda.qcow2" 0x61 3M
mkdir "$V/clones/c1" || fail "fixture: clone c1"
mkdir "$M/c1/snapshots/k" || fail "fixture: c1's snapshot k"
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
hidden=("$S"/two/snapshots/.hidden-*)
[ ${#hidden[@]} -eq 1 ] && [ -d "${hidden[0]}" ] ||
    fail "fixture: S1 deleted with two dependents left no hidden image: $(ls -a "$S/two/snapshots")"
cp -a "$S" "$TMP/fix" || fail "fixture: cannot keep a copy"

# What each image of the VM reads (relative to its directory): image,
# pattern, offset, length.
DATA=(
    snapshots/S2/vda.qcow2 0x10 0 1M snapshots/S2/vda.qcow2 0x41 1M 64k
    snapshots/S2/vda.qcow2 0 2M 64k
    snapshots/S2/vdb.qcow2 0x11 0 1M snapshots/S2/vdb.qcow2 0x42 1M 64k
    snapshots/S3/vda.qcow2 0x10 0 1M snapshots/S3/vda.qcow2 0 1M 64k
    snapshots/S3/vda.qcow2 0x51 2M 64k
    snapshots/S3/vdb.qcow2 0x11 0 1M snapshots/S3/vdb.qcow2 0x52 2M 64k
    disks/vda.qcow2 0x10 0 1M disks/vda.qcow2 0 1M 64k disks/vda.qcow2 0x51 2M 64k
    disks/vda.qcow2 0x61 3M 64k
    disks/vdb.qcow2 0x11 0 1M disks/vdb.qcow2 0x52 2M 64k
)

# xml_is FILE XPATH WANT "what"
xml_is() {
    local got
    got=$(xmllint --xpath "string($2)" "$1" 2>&1)
    [ "$got" = "$3" ] || fail "$4: $1: $2 is '$got', not '$3'"
}

# expect_vm NAME OLD "what": the VM is whole under NAME and nothing is
# left of it under OLD: its data through the mount, current, the
# listing, the hidden image, the XML (names, paths, validity: check_store
# validates every file with one xmllint per kind), the clone's lineage.
expect_vm() {
    local vm=$1 old=$2 what=$3 i f out
    local -a reads=()
    [ -d "$S/$vm" ] && [ ! -e "$S/$old" ] || fail "$what: not under $vm alone: $(ls "$S")"
    for ((i = 0; i < ${#DATA[@]}; i += 4)); do
        reads+=("$M/$vm/${DATA[i]}" "${DATA[i + 1]}" "${DATA[i + 2]}" "${DATA[i + 3]}")
    done
    read_patterns "${reads[@]}"
    [ "$(readlink "$M/$vm/current")" = snapshots/S3 ] ||
        fail "$what: current is '$(readlink "$M/$vm/current")'"
    out=$(ls "$M/$vm/snapshots")
    [ "$out" = $'S2\nS3' ] || fail "$what: snapshots listed: $out"
    [ -d "$S/$vm/${hidden[0]##*/two/}" ] || fail "$what: the hidden image's directory is gone"
    xml_is "$S/$vm/domain.xml" /domain/name "$vm" "$what"
    for f in "$S/$vm"/snapshots/S*/snapshot.xml; do
        xml_is "$f" /domainsnapshot/domain/name "$vm" "$what"
        grep -q "file=\"$S/$vm/disks/vda.qcow2\"" "$f" || fail "$what: $f names no $S/$vm/disks/vda.qcow2"
    done
    grep -q "file=\"$S/$vm/snapshots/S3/vda.qcow2\"" "$S/$vm/domain.xml" ||
        fail "$what: domain.xml's chain does not name $S/$vm/snapshots/S3"
    out=$(grep -rl --include='*.xml' -- "$S/$old/" "$S")
    [ -z "$out" ] || fail "$what: still naming $S/$old/: $out"
    for f in "$S/c1/domain.xml" "$S/c1/snapshots/k/snapshot.xml"; do
        xml_is "$f" "//*[local-name()='clone']/@source" "$vm" "$what: c1's lineage"
    done
    out=$(ls "$M/$vm/clones")
    [ "$out" = c1 ] || fail "$what: $vm/clones lists '$out'"
    check_store "$S"
}

# ---- the rename through the mount, and its refusals ----
mount_fs "$S" "$M"
expect_vm two neo "before"
ln -s snapshots/S2 "$M/two/pend" || fail "a pending link in two"
before=$(tree_state "$S")
expect_refusal "rename onto a VM" "File exists" "refused rename /two: c1 already exists" \
    mv -T "$M/two" "$M/c1"
# (`mv two c1` asks this; GNU mv then words the EEXIST its own way.)
expect_refusal "rename into an existing VM" "File exists" "refused rename /two: VM c1 already exists" \
    rename_syscall "$M/two" "$M/c1/two"
expect_refusal "rename onto a file of the store" "File exists" \
    "refused rename /two: notes already exists" rename_syscall "$M/two" "$M/notes"
expect_refusal "rename to a bad name" "Invalid argument" "not a valid VM name" \
    rename_syscall "$M/two" "$M/bad name"
expect_refusal "rename into a VM's directory" "Invalid argument" "renamed at the root of the mount" \
    rename_syscall "$M/two" "$M/c1/disks/two"
# GNU mv words EINVAL so; no copy follows (EXDEV would: its mkdir there
# would take a snapshot).
expect_refusal "mv into a VM's snapshots/" "subdirectory of itself" \
    "renamed at the root of the mount" mv "$M/two" "$M/c1/snapshots/"
[ "$(ls "$M/c1/snapshots")" = k ] || fail "mv into c1/snapshots/ left a snapshot there"
qio_hold "$M/two/disks/vdb.qcow2" "$S/two/disks/vdb.qcow2"
expect_refusal "rename while a qemu writes through the mount" "Device or resource busy" \
    "refused rename /two: .*\(in use\|open for writing\)" mv -T "$M/two" "$M/neo"
qio_release
qio_hold "$S/two/disks/vda.qcow2" "$S/two/disks/vda.qcow2"
expect_refusal "rename while a qemu holds an image" "Device or resource busy" \
    "in use (a qemu holds its image lock)" mv -T "$M/two" "$M/neo"
qio_release
[ "$(tree_state "$S")" = "$before" ] || fail "a refused rename changed the store"
pass "refused: EEXIST onto a VM, into one, onto a file; EINVAL bad name, into a directory; EBUSY a qemu; nothing changed"

stat "$M/two/domain.xml" >/dev/null || fail "stat two/domain.xml"
mv "$M/two" "$M/neo" || fail "mv two neo"
grep -q "renamed VM two to neo" "$DAEMON_LOG" || fail "no log line for the rename"
# What the kernel knew of two's domain.xml (the node moves with the
# directory) is not what neo's is: the file was replaced.
[ "$(stat -c %.9Y "$M/neo/domain.xml")" = "$(stat -c %.9Y "$S/neo/domain.xml")" ] ||
    fail "neo/domain.xml has the old file's attributes through the mount"
expect_fail "the old name" "No such file" stat "$M/two"
grep -q "<name>neo</name>" "$M/neo/domain.xml" && ! grep -q "$S/two/" "$M/neo/domain.xml" ||
    fail "domain.xml read through the mount is not the renamed one"
expect_vm neo two "after mv"
pass "mv two neo: data, current, listing, hidden image, XML and the clone's lineage follow; two is gone"

# Operations on the new name, a revert restoring a snapshot's <domain>.
mkdir "$M/neo/snapshots/S4" && rmdir "$M/neo/snapshots/S4" || fail "take and delete on neo"
ln -sfn snapshots/S2 "$M/neo/current" || fail "revert neo to S2"
xml_is "$S/neo/domain.xml" /domain/name neo "after the revert"
read_patterns "$M/neo/disks/vda.qcow2" 0x41 1M 64k "$M/neo/disks/vda.qcow2" 0 2M 64k
mkdir "$M/neo/clones/c3" || fail "clone neo as c3"
xml_is "$S/c3/domain.xml" "//*[local-name()='clone']/@source" neo "c3's lineage"
sync "$M/neo" || fail "sync neo (its merges)"
check_store "$S"
pass "take, delete, revert (its definition named neo) and clone on neo"

# A VM made under the old name starts afresh.
mkdir "$M/neo/clones/two" || fail "clone neo as two"
[ -z "$(ls "$M/two/clones")" ] || fail "the new two lists clones: $(ls "$M/two/clones")"
! readlink "$M/two/pend" >/dev/null 2>&1 || fail "the new two has the old two's pending link"
[ -z "$(ls "$M/two/snapshots")" ] || fail "the new two has snapshots"
out=$(ls "$M/neo/clones")
[ "$out" = $'c1\nc3\ntwo' ] || fail "neo/clones lists '$out'"
pass "a clone named two is a new VM: no clones, links or snapshots of the old two"

# vmstorefs-ctl: the same call, beside the mount.
"$CTL" "$S" rename-vm c3 c4 2>"$TMP/ctl.err" || fail "ctl rename-vm c3 c4: $(cat "$TMP/ctl.err")"
[ -d "$S/c4" ] && [ ! -e "$S/c3" ] || fail "ctl rename-vm: $(ls "$S")"
xml_is "$S/c4/domain.xml" /domain/name c4 "ctl rename-vm"
expect_fail "ctl rename-vm onto a VM" "EEXIST" "$CTL" "$S" rename-vm c4 c1
pass "vmstorefs-ctl rename-vm"

# An undefined VM: the definition kept aside follows.
rm "$M/c4/domain.xml" || fail "undefine c4"
mv "$M/c4" "$M/c5" || fail "mv c4 c5 (undefined)"
xml_is "$S/c5/.domain.xml.undefined" /domain/name c5 "the kept definition"
grep -q "file=\"$S/c5/disks/vda.qcow2\"" "$S/c5/.domain.xml.undefined" &&
    ! grep -q "$S/c4/" "$S/c5/.domain.xml.undefined" || fail "the kept definition's paths"
"$CTL" "$S" define c5 || fail "define c5 again"
check_store "$S"
pass "an undefined VM renamed: its kept definition follows"

# Another VM naming files in the directory: a clone shares its source's
# read-only disk and CD-ROM.
make_vm "$S" r 1 --ro-and-cdrom
mkdir "$M/r/clones/rc" || fail "clone r as rc"
grep -q "file=\"$S/r/shared/cd.iso\"" "$S/rc/domain.xml" || fail "rc does not share r's CD-ROM"
mv "$M/r" "$M/r2" || fail "mv r r2"
grep -q "file=\"$S/r2/shared/cd.iso\"" "$S/rc/domain.xml" &&
    grep -q "file=\"$S/r2/shared/ro.qcow2\"" "$S/rc/domain.xml" &&
    ! grep -q "$S/r/" "$S/rc/domain.xml" || fail "rc's shared disks do not name r2: $(grep source "$S/rc/domain.xml")"
read_patterns "$M/rc/disks/vda.qcow2" 0x10 0 1M
check_store "$S"
pass "a clone's shared read-only disk and CD-ROM follow their VM's rename"

# A raw base outside disks/ and snapshots/ (its backing name relative, its
# path in domain.xml's chain absolute).
make_vm "$S" rb 1 --raw-base
mkdir "$M/rb/snapshots/s1" || fail "rb: snapshot"
mv "$M/rb" "$M/rb2" || fail "mv rb rb2"
grep -q "file=\"$S/rb2/base/vda.raw\"" "$S/rb2/domain.xml" || fail "rb2's chain does not name its raw base"
read_patterns "$M/rb2/disks/vda.qcow2" 0x10 0 1M "$M/rb2/snapshots/s1/vda.qcow2" 0x10 0 1M
check_store "$S"
pass "a VM on a raw base renamed: its chain reads through the mount"

# A merge of the VM running: the rename waits for the VM's lock, then EBUSY.
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
gate_init
make_vm "$S" m 1
mount_fs "$S" "$M" "${GATE_OPT[@]}"
mkdir "$M/m/snapshots/s1" && qio "$M/m/disks/vda.qcow2" 0x44 1M && mkdir "$M/m/snapshots/s2" ||
    fail "m: snapshots"
gate_delete m
expect_refusal "rename while a merge runs" "Device or resource busy" "refused rename /m" \
    mv -T "$M/m" "$M/m2"
gate_disarm
gate_cont "${GATED[@]}"
wait "$GATE_SYNC" || fail "sync m: $(cat "$TMP/sync.err")"
mv -T "$M/m" "$M/m2" || fail "mv m m2 once the merge is done"
read_patterns "$M/m2/disks/vda.qcow2" 0x10 0 1M "$M/m2/disks/vda.qcow2" 0x44 1M 64k
pass "a running merge keeps the VM's name (EBUSY); after it, the rename goes"

# A merge queued and not yet run follows the new name: q's is held back
# while a process has one of q's directories open (bgmerge.h: walkers),
# and `sync q2` waits for it under the new name.
make_vm "$S" q 1
mkdir "$M/q/snapshots/s1" && qio "$M/q/disks/vda.qcow2" 0x45 1M && mkdir "$M/q/snapshots/s2" ||
    fail "q: snapshots"
exec 9<"$M/q/snapshots" || fail "q: open snapshots/"
rmdir "$M/q/snapshots/s1" || fail "q: rmdir s1"
hidden_q=("$S"/q/snapshots/.hidden-*)
[ -d "${hidden_q[0]}" ] || fail "q: s1's image was not hidden: $(ls -a "$S/q/snapshots")"
mv -T "$M/q" "$M/q2" || fail "mv q q2 with a merge queued"
sync "$M/q2" || fail "sync q2"
exec 9<&-
! ls -d "$S"/q2/snapshots/.hidden-* >/dev/null 2>&1 ||
    fail "q2's hidden image was not merged: $(ls -a "$S/q2/snapshots")"
read_patterns "$M/q2/snapshots/s2/vda.qcow2" 0x10 0 1M "$M/q2/snapshots/s2/vda.qcow2" 0x45 1M 64k
pass "a merge queued when the VM was renamed runs under the new name"

# A VM whose chain does not read (its images cannot all be held): EINVAL.
make_vm "$S" bad 1
qemu-img rebase -u -F qcow2 -b ../snapshots/gone/vda.qcow2 "$S/bad/disks/vda.qcow2" ||
    fail "bad: rebase"
before=$(tree_state "$S")
expect_refusal "rename a VM whose chain is broken" "Invalid argument" \
    "refused rename /bad: its images could not all be held" rename_syscall "$M/bad" "$M/bad2"
[ "$(tree_state "$S")" = "$before" ] || fail "the refused rename of bad changed the store"
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
rm -rf "$S/bad"
pass "a VM whose chain is broken is not renamed (EINVAL), nothing changed"

# ---- crashes ----
restore() {
    rm -rf "$S" && cp -a "$TMP/fix" "$S" || fail "cannot restore the fixture"
}

rename_run() { mv -T "$M/two" "$M/neo"; }
rename_finished() { expect_vm neo two "$1 (no crash)"; }
rename_recovered() {
    if [ -d "$S/neo" ]; then
        expect_vm neo two "$1 (rolled forward)"
        CRASH_STATE=A
    else
        expect_vm two neo "$1 (rolled back)"
        CRASH_STATE=B
    fi
}
crash_loop "mv two neo" vmrename restore rename_run rename_finished rename_recovered
