#!/bin/bash
# Frozen images and snapshot metadata never change through the mount:
# writes, truncation, creation are EROFS, chmod/chown EPERM, and the store
# is byte-for-byte what it was.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"
before=$(tree_state "$S")
F=$M/web1/snapshots/configured/vda.qcow2

[ "$(stat -c %a "$F")" = 444 ] || fail "frozen image mode is $(stat -c %a "$F"), expected 444"
expect_fail "append to a frozen image" "Read-only file system" sh -c "echo x >> '$F'"
expect_fail "truncate a frozen image" "Read-only file system" truncate -s 0 "$F"
expect_fail "dd into a frozen image" "Read-only file system" dd if=/dev/zero of="$F" bs=4k count=1 conv=notrunc
expect_fail "qemu-io write to a frozen image" "Read-only file system" qemu-io -f qcow2 -c 'write -P 0x99 0 64k' "$F"
expect_fail "chmod a frozen image" "Operation not permitted" chmod 666 "$F"
expect_fail "chown a frozen image" "Operation not permitted" chown 1:1 "$F"
expect_fail "touch a frozen image" "Read-only file system" touch "$F"
pass "frozen images refuse writes, truncation, chmod, chown and touch"

expect_fail "create in a snapshot" "Read-only file system" touch "$M/web1/snapshots/configured/new.qcow2"
expect_fail "create metadata in a snapshot" "Read-only file system" touch "$M/web1/snapshots/configured/snapshot.xml"
# (domain.xml takes a redefine, t_redefine.sh: not this one.)
expect_fail "write domain.xml" "Invalid argument" cp /dev/stdin "$M/web1/domain.xml" <<<'<domain/>'
expect_fail "write .jobs" "Read-only file system\|Permission denied" sh -c "echo x > '$M/.jobs'"
pass "snapshot directories and metadata refuse new files and writes"

# Once the kernel's attributes expire (1 s), an open file is asked about
# by handle alone: it must keep the view's modes (.jobs and frozen
# images read-only; domain.xml its own, as by path), and .jobs must
# still answer at all.
perl -e '
    use Fcntl qw(SEEK_END);
    my @fh;
    for my $f (@ARGV) { open(my $h, "<", $f) or die "open $f: $!"; push @fh, [$f, $h]; }
    select(undef, undef, undef, 1.5);
    for (@fh) {
        my ($f, $h) = @$_;
        # SEEK_END refreshes the expired attributes through the handle;
        # stat then sees what that answer said.
        defined(sysseek($h, 0, SEEK_END)) or die "seek $f: $!\n";
        my @st = stat($h) or die "fstat $f: $!\n";
        my $want = $f =~ /domain\.xml$/ ? (stat($f))[2] & 0777 : $st[2] & 0555;
        die sprintf("fstat %s: mode %o, not %o\n", $f, $st[2] & 0777, $want) if ($st[2] & 0777) != $want;
    }
' "$M/.jobs" "$M/web1/domain.xml" "$F" 2>"$TMP/fstat.err" ||
    fail "open files asked about by handle: $(cat "$TMP/fstat.err")"
pass "open .jobs, domain.xml and frozen images keep the view's modes when asked by handle"

read_pattern "$F" 0x22 4M 4M
[ "$(tree_state "$S")" = "$before" ] || fail "the store changed"
grep -q "refused create /web1/snapshots/configured/new.qcow2: snapshots are read-only" "$DAEMON_LOG" ||
    fail "refusal not logged with its reason"
pass "nothing in the store changed, and refusals are logged"

unmount_fs "$M"
