#!/bin/bash
# Deletes are atomic across a crash (SPEC §4). The daemon dies
# (VMSTOREFS_CRASH_AT=<op>:<n>, _exit(99)) at each durable point in turn
# of: a whole snapshot delete merged each way (commit and pull), a delete
# that leaves a hidden image (two dependents), the deferred merge of that
# image once a dependent goes (gc, after a delete and after a revert that
# discards the active branch), a partial delete (one disk's image), a VM
# delete (with a hidden image in it), a disk detach and an undefine.
# After each crash and a remount the VM reads exactly as before or exactly
# as after (the data model, read through the mount), nothing is orphaned,
# no hidden image is left with fewer than two dependents, the journal is
# empty; once a point rolls forward, every later one does.
# Then kill -9 of the daemon in the middle of a qemu-img merge (stopped a
# quarter in by qimggate.sh), each direction: the qemu-img dies with it,
# and the remount finishes the merge.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate xmllint pgrep

S=$TMP/store M=$TMP/mnt
MAX_POINTS=40
crash_sampling

# ---- fixtures: one store, kept aside, restored before every run ----

# chain_vm VM: 2 disks, s1 <- s2 <- s3 <- active; s2's images hold much
# (4.5 MiB) and s3's little (512 KiB) over them, the active images much
# again: deleting s2 is cheapest as a commit of s3 into s2, deleting s3
# as a pull of s3 into the active image.
chain_vm() {
    local vm=$1 dev i
    make_vm "$S" "$vm" 2
    model_init "$vm" 2 524288 16
    mount_fs "$S" "$M"
    for i in 0 1; do
        model_write "$M" "$vm" "${SNAP_DEVS[i]}" 2 1 $((0x21 + i))
    done
    model_take "$M" "$vm" s1
    for i in 0 1; do
        model_write "$M" "$vm" "${SNAP_DEVS[i]}" 3 8 $((0x31 + i))
        model_write "$M" "$vm" "${SNAP_DEVS[i]}" 2 1 $((0x41 + i))
    done
    model_take "$M" "$vm" s2
    for i in 0 1; do
        model_write "$M" "$vm" "${SNAP_DEVS[i]}" 3 1 $((0x51 + i))
    done
    model_take "$M" "$vm" s3
    for i in 0 1; do
        model_write "$M" "$vm" "${SNAP_DEVS[i]}" 4 9 $((0x61 + i))
    done
    model_ok "$M" "$vm"
    unmount_fs "$M"
    forget_daemon "$DAEMON_PID"
}

# branch_vm VM: the CloudStack deletion test: s1 <- s2 <- s3, revert to
# s2, s4 on the new branch: s2's image has two dependents (s3's and s4's).
branch_vm() {
    local vm=$1
    make_vm "$S" "$vm" 2
    model_init "$vm" 2 524288 16
    mount_fs "$S" "$M"
    model_write "$M" "$vm" vda 2 1 0x71
    model_take "$M" "$vm" s1
    model_write "$M" "$vm" vda 3 2 0x72
    model_write "$M" "$vm" vdb 2 1 0x73
    model_take "$M" "$vm" s2
    model_write "$M" "$vm" vda 4 1 0x74
    model_take "$M" "$vm" s3
    model_write "$M" "$vm" vda 5 1 0x75
    model_revert "$M" "$vm" s2
    model_write "$M" "$vm" vda 6 1 0x76
    model_write "$M" "$vm" vdb 3 1 0x77
    model_take "$M" "$vm" s4
    model_write "$M" "$vm" vda 7 1 0x78
    model_ok "$M" "$vm"
    unmount_fs "$M"
    forget_daemon "$DAEMON_PID"
}

# delete_hidden VM S: rmdir S, which has two dependents: S leaves the
# listing, its images stay hidden, everything reads as before.
delete_hidden() {
    mount_fs "$S" "$M"
    rmdir "$M/$1/snapshots/$2" || fail "fixture: rmdir $1/snapshots/$2"
    model_forget "$1" "$2"
    model_ok "$M" "$1"
    [ -n "$(hidden_dirs "$S" "$1")" ] || fail "fixture: no hidden directory after deleting $1's $2"
    unmount_fs "$M"
    forget_daemon "$DAEMON_PID"
}

