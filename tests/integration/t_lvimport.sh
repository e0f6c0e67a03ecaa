#!/bin/bash
# Import from a running libvirt, and back (issue 18 §2, second bullet):
# `vmstorefs-ctl STORE import NEW --libvirt DOMAIN` and `export VM`.
#
# A libvirt domain gets three external disk-only snapshots made by libvirt
# itself (virsh snapshot-create-as --disk-only): s1, s2 on it, and b3 a
# branch off s1. libvirt 9.0 cannot revert an external snapshot ("revert
# to external snapshot not supported yet"), so the revert to s1 is made
# as it would do it: the disk given a fresh overlay on s1's image (virsh
# define) and s1 made current (virsh snapshot-current), then b3 is taken
# by libvirt. Before each snapshot a pattern is written with qemu-io.
# Imported into a store, mounted: every snapshot's image and the active
# disk read the patterns, the tree (parents, current) is libvirt's, and
# `vmstorefs --check` exits 0. Then the domain's libvirt definition goes
# (its files stay) and `export` hands the store's VM to libvirt under its
# store name: `virsh snapshot-list --tree` is the original's.
#
# Refusals, each leaving the store as it was (tree_state): a domain whose
# disk has a backing file outside its chain (EACCES), a qemu (qemu-io)
# holding an image (EBUSY), a CD-ROM with a medium, a read-only disk, a
# raw disk, an <nvram> (EINVAL: a store VM's definition names nothing
# outside the store, and only qcow2 images are imported); an empty CD-ROM
# drive comes along. Crash: the import stopped at each of its
# durable points (VMSTOREFS_CRASH_AT=import:N) leaves, after the next
# mount, nothing (before the commit) or the whole VM (after it), never a
# part, and nothing in the journal.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/libvirt.sh"
need_fuse
need_libvirt
CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || skip "no vmstorefs-ctl beside $VMSTOREFS"

S=$TMP/store M=$TMP/mnt L=$TMP/lv
mkdir -p "$S" "$L"
"$CTL" "$S" recover >/dev/null || fail "cannot make $S a store"   # its .vmstorefs
V=("${VIRSH[@]}")
lv_start
lv_virt_type
DOM=${LV_PREFIX}src
NEW=${LV_PREFIX}imp

