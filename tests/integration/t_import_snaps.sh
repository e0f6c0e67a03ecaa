#!/bin/bash
# Importing a VM with its snapshots by file operations (issue 18 part 2,
# "cp -a of a whole snapshots/ tree"): in a VM being imported (made by
# mkdir NEW, never defined), `cp -a SRC/snapshots NEW/` makes snapshot
# directories, writes their images (and any snapshot.xml) and sets their
# modes and times, all without an error; writing NEW/domain.xml then
# checks every image with the daemon's own header parser and defines the
# VM with its snapshot tree, making the snapshot.xml a snapshot lacks from
# its images' chains (parent: the snapshot its images back onto; creation
# time: the directory's mtime, which cp -a copied from the mount).
#
# A VM with two disks and three snapshots on two branches (s1 <- s2, and
# b3 off s1 after a revert; current b3), built through the mount, is
# copied with cp -a from the mount into NEW through the mount: its tree
# (names, parents, current, creation times) and every image are the
# same (qemu-img compare, qemu-io read -P), a given snapshot.xml keeps
# its description, --check is clean, and NEW takes snapshots.
# Refused, each with one log line and the VM as it was: a snapshot image
# (off the current branch, so only the snapshot check sees it)
# whose backing file is another VM's (EACCES), a malformed header
# (EINVAL), a snapshot.xml naming another VM's file (EACCES). A defined
# VM's snapshots/ stays read-only (EROFS), and mkdir there is a take.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need qemu-img qemu-io virt-xml-validate xmllint

S=$TMP/store M=$TMP/mnt I=$TMP/img
make_vm "$S" src 2
mkdir -p "$I"
mount_fs "$S" "$M"
V=$M/src

# qio FILE CMD: one qemu-io command on an image through the mount.
qio() { qemu-io -f qcow2 -c "$2" "$1" >/dev/null || fail "qemu-io $2 on $1"; }

# ---- the source: s1 <- s2, b3 off s1 (a revert between), current b3 ----
mkdir "$V/snapshots/s1" || fail "take s1"
qio "$V/disks/vda.qcow2" "write -q -P 0x21 1M 1M"
qio "$V/disks/vdb.qcow2" "write -q -P 0x31 1M 1M"
sleep 1.1 # distinct creation times (seconds), to see them copied
mkdir "$V/snapshots/s2" || fail "take s2"
qio "$V/disks/vda.qcow2" "write -q -P 0x22 2M 1M"
ln -sfn snapshots/s1 "$V/current" || fail "revert to s1"
qio "$V/disks/vda.qcow2" "write -q -P 0x23 3M 1M"
sleep 1.1
mkdir "$V/snapshots/b3" || fail "take b3"
qio "$V/disks/vda.qcow2" "write -q -P 0x24 4M 1M"
[ "$(readlink "$V/current")" = snapshots/b3 ] || fail "source: current is not b3"

# The new VM's definition: src's, renamed, its paths NEW's, no uuid, a
# MAC of its own (no two VMs share them: --check).
newdef() { # NAME
    sed -e "s|$S/src/|$S/$1/|g" -e "s|<name>src</name>|<name>$1</name>|" -e '/<uuid>/d' \
        -e "s|<mac address=[\"'][^\"']*[\"']/>|<mac address='52:54:00:0a:0b:$(printf %02x $((RANDOM % 256)))'/>|" \
        "$S/src/domain.xml" >"$TMP/$1.xml" || fail "newdef $1"
}

# ---- a defined VM's snapshots/ stays as it was ----
echo x >"$TMP/x"
expect_fail "write into a defined VM's snapshot" "Read-only file system" \
    cp "$TMP/x" "$V/snapshots/s1/vdc.qcow2"
expect_fail "write a defined VM's snapshot.xml" "Read-only file system" \
    cp "$TMP/x" "$V/snapshots/s1/snapshot.xml"
expect_fail "set a defined VM's snapshot's times" "Read-only file system" \
    touch -d @1000000000 "$V/snapshots/s1"
expect_fail "truncate a defined VM's frozen image" "Read-only file system" \
    truncate -s 0 "$V/snapshots/s1/vda.qcow2"
