# Shared verbs of the integration tests (sourced, not run).
#
# Every test mounts the real filesystem on a temp dir and acts on it with
# the real tools. The EXIT trap unmounts (lazily if it must) and kills any
# daemon the test started, so a failing test never leaves a mount behind.
# Exit codes follow automake: 0 pass, 1 fail, 77 skip.

set -u

: "${VMSTOREFS:?VMSTOREFS must point to the built vmstorefs binary}"
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vmstorefs-test.XXXXXX")
DAEMON_LOG=$TMP/daemon.log
MOUNTED=()
DAEMONS=()

cleanup() {
    local m p
    for m in "${MOUNTED[@]}"; do
        if mountpoint -q "$m" 2>/dev/null || grep -qs " $m " /proc/self/mounts; then
            fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
        fi
    done
    for p in "${DAEMONS[@]}"; do
        kill -9 "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -s "$DAEMON_LOG" ]; then
        echo "--- daemon log ---" >&2
        tail -n 20 "$DAEMON_LOG" >&2
    fi
    exit 1
}
skip() {
    echo "SKIP: $*"
    exit 77
}
pass() {
    echo "ok - $*"
}
need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
    done
}
need_fuse() {
    [ -c /dev/fuse ] || skip "no /dev/fuse"
    need fusermount3 mountpoint qemu-img qemu-io
}

# mount_fs STORE MNT [ARGS...]: start a foreground daemon and wait until the
# mount is there (or the daemon has died). Sets DAEMON_PID.
mount_fs() {
    local store=$1 mnt=$2
    shift 2
    mkdir -p "$mnt"
    "$VMSTOREFS" "$store" "$mnt" -f "$@" >>"$DAEMON_LOG" 2>&1 &
    DAEMON_PID=$!
    DAEMONS+=("$DAEMON_PID")
    MOUNTED+=("$mnt")
    local i
    for i in $(seq 100); do
        mountpoint -q "$mnt" && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon exited before mounting $mnt"
        sleep 0.1
    done
    fail "$mnt not mounted after 10 s"
}

# unmount_fs MNT: unmount and require the daemon to exit with status 0.
unmount_fs() {
    local mnt=$1 status=0
    fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt failed"
    wait "$DAEMON_PID" || status=$?
    [ "$status" -eq 0 ] || fail "daemon exited with status $status after unmount"
}

# expect_fail "what" PATTERN CMD...: CMD must fail and say PATTERN on stderr.
expect_fail() {
    local what=$1 pattern=$2
    shift 2
    local err
    if err=$("$@" 2>&1 >/dev/null); then
        fail "$what: succeeded but should have failed"
    fi
    grep -q -- "$pattern" <<<"$err" || fail "$what: expected '$pattern', got: $err"
}

# A tree listing with checksums: proves an operation changed nothing.
# tree_state DIR: names, sizes, modes, owners, mtimes and contents, to
# compare before and after something that must change nothing.
tree_state() {
    (cd "$1" && find . -printf '%p %s %m %U:%G %T@\n' | sort && find . -type f -exec sha256sum {} + | sort)
}

# bad_mount STORE MNT "what" PATTERN CMD...: CMD (vmstorefs with its
# arguments) must exit non-zero within 20 s with exactly one line on
# stderr matching PATTERN, mount nothing on MNT and leave STORE as it was.
bad_mount() {
    local store=$1 mnt=$2 what=$3 pattern=$4 status=0 before
    shift 4
    before=$(tree_state "$store")
    timeout 20 "$@" >"$TMP/bad.out" 2>"$TMP/bad.err" || status=$?
    [ "$status" -ne 0 ] || fail "$what: exit status 0"
    [ "$status" -ne 124 ] || fail "$what: hung"
    [ "$(wc -l <"$TMP/bad.err")" -eq 1 ] || fail "$what: expected one line, got: $(cat "$TMP/bad.err")"
    grep -q -- "$pattern" "$TMP/bad.err" || fail "$what: expected '$pattern', got: $(cat "$TMP/bad.err")"
    mountpoint -q "$mnt" && fail "$what: something got mounted"
    [ "$(tree_state "$store")" = "$before" ] || fail "$what: the store changed"
    pass "$what: $(cat "$TMP/bad.err")"
}

sample_store() {
    "$TOP_SRCDIR/scripts/make-sample-store" "$1" >/dev/null || fail "make-sample-store failed"
}

# read_pattern IMAGE PATTERN OFFSET LEN: guest-visible data check (qemu-io
# exits non-zero on "Pattern verification failed").
read_pattern() {
    local out
    out=$(qemu-io -r -f qcow2 -c "read -P $2 $3 $4" "$1" 2>&1) ||
        fail "$1: expected pattern $2 at $3+$4: $out"
}

# nbd_hold IMAGE [QEMU-NBD ARGS...]: a qemu-nbd serving IMAGE on a unix
# socket (as a running VM would hold it) until nbd_release. --fork returns
# once the image is open and its locks are taken. Sets NBD_PID.
nbd_hold() {
    local image=$1
    shift
    rm -f "$TMP/nbd.pid" "$TMP/nbd.sock"
    qemu-nbd --fork --persistent --pid-file="$TMP/nbd.pid" -f qcow2 -k "$TMP/nbd.sock" "$@" "$image" ||
        fail "qemu-nbd could not serve $image"
    NBD_PID=$(cat "$TMP/nbd.pid")
    DAEMONS+=("$NBD_PID")
}
nbd_release() {
    kill "$NBD_PID" 2>/dev/null
    local i
    for i in $(seq 50); do
        kill -0 "$NBD_PID" 2>/dev/null || return 0
        sleep 0.1
    done
    fail "qemu-nbd $NBD_PID did not exit"
}

# lock_hold FILE: a process holding a POSIX write lock on all of FILE
# (conflicting with the daemon's OFD locks) until lock_release. Returns
# once the lock is held. Sets LOCK_PID.
lock_hold() {
    rm -f "$TMP/lock.held"
    perl -e '
        use Fcntl;
        sysopen(my $fh, $ARGV[0], O_RDWR | O_CREAT, 0600) or die "$ARGV[0]: $!\n";
        my $fl = pack("ssqqi", F_WRLCK, 0, 0, 0, 0);
        fcntl($fh, F_SETLKW, $fl) or die "lock: $!\n";
        open(my $ok, ">", $ARGV[1]) and close($ok);
        sleep 120;' "$1" "$TMP/lock.held" &
    LOCK_PID=$!
    DAEMONS+=("$LOCK_PID")
    local i
    for i in $(seq 100); do
        [ -e "$TMP/lock.held" ] && return 0
        kill -0 "$LOCK_PID" 2>/dev/null || fail "lock holder on $1 died"
        sleep 0.1
    done
    fail "lock holder never got $1"
}
lock_release() {
    kill "$LOCK_PID"
    wait "$LOCK_PID" 2>/dev/null
}

# snap_parent SNAPDIR: the <parent> named in SNAPDIR/snapshot.xml ("" if none).
snap_parent() {
    perl -0ne 'print $1 if m|<parent>\s*<name>([^<]*)</name>|' "$1/snapshot.xml"
}

# mount_sample: the sample store in $S mounted on $M; $V is web1 there.
mount_sample() {
    S=$TMP/store M=$TMP/mnt
    sample_store "$S"
    mount_fs "$S" "$M"
    V=$M/web1
}