chain_vm c      # commit, pull, partial, detach, undefine
branch_vm h     # hidden
branch_vm d     # deferred (gc after a delete), VM delete
delete_hidden d s2
# revert-gc: the CloudStack reversion test: s1 <- s2, revert to s1,
# delete s1 (hidden: s2's image and the active image depend on it).
make_vm "$S" r 1
model_init r 1 524288 16
mount_fs "$S" "$M"
model_write "$M" r vda 2 1 0x81
model_take "$M" r s1
model_write "$M" r vda 3 1 0x82
model_take "$M" r s2
model_write "$M" r vda 4 1 0x83
model_revert "$M" r s1
model_write "$M" r vda 5 1 0x84
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
delete_hidden r s1
check_store "$S"
mv "$S" "$TMP/fixture"
FIXTURE_MODEL=$(model_dump)

# restore VM: the store as the fixture has it, with VM alone in it (and
# .vmstorefs): each case acts on, and checks, one VM, and copying the
# others before every run was most of the copying.
restore() {
    rm -rf "$S" && mkdir "$S" && cp -a "$TMP/fixture/.vmstorefs" "$TMP/fixture/$1" "$S/" ||
        fail "cannot restore the fixture"
    model_load "$FIXTURE_MODEL"
}

# ---- the cases: NAME VM CRASH-OPS ----

# run_case NAME: the user's command, and sync VMDIR, which waits for the
# merges it left to the background worker (the "gc" operation).
run_case() {
    case $1 in
        commit) rmdir "$M/c/snapshots/s2" && sync "$M/c" ;;
        pull) rmdir "$M/c/snapshots/s3" && sync "$M/c" ;;
        partial) rm "$M/c/snapshots/s2/vdb.qcow2" && sync "$M/c" ;;
        detach) rm "$M/c/disks/vdb.qcow2" && sync "$M/c" ;;
        undefine) rm "$M/c/domain.xml" && sync "$M/c" ;;
        hidden) rmdir "$M/h/snapshots/s2" && sync "$M/h" ;;
        deferred) rmdir "$M/d/snapshots/s3" && sync "$M/d" ;;
        revertgc) ln -sfn snapshots/s2 "$M/r/current" && sync "$M/r" ;;
        vmdelete) rmdir "$M/d" ;;
    esac
}

# model_after NAME: the model as the command leaves it (from the fixture's).
model_after() {
    case $1 in
        commit) model_forget c s2 ;;
        pull) model_forget c s3 && MODEL[c/#cur]=s2 ;;
        partial) model_forget c s2 vdb ;;
        detach) model_forget c @ vdb ;;
        undefine) MODEL[c/#def]=0 ;;
        hidden) model_forget h s2 ;;
        deferred) model_forget d s3 ;;
        revertgc) MODEL[r/@/vda]=${MODEL[r/s2/vda]} MODEL[r/#cur]=s2 ;;
        vmdelete) model_drop_vm d ;;
    esac
}

# The log line of a merge names its direction.
merge_directions() {
    grep -o 'merge of [^ ]* disk [^ ]* (snapshot [^)]*): direction=[a-z]*' "$1" | sed 's/.*direction=//' | sort -u
}

# which_state VM: STATE="B" or "A" as the mount and the store match the
# before or the after model, which MODEL then holds (the store checks
# that follow check that state); status 1 (and why on stderr) when
# neither. (Not in $(...): the model's caches - xpath_cached - stay for
# the next point.)
which_state() {
    local vm=$1 errb erra shape
    STATE=""
    # What the mount lists, once for both models.
    model_shape_v "$M" "$vm"
    shape=$SHAPE
    model_load "$BEFORE"
    if model_check "$M" "$vm" "$shape"; then
        STATE=B
        return 0
    fi
    errb=$MODEL_ERR
    model_load "$AFTER"
    model_check "$M" "$vm" "$shape" && { STATE=A; return 0; }
    erra=$MODEL_ERR
    echo "against before: $errb" >&2
    echo "against after: $erra" >&2
    return 1
}

