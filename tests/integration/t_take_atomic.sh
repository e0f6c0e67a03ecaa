#!/bin/bash
# The active image's path names a file at every instant of a take, and
# its chain resolves (issue 15: two-daemon-soak listed a VM's disk through
# a second mount and stat then said ENOENT: the take moved the active
# image into the snapshot and only then renamed the new overlay to its
# name). The take's daemon is stopped (VMSTOREFS_STOP_AT, SIGSTOP) at
# every durable point of the operation in turn, and while it stands there
# a second observer looks: plain stat, ls and `qemu-img info
# --backing-chain -U` on the store, and stat, ls -lR and qemu-img info
# through a second daemon's mount. At every point:
#   - disks/<dev>.qcow2 names a file, on the store and through the mount;
#   - its chain resolves, but at the one instant no order of steps can
#     avoid for an active image that has a backing file (journal.h, the
#     take in src/ops/snaptake.c): the frozen name linked, its backing
#     name rewritten for snapshots/S/, the rename right after it not yet
#     made. That instant is recognised as such (disks/<dev>.qcow2 and
#     snapshots/S/<dev>.qcow2 one file, whose header is right for S's
#     name only) and must come at exactly one point per such disk; a
#     standalone active image (the first take) has none.
# The same for a revert (one rename over the active image: no gap).
# A crash between a link and the rename after it (the daemon's own second
# name on the active image) rolls forward: one name per image again, and
# the next take is not refused as a hard-linked image.
# A store without hard links (tests/helpers/nolink.so: EPERM, as vfat)
# falls back to the renames, says so in the log, and the observer sees
# what it costs: disks/<dev>.qcow2 names nothing at some point (which is
# what this test sees of the old plan).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate

[ -f "$HELPERS/nolink.so" ] || fail "tests/helpers/nolink.so was not built"
S=$TMP/store M1=$TMP/m1 M2=$TMP/m2
STOPPED=""
resume_stopped() { [ -z "$STOPPED" ] || kill -CONT "$STOPPED" 2>/dev/null; }
CLEANUP_HOOKS+=(resume_stopped)

# vm: two standalone disks: the first take gives them backing files.
# (Not a raw base: while one image of a VM has a broken chain, the mount
# serves none of its raw bases, bases.h; the frozen name's window of any
# disk would then break every chain through the mount that reaches one.)
make_vm "$S" vm 2
mkdir -p "$TMP/fix" && cp -a "$S" "$TMP/fix/start" || fail "fixture"

