#!/bin/bash
# Snapshot operations on one VM serialize through the lock file in the
# store (STORE/.vmstorefs/locks/<vm>), across threads and across daemons:
# while something holds it, an operation on that VM waits - up to 2 s,
# then EBUSY, and it gives up on Ctrl-C - while browsing and operations
# on other VMs go on. Eight takes racing through two daemons on one store
# leave one linear chain.
. "$(dirname "$0")/lib.sh"
need_fuse
need perl

S=$TMP/store M1=$TMP/mnt1 M2=$TMP/mnt2
sample_store "$S"
mount_fs "$S" "$M1"
P1=$DAEMON_PID
mount_fs "$S" "$M2"
P2=$DAEMON_PID
V=$M1/web1
LOCK=$S/.vmstorefs/locks/web1

# running PID...: every PID is still running.
running() {
    local p
    for p in "$@"; do
        kill -0 "$p" 2>/dev/null || return 1
    done
}

# waited_ok PID...: every PID exits with status 0.
waited_ok() {
    local p
    for p in "$@"; do
        wait "$p" || return 1
    done
}

# (a) a holder of web1's lock, held longer than an operation waits.
lock_hold "$LOCK"
before=$(tree_state "$S/web1")
mkdir "$V/snapshots/a" 2>"$TMP/a.err" &
A=$!
sleep 1
running "$A" || fail "mkdir of web1's snapshot ended at once while web1's lock was held"
[ -e "$S/web1/snapshots/a" ] && fail "snapshot a appeared while web1's lock was held"
timeout 2 ls -l "$V" "$V/disks" >/dev/null || fail "ls waited behind web1's lock"
timeout 2 ls -l "$M2/web1/snapshots" "$M2/web1/snapshots/configured" >/dev/null ||
    fail "ls of snapshots/ through the other daemon waited behind web1's lock"
timeout 2 cat "$V/domain.xml" >/dev/null || fail "reading domain.xml waited behind web1's lock"
timeout 2 head -c 1M "$V/disks/vda.qcow2" >/dev/null || fail "reading the active image waited behind web1's lock"
timeout 2 head -c 1M "$M2/web1/snapshots/configured/vda.qcow2" >/dev/null ||
    fail "reading a frozen image waited behind web1's lock"
timeout 2 readlink "$V/current" >/dev/null || fail "readlink waited behind web1's lock"
timeout 2 mkdir "$M1/db1/snapshots/b" || fail "a take on db1 waited behind web1's lock"
# The kernel holds snapshots/ for the waiting mkdir: a listing of it
# through this mount waits for that mkdir, which gives up within 2 s.
t0=$(date +%s%N)
timeout 10 ls "$V/snapshots" >/dev/null || fail "ls of web1's snapshots/ waited more than 10 s"
waited=$((($(date +%s%N) - t0) / 1000000))
timeout 5 tail --pid="$A" -f /dev/null || fail "mkdir a still waiting 5 s after its 2 s bound"
wait "$A" && fail "mkdir a succeeded while web1's lock was held"
grep -q "Device or resource busy" "$TMP/a.err" || fail "mkdir a: $(cat "$TMP/a.err")"
[ "$(tree_state "$S/web1")" = "$before" ] || fail "the refused take changed web1"
pass "behind a held lock a take on web1 gives up with EBUSY; browsing and db1 go on (ls of web1's snapshots/ waited ${waited} ms)"

# A holder that lets go within the bound: the waiting take completes.
mkdir "$V/snapshots/a" &
A=$!
sleep 0.5
running "$A" || fail "mkdir a ended while web1's lock was held"
lock_release
timeout 5 tail --pid="$A" -f /dev/null || fail "mkdir a still waiting 5 s after the lock was released"
waited_ok "$A" || fail "mkdir a failed after the lock was released"
[ -d "$S/web1/snapshots/a" ] && [ "$(readlink "$V/current")" = "snapshots/a" ] || fail "snapshot a not taken"
pass "released within the bound, the waiting take completes"