# domain NAME FILE: a domain whose vda is FILE (qcow2); its UUID from
# its name, so that defining it again changes it.
domain() {
    local h
    h=$(printf %s "$1" | sha256sum)
    cat <<EOF
<domain type='$LV_VIRT_TYPE'>
  <name>$1</name>
  <uuid>${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
EOF
}
define() {
    domain "$1" "$2" >"$TMP/def.xml"
    LV_DEFINED+=("$1")
    "${V[@]}" define "$TMP/def.xml" >/dev/null || fail "virsh define $1"
}
write() { qemu-io -f qcow2 -c "write -q -P $2 $3 1M" "$1" >/dev/null || fail "write $2 to $1"; }
active() { "${V[@]}" domblklist "$1" --details | awk '$3 == "vda" { print $4 }'; }
snap() { "${V[@]}" snapshot-create-as "$1" "$2" --disk-only >/dev/null || fail "snapshot $2 of $1"; }

qemu-img create -q -f qcow2 "$L/base.qcow2" 16M
define "$DOM" "$L/base.qcow2"
write "$L/base.qcow2" 0x11 0
snap "$DOM" s1
write "$(active "$DOM")" 0x22 1M
snap "$DOM" s2
write "$(active "$DOM")" 0x33 2M   # after s2: left behind by the revert
# The revert to s1, as libvirt would make it: a fresh overlay on s1's image.
qemu-img create -q -f qcow2 -b "$L/base.qcow2" -F qcow2 "$L/r1.qcow2"
define "$DOM" "$L/r1.qcow2"
"${V[@]}" snapshot-current "$DOM" s1 >/dev/null || fail "snapshot-current s1"
write "$L/r1.qcow2" 0x44 2M
snap "$DOM" b3
write "$(active "$DOM")" 0x55 3M
tree=$("${V[@]}" snapshot-list "$DOM" --tree)
[ "$("${V[@]}" snapshot-parent "$DOM" b3)" = s1 ] || fail "libvirt's b3 is not a branch off s1: $tree"
pass "libvirt made s1, s2 and b3 (a branch off s1, after a revert made by hand):" $tree

# Refused: a domain whose disk's backing file is outside its chain.
qemu-img create -q -f qcow2 "$L/other.qcow2" 16M
qemu-img create -q -f qcow2 -b "$L/other.qcow2" -F qcow2 "$L/escape.qcow2"
define "${LV_PREFIX}escape" "$L/escape.qcow2"
before=$(tree_state "$S")
expect_fail "a backing file outside the chain" "EACCES: .*outside the chain being imported" \
    "$CTL" "$S" import esc --libvirt "${LV_PREFIX}escape"
[ "$(tree_state "$S")" = "$before" ] ||
    fail "the refused import changed the store: $(diff <(echo "$before") <(tree_state "$S"))"
pass "a disk backed by a file outside its chain is refused (EACCES), the store unchanged"

# Refused while a qemu holds an image.
qio_hold "$(active "$DOM")" "$(active "$DOM")"
expect_fail "an image a qemu holds" "EBUSY: .*in use" "$CTL" "$S" import "$NEW" --libvirt "$DOM"
qio_release
[ "$(tree_state "$S")" = "$before" ] || fail "the refused import changed the store"
pass "an image a qemu holds is refused (EBUSY), the store unchanged"

# What a store VM's definition cannot name (nothing outside the store):
# a CD-ROM with a medium in it, a read-only disk (both shared, never
# copied, by libvirt), an <nvram> file; and a raw disk (only qcow2 images
# are imported). Each refused (EINVAL) with what to do, the store
# unchanged. An empty CD-ROM drive names no file: it comes along, empty.
qemu-img create -q -f raw "$L/cd.iso" 1M && qemu-img create -q -f qcow2 "$L/ro.qcow2" 16M &&
    qemu-img create -q -f raw "$L/raw.img" 16M || fail "images for the refusals"
# domx NAME OS-EXTRA DEVICES [FEATURES]: a domain with those devices (and
# <os> extras, and <features>).
domx() {
    cat <<EOF
<domain type='$LV_VIRT_TYPE'>
  <name>$1</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>$2</os>${4:-}
  <devices>$3</devices>
</domain>
EOF
}
vd() { # DEV FILE [FORMAT] [EXTRA]
    echo "<disk type='file' device='disk'><driver name='qemu' type='${3:-qcow2}'/><source file='$2'/><target dev='$1' bus='virtio'/>${4:-}</disk>"
}
cdrom="<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>SRC<target dev='hdc' bus='ide'/><readonly/></disk>"
# lv_refused NAME PATTERN OS-EXTRA DEVICES [FEATURES] (an image
# NAME-vda.qcow2 made)
lv_refused() {
    local n=${LV_PREFIX}$1
    qemu-img create -q -f qcow2 "$L/$1-vda.qcow2" 16M || fail "image of $1"
    domx "$n" "$3" "$4" "${5:-}" >"$TMP/$1.xml"
    LV_DEFINED+=("$n")
    "${V[@]}" define "$TMP/$1.xml" >/dev/null 2>"$TMP/$1.err" || fail "virsh define $1: $(cat "$TMP/$1.err")"
    expect_fail "import of $1" "$2" "$CTL" "$S" import "$1" --libvirt "$n"
    [ "$(tree_state "$S")" = "$before" ] || fail "the refused import of $1 changed the store"
}
lv_refused cd "EINVAL: .*disk hdc (cdrom, read-only) names $L/cd.iso: .*virsh change-media" "" \
    "$(vd vda "$L/cd-vda.qcow2")${cdrom/SRC/<source file=\'$L/cd.iso\'/>}"
lv_refused ro "EINVAL: .*disk vdb (disk, read-only) names $L/ro.qcow2: only a VM's own writable disks" "" \
    "$(vd vda "$L/ro-vda.qcow2")$(vd vdb "$L/ro.qcow2" qcow2 "<readonly/>")"
lv_refused raw "EINVAL: .*disk vda: driver type 'raw': only qcow2 images are imported" "" \
    "$(vd vda "$L/raw.img" raw)"
lv_refused nv "EINVAL: .*<nvram> $L/nv.fd: " \
    "<loader readonly='yes' type='pflash'>$L/code.fd</loader><nvram>$L/nv.fd</nvram>" \
    "$(vd vda "$L/nv-vda.qcow2")" "<features><acpi/></features>"
pass "refused (EINVAL, saying what to do), the store unchanged: a CD-ROM with a medium, a read-only disk, a raw disk, an <nvram>"
qemu-img create -q -f qcow2 "$L/cde.qcow2" 16M || fail "image of cde"
domx "${LV_PREFIX}cde" "" "$(vd vda "$L/cde.qcow2")${cdrom/SRC/}" >"$TMP/cde.xml"
LV_DEFINED+=("${LV_PREFIX}cde")
"${V[@]}" define "$TMP/cde.xml" >/dev/null || fail "virsh define cde"
"$CTL" "$S" import cde --libvirt "${LV_PREFIX}cde" >/dev/null 2>"$TMP/cde.err" || fail "import cde: $(cat "$TMP/cde.err")"
[ "$(xmllint --xpath "count(//disk[@device='cdrom'][not(source)])" "$S/cde/domain.xml")" = 1 ] ||
    fail "the empty CD-ROM drive did not come along: $(cat "$S/cde/domain.xml")"
"$VMSTOREFS" --check "$S" >"$TMP/check.out" || fail "--check after the import of cde: $(cat "$TMP/check.out")"
"$CTL" "$S" delete-vm cde >/dev/null 2>&1 || fail "delete-vm cde"
before=$(tree_state "$S")
pass "an empty CD-ROM drive is imported as it is (no file to copy)"

# A crash at each durable point: after the next mount the VM is all there
# or not at all. The import's own XML is gathered once, into a directory
# (import NEW DIR takes the same core), so the loop runs no virsh.
D=$TMP/dir
mkdir -p "$D/snapshots"
"${V[@]}" dumpxml --inactive --security-info "$DOM" >"$D/domain.xml"
for s in s1 s2 b3; do "${V[@]}" snapshot-dumpxml "$DOM" $s >"$D/snapshots/$s.xml"; done
n=0
while :; do
    n=$((n + 1))
    ((n < 50)) || fail "the import never finished"
    st=0
    VMSTOREFS_CRASH_AT=import:$n "$CTL" "$S" import crashed "$D" >/dev/null 2>&1 || st=$?
    [ $st -eq 0 ] || [ $st -eq 99 ] || fail "import with a crash at point $n: exit $st"
    mount_fs "$S" "$M"
    if [ -e "$M/crashed" ]; then
        [ "$(ls "$M/crashed/snapshots" | tr '\n' ' ')" = "b3 s1 s2 " ] ||
            fail "crash at point $n: the VM is there without all its snapshots"
        read_patterns "$M/crashed/disks/vda.qcow2" 0x44 2M 1M "$M/crashed/disks/vda.qcow2" 0x55 3M 1M
    fi
    unmount_fs "$M"
    journal_empty "$S"
    "$VMSTOREFS" --check "$S" >"$TMP/check.out" || fail "crash at point $n: --check: $(cat "$TMP/check.out")"
    [ -e "$S/crashed" ] && [ -z "${committed:-}" ] && committed=$n
    [ $st -eq 0 ] && break
    rm -rf "$S/crashed" "$S/.vmstorefs/locks/crashed"
done
[ -n "${committed:-}" ] && ((committed < n)) || fail "no crash point fell after the commit"
"$CTL" "$S" delete-vm crashed >/dev/null 2>&1 || fail "delete-vm crashed"
pass "a crash at any of the import's $((n - 1)) points leaves nothing (before point $committed) or the whole VM"

# The import from libvirt itself.
"$CTL" "$S" import "$NEW" --libvirt "$DOM" >/dev/null 2>"$TMP/import.err" ||
    fail "import: $(cat "$TMP/import.err")"
"$VMSTOREFS" --check "$S" >"$TMP/check.out" || fail "--check after the import: $(cat "$TMP/check.out")"
mount_fs "$S" "$M"
I=$M/$NEW
[ "$(readlink "$I/current")" = snapshots/b3 ] || fail "current is $(readlink "$I/current"), not b3"
for s in s1 s2 b3; do
    got=$(xmllint --xpath 'string(/domainsnapshot/parent/name)' "$S/$NEW/snapshots/$s/snapshot.xml")
    want=$("${V[@]}" snapshot-parent "$DOM" $s 2>/dev/null)
    [ "$got" = "$want" ] || fail "$s: the store's parent is '$got', libvirt's '$want'"
done
read_patterns \
    "$I/snapshots/s1/vda.qcow2" 0x11 0 1M "$I/snapshots/s1/vda.qcow2" 0 1M 3M \
    "$I/snapshots/s2/vda.qcow2" 0x11 0 1M "$I/snapshots/s2/vda.qcow2" 0x22 1M 1M \
    "$I/snapshots/s2/vda.qcow2" 0 2M 2M \
    "$I/snapshots/b3/vda.qcow2" 0x11 0 1M "$I/snapshots/b3/vda.qcow2" 0 1M 1M \
    "$I/snapshots/b3/vda.qcow2" 0x44 2M 1M "$I/snapshots/b3/vda.qcow2" 0 3M 1M \
    "$I/disks/vda.qcow2" 0x11 0 1M "$I/disks/vda.qcow2" 0 1M 1M \
    "$I/disks/vda.qcow2" 0x44 2M 1M "$I/disks/vda.qcow2" 0x55 3M 1M
qemu-img compare -U "$(active "$DOM")" "$I/disks/vda.qcow2" >/dev/null ||
    fail "the active disk differs from libvirt's"
unmount_fs "$M"
pass "imported: the tree (current b3) and every layer's data as in libvirt; --check exits 0"

# Back to libvirt under the store's name, the original's metadata gone.
"${V[@]}" undefine "$DOM" --snapshots-metadata >/dev/null || fail "undefine $DOM"
LV_DEFINED+=("$NEW")
"$CTL" "$S" export "$NEW" >/dev/null 2>"$TMP/export.err" || fail "export: $(cat "$TMP/export.err")"
got=$("${V[@]}" snapshot-list "$NEW" --tree)
[ "$got" = "$tree" ] || fail "libvirt's tree of the export is '$got', the original's '$tree'"
[ "$("${V[@]}" snapshot-current "$NEW" --name)" = b3 ] || fail "the export's current is not b3"
[ "$(active "$NEW")" = "$S/$NEW/disks/vda.qcow2" ] || fail "the export's disk is $(active "$NEW")"
pass "exported: libvirt's tree of $NEW is the original's:" $got
