#!/bin/bash
# A commit-direction merge resumes where a crash stopped it
# (vm/commitchunks.h): the daemon copies the dependent's data into the
# deleted snapshot's image window by window, marking each in the journal
# record once it is on disk, and a replay copies only the windows not
# marked. Windows of 4 MiB here (VMSTOREFS_COMMIT_CHUNK_MIB). s1's image
# holds slots 0-19 (1 MiB slots), the active image over it slots 1, 5,
# 8-10 and 13 and zeros it allocated in slot 17 (they must read as zeros
# after the merge, not as s1's data), so deleting s1 commits the active
# image into it: five windows to copy (0, 4, 8, 12 and 16 MiB), none
# from 20 MiB on (nothing there: no qemu-img). The daemon is killed
# (kill -9) while the third window's qemu-img is half way through
# (stopped by qimggate.sh after it reported 50 %); the remount finishes
# the merge, and the qemu-imgs it ran (the gate logs every one) copy the
# windows at 8, 12 and 16 MiB only, and .jobs shows it starting from the
# 2 MiB the first two copied. The VM then reads as after the
# delete, through the mount and on the store; the merged image has no
# leaked cluster, the journal is empty.
# Last, an active image larger than the snapshot's (a disk grown since)
# is committed whole by qemu-img commit, which grows the image first.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate xmllint perl pgrep

S=$TMP/store M=$TMP/mnt
MIB=1048576
export VMSTOREFS_COMMIT_CHUNK_MIB=4

# window_of PID: the offset of the window a gated convert copies (its
# source window, node "sw"); "" for anything else.
window_of() {
    gate_args "$1" | grep -o '"node-name":"sw","offset":[0-9]*' | grep -o '[0-9]*$'
}

# next_gated PREV: waits for a data command stopped at the gate other
# than PREV; Q=its pid.
next_gated() {
    local end=$((SECONDS + 120)) p
    while ((SECONDS < end)); do
        for p in $(gate_stopped "$DAEMON_PID"); do
            [ "$p" != "$1" ] && { Q=$p; return 0; }
        done
        sleep 0.05
    done
    fail "no data command of the merge stopped at the gate in 120 s (calls: $(gate_calls | awk '{ print $2 }' | tr '\n' ' '))"
}

mkdir -p "$S"
gate_init
mount_fs "$S" "$M" "${GATE_OPT[@]}"
make_vm "$S" r 1
model_init r 1 $MIB 24
[ -d "$M/r" ] || fail "r does not show in the mount"
model_write "$M" r vda 0 20 0x31
model_take "$M" r s1
model_write "$M" r vda 1 1 0x32
model_write "$M" r vda 5 1 0x33
model_write "$M" r vda 8 3 0x34
model_write "$M" r vda 13 1 0x35
out=$(qemu-io -f qcow2 -c "write -q -z $((17 * MIB)) $MIB" "$M/r/disks/vda.qcow2" 2>&1) ||
    fail "write -z of r's slot 17: $out"
slot_set "${MODEL[r/@/vda]}" 17 0
MODEL[r/@/vda]=$SLOT_LIST

# ---- windows 0 and 4 MiB copied, the third killed half way ----
gate_arm
rmdir "$M/r/snapshots/s1" || fail "rmdir r's s1"
Q=""
for want in 0 4 8; do
    prev=$Q
    next_gated "$prev"
    off=$(window_of "$Q")
    [ "$off" = $((want * MIB)) ] ||
        fail "the merge's data command $((want / 4 + 1)) is not the window at $want MiB: $(gate_args "$Q" | cut -c 1-300)"
    if [ "$want" = 8 ]; then
        # The first two are on disk and marked before the third starts,
        # and .jobs counts what they copied (2 of the 7 MiB r's active
        # image holds).
        grep -Eqs "\"copied\": ?$((8 * MIB))," "$S"/.vmstorefs/journal/*.json ||
            fail "the third window started before the record said 8 MiB were copied: $(cat "$S"/.vmstorefs/journal/*.json)"
        grep -Eq "^merge r [^ ]*/vda $((2 * MIB))/$((7 * MIB)) " "$M/.jobs" ||
            fail ".jobs at the third window: $(tr '\n' ';' <"$M/.jobs")"
        gate_stops 50
    fi
    gate_cont "$Q"
