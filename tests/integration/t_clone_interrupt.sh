#!/bin/bash
# A clone that does not finish leaves nothing behind (SPEC §2: "ENOSPC /
# EINTR leave nothing behind"; §4: crash-atomic, qemu-img dies with the
# daemon). Each case starts `mkdir big/clones/N` of a VM holding 96 MiB
# with the daemon's qemu-img on qimggate.sh's gate: the copy stops
# itself after reporting 10 % and is held there (not a race: however
# fast the machine copies, the copy is in progress and cannot end), and
# then:
#   - Ctrl-C: SIGINT to the mkdir (the kernel turns it into a FUSE
#     interrupt), once to a program that handles it (mkdir fails with
#     EINTR) and once to mkdir(1) itself (it dies); either way while
#     the copy is still held: the daemon stops it rather than waiting
#     for it to finish (it never can);
#   - kill -9 of the daemon: its qemu-img dies with it, N never appears,
#     and the next mount removes the partial clone;
#   - SIGTERM to the daemon, and fusermount3 -u and -u -z on the mount:
#     the copy is let go, the daemon exits 0, and N is either complete
#     (the daemon let the clone finish) or not there at all;
#   - a full disk (the store on a tmpfs with room for the source, not for
#     the clone): mkdir fails with ENOSPC, the source is untouched, the
#     daemon serves on, and with room again the same clone works.
# After each: no STORE/N (or a complete one), journal and tmp/ empty, no
# .jobs line, no qemu-img left, the source reads as before; the daemon
# then makes a complete clone. The tmpfs is mounted in a private mount
# namespace so that nothing outlives the test.
. "$(dirname "$0")/privns.sh"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/clonefix.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate pgrep perl

S=$TMP/store M=$TMP/mnt B=$TMP/mnt/big
make_big_vm "$S" big 96
gate_init
mount_fs "$S" "$M" "${GATE_OPT[@]}"
chain_big_vm "$M" big
sync

# after_stop N KIDS: what a stopped clone N (its mkdir ended, qemu-img
# KIDS) must leave once its mkdir has ended: nothing of N, no .jobs
# line, no qemu-img, the source as it was.
after_stop() {
    local n=$1 kids=$2 i
    # Allow the daemon's clean-up a few seconds after the mkdir ended.
    for ((i = 0; i < 100; i++)); do
        [ -z "$(clone_line "$M" big "$n")" ] && [ -z "$(ls -A "$S/.vmstorefs/tmp")" ] && break
        sleep 0.1
    done
    [ -z "$(clone_line "$M" big "$n")" ] || fail "$n: .jobs still shows the clone: $(cat "$M/.jobs")"
    # shellcheck disable=SC2086 # a list of pids
    wait_gone 5 $kids || fail "$n: qemu-img $kids still running after the clone stopped"
    no_partial_clone "$S" "$n"
    [ ! -e "$B/clones/$n" ] && [ ! -e "$M/$n" ] || fail "$n: the mount still shows the clone"
    check_source "$S" big
}

