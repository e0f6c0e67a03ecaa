#!/bin/bash
# `current` as a symlink: removing it changes no data; making it again
# (ln -s, or ln -sfn over it, which GNU ln does as symlink to a temp name
# and rename over `current`) reverts the VM to the snapshot it names. The
# temp link lives only in the daemon, never in the store. Links to
# anything but one of the VM's snapshots are refused and change nothing.
. "$(dirname "$0")/lib.sh"
need_fuse
need strace

mount_sample

before=$(tree_state "$S")
rm "$V/current" || fail "rm current"
[ "$(tree_state "$S")" = "$before" ] || fail "rm current changed the store"
readlink "$V/current" >/dev/null 2>&1 && fail "current still reads after rm"
ls "$V" | grep -qx current && fail "ls still lists current after rm"
read_pattern "$V/disks/vda.qcow2" 0x33 8M 1M
pass "rm current hides the link and changes no data"

ln -s snapshots/installed "$V/current" || fail "ln -s snapshots/installed current"
[ "$(readlink "$V/current")" = snapshots/installed ] || fail "current is not snapshots/installed"
read_pattern "$V/disks/vda.qcow2" 0x11 0 4M
read_pattern "$V/disks/vda.qcow2" 0 4M 4M
read_pattern "$V/disks/vda.qcow2" 0 8M 1M
pass "ln -s after rm reverts to installed"

names() { (cd "$S" && find . | sort); }
names_before=$(names)
strace -f -o "$TMP/strace" -e trace=symlink,symlinkat,rename,renameat,renameat2 \
    ln -sfn snapshots/configured "$V/current" || fail "ln -sfn snapshots/configured current"
grep -q "symlink.*\"snapshots/configured\".*current\") = -1 EEXIST" "$TMP/strace" ||
    fail "no symlink onto current failing with EEXIST: $(cat "$TMP/strace")"
tmpname=$(sed -n 's|.*symlink.*"snapshots/configured".*/web1/\([^/"]*\)") = 0$|\1|p' "$TMP/strace")
[ -n "$tmpname" ] && [ "$tmpname" != current ] || fail "no symlink to a temp name: $(cat "$TMP/strace")"
grep -q "rename.*/web1/$tmpname\".*/web1/current\".*= 0" "$TMP/strace" ||
    fail "no rename of $tmpname over current: $(cat "$TMP/strace")"
[ -z "$(find "$S" -name "$tmpname")" ] || fail "the store holds the temp link $tmpname"
pass "ln -sfn: symlink EEXIST, symlink to $tmpname, rename over current"
[ "$(names)" = "$names_before" ] || fail "ln -sfn left a new name in the store: $(diff <(echo "$names_before") <(names))"
[ "$(readlink "$V/current")" = snapshots/configured ] || fail "current is not snapshots/configured"
read_pattern "$V/disks/vda.qcow2" 0x11 0 4M
read_pattern "$V/disks/vda.qcow2" 0x22 4M 4M
read_pattern "$V/disks/vda.qcow2" 0 8M 1M
pass "ln -sfn over current reverts to configured"

before=$(tree_state "$S")
for target in /etc/passwd ../db1 snapshots/nosuch ../db1/snapshots; do
    ln -sfn "$target" "$V/current" 2>/dev/null && fail "ln -sfn $target current succeeded"
    [ "$(tree_state "$S")" = "$before" ] || fail "ln -sfn $target current changed the store"
    [ "$(readlink "$V/current")" = snapshots/configured ] || fail "ln -sfn $target moved current"
done
[ -z "$(ls -A "$V" | grep -vx 'domain.xml\|disks\|snapshots\|current\|clones')" ] ||
    fail "a refused link is left in the VM directory: $(ls -A "$V")"
pass "links to anything but a snapshot of the VM are refused and change nothing"

unmount_fs "$M"