# crash_case NAME VM OP: every crash point of OP in NAME's command.
crash_case() {
    local name=$1 vm=$2 op=$3 n pid status seen_after=0 points="" tried="" st log0
    restore "$vm"
    BEFORE=$(model_dump)
    model_after "$name"
    AFTER=$(model_dump)
    CRASH_FINISHED=""
    for ((n = CRASH_FIRST; n <= MAX_POINTS; n += CRASH_STRIDE)); do
        restore "$vm"
        export VMSTOREFS_CRASH_AT=$op:$n
        try_mount || fail "$name/$op:$n: no mount"
        unset VMSTOREFS_CRASH_AT
        pid=$DAEMON_PID
        if run_case "$name" 2>"$TMP/op.err"; then
            # Done, unless a merge that follows it (gc) crashes the daemon.
            model_load "$AFTER"
            if settled "$S" "$vm"; then
                sleep 0.2
                if kill -0 "$pid" 2>/dev/null; then
                    which_state "$vm" || fail "$name/$op:$n: finished, but not as the model has it"
                    st=$STATE
                    [ "$st" = A ] || fail "$name/$op:$n: the command succeeded but the VM reads as before"
                    store_ok "$S" "$vm"
                    DAEMON_PID=$pid unmount_fs "$M"
                    forget_daemon "$pid"
                    CRASH_FINISHED=$n
                    if crash_below "${tried##* }" "$([ -n "$points" ] || echo "no point crashed yet")"; then
                        n=$CRASH_NEXT
                        continue
                    fi
                    break
                fi
            elif kill -0 "$pid" 2>/dev/null; then
                fail "$name/$op:$n: the command succeeded, the daemon lives, but 5 s later: $STORE_ERR"
            fi
        fi
        status=0
        timeout 10 tail --pid="$pid" -f /dev/null || fail "$name/$op:$n: the command ended ($(cat "$TMP/op.err")) but the daemon neither crashed nor settled"
        wait "$pid" || status=$?
        forget_daemon "$pid"
        [ "$status" -eq 99 ] ||
            fail "$name/$op:$n: the command failed ($(cat "$TMP/op.err")) and the daemon exited $status, not 99"
        fusermount3 -u -z "$M" || fail "$name/$op:$n: fusermount3 -u -z"
        try_mount || fail "$name/$op:$n: the daemon would not mount after the crash"
        # The mount's worker finishes the merges the crash left.
        [ ! -d "$M/$vm" ] || sync "$M/$vm" || fail "$name/$op:$n: sync $vm after recovery"
        which_state "$vm" || fail "$name/$op:$n: after recovery $vm is neither as before nor as after"
        st=$STATE
        settled "$S" "$vm" || fail "$name/$op:$n: after recovery: $STORE_ERR"
        store_ok --settled "$S" "$vm"
        if [ "$st" = B ]; then
            ((seen_after)) && fail "$name/$op:$n: rolled back after an earlier point was committed"
        else
            seen_after=1
        fi
        points+=$st tried+=" $n"
        unmount_fs "$M"
        forget_daemon "$DAEMON_PID"
        # (A point below one that finished: the last one.)
        [ -z "$CRASH_FINISHED" ] || break
    done
    ((n <= MAX_POINTS)) || fail "$name/$op: still crashing at point $MAX_POINTS"
    [ -n "$points" ] || fail "$name/$op: the command never reached crash point $CRASH_FIRST of operation '$op'"
    pass "$name/$op: crashed at point(s)$tried of $((CRASH_FINISHED - 1)) at most ($points: B rolled back, A rolled forward)"
}

# The reference runs: each command without a crash leaves the model's
# "after"; the two merge cases go each way.
for name in commit pull; do
    restore c
    log0=$(wc -l <"$DAEMON_LOG")
    try_mount || fail "$name: no mount"
    run_case "$name" || fail "$name: the command failed without a crash"
    model_after "$name"
    model_ok "$M" c
    store_ok "$S" c
    unmount_fs "$M"
    forget_daemon "$DAEMON_PID"
    tail -n +$((log0 + 1)) "$DAEMON_LOG" >"$TMP/$name.log"
done
dir_commit=$(merge_directions "$TMP/commit.log") dir_pull=$(merge_directions "$TMP/pull.log")
[ "$dir_commit" = commit ] && [ "$dir_pull" = pull ] ||
    fail "the two merge cases should merge by commit and by pull (the cheaper way), got '$dir_commit' and '$dir_pull'"
