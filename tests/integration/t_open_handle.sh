#!/bin/bash
# An open file keeps meaning the file that was opened: when the store file
# behind an active image is replaced, what comes through the open
# descriptor acts on the opened one, not on what stands at the path now.
# The kernel names the open file in a request only where the size matters
# (lseek SEEK_END, reads and appends past the cached size) and for
# ftruncate; fstat, fchmod, fchown and futimens reach a FUSE file system
# as requests about the kernel inode alone. Each kernel inode stays the
# file it was looked up (and opened) as, so these act on the opened file
# too, while a new lookup of the path finds the new file. Two ways the
# file at the path changes: something replaces it in the store behind the
# mount, and the daemon's own snapshot take moves the active image into
# the snapshot and puts a new overlay at its path.
. "$(dirname "$0")/lib.sh"
need_fuse

FDOP=${HELPERS:?HELPERS must point to the built test helpers}/fdop
S=$TMP/store M=$TMP/mnt
sample_store "$S"
# web1's active image gets data, so that it is clearly larger than the
# fresh overlay a snapshot take puts in its place (case b).
qemu-io -f qcow2 -c 'write -q -P 0x5a 0 4M' "$S/web1/disks/vda.qcow2" >/dev/null ||
    fail "write web1's vda"
mount_fs "$S" "$M"

