#!/bin/bash
# What is not an operation of this version is refused: removing what the
# layout needs (a snapshot's clones/ entry), import, a snapshot name
# that is not a name, a link to anything but a snapshot. EPERM (EROFS for
# what would change a frozen image), EINVAL for a bad name; logged, and
# the store is left exactly as it was. (Take, rename and revert are
# tested in t_snap_*, deletes in t_delete_*, clones in t_clone*.)
. "$(dirname "$0")/lib.sh"
need_fuse
need python3

mount_sample
before=$(tree_state "$S")

expect_fail "take a snapshot with a bad name" "Invalid argument" mkdir "$V/snapshots/.hidden"
expect_fail "mkdir outside snapshots/" "Operation not permitted" mkdir "$V/disks/new"
expect_fail "mkdir in a snapshot" "Operation not permitted\|Read-only file system" mkdir "$V/snapshots/configured/sub"
expect_fail "create a file in a snapshot" "Operation not permitted\|Read-only file system" \
    touch "$V/snapshots/configured/new.qcow2"
expect_fail "clone onto an existing VM" "File exists" mkdir "$V/clones/db1"
expect_fail "revert to a non-snapshot" "Operation not permitted" ln -sfn /etc/passwd "$V/current"
expect_fail "take a snapshot that exists" "File exists" mkdir "$V/snapshots/installed"
expect_fail "revert to a missing snapshot" "No such file" ln -sfn snapshots/nope "$V/current"
expect_fail "point current outside snapshots/" "Invalid argument\|Operation not permitted" ln -sfn /etc "$V/current"
expect_fail "rename a snapshot onto another" "File exists" mv -T "$V/snapshots/installed" "$V/snapshots/configured"
# GNU mv answers EXDEV by copying; its mkdir must not take a snapshot of db1.
expect_fail "move a snapshot into another VM" "Invalid cross-device link" mv "$V/snapshots/installed" "$M/db1/snapshots/"
[ -z "$(ls -A "$M/db1/snapshots")" ] || fail "mv across VMs left a snapshot in db1"
expect_fail "remove a snapshot's clones entry" "Operation not permitted\|Read-only file system" \
    rmdir "$V/snapshots/configured/clones"
expect_fail "delete a missing snapshot" "No such file" rmdir "$V/snapshots/nope"
# A frozen image is changed by a rename, as source or target: EROFS, the
# one errno vmstorefs(8) and the README give (mv snapshots/s/vda.qcow2 x).
# rename(2) itself first: GNU mv would answer an EXDEV by copying, and its
# copy's create in the snapshot directory would say EROFS for it.
expect_fail "rename(2) of a frozen image" "Read-only file system" \
    rename_syscall "$V/snapshots/configured/vda.qcow2" "$V/snapshots/configured/vdb.qcow2"
expect_fail "rename a frozen image" "Read-only file system" \
    mv "$V/snapshots/configured/vda.qcow2" "$V/snapshots/configured/vdb.qcow2"
# (A VM is renamed at the root only: t_vm_rename.sh.)
expect_fail "move a VM into another VM" "Invalid argument" rename_syscall "$V" "$M/db1/disks/web1"
# (mkdir NEW imports a VM now, t_import.sh; a bad name stays refused.)
expect_fail "import a VM with a bad name" "Invalid argument" mkdir "$M/-vm9"
pass "what is not an operation is refused with EPERM, EROFS on frozen images, EINVAL for a bad name"

# One errno per refusal: whatever would change a snapshot directory or a
# frozen image is EROFS, whichever call asks; other changes EPERM.
Z=$V/snapshots/configured
expect_fail "symlink in a snapshot" "Read-only file system" ln -s vda.qcow2 "$Z/link"
expect_fail "mkdir in a snapshot" "Read-only file system" mkdir "$Z/dir"
expect_fail "mkfifo in a snapshot" "Read-only file system" mkfifo "$Z/fifo"
expect_fail "link of a frozen image" "Read-only file system" ln "$Z/vda.qcow2" "$V/disks/vdz.qcow2"
expect_fail "rename into a snapshot" "Read-only file system" mv "$V/disks/vda.qcow2" "$Z/vdz.qcow2"
expect_fail "mkfifo in disks/" "Operation not permitted" mkfifo "$V/disks/fifo"
expect_fail "link of an active image" "Operation not permitted" ln "$V/disks/vda.qcow2" "$V/disks/vdz.qcow2"
pass "snapshot directories and frozen images refuse with EROFS, mknod with EPERM, not ENOSYS"

expect_fail "setxattr" "Operation not supported" \
    python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.x", b"1")' "$V/disks/vda.qcow2"
grep -q "refused setxattr /web1/disks/vda.qcow2: extended attributes are not supported" "$DAEMON_LOG" ||
    fail "setxattr refusal not logged"
pass "setxattr is refused with ENOTSUP and logged"

[ "$(tree_state "$S")" = "$before" ] || fail "a refused operation changed the store"
read_pattern "$V/disks/vda.qcow2" 0x33 8M 1M
[ "$(readlink "$V/current")" = "snapshots/configured" ] || fail "current moved"
grep -q "refused rmdir /web1/snapshots/configured/clones: " "$DAEMON_LOG" ||
    fail "refusal not logged"
grep -q "refused mkdir /web1/snapshots/.hidden: '.hidden' is not a valid snapshot name" "$DAEMON_LOG" ||
    fail "bad snapshot name not logged with its reason"
grep -q "refused link /web1/snapshots/configured/vda.qcow2: snapshots are read-only" "$DAEMON_LOG" ||
    fail "link refusal not logged"
[ "$(grep -c "refused rmdir /web1/snapshots/configured/clones:" "$DAEMON_LOG")" -eq 1 ] || fail "a refusal logged more than once"
pass "nothing in the store changed; the refusals are logged"

unmount_fs "$M"
