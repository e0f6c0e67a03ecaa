#!/bin/bash
# A take that runs out of space fails with ENOSPC and leaves the store
# exactly as it was (no journal, no temp files, the same data), whatever
# step it ran out at; the daemon goes on serving, and with space again
# the same take works. The store lives on a small tmpfs, mounted in a
# private mount namespace so that nothing outlives the test.
. "$(dirname "$0")/privns.sh"
. "$(dirname "$0")/lib.sh"
need_fuse

FS=$TMP/fs S=$TMP/fs/store M=$TMP/mnt
mkdir -p "$FS"
mount -t tmpfs -o size=24M tmpfs "$FS" || skip "cannot mount a tmpfs"
trap 'umount -l "$FS"; cleanup' EXIT
sample_store "$S"
mount_fs "$S" "$M"
D=$M/db1
FILLER=$FS/filler

dd if=/dev/zero of="$FILLER" bs=64k status=none 2>/dev/null
full=$(stat -c %s "$FILLER")
[ "$(df --output=avail -B1 "$FS" | tail -n 1)" -lt 65536 ] || fail "the tmpfs did not fill up"

# Free a little more space each round until the take fits: each refusal
# runs out at a later step of the take (a first temp file, an overlay,
# the journal, domain.xml...).
before=$(tree_state "$S/db1")
refused=0
for kib in 0 4 8 16 32 64 128 192 256 320 384 448 512 640 768 1024 1536 2048; do
    truncate -s $((full - kib * 1024)) "$FILLER"
    if err=$(mkdir "$D/snapshots/s" 2>&1); then
        break
    fi
    grep -q "No space left on device" <<<"$err" || fail "$kib KiB free: expected ENOSPC, got: $err"
    [ "$(tree_state "$S/db1")" = "$before" ] || fail "$kib KiB free: the failed take changed the store"
    journal_empty "$S"
    timeout 5 ls -l "$D" "$D/disks" >/dev/null || fail "$kib KiB free: the daemon stopped serving"
    read_pattern "$D/disks/vdb.qcow2" 0x55 0 1M
    refused=$((refused + 1))
done
[ "$refused" -gt 1 ] || fail "only $refused refusals before the take fit in $kib KiB"
pass "$refused takes ran out of space (0 to $kib KiB free) and changed nothing; the daemon serves on"
sed -n "s|.*failed: \([^/]*\)$S/|    ran out at: \1|p" "$DAEMON_LOG"

if [ ! -d "$S/db1/snapshots/s" ]; then
    rm -f "$FILLER"
    mkdir "$D/snapshots/s" || fail "the take failed with space free"
fi
[ "$(readlink "$D/current")" = snapshots/s ] || fail "current is not snapshots/s"
read_pattern "$D/disks/vda.qcow2" 0x44 0 2M
read_pattern "$D/disks/vdb.qcow2" 0x55 0 1M
for img in "$S"/db1/snapshots/s/*.qcow2 "$S"/db1/disks/*.qcow2; do
    qemu-img check -q "$img" || fail "qemu-img check $img"
done
pass "with space again the take works (it fit in $kib KiB)"

unmount_fs "$M"
