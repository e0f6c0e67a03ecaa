#!/bin/bash
# Clones on a file system with reflinks (XFS reflink=1 on a loop device):
# the clone detects the support and copies by offload. A disk with no
# backing chain is cloned by a whole-file reflink (FICLONE), a chain by
# qemu-img convert -C: the clones read exactly as their sources, and
# neither takes the space of the data it holds. (On ext4, where -C is
# slower, the other clone tests run the plain path.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
xfs_reflink

S=$X/store M=$TMP/mnt
make_vm "$S" flat 1
make_vm "$S" chain 1
for vm in flat chain; do
    qemu-img resize -q "$S/$vm/disks/vda.qcow2" 512M || fail "grow $vm's disk"
done
qemu-io -f qcow2 -c 'write -q -P 0x31 0 192M' "$S/flat/disks/vda.qcow2" >/dev/null || fail "fill flat"
qemu-io -f qcow2 -c 'write -q -P 0x41 0 128M' "$S/chain/disks/vda.qcow2" >/dev/null || fail "fill chain"
mount_fs "$S" "$M"
mkdir "$M/chain/snapshots/s1" || fail "take s1 of chain"
qemu-io -f qcow2 -c 'write -q -P 0x42 32M 64M' "$M/chain/disks/vda.qcow2" >/dev/null || fail "write after s1"
sync

used() { sync; df --output=used -B1M "$X" | tail -n 1 | tr -d ' '; }
# clone_check VM N MAXMIB: mkdir VM/clones/N; N's disk is standalone,
# reads as VM's, and took at most MAXMIB of new space.
clone_check() {
    local vm=$1 n=$2 max=$3 u0 u1
    u0=$(used)
    mkdir "$M/$vm/clones/$n" || fail "clone $n of $vm"
    u1=$(used)
    qemu-img info -U "$S/$n/disks/vda.qcow2" | grep -q '^backing file' && fail "$n has a backing file"
    qemu-img compare -U "$S/$n/disks/vda.qcow2" "$S/$vm/disks/vda.qcow2" >/dev/null ||
        fail "$n does not read as $vm"
    ((u1 - u0 <= max)) || fail "clone $n took $((u1 - u0)) MiB of new space: the data was copied, not shared"
    grep -q "clone $n of $vm: copying .* (reflinks)" "$DAEMON_LOG" || fail "the clone of $vm did not detect reflinks"
    echo "$((u1 - u0))"
}
flat=$(clone_check flat f1 16) || exit 1
pass "a chainless disk cloned by a whole-file reflink: reads as its source, $flat MiB of new space for 192 MiB of data"
chain=$(clone_check chain c1 16) || exit 1
pass "a chain cloned with qemu-img convert -C: standalone, reads as its source, $chain MiB of new space for 160 MiB of data"

# Shared extents are copied on write: writing the clone leaves the
# source as it was.
qemu-io -f qcow2 -c 'write -q -P 0x55 0 1M' "$M/f1/disks/vda.qcow2" >/dev/null || fail "write to f1"
read_pattern "$S/flat/disks/vda.qcow2" 0x31 0 1M
read_pattern "$S/f1/disks/vda.qcow2" 0x55 0 1M
check_store "$S"
pass "writing a reflinked clone leaves its source untouched"
unmount_fs "$M"
