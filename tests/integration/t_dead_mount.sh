#!/bin/bash
# What is left after a daemon dies, or its store goes: a remount on a
# dead mount says how to clear it, and `df` keeps answering when the store
# directory is moved or removed under a live mount.
. "$(dirname "$0")/lib.sh"
need_fuse
need df

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
# (lib.sh's bad_mount would see the dead mount as "something mounted".)
status=0
timeout 20 "$VMSTOREFS" "$S" "$M" -f 2>"$TMP/err" || status=$?
[ "$status" -eq 1 ] || fail "remount on a dead mount: status $status"
[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -qF "run \`fusermount3 -u $M\` first" "$TMP/err" ||
    fail "remount on a dead mount: $(cat "$TMP/err")"
pass "remount on a dead mount: $(cat "$TMP/err")"
fusermount3 -u "$M" || fail "fusermount3 -u of the dead mount"
mount_fs "$S" "$M"
pass "after fusermount3 -u the store mounts again"

df "$M" >/dev/null || fail "df of a live mount"
mv "$S" "$TMP/moved"
df "$M" >/dev/null || fail "df fails once the store directory was moved away"
mv "$TMP/moved" "$S"
rm -r "$S"
out=$(df "$M" 2>&1) || fail "df fails once the store directory was removed: $out"
pass "df answers for the store's file system when the store directory is gone"
unmount_fs "$M"