# Checks below that fail say so and let the test go on, so each case
# reports on its own; the test fails at its end if any did.
BAD=0
bad() {
    echo "FAIL: $*" >&2
    BAD=1
}
# field N LINE: the Nth field of an "fdop stat" line (SIZE MODE UID GID MTIME).
field() {
    cut -d' ' -f"$1" <<<"$2"
}
# path_size_becomes FILE SIZE: stat of FILE (through the mount) shows SIZE
# within 3 s: the kernel keeps a looked-up entry for up to a second.
path_size_becomes() {
    local i
    for i in $(seq 30); do
        [ "$(stat -c %s "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# fstat_size_is FD SIZE OTHER WHAT: fstat of FD shows the opened file's
# SIZE, not OTHER (the size of the file now at its path).
fstat_size_is() {
    local st
    if ! st=$("$FDOP" stat "$1"); then
        bad "$4: fstat of fd $1 failed"
    elif [ "$(field 1 "$st")" != "$2" ]; then
        bad "$4: fstat of fd $1 shows '$st', expected the opened file's size $2 (the file now at the path is $3 bytes)"
    else
        pass "$4"
    fi
}

# ---- a) the store file replaced behind the mount ----
A=$M/db1/disks/vdb.qcow2 SA=$S/db1/disks/vdb.qcow2
chmod 644 "$SA"
size=$(stat -c %s "$SA")
# The opened file stays reachable in the store by this second name.
ln "$SA" "$TMP/orig" || fail "hard link of $SA"

exec 3<>"$A" || fail "open $A"
head -c 12345 /dev/urandom >"$S/db1/disks/new"
chmod 644 "$S/db1/disks/new"
mv "$S/db1/disks/new" "$SA"
# Attributes are cached for a second (entry and attr timeouts): wait it
# out, so what follows asks the daemon.
sleep 1.5

# The size through the descriptor: SEEK_END asks with the handle.
fsize() {
    "$FDOP" size 3
}
if [ "$(fsize)" = "$size" ]; then
    pass "the size seen through an open image is the opened file's after the store file was replaced"
else
    bad "size through the open image: $(fsize), expected the opened file's $size"
fi

# That lseek filled the kernel's attribute cache from the handle: wait
# it out again, so fstat asks the daemon.
sleep 1.5
fstat_size_is 3 "$size" 12345 \
    "fstat of an open image shows the opened file after the store file was replaced"

if ! "$FDOP" chmod 3 600; then
    bad "fchmod of the open image failed"
elif [ "$(stat -c %a "$TMP/orig")" != 600 ] || [ "$(stat -c %a "$SA")" != 644 ]; then
    bad "fchmod 600 of the open image: opened file $(stat -c %a "$TMP/orig"), file now at the path $(stat -c %a "$SA"); expected 600 and 644"
else
    pass "fchmod of an open image changes the opened file, not the one now at the path"
fi

if ! "$FDOP" utimens 3 1000000000; then
    bad "futimens of the open image failed"
elif [ "$(stat -c %Y "$TMP/orig")" != 1000000000 ] || [ "$(stat -c %Y "$SA")" = 1000000000 ]; then
    bad "futimens 1000000000 of the open image: opened file mtime $(stat -c %Y "$TMP/orig"), file now at the path $(stat -c %Y "$SA"); expected only the opened file's to change"
else
    pass "futimens of an open image changes the opened file, not the one now at the path"
fi

if ! "$FDOP" chown 3 12345 12345; then
    bad "fchown of the open image failed"
elif [ "$(stat -c %u:%g "$TMP/orig")" != 12345:12345 ] || [ "$(stat -c %u:%g "$SA")" = 12345:12345 ]; then
    bad "fchown 12345:12345 of the open image: opened file $(stat -c %u:%g "$TMP/orig"), file now at the path $(stat -c %u:%g "$SA"); expected only the opened file's to change"
else
    pass "fchown of an open image changes the opened file, not the one now at the path"
fi

if path_size_becomes "$A" 12345; then
    pass "stat of the path through the mount shows the file now at the path"
else
    bad "stat of $A shows size $(stat -c %s "$A"), not the new file's 12345"
fi

if ! "$FDOP" truncate 3 $((size + 65536)); then
    bad "ftruncate of the open image failed"
elif [ "$(stat -c %s "$SA")" != 12345 ]; then
    bad "ftruncate changed the file now at the path"
elif [ "$(fsize)" != $((size + 65536)) ] || [ "$(stat -c %s "$TMP/orig")" != $((size + 65536)) ]; then
    bad "ftruncate did not reach the opened file: size $(fsize) through the descriptor, $(stat -c %s "$TMP/orig") in the store"
else
    pass "ftruncate on an open image changes the opened file, not the one now at the path"
fi
# An open image whose path then names nothing at all: the descriptor
# still answers for the opened file (after the cached attributes age out,
# so fstat asks the daemon).
C=$M/db1/disks/vda.qcow2 SC=$S/db1/disks/vda.qcow2
exec 6<"$C" || fail "open $C"
csize=$(stat -c %s "$SC")
rm "$SC"
sleep 1.1
st6=$("$FDOP" stat 6 2>&1)
if [ "$(field 1 "$st6")" = "$csize" ]; then
    pass "fstat of an open image whose path was removed in the store shows the opened file"
else
    bad "fstat of fd 6 after its path was removed: '$st6', expected size $csize"
fi
exec 6<&-
exec 3<&-

# ---- b) a snapshot take replaces the active image ----
B=$M/web1/disks/vda.qcow2 SB=$S/web1/disks/vda.qcow2
ino=$(stat -c %i "$SB")
# A read-only open does not hold a take back.
exec 4<"$B" || fail "open $B"
before=$("$FDOP" stat 4) || fail "fstat of $B before the take"
mkdir "$M/web1/snapshots/s-open" || fail "take s-open while $B is open read-only"
frozen=$S/web1/snapshots/s-open/vda.qcow2
[ "$(stat -c %i "$frozen")" = "$ino" ] || fail "the take did not move the active image to $frozen"
fsz=$(stat -c %s "$frozen") osz=$(stat -c %s "$SB")
[ "$fsz" = "$(field 1 "$before")" ] || fail "the frozen image is $fsz bytes, the opened one was $(field 1 "$before")"
[ "$fsz" != "$osz" ] || fail "the frozen image and the new overlay have the same size $fsz: the case proves nothing"
# No sleep: the take drops the kernel's cached attributes of what it
# replaced, so fstat asks the daemon at once.

fstat_size_is 4 "$fsz" "$osz" \
    "fstat of an image open across a snapshot take shows the frozen image it became"
if path_size_becomes "$B" "$osz"; then
    pass "stat of the active image's path after the take shows the new overlay"
else
    bad "stat of $B shows size $(stat -c %s "$B"), not the new overlay's $osz"
fi
# While the kernel's entry for the path still names the opened node (up
# to a second), a chmod of the path reaches that node; once the path is
# looked up afresh it is the new overlay's.
fmode0=$(stat -c %a "$frozen")
if ! chmod 640 "$B"; then
    bad "chmod of $B after the take failed"
elif [ "$(stat -c %a "$SB")" != 640 ] || [ "$(stat -c %a "$frozen")" != "$fmode0" ]; then
    bad "chmod 640 of the path: overlay $(stat -c %a "$SB"), frozen image $(stat -c %a "$frozen"); expected 640 and $fmode0"
else
    pass "chmod of the active image's path after the take changes the new overlay"
fi
# The opened file is a snapshot's frozen image now, and is treated as one
# (read-only mode, changes refused), while the new overlay is not touched.
fmode=$(stat -c %a "$frozen") omode=$(stat -c %a "$SB")
st4=$("$FDOP" stat 4) ro=$(printf '%o' $((8#$fmode & 8#7555)))
if [ "$(field 2 "$st4")" != "$ro" ]; then
    bad "fstat of fd 4 shows mode $(field 2 "$st4"), not the frozen image's read-only $ro"
elif out=$("$FDOP" chmod 4 666 2>&1) || ! grep -q "not permitted" <<<"$out"; then
    bad "fchmod of an image frozen under its descriptor: '$out', expected EPERM"
elif "$FDOP" utimens 4 1000000000 2>/dev/null; then
    bad "futimens of an image frozen under its descriptor succeeded"
elif [ "$(stat -c %a "$frozen")" != "$fmode" ] || [ "$(stat -c %a "$SB")" != "$omode" ] ||
    [ "$(stat -c %Y "$frozen")" = 1000000000 ] || [ "$(stat -c %Y "$SB")" = 1000000000 ]; then
    bad "a refused change through fd 4 changed a store file"
else
    pass "an image frozen under its descriptor is read-only through it: fchmod and futimens refused"
fi
exec 4<&-

[ "$BAD" = 0 ] || fail "some checks on open images failed (above)"
unmount_fs "$M"
