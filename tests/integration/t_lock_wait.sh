#!/bin/bash
# Blocking lock requests never take the server away: with a holder and 32
# waiters on one image (more than the daemon's 16 serving threads), the
# mount still answers, a waiter can be interrupted, the lock goes to a
# waiter once the holder is gone, and the daemon still stops on SIGTERM.
. "$(dirname "$0")/lib.sh"
need_fuse
: "${HELPERS:?HELPERS must point to the built test helpers}"
SETLKW=$HELPERS/setlkw
[ -x "$SETLKW" ] || fail "$SETLKW not built"

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"
A=$M/web1/disks/vda.qcow2

# stuck WHAT: fail, killing the daemon first: a mount whose threads all
# wait would hang the clean-up's own look at the mount point.
stuck() {
    kill -9 "$DAEMON_PID"
    fail "$@"
}

# start_setlkw N: setlkw on $A, its output in $TMP/lk.N; sets LK_PID.
start_setlkw() {
    "$SETLKW" "$A" >"$TMP/lk.$1" 2>&1 &
    LK_PID=$!
    DAEMONS+=("$LK_PID")
}

start_setlkw holder
holder=$LK_PID
for i in $(seq 100); do
    grep -q locked "$TMP/lk.holder" && break
    sleep 0.1
done
grep -q locked "$TMP/lk.holder" || fail "holder never got the lock: $(cat "$TMP/lk.holder")"

waiters=()
for i in $(seq 32); do
    start_setlkw "$i"
    waiters+=("$LK_PID")
done
sleep 1 # let every waiter reach the daemon
for i in $(seq 32); do
    kill -0 "${waiters[i - 1]}" 2>/dev/null || fail "waiter $i ended: $(cat "$TMP/lk.$i")"
    [ ! -s "$TMP/lk.$i" ] || fail "waiter $i: $(cat "$TMP/lk.$i")"
done

# The one-second bound is the issue's: before, these hung for good.
timeout 1 ls "$M/web1/disks" >/dev/null || stuck "ls of the mount does not answer while 32 lock requests wait"
timeout 1 qemu-img info -U "$M/db1/disks/vda.qcow2" >/dev/null || stuck "another image cannot be opened"
pass "the mount answers while 32 blocking lock requests wait"

kill -INT "${waiters[0]}"
status=0
timeout 5 tail --pid="${waiters[0]}" -f /dev/null || stuck "an interrupted waiter did not end"
wait "${waiters[0]}" || status=$?
[ "$status" -eq 130 ] || fail "interrupted waiter: status $status, $(cat "$TMP/lk.1")"
pass "a waiting lock request ends on SIGINT"

kill -9 "$holder"
wait "$holder" 2>/dev/null
got=0
for i in $(seq 100); do
    got=$(cat "$TMP"/lk.[0-9]* | grep -c locked)
    [ "$got" -ge 1 ] && break
    sleep 0.1
done
[ "$got" -eq 1 ] || stuck "$got waiters got the lock after the holder died (expected 1)"
pass "the lock goes to one waiter once its holder is gone"

# 30 requests still wait: the daemon must stop anyway.
kill -TERM "$DAEMON_PID"
timeout 10 tail --pid="$DAEMON_PID" -f /dev/null || stuck "daemon ignores SIGTERM while lock requests wait"
for p in "${waiters[@]:1}"; do
    kill -9 "$p" 2>/dev/null
done
pass "SIGTERM stops the daemon while lock requests wait"
