#!/bin/bash
# After a snapshot operation the kernel serves no stale data or
# attributes: a file read just before (and so cached) reads as the
# store's new file at once, well inside the 1 s attribute timeout, even
# when a name now means a different file.
. "$(dirname "$0")/lib.sh"
need_fuse

mount_sample

# fresh NAME: the mount's NAME reads as the store's, contents and size.
fresh() {
    cmp "$V/$1" "$S/web1/$1" || fail "$1 is stale after the operation"
    [ "$(stat -c %s "$V/$1")" = "$(stat -c %s "$S/web1/$1")" ] || fail "$1: stale size"
}

cat "$V/domain.xml" "$V/disks/vda.qcow2" >/dev/null
exec 4<"$V/domain.xml"
ln -sfn snapshots/installed "$V/current" || fail "revert to installed"
fresh domain.xml
fresh disks/vda.qcow2
[ "$(readlink "$V/current")" = snapshots/installed ] || fail "current is stale after the revert"
exec 4<&-
pass "domain.xml and the active image read fresh right after a revert"

F=snapshots/configured/vda.qcow2
cat "$V/$F" >/dev/null
exec 4<"$V/$F"
mv "$V/snapshots/configured" "$V/snapshots/old" || fail "rename configured to old"
mkdir "$V/snapshots/configured" || fail "take a new snapshot named configured"
fresh "$F"
cmp "$V/snapshots/old/vda.qcow2" "$S/web1/snapshots/old/vda.qcow2" || fail "old/vda.qcow2 reads wrong"
exec 4<&-
pass "a frozen image name that now means another image reads the new one"

unmount_fs "$M"
