#!/bin/bash
# A real guest boots a store VM's disks (guest.sh: Debian's kernel and a
# busybox initramfs under qemu TCG): first through libvirt from the VM's
# own domain.xml, then with plain qemu on the images through the mount.
# After a snapshot taken through the mount, the guest reads through the
# active image's backing chain exactly what qemu-io reads on the host,
# its writes land in the active images only, and the snapshot's frozen
# images keep what they had. This is the harness the clone tests boot
# clones with.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/libvirt.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/guest.sh"
guest_need
pass "guest: kernel $(guest_kver) as ${GUEST_KERNEL##*/}, initramfs of $(stat -c %s "$GUEST_INITRD") bytes"

S=$TMP/store M=$TMP/mnt
make_vm "$S" vm 2
mount_fs "$S" "$M"
mkdir "$M/vm/snapshots/s1" || fail "take s1 through the mount"
for i in 0 1; do
    d=${SNAP_DEVS[i]}
    bf=$(qemu-img info -U --output=json "$S/vm/disks/$d.qcow2" | sed -n 's/^ *"backing-filename": "\(.*\)",\{0,1\}$/\1/p')
    [ "$bf" = "../snapshots/s1/$d.qcow2" ] || fail "$d: active image backed by '$bf', not s1's image"
    read_pattern "$S/vm/disks/$d.qcow2" "$(disk_pattern "$i")" 0 1M
done
pass "s1 taken: vda and vdb are overlays on s1's frozen images"

# md5 of 1M of BYTE: what the guest reads back after marking.
md5_of() { head -c 1M /dev/zero | tr '\000' "$(printf '\\%03o' "$(($1))")" | md5sum | cut -d' ' -f1; }

# check_boot LOG WHAT MARK OFF: each disk's guest read (GUEST_READ_OFF+1M)
# is what the host read before the boot (HOST_READ[dev]), the guest read
# MARK back, and on the host the active image now has MARK at OFF+1M
# while s1's frozen image still reads zeros there and its pattern at 0.
check_boot() {
    local log=$1 what=$2 mark=$3 off=$4 i d want
    want=$(md5_of "$mark")
    for i in 0 1; do
        d=${SNAP_DEVS[i]}
        [ "$(guest_read "$log" "$d")" = "${HOST_READ[$d]}" ] ||
            fail "$what: $d: the guest read '$(guest_read "$log" "$d")', the host ${HOST_READ[$d]}"
        [ "$(guest_marked "$log" "$d")" = "$want" ] ||
            fail "$what: $d: the guest read back '$(guest_marked "$log" "$d")' after marking, not $want"
        read_pattern "$S/vm/disks/$d.qcow2" "$mark" "$off" 1M
        read_pattern "$S/vm/snapshots/s1/$d.qcow2" 0 "$off" 1M
        read_pattern "$S/vm/snapshots/s1/$d.qcow2" "$(disk_pattern "$i")" 0 1M
    done
}
declare -A HOST_READ=()
host_reads() {
    local d
    for d in vda vdb; do
        HOST_READ[$d]=$(host_md5 "$S/vm/disks/$d.qcow2" "$GUEST_READ_OFF" "$GUEST_READ_LEN") ||
            fail "cannot read $d on the host"
    done
}

# 1. libvirt, from the store's domain.xml (the guest reads the make_vm
#    patterns at 0, which live in s1's frozen images).
lv_start
GUEST_READ_OFF=0 GUEST_MARK=0x5a GUEST_MARK_OFF=32M
host_reads
[ "${HOST_READ[vda]}" != "${HOST_READ[vdb]}" ] || fail "vda and vdb hold the same data: nothing to tell apart"
guest_boot_libvirt "$TMP/libvirt.log" "$S/vm/domain.xml" || fail "booting vm through libvirt"
check_boot "$TMP/libvirt.log" libvirt 0x5a 32M
left=$("${VIRSH[@]}" list --all --name | grep -F "$LV_PREFIX")
[ -z "$left" ] || fail "libvirt still has $left"
pass "libvirt boot of vm (s1 current) in $GUEST_BOOT_SECONDS s: the guest read what the host reads, its marker is in the active images only"

# libvirt chowned the images to libvirt-qemu for the run and gave the
# active ones back (it leaves backing images as they are: s1's stay
# libvirt-qemu's); the store must still be sound.
check_store "$S" vm

# 2. plain qemu on the images through the mount: this guest reads the
#    first guest's marker, and marks elsewhere.
GUEST_READ_OFF=32M GUEST_MARK=0xa5 GUEST_MARK_OFF=40M
host_reads
[ "${HOST_READ[vda]}" = "$(md5_of 0x5a)" ] || fail "the host does not read the first marker on vda"
guest_boot_qemu "$TMP/qemu.log" "$M/vm/disks/vda.qcow2" "$M/vm/disks/vdb.qcow2" ||
    fail "booting vm's disks through the mount with qemu"
check_boot "$TMP/qemu.log" qemu 0xa5 40M
read_pattern "$S/vm/disks/vda.qcow2" 0x5a 32M 1M
pass "qemu boot of vm's disks through the mount in $GUEST_BOOT_SECONDS s: it read the libvirt guest's marker and wrote its own"

unmount_fs "$M"
check_store "$S" vm
