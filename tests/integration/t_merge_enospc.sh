#!/bin/bash
# A merge that would run out of space does not start, and one that runs
# out while it copies changes nothing anyone reads (issue 15: what can
# fail is settled first; ENOSPC during every data step, on ext4 and xfs).
# The store lives on a small file system of each kind (smallfs.sh: tmpfs,
# and ext4 and xfs on loop devices), in a private mount namespace.
#   - Not enough room: rmdir of a snapshot whose merge needs more room
#     than is free still returns at once (it only changes the namespace);
#     the background merge is refused with ENOSPC before anything is
#     written (the check of vm/delplan.c, room_for: statvfs's free space
#     must hold there), `sync VMDIR` says so, the snapshot stays gone and
#     every image reads as before; once there is room, the next sync has
#     the merge done.
#   - Room at the check, none while it copies: the data step's qemu-img
#     (a pull, or a commit: both directions) is stopped at the gate
#     (qimggate.sh) and the file system filled before it goes on: it
#     fails with ENOSPC (not EIO), sync says so, every image reads as
#     before (the retries wait at the gate meanwhile, holding the images
#     as a running merge does: read with force-share), and
#     with room again the merge is made from where it stood, leaving
#     images qemu-img check finds clean (no leaked cluster).
. "$(dirname "$0")/privns.sh"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
. "$(dirname "$0")/qimggate.sh"
. "$(dirname "$0")/smallfs.sh"
need_fuse
need virt-xml-validate xmllint fallocate
gate_init

# setup TYPE VM S1MIB S2MIB: a store on a fresh TYPE file system ($FS,
# store $S, mount $M) with VM: s1 holding S1MIB MiB of its own, s2
# S2MIB MiB, the active image 1 MiB. Deleting s1 pulls its image into
# s2's when it is the smaller one, else commits s2's into it.
setup() {
    local type=$1 vm=$2
    FS=$TMP/fs-$type-$vm S=$TMP/fs-$type-$vm/store M=$TMP/mnt-$type-$vm
    smallfs "$FS" "$type" 64
    make_vm "$S" "$vm" 1
    model_init "$vm" 1 1048576 32
    mount_fs "$S" "$M" "${GATE_OPT[@]}"
    model_write "$M" "$vm" vda 0 "$3" 0x31
    model_take "$M" "$vm" s1
    model_write "$M" "$vm" vda "$3" "$4" 0x32
    model_take "$M" "$vm" s2
    model_write "$M" "$vm" vda 30 1 0x33
}

# no_room TYPE: the merge refused before it starts.
no_room() {
    local type=$1 vm=v$1 err
    setup "$type" "$vm" 8 12
    fill_to "$FS" "$FS/filler" $((4 * 1048576))
    rmdir "$M/$vm/snapshots/s1" || fail "$type: rmdir s1 with 4 MiB free"
    err=$(sync "$M/$vm" 2>&1) && fail "$type: sync $vm succeeded though its merge has no room"
    grep -q "No space left on device" <<<"$err" || fail "$type: sync $vm: $err, not ENOSPC"
    grep -q "merges of $vm: attempt 1 failed (No space left on device): the merges need up to [0-9]* KiB" "$DAEMON_LOG" ||
        fail "$type: the refused merge is not logged with its reason"
    model_forget "$vm" s1
    model_ok "$M" "$vm"
    [ -n "$(hidden_dirs "$S" "$vm")" ] || fail "$type: s1's image is not kept hidden while its merge waits for room"
    pass "$type: no room for the merge: rmdir returned, the merge was refused with ENOSPC before it wrote anything, sync said so, $vm reads as before"

    rm "$FS/filler"
    sync "$M/$vm" || fail "$type: sync $vm once there is room"
    model_ok "$M" "$vm"
    settled "$S" "$vm" || fail "$type: after the merge: $STORE_ERR"
    store_ok "$S" "$vm"
    unmount_fs "$M"
    pass "$type: with room again, sync had the merge done: no hidden image left, $vm reads as before"
}

# full_while_copying TYPE DIRECTION: the disk fills while the merge's
# qemu-img runs.
full_while_copying() {
    local type=$1 dir=$2 vm=v$1$2 err q st
    if [ "$dir" = pull ]; then
        setup "$type" "$vm" 6 10
    else
        setup "$type" "$vm" 10 6
    fi
    gate_delete "$vm"
    st=$GATE_SYNC q=${GATED[0]}
    if [ "$dir" = pull ]; then
        [[ $(gate_args "$q") == *" rebase -p "* ]] || fail "$type $dir: the stopped qemu-img is not a pull: $(gate_args "$q")"
    else
        # A commit copies window by window (vm/commitchunks.h).
        [[ $(gate_args "$q") == *" convert -p -U -n -B "* ]] || fail "$type $dir: the stopped qemu-img is not a commit's window: $(gate_args "$q")"
    fi
    fill_to "$FS" "$FS/filler" 0
    # What the file system still lets a new file have (xfs and ext4 keep
    # blocks back from df's figure), taken too.
    dd if=/dev/zero of="$FS/filler2" bs=4k status=none 2>/dev/null
    # It goes on and fails, and so does the second try the operation
    # makes at once (vm_commit): sync returns then. The gate stays armed,
    # so the retries with back-off stop at it while the images are read.
    gate_cont "$q"
    while kill -0 "$st" 2>/dev/null; do
        gate_cont $(gate_stopped "$DAEMON_PID")
        sleep 0.05
    done
    wait "$st" && fail "$type $dir: sync $vm succeeded though its merge ran out of room"
    err=$(cat "$TMP/sync.err")
    grep -q "No space left on device" <<<"$err" || fail "$type $dir: sync $vm: $err, not ENOSPC"
    model_forget "$vm" s1
    # A retry stopped at the gate holds the merge's images as its
    # qemu-img would while it ran (imagelock.h): the one it writes lets
    # in only readers that force-share.
    MODEL_SHARE=1
    model_ok "$M" "$vm"
    MODEL_SHARE=
    pass "$type: the file system filled during the merge's $dir: sync said ENOSPC, $vm reads as before"

    rm "$FS/filler" "$FS/filler2"
    gate_disarm "$DAEMON_PID"
    sync "$M/$vm" || fail "$type $dir: sync $vm once there is room"
    model_ok "$M" "$vm"
    settled "$S" "$vm" || fail "$type $dir: after the merge: $STORE_ERR"
    store_ok "$S" "$vm"
    unmount_fs "$M"
    pass "$type: with room again, sync had the $dir done: no hidden image left, no leaked cluster, $vm reads as before"
}

for type in "${SMALLFS_TYPES[@]}"; do
    no_room "$type"
    full_while_copying "$type" pull
    full_while_copying "$type" commit
done
