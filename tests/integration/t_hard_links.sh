#!/bin/bash
# An image whose file has another name (a hard link: another VM's image,
# a copy made with ln) is never written through the store's operations:
# whoever holds that name reads, and may write, the same data.
#   - rmdir of a snapshot whose image has one dependent and a second name:
#     the other name counts as a second dependent, so the image is kept
#     hidden instead of being committed into; the data reads as before
#     and the other name's bytes do not change;
#   - once that name is gone, the next mount's garbage pass merges it;
#   - mkdir of a snapshot of a VM whose active image has a second name:
#     EBUSY, with one log line saying why, nothing changed.
. "$(dirname "$0")/lib.sh"
need_fuse
need virt-xml-validate

S=$TMP/store M=$TMP/mnt
sample_store "$S"

# configured (4 MiB) has one dependent, the active image (1 MiB): without
# its second name it would be committed into.
ln "$S/web1/snapshots/configured/vda.qcow2" "$TMP/configured.qcow2" || fail "ln"
sum=$(sha256sum <"$TMP/configured.qcow2")
mount_fs "$S" "$M"
rmdir "$M/web1/snapshots/configured" || fail "rmdir web1/snapshots/configured"
[ ! -e "$M/web1/snapshots/configured" ] || fail "configured is still listed"
[ "$(sha256sum <"$TMP/configured.qcow2")" = "$sum" ] || fail "the other name's file was written"
[ "$(stat -c %h "$TMP/configured.qcow2")" -eq 2 ] || fail "the image's file lost its name in the store"
grep -q "has 2 names (hard links): kept hidden" "$DAEMON_LOG" || fail "no log line for the hard link"
read_pattern "$M/web1/disks/vda.qcow2" 0x11 0 4M
read_pattern "$M/web1/disks/vda.qcow2" 0x22 4M 4M
read_pattern "$M/web1/disks/vda.qcow2" 0x33 8M 1M
check_store "$S"
unmount_fs "$M"
pass "rmdir of a snapshot whose image has a second name: hidden, not committed into"

rm "$TMP/configured.qcow2"
mount_fs "$S" "$M"
# The mount's background worker merges what is left (sync waits for it).
sync "$M/web1" || fail "sync web1 after the remount"
ls -d "$S"/web1/snapshots/.hidden-* >/dev/null 2>&1 && fail "the hidden image stayed with one name and one dependent"
read_pattern "$M/web1/disks/vda.qcow2" 0x22 4M 4M
read_pattern "$M/web1/disks/vda.qcow2" 0x33 8M 1M
check_store "$S"
pass "its second name gone, the next mount merged it"

ln "$S/web1/disks/vda.qcow2" "$TMP/active.qcow2" || fail "ln"
before=$(tree_state "$S")
expect_refusal "mkdir of a snapshot of an active image with a second name" \
    "Device or resource busy" "hard links" mkdir "$M/web1/snapshots/s1"
[ "$(tree_state "$S")" = "$before" ] || fail "the refused take changed the store"
rm "$TMP/active.qcow2"
mkdir "$M/web1/snapshots/s1" || fail "mkdir web1/snapshots/s1 once the second name is gone"
unmount_fs "$M"
check_store "$S"
pass "mkdir of a snapshot of an active image with a second name: EBUSY, nothing changed"