# state_of PID: STATE its state letter (T: stopped), "" once it is gone
# (read by bash: it is asked every 20 ms).
state_of() {
    local st
    STATE=""
    read -r st 2>/dev/null <"/proc/$1/stat" || return 0
    st=${st##*) }
    STATE=${st%% *}
}

# observe VM SNAP POINT: what a second observer sees while the first
# daemon stands at POINT. Counts GAPS[dev] (the documented instant) and
# notes in LINKED the points where an active image has a second name.
declare -A GAPS=()
LINKED=()
observe() {
    local vm=$1 snap=$2 p=$3 dev f out listed store mnt frozen fz i=0
    local -a links=()
    # (one ls and one stat for both disks: this runs at every point)
    listed=$(ls -l "$S/$vm/disks") || fail "point $p: ls of disks/ on the store"
    read -r -d '' -a links < <(stat -c %h "$S/$vm/disks/vda.qcow2" "$S/$vm/disks/vdb.qcow2" 2>/dev/null)
    for dev in vda vdb; do
        f=$S/$vm/disks/$dev.qcow2
        [ -f "$f" ] || fail "point $p: $f names nothing (on the store)"
        [[ $listed == *" $dev.qcow2"* ]] || fail "point $p: ls of disks/ does not list $dev.qcow2"
        stat "$M2/$vm/disks/$dev.qcow2" >/dev/null ||
            fail "point $p: $dev.qcow2 names nothing through the second mount"
        [ "${links[i]:-}" = 1 ] || LINKED+=("$p")
        i=$((i + 1))
        store=0 mnt=0
        out=$(qemu-img info --backing-chain -U "$f" 2>&1) && store=1
        ((store)) && qemu-img info --backing-chain -U "$M2/$vm/disks/$dev.qcow2" >/dev/null 2>&1 &&
            mnt=1
        ((mnt)) && continue
        # The window allowed: the image has its two names (linked, not
        # yet renamed over) and its header is right for exactly one.
        frozen=$S/$vm/snapshots/$snap/$dev.qcow2
        [ -n "$snap" ] && [ "$f" -ef "$frozen" ] ||
            fail "point $p: the chain of $dev.qcow2 does not resolve (on the store: $store): $out"
        fz=0
        qemu-img info --backing-chain -U "$frozen" >/dev/null 2>&1 && fz=1
        ((fz != store)) || fail "point $p: $dev.qcow2's chain resolves from both or neither of its names ($store)"
        GAPS[$dev]="${GAPS[$dev]:-}$p "
    done
    ls -lR "$M2/$vm" >/dev/null || fail "point $p: ls -lR through the second mount failed"
}

# each_stop OP DAEMON RUN FN ARGS...: while process RUN (an operation
# through DAEMON's mount) runs, each time DAEMON stops at a point of OP
# (VMSTOREFS_STOP_AT), FN ARGS... POINT runs, then DAEMON goes on. The
# status of RUN; POINTS: how many points there were.
each_stop() {
    local op=$1 d=$2 run=$3 fn=$4 p="" i st line pos=0
    shift 4
    POINTS=0
    while :; do
        for ((i = 0; i < 6000; i++)); do
            state_of "$d"
            st=$STATE
            [ "$st" = T ] && break
            kill -0 "$run" 2>/dev/null || break
            nap 0.02
        done
        [ "$st" = T ] || break
        STOPPED=$d
        # (the log's last "stopping at point N of OP": only the lines
        # added since the last stop are read)
        log_since "$pos"
        pos=$LOG_POS
        for line in "${LOG_ADDED[@]}"; do
            [[ $line =~ stopping\ at\ point\ ([0-9]+)\ of\ $op ]] && p=${BASH_REMATCH[1]}
        done
        ((p == POINTS + 1)) || fail "$op: stopped at point '$p' after point $POINTS"
        POINTS=$p
        "$fn" "$@" "$p"
        kill -CONT "$d"
        STOPPED=""
    done
    wait "$run"
}

# stepped OP VM SNAP CMD...: mounts the store on M1 with the daemon
# stopping at every point of OP and on M2 plainly, runs CMD (through M1)
# and observes at each point. POINTS: how many there were.
stepped() {
    local op=$1 vm=$2 snap=$3 d1
    shift 3
    VMSTOREFS_STOP_AT=$op mount_fs "$S" "$M1"
    d1=$DAEMON_PID
    mount_fs "$S" "$M2"
    "$@" &
    each_stop "$op" "$d1" $! observe "$vm" "$snap" || fail "$op of $vm failed"
    ((POINTS > 5)) || fail "$op: the daemon stopped at $POINTS points only"
    unmount_fs "$M2"
    forget_daemon "$DAEMON_PID"
    DAEMON_PID=$d1
    unmount_fs "$M1"
    forget_daemon "$d1"
    check_store "$S"
}

# one_window WHAT DEV: DEV's chain did not resolve at exactly one point
# (after its rebase, before its rename: the two steps follow each other).
one_window() {
    local -a pts
    read -r -a pts <<<"${GAPS[$2]:-}"
    ((${#pts[@]} == 1)) || fail "$1: $2's chain did not resolve at points '${GAPS[$2]:-}', not at one"
}

# The first take: both disks standalone, no window allowed.
stepped take vm s1 mkdir "$M1/vm/snapshots/s1"
[ -z "${GAPS[vda]:-}${GAPS[vdb]:-}" ] ||
    fail "take s1: the chain of a standalone disk did not resolve at point(s) ${GAPS[vda]:-}${GAPS[vdb]:-}"
((${#LINKED[@]})) || fail "take s1: no point saw the active image with its frozen second name"
pass "first take: every disks/<dev>.qcow2 named a file and its chain resolved at all $POINTS points"

cp -a "$S" "$TMP/fix/s1" || fail "fixture s1"
GAPS=() LINKED=()
stepped take vm s2 mkdir "$M1/vm/snapshots/s2"
one_window take-s2 vda
one_window take-s2 vdb
FIRST_LINKED=${LINKED[0]} LAST_LINKED=${LINKED[-1]}
pass "second take: named at all $POINTS points, chains resolved but at one instant per disk"

GAPS=()
stepped revert vm "" ln -sfn snapshots/s1 "$M1/vm/current"
[ "${#GAPS[@]}" = 0 ] || fail "revert: a chain did not resolve at some point"
pass "revert: named and resolving at all $POINTS points"

# A crash with the daemon's own second name on an active image: at the
# first point that showed one, and at the last.
for p in "$FIRST_LINKED" "$LAST_LINKED"; do
    rm -rf "$S" && cp -a "$TMP/fix/s1" "$S" || fail "restore s1"
    VMSTOREFS_CRASH_AT=take:$p mount_fs "$S" "$M1"
    mkdir "$M1/vm/snapshots/s2" 2>/dev/null && fail "take:$p: no crash"
    wait "$DAEMON_PID"
    st=$?
    forget_daemon "$DAEMON_PID"
    [ "$st" = 99 ] || fail "take:$p: the daemon exited with $st, not at its crash point"
    fusermount3 -u -z "$M1" 2>/dev/null
    [ -f "$S/vm/disks/vda.qcow2" ] && [ -f "$S/vm/disks/vdb.qcow2" ] ||
        fail "take:$p: an active image names nothing after the crash"
    links=$(stat -c %h "$S/vm/disks/vda.qcow2" "$S/vm/disks/vdb.qcow2" | sort -n | tail -n 1)
    [ "$links" = 2 ] || fail "take:$p: the crash did not leave an active image with two names"
    mount_fs "$S" "$M1"
    [ -d "$M1/vm/snapshots/s2" ] || fail "take:$p: not rolled forward"
    for f in "$S"/vm/disks/*.qcow2 "$S"/vm/snapshots/*/*.qcow2; do
        [ "$(stat -c %h "$f")" = 1 ] || fail "take:$p: $f has $(stat -c %h "$f") names after recovery"
    done
    mkdir "$M1/vm/snapshots/s3" || fail "take:$p: the next take after recovery was refused"
    read_pattern "$M1/vm/disks/vda.qcow2" "$(disk_pattern 0)" 0 1M
    read_pattern "$M1/vm/disks/vdb.qcow2" "$(disk_pattern 1)" 0 1M
    unmount_fs "$M1"
    forget_daemon "$DAEMON_PID"
    check_store "$S"
done
pass "a crash between a link and its rename rolls forward: one name per image, the next take works"

# No hard links: the renames, logged; the observer sees the name vanish.
rm -rf "$S" && cp -a "$TMP/fix/start" "$S" || fail "restore start"
LD_PRELOAD=$HELPERS/nolink.so VMSTOREFS_STOP_AT=take mount_fs "$S" "$M1"
d1=$DAEMON_PID
missing=0
count_missing() { [ -e "$S/vm/disks/vda.qcow2" ] || missing=$((missing + 1)); }
mkdir "$M1/vm/snapshots/s1" &
each_stop take "$d1" $! count_missing || fail "take without hard links failed"
grep -q "has no hard links: the active images are renamed" "$DAEMON_LOG" ||
    fail "no log line for the store without hard links"
((missing > 0)) || fail "without hard links the observer never saw the renames' gap (is it looking?)"
read_pattern "$M1/vm/snapshots/s1/vda.qcow2" "$(disk_pattern 0)" 0 1M
read_pattern "$M1/vm/disks/vdb.qcow2" "$(disk_pattern 1)" 0 1M
unmount_fs "$M1"
forget_daemon "$d1"
check_store "$S"
pass "a store without hard links: the take renames (logged); the gap it leaves is seen at $missing point(s)"
