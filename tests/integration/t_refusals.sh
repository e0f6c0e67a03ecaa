#!/bin/bash
# Snapshot, clone, revert, delete, rename and import are not part of this
# version: each is refused with EPERM (EROFS for what would change a
# frozen image), logged, and the store is left exactly as it was.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"
before=$(tree_state "$S")
V=$M/web1

expect_fail "take a snapshot" "Operation not permitted" mkdir "$V/snapshots/new"
expect_fail "clone a VM" "Operation not permitted" mkdir "$V/clones/web9"
expect_fail "revert with ln -sfn" "Operation not permitted" ln -sfn snapshots/installed "$V/current"
expect_fail "delete a snapshot" "Operation not permitted" rmdir "$V/snapshots/configured"
expect_fail "delete an active image" "Operation not permitted" rm "$V/disks/vda.qcow2"
expect_fail "delete a frozen image" "Read-only file system" rm "$V/snapshots/configured/vda.qcow2"
expect_fail "rename a VM" "Operation not permitted" mv "$V" "$M/web9"
expect_fail "import a VM" "Operation not permitted" mkdir "$M/vm9"
expect_fail "delete a VM" "Operation not permitted\|Read-only file system" rm -rf "$V"
pass "namespace operations are refused with EPERM, or EROFS on frozen images"

[ "$(tree_state "$S")" = "$before" ] || fail "a refused operation changed the store"
read_pattern "$V/disks/vda.qcow2" 0x33 8M 1M
[ "$(readlink "$V/current")" = "snapshots/configured" ] || fail "current moved"
grep -q "refused mkdir /web1/snapshots/new: not supported by this version" "$DAEMON_LOG" ||
    fail "refusal not logged"
pass "nothing in the store changed; the refusals are logged"

unmount_fs "$M"
