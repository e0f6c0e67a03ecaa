#!/bin/bash
# Symlinks planted in the store never take the mount outside it: a VM
# that is a link, a disks/ or snapshots/ that is a link, an image or a
# snapshot directory that is a link - none is shown, none can be opened,
# and the files they point at are never read or changed.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt O=$TMP/outside
sample_store "$S"
mkdir -p "$O/disks" "$O/snapdir" "$O/snaps/s1"
qemu-img create -q -f qcow2 "$O/disks/vdx.qcow2" 1M
cp "$O/disks/vdx.qcow2" "$O/secret.qcow2"
cp "$O/disks/vdx.qcow2" "$O/snapdir/vda.qcow2"
cp "$O/disks/vdx.qcow2" "$O/snaps/s1/vda.qcow2"
echo '<domainsnapshot><name>s1</name><creationTime>1</creationTime></domainsnapshot>' >"$O/snaps/s1/snapshot.xml"
chmod 600 "$O/secret.qcow2"
before=$(tree_state "$O")

ln -s "$O" "$S/linkvm"                               # a VM directory that is a link
mkdir -p "$S/evil"
cp "$S/db1/domain.xml" "$S/evil/domain.xml"
ln -s "$O/disks" "$S/evil/disks"                     # disks/ is a link
ln -s "$O/snaps" "$S/evil/snapshots"                 # snapshots/ is a link
ln -s "$O/secret.qcow2" "$S/web1/disks/vdz.qcow2"    # an image that is a link
ln -s "$O/snapdir" "$S/web1/snapshots/linked"        # a snapshot directory that is a link
ln -s "$O/secret.qcow2" "$S/web1/snapshots/configured/vdy.qcow2"
ln -s /etc/hostname "$S/db1/domain.xml.link"
mv "$S/db1/domain.xml" "$S/db1/domain.xml.real"
ln -s "$S/db1/domain.xml.real" "$S/db1/domain.xml"   # a definition that is a link

mount_fs "$S" "$M"
[ "$(ls "$M" | tr '\n' ' ')" = "db1 evil web1 " ] || fail "root lists: $(ls "$M")"
[ ! -e "$M/linkvm" ] || fail "a linked VM directory is reachable"
[ -z "$(ls -A "$M/evil/disks")" ] || fail "a linked disks/ lists: $(ls -A "$M/evil/disks")"
[ -z "$(ls -A "$M/evil/snapshots")" ] || fail "a linked snapshots/ lists: $(ls -A "$M/evil/snapshots")"
[ "$(ls "$M/web1/disks")" = "vda.qcow2" ] || fail "web1 disks lists: $(ls "$M/web1/disks")"
[ "$(ls "$M/web1/snapshots" | tr '\n' ' ')" = "configured installed " ] || fail "snapshots: $(ls "$M/web1/snapshots")"
[ "$(ls "$M/web1/snapshots/configured")" = "vda.qcow2" ] || fail "snapshot lists a linked image"
[ ! -e "$M/db1/domain.xml" ] || fail "a linked domain.xml is served"
grep -q "skipping $S/linkvm: symbolic links are not followed" "$DAEMON_LOG" || fail "linked VM not logged"
ls "$M/db1" >/dev/null    # a VM's definition is checked when the VM is listed
grep -q "VM db1: $S/db1/domain.xml: a symbolic link, not followed" "$DAEMON_LOG" || fail "linked domain.xml not logged"
pass "no planted symlink is listed, and each is logged"

for p in "$M/evil/disks/vdx.qcow2" "$M/evil/snapshots/s1/vda.qcow2" "$M/web1/disks/vdz.qcow2" \
    "$M/web1/snapshots/linked/vda.qcow2" "$M/web1/snapshots/configured/vdy.qcow2" \
    "$M/linkvm/disks/vdx.qcow2" "$M/db1/domain.xml"; do
    expect_fail "read $p" "No such file or directory" cat "$p"
    # Writing may fail as "no such file", "no such directory" or a refused
    # create, depending on the path: any failure will do, nothing may change.
    expect_fail "write $p" "." sh -c "echo x >> '$p'"
    expect_fail "chmod $p" "No such file or directory" chmod 666 "$p"
    expect_fail "truncate $p" "." truncate -s 0 "$p"
done
[ "$(tree_state "$O")" = "$before" ] || fail "a file outside the store changed"
pass "nothing outside the store can be read, written, truncated or chmod'ed"

unmount_fs "$M"

# The store's own metadata: a .vmstorefs that is a link is refused before
# anything is written through it; a planted format.tmp link is not
# written through.
S2=$TMP/store2
mkdir -p "$S2/vm" "$O/meta"
ln -s "$O/meta" "$S2/.vmstorefs"
bad_mount "$O" "$M" "a store whose .vmstorefs is a link" "$S2/.vmstorefs.*symbolic link" \
    "$VMSTOREFS" "$S2" "$M" -f
rm "$S2/.vmstorefs"
mkdir "$S2/.vmstorefs"
echo "victim" >"$O/victim"
ln -s "$O/victim" "$S2/.vmstorefs/format.tmp"
mount_fs "$S2" "$M"
[ "$(cat "$O/victim")" = "victim" ] || fail "wrote through a planted format.tmp link"
[ "$(cat "$S2/.vmstorefs/format")" = "vmstorefs-store 1" ] || fail "format not written"
unmount_fs "$M"
pass "store metadata is never written through a planted link"
