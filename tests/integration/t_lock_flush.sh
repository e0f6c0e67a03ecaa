#!/bin/bash
# A lock taken through the mount survives the holder running a child:
# the exec closes the child's copy of the descriptor, libfuse turns that
# FLUSH into "unlock the whole file", and passed on to the store it would
# drop the holder's lock (a qemu's image lock, when it runs a helper).
. "$(dirname "$0")/lib.sh"
need_fuse
need perl
[ -x "${HELPERS:-}/setlkw" ] || skip "tests/helpers/setlkw not built"

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"
IMG=$M/db1/disks/vdb.qcow2

# The holder: a write lock, then fork+exec of /bin/true (perl's files are
# close-on-exec), then it holds on until killed.
perl -e '
    use Fcntl;
    open(my $fh, "+<", $ARGV[0]) or die "$ARGV[0]: $!\n";
    my $lk = pack("ssqqi", F_WRLCK, 0, 0, 0, 0);
    fcntl($fh, F_SETLK, $lk) or die "lock: $!\n";
    system("/bin/true") == 0 or die "true: $?\n";
    open(my $ok, ">", $ARGV[1]) and close($ok);
    sleep 600;' "$IMG" "$TMP/held" &
HOLDER=$!
DAEMONS+=("$HOLDER")
for _ in $(seq 50); do
    [ -e "$TMP/held" ] && break
    sleep 0.1
done
[ -e "$TMP/held" ] || fail "the holder did not take its lock"

out=$(timeout 1 "$HELPERS/setlkw" "$IMG" 2>&1)
[ "$out" != locked ] || fail "a second process got the lock after the holder ran a child"
pass "the holder's lock held after it ran a child (the flush unlock was not passed on)"

kill "$HOLDER"
wait "$HOLDER" 2>/dev/null
out=$(timeout 5 "$HELPERS/setlkw" "$IMG" 2>&1 | head -n 1)
[ "$out" = locked ] || fail "the lock was not free after the holder exited: $out"
pass "released with the holder"
unmount_fs "$M"
