#!/bin/bash
# Where the daemon logs: to stderr in the foreground (-f), to syslog once
# it has detached. The syslog side is checked in a private mount
# namespace whose /dev carries a /dev/log socket of the test's own (a perl
# listener), so the host's logging is never touched.
. "$(dirname "$0")/lib.sh"
need_fuse
need unshare perl
[ "$(id -u)" -eq 0 ] || skip "a private mount namespace needs root"

S=$TMP/store M=$TMP/mnt
sample_store "$S"
printf 'garbage' >"$S/web1/snapshots/installed/snapshot.xml"

# Foreground: the warning about the broken snapshot.xml reaches stderr.
mount_fs "$S" "$M"
ls -l "$M/web1/snapshots" >/dev/null
unmount_fs "$M"
grep -q "vmstorefs: snapshot web1/installed: .*not well-formed" "$DAEMON_LOG" ||
    fail "foreground warning not on stderr"
pass "-f logs to stderr"

cat >"$TMP/inner.sh" <<'INNER'
set -eu
dev=$TMP/dev
mkdir -p "$dev"
for n in fuse null zero urandom random; do
    touch "$dev/$n"
    mount --bind "/dev/$n" "$dev/$n"
done
perl -MIO::Socket::UNIX -MSocket -e '
    my ($path, $out) = @ARGV;
    my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path) or die "listen: $!";
    open(my $o, ">>", $out) or die; $o->autoflush(1);
    print $o "listening\n";
    while (defined $s->recv(my $buf, 65536)) { print $o "$buf\n" }
' "$dev/log" "$TMP/syslog.txt" &
listener=$!
trap 'umount -l "$M" 2>/dev/null || true; kill "$listener" 2>/dev/null || true' EXIT
for i in $(seq 50); do [ -S "$dev/log" ] && break; sleep 0.1; done
mount --rbind "$dev" /dev  # rbind: the device binds inside come along
mkdir -p "$M"
"$VMSTOREFS" "$S" "$M" 2>"$TMP/daemon-stderr" || { cat "$TMP/daemon-stderr" >&2; exit 1; }
ls -l "$M/web1/snapshots" >/dev/null
umount "$M"
sleep 0.5
INNER
TMP=$TMP S=$S M=$M VMSTOREFS=$VMSTOREFS unshare -m --propagation private bash "$TMP/inner.sh" ||
    fail "namespace run failed"
grep -q "vmstorefs\[[0-9]*\]: serving $S on $M" "$TMP/syslog.txt" || fail "no start-up line in syslog: $(cat "$TMP/syslog.txt")"
grep -q "vmstorefs\[[0-9]*\]: snapshot web1/installed: .*not well-formed" "$TMP/syslog.txt" ||
    fail "warning did not reach syslog"
[ ! -s "$TMP/daemon-stderr" ] || fail "detached daemon wrote to stderr: $(cat "$TMP/daemon-stderr")"
pass "a detached daemon logs to syslog, not stderr"
