#!/bin/bash
# Every option the help documents mounts and serves: each kernel mount
# word on its own, our own words as -o, fstab-only words. -o ro writes
# nothing to the store. default_permissions is always on, so with
# allow_other a local user gets exactly what the store's modes allow.
. "$(dirname "$0")/lib.sh"
need_fuse
need setpriv

S=$TMP/store M=$TMP/mnt
sample_store "$S"

# serves_with ARGS...: mount with ARGS, check a read, unmount cleanly.
serves_with() {
    mount_fs "$S" "$M" "$@"
    cmp -s "$M/web1/domain.xml" "$S/web1/domain.xml" || fail "mount with $* does not serve"
    unmount_fs "$M"
}

words=$("$VMSTOREFS" --help | sed -n '/^Mount options passed to the kernel:/,/\.$/p' |
    sed -e 's/^[^:]*: *//' | tr ', ' '\n\n' | sed -e 's/\.$//' -e 's/^\[no\]\(.*\)/\1\nno\1/' | grep .)
[ "$(wc -l <<<"$words")" -ge 15 ] || fail "could not read the mount words from --help: $words"
for w in $words; do
    serves_with -o "$w"
done
pass "each documented kernel mount word mounts: $(echo $words)"

# The words libfuse 3.14 does not pass itself reach the kernel: each
# mount's line in /proc/self/mounts shows it. This kernel shows every one
# (lazytime too); atime shows nothing of its own (it only undoes noatime).
# shows_with OPTS WANT [NOT]: mount with -o OPTS; the options must hold
# WANT and, when given, not NOT.
shows_with() {
    local line
    mount_fs "$S" "$M" -o "$1"
    line=$(grep " $M fuse.vmstorefs " /proc/self/mounts | cut -d' ' -f4)
    grep -qE "(^|,)$2(,|$)" <<<"$line" || fail "-o $1: no $2 in the mount's options: $line"
    [ -z "${3:-}" ] || ! grep -qE "(^|,)$3(,|$)" <<<"$line" || fail "-o $1: $3 still set: $line"
    unmount_fs "$M"
}
shows_with nodiratime nodiratime
shows_with noatime,relatime relatime noatime
shows_with relatime,noatime noatime relatime
shows_with strictatime rw relatime
shows_with noatime,strictatime rw noatime
shows_with lazytime lazytime
shows_with nosymfollow nosymfollow
shows_with nosymfollow,symfollow rw nosymfollow
shows_with atime relatime noatime
shows_with ro,nodiratime ro,nosuid
pass "relatime, nodiratime, strictatime, lazytime, nosymfollow reach the kernel"

serves_with -o foreground,debug
serves_with -o single_thread
serves_with -s -o defaults,_netdev,nofail,auto,noauto,user,users,nouser,owner,comment,x-systemd.automount,comment=x
serves_with -o qemu_img="$(command -v qemu-img)"
pass "-o foreground, debug, single_thread, qemu_img= and the fstab-only words mount"

# fsname=STORE with a comma in the path: escaped for libfuse, whole in the mount table.
C=$TMP/st,ore
sample_store "$C"
mount_fs "$C" "$M"
grep -qF "$C $M fuse.vmstorefs " /proc/self/mounts || fail "fsname of a store with a comma: $(grep " $M " /proc/self/mounts)"
cmp -s "$M/web1/domain.xml" "$C/web1/domain.xml" || fail "store with a comma not served"
unmount_fs "$M"
pass "a store path with a comma mounts and is named whole"

rm -r "$S/.vmstorefs"    # made by the mounts above
mount_fs "$S" "$M" -o ro
[ ! -e "$S/.vmstorefs" ] || fail "-o ro wrote store metadata"
expect_fail "write under -o ro" "Read-only file system" \
    qemu-io -f qcow2 -c 'write -P 0x99 0 64k' "$M/web1/disks/vda.qcow2"
read_pattern "$M/web1/disks/vda.qcow2" 0x33 8M 1M
unmount_fs "$M"
pass "-o ro mounts read-only and writes nothing to the store"

# The rest acts as another user: only root can switch to one.
[ "$(id -u)" -eq 0 ] || skip "the allow_other checks need root (setpriv to another user)"
chmod 600 "$S/db1/disks/vda.qcow2"
chmod 644 "$S/db1/disks/vdb.qcow2"
chmod 755 "$TMP"
mount_fs "$S" "$M" -o allow_other
grep -q "default_permissions" <<<"$(grep " $M " /proc/self/mounts)" || fail "default_permissions not set"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
nobody cat "$M/db1/disks/vdb.qcow2" >/dev/null || fail "another user cannot read a 0644 image"
expect_fail "another user reads a 0600 image" "Permission denied" nobody cat "$M/db1/disks/vda.qcow2"
expect_fail "another user writes a 0644 image" "Permission denied" \
    nobody sh -c "echo x >> '$M/db1/disks/vdb.qcow2'"
unmount_fs "$M"
pass "with allow_other, other users get what the store's modes allow, no more"
