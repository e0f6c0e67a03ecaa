#!/bin/bash
# An open file keeps meaning the file that was opened: when the store file
# behind an active image is replaced, what comes through the open
# descriptor acts on the opened one, not on what stands at the path now.
# The kernel names the open file in a request only where the size matters
# (lseek SEEK_END, reads and appends past the cached size) and for
# ftruncate; fstat, fchmod, fchown and futimens reach a FUSE file system
# as requests about the path, so the daemon cannot tell them from stat or
# chmod of the path.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"
A=$M/db1/disks/vdb.qcow2 SA=$S/db1/disks/vdb.qcow2
size=$(stat -c %s "$SA")

exec 3<>"$A" || fail "open $A"
head -c 12345 /dev/urandom >"$S/db1/disks/new"
mv "$S/db1/disks/new" "$SA"
# Attributes are cached for a second (entry and attr timeouts): wait it
# out, so fstat asks the daemon.
sleep 1.5
# The size through the descriptor: SEEK_END asks with the handle.
FDOP=${HELPERS:?HELPERS must point to the built test helpers}/fdop
fsize() {
    "$FDOP" size 3
}
[ "$(fsize)" = "$size" ] || fail "size through the open image: $(fsize), expected the opened file's $size"
pass "the size seen through an open image is the opened file's after the store file was replaced"

"$FDOP" truncate 3 $((size + 65536)) ||
    fail "ftruncate of the open image"
[ "$(stat -c %s "$SA")" = 12345 ] || fail "ftruncate changed the file now at the path"
[ "$(fsize)" = $((size + 65536)) ] || fail "ftruncate did not reach the opened file: size $(fsize)"
pass "ftruncate on an open image changes the opened file, not the one now at the path"
exec 3<&-

unmount_fs "$M"