[ -e "$S/src/snapshots/s1/vdc.qcow2" ] && fail "a defined VM's snapshot took a file"
pass "a defined VM's snapshots stay read-only (EROFS)"

# ---- the import ----
mkdir "$M/new" || fail "mkdir new"
cp -a "$V/snapshots" "$M/new/" || fail "cp -a src/snapshots new/"
cp -a "$V/disks" "$M/new/" || fail "cp -a src/disks new/"
[ -e "$M/new/domain.xml" ] && fail "new is defined before its domain.xml"
for s in s1 s2 b3; do
    [ "$(stat -c %Y "$M/new/snapshots/$s")" = "$(stat -c %Y "$V/snapshots/$s")" ] ||
        fail "cp -a did not keep snapshot $s's mtime"
done
# A snapshot's creation time is its directory's mtime: set by hand here.
touch -d @1600000000 "$M/new/snapshots/s1" || fail "touch new/snapshots/s1"
# The mount shows frozen images read-only, and cp -a copied that mode:
# the write bit back, or --check finds the active images (0644) looser
# than what they grow from (perm-loose).
chmod u+w "$M"/new/snapshots/*/*.qcow2 || fail "chmod u+w the imported snapshot images"
# A snapshot.xml given with the import, naming this VM's files only.
cat >"$M/new/snapshots/s2/snapshot.xml" <<EOF || fail "write new/snapshots/s2/snapshot.xml"
<domainsnapshot>
  <name>s2</name>
  <description>given with the import</description>
  <state>disk-snapshot</state>
  <parent><name>s1</name></parent>
  <creationTime>$(stat -c %Y "$V/snapshots/s2")</creationTime>
  <memory snapshot='no'/>
  <disks>
    <disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='$S/new/disks/vda.qcow2'/></disk>
    <disk name='vdb' snapshot='external' type='file'><driver type='qcow2'/><source file='$S/new/disks/vdb.qcow2'/></disk>
  </disks>
</domainsnapshot>
EOF
newdef new
cp "$TMP/new.xml" "$M/new/domain.xml" || fail "define new"
[ "$(cd "$M/new/snapshots" && echo *)" = "b3 s1 s2" ] ||
    fail "new's snapshots: $(cd "$M/new/snapshots" && echo *)"
[ "$(readlink "$M/new/current")" = snapshots/b3 ] || fail "new: current is not b3"
for s in s1 s2 b3; do
    [ "$(snap_parent "$S/new/snapshots/$s")" = "$(snap_parent "$S/src/snapshots/$s")" ] ||
        fail "new: $s's parent is '$(snap_parent "$S/new/snapshots/$s")'"
    want=$(stat -c %Y "$V/snapshots/$s")
    [ "$s" = s1 ] && want=1600000000
    [ "$(stat -c %Y "$M/new/snapshots/$s")" = "$want" ] ||
        fail "new: $s's creation time is $(stat -c %Y "$M/new/snapshots/$s"), not $want"
    for d in vda vdb; do
        qemu-img compare -q "$V/snapshots/$s/$d.qcow2" "$M/new/snapshots/$s/$d.qcow2" ||
            fail "new: snapshot $s's $d differs from src's"
    done
done
for d in vda vdb; do
    qemu-img compare -q "$V/disks/$d.qcow2" "$M/new/disks/$d.qcow2" || fail "new: $d differs"
done
grep -q "<description>given with the import</description>" "$S/new/snapshots/s2/snapshot.xml" ||
    fail "new: the given snapshot.xml of s2 was not kept"
# (s2 froze 0x21 and 0x31; the revert to s1 dropped them and 0x22.)
read_patterns "$M/new/disks/vda.qcow2" 0x10 0 1M "$M/new/disks/vda.qcow2" 0x00 1M 1M \
    "$M/new/disks/vda.qcow2" 0x00 2M 1M "$M/new/disks/vda.qcow2" 0x23 3M 1M \
    "$M/new/disks/vda.qcow2" 0x24 4M 1M "$M/new/snapshots/s2/vda.qcow2" 0x21 1M 1M \
    "$M/new/snapshots/s2/vdb.qcow2" 0x31 1M 1M "$M/new/snapshots/s1/vdb.qcow2" 0x11 0 1M \
    "$M/new/disks/vdb.qcow2" 0x00 1M 1M "$M/new/snapshots/b3/vda.qcow2" 0x23 3M 1M
check_store "$S" new
"$VMSTOREFS" --check "$S" >"$TMP/check.out" 2>&1 || fail "--check after the import: $(cat "$TMP/check.out")"
pass "cp -a of a snapshots/ tree (two branches, two disks) and disks/ into a new VM, then its domain.xml: the same tree, current, creation times (the directories' mtimes) and images; --check clean"

# From the store's own directory (outside the mount): its snapshot.xml
# files come along, and name src's files; rewritten to name the new VM's
# (as the README says), they are kept, each as given.
rm -rf "$TMP/stage" && mkdir "$TMP/stage" && cp -a "$S/src/snapshots" "$TMP/stage/" ||
    fail "cp -a of the store's src/snapshots"
sed -i -e "s|$S/src/|$S/st/|g" -e "s|<name>src</name>|<name>st</name>|" "$TMP"/stage/snapshots/*/snapshot.xml ||
    fail "rewrite the copied snapshot.xml files"
