#!/bin/bash
# A power cut, not only a kill (issue 15). The crash tests stop the
# process and keep the page cache, so an fsync missing or out of order
# cannot show there. Here each operation runs through vmstorefs-ctl (the
# same core and journal as the mount, no FUSE, merges done before it
# returns) under strace -f, which records what it and its qemu-img
# children asked of the file system, and fsync_rules.pl checks the
# orders a power cut needs (its header states the rules: what is renamed
# into place is synced first, changed directories and written files are
# synced before each journal mark and the reply, the journal directory
# right after each record, nobody reads another's unsynced writes, and
# after the commit each step is durable before the next one changes
# anything).
#
# Operations: take (on a store with no .vmstorefs yet: the first one
# makes it), rename (with no format file: it is written), revert (with
# no .vmstorefs/tmp: it is made), delete merging in each direction (commit:
# the deleted snapshot holds more than its dependent; pull: the other way
# round), a partial delete (one disk's image), clone (of the current
# state and of a snapshot), detach, undefine, delete-vm, and recoveries
# of a take and of a delete cut short after their commits. First the
# checker itself must fail synthetic traces that break the rules.
. "$(dirname "$0")/lib.sh"
need strace perl qemu-img qemu-io

CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || fail "vmstorefs-ctl was not built next to $VMSTOREFS"
RULES=$TOP_SRCDIR/tests/integration/fsync_rules.pl
S=$TMP/store
mkdir "$S"
S=$(realpath "$S")

# The checker can fail: a trace of a prepared file renamed into place
# unsynced, a directory changed and never synced, a record written over
# an unsynced data write, and a read of another process's unsynced write
# (not of another thread's).
cat >"$TMP/bad.trace" <<EOF
100 openat(AT_FDCWD<$S>, "$S/.vmstorefs/tmp/op/domain.xml", O_WRONLY|O_CREAT|O_EXCL, 0644) = 3<$S/.vmstorefs/tmp/op/domain.xml>
100 write(3<$S/.vmstorefs/tmp/op/domain.xml>, "<domain/>", 9) = 9
100 renameat(4<$S/.vmstorefs/tmp/op>, "domain.xml", 5<$S/vm>, "domain.xml") = 0
100 mkdirat(5<$S/vm>, "snapshots", 0755) = 0
100 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD}, 88) = 101
101 pwrite64(6<$S/vm/disks/vda.qcow2>, "QFI", 3, 0) = 3
101 +++ exited with 0 +++
100 pread64(7<$S/vm/disks/vda.qcow2>, "QFI", 3, 0) = 3
100 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM}, 88) = 102
102 pwrite64(6<$S/vm/disks/vdb.qcow2>, "QFI", 3, 0) = 3
100 pread64(7<$S/vm/disks/vdb.qcow2>, "QFI", 3, 0) = 3
100 openat(AT_FDCWD<$S>, "$S/.vmstorefs/journal/.op.tmp", O_WRONLY|O_CREAT|O_EXCL, 0644) = 8<$S/.vmstorefs/journal/.op.tmp>
100 write(8<$S/.vmstorefs/journal/.op.tmp>, "{}", 2) = 2
100 fsync(8<$S/.vmstorefs/journal/.op.tmp>) = 0
100 renameat(9<$S/.vmstorefs/journal>, ".op.tmp", 9<$S/.vmstorefs/journal>, "op.json") = 0
100 fsync(9<$S/.vmstorefs/journal>) = 0
100 +++ exited with 0 +++
EOF
st=0
perl "$RULES" --root "$S" "$TMP/bad.trace" >"$TMP/bad.out" 2>&1 || st=$?
[ "$st" -eq 1 ] || fail "the checker passed a trace that breaks the rules (status $st): $(cat "$TMP/bad.out")"
for want in \
    'rule 1: file .vmstorefs/tmp/op/domain.xml written at line 2: .* was not fsynced before it was renamed into place (to vm/domain.xml) at line 3:' \
    'rule 2: directory vm changed at line 3: .* was not fsynced before the journal record write at line 15:' \
    'rule 4: file vm/disks/vda.qcow2 written at line 6: .* was not fsynced before the journal record write at line 15:' \
    'rule 5: process 100 read vm/disks/vda.qcow2 at line 8: .*, which process 101 wrote at line 6: .* and nobody synced'; do
    grep -q "$want" "$TMP/bad.out" || fail "the checker did not report /$want/: $(cat "$TMP/bad.out")"
