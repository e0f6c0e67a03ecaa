#!/bin/bash
# A snapshot operation refuses with EBUSY, changing nothing, while an
# image it would move or rewrite is in use: held by a qemu (its image
# locks), or open for writing through the mount. The daemon logs a line
# naming the image; once the holder is gone the same operation works.
. "$(dirname "$0")/lib.sh"
need_fuse
need qemu-nbd

mount_sample

# busy "what" IMAGE CMD...: CMD fails with EBUSY, the VM directory of
# IMAGE is as it was, and the daemon logged a line naming IMAGE.
busy() {
    local what=$1 image=$2 vm=${2%%/*} before
    shift 2
    before=$(tree_state "$S/$vm")
    expect_fail "$what" "Device or resource busy" "$@"
    [ "$(tree_state "$S/$vm")" = "$before" ] || fail "$what: refused, but the store changed"
    # (A refusal is logged once per operation, path and reason: the line
    # may be an earlier case's.)
    grep -q "$S/$image is \(in use\|open for writing\)" "$DAEMON_LOG" || fail "$what: no log line names $image"
    journal_empty "$S"
}

# (a) a qemu serving the image (a running VM).
nbd_hold "$S/web1/disks/vda.qcow2"
busy "take while a qemu holds the active image" web1/disks/vda.qcow2 mkdir "$V/snapshots/s"
busy "revert while a qemu holds the active image" web1/disks/vda.qcow2 \
    ln -sfn snapshots/installed "$V/current"
# (The qemu holds the base's image too, shared: either refusal is right.)
busy "rename the active image's base while a qemu holds it" 'web1/\(disks\|snapshots/configured\)/vda.qcow2' \
    mv "$V/snapshots/configured" "$V/snapshots/conf2"
nbd_release
pass "take, revert and rename refuse with EBUSY while a qemu holds the active image"

# Renaming installed rewrites the backing name in configured's image: a
# qemu reading configured (a VM booted from it, or a backup) holds it.
nbd_hold "$S/web1/snapshots/configured/vda.qcow2" -r
# (It reads installed's image too, shared: either refusal is right.)
busy "rename a snapshot whose child image a qemu holds" 'web1/snapshots/\(configured\|installed\)/vda.qcow2' \
    mv "$V/snapshots/installed" "$V/snapshots/inst2"
# ...and renaming configured itself moves the very image the qemu reads.
busy "rename a snapshot whose own image a qemu holds" web1/snapshots/configured/vda.qcow2 \
    mv "$V/snapshots/configured" "$V/snapshots/conf2"
nbd_release
pass "rename refuses with EBUSY while a qemu reads the image whose header it rewrites"

mkdir "$V/snapshots/s" || fail "take after the qemu exited"
[ "$(readlink "$V/current")" = "snapshots/s" ] || fail "current is not snapshots/s after the take"
mv "$V/snapshots/installed" "$V/snapshots/inst2" || fail "rename after the qemu exited"
ln -sfn snapshots/configured "$V/current" || fail "revert after the qemu exited"
[ "$(readlink "$V/current")" = "snapshots/configured" ] || fail "current is not snapshots/configured"
read_pattern "$V/disks/vda.qcow2" 0x11 0 4M
read_pattern "$V/disks/vda.qcow2" 0x22 4M 4M
read_pattern "$V/disks/vda.qcow2" 0 8M 1M
pass "with the qemu gone, the same take, rename and revert work"

# (b) a qemu writing the image through the mount.
qio_hold "$V/disks/vda.qcow2" "$S/web1/disks/vda.qcow2"
busy "take while a qemu has the image open through the mount" web1/disks/vda.qcow2 \
    mkdir "$V/snapshots/t"
qio_release
# The kernel releases a closed FUSE file asynchronously: allow it 2 s.
for i in $(seq 20); do
    mkdir "$V/snapshots/t" 2>/dev/null && break
    [ "$i" -lt 20 ] || fail "take still refused 2 s after qemu-io exited"
    sleep 0.1
done
pass "a qemu writing through the mount makes a take EBUSY until it exits"

# (c) a plain write handle on one of db1's two disks.
D=$M/db1
exec 3<>"$D/disks/vdb.qcow2"
before=$(tree_state "$S/db1")
expect_fail "take while vdb is open for writing" "Device or resource busy" mkdir "$D/snapshots/s"
[ "$(tree_state "$S/db1")" = "$before" ] || fail "a refused take of db1 changed the store"
grep -q "refused mkdir /db1/snapshots/s: .*vdb" "$DAEMON_LOG" || fail "no log line names vdb"
exec 3>&-
for i in $(seq 20); do
    mkdir "$D/snapshots/s" 2>/dev/null && break
    [ "$i" -lt 20 ] || fail "take of db1 still refused 2 s after the handle closed"
    sleep 0.1
done
read_pattern "$D/disks/vda.qcow2" 0x44 0 2M
read_pattern "$D/disks/vdb.qcow2" 0x55 0 1M
[ -f "$S/db1/snapshots/s/vda.qcow2" ] && [ -f "$S/db1/snapshots/s/vdb.qcow2" ] ||
    fail "db1's snapshot s does not hold both disks"
pass "a write handle on one disk of two makes the take EBUSY, changing neither; closed, it works"

# Revert and rename meet the same handle: both would move or rewrite vdb.
exec 3<>"$D/disks/vdb.qcow2"
before=$(tree_state "$S/db1")
expect_fail "revert while vdb is open for writing" "Device or resource busy" \
    ln -sfn snapshots/s "$D/current"
expect_fail "rename while vdb is open for writing" "Device or resource busy" \
    mv "$D/snapshots/s" "$D/snapshots/s2"
[ "$(tree_state "$S/db1")" = "$before" ] || fail "a refused revert or rename changed db1"
exec 3>&-
pass "revert and rename are EBUSY too while a write handle is open"

unmount_fs "$M"
