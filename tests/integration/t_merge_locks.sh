#!/bin/bash
# A merge holds qemu's locks on every image it reads or writes from its
# check to its last step (imagelock.h, the set a journal run holds); its
# qemu-img runs with qemu's own locking off for them (qspec.h). There is
# no moment between the check and qemu-img's start when another qemu can
# open an image the merge touches.
#
# The moment that used to be open is held still: the merge's qemu-img is
# stopped at the gate (qimggate.sh) after the daemon forked it and before
# the real qemu-img runs. Then, on the store path of each image of the
# merge's chain (the descriptors the stopped qemu-img was handed):
#   - qemu-io writing, and qemu-img opening for writing (a bitmap added),
#     are refused ("Failed to get "write" lock");
#   - the image the merge writes refuses readers that ask for a
#     consistent image too (qemu-io -r), as qemu-img's own locks would;
#   - an image the merge only reads lets readers of it in (a backup
#     copying that layer goes on).
# Let go, the merge finishes and the VM reads as after the delete, with
# nothing written by the refused openers. Both directions (pull into the
# active image, commit of the active image into the snapshot's), and the
# replay of a merge (each direction) whose daemon was killed (kill -9) at
# the gate: the remount's worker holds the locks again before its
# qemu-img starts.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate xmllint perl pgrep

S=$TMP/store M=$TMP/mnt

# refuses_writers WHAT IMAGE: a qemu-io writing and a qemu-img opening
# IMAGE for writing (on the store path) both fail on qemu's locks.
refuses_writers() {
    expect_fail "$1: qemu-io write on $2" 'Failed to get "write" lock' \
        qemu-io -f qcow2 -c 'write -P 0x66 0 64k' "$2"
    expect_fail "$1: qemu-img bitmap --add on $2" 'Failed to get "write" lock' \
        qemu-img bitmap --add "$2" probe
}

# alone IMAGE: a json: spec of IMAGE alone, as a backup copies one file
# (its backing file may be the image the merge writes).
alone() {
    echo "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$1\"},\"backing\":null}"
}

# check_held VM DIR Q: while the merge's qemu-img Q is stopped before it
# started, every image of its chain (layer 0: the image merged into or
# from, 1: the snapshot's, 2: s0's) refuses writers; the one DIR writes
# (pull: layer 0, commit: layer 1) refuses readers that want a consistent
# image (qemu's default) but not a force-share one (-U), as qemu-img's
# own locks did; the others let every reader in.
check_held() {
    local vm=$1 dir=$2 q=$3 k img written out verb=$2
    # A commit copies window by window (vm/commitchunks.h): a convert
    # of the same chain, descriptors in the same order.
    [ "$dir" = commit ] && verb=convert
    [[ $(gate_args "$q") == *" $verb -p "* ]] || fail "$vm: the stopped qemu-img is not a $dir: $(gate_args "$q")"
    written=0
    [ "$dir" = commit ] && written=1
    for k in 0 1 2; do
        img=$(gate_image "$q" "$k")
        [ -f "$img" ] || fail "$vm: layer $k of the stopped $dir is not a file ($img)"
        refuses_writers "$vm ($dir, layer $k)" "$img"
        if [ "$k" -eq "$written" ]; then
            expect_fail "$vm: qemu-io -r on the image the $dir writes ($img)" \
                'Failed to get shared "write" lock' qemu-io -r -c 'read 0 64k' "$(alone "$img")"
            out=$(qemu-io -r -U -c 'read 0 64k' "$(alone "$img")" 2>&1) ||
                fail "$vm: a force-share reader of $img, which the $dir writes, was refused: $out"
        else
            out=$(qemu-io -r -c 'read 0 64k' "$(alone "$img")" 2>&1) ||
                fail "$vm: a reader of $img, which the $dir only reads, was refused: $out"
        fi
    done
}

# after VM: sync VM succeeded, the VM reads as after the delete of s1,
# the store is whole.
after() {
    wait "$RM" || fail "$1: sync failed: $(cat "$TMP/sync.err")"
    model_forget "$1" s1
    MODEL[$1/#cur]=s0
    model_ok "$M" "$1"
    store_ok "$S" "$1"
}

# gated_delete VM: gate_delete; RM: the sync, Q: the stopped qemu-img.
gated_delete() {
    gate_delete "$1"
    RM=$GATE_SYNC Q=${GATED[0]}
}

mkdir -p "$S"
gate_init
mount_fs "$S" "$M" "${GATE_OPT[@]}"
model_pull_vm "$S" "$M" a
model_pull_vm "$S" "$M" b 4 1
model_pull_vm "$S" "$M" c
model_pull_vm "$S" "$M" d 4 1

# ---- pull ----
gated_delete a
check_held a rebase "$Q"
gate_disarm "$DAEMON_PID"
after a
pass "pull: while its qemu-img had not started, the images it writes and reads were refused to writers (and the written one to consistent readers); the merge then finished, a reads as after"

# ---- commit ----
gated_delete b
check_held b commit "$Q"
gate_disarm "$DAEMON_PID"
after b
pass "commit: the same, the snapshot's image refusing consistent readers as the one written"

# ---- kill -9 at the gate, replayed by the next mount ----
# replayed VM DIR: VM's merge (a DIR) stopped at the gate, the daemon
# killed (kill -9); the remount's worker replays the committed record
# and is stopped at the gate again (still armed) before its qemu-img
# starts: the images are held as on the first run.
replayed() {
    gated_delete "$1"
    kill -9 "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null
    forget_daemon "$DAEMON_PID"
    wait "$RM" 2>/dev/null
    fusermount3 -u -z "$M" || fail "$1: fusermount3 -u -z after the kill"
    mount_fs "$S" "$M" "${GATE_OPT[@]}"
    gate_wait "$DAEMON_PID" 1
    check_held "$1" "$2" "${GATED[0]}"
    sync "$M/$1" 2>"$TMP/sync.err" &
    RM=$!
    gate_disarm "$DAEMON_PID"
    after "$1"
    pass "kill -9 at the gate of a $2: the remount's replay held the images before its qemu-img started; $1 reads as after"
}
replayed c rebase
replayed d commit
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
