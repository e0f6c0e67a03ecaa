#!/bin/bash
# Snapshot take, rename and revert are atomic across a crash: the daemon
# is made to die (VMSTOREFS_CRASH_AT=<op>:<n>, _exit(99)) at each durable
# point of the operation in turn, on web1 of the sample store and on a
# 2-disk VM with two snapshots. After a remount (recovery runs first) the
# VM must be exactly as before the operation or exactly as a run without
# a crash leaves it: guest data, every file's bytes, the file listing,
# the snapshots and `current` the mount shows; the store sound, journal
# and tmp empty; and once a crash point leaves "after", every later one
# does too (rolled back before the commit, forward from it).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate

S=$TMP/store M=$TMP/mnt
MAX_POINTS=40
crash_sampling

# Fixtures are built where they will run (domain.xml names absolute
# paths) and kept aside as copies.
sample_store "$S"
rm -rf "$S/db1"
mv "$S" "$TMP/fix-web1"

make_vm "$S" two 2
mount_fs "$S" "$M"
mkdir "$M/two/snapshots/S1" || fail "fixture: mkdir S1"
qemu-io -f qcow2 -c 'write -q -P 0x41 1M 512k' "$M/two/disks/vda.qcow2" >/dev/null &&
    qemu-io -f qcow2 -c 'write -q -P 0x42 1M 512k' "$M/two/disks/vdb.qcow2" >/dev/null ||
    fail "fixture: write"
mkdir "$M/two/snapshots/S2" || fail "fixture: mkdir S2"
qemu-io -f qcow2 -c 'write -q -P 0x51 2M 256k' "$M/two/disks/vda.qcow2" >/dev/null ||
    fail "fixture: write"
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
mv "$S" "$TMP/fix-two"


restore() {
    rm -rf "$S" && cp -a "$TMP/fix-$1" "$S" || fail "cannot restore fixture $1"
}

# run_op FIXTURE OP: the operation through the mount.
run_op() {
    case $1/$2 in
        web1/take) mkdir "$M/web1/snapshots/new" ;;
        web1/rename) mv -T "$M/web1/snapshots/configured" "$M/web1/snapshots/conf2" ;;
        web1/revert) ln -sfn snapshots/installed "$M/web1/current" ;;
        two/take) mkdir "$M/two/snapshots/new" ;;
        two/rename) mv -T "$M/two/snapshots/S1" "$M/two/snapshots/base1" ;;
        two/revert) ln -sfn snapshots/S1 "$M/two/current" ;;
    esac
}

# state VM: everything that must be exactly "before" or "after": what the
# guest reads (from the store and through the mount), the snapshots and
# `current` the mount shows, the store's listing and every file's bytes
# (the creation time of a new snapshot masked: it is the clock's).
# (Lines are joined with blanks as paste -sd' ' would; the snapshot.xml
# files are masked and summed by one perl, line by line as sed | sha256sum
# did, printing the same "FILE SUM  -".) disk_state fails in the subshell
# it runs in: its status is passed on (state is itself called as
# VAR=$(state VM) || fail ...).
state() {
    local vm=$1 out f
    local -a xml=()
    out=$(disk_state "$S" "$vm") || return 1
    echo "guest: ${out//$'\n'/ }"
    out=$(disk_state "$M" "$vm") || return 1
    echo "mount: ${out//$'\n'/ }"
    out=$(ls "$M/$vm/snapshots")
    echo "snapshots: ${out//$'\n'/ }"
    echo "current: $(readlink "$M/$vm/current")"
    (cd "$S" && find . -path ./.vmstorefs -prune -o -printf '%p %y\n' | sort &&
        find . -path ./.vmstorefs -prune -o -type f ! -name snapshot.xml -print0 |
        xargs -0 sha256sum | sort -k2 && {
        for f in ./*/snapshots/*/snapshot.xml; do
            [ -e "$f" ] && xml+=("$f")
        done
        if ((${#xml[@]})); then
            perl -MDigest::SHA -ne 'BEGIN { $d = Digest::SHA->new(256) }
                s|<creationTime>[0-9]*</creationTime>|<creationTime/>|;
                $d->add($_);
                if (eof) { print "$ARGV ", $d->hexdigest, "  -\n"; $d = Digest::SHA->new(256) }' "${xml[@]}"
        fi
    })
}

# The loop's steps (crash_loop) for fixture CRASH_FIX and operation
# CRASH_OPN, against the reference states BEFORE and AFTER.
snap_restore() { restore "$CRASH_FIX"; }
snap_run() { run_op "$CRASH_FIX" "$CRASH_OPN"; }
snap_finished() {
    local now
    now=$(state "$CRASH_FIX") || fail "$1: cannot read the state"
    [ "$now" = "$AFTER" ] || fail "$1: finished but the state is not the reference's"
}
snap_recovered() {
    local now
    check_store "$S"
    now=$(state "$CRASH_FIX") || fail "$1: cannot read the state after the crash"
    if [ "$now" = "$BEFORE" ]; then
        CRASH_STATE=B
    elif [ "$now" = "$AFTER" ]; then
        CRASH_STATE=A
    else
        diff <(echo "$BEFORE") <(echo "$now") >&2
        diff <(echo "$AFTER") <(echo "$now") >&2
        fail "$1: after recovery the VM is neither as before nor as after (diffs above)"
    fi
}

crash_op() {
    local fix=$1 op=$2 vm=$1
    CRASH_FIX=$fix CRASH_OPN=$op
    # The reference: the operation without a crash.
    restore "$fix"
    try_mount || fail "$fix/$op: no mount"
    BEFORE=$(state "$vm") || fail "$fix/$op: cannot read the state (before)"
    run_op "$fix" "$op" || fail "$fix/$op: the operation failed without a crash"
    # Read back by a fresh daemon, as every crash point is.
    unmount_fs "$M"
    forget_daemon "$DAEMON_PID"
    try_mount || fail "$fix/$op: no mount"
    AFTER=$(state "$vm") || fail "$fix/$op: cannot read the state (after)"
    [ "$BEFORE" != "$AFTER" ] || fail "$fix/$op: the operation changed nothing"
    check_store "$S"
    unmount_fs "$M"
    forget_daemon "$DAEMON_PID"
    crash_loop "$fix/$op" "$op" snap_restore snap_run snap_finished snap_recovered
}

for fix in web1 two; do
    for op in take rename revert; do
        crash_op "$fix" "$op"
    done
done