pass "reference: deleting c's s2 commits s3 into it, deleting s3 pulls it into the active image"

# A delete changes the namespace (operation "delete": the images still
# read are hidden) and leaves its merges to the background worker
# (operation "gc"): each is crashed at its own points. After a crash in
# the merge the snapshot is already gone and every image reads as
# after: the next mount's worker finishes the merge.
crash_case commit c delete
crash_case commit c gc
crash_case pull c delete
crash_case pull c gc
crash_case partial c delete
crash_case partial c gc
crash_case hidden h delete
# The merge a delete makes possible (the hidden image down to one
# dependent) is the worker's too.
crash_case deferred d delete
crash_case deferred d gc
crash_case revertgc r gc
crash_case vmdelete d vmdelete
crash_case detach c detach
crash_case undefine c undefine

# ---- kill -9 in the middle of a merge ----
# One VM, slots of 4 MiB: s1's image 48 MiB, s2's 20 MiB over it, the
# active image 24 MiB over that. Deleting s2 pulls it into the active
# image (20 < 24 MiB); deleting s1 then commits the active image into it
# (44 < 48 MiB). The merge's qemu-img is stopped (qimggate.sh) once it
# reported a quarter, and the daemon is killed then: in the middle of
# the merge whatever the machine's speed.
rm -rf "$S"
MODEL=()
gate_init
make_vm "$S" big 1
qemu-img resize -q "$S/big/disks/vda.qcow2" 128M || fail "cannot grow big's disk"
model_init big 1 4194304 24
mount_fs "$S" "$M" "${GATE_OPT[@]}"
model_write "$M" big vda 0 12 0x91
model_take "$M" big s1
model_write "$M" big vda 12 5 0x92
model_take "$M" big s2
model_write "$M" big vda 17 6 0x93

# kill_mid_merge SNAP DIRECTION CURRENT: rmdir SNAP; kill -9 the daemon
# while its worker's qemu-img is a quarter into the merge; remount: SNAP
# is gone, `current` names CURRENT, the data reads as after.
kill_mid_merge() {
    local snap=$1 want=$2 pid q log0
    log0=$(wc -l <"$DAEMON_LOG")
    pid=$DAEMON_PID
    gate_arm
    gate_stops 25
    rmdir "$M/big/snapshots/$snap" || fail "kill -9 $snap: rmdir"
    gate_wait "$pid" 1
    q=${GATED[0]}
    gate_cont "$q"
    gate_progress "$q"
    [ "$GATE_FIG" != eof ] || fail "kill -9 $snap: the merge ended before it reported 25 %"
    gate_kill_daemon "$q"
    gate_stops
    grep -q "merge of big disk vda (snapshot [^)]*): .*done in" <(tail -n +$((log0 + 1)) "$DAEMON_LOG") &&
        fail "kill -9 $snap: the merge had finished before the kill"
    grep -q "merge of big disk vda (snapshot [^)]*): direction=$want " <(tail -n +$((log0 + 1)) "$DAEMON_LOG") ||
        fail "kill -9 $snap: the merge did not start as a $want"
    fusermount3 -u -z "$M" || fail "kill -9 $snap: fusermount3 -u -z"
    # The remount serves at once; its background worker finishes the
    # merge (stopped at the gate here), and big refuses changes until
    # then.
    mount_fs "$S" "$M" "${GATE_OPT[@]}"
    gate_wait "$DAEMON_PID" 1
    ls -l "$M/big/snapshots" >/dev/null || fail "kill -9 $snap: the remount does not serve big while its merge is finished"
    expect_fail "a take while a merge a crash left is finished" "Device or resource busy" mkdir "$M/big/snapshots/x"
    gate_disarm "$DAEMON_PID"
    sync "$M/big" || fail "kill -9 $snap: sync big after the remount"
    model_forget big "$snap"
    MODEL[big/#cur]=$3
    model_ok "$M" big
    settled "$S" big || fail "kill -9 $snap: $STORE_ERR"
    store_ok --settled "$S" big
    pass "kill -9 during the $want merge of $snap: qemu-img died with the daemon; the remount finished the merge"
}
kill_mid_merge s2 pull s1
kill_mid_merge s1 commit ""
unmount_fs "$M"