done
# A thread reading what another thread of its process wrote is no read of
# another process's write (qemu-img's I/O threads).
grep -q 'rule 5: process 100 read vm/disks/vdb' "$TMP/bad.out" &&
    fail "the checker took a thread of process 100 for another process: $(cat "$TMP/bad.out")"
pass "the checker names a rename of an unsynced file, a directory never synced, unsynced data under a mark and a read of it"

# The journal directory not synced after a record, and a trace cut short.
sed -i '/fsync(9</d' "$TMP/bad.trace"
perl "$RULES" --root "$S" "$TMP/bad.trace" 2>&1 |
    grep -q 'rule 3: the journal directory was not fsynced after the record change at line 15: .* before the reply' ||
    fail "the checker did not report the journal directory left unsynced"
# Rule 6: after the commit (the second record write), a step's target
# directory not synced before the next step. Before the commit (no
# second write: the prepare phase) the same order is no violation.
J=$S/.vmstorefs/journal
# record_write PID ID: the trace lines of a record written (twice: its
# begin, then its commit).
record_write() {
    local _
    for _ in 1 2; do
        echo "$1 openat(AT_FDCWD<$S>, \"$J/.$2.tmp\", O_WRONLY|O_CREAT|O_EXCL, 0644) = 3<$J/.$2.tmp>"
        echo "$1 renameat(4<$J>, \".$2.tmp\", 4<$J>, \"$2.json\") = 0"
        echo "$1 fsync(4<$J>) = 0"
    done
}
{
    record_write 200 op2
    cat <<EOF
200 renameat(5<$S/vm/disks>, "vda.qcow2", 6<$S/vm/snapshots/s>, "vda.qcow2") = 0
200 renameat(7<$S/.vmstorefs/tmp/op2>, "new.qcow2", 5<$S/vm/disks>, "vda.qcow2") = 0
200 fsync(5<$S/vm/disks>) = 0
200 fsync(6<$S/vm/snapshots/s>) = 0
200 unlinkat(4<$J>, "op2.json", 0) = 0
200 fsync(4<$J>) = 0
200 +++ exited with 0 +++
EOF
} >"$TMP/order.trace"
perl "$RULES" --root "$S" "$TMP/order.trace" >"$TMP/order.out" 2>&1
grep -q 'rule 6: directory vm/snapshots/s got an entry at line 7: .* after the commit and was not fsynced before the next change at line 8:' "$TMP/order.out" ||
    fail "the checker did not report a step durable before the one before it: $(cat "$TMP/order.out")"
sed -i '4,6d' "$TMP/order.trace"
perl "$RULES" --root "$S" "$TMP/order.trace" >"$TMP/order.out" 2>&1 ||
    fail "the checker applied rule 6 before the commit: $(cat "$TMP/order.out")"
pass "the checker names a step made durable before the step before it, after the commit only"

# unsynced_fails NAME GOOD BAD: $TMP/NAME.trace passes the checker (it
# has GOOD), and fails it once the sync of vm/snapshots/s is taken out
# (BAD); what the checker said in $TMP/NAME.out.
unsynced_fails() {
    local st=0
    perl "$RULES" --root "$S" "$TMP/$1.trace" >"$TMP/$1.out" 2>&1 ||
        fail "the checker refused $2: $(cat "$TMP/$1.out")"
    sed -i '/fsync(6</d' "$TMP/$1.trace"
    perl "$RULES" --root "$S" "$TMP/$1.trace" >"$TMP/$1.out" 2>&1 || st=$?
    [ "$st" -eq 1 ] || fail "the checker passed $3 (status $st)"
}

