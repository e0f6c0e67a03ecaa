#!/bin/bash
# Importing a VM by file operations (issue 18, part 2; SPEC §2, "mkdir
# NEW, write NEW/domain.xml, copy images into NEW/disks/"): mkdir NEW at
# the mount's root makes an undefined VM (the caller's; it needs the
# right to create in the store's root, as a clone does), cp puts images
# in NEW/disks/, writing NEW/domain.xml defines it. Every image the
# definition names is checked by the daemon's own header parser first:
# hostile ones (a backing file outside the VM, absolute or relative, an
# external data file, a loop, a raw file passed off as qcow2, a disk
# whose format the definition does not give) are refused, EACCES for
# what points out and EINVAL for what is malformed, with one log line,
# and the refused definition changes nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate xmllint setpriv
[ "$(id -u)" -eq 0 ] || skip "needs root (setpriv to another user)"

S=$TMP/store M=$TMP/mnt I=$TMP/img
make_vm "$S" vm 1
mkdir -p "$I"
chmod 755 "$TMP" "$S"
mount_fs "$S" "$M" -o allow_other

# def NAME [DISK-XML]: a definition for VM NAME with disk vda.
def() {
    local disk=${2:-"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$S/$1/disks/vda.qcow2'/><target dev='vda' bus='virtio'/></disk>"}
    cat <<EOF
<domain type='kvm'>
  <name>$1</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    $disk
  </devices>
</domain>
EOF
}

# ---- an import that works ----
qemu-img create -q -f qcow2 "$I/base.qcow2" 64M &&
    qemu-io -f qcow2 -c "write -q -P 0x61 0 1M" "$I/base.qcow2" >/dev/null &&
    (cd "$I" && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 64M) &&
    qemu-io -f qcow2 -c "write -q -P 0x62 1M 1M" "$I/top.qcow2" >/dev/null || fail "images"
qemu-img convert -O qcow2 "$I/top.qcow2" "$I/flat.qcow2" || fail "flat image"
mkdir "$M/new" || fail "mkdir new"
[ -d "$S/new/disks" ] && [ -d "$S/new/snapshots" ] || fail "mkdir new made no VM directory"
[ -e "$M/new/domain.xml" ] && fail "a new VM has a definition"
cp "$I/flat.qcow2" "$M/new/disks/vda.qcow2" || fail "cp into new/disks"
def new >"$TMP/new.xml"
cp "$TMP/new.xml" "$M/new/domain.xml" || fail "define new"
read_patterns "$M/new/disks/vda.qcow2" 0x61 0 1M "$M/new/disks/vda.qcow2" 0x62 1M 1M
mkdir "$M/new/snapshots/s1" || fail "mkdir new/snapshots/s1"
check_store "$S" new
pass "mkdir NEW, cp an image into NEW/disks/, write NEW/domain.xml: a VM that takes snapshots"

# Only who may create in the store's root may import.
# (The kernel refuses first, default_permissions; the daemon's own check,
# for a mount without it, is in test_nsop.)
expect_fail "mkdir by a user who may not create in the store" "Permission denied" \
    setpriv --reuid=4711 --regid=4711 --clear-groups mkdir "$M/nope"
[ -e "$S/nope" ] && fail "a refused mkdir made a VM"
chmod 1777 "$S"
setpriv --reuid=4711 --regid=4711 --clear-groups mkdir "$M/mine" || fail "mkdir once the root is writable"
[ "$(stat -c %u:%g "$S/mine")" = "4711:4711" ] || fail "the new VM is not its maker's: $(stat -c %u:%g "$S/mine")"
chmod 755 "$S"
pass "mkdir NEW needs the right to create in the store's root; the VM is its maker's"

# ---- hostile images: refused, nothing changes ----
# refused NAME ERRNO LOGLINE: NAME's definition is refused with ERRNO
# (its text), one log line, and NAME's directory is as it was.
refused() {
    local name=$1 err=$2 line=$3 before
    before=$(tree_state "$S/$name")
    def "$name" "${4:-}" >"$TMP/$name.xml"
    expect_refusal "import $name" "$err" "$line" cp "$TMP/$name.xml" "$M/$name/domain.xml"
    [ "$(tree_state "$S/$name")" = "$before" ] || fail "import $name: the refused definition changed the VM"
    [ -e "$S/$name/domain.xml" ] && fail "import $name: defined"
    journal_empty "$S"
}
qemu-img create -q -f qcow2 -b /etc/hostname -F raw "$I/abs.qcow2" 64M &&
    qemu-img create -q -f qcow2 -u -b ../../vm/disks/vda.qcow2 -F qcow2 "$I/rel.qcow2" 64M &&
    qemu-img create -q -f qcow2 -o data_file="$I/data.raw" "$I/ext.qcow2" 64M &&
    qemu-img create -q -f qcow2 -u -b vdb.qcow2 -F qcow2 "$I/loopa.qcow2" 64M &&
    qemu-img create -q -f qcow2 -u -b vda.qcow2 -F qcow2 "$I/loopb.qcow2" 64M &&
    qemu-img create -q -f raw "$I/raw.img" 64M || fail "hostile images"
for n in abs rel ext loop raw nofmt; do
    mkdir "$M/$n" || fail "mkdir $n"
done
cp "$I/abs.qcow2" "$M/abs/disks/vda.qcow2" && cp "$I/rel.qcow2" "$M/rel/disks/vda.qcow2" &&
    cp "$I/ext.qcow2" "$M/ext/disks/vda.qcow2" && cp "$I/loopa.qcow2" "$M/loop/disks/vda.qcow2" &&
    cp "$I/loopb.qcow2" "$M/loop/disks/vdb.qcow2" && cp "$I/raw.img" "$M/raw/disks/vda.qcow2" &&
    cp "$I/flat.qcow2" "$M/nofmt/disks/vda.qcow2" || fail "cp the hostile images in"
refused abs "Permission denied" "backing file \"/etc/hostname\": an absolute name"
refused rel "Permission denied" "backing file \"../../vm/disks/vda.qcow2\""
refused ext "Permission denied" "has an external data file"
refused loop "Invalid argument" "refused write /loop/domain.xml: disk vda: .*loop"
refused raw "Invalid argument" "refused write /raw/domain.xml: disk vda: "
refused nofmt "Invalid argument" "disk vda: no <driver type>: the format must be given" \
    "<disk type='file' device='disk'><source file='$S/nofmt/disks/vda.qcow2'/><target dev='vda' bus='virtio'/></disk>"
unmount_fs "$M"
pass "hostile images (absolute and relative names out of the VM, external data file, loop, raw as qcow2, no format) refused: EACCES or EINVAL, one log line, nothing changed"
