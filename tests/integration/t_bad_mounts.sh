#!/bin/bash
# A bad mount fails loudly and early: one clear line on stderr, a non-zero
# exit, no mount, and nothing written to the store.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt
mkdir -p "$S/vm1" "$M"
echo '<domain type="kvm"><name>vm1</name></domain>' >"$S/vm1/domain.xml"
echo "not a dir" >"$TMP/file"
# bad S "what" PATTERN CMD...: lib.sh's bad_mount on this store and $M.
bad() { bad_mount "$S" "$M" "$@"; }

bad "missing store" "$TMP/nope: No such file or directory" "$VMSTOREFS" "$TMP/nope" "$M" -f
bad "store is a file" "not a directory" "$VMSTOREFS" "$TMP/file" "$M" -f
bad "unknown -o option" "unknown option 'bogus'" "$VMSTOREFS" "$S" "$M" -f -o allow_other,bogus
bad "unknown flag" "unknown option '-x'" "$VMSTOREFS" "$S" "$M" -x
bad "missing mount point" "missing MOUNTPOINT" "$VMSTOREFS" "$S"
bad "no arguments" "missing STORE and MOUNTPOINT" "$VMSTOREFS"
bad "mount point does not exist" "$TMP/nomnt: No such file or directory" "$VMSTOREFS" "$S" "$TMP/nomnt" -f
bad "mount point is a file" "not a directory" "$VMSTOREFS" "$S" "$TMP/file" -f
bad "qemu_img that does not exist" "qemu_img=/nonexistent/qemu-img: not an executable" "$VMSTOREFS" \
    "$S" "$M" -f -o qemu_img=/nonexistent/qemu-img
bad "no qemu-img in PATH" "install the Debian package qemu-utils" \
    env PATH=/nonexistent "$VMSTOREFS" "$S" "$M" -f
bad "qemu_img that is not qemu-img" "false --version failed" "$VMSTOREFS" "$S" "$M" -f -o qemu_img=/bin/false
bad "qemu_img that runs but is not qemu-img" "true --version does not say \"qemu-img version\"" \
    "$VMSTOREFS" "$S" "$M" -f -o qemu_img=/bin/true

# Mount points that overlap the store would deadlock or hide it.
mkdir -p "$S/inner"
bad "mount point is the store" "overlaps the store" "$VMSTOREFS" "$S" "$S" -f
bad "mount point inside the store" "overlaps the store" "$VMSTOREFS" "$S" "$S/inner" -f
bad "store inside the mount point" "overlaps the store" "$VMSTOREFS" "$S/vm1" "$S" -f
rmdir "$S/inner"

# A store written by a newer vmstorefs is refused, and left as it was.
mkdir -p "$S/.vmstorefs"
echo "vmstorefs-store 99" >"$S/.vmstorefs/format"
bad "store of a newer format" "format 99, newer than this vmstorefs" "$VMSTOREFS" "$S" "$M" -f
rm -r "$S/.vmstorefs"

# Store metadata that is not the daemon's own (a link, or writable by
# others) is refused before anything is written to it.
mkdir -p "$S/.vmstorefs/tmp" "$S/.vmstorefs/locks" "$TMP/elsewhere"
ln -s "$TMP/elsewhere" "$S/.vmstorefs/journal"
bad "journal is a symbolic link" "$S/.vmstorefs/journal is a symbolic link, not a directory: refusing to mount" \
    "$VMSTOREFS" "$S" "$M" -f
[ -z "$(ls -A "$TMP/elsewhere")" ] || fail "something was written through the journal link"
rm "$S/.vmstorefs/journal"
mkdir -m 0777 "$S/.vmstorefs/journal"
bad "journal writable by others" "journal is writable by group or others (mode 0777): refusing to mount" \
    "$VMSTOREFS" "$S" "$M" -f
rm -r "$S/.vmstorefs"

# A second mount of the same store on the same mount point.
mount_fs "$S" "$M"
before=$(tree_state "$S")
status=0
timeout 20 "$VMSTOREFS" "$S" "$M" -f 2>"$TMP/err" || status=$?
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || fail "second mount: status $status"
[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "already mounted there" "$TMP/err" ||
    fail "second mount: $(cat "$TMP/err")"
[ "$(grep -c " $M fuse.vmstorefs " /proc/self/mounts)" -eq 1 ] || fail "second mount stacked a mount"
[ -f "$M/vm1/domain.xml" ] || fail "first mount no longer serves"
[ "$(tree_state "$S")" = "$before" ] || fail "second mount: the store changed"
pass "second mount on the same mount point: $(cat "$TMP/err")"
unmount_fs "$M"

out=$("$VMSTOREFS" --help) || fail "--help exits non-zero"
grep -q "^usage: vmstorefs STORE MOUNTPOINT" <<<"$out" || fail "--help has no usage line"
"$VMSTOREFS" -V | grep -q "^vmstorefs [0-9]" || fail "-V prints no version"
pass "--help and -V answer and exit 0"
