#!/bin/bash
# Deleting what is not a snapshot (SPEC §2): `rmdir VM` and `rm -r VM`
# delete the VM with its snapshots and images and merge nothing;
# `rm disks/DEV.qcow2` detaches the disk, keeping its frozen images while
# a snapshot needs them; `rm domain.xml` undefines the VM and keeps its
# images; `rm current` and `rmdir clones` change no data. Then EBUSY:
# deleting a VM or a snapshot whose images a qemu holds (a running VM, a
# backup reading a snapshot) or that is open for writing through the
# mount changes nothing, and works once the holder is gone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delfix.sh"
need_fuse
need virt-xml-validate xmllint perl qemu-nbd

S=$TMP/store M=$TMP/mnt
for vm in gone1 gone2 held busy det; do
    make_vm "$S" "$vm" 2
done
for vm in keep det0 undef drv; do
    make_vm "$S" "$vm" 1
done
check_store "$S"
mount_fs "$S" "$M"

# chain VM: snapshots s1 s2 s3, a revert to s1, s1 deleted (kept hidden:
# s2 and the active images grow from it), then s4: images no visible
# snapshot names, and a delete that must merge nothing.
chain() {
    m_init "$1" "$2"
    m_take "$1" s1 && m_take "$1" s2 && m_take "$1" s3
    m_revert "$1" s1
    m_delete "$1" s1 rmdir
    m_take "$1" s4
    m_check "$1" "$1: s1 s2 s3, revert s1, rmdir s1, s4"
    [ -n "$(hidden_images "$S" "$1")" ] || fail "$1: no hidden image to delete with the VM"
}

# vm_gone VM HOW: HOW (rmdir or rm) deletes VM; no merge, nothing left.
vm_gone() {
    local vm=$1 how=$2 n0 others added
    others=$(tree_state "$S/keep")
    n0=$(wc -l <"$DAEMON_LOG")
    case $how in
        rmdir) rmdir "$M/$vm" || fail "rmdir $vm" ;;
        rm) rm -r "${M:?}/$vm" || fail "rm -r $vm" ;;
    esac
    added=$(tail -n +$((n0 + 1)) "$DAEMON_LOG")
    grep -q "merge of" <<<"$added" && fail "deleting $vm merged: $added"
    [ -e "$S/$vm" ] && fail "$how $vm: $S/$vm is still there: $(find "$S/$vm")"
    [ -e "$M/$vm" ] && fail "$how $vm: $M/$vm is still there"
    listed "$M" "$vm" && fail "$how $vm: still listed"
    [ "$(tree_state "$S/keep")" = "$others" ] || fail "$how $vm changed another VM"
    journal_empty "$S"
}

m_init keep 1
m_take keep k1
chain gone1 2
vm_gone gone1 rm
pass "rm -r of a VM with a chain and a hidden image deletes it all, merging nothing"
chain gone2 2
vm_gone gone2 rmdir
pass "rmdir of a VM with a chain and a hidden image deletes it all, merging nothing"
m_check keep "keep, after two VMs went"

# --- A VM a qemu runs (its active images held, the chains below them
# read) cannot be deleted, and rm -r of it changes nothing: each entry's
# removal is refused on its own (domain.xml too: the definition of a
# running VM stays).
m_init held 2
m_take held s1
before=$(tree_state "$S/held")
nbd_hold "$S/held/disks/vda.qcow2"
qio_hold "$S/held/disks/vdb.qcow2" "$S/held/disks/vdb.qcow2"
expect_fail "rmdir of a running VM" "Device or resource busy" rmdir "$M/held"
[ "$(tree_state "$S/held")" = "$before" ] || fail "a refused rmdir of a running VM changed it"
expect_fail "rm -r of a running VM" "Device or resource busy" rm -r "$M/held"
[ "$(tree_state "$S/held")" = "$before" ] || fail "a refused rm -r of a running VM changed it"
listed "$M" held || fail "held is no longer listed"
# The one entry rm -r could remove: current, which `rm current` alone
# hides with no data changed (back with the next take).
[ -L "$M/held/current" ] && fail "rm -r of the running held left current listed"
M_NOCUR[held]=1
nbd_release
qio_release
m_check held "held, after the refusals"
vm_gone held rmdir
pass "rmdir and rm -r of a VM a qemu runs are EBUSY and change nothing; once it stops, rmdir works"

