#!/bin/bash
# libvirt itself reads the sample store as we mean it: the domains define,
# the snapshot.xml files redefine (--validate) into the same tree with the
# same current snapshot, and on a copy libvirt's own snapshot-delete of the
# current leaf merges it without losing guest data.
#
# What libvirt 9.0 means by an external disk-only snapshot (established
# with `virsh snapshot-create-as DOM S --disk-only` on a shut-off domain,
# then a second one on top, and snapshot-dumpxml / dumpxml --inactive):
#
#   <domainsnapshot>
#     <name>S</name> <description>..</description>
#     <state>shutoff</state>                  (domain was shut off)
#     <parent><name>P</name></parent>         (absent for a root)
#     <creationTime>1700003600</creationTime> (seconds since the epoch)
#     <memory snapshot='no'/>
#     <disks>
#       <disk name='vda' snapshot='external' type='file'>
#         <driver type='qcow2'/>
#         <source file='OVERLAY'/>
#       </disk>
#     </disks>
#     <domain type='..'> ... the whole inactive domain as it was at S:
#       <disk ..><source file='FROZEN'/> [<backingStore> chain below it] ..
#   </domainsnapshot>
#
#   FROZEN  = the image that holds the disk's state at S (the active image
#             before S, read-only from then on) = snapshots/S/vda.qcow2.
#   OVERLAY = the new image created at S that receives the changes after
#             it; its backing image is FROZEN. libvirt never rewrites it:
#             when a child C is taken, OVERLAY becomes C's FROZEN image and
#             S keeps naming it. In our layout: snapshots/C/vda.qcow2, or
#             disks/vda.qcow2 while S is the current snapshot.
#   The embedded <domain> has a <backingStore> chain only if the domain
#   XML had one (libvirt's inactive XML has none unless given; ours is
#   kept as given). --no-metadata makes the overlay and switches the
#   domain to it but records no snapshot (current stays the old one).
#   Overlays libvirt creates store ABSOLUTE backing names (we must not).
#
# `snapshot-create DOM FILE --redefine --validate [--current]` accepts
# our snapshot.xml (parents must be redefined first; the embedded domain's
# UUID must be the domain's) and does not look at the images.
#
# `snapshot-delete DOM S` of the current leaf (libvirt 9.0 can delete
# external snapshots) starts QEMU paused (so: type='qemu' here, and no
# interface on the inactive network 'default'), commits OVERLAY into
# FROZEN, points the domain at FROZEN (snapshots/S/vda.qcow2, keeping its
# relative backing name), deletes OVERLAY (disks/vda.qcow2) and makes P
# current. It requires OVERLAY to be in the domain's chain with FROZEN as
# its backing image, so a <disks> source naming FROZEN is refused. It
# leaves the images below owned by libvirt-qemu.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/libvirt.sh"
need_libvirt

S=$TMP/store
sample_store "$S"
check_store "$S"
check_overlays "$S" web1
pass "sample store: XML validates, images check, relative backing names, overlays as libvirt's"

# Take, rename and revert through the mount first: libvirt must accept
# what the operations leave, not only what make-sample-store writes.
need_fuse
M=$TMP/mnt
mount_fs "$S" "$M"
mkdir "$M/web1/snapshots/s1" || fail "take s1"
qemu-io -f qcow2 -c 'write -q -P 0x66 12M 1M' "$M/web1/disks/vda.qcow2" >/dev/null
mv "$M/web1/snapshots/s1" "$M/web1/snapshots/s2" || fail "rename s1 to s2"
ln -sfn snapshots/configured "$M/web1/current" || fail "revert to configured"
mkdir "$M/web1/snapshots/s3" || fail "take s3"
[ "$(readlink "$M/web1/current")" = snapshots/s3 ] || fail "current is not s3"
# Clones, of the current state and of a snapshot, are VMs libvirt defines
# next to their source (below).
mkdir "$M/web1/clones/web1c" || fail "clone web1c"
mkdir "$M/web1/snapshots/s2/clones/web1s2" || fail "clone web1s2 from s2"
unmount_fs "$M"
check_store "$S"
read_pattern "$S/web1/snapshots/s2/vda.qcow2" 0x33 8M 1M
read_pattern "$S/web1/disks/vda.qcow2" 0 12M 1M   # written after s1: discarded by the revert
pass "through the mount: take s1, rename to s2, revert to configured, take s3"

before=$(tree_state "$S")
lv_start
lv_define_vm "$S" web1
lv_define_vm "$S" db1
lv_define_vm "$S" web1c
lv_define_vm "$S" web1s2
for c in web1c web1s2; do
    out=$("${VIRSH[@]}" domblklist "$(lv_name "$S" "$c")" --inactive) || fail "virsh domblklist $c: $out"
    grep -q "$S/$c/disks/vda.qcow2" <<<"$out" || fail "libvirt's $c does not use its own disk: $out"
    [ "$("${VIRSH[@]}" snapshot-list "$(lv_name "$S" "$c")" --name | sed '/^$/d')" = "" ] ||
        fail "$c has snapshots in libvirt"
done
lv_redefine_snapshots "$S" web1
lv_redefine_snapshots "$S" db1
[ "$(store_current "$S" web1)" = s3 ] || fail "web1's current snapshot is not s3"
lv_check_tree "$S" web1
lv_check_tree "$S" db1
[ "$(tree_state "$S")" = "$before" ] || fail "defining the store in libvirt changed it"
pass "libvirt defines web1, db1 and the clones web1c and web1s2 (on their own disks, no snapshots) and redefines web1's snapshots as the store has them"

# On a copy, libvirt deletes the current leaf itself: QEMU must start,
# as libvirt-qemu, which must get through the (0700) temp dir.
C=$TMP/copy
chmod go+x "$TMP"
copy_store "$S" "$C"
sed -i -e "s|<domain type='kvm'>|<domain type='qemu'>|" -e '/<interface/,/<\/interface>/d' \
    "$C"/web1/domain.xml "$C"/web1/snapshots/*/snapshot.xml
lv_define_vm "$C" web1 web1-copy
lv_redefine_snapshots "$C" web1
lv_check_tree "$C" web1
dom=$(lv_name "$C" web1)
qemu-io -f qcow2 -c 'write -q -P 0x77 16M 1M' "$C/web1/disks/vda.qcow2" >/dev/null
out=$("${VIRSH[@]}" snapshot-delete "$dom" s3 2>&1) || fail "virsh snapshot-delete: $out"
active=$("${VIRSH[@]}" domblklist "$dom" --inactive | awk '$1 == "vda" { print $2 }')
[ "$active" = "$C/web1/snapshots/s3/vda.qcow2" ] || fail "after delete the disk is $active"
[ ! -e "$C/web1/disks/vda.qcow2" ] || fail "libvirt kept the merged overlay disks/vda.qcow2"
read_pattern "$active" 0x11 0 4M
read_pattern "$active" 0x22 4M 4M
read_pattern "$active" 0 8M 1M
read_pattern "$active" 0x77 16M 1M
check_store "$C"
left=$("${VIRSH[@]}" snapshot-list "$dom" --name | sed '/^$/d' | sort | tr '\n' ' ')
[ "$left" = "configured installed s2 " ] || fail "snapshots left: $left"
[ "$("${VIRSH[@]}" snapshot-current "$dom" --name)" = configured ] || fail "configured is not current after the delete"
[ "$(tree_state "$S")" = "$before" ] || fail "deleting in the copy changed the store"
pass "snapshot-delete of the current leaf s3 merges disks/vda into snapshots/s3/vda: data and chain intact"
