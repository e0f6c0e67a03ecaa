#!/bin/bash
# How a mount ends and how it starts: SIGTERM, umount and fusermount3 -u
# each end the daemon with status 0 and no mount left; mount.fuse3 starts
# it as mount(8) would, and the detached daemon ends with umount.
# (That a qemu-img child dies with the daemon is test_spawn's job; where
# the daemon logs is t_syslog's.)
. "$(dirname "$0")/lib.sh"
need_fuse
need mount.fuse3 umount

S=$TMP/store M=$TMP/mnt
sample_store "$S"

# ends_cleanly "how" CMD...: mount in the foreground, end it with CMD.
ends_cleanly() {
    local how=$1 status=0
    shift
    mount_fs "$S" "$M"
    "$@" || fail "$how: command failed"
    wait "$DAEMON_PID" || status=$?
    [ "$status" -eq 0 ] || fail "$how: daemon exited with status $status"
    mountpoint -q "$M" && fail "$how: still mounted"
    pass "$how ends the daemon with status 0 and unmounts"
}
send_sigterm() { kill -TERM "$DAEMON_PID"; }
send_sighup() { kill -HUP "$DAEMON_PID"; }
ends_cleanly "SIGTERM" send_sigterm
ends_cleanly "SIGHUP" send_sighup
ends_cleanly "umount" umount "$M"
ends_cleanly "fusermount3 -u" fusermount3 -u "$M"

# mount.fuse3 runs the daemon the way mount(8) does for fuse.vmstorefs
# (fstab-only words included); the daemon detaches.
bindir=$TMP/bin
mkdir -p "$bindir" "$M"
ln -s "$VMSTOREFS" "$bindir/vmstorefs"
PATH="$bindir:$PATH" mount.fuse3 "$S" "$M" -t fuse.vmstorefs -o defaults,nofail,_netdev,noauto ||
    fail "mount.fuse3 failed"
mountpoint -q "$M" || fail "mount.fuse3 did not mount"
cmp "$M/web1/domain.xml" "$S/web1/domain.xml" || fail "mount.fuse3 mount does not serve the store"
grep -q "^$S $M fuse.vmstorefs " /proc/self/mounts || fail "mount type is not fuse.vmstorefs"
daemon=$(pgrep -f "^$bindir/vmstorefs $S $M" || pgrep -f "vmstorefs $S $M")
[ -n "$daemon" ] || fail "no detached daemon found"
umount "$M" || fail "umount of the mount.fuse3 mount"
for i in $(seq 50); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon" 2>/dev/null && fail "detached daemon still running after umount"
pass "mount.fuse3 STORE MNT -t fuse.vmstorefs mounts, umount ends the detached daemon"
