#!/bin/bash
# Large reads stay zero-copy. libfuse splices a read reply only when it
# fits a pipe (at most /proc/sys/fs/pipe-max-size), and a 1 MiB reply
# plus its header does not fit the default 1 MiB pipe: it would be copied
# through a new buffer instead. Active images use direct I/O, so a
# reader's 1 MiB and 4 MiB reads reach the daemon as they are; the
# kernel must split them into requests that still splice. The debug log
# (-d) shows the size of every READ the kernel sent.
. "$(dirname "$0")/lib.sh"
need_fuse
need dd cmp

S=$TMP/store M=$TMP/mnt
sample_store "$S"
# Enough data in the active image for several 4 MiB reads.
qemu-io -f qcow2 -c 'write -P 0x5a 40M 12M' "$S/web1/disks/vda.qcow2" >/dev/null ||
    fail "test setup: qemu-io write"
mount_fs "$S" "$M" -d

A=$M/web1/disks/vda.qcow2
size=$(stat -c %s "$A")
[ "$size" -ge $((12 << 20)) ] || fail "test setup: $A is only $size bytes"
dd if="$A" of=/dev/null bs=4M status=none || fail "dd bs=4M through the mount"
dd if="$A" of=/dev/null bs=1M status=none || fail "dd bs=1M through the mount"
cmp "$A" "$S/web1/disks/vda.qcow2" || fail "large reads return other data than the store's"
read_pattern "$A" 0x5a 40M 12M

page=$(getconf PAGESIZE)
pipe_max=$(cat /proc/sys/fs/pipe-max-size)
limit=$((pipe_max - 3 * page - 16)) # libfuse's test before it splices
largest=$(sed -n 's/^read\[[0-9]*\] \([0-9]*\) bytes from .*/\1/p' "$DAEMON_LOG" | sort -n | tail -n 1)
[ -n "$largest" ] || fail "no READ requests in the debug log"
[ "$largest" -gt $((128 << 10)) ] || fail "test setup: largest READ only $largest bytes"
[ "$largest" -le "$limit" ] ||
    fail "READ of $largest bytes: its reply cannot splice through a $pipe_max-byte pipe"
pass "1 MiB and 4 MiB reads arrive as requests of at most $largest bytes, which splice"

unmount_fs "$M"
