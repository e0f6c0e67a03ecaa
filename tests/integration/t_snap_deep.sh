#!/bin/bash
# A take that would make a chain deeper than libvirt can read is refused:
# domain.xml spells each disk's chain out as nested <backingStore>
# elements, and libxml2 reads no more than 256 levels. Up to the limit
# every definition still validates; past it, mkdir fails with EMLINK and
# nothing changes.
# The chain: vda of VM deep grows from 190 images in deep/base/ (as a VM
# made from a long-lived template's images may), and takes through the
# mount make it 200 images deep: each take writes domain.xml and its
# snapshot.xml with the whole chain spelled out, 191 to 200 levels.
# (Taking all 200 through the mount checked the same definitions at 200
# and cost 197 takes, each slower than the last.) The mount shows no
# base/ (README: a known limitation), so the guest's data at the end is
# read in the store.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate perl

S=$TMP/store M=$TMP/mnt
make_vm "$S" deep 1
V=$S/deep B=$S/deep/base
mkdir -p "$B" && mv "$V/disks/vda.qcow2" "$B/b001.qcow2" || fail "cannot move vda to base/"
# b002 ... b190, each on the one before: qemu-img makes b002 (on b001);
# the others are copies of it with the backing name's number changed (the
# same length, in the header), by one perl rather than 188 qemu-imgs.
(cd "$B" && qemu-img create -q -f qcow2 -u -b b001.qcow2 -F qcow2 b002.qcow2 64M) || fail "cannot make b002"
perl -e '
    my $dir = shift;
    open(my $in, "<:raw", "$dir/b002.qcow2") or die "b002: $!\n";
    my $t = do { local $/; <$in> };
    ($t =~ s/b001\.qcow2/b001.qcow2/g) == 1 or die "b002 names b001.qcow2 more than once\n";
    for my $i (3 .. 190) {
        (my $img = $t) =~ s/b001\.qcow2/sprintf("b%03d.qcow2", $i - 1)/e;
        open(my $out, ">:raw", sprintf("%s/b%03d.qcow2", $dir, $i)) or die "b$i: $!\n";
        print $out $img;
        close($out) or die "b$i: $!\n";
    }' "$B" || fail "cannot make base/b003 .. b190"
(cd "$V/disks" && qemu-img create -q -f qcow2 -u -b ../base/b190.qcow2 -F qcow2 vda.qcow2 64M) ||
    fail "cannot make vda on b190"
chain=()
for ((i = 190; i >= 1; i--)); do
    chain+=("$(printf '%s/b%03d.qcow2' "$B" "$i")")
done
uuid=$(cat /proc/sys/kernel/random/uuid)
domain_xml deep "$uuid" 52:54:00:0d:ee:70 "$(disk_xml vda "$V/disks/vda.qcow2" "${chain[@]}")" >"$V/domain.xml" ||
    fail "cannot write deep's domain.xml"
[ "$(qemu-img info -U --backing-chain "$V/disks/vda.qcow2" | grep -c '^image: ')" = 191 ] ||
    fail "deep's vda is not 191 images deep"

mount_fs "$S" "$M"
for i in $(seq 192 200); do
    mkdir "$M/deep/snapshots/s$i" || fail "take s$i (chain of $i images) failed"
done
virt-xml-validate "$V/domain.xml" domain >/dev/null 2>&1 || fail "domain.xml at 200 images does not validate"
virt-xml-validate "$V/snapshots/s200/snapshot.xml" domainsnapshot >/dev/null 2>&1 ||
    fail "snapshot.xml at 200 images does not validate"
[ "$(grep -c '<backingStore type=.file.>' "$V/domain.xml")" = 199 ] ||
    fail "domain.xml does not spell out a chain of 200 images"
before=$(tree_state "$V")
expect_fail "take past the deepest chain" "Too many links" mkdir "$M/deep/snapshots/s201"
[ "$(tree_state "$V")" = "$before" ] || fail "the refused take changed deep"
grep -q "refused mkdir /deep/snapshots/s201: disk vda is already 200 images deep" "$DAEMON_LOG" ||
    fail "the refusal is not logged with its reason"
# What the guest reads through all 200 images: b001's data.
read_pattern "$V/disks/vda.qcow2" "$(disk_pattern 0)" 0 1M
unmount_fs "$M"
pass "a chain of 200 images validates; a take past it is refused with EMLINK and changes nothing"