# Rule 6 holds only between steps that depend on each other: two images
# moved into one snapshot directory and synced once, then the overlays
# put in their old places (each depends on its move: the same name) and
# synced once, pass. Without the sync of the snapshot directory, each
# overlay's rename is durable before the move whose name it takes; and
# a header written into a moved image (a rebase) depends on its move.
{
    record_write 300 op3
    cat <<EOF
300 renameat2(5<$S/vm/disks>, "vda.qcow2", 6<$S/vm/snapshots/s>, "vda.qcow2", RENAME_NOREPLACE) = 0
300 renameat2(5<$S/vm/disks>, "vdb.qcow2", 6<$S/vm/snapshots/s>, "vdb.qcow2", RENAME_NOREPLACE) = 0
300 fsync(6<$S/vm/snapshots/s>) = 0
300 pwrite64(8<$S/vm/snapshots/s/vda.qcow2>, "../r/vda.qcow2", 14, 528) = 14
300 renameat(7<$S/.vmstorefs/tmp/op3>, "disk-vda.qcow2", 5<$S/vm/disks>, "vda.qcow2") = 0
300 renameat(7<$S/.vmstorefs/tmp/op3>, "disk-vdb.qcow2", 5<$S/vm/disks>, "vdb.qcow2") = 0
300 fsync(5<$S/vm/disks>) = 0
300 fsync(8<$S/vm/snapshots/s/vda.qcow2>) = 0
300 unlinkat(4<$J>, "op3.json", 0) = 0
300 fsync(4<$J>) = 0
300 +++ exited with 0 +++
EOF
} >"$TMP/batch.trace"
unsynced_fails batch "independent steps synced together" "a move left unsynced under what depends on it"
for want in \
    'rule 6: directory vm/snapshots/s got an entry at line 7: .* after the commit and was not fsynced before the next change at line 9: .*pwrite64.*, which depends on it (vm/snapshots/s/vda.qcow2)' \
    'rule 6: directory vm/snapshots/s got an entry at line 8: .* after the commit and was not fsynced before the next change at line 11: .*"disk-vdb.qcow2".*, which depends on it (vm/disks/vdb.qcow2)'; do
    grep -q "$want" "$TMP/batch.out" || fail "the checker did not report /$want/: $(cat "$TMP/batch.out")"
done
pass "the checker lets independent steps share a sync, and names a step durable before one it depends on"

# A hard link (the take's frozen name for the active image) is an entry
# whose source is the linked name: the overlay renamed over that name
# depends on it. Synced in between, the trace passes; without the sync,
# a power cut could keep the rename and lose the link (and the image).
{
    record_write 400 op4
    cat <<EOF
400 linkat(5<$S/vm/disks>, "vda.qcow2", 6<$S/vm/snapshots/s>, "vda.qcow2", 0) = 0
400 fsync(6<$S/vm/snapshots/s>) = 0
400 renameat(7<$S/.vmstorefs/tmp/op4>, "disk-vda.qcow2", 5<$S/vm/disks>, "vda.qcow2") = 0
400 fsync(5<$S/vm/disks>) = 0
400 unlinkat(4<$J>, "op4.json", 0) = 0
400 fsync(4<$J>) = 0
400 +++ exited with 0 +++
EOF
} >"$TMP/link.trace"
unsynced_fails link "a link synced before the rename over its source" \
    "a rename over a name whose link was not synced"
grep -q 'rule 6: directory vm/snapshots/s got an entry at line 7: .* after the commit and was not fsynced before the next change at line 8: .*"disk-vda.qcow2".*, which depends on it (vm/disks/vda.qcow2)' "$TMP/link.out" ||
    fail "the checker did not name the rename over an unsynced link's source: $(cat "$TMP/link.out")"
pass "the checker names a rename over a name whose hard link is not durable yet"

