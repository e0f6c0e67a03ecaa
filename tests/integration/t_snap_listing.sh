#!/bin/bash
# Listing many snapshots is cheap: `ls -l` of a snapshots/ directory with
# 1,000 snapshots (each a small snapshot.xml, no images) reads each
# snapshot.xml once; later listings, past the kernel's attribute timeout,
# are answered from the daemon's cache while the files are unchanged (the
# daemon still opens and fstats each, to see that it is unchanged, but
# reads none). What is asserted is what the daemon reads (strace attached
# to it), not how long it takes: the times are printed for the reader, and
# scripts/bench-snapshots measures them against the store's own ls -l. The
# daemon's resident memory stays under 64 MiB.
. "$(dirname "$0")/lib.sh"
need_fuse
need strace

S=$TMP/store M=$TMP/mnt N=1000
mkdir -p "$S/vm/disks"
printf '<domain type="kvm"><name>vm</name></domain>\n' >"$S/vm/domain.xml"
# (one mkdir for all the directories: a process per snapshot costs more
# than the rest of the test here)
dirs=()
for i in $(seq -w 1 $N); do dirs+=("$S/vm/snapshots/s$i"); done
mkdir -p "${dirs[@]}" || fail "making $N snapshot directories"
for i in $(seq -w 1 $N); do
    d=$S/vm/snapshots/s$i
    printf '<domainsnapshot><name>s%s</name><description>snapshot %s</description><creationTime>%d</creationTime><parent><name>s%s</name></parent><disks><disk name="vda" snapshot="external"/></disks></domainsnapshot>\n' \
        "$i" "$i" $((1700000000 + 10#$i)) "$i" >"$d/snapshot.xml"
done
mount_fs "$S" "$M"

# traced_ls OUT: ls -l of the snapshots with strace on every thread of the
# daemon, writing its reads to OUT (with the path of each fd); LS_MS is how long the ls took.
traced_ls() {
    local pid t task
    strace -f -qq -y -e trace=read,pread64,readv -o "$1" -p "$DAEMON_PID" 2>"$1.err" &
    pid=$!
    # Attached when every thread of the daemon has a tracer (not sampled:
    # the ls below starts only then).
    for ((t = 0; t < 500; t++)); do
        for task in /proc/"$DAEMON_PID"/task/*; do
            grep -q '^TracerPid:[[:space:]]*0$' "$task/status" 2>/dev/null && continue 2
        done
        break
    done
    ((t < 500)) || fail "strace did not attach to the daemon: $(cat "$1.err")"
    t=$(date +%s%N)
    ls -l "$M/vm/snapshots" >"$1.ls" || fail "ls -l of the snapshots failed"
    LS_MS=$((($(date +%s%N) - t) / 1000000))
    kill -INT "$pid"
    wait "$pid"
}
# xml_reads OUT: how many snapshot.xml files the daemon read from.
xml_reads() { grep -o '<[^>]*/snapshot\.xml>' "$1" | sort -u | wc -l; }

traced_ls "$TMP/cold"
cold=$LS_MS cold_read=$(xml_reads "$TMP/cold")
n=$(grep -c '^d' "$TMP/cold.ls")
[ "$n" -eq $N ] || fail "ls -l lists $n snapshots, expected $N"
[ "$cold_read" -eq $N ] || fail "the first ls -l read $cold_read snapshot.xml files, expected each of the $N"
sleep 1.2 # past the kernel's attribute timeout: every entry is asked again
traced_ls "$TMP/warm"
warm=$LS_MS warm_read=$(xml_reads "$TMP/warm")
grep -c '^d' "$TMP/warm.ls" | grep -qx $N || fail "the second ls -l does not list $N snapshots"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
echo "ls -l of $N snapshots: first $cold ms ($cold_read snapshot.xml files read), again after the kernel's timeout $warm ms ($warm_read read), both under strace; daemon RSS ${rss} KiB"
[ "$warm_read" -eq 0 ] || fail "ls -l past the kernel's timeout read $warm_read snapshot.xml files: not answered from the daemon's cache"
[ "$rss" -lt 65536 ] || fail "daemon RSS ${rss} KiB"
# Each snapshot's mtime is its creationTime, from the cached snapshot.xml.
[ "$(stat -c %Y "$M/vm/snapshots/s0042")" -eq 1700000042 ] || fail "mtime of s0042"
pass "ls -l of $N snapshots reads each snapshot.xml once, then answers from the cache"

# A snapshot.xml replaced in the store is seen at once.
printf '<domainsnapshot><name>s0042</name><creationTime>1800000000</creationTime></domainsnapshot>\n' >"$S/vm/.new"
mv "$S/vm/.new" "$S/vm/snapshots/s0042/snapshot.xml"
sleep 1.1
[ "$(stat -c %Y "$M/vm/snapshots/s0042")" -eq 1800000000 ] || fail "a replaced snapshot.xml is not seen"
pass "a replaced snapshot.xml is parsed again"
unmount_fs "$M"
