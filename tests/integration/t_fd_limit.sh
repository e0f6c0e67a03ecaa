#!/bin/bash
# Descriptors: the daemon raises its soft open-file limit to the hard one,
# and a user other than root holds at most a quarter of it through the
# mount. One user opening an image thousands of times gets EMFILE itself;
# root keeps listing and opening.
. "$(dirname "$0")/lib.sh"
need_fuse
need perl prlimit setpriv
[ "$(id -u)" -eq 0 ] || skip "needs root (setpriv to another user)"

S=$TMP/store M=$TMP/mnt
sample_store "$S"
chmod 755 "$TMP"
O=$TMP/out
mkdir -m 1777 "$O"
# The daemon starts with soft 256, hard 4096: its cap for a user is 1024.
ulimit -S -n 256 && ulimit -H -n 4096 || fail "cannot set the test's open file limits"
mount_fs "$S" "$M" -o allow_other
F=$M/web1/domain.xml

# opens USER N OUT: USER opens F N times, writes "COUNT ok" or "COUNT
# ERROR" to OUT once done, then keeps the files open until killed.
opens() {
    local who=$1 n=$2 out=$3
    local run=(prlimit --nofile=4096:4096)
    [ "$who" = root ] || run+=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    "${run[@]}" perl -e '
        my ($file, $n, $out) = @ARGV; my @f;
        for (1 .. $n) { open(my $h, "<", $file) or last; push @f, $h }
        my $r = @f == $n ? "ok" : "$!";
        open(my $o, ">", "$out.tmp") or die; print $o scalar(@f), " $r\n"; close $o;
        rename("$out.tmp", $out); sleep 600' "$F" "$n" "$out" &
    OPENER=$!
    DAEMONS+=("$OPENER")
    for i in $(seq 300); do
        [ -s "$out" ] && return 0
        sleep 0.1
    done
    fail "$who: $n opens did not finish"
}

opens nobody 2000 "$O/nobody"
nobody_pid=$OPENER
[ "$(cat "$O/nobody")" = "1024 Too many open files" ] ||
    fail "nobody's 2000 opens: $(cat "$O/nobody") (expected 1024, then EMFILE)"
grep -q "uid 65534 has 1024 files open through the mount, its cap" "$DAEMON_LOG" ||
    fail "the cap is not logged"
pass "a user's opens past a quarter of the daemon's limit get EMFILE"

ls "$M/web1" >/dev/null || fail "root cannot list the mount while nobody holds 1024 files"
opens root 500 "$O/root"
[ "$(cat "$O/root")" = "500 ok" ] ||
    fail "root's 500 opens beside nobody's 1024: $(cat "$O/root") (soft limit not raised?)"
kill "$OPENER"
pass "root still lists and opens, past the daemon's initial soft limit"

kill "$nobody_pid"
wait "$nobody_pid" 2>/dev/null
ok=0
for i in $(seq 50); do
    setpriv --reuid=65534 --regid=65534 --clear-groups cat "$F" >/dev/null 2>&1 && ok=1 && break
    sleep 0.1
done
[ "$ok" -eq 1 ] || fail "nobody cannot open again once its files are closed"
pass "closing files gives the user room again"

unmount_fs "$M"
