#!/bin/bash
# A sequential reader through the mount gets the store file read ahead of
# it, far past what the kernel's own readahead on the daemon's file would
# fetch, and within a bound. A reader holds the image open after reading
# its first 16 MiB; the store file's resident size (fincore) must then
# grow to at least 64 MiB, and once it stops growing be at most 120 MiB of
# the 200 MiB written.
. "$(dirname "$0")/lib.sh"
need_fuse
need fincore perl dd sync

S=$TMP/store M=$TMP/mnt
sample_store "$S"
store_img=$S/web1/disks/vda.qcow2
qemu-img resize -q -f qcow2 "$store_img" 256M || fail "test setup: resize"
qemu-io -f qcow2 -c 'write -P 0x3c 0 200M' "$store_img" >/dev/null || fail "test setup: qemu-io write"
sync "$store_img"
dd if="$store_img" iflag=nocache count=0 status=none # drop its cached pages
resident() { fincore --bytes --noheadings --output RES "$store_img" | tr -d ' '; }
[ "$(resident)" -lt $((8 << 20)) ] || skip "the page cache of $store_img cannot be dropped here"

mount_fs "$S" "$M"
A=$M/web1/disks/vda.qcow2
got=$(perl -e '
    my ($img, $store) = @ARGV;
    sub res { my $r = `fincore --bytes --noheadings --output RES $store`; $r =~ s/\s//g; $r }
    sub nap { select(undef, undef, undef, 0.1) }
    open(my $f, "<", $img) or die "open: $!";
    my $buf;
    for (1 .. 16) { sysread($f, $buf, 1 << 20) == 1 << 20 or die "short read" }
    for (1 .. 100) { last if res() >= 64 << 20; nap() }
    my $seen = res();
    my ($last, $steady) = (-1, 0);    # then until it stops growing (1 s)
    for (1 .. 100) { my $r = res(); $steady = $r == $last ? $steady + 1 : 0; $last = $r;
                     last if $steady >= 10; nap() }
    print "$seen $last\n";
' "$A" "$store_img") || fail "reader failed"
read -r ahead steady <<<"$got"
[ "$ahead" -ge $((64 << 20)) ] ||
    fail "after a 16 MiB sequential read only $ahead bytes of the store image are cached"
[ "$steady" -le $((120 << 20)) ] || fail "read ahead without bound: $steady bytes cached"
pass "a sequential reader at 16 MiB has $((ahead >> 20)) MiB cached ($((steady >> 20)) MiB once steady)"

read_pattern "$A" 0x3c 0 200M
pass "what was read ahead reads back as written"
unmount_fs "$M"