head -n 3 "$TMP/bad.trace" >"$TMP/cut.trace"
st=0
perl "$RULES" --root "$S" "$TMP/cut.trace" >/dev/null 2>&1 || st=$?
[ "$st" -eq 2 ] || fail "a trace with no exit was not refused (status $st)"
pass "the checker names a journal directory left unsynced, and refuses a cut trace"

rmdir "$S"
sample_store "$S"
[ ! -e "$S/.vmstorefs" ] || fail "the sample store has a .vmstorefs already"
N=0

# traced WHAT CMD...: runs vmstorefs-ctl CMD under strace and checks its
# trace; the operation must succeed, and the trace show its journal record
# written (but by a recovery, which finds it) and removed.
traced() {
    local what=$1 st=0 summary want='[1-9][0-9]* record writes, [1-9][0-9]* record removals'
    shift
    [ "$1" = recover ] && want='[0-9]+ record writes, [1-9][0-9]* record removals'

    N=$((N + 1))
    strace -f -o "$TMP/$N.trace" -y \
        -e trace=%file,%desc,%process,fsync,fdatasync,syncfs,sync,sync_file_range,copy_file_range \
        "$CTL" "$S" "$@" >"$TMP/$N.out" 2>"$TMP/$N.err" ||
        fail "$what: vmstorefs-ctl $* failed: $(tail -n 3 "$TMP/$N.err")"
    perl "$RULES" --root "$S" "$TMP/$N.trace" >"$TMP/$N.rules" 2>&1 || st=$?
    summary=$(tail -n 1 "$TMP/$N.rules")
    [ "$st" -eq 0 ] || fail "$what (vmstorefs-ctl $*; trace $N): $(cat "$TMP/$N.rules")"
    [[ $summary =~ \ $want, ]] ||
        fail "$what: the trace shows no journal record written and removed: $summary"
    pass "$what: ${summary#fsync_rules: }"
}

traced "take (first operation: makes .vmstorefs)" take web1 s1
# A store from before the format file, and one missing its tmp/: what
# the first operation makes in .vmstorefs is durable before its journal.
rm "$S/.vmstorefs/format" || fail "cannot remove the format file"
traced "rename (the format file missing: written first)" rename web1 s1 s2
[ -f "$S/.vmstorefs/format" ] || fail "the format file was not written back"
rmdir "$S/.vmstorefs/tmp" || fail "cannot remove .vmstorefs/tmp"
traced "revert (.vmstorefs/tmp missing: made first)" revert web1 configured
[ -d "$S/.vmstorefs/tmp" ] || fail ".vmstorefs/tmp was not made again"
grep -q "^configured$" <("$CTL" "$S" current web1) || fail "revert did not make configured current"

