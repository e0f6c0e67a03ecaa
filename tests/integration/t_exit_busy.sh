#!/bin/bash
# SIGTERM while the mount is busy: the daemon exits at once, and so do the
# system calls it left unanswered. libfuse's loop drops requests it reads
# once told to stop, and the kernel ends them only when the daemon's
# /dev/fuse descriptor is released; anything in the daemon that waits in
# the kernel for a directory lock such a request holds (notify_inval_entry
# does) keeps the descriptor and hangs daemon and callers for good. A
# cache notifier that did so hung here in 2 of 3 rounds (see node_attr in
# fuse/node.c). A race: up to ROUNDS rounds of takes of an open image, lookups
# in its directory and a SIGTERM at a varying moment.
. "$(dirname "$0")/lib.sh"
need_fuse
need mountpoint
ROUNDS=4
# The loops stop when $STOP exists and are waited for, never killed by
# pid: they start a process per turn, the pids wrap within seconds (pid_max
# 32768), and a kill could hit another test's process. For the same reason
# CONN names a connection only while this round's daemon runs: connection
# numbers are reused by other mounts too.
STOP=$TMP/stop LOOPS=() CONN=''
stop_loops() {
    local p
    touch "$STOP"
    for p in "${LOOPS[@]}"; do
        wait "$p" 2>/dev/null
    done
    LOOPS=()
    rm -f "$STOP"
}
# After a failure: a hung connection is aborted (or its callers stay in D
# state for good), then the loops are stopped.
unstick() {
    if [ -n "$CONN" ]; then
        local ours=''
        grep -qs ' /sys/fs/fuse/connections ' /proc/self/mounts ||
            { mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null && ours=1; }
        echo 1 >"/sys/fs/fuse/connections/$CONN/abort" 2>/dev/null
        sleep 0.5
        [ -z "$ours" ] || umount /sys/fs/fuse/connections 2>/dev/null
        CONN=''
    fi
    stop_loops
}
CLEANUP_HOOKS+=(unstick)

S=$TMP/store
sample_store "$S"
for round in $(seq "$ROUNDS"); do
    M=$TMP/mnt$round
    mount_fs "$S" "$M"
    CONN=$(mountpoint -d "$M") CONN=${CONN#*:}
    B=$M/web1/disks/vda.qcow2
    for _ in 1 2 3 4; do
        (while [ ! -e "$STOP" ]; do stat "$M/web1/disks/nx$RANDOM"; done) >/dev/null 2>&1 &
        LOOPS+=($!)
    done
    (while [ ! -e "$STOP" ]; do ls -l "$M/web1/disks" "$M/web1"; done) >/dev/null 2>&1 &
    LOOPS+=($!)
    (n=0; while [ ! -e "$STOP" ]; do
        n=$((n + 1))
        exec 5<"$B" || break
        mkdir "$M/web1/snapshots/r$round-$n"
        exec 5<&-
    done) >/dev/null 2>&1 &
    LOOPS+=($!)
    sleep "1.$((RANDOM % 10))"
    grep -q "took snapshot" "$DAEMON_LOG" || fail "round $round: no take was made"
    kill -TERM "$DAEMON_PID"
    for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DAEMON_PID" 2>/dev/null &&
        fail "round $round: the daemon still runs 10 s after SIGTERM ($(cat /proc/$DAEMON_PID/task/*/wchan 2>/dev/null | tr '\n' ' '))"
    CONN=''
    wait "$DAEMON_PID" || fail "round $round: the daemon exited with status $? after SIGTERM"
    forget_daemon "$DAEMON_PID"
    stop_loops
    umount -l "$M" 2>/dev/null
    pass "round $round: SIGTERM while busy ends the daemon"
done
