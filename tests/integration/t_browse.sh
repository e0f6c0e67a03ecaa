#!/bin/bash
# Browsing a store through the mount: one directory per VM, the
# definition byte-identical, disks, snapshots with their creation time,
# `current`, hidden-but-enterable snapshot clones/, .jobs, and copies of
# frozen images that qemu-img opens.
. "$(dirname "$0")/lib.sh"
need_fuse
need cmp

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"

[ "$(ls -A "$M" | tr '\n' ' ')" = ".jobs db1 web1 " ] || fail "root lists: $(ls -A "$M")"
[ "$(ls "$M/web1" | tr '\n' ' ')" = "clones current disks domain.xml snapshots " ] ||
    fail "web1 lists: $(ls "$M/web1")"
pass "root and VM directories list what the store holds"

# seekdir to a telldir of an earlier open: the new open's first read is
# at that offset, and lists the rest as the earlier open did.
seek_rest=$(perl -e 'opendir(D, $ARGV[0]) or die "$!\n"; readdir(D) for 1 .. 3;
    my $pos = telldir(D); my @rest = readdir(D); closedir(D);
    opendir(E, $ARGV[0]) or die "$!\n"; seekdir(E, $pos); my @again = readdir(E);
    print "@rest|@again"' "$M/web1") || fail "seekdir on web1 failed"
[ -n "${seek_rest%%|*}" ] && [ "${seek_rest%%|*}" = "${seek_rest#*|}" ] ||
    fail "after seekdir in a new open, web1 lists '${seek_rest#*|}', not '${seek_rest%%|*}'"
pass "a new open's first read at a telldir offset lists the rest"

cmp "$M/web1/domain.xml" "$S/web1/domain.xml" || fail "domain.xml differs from the store's"
cmp "$M/db1/domain.xml" "$S/db1/domain.xml" || fail "db1 domain.xml differs"
pass "domain.xml is byte-identical to the store's"

[ "$(ls "$M/db1/disks" | tr '\n' ' ')" = "vda.qcow2 vdb.qcow2 " ] || fail "db1 disks: $(ls "$M/db1/disks")"
[ "$(ls "$M/web1/snapshots" | tr '\n' ' ')" = "configured installed " ] || fail "snapshots listing"
[ "$(stat -c %Y "$M/web1/snapshots/installed")" = 1700000000 ] || fail "installed mtime is not its creationTime"
[ "$(stat -c %Y "$M/web1/snapshots/configured")" = 1700003600 ] || fail "configured mtime is not its creationTime"
pass "snapshot directories carry their creation time"

[ "$(ls -A "$M/web1/snapshots/configured")" = "vda.qcow2" ] || fail "snapshot dir lists more than images: $(ls -A "$M/web1/snapshots/configured")"
[ -d "$M/web1/snapshots/configured/clones" ] || fail "snapshot clones/ cannot be entered"
(cd "$M/web1/snapshots/configured/clones" && [ -z "$(ls -A)" ]) || fail "snapshot clones/ not empty"
[ -d "$M/web1/clones" ] && [ -z "$(ls -A "$M/web1/clones")" ] || fail "clones/ missing or not empty"
pass "snapshot clones/ is hidden but enterable; clones/ is empty"

[ "$(readlink "$M/web1/current")" = "snapshots/configured" ] || fail "current -> $(readlink "$M/web1/current")"
[ -d "$M/web1/current/" ] || fail "current does not resolve"
[ ! -e "$M/db1/current" ] && [ ! -L "$M/db1/current" ] || fail "db1 has no snapshot but shows current"
pass "current points at the snapshot the disks grow from, and only where there is one"

[ -f "$M/.jobs" ] && [ -z "$(cat "$M/.jobs")" ] || fail ".jobs missing or not empty"
pass ".jobs is readable and empty when nothing runs"

cp "$M/web1/snapshots/configured/vda.qcow2" "$TMP/copy.qcow2" || fail "cp of a frozen image"
cmp "$TMP/copy.qcow2" "$S/web1/snapshots/configured/vda.qcow2" || fail "copied image is not byte-exact"
pass "cp of a frozen image is byte-exact"

cp -a "$M/web1/snapshots" "$TMP/backup" || fail "cp -a snapshots"
[ "$(ls -A "$TMP/backup/configured")" = "vda.qcow2" ] || fail "cp -a copied more than images"
qemu-img info --backing-chain "$TMP/backup/configured/vda.qcow2" >/dev/null || fail "copied chain does not open"
read_pattern "$TMP/backup/configured/vda.qcow2" 0x11 0 4M
read_pattern "$TMP/backup/configured/vda.qcow2" 0x22 4M 4M
pass "cp -a of snapshots/ gives a chain qemu-img opens"

grep -q "^$S $M fuse.vmstorefs " /proc/self/mounts || fail "mount is not fsname=STORE type fuse.vmstorefs"
[ "$(cat "$S/.vmstorefs/format")" = "vmstorefs-store 1" ] || fail "store format not recorded"
for d in journal tmp locks; do [ -d "$S/.vmstorefs/$d" ] || fail ".vmstorefs/$d missing"; done
[ "$(stat -f -c '%b %S %c' "$M")" = "$(stat -f -c '%b %S %c' "$S")" ] ||
    fail "statfs of the mount is not the store's: $(stat -f -c '%b %S %c' "$M")"
pass "mount shows fsname=STORE, type fuse.vmstorefs; store metadata created"

unmount_fs "$M"
pass "unmounted cleanly"
