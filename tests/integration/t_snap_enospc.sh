#!/bin/bash
# A take that runs out of space fails with ENOSPC and leaves the store
# exactly as it was (no journal, no temp files, the same data), whatever
# step it ran out at; the daemon goes on serving, and with space again
# the same take works. The store lives on a small file system of each
# kind (smallfs.sh: tmpfs, and ext4 and xfs on loop devices), mounted in
# a private mount namespace so that nothing outlives the test.
. "$(dirname "$0")/privns.sh"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/smallfs.sh"
need_fuse
need fallocate

# take_when_full TYPE
take_when_full() {
    local type=$1 FS=$TMP/fs-$1 S=$TMP/fs-$1/store M=$TMP/mnt-$1 D FILLER full before refused kib err img
    smallfs "$FS" "$type" 24
    sample_store "$S"
    mount_fs "$S" "$M"
    D=$M/db1 FILLER=$FS/filler

    # Full: what fallocate can take, then the blocks dd still finds.
    fill_to "$FS" "$FILLER" 0
    dd if=/dev/zero bs=64k status=none oflag=append conv=notrunc of="$FILLER" 2>/dev/null
    full=$(stat -c %s "$FILLER")
    [ "$(df --output=avail -B1 "$FS" | tail -n 1)" -lt 65536 ] || fail "$type: the file system did not fill up"

    # Free a little more space each round until the take fits: each
    # refusal runs out at a later step of the take (a first temp file, an
    # overlay, the journal, domain.xml...).
    before=$(tree_state "$S/db1")
    refused=0
    for kib in 0 4 8 16 32 64 128 192 256 320 384 448 512 640 768 1024 1536 2048; do
        truncate -s $((full - kib * 1024)) "$FILLER"
        if err=$(mkdir "$D/snapshots/s" 2>&1); then
            break
        fi
        grep -q "No space left on device" <<<"$err" || fail "$type: $kib KiB free: expected ENOSPC, got: $err"
        [ "$(tree_state "$S/db1")" = "$before" ] || fail "$type: $kib KiB free: the failed take changed the store"
        journal_empty "$S"
        timeout 5 ls -l "$D" "$D/disks" >/dev/null || fail "$type: $kib KiB free: the daemon stopped serving"
        read_pattern "$D/disks/vdb.qcow2" 0x55 0 1M
        refused=$((refused + 1))
    done
    [ "$refused" -gt 1 ] || fail "$type: only $refused refusals before the take fit in $kib KiB"
    pass "$type: $refused takes ran out of space (0 to $kib KiB free) and changed nothing; the daemon serves on"
    sed -n "s|.*failed: \([^/]*\)$S/|    ran out at: \1|p" "$DAEMON_LOG"
    : >"$DAEMON_LOG"

    if [ ! -d "$S/db1/snapshots/s" ]; then
        rm -f "$FILLER"
        mkdir "$D/snapshots/s" || fail "$type: the take failed with space free"
    fi
    [ "$(readlink "$D/current")" = snapshots/s ] || fail "$type: current is not snapshots/s"
    read_pattern "$D/disks/vda.qcow2" 0x44 0 2M
    read_pattern "$D/disks/vdb.qcow2" 0x55 0 1M
    for img in "$S"/db1/snapshots/s/*.qcow2 "$S"/db1/disks/*.qcow2; do
        qemu-img check -q "$img" || fail "$type: qemu-img check $img"
    done
    pass "$type: with space again the take works (it fit in $kib KiB)"
    unmount_fs "$M"
}

for type in "${SMALLFS_TYPES[@]}"; do
    take_when_full "$type"
done
