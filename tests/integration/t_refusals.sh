#!/bin/bash
# What is not an operation of this version is refused: deleting snapshots
# or images, clone, import, renaming or deleting a VM, a snapshot name
# that is not a name, a link to anything but a snapshot. EPERM (EROFS for
# what would change a frozen image), EINVAL for a bad name; logged, and
# the store is left exactly as it was. (Take, rename and revert are
# tested in t_snap_*.)
. "$(dirname "$0")/lib.sh"
need_fuse

mount_sample
before=$(tree_state "$S")

expect_fail "take a snapshot with a bad name" "Invalid argument" mkdir "$V/snapshots/.hidden"
expect_fail "mkdir outside snapshots/" "Operation not permitted" mkdir "$V/disks/new"
expect_fail "mkdir in a snapshot" "Operation not permitted\|Read-only file system" mkdir "$V/snapshots/configured/sub"
expect_fail "create a file in a snapshot" "Operation not permitted\|Read-only file system" \
    touch "$V/snapshots/configured/new.qcow2"
expect_fail "clone a VM" "Operation not permitted" mkdir "$V/clones/web9"
expect_fail "revert to a non-snapshot" "Operation not permitted" ln -sfn /etc/passwd "$V/current"
expect_fail "delete a snapshot" "Operation not permitted" rmdir "$V/snapshots/configured"
expect_fail "delete a snapshot recursively" "Operation not permitted\|Read-only file system" \
    rm -rf "$V/snapshots/installed"
expect_fail "delete an active image" "Operation not permitted" rm "$V/disks/vda.qcow2"
expect_fail "delete a frozen image" "Read-only file system" rm "$V/snapshots/configured/vda.qcow2"
expect_fail "rename a frozen image" "Operation not permitted\|Read-only file system\|Invalid cross-device link" \
    mv "$V/snapshots/configured/vda.qcow2" "$V/snapshots/configured/vdb.qcow2"
expect_fail "rename a VM" "Operation not permitted" mv "$V" "$M/web9"
expect_fail "import a VM" "Operation not permitted" mkdir "$M/vm9"
# (db1: it has no `current`, which rm -rf would remove, as rm current does)
expect_fail "delete a VM" "Operation not permitted\|Read-only file system" rm -rf "$M/db1"
pass "what is not an operation is refused with EPERM, EROFS on frozen images, EINVAL for a bad name"

[ "$(tree_state "$S")" = "$before" ] || fail "a refused operation changed the store"
read_pattern "$V/disks/vda.qcow2" 0x33 8M 1M
[ "$(readlink "$V/current")" = "snapshots/configured" ] || fail "current moved"
grep -q "refused rmdir /web1/snapshots/configured: not supported by this version" "$DAEMON_LOG" ||
    fail "refusal not logged"
pass "nothing in the store changed; the refusals are logged"

unmount_fs "$M"
