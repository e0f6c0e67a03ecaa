#!/bin/bash
# The journal across a crash, as a user meets it: a daemon killed in the
# middle of a snapshot leaves a record; -o ro refuses that store with one
# line (it could not finish the operation) and changes nothing; a
# read-write mount finishes the operation before it serves anything, says
# so in its log, and leaves the journal and tmp/ empty.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt
sample_store "$S"

# Point 7 of a take of web1 (one disk) is past its commit.
VMSTOREFS_CRASH_AT=take:7 mount_fs "$S" "$M"
pid=$DAEMON_PID
mkdir "$M/web1/snapshots/new" 2>/dev/null && fail "the take finished: no crash at take:7"
status=0
wait "$pid" || status=$?
[ "$status" -eq 99 ] || fail "daemon exit status $status, expected 99"
fusermount3 -u -z "$M"
[ "$(ls "$S/.vmstorefs/journal" | wc -l)" -eq 1 ] || fail "no journal record after the crash"
pass "a crash past the commit leaves one journal record"

bad_mount "$S" "$M" "-o ro with an unfinished journal" "unfinished operation" \
    "$VMSTOREFS" "$S" "$M" -f -o ro

: >"$DAEMON_LOG"
mount_fs "$S" "$M"
grep -q "journal: take of web1 finished (rolled forward)" "$DAEMON_LOG" ||
    fail "the recovery is not in the log"
[ "$(readlink "$M/web1/current")" = snapshots/new ] || fail "current is not the new snapshot"
read_pattern "$M/web1/disks/vda.qcow2" 0x11 0 4M
read_pattern "$M/web1/disks/vda.qcow2" 0x22 4M 4M
read_pattern "$M/web1/disks/vda.qcow2" 0x33 8M 1M
check_store "$S"
unmount_fs "$M"
pass "the next read-write mount finished the take before serving; journal and tmp are empty"

# A crash before the commit is undone: no snapshot, nothing left over.
VMSTOREFS_CRASH_AT=take:2 mount_fs "$S" "$M"
pid=$DAEMON_PID
mkdir "$M/web1/snapshots/other" 2>/dev/null && fail "the take finished: no crash at take:2"
wait "$pid"
fusermount3 -u -z "$M"
: >"$DAEMON_LOG"
mount_fs "$S" "$M"
grep -q "journal: take of web1 undone (rolled back)" "$DAEMON_LOG" || fail "the rollback is not in the log"
[ ! -e "$S/web1/snapshots/other" ] || fail "a rolled-back snapshot exists"
[ -z "$(ls -A "$S/.vmstorefs/tmp")" ] || fail "tmp not empty after the rollback"
unmount_fs "$M"
pass "a crash before the commit is rolled back on the next mount"