done
gate_progress "$Q"
[ "$GATE_FIG" != eof ] || fail "the third window's qemu-img ended before it reported 50 %"
gate_kill_daemon "$Q"
gate_cont "$Q" # its relay reads to the end
gate_stops
gate_disarm
fusermount3 -u -z "$M" || fail "fusermount3 -u -z"
pass "the daemon killed half way through the third window of r's commit (its qemu-img stopped after $GATE_FIG %), two windows marked copied"

# ---- the remount copies only the windows not marked ----
ncalls=$(gate_calls | wc -l)
log0=$(wc -l <"$DAEMON_LOG")
gate_arm
mount_fs "$S" "$M" "${GATE_OPT[@]}"
# The replay's first window, at the gate: .jobs starts from what the
# record says was copied.
next_gated ""
grep -Eq "^merge r [^ ]*/vda $((2 * MIB))/$((7 * MIB)) " "$M/.jobs" ||
    fail ".jobs at the replay's first window: $(tr '\n' ';' <"$M/.jobs")"
gate_disarm "$DAEMON_PID"
sync "$M/r" || fail "sync r after the remount"
replay=$(gate_calls | tail -n +$((ncalls + 1)))
offs=$(grep -o '"node-name":"sw","offset":[0-9]*' <<<"$replay" | grep -o '[0-9]*$' | paste -sd' ')
[ "$(wc -l <<<"$replay")" = 3 ] && [ "$offs" = "$((8 * MIB)) $((12 * MIB)) $((16 * MIB))" ] ||
    fail "the replay did not copy exactly the windows at 8, 12 and 16 MiB: $(awk '{ print $2 }' <<<"$replay" | paste -sd' ') (windows: ${offs:-none})"
tail -n +$((log0 + 1)) "$DAEMON_LOG" | grep -q "commit of $S/r/disks/vda.qcow2 into .*: resumed at $((8 * MIB)) of $((64 * MIB)) bytes" ||
    fail "no log line of the commit resumed at 8 MiB"
tail -n +$((log0 + 1)) "$DAEMON_LOG" | grep -q "merge of r disk vda (snapshot [^)]*): replayed; [0-9]* leaked cluster(s) of .* freed" ||
    fail "no log line of the leaks of the replayed merge"
pass "the remount copied the windows at 8, 12 and 16 MiB only, and freed the merged image's leaks"

model_forget r s1
model_ok "$M" r
settled "$S" r || fail "after the merge: $STORE_ERR"
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
store_ok --settled "$S" r
out=$(qemu-img check "$S/r/disks/vda.qcow2" 2>&1) || fail "qemu-img check of r's merged image: $out"
bad=$(read_slots "$S/r/disks/vda.qcow2" r "${MODEL[r/@/vda]}") || fail "r's image on the store: $bad"
[ -z "$(ls -A "$S/r/snapshots")" ] || fail "left in r/snapshots: $(ls -A "$S/r/snapshots")"
pass "r reads as after the delete through the mount and on the store (slot 17 zeros, s1's data where the active image held none); qemu-img check clean, journal empty, nothing left over"

# ---- an active image larger than s1's: qemu-img commit ----
make_vm "$S" g 1
model_init g 1 $MIB 24
mount_fs "$S" "$M" "${GATE_OPT[@]}"
model_write "$M" g vda 0 12 0x41
model_take "$M" g s1
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
qemu-img resize -q "$S/g/disks/vda.qcow2" 80M || fail "cannot grow g's active image"
mount_fs "$S" "$M" "${GATE_OPT[@]}"
model_write "$M" g vda 2 1 0x42
out=$(qemu-io -f qcow2 -c "write -q -P 0x43 $((72 * MIB)) $MIB" "$M/g/disks/vda.qcow2" 2>&1) ||
    fail "write past s1's size in g: $out"
ncalls=$(gate_calls | wc -l)
rmdir "$M/g/snapshots/s1" || fail "rmdir g's s1"
sync "$M/g" || fail "sync g"
kinds=$(gate_calls | tail -n +$((ncalls + 1)) | awk '{ print $2 }' | paste -sd' ')
[ "$kinds" = commit ] || fail "g's merge ran '$kinds', not one qemu-img commit"
model_forget g s1
model_ok "$M" g
out=$(qemu-io -r -f qcow2 -c "read -q -P 0x43 $((72 * MIB)) $MIB" "$M/g/disks/vda.qcow2" 2>&1) ||
    fail "g past s1's size after the merge: $out"
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
store_ok "$S" g
pass "an active image grown past s1's size is committed whole (qemu-img commit): g reads as before, past s1's size too"
