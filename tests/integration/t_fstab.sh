#!/bin/bash
# Mounting from fstab: a fuse.vmstorefs line with defaults,nofail,_netdev
# in a test fstab, `mount -T FSTAB MOUNTPOINT`, then `umount`. mount(8)
# runs the helper from its own fixed PATH, so the binary is installed in
# /usr/local/sbin for the test (and whatever was there is put back).
. "$(dirname "$0")/lib.sh"
need_fuse
need mount umount
[ "$(id -u)" -eq 0 ] || skip "mount -T needs root"

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mkdir -p "$M"

installed=/usr/local/sbin/vmstorefs
backup=$TMP/vmstorefs.orig
restore_install() {
    rm -f "$installed"
    [ -e "$backup" ] && mv "$backup" "$installed"
    cleanup
}
trap restore_install EXIT
[ -e "$installed" ] && cp -a "$installed" "$backup"
install -D -m 0755 "$VMSTOREFS" "$installed" || fail "cannot install $installed"

printf '%s\t%s\tfuse.vmstorefs\tdefaults,nofail,_netdev\t0 0\n' "$S" "$M" >"$TMP/fstab"
MOUNTED+=("$M")
mount -T "$TMP/fstab" "$M" || fail "mount -T $TMP/fstab $M failed"
mountpoint -q "$M" || fail "not mounted"
grep -q "^$S $M fuse.vmstorefs " /proc/self/mounts || fail "mount is not fuse.vmstorefs from $S"
cmp "$M/web1/domain.xml" "$S/web1/domain.xml" || fail "fstab mount does not serve the store"
read_pattern "$M/web1/disks/vda.qcow2" 0x33 8M 1M
pass "mount -T FSTAB mounts fuse.vmstorefs with defaults,nofail,_netdev"

umount "$M" || fail "umount failed"
for i in $(seq 50); do pgrep -f "vmstorefs $S $M" >/dev/null || break; sleep 0.1; done
pgrep -f "vmstorefs $S $M" >/dev/null && fail "daemon still running after umount"
mountpoint -q "$M" && fail "still mounted after umount"
pass "umount ends the fstab mount and its daemon"
