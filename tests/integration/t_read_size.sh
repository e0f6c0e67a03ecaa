#!/bin/bash
# Large reads stay zero-copy. libfuse splices a read reply only when it
# fits a pipe, and a pipe may not outgrow /proc/sys/fs/pipe-max-size
# (1 MiB by default) without CAP_SYS_RESOURCE: a 1 MiB reply plus its
# header would then be read into a freshly mapped buffer and copied, a
# page fault in the daemon for every 4 KiB. Active images use direct I/O,
# so a reader's 4 MiB reads reach the daemon as the largest requests the
# kernel sends; the daemon's minor faults must stay far below one per page.
. "$(dirname "$0")/lib.sh"
need_fuse
need dd cmp

S=$TMP/store M=$TMP/mnt
sample_store "$S"
# Enough data in the active image for several 4 MiB reads.
qemu-io -f qcow2 -c 'write -P 0x5a 40M 16M' "$S/web1/disks/vda.qcow2" >/dev/null ||
    fail "test setup: qemu-io write"
mount_fs "$S" "$M"

A=$M/web1/disks/vda.qcow2
size=$(stat -c %s "$A")
[ "$size" -ge $((16 << 20)) ] || fail "test setup: $A is only $size bytes"
minflt() { awk '{ print $10 }' "/proc/$DAEMON_PID/stat"; }
dd if="$A" of=/dev/null bs=4M count=1 status=none || fail "dd through the mount" # threads start
before=$(minflt)
dd if="$A" of=/dev/null bs=4M count=4 status=none || fail "dd bs=4M through the mount"
faults=$(($(minflt) - before))
pages=$(((16 << 20) / $(getconf PAGESIZE)))
[ "$faults" -lt $((pages / 4)) ] ||
    fail "16 MiB read in 4 MiB requests cost the daemon $faults page faults: replies were copied"
pass "16 MiB read in 4 MiB requests: $faults page faults in the daemon (a copy would take $pages)"

cmp "$A" "$S/web1/disks/vda.qcow2" || fail "large reads return other data than the store's"
read_pattern "$A" 0x5a 40M 16M
pass "large reads return the store's data"

unmount_fs "$M"
