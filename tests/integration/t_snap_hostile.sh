#!/bin/bash
# Hostile store content meets the snapshot operations: links planted where
# a snapshot or snapshots/ would go, and journal records planted in
# .vmstorefs/journal. Nothing is ever written through a link or outside
# the store, the operation is refused, and the store stays mountable.
. "$(dirname "$0")/lib.sh"
need_fuse
need perl

S=$TMP/store M=$TMP/mnt O=$TMP/outside
sample_store "$S"
mkdir -p "$O/snapdir" "$O/snaps"
qemu-img create -q -f qcow2 "$O/snapdir/vda.qcow2" 64M
outside_before=$(tree_state "$O")

# (a) links where an operation would create or move something.
ln -s "$O/snapdir" "$S/web1/snapshots/evil"
ln -s /nonexistent "$S/web1/snapshots/dangling"
rmdir "$S/db1/snapshots" && ln -s "$O/snaps" "$S/db1/snapshots"
mount_fs "$S" "$M"
before=$(tree_state "$S")
expect_fail "rename onto a planted link" "File exists" rename_syscall "$M/web1/snapshots/configured" "$M/web1/snapshots/evil"
expect_fail "take under a planted link's name" "File exists" mkdir "$M/web1/snapshots/evil"
expect_fail "take under a dangling link's name" "File exists" mkdir "$M/web1/snapshots/dangling"
expect_fail "take in a VM whose snapshots/ is a link" "Invalid argument" mkdir "$M/db1/snapshots/new"
[ "$(tree_state "$S")" = "$before" ] || fail "a refused operation changed the store"
[ "$(tree_state "$O")" = "$outside_before" ] || fail "something was written outside the store"
qemu-img info -U --output=json "$S/web1/disks/vda.qcow2" |
    grep -q '"backing-filename": "../snapshots/configured/vda.qcow2"' || fail "the active image was rebased"
journal_empty "$S"
mkdir "$M/web1/snapshots/fine" || fail "a take next to the links failed"
unmount_fs "$M"
rm "$S/web1/snapshots/evil" "$S/web1/snapshots/dangling" "$S/db1/snapshots"
mkdir "$S/db1/snapshots"
pass "links where a snapshot would go: refused (EEXIST, EINVAL), nothing written through them"

# (b) planted journal records: each may touch only its own VM's directory
# and its own temporary directory. The mount goes on (logging the record
# it cannot use) and nothing is removed.
ID=11111111-1111-1111-1111-111111111111
vms() { tree_state "$S/web1" && tree_state "$S/db1" && ls -A "$S"; }
before=$(vms)
for steps in '{"do":"rmtree","a":"."}' '{"do":"rmtree","a":"db1"}' \
    '{"do":"rmtree","a":"web1/../db1"}' '{"do":"unlink","a":"/etc/hostname"}' \
    '{"do":"move","a":"db1/disks/vda.qcow2","b":"web1/x"}' \
    '{"do":"replace","a":"web1/disks/vda.qcow2","b":"db1/disks/vda.qcow2"}' \
    '{"do":"mkdir","a":"db1/new"}' '{"do":"mkdir","a":"web1/./x"}' \
    '{"do":"rebase","a":"web1/disks/vda.qcow2","b":"json:{}","fmt":"qcow2"}'; do
    printf '{"version":1,"id":"%s","op":"take","vm":"web1","committed":true,"steps":[%s]}\n' \
        "$ID" "$steps" >"$S/.vmstorefs/journal/$ID.json"
    : >"$DAEMON_LOG"
    mount_fs "$S" "$M"
    grep -q "not a journal record this version understands" "$DAEMON_LOG" ||
        fail "planted step $steps: not refused ($(cat "$DAEMON_LOG"))"
    read_pattern "$M/db1/disks/vda.qcow2" 0x44 0 2M
    unmount_fs "$M"
    rm "$S/.vmstorefs/journal/$ID.json"
    [ "$(vms)" = "$before" ] || fail "planted step $steps changed the store"
done
pass "planted journal records reaching outside their VM are refused; the store is served and intact"