# db1 (vda, vdb): P, then T holding 64k of its own under 8M on the
# active images: deleting T pulls its little data up into them. Then S
# holds all that, its dependent (the active images) 64k: deleting S
# commits the small dependent down into it.
wr() { # wr VM PATTERN OFFSET LEN: on every disk of VM
    local d
    for d in "$S/$1"/disks/*.qcow2; do
        qemu-io -f qcow2 -c "write -q -P $2 $3 $4" "$d" >/dev/null || fail "cannot write $d"
    done
}
take() {
    "$CTL" "$S" take "$@" 2>>"$TMP/ctl.err" || fail "take $*: $(tail -n 1 "$TMP/ctl.err")"
}
wr db1 0x41 1M 1M
# A take of two disks: the images moved into P wait for one sync of P,
# not one each (the durable order in journal.h: the two moves are
# independent, the overlays' renames after them depend on them).
traced "take of two disks" take db1 P
syncs=$(grep -F 'fsync(' "$TMP/$N.trace" | grep -cF "<$S/db1/snapshots/P>") || true
[ "$syncs" = 1 ] || fail "the take of two disks synced snapshots/P $syncs times, not once"
pass "the take of two disks synced its snapshot directory once"
wr db1 0x44 24M 64k
take db1 T
wr db1 0x45 4M 8M
traced "delete, pull direction" delete db1 T
grep -q 'merge of db1 disk vda (snapshot T): direction=pull' "$TMP/$N.err" ||
    fail "the delete of T did not pull: $(grep 'merge of' "$TMP/$N.err")"
read_pattern "$S/db1/disks/vda.qcow2" 0x44 24M 64k
read_pattern "$S/db1/disks/vdb.qcow2" 0x45 4M 8M

take db1 S
wr db1 0x43 20M 64k
traced "delete, commit direction" delete db1 S
grep -q 'merge of db1 disk vda (snapshot S): direction=commit' "$TMP/$N.err" ||
    fail "the delete of S did not commit: $(grep 'merge of' "$TMP/$N.err")"
for d in vda vdb; do
    read_pattern "$S/db1/disks/$d.qcow2" 0x45 4M 8M
    read_pattern "$S/db1/disks/$d.qcow2" 0x43 20M 64k
    read_pattern "$S/db1/disks/$d.qcow2" 0x44 24M 64k
done

traced "partial delete (P's vdb image)" delete db1 P vdb
[ ! -e "$S/db1/snapshots/P/vdb.qcow2" ] && [ -e "$S/db1/snapshots/P/vda.qcow2" ] ||
    fail "the partial delete did not remove only P's vdb image"
read_pattern "$S/db1/disks/vdb.qcow2" 0x41 1M 1M

traced "clone of the current state" clone web1 web3
traced "clone of a snapshot" clone web1 web4 s2
qemu-img compare -q "$S/web1/snapshots/s2/vda.qcow2" "$S/web4/disks/vda.qcow2" ||
    fail "the clone from s2 does not read as s2"
traced "detach" detach db1 vdb
traced "undefine" undefine web4
traced "delete-vm" delete-vm web3
[ ! -e "$S/web3" ] || fail "web3 is still in the store"

# Recoveries: an operation cut short at its first crash point whose
# record is committed (VMSTOREFS_CRASH_AT), rolled forward by `recover`:
# a take (moves and renames replayed) and a delete that pulls (the pull
# run again, then qemu-img check -r leaks on the image it wrote).
# cut_committed OP CMD...: leaves CMD's operation committed and unfinished.
cut_committed() {
    local op=$1 n st
    shift
    for n in $(seq 1 20); do
        st=0
        VMSTOREFS_CRASH_AT=$op:$n "$CTL" "$S" "$@" >/dev/null 2>&1 || st=$?
        [ "$st" -eq 99 ] || fail "VMSTOREFS_CRASH_AT=$op:$n did not stop $*"
        grep -Eqs '"committed": ?true' "$S"/.vmstorefs/journal/*.json && return 0
        "$CTL" "$S" recover >/dev/null 2>>"$TMP/ctl.err" || fail "recover after $op:$n failed"
    done
    fail "no crash point of $* left a committed record"
}
cut_committed take take web1 cut
traced "recovery of a committed take" recover
[ -d "$S/web1/snapshots/cut" ] || fail "recovery did not finish the take"
journal_empty "$S"

take db1 U
wr db1 0x46 28M 64k
take db1 V
wr db1 0x47 4M 8M
cut_committed delete delete db1 V
traced "recovery of a committed delete (pull)" recover
grep -q 'merge of db1 disk vda (snapshot V): direction=pull' "$TMP/$N.err" ||
    fail "the recovery did not pull: $(grep 'merge of' "$TMP/$N.err")"
grep -q 'replayed; .* leaked cluster(s) of .* freed' "$TMP/$N.err" ||
    fail "the recovery did not repair the pulled image's leaks: $(cat "$TMP/$N.err")"
[ ! -e "$S/db1/snapshots/V" ] || fail "recovery did not finish the delete of V"
read_pattern "$S/db1/disks/vda.qcow2" 0x46 28M 64k
read_pattern "$S/db1/disks/vda.qcow2" 0x47 4M 8M
journal_empty "$S"
check_store "$S"
