#!/bin/bash
# Mounting from fstab: a fuse.vmstorefs line with defaults,nofail,_netdev
# in a test fstab, `mount -T FSTAB MOUNTPOINT`, then `umount`. mount(8)
# runs the helper from its own fixed PATH, so the binary is installed in
# /usr/local/sbin - on a tmpfs over it, in a private mount namespace, so
# the host's /usr/local/sbin is never touched even if the test is killed.
. "$(dirname "$0")/lib.sh"
need_fuse
need mount umount unshare
[ "$(id -u)" -eq 0 ] || skip "mount -T and a private mount namespace need root"

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mkdir -p "$M"
printf '%s\t%s\tfuse.vmstorefs\tdefaults,nofail,_netdev\t0 0\n' "$S" "$M" >"$TMP/fstab"

cat >"$TMP/inner.sh" <<'INNER'
set -u
trap 'umount -l "$M" 2>/dev/null || true' EXIT
say() { echo "$*" >&2; exit 1; }
mount -t tmpfs tmpfs /usr/local/sbin || say "cannot put a tmpfs on /usr/local/sbin"
install -m 0755 "$VMSTOREFS" /usr/local/sbin/vmstorefs
mount -T "$TMP/fstab" "$M" || say "mount -T $TMP/fstab $M failed"
mountpoint -q "$M" || say "not mounted"
grep -q "^$S $M fuse.vmstorefs " /proc/self/mounts || say "mount is not fuse.vmstorefs from $S"
cmp -s "$M/web1/domain.xml" "$S/web1/domain.xml" || say "fstab mount does not serve the store"
qemu-io -r -f qcow2 -c 'read -P 0x33 8M 1M' "$M/web1/disks/vda.qcow2" >/dev/null ||
    say "guest data does not read through the fstab mount"
pgrep -f "vmstorefs $S $M" >/dev/null || say "no daemon"
umount "$M" || say "umount failed"
for i in $(seq 50); do pgrep -f "vmstorefs $S $M" >/dev/null || break; sleep 0.1; done
pgrep -f "vmstorefs $S $M" >/dev/null && say "daemon still running after umount"
mountpoint -q "$M" && say "still mounted after umount"
exit 0
INNER
host_sbin=$(ls -la /usr/local/sbin)
TMP=$TMP S=$S M=$M VMSTOREFS=$VMSTOREFS unshare -m --propagation private bash "$TMP/inner.sh" \
    2>"$TMP/inner.err" || fail "$(cat "$TMP/inner.err")"
[ "$(ls -la /usr/local/sbin)" = "$host_sbin" ] || fail "the host's /usr/local/sbin changed"
pass "mount -T FSTAB mounts fuse.vmstorefs with defaults,nofail,_netdev; umount ends it"
