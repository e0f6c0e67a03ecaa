#!/bin/bash
# vmstorefs-ctl, the second front end on the core library: every command
# does on the store what its file operation does through the mount
# (checked on guest data with qemu-io and qemu-img compare), refusals
# exit 1 naming their errno and change nothing, and it shares the
# mount's locks and journal: a take is refused (EBUSY) while the mount
# has the active image open for writing, the mount shows what ctl did at
# once, and an operation a crash cut short in ctl is finished by the next
# mount.
. "$(dirname "$0")/lib.sh"
need_fuse
need virt-xml-validate

CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || fail "vmstorefs-ctl was not built next to $VMSTOREFS"
S=$TMP/store M=$TMP/mnt
sample_store "$S"

ctl() {
    "$CTL" "$S" "$@" 2>>"$TMP/ctl.err"
}
# refused "what" ERRNO CMD...: ctl exits 1 naming ERRNO, the store as it was.
refused() {
    local what=$1 errno=$2 before err st
    shift 2
    before=$(tree_state "$S")
    err=$("$CTL" "$S" "$@" 2>&1 >/dev/null)
    st=$?
    [ "$st" -eq 1 ] || fail "$what: exit status $st, expected 1 ($err)"
    grep -q ": $errno: " <<<"$err" || fail "$what: expected $errno, got: $err"
    [ "$(tree_state "$S")" = "$before" ] || fail "$what: refused, but the store changed"
}
current_is() {
    local got
    got=$(ctl current "$1") || fail "ctl current $1 failed: $(tail -n 1 "$TMP/ctl.err")"
    [ "$got" = "$2" ] || fail "ctl current $1: '$got', expected '$2'"
}

# Usage errors: status 2, nothing touched.
before=$(tree_state "$S")
"$CTL" "$S" take web1 >/dev/null 2>&1
[ $? -eq 2 ] || fail "a missing argument is not a usage error (2)"
"$CTL" "$S" frobnicate web1 >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unknown command is not a usage error (2)"
"$CTL" --help | grep -q 'take VM SNAP' || fail "--help does not list the commands"
[ "$(tree_state "$S")" = "$before" ] || fail "usage errors changed the store"
pass "usage errors exit 2 and change nothing"

# take, as mkdir snapshots/S: the active image moves into s1, a new empty
# overlay takes its place, current follows.
current_is web1 configured
ctl take web1 s1 || fail "ctl take web1 s1: $(tail -n 1 "$TMP/ctl.err")"
[ -f "$S/web1/snapshots/s1/vda.qcow2" ] && [ -f "$S/web1/snapshots/s1/snapshot.xml" ] ||
    fail "take made no snapshot s1 in the store"
current_is web1 s1
qemu-img info --output=json "$S/web1/disks/vda.qcow2" | grep -q '"backing-filename": "../snapshots/s1/vda.qcow2"' ||
    fail "the new active image does not back onto s1"
read_pattern "$S/web1/disks/vda.qcow2" 0x11 0 4M
read_pattern "$S/web1/disks/vda.qcow2" 0x22 4M 4M
check_store "$S"
pass "take: s1 holds the frozen image, the active disk reads the same"

qemu-io -f qcow2 -c 'write -q -P 0x33 8M 1M' "$S/web1/disks/vda.qcow2" >/dev/null ||
    fail "cannot write the active image"
ctl rename web1 s1 s2 || fail "ctl rename: $(tail -n 1 "$TMP/ctl.err")"
[ -d "$S/web1/snapshots/s2" ] && [ ! -e "$S/web1/snapshots/s1" ] || fail "rename did not move s1 to s2"
current_is web1 s2
read_pattern "$S/web1/disks/vda.qcow2" 0x33 8M 1M
check_store "$S"
pass "rename: s1 is s2, the chain still reads"

ctl revert web1 configured || fail "ctl revert: $(tail -n 1 "$TMP/ctl.err")"
current_is web1 configured
read_pattern "$S/web1/disks/vda.qcow2" 0 8M 1M
read_pattern "$S/web1/disks/vda.qcow2" 0x22 4M 4M
check_store "$S"
pass "revert: the write after s1 is gone, configured's data is back"

# delete with a merge: installed has one dependent (configured).
ctl delete web1 installed || fail "ctl delete: $(tail -n 1 "$TMP/ctl.err")"
[ ! -e "$S/web1/snapshots/installed" ] || fail "installed is still in the store"
read_pattern "$S/web1/disks/vda.qcow2" 0x11 0 4M
read_pattern "$S/web1/disks/vda.qcow2" 0x22 4M 4M
read_pattern "$S/web1/snapshots/configured/vda.qcow2" 0x11 0 4M
grep -q 'merge of web1 disk vda (snapshot installed): direction=' "$TMP/ctl.err" ||
    fail "ctl logged no merge line for the delete"
