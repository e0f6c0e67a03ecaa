#!/bin/bash
# A clone is a VM: a real guest (guest.sh: Debian's kernel and a busybox
# initramfs under qemu TCG) boots a clone through libvirt from the
# clone's own domain.xml. The source has a snapshot and data written
# after it; the clone's standalone disks hold the current state, which
# the guest reads exactly as qemu-io reads the source on the host. The
# guest's marker lands in the clone's images only: the source's active
# images and its snapshot's frozen images do not change.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/libvirt.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/guest.sh"
guest_need

S=$TMP/store M=$TMP/mnt
make_vm "$S" src 2
mount_fs "$S" "$M"
mkdir "$M/src/snapshots/s1" || fail "take s1 through the mount"
# Data after s1, in the active images only: the clone must have it.
for i in 0 1; do
    qemu-io -f qcow2 -c "write -q -P $((0x60 + i)) 0 512k" "$M/src/disks/${SNAP_DEVS[i]}.qcow2" >/dev/null ||
        fail "write after s1"
done
mkdir "$M/src/clones/c1" || fail "clone c1"
unmount_fs "$M"
before=$(tree_state "$S/src")
declare -A HOST_READ=()
GUEST_READ_OFF=0 GUEST_MARK=0x5a GUEST_MARK_OFF=32M
for d in vda vdb; do
    HOST_READ[$d]=$(host_md5 "$S/src/disks/$d.qcow2" 0 "$GUEST_READ_LEN") || fail "host read of src's $d"
    [ -z "$(qemu-img info -U "$S/c1/disks/$d.qcow2" | grep '^backing file')" ] ||
        fail "c1's $d has a backing file"
done

lv_start
guest_boot_libvirt "$TMP/boot.log" "$S/c1/domain.xml" || fail "booting the clone c1 through libvirt"
mark=$(head -c 1M /dev/zero | tr '\000' '\132' | md5sum | cut -d' ' -f1)
for i in 0 1; do
    d=${SNAP_DEVS[i]}
    [ "$(guest_read "$TMP/boot.log" "$d")" = "${HOST_READ[$d]}" ] ||
        fail "$d: the clone's guest read '$(guest_read "$TMP/boot.log" "$d")', its source ${HOST_READ[$d]}"
    [ "$(guest_marked "$TMP/boot.log" "$d")" = "$mark" ] || fail "$d: the guest's marker did not read back"
    read_pattern "$S/c1/disks/$d.qcow2" 0x5a 32M 1M
    read_pattern "$S/src/disks/$d.qcow2" 0 32M 1M
    read_pattern "$S/src/snapshots/s1/$d.qcow2" 0 32M 1M
    read_pattern "$S/src/disks/$d.qcow2" "$((0x60 + i))" 0 512k
    read_pattern "$S/src/snapshots/s1/$d.qcow2" "$(disk_pattern "$i")" 0 1M
done
[ "$(tree_state "$S/src")" = "$before" ] || fail "booting the clone changed its source's files"
pass "the clone c1 boots through libvirt in $GUEST_BOOT_SECONDS s: it reads its source's current state; its marker is in c1's images only, src and s1 unchanged"
