#!/bin/bash
# An import on a file system with reflinks (XFS reflink=1 on a loop
# device) shares the images' extents (FICLONE) instead of copying them:
# libvirt's files and the store on one file system, 160 MiB of data in a
# chain of two images, imported (vmstorefs-ctl import NEW DIR) for a few
# MiB of new space; the imported chain reads as the source, and libvirt's
# files are unchanged. (Elsewhere the import copies the allocated
# extents: t_import_tree.sh, t_lvimport.sh.)
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io
CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || skip "no vmstorefs-ctl beside $VMSTOREFS"

xfs_reflink

S=$X/store D=$X/libvirt
mkdir -p "$S" "$D/snapshots"
"$CTL" "$S" recover >/dev/null || fail "cannot make $S a store"
qemu-img create -q -f qcow2 "$D/base.qcow2" 512M
qemu-io -f qcow2 -c 'write -q -P 0x61 0 128M' "$D/base.qcow2" >/dev/null || fail "fill base"
qemu-img create -q -f qcow2 -b "$D/base.qcow2" -F qcow2 "$D/base.s1" 512M
qemu-io -f qcow2 -c 'write -q -P 0x62 64M 32M' "$D/base.s1" >/dev/null || fail "fill base.s1"
dom() {
    echo "<domain type='kvm'><name>lv</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
    echo "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><disk type='file' device='disk'>"
    echo "<driver name='qemu' type='qcow2'/><source file='$1'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
}
dom "$D/base.s1" >"$D/domain.xml"
{
    echo "<domainsnapshot><name>s1</name><state>shutoff</state><creationTime>1700000000</creationTime>"
    echo "<memory snapshot='no'/><disks><disk name='vda' snapshot='external' type='file'>"
    echo "<driver type='qcow2'/><source file='$D/base.s1'/></disk></disks>"
    dom "$D/base.qcow2"
    echo "</domainsnapshot>"
} >"$D/snapshots/s1.xml"
sums=$(sha256sum "$D"/base.*)

used() { sync; df --output=used -B1M "$X" | tail -n 1 | tr -d ' '; }
before=$(used)
"$CTL" "$S" import imp "$D" >/dev/null 2>"$TMP/import.err" || fail "import: $(cat "$TMP/import.err")"
grew=$(($(used) - before))
((grew < 16)) || fail "the import took $grew MiB for 160 MiB of data: not reflinked"
[ "$(sha256sum "$D"/base.*)" = "$sums" ] || fail "the import changed libvirt's files"
read_patterns "$S/imp/disks/vda.qcow2" 0x61 0 64M "$S/imp/disks/vda.qcow2" 0x62 64M 32M \
    "$S/imp/disks/vda.qcow2" 0x61 96M 32M "$S/imp/snapshots/s1/vda.qcow2" 0x61 64M 32M
qemu-img compare -U "$D/base.s1" "$S/imp/disks/vda.qcow2" >/dev/null || fail "the chains differ"
"$VMSTOREFS" --check "$S" >"$TMP/check.out" || fail "--check: $(cat "$TMP/check.out")"
pass "imported 160 MiB of data in $grew MiB of new space (reflinks); the chain reads as libvirt's"
