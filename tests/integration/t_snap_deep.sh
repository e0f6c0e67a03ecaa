#!/bin/bash
# A take that would make a chain deeper than libvirt can read is refused:
# domain.xml spells each disk's chain out as nested <backingStore>
# elements, and libxml2 reads no more than 256 levels. Up to the limit
# every definition still validates; past it, mkdir fails with EMLINK and
# nothing changes.
. "$(dirname "$0")/lib.sh"
need_fuse
need virt-xml-validate

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"
# web1's active chain holds 3 images (installed, configured, active).
for i in $(seq 4 200); do
    mkdir "$M/web1/snapshots/s$i" || fail "take s$i (chain of $i images) failed"
done
virt-xml-validate "$S/web1/domain.xml" domain >/dev/null 2>&1 || fail "domain.xml at 200 images does not validate"
virt-xml-validate "$S/web1/snapshots/s200/snapshot.xml" domainsnapshot >/dev/null 2>&1 ||
    fail "snapshot.xml at 200 images does not validate"
before=$(tree_state "$S/web1")
expect_fail "take past the deepest chain" "Too many links" mkdir "$M/web1/snapshots/s201"
[ "$(tree_state "$S/web1")" = "$before" ] || fail "the refused take changed web1"
grep -q "refused mkdir /web1/snapshots/s201: disk vda is already 200 images deep" "$DAEMON_LOG" ||
    fail "the refusal is not logged with its reason"
read_pattern "$M/web1/disks/vda.qcow2" 0x33 8M 1M
unmount_fs "$M"
pass "a chain of 200 images validates; a take past it is refused with EMLINK and changes nothing"