mkdir "$M/st" && cp -a "$TMP/stage/snapshots" "$S/src/disks" "$M/st/" || fail "cp -a into st"
newdef st
cp "$TMP/st.xml" "$M/st/domain.xml" || fail "define st"
[ "$(readlink "$M/st/current")" = snapshots/b3 ] || fail "st: current is not b3"
for s in s1 s2 b3; do
    cmp -s "$TMP/stage/snapshots/$s/snapshot.xml" "$S/st/snapshots/$s/snapshot.xml" ||
        fail "st: the given snapshot.xml of $s was not kept as given"
    for d in vda vdb; do
        qemu-img compare -q "$V/snapshots/$s/$d.qcow2" "$M/st/snapshots/$s/$d.qcow2" ||
            fail "st: snapshot $s's $d differs from src's"
    done
done
check_store "$S" st
"$VMSTOREFS" --check "$S" >"$TMP/check.out" 2>&1 || fail "--check after the import of st: $(cat "$TMP/check.out")"
pass "cp -a of a store directory's snapshots/ (snapshot.xml files rewritten to name the new VM's files): imported, each snapshot.xml as given"

# Defined now: its snapshots/ is frozen, and mkdir there takes one.
expect_fail "write into new's snapshot once defined" "Read-only file system" \
    cp "$TMP/x" "$M/new/snapshots/s1/vdc.qcow2"
mkdir "$M/new/snapshots/s4" || fail "take s4 in new"
[ -e "$S/new/snapshots/s4/vda.qcow2" ] && [ -e "$S/new/snapshots/s4/vdb.qcow2" ] ||
    fail "mkdir in a defined VM's snapshots/ is no take"
# Undefined again (rm domain.xml keeps the definition aside): not an
# import, its snapshots stay frozen.
rm "$M/st/domain.xml" || fail "undefine st"
expect_fail "write into an undefined VM's snapshot" "Read-only file system" \
    cp "$TMP/x" "$M/st/snapshots/s1/vdc.qcow2"
expect_fail "set an undefined VM's snapshot's times" "Read-only file system" \
    touch -d @1000000000 "$M/st/snapshots/s1"
pass "once defined, the new VM's snapshots are frozen and mkdir there takes a snapshot; undefined again, they stay frozen"

# ---- refusals: one log line, the VM as it was, not defined ----
# import NAME: NAME made through the mount with src's snapshots and disks.
import() {
    mkdir "$M/$1" && cp -a "$V/snapshots" "$V/disks" "$M/$1/" || fail "import $1"
}
# refused NAME ERRNO LOGLINE
refused() {
    local before
    newdef "$1"
    before=$(tree_state "$S/$1")
    expect_refusal "define $1" "$2" "$3" cp "$TMP/$1.xml" "$M/$1/domain.xml"
    [ "$(tree_state "$S/$1")" = "$before" ] || fail "define $1: the refused definition changed the VM"
    [ -e "$S/$1/domain.xml" ] && fail "define $1: defined"
    journal_empty "$S"
}
import out
qemu-img create -q -f qcow2 -u -b ../../../src/snapshots/s1/vda.qcow2 -F qcow2 "$I/out.qcow2" 64M ||
    fail "image out"