check_store "$S"
pass "delete: installed merged away, every image reads as before"

# clone of the current state: a standalone disk reading as the source.
ctl clone web1 web3 || fail "ctl clone: $(tail -n 1 "$TMP/ctl.err")"
grep -q '<name>web3</name>' "$S/web3/domain.xml" || fail "the clone is not named web3"
qemu-img info "$S/web3/disks/vda.qcow2" | grep -q '^backing file' && fail "the clone's disk has a backing file"
qemu-img compare -q "$S/web1/disks/vda.qcow2" "$S/web3/disks/vda.qcow2" ||
    fail "the clone's disk does not read as web1's"
ctl clone web1 web4 s2 || fail "ctl clone from s2: $(tail -n 1 "$TMP/ctl.err")"
qemu-img compare -q "$S/web1/snapshots/s2/vda.qcow2" "$S/web4/disks/vda.qcow2" ||
    fail "the clone from s2 does not read as s2"
check_store "$S"
pass "clone: web3 reads as web1 now, web4 as web1 was at s2"

refused "take with a bad name" EINVAL take web1 .bad
refused "take of a taken name" EEXIST take web1 s2
refused "revert to no snapshot" ENOENT revert web1 nosuch
refused "clone onto an existing VM" EEXIST clone web1 db1
pass "refusals exit 1 with their errno and change nothing"

ctl detach db1 vdb || fail "ctl detach: $(tail -n 1 "$TMP/ctl.err")"
[ ! -e "$S/db1/disks/vdb.qcow2" ] && ! grep -q "vdb.qcow2" "$S/db1/domain.xml" ||
    fail "detach left vdb in db1"
ctl undefine db1 || fail "ctl undefine: $(tail -n 1 "$TMP/ctl.err")"
[ ! -e "$S/db1/domain.xml" ] && [ -f "$S/db1/disks/vda.qcow2" ] || fail "undefine did not keep only the images"
ctl delete-vm web4 || fail "ctl delete-vm: $(tail -n 1 "$TMP/ctl.err")"
[ ! -e "$S/web4" ] || fail "web4 is still in the store"
journal_empty "$S"
pass "detach, undefine and delete-vm do what rm of the disk, of domain.xml and rmdir VM do"

# The same locks as the mount: a writer through the mount keeps ctl out.
mount_fs "$S" "$M"
qio_hold "$M/web1/disks/vda.qcow2" "$S/web1/disks/vda.qcow2"
refused "take while the mount has the active image open for writing" EBUSY take web1 busy
qio_release
# The kernel releases a closed FUSE file asynchronously: retry briefly.
for i in $(seq 20); do
    ctl take web1 live && break
    sleep 0.1
done
[ -d "$S/web1/snapshots/live" ] || fail "ctl take after the writer left: $(tail -n 1 "$TMP/ctl.err")"
[ -d "$M/web1/snapshots/live" ] || fail "the mount does not show the snapshot ctl took"
[ "$(readlink "$M/web1/current")" = "snapshots/live" ] || fail "the mount's current is not live"
read_pattern "$M/web1/disks/vda.qcow2" 0x22 4M 4M
pass "ctl and the mount share the VM's locks: EBUSY beside a writer, the mount shows ctl's take"
unmount_fs "$M"

# The same journal: a ctl crash after the commit is finished by a mount.
# The first crash point whose record is committed (the commit itself).
cp -a "$S" "$TMP/before"
for n in $(seq 1 20); do
    rm -rf "$S" && cp -a "$TMP/before" "$S" || fail "cannot restore the store"
    VMSTOREFS_CRASH_AT=take:$n "$CTL" "$S" take web1 cut >/dev/null 2>&1
    [ $? -eq 99 ] || fail "VMSTOREFS_CRASH_AT=take:$n did not stop ctl's take"
    grep -Eqs '"committed": ?true' "$S"/.vmstorefs/journal/*.json && break
done
grep -Eqs '"committed": ?true' "$S"/.vmstorefs/journal/*.json || fail "no crash point of ctl's take left a committed record"
mount_fs "$S" "$M"
journal_empty "$S"
grep -q 'journal: take of web1 finished (rolled forward)' "$DAEMON_LOG" ||
    fail "the mount did not roll ctl's take forward"
[ -d "$M/web1/snapshots/cut" ] || fail "the mount did not finish the take ctl committed"
[ "$(readlink "$M/web1/current")" = "snapshots/cut" ] || fail "current is not cut after recovery"
read_pattern "$M/web1/disks/vda.qcow2" 0x22 4M 4M
check_store "$S"
pass "a take committed by ctl and cut short (point $n) is finished by the next mount"