# Ctrl-C on a waiting take: it ends, and nothing is ever taken. A
# background job of a script ignores SIGINT: restore the default first.
lock_hold "$LOCK"
before=$(tree_state "$S/web1")
perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV or die' mkdir "$V/snapshots/x" &
X=$!
sleep 0.5
running "$X" || fail "mkdir x ended while web1's lock was held"
kill -INT "$X"
timeout 3 tail --pid="$X" -f /dev/null || fail "mkdir x still waiting 3 s after SIGINT"
waited_ok "$X" && fail "mkdir x succeeded after SIGINT"
lock_release
sleep 0.5
[ "$(tree_state "$S/web1")" = "$before" ] || fail "the interrupted take changed the store"
pass "SIGINT ends a take waiting for the lock; nothing changes"

# (b) two daemons on one store.
# chain SNAPS...: with SNAPS the snapshots taken since `a`, web1 holds one
# linear chain installed <- configured <- a <- SNAPS... <- active, and the
# data reads the same through both mounts.
chain() {
    local n=$# s p parents=" " roots=0 img
    for s in "$@"; do
        [ -d "$S/web1/snapshots/$s" ] || fail "snapshot $s missing"
        p=$(snap_parent "$S/web1/snapshots/$s")
        [ -n "$p" ] || fail "snapshot $s has no parent"
        [ "$p" = a ] && roots=$((roots + 1))
        [ "$p" = a ] || [[ " $* " == *" $p "* ]] || fail "snapshot $s has parent $p"
        [[ $parents == *" $p "* ]] && fail "two snapshots have parent $p"
        parents="$parents$p "
    done
    [ "$roots" -eq 1 ] || fail "$roots snapshots grow from a"
    [ "$(find "$S/web1/snapshots" -mindepth 1 -maxdepth 1 | wc -l)" -eq $((n + 3)) ] ||
        fail "snapshots: $(ls "$S/web1/snapshots")"
    for img in "$S"/web1/snapshots/*/vda.qcow2 "$S/web1/disks/vda.qcow2"; do
        qemu-img check -q "$img" || fail "qemu-img check $img"
    done
    [ "$(qemu-img info -U --backing-chain "$S/web1/disks/vda.qcow2" | grep -c '^image:')" -eq $((n + 4)) ] ||
        fail "active chain: $(qemu-img info -U --backing-chain "$S/web1/disks/vda.qcow2" | grep '^image:')"
    for m in "$M1" "$M2"; do
        read_pattern "$m/web1/disks/vda.qcow2" 0x11 0 4M
        read_pattern "$m/web1/disks/vda.qcow2" 0x22 4M 4M
        read_pattern "$m/web1/disks/vda.qcow2" 0x33 8M 1M
    done
}

pids=()
for i in 1 2 3 4 5 6 7 8; do
    [ $((i % 2)) -eq 1 ] && m=$M1 || m=$M2
    mkdir "$m/web1/snapshots/c$i" &
    pids+=($!)
done
waited_ok "${pids[@]}" || fail "a concurrent take failed"
chain c1 c2 c3 c4 c5 c6 c7 c8
pass "8 takes through two daemons serialize into one linear chain"

lock_hold "$LOCK"
mkdir "$M1/web1/snapshots/d1" &
D1=$!
mkdir "$M2/web1/snapshots/d2" &
D2=$!
sleep 0.5
running "$D1" "$D2" || fail "a take ended while web1's lock was held"
[ -e "$S/web1/snapshots/d1" ] || [ -e "$S/web1/snapshots/d2" ] && fail "a take went through the held lock"
lock_release
waited_ok "$D1" "$D2" || fail "a waiting take failed after the lock was released"
chain c1 c2 c3 c4 c5 c6 c7 c8 d1 d2
pass "both daemons wait for a lock held outside them"

# A handle writing through one daemon stops a take through the other,
# which cannot see that daemon's handles (its mark lock can).
exec 3<>"$M1/db1/disks/vdb.qcow2"
before=$(tree_state "$S/db1")
expect_fail "take through the other daemon while a handle writes" "Device or resource busy" \
    mkdir "$M2/db1/snapshots/w"
[ "$(tree_state "$S/db1")" = "$before" ] || fail "the refused take changed db1"
exec 3>&-
mkdir "$M2/db1/snapshots/w" || fail "the take failed after the writer closed"
pass "a writer through one daemon refuses a take through the other (EBUSY)"

DAEMON_PID=$P2 unmount_fs "$M2"
DAEMON_PID=$P1 unmount_fs "$M1"