# start_clone N [PROGRAM...]: mkdir big/clones/N in the background (with
# PROGRAM, default mkdir), stderr in $TMP/N.err; returns once its copy
# (the daemon's qemu-img, on the gate) has reported 10 % and is held
# stopped there, and .jobs shows the clone. Sets PID, KIDS (the daemon's
# qemu-img children) and HELD (the held copy).
start_clone() {
    local n=$1
    shift
    [ $# -gt 0 ] || set -- mkdir
    gate_arm
    gate_stops 10
    "$@" "$B/clones/$n" 2>"$TMP/$n.err" &
    PID=$!
    gate_wait "$DAEMON_PID" 1
    HELD=${GATED[0]}
    [[ $(gate_args "$HELD") == *" convert "*"/$n/"* ]] || fail "$n: the held qemu-img is not $n's copy: $(gate_args "$HELD")"
    gate_cont "$HELD"
    gate_progress "$HELD"
    [ "$GATE_FIG" != eof ] || fail "$n: the copy ended before reporting 10 %"
    gate_disarm
    wait_clone_running "$M" big "$n" "$PID"
    KIDS=$(qimg_children "$DAEMON_PID")
    [ -n "$KIDS" ] || fail "$n: the daemon has no qemu-img child while the clone runs"
}

# let_go: the held copy goes on (if the daemon has not stopped it).
let_go() {
    gate_cont "$HELD"
}

# (1) Ctrl-C, seen by a program that handles SIGINT: mkdir(2) returns
# EINTR (Perl's handlers are installed without SA_RESTART).
start_clone i1 perl -e '$SIG{INT} = sub {}; mkdir($ARGV[0]) and exit 0; print STDERR "$!\n"; exit 1'
seen=$(clone_line "$M" big i1)
kill -INT "$PID"
# The copy is held and can never finish: mkdir returns only if the
# daemon stops the copy on the interrupt rather than waiting for it.
wait_gone 30 "$PID" || fail "i1: mkdir still running 30 s after SIGINT, its copy held at $GATE_FIG % (the daemon waits for the copy?)"
status=0
wait "$PID" || status=$?
[ "$status" -ne 0 ] || fail "i1: the interrupted clone succeeded"
grep -q "Interrupted system call" "$TMP/i1.err" || fail "i1: expected EINTR, got: $(cat "$TMP/i1.err")"
after_stop i1 "$KIDS"
pass "Ctrl-C (handled) at '$seen': EINTR while the copy was held, nothing left, qemu-img gone"

# (2) Ctrl-C as a shell user gives it: mkdir(1) with SIGINT's default
# action (bash starts background jobs with SIGINT ignored) dies of it.
start_clone i2 env --default-signal=INT mkdir
seen=$(clone_line "$M" big i2)
kill -INT "$PID"
wait_gone 30 "$PID" || fail "i2: mkdir still running 30 s after SIGINT, its copy held at $GATE_FIG %"
status=0
wait "$PID" || status=$?
[ "$status" -eq 130 ] || fail "i2: mkdir exited with $status, not killed by SIGINT: $(cat "$TMP/i2.err")"
after_stop i2 "$KIDS"
pass "Ctrl-C (mkdir killed) at '$seen': the daemon stopped the copy, nothing left"

# The daemon serves on: the same VM clones completely.
mkdir "$B/clones/ok1" || fail "a clone after the interrupted ones failed"
check_clone "$S" ok1
[ "$(readlink "$B/clones/ok1")" = ../../ok1 ] || fail "clones/ok1 is not a link to ../../ok1"
pass "after two interrupted clones the daemon makes a complete one"

# (3) kill -9 of the daemon: its qemu-img dies with it; N never appears;
# the next mount removes the partial clone.
start_clone k9
seen=$(clone_line "$M" big k9)
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
forget_daemon "$DAEMON_PID"
# shellcheck disable=SC2086
wait_gone 5 $KIDS || fail "k9: qemu-img $KIDS outlived the killed daemon"
wait_gone 10 "$PID" || fail "k9: mkdir still hangs 10 s after the daemon died"
wait "$PID" && fail "k9: mkdir succeeded though the daemon was killed"
[ ! -e "$S/k9" ] || fail "k9: STORE/k9 appeared before the clone was complete"
fusermount3 -u -z "$M" 2>/dev/null || umount -l "$M"
mount_fs "$S" "$M" "${GATE_OPT[@]}"
no_partial_clone "$S" k9
! ls "$M" | grep -qx k9 || fail "k9: the remounted store lists k9"
check_source "$S" big
check_store "$S" big
pass "kill -9 at '$seen': qemu-img died with the daemon; the next mount removed the partial clone"

# stopped_daemon N: after the daemon was told to stop during clone N:
# it exits 0, the mount is gone, the mkdir ends, and N is complete (the
# clone finished before the exit) or not there at all.
stopped_daemon() {
    local n=$1 status=0 how
    wait_gone 120 "$DAEMON_PID" || fail "$n: the daemon still runs 120 s after being told to stop"
    wait "$DAEMON_PID" || status=$?
    forget_daemon "$DAEMON_PID"
    [ "$status" -eq 0 ] || fail "$n: the daemon exited with status $status"
    ! grep -qs " $M " /proc/self/mounts || fail "$n: $M is still mounted after the daemon exited"
    wait_gone 10 "$PID" || fail "$n: mkdir still hangs after the daemon exited"
    status=0
    wait "$PID" || status=$?
    # shellcheck disable=SC2086
    wait_gone 5 $KIDS || fail "$n: qemu-img $KIDS outlived the daemon"
    if [ "$status" -eq 0 ]; then
        check_clone "$S" "$n"
        how="finished first"
    else
        no_partial_clone "$S" "$n"
        how="stopped: $(head -n 1 "$TMP/$n.err")"
    fi
    check_source "$S" big
    STOPPED=$how
}

# (4) SIGTERM to the daemon during a clone.
start_clone t1
kill -TERM "$DAEMON_PID"
let_go
stopped_daemon t1
pass "SIGTERM during a clone: the daemon exited 0, no partial clone (the clone $STOPPED)"

# (5) fusermount3 -u during a clone. The kernel may refuse a plain
# unmount while mkdir is inside the mount (EBUSY); then the clone must go
# on unharmed. If it unmounts, the daemon must stop as for SIGTERM.
mount_fs "$S" "$M" "${GATE_OPT[@]}"
start_clone u1
if out=$(fusermount3 -u "$M" 2>&1); then
    let_go
    stopped_daemon u1
    pass "fusermount3 -u during a clone: unmounted, daemon exited 0 (the clone $STOPPED)"
else
    grep -qi "busy" <<<"$out" || fail "u1: fusermount3 -u failed: $out"
    let_go
    wait "$PID" || fail "u1: the clone failed after a refused unmount: $(cat "$TMP/u1.err")"
    check_clone "$S" u1
    pass "fusermount3 -u during a clone: refused as busy ($out); the clone went on and is complete"
    unmount_fs "$M"
    forget_daemon "$DAEMON_PID"
fi

# (6) fusermount3 -u -z: the mount goes at once; the daemon exits once
# the clone has stopped or finished.
mount_fs "$S" "$M" "${GATE_OPT[@]}"
start_clone z1
fusermount3 -u -z "$M" || fail "z1: fusermount3 -u -z failed"
let_go
stopped_daemon z1
pass "lazy unmount during a clone: daemon exited 0, no partial clone (the clone $STOPPED)"
check_store "$S"

# (7) A full disk: the store on a tmpfs with room for the source and
# 96 MiB more; the clone needs ~200 MiB.
FS=$TMP/fs S=$TMP/fs/store M=$TMP/mnt2 B=$TMP/mnt2/big
mkdir -p "$FS"
mount -t tmpfs -o size=512M tmpfs "$FS" || skip "cannot mount a tmpfs"
trap 'umount -l "$FS"; cleanup' EXIT
make_big_vm "$S" big 192
mount_fs "$S" "$M"
chain_big_vm "$M" big
used=$(df --output=used -B1M "$FS" | tail -n 1)
mount -o remount,size=$((used + 96))M "$FS" || fail "cannot shrink the tmpfs"
before=$(tree_state "$S/big")
expect_fail "clone onto a full disk" "No space left on device" mkdir "$B/clones/full"
no_partial_clone "$S" full
[ -z "$(clone_line "$M" big full)" ] || fail "full: .jobs still shows the clone"
[ "$(tree_state "$S/big")" = "$before" ] || fail "full: the failed clone changed the source"
check_source "$S" big
timeout 5 ls -l "$M" "$B" "$B/snapshots" >/dev/null || fail "full: the daemon stopped serving"
[ -z "$(qimg_children "$DAEMON_PID")" ] || fail "full: a qemu-img is left running"
pass "a clone that runs out of space fails with ENOSPC, leaves nothing, the source is untouched"

mount -o remount,size=$((used + 512))M "$FS" || fail "cannot grow the tmpfs"
mkdir "$B/clones/full" || fail "full: the clone failed with room again"
check_clone "$S" full
pass "with room again the same clone is complete"
unmount_fs "$M"