# --- rm disks/vdb.qcow2: the disk leaves the definition; s1 keeps its image.
m_init det 2
m_take det s1
m_write det
rm "$M/det/disks/vdb.qcow2" || fail "rm det/disks/vdb.qcow2"
[ "$(xmllint --xpath "count(//devices/disk[target/@dev='vdb'])" "$S/det/domain.xml")" = 0 ] ||
    fail "det: domain.xml still has vdb"
[ -e "$S/det/disks/vdb.qcow2" ] && fail "det: the active image of vdb is still there"
[ "$(ls -A "$M/det/disks")" = vda.qcow2 ] || fail "det/disks lists $(ls -A "$M/det/disks")"
[ "$(ls -A "$M/det/snapshots/s1" | paste -sd' ')" = "vda.qcow2 vdb.qcow2" ] ||
    fail "det: s1 lists $(ls -A "$M/det/snapshots/s1")"
for root in "$M" "$S"; do
    expect_content "$root/det/snapshots/s1/vdb.qcow2" 1 "${M_CONT[det/${M_SNAP[det/s1]}]}" "rm vdb" det
    expect_content "$root/det/snapshots/s1/vda.qcow2" 0 "${M_CONT[det/${M_SNAP[det/s1]}]}" "rm vdb" det
    expect_content "$root/det/disks/vda.qcow2" 0 "${M_ACTIVE[det]}" "rm vdb" det
done
check_store "$S" det
check_no_orphans "$S" det
pass "rm disks/vdb.qcow2: vdb leaves domain.xml, its active image goes, s1's vdb image stays and reads as before"
n0=$(wc -l <"$DAEMON_LOG")
rmdir "$M/det/snapshots/s1" || fail "rmdir det/snapshots/s1"
sync "$M/det" || fail "sync det (its merges)"
merge_lines det "$n0"
[ "$MERGE_LINES" = "1 1" ] || fail "det: deleting s1 logged (started done) $MERGE_LINES, expected vda's merge only"
[ -z "$(find "$S/det" -name 'vdb*')" ] || fail "det: vdb's images outlive s1: $(find "$S/det" -name 'vdb*')"
for root in "$M" "$S"; do
    expect_content "$root/det/disks/vda.qcow2" 0 "${M_ACTIVE[det]}" "rmdir s1" det
done
check_store "$S" det
check_no_orphans "$S" det
pass "deleting s1 then merges vda and removes vdb's frozen image, which nothing needs any more"

rm "$M/det0/disks/vda.qcow2" || fail "rm det0/disks/vda.qcow2"
[ "$(xmllint --xpath "count(//devices/disk)" "$S/det0/domain.xml")" = 0 ] || fail "det0: domain.xml still has a disk"
[ -z "$(find "$S/det0" -name '*.qcow2')" ] || fail "det0: images left: $(find "$S/det0" -name '*.qcow2')"
check_store "$S" det0
pass "rm of the only disk of a VM with no snapshot: gone from domain.xml and from the store"

# --- rm domain.xml: the VM is undefined, its images stay. (Writing a new
# domain.xml is the import, which creating a file in the mount does not
# do yet.)
m_init undef 1
m_take undef s1
m_write undef
images=$(tree_state "$S/undef/disks")$(tree_state "$S/undef/snapshots")
rm "$M/undef/domain.xml" || fail "rm undef/domain.xml"
listed "$M" undef || fail "undef is no longer listed"
[ -e "$M/undef/domain.xml" ] && fail "undef/domain.xml is still in the mount"
[ -e "$S/undef/domain.xml" ] && fail "undef/domain.xml is still in the store"
[ "$(tree_state "$S/undef/disks")$(tree_state "$S/undef/snapshots")" = "$images" ] ||
    fail "rm domain.xml changed the images"
journal_empty "$S"
m_check undef "undef, undefined"
pass "rm domain.xml: the VM stays listed, undefined, with its images untouched and readable"
# A process walking a VM that was undefined before it (find keeps the
# VM's directory open) removes only what it names: here one disk, which
# must not take the whole VM with it.
find "$M/undef" -path '*/disks/vda.qcow2' -delete || fail "find -delete of undef's active image"
[ -d "$S/undef/snapshots/s1" ] && [ -e "$S/undef/snapshots/s1/vda.qcow2" ] ||
    fail "find -delete of one disk of an undefined VM deleted more than that disk"
[ -e "$S/undef/disks/vda.qcow2" ] && fail "find -delete left undef's active image"
check_store "$S" undef
pass "a walk of an already undefined VM removes only what it names (find -delete of one disk)"

# --- Derived entries: accepted, no data changes.
m_init drv 1
m_take drv s1 && m_take drv s2 && m_revert drv s1
before=$(tree_state "$S")
rm "$M/drv/current" || fail "rm drv/current"
rmdir "$M/drv/clones" || fail "rmdir drv/clones"
[ "$(tree_state "$S")" = "$before" ] || fail "rm current or rmdir clones changed the store"
[ -e "$M/drv/current" ] && fail "drv/current is still there after rm"
M_NOCUR[drv]=1
m_check drv "drv, after rm current and rmdir clones"
m_take drv s3 && m_check drv "drv: a take after rm current"
pass "rm current and rmdir clones are accepted and change no data; current is back with the next take"

# --- EBUSY for a snapshot delete.
m_init busy 2
m_take busy s1 && m_take busy s2 && m_take busy s3
m_check busy "busy: s1 s2 s3"
# refused_busy "what" CMD...: EBUSY, busy's store unchanged, and a log
# line for it saying which image is in use (logged once per operation,
# path and reason: an earlier identical refusal counts).
refused_busy() {
    local what=$1 before path
    shift
    before=$(tree_state "$S/busy")
    expect_fail "$what" "Device or resource busy" "$@"
    [ "$(tree_state "$S/busy")" = "$before" ] || fail "$what: refused, but the store changed"
    path=${!#}
    path=${path#"$M"}
    grep -q "refused [a-z]* ${path}[/:].*\(in use\|open for writing\)" "$DAEMON_LOG" ||
        fail "$what: no log line 'refused OP $path...: ... in use'"
    journal_empty "$S"
}
# (a) the VM runs: qemus hold both active images and read their chains
# (a qemu-nbd serves one image: a qemu-io holds vdb).
nbd_hold "$S/busy/disks/vda.qcow2"
qio_hold "$S/busy/disks/vdb.qcow2" "$S/busy/disks/vdb.qcow2"
refused_busy "rmdir of the current snapshot while the VM runs" rmdir "$M/busy/snapshots/s3"
refused_busy "rm -r of the current snapshot while the VM runs" rm -r "$M/busy/snapshots/s3"
refused_busy "rmdir of a snapshot in the running chain" rmdir "$M/busy/snapshots/s2"
refused_busy "rm of one image of a snapshot in the running chain" rm "$M/busy/snapshots/s2/vda.qcow2"
refused_busy "detach of a disk the VM runs on" rm "$M/busy/disks/vdb.qcow2"
nbd_release
qio_release
m_check busy "busy, after the refusals"
pass "deleting a snapshot in a running VM's chain (or one image of it) is EBUSY and changes nothing"
# (b) a qemu (a backup) reads s1's image.
nbd_hold "$S/busy/snapshots/s1/vdb.qcow2" -r
refused_busy "rmdir of a snapshot a qemu reads" rmdir "$M/busy/snapshots/s1"
nbd_release
pass "deleting a snapshot whose image a qemu reads is EBUSY"
# (c) a qemu writes the active vda through the mount.
qio_hold "$M/busy/disks/vda.qcow2" "$S/busy/disks/vda.qcow2"
refused_busy "rmdir of the current snapshot while a qemu writes through the mount" rmdir "$M/busy/snapshots/s3"
qio_release
# (d) a plain write handle on the active vdb.
exec 3<>"$M/busy/disks/vdb.qcow2"
refused_busy "rmdir of the current snapshot while vdb is open for writing" rmdir "$M/busy/snapshots/s3"
refused_busy "detach of a disk open for writing" rm "$M/busy/disks/vdb.qcow2"
exec 3>&-
# The kernel releases a closed FUSE file asynchronously: allow it 2 s.
n0=$(wc -l <"$DAEMON_LOG")
for i in $(seq 20); do
    rmdir "$M/busy/snapshots/s3" 2>/dev/null && break
    [ "$i" -lt 20 ] || fail "rmdir s3 still refused 2 s after the handles closed"
    sleep 0.1
done
# The rmdir only hid s3's images; sync waits for their merges.
sync "$M/busy" || fail "sync busy after rmdir s3"
m_forget busy s3
m_check busy "busy: rmdir s3 once the handles closed"
m_delete busy s2 rm && m_check busy "busy: rm -r s2"
m_delete busy s1 rmdir && m_check busy "busy: rmdir s1"
pass "a qemu writing through the mount, or a write handle, makes a delete EBUSY until closed; then it works"

check_store "$S"
unmount_fs "$M"