cp "$I/out.qcow2" "$M/out/snapshots/s2/vda.qcow2" || fail "cp out.qcow2"
refused out "Permission denied" "refused write /out/domain.xml: .*leaves the VM's directory"

import bad
{ printf 'QFI\373\0\0\0\3'; head -c 504 /dev/zero; } >"$I/bad.qcow2"
cp "$I/bad.qcow2" "$M/bad/snapshots/s2/vda.qcow2" || fail "cp bad.qcow2"
refused bad "Invalid argument" "refused write /bad/domain.xml: the imported snapshots: .*s2/vda.qcow2: not a qcow2 image .*(bad-header)"

# snapxml FILE VM OVERLAY [DOMAIN-DISK]: a snapshot.xml of s1 (a root),
# its vda overlay OVERLAY; with DOMAIN-DISK, an embedded <domain> (VM's)
# whose vda is that file.
snapxml() {
    cat >"$1" <<EOF || fail "write $1"
<domainsnapshot>
  <name>s1</name>
  <state>disk-snapshot</state>
  <creationTime>1700000000</creationTime>
  <memory snapshot='no'/>
  <disks>
    <disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='$3'/></disk>
  </disks>
  ${4:+<domain type='kvm'><name>$2</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>}
  ${4:+<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$4'/><target dev='vda' bus='virtio'/></disk></devices></domain>}
</domainsnapshot>
EOF
}
import xml
snapxml "$M/xml/snapshots/s1/snapshot.xml" xml "$S/src/disks/vda.qcow2"
refused xml "Permission denied" "refused write /xml/domain.xml: the imported snapshots: .*$S/src/disks/vda.qcow2"
# The same in its embedded <domain> (which --check lets name any file of
# the store): an import's snapshot.xml names this VM's files only.
import dom
snapxml "$M/dom/snapshots/s1/snapshot.xml" dom "$S/dom/snapshots/b3/vda.qcow2" "$S/src/disks/vda.qcow2"
refused dom "Permission denied" "refused write /dom/domain.xml: the imported snapshots: .*s1/snapshot.xml names $S/src/disks/vda.qcow2, which is not a file of dom"
pass "refused, one log line each, nothing changed: a snapshot image backing onto another VM's (EACCES), a malformed header (EINVAL), a snapshot.xml naming another VM's file, in its <disks> or its <domain> (EACCES)"

# A definition written while a snapshot image is still open for writing
# (a cp not done yet) is refused (EBUSY), and goes through once it is
# closed.
import busy
newdef busy
exec {hold}>>"$M/busy/snapshots/s2/vda.qcow2" || fail "open busy's s2/vda.qcow2 for writing"
expect_refusal "define busy while an image is written" "Device or resource busy" \
    "refused write /busy/domain.xml: .*open for writing" cp "$TMP/busy.xml" "$M/busy/domain.xml"
[ -e "$S/busy/domain.xml" ] && fail "busy was defined while an image was being written"
exec {hold}>&-
cp "$TMP/busy.xml" "$M/busy/domain.xml" || fail "define busy once the image is closed"
pass "a definition waits for the copy: refused (EBUSY) while a snapshot image is open for writing"

# An import given up is removed as files are: its snapshot.xml is listed
# while it is imported, and rm -r takes it all.
[ "$(cd "$M/xml/snapshots/s1" && echo *)" = "snapshot.xml vda.qcow2 vdb.qcow2" ] ||
    fail "an imported snapshot lists: $(cd "$M/xml/snapshots/s1" && echo *)"
rm "$M/out/snapshots/s2/vda.qcow2" || fail "rm of an imported image"
[ -e "$S/out/snapshots/s2/vda.qcow2" ] && fail "rm left the imported image"
rm -r "$M/out" "$M/bad" "$M/xml" "$M/dom" || fail "rm -r of imports given up"
if [ -e "$S/out" ] || [ -e "$S/bad" ] || [ -e "$S/xml" ] || [ -e "$S/dom" ]; then
    fail "rm -r left an import given up in the store"
fi
unmount_fs "$M"
pass "an import given up: rm and rm -r remove its files, snapshot.xml included"
