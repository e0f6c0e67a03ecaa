#!/bin/bash
# Active images are a read/write passthrough to the store, coherent both
# ways: what is written through the mount is in the store, and what a
# qemu writes through the store path is seen through the mount at once,
# even by a reader that read the image just before.
. "$(dirname "$0")/lib.sh"
need_fuse
need cmp

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"
A=$M/web1/disks/vda.qcow2

qemu-io -f qcow2 -c 'write -P 0x66 16M 1M' "$A" >/dev/null || fail "write through the mount"
read_pattern "$S/web1/disks/vda.qcow2" 0x66 16M 1M
qemu-img check -q "$S/web1/disks/vda.qcow2" || fail "image corrupt after writing through the mount"
pass "qemu-io writes through the mount land in the store image"

cmp "$A" "$S/web1/disks/vda.qcow2" || fail "mount and store differ before the store write"
size_before=$(stat -c %s "$A")
qemu-io -f qcow2 -c 'write -P 0x77 32M 2M' "$S/web1/disks/vda.qcow2" >/dev/null || fail "write through the store"
# No sleep: the image grew and changed under the mount just now.
[ "$(stat -c %s "$S/web1/disks/vda.qcow2")" -gt "$size_before" ] || fail "test setup: image did not grow"
cmp "$A" "$S/web1/disks/vda.qcow2" || fail "mount serves stale data after a write through the store"
read_pattern "$A" 0x77 32M 2M
pass "writes through the store path are seen through the mount at once"

# One open file, read before and after the store changes under it: the
# second read must not come from pages cached by the first. (perl-base is
# essential on Debian; the shell cannot seek.)
perl -e '
    my ($mnt, $store, $cmd) = @ARGV;
    open(my $f, "<", $mnt) or die "open: $!";
    sub slurp { my ($fh) = @_; sysseek($fh, 0, 0); my ($d, $b) = ("", "");
                while (sysread($fh, $b, 1 << 20)) { $d .= $b } return $d }
    slurp($f);
    system($cmd) == 0 or die "store write failed";
    open(my $s, "<", $store) or die "open store: $!";
    exit(slurp($f) eq slurp($s) ? 0 : 1);
' "$A" "$S/web1/disks/vda.qcow2" \
    "qemu-io -f qcow2 -c 'write -P 0x78 0 64k' '$S/web1/disks/vda.qcow2' >/dev/null" ||
    fail "a reader that had the image open sees stale data after a write through the store"
read_pattern "$A" 0x78 0 64k
pass "a file opened before the change reads the new data too"

chmod 600 "$A" || fail "chmod of an active image"
[ "$(stat -c %a "$S/web1/disks/vda.qcow2")" = 600 ] || fail "chmod did not reach the store"
touch -d @1600000000 "$A" || fail "touch of an active image"
[ "$(stat -c %Y "$S/web1/disks/vda.qcow2")" = 1600000000 ] || fail "utimens did not reach the store"
pass "chmod and touch pass through to the active image"

B=$M/db1/disks/vdb.qcow2 SB=$S/db1/disks/vdb.qcow2
truncate -s 8M "$B" || fail "truncate of an active image"
[ "$(stat -c %s "$SB")" = 8388608 ] || fail "truncate did not reach the store"
# The tail truncate added is a hole: SEEK_DATA/SEEK_HOLE through the
# mount must find what they find in the store (not the kernel's default
# of "all data").
seeks() {
    perl -e 'open(my $f, "<", $ARGV[0]) or die;
             print join(" ", map { my $r = sysseek($f, 0, $_); defined $r ? $r + 0 : "err" } 3, 4), "\n"' "$1"
}
[ "$(seeks "$B")" = "$(seeks "$SB")" ] || fail "SEEK_DATA/SEEK_HOLE: mount $(seeks "$B"), store $(seeks "$SB")"
[ "$(seeks "$SB" | cut -d' ' -f2)" -lt 8388608 ] || fail "test setup: no hole in $SB"
if [ "$(id -u)" -eq 0 ]; then
    chown 1:2 "$B" || fail "chown of an active image"
    [ "$(stat -c %u:%g "$SB")" = 1:2 ] || fail "chown did not reach the store"
fi
pass "truncate, SEEK_DATA/SEEK_HOLE and chown pass through to the active image"

out=$(qemu-io -t none -r -f qcow2 -c 'read -P 0x33 8M 1M' "$A" 2>&1) || fail "O_DIRECT read: $out"
pass "an O_DIRECT reader (qemu -t none) reads the active image"

cp --sparse=always "$A" "$TMP/sparse.qcow2" || fail "cp of an active image"
cmp "$TMP/sparse.qcow2" "$S/web1/disks/vda.qcow2" || fail "copied active image differs"
pass "cp of an active image is byte-exact"

# Overwriting an image with a shorter file (cp, shell redirection) must
# truncate it: the kernel folds O_TRUNC into the open.
head -c 100000 /dev/urandom >"$TMP/short"
cp "$TMP/short" "$M/db1/disks/vdb.qcow2" || fail "cp over an active image"
cmp "$TMP/short" "$S/db1/disks/vdb.qcow2" || fail "cp over an active image left the old tail behind"
pass "writing over an active image with O_TRUNC truncates it"

unmount_fs "$M"
