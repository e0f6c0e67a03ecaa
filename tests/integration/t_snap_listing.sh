#!/bin/bash
# Listing many snapshots is cheap: `ls -l` of a snapshots/ directory with
# 1,000 snapshots (each a small snapshot.xml, no images) parses each
# snapshot.xml once; later listings are answered from the cache while the
# files are unchanged. Prints the times measured; asserts only generous
# bounds (1 s for a warm listing) so a loaded machine does not fail it, and
# the daemon's resident memory stays under 64 MiB.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt N=1000
mkdir -p "$S/vm/disks"
printf '<domain type="kvm"><name>vm</name></domain>\n' >"$S/vm/domain.xml"
for i in $(seq -w 1 $N); do
    d=$S/vm/snapshots/s$i
    mkdir -p "$d"
    printf '<domainsnapshot><name>s%s</name><description>snapshot %s</description><creationTime>%d</creationTime><parent><name>s%s</name></parent><disks><disk name="vda" snapshot="external"/></disks></domainsnapshot>\n' \
        "$i" "$i" $((1700000000 + 10#$i)) "$i" >"$d/snapshot.xml"
done
mount_fs "$S" "$M"

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
t=$(date +%s%N); n=$(ls -l "$M/vm/snapshots" | grep -c '^d'); cold=$(ms "$t")
[ "$n" -eq $N ] || fail "ls -l lists $n snapshots, expected $N"
t=$(date +%s%N); ls -l "$M/vm/snapshots" >/dev/null; warm=$(ms "$t")
sleep 1.2 # past the kernel's attribute timeout: every entry is asked again
t=$(date +%s%N); ls -l "$M/vm/snapshots" >/dev/null; daemon_warm=$(ms "$t")
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
echo "ls -l of $N snapshots: cold ${cold} ms, warm ${warm} ms, warm daemon/cold kernel ${daemon_warm} ms; daemon RSS ${rss} KiB"
[ "$warm" -lt 1000 ] || fail "a warm ls -l took $warm ms"
[ "$daemon_warm" -lt 1000 ] || fail "ls -l answered from the daemon's cache took $daemon_warm ms"
[ "$rss" -lt 65536 ] || fail "daemon RSS ${rss} KiB"
# Each snapshot's mtime is its creationTime, from the cached snapshot.xml.
[ "$(stat -c %Y "$M/vm/snapshots/s0042")" -eq 1700000042 ] || fail "mtime of s0042"
pass "ls -l of $N snapshots within bounds"

# A snapshot.xml replaced in the store is seen at once.
printf '<domainsnapshot><name>s0042</name><creationTime>1800000000</creationTime></domainsnapshot>\n' >"$S/vm/.new"
mv "$S/vm/.new" "$S/vm/snapshots/s0042/snapshot.xml"
sleep 1.1
[ "$(stat -c %Y "$M/vm/snapshots/s0042")" -eq 1800000000 ] || fail "a replaced snapshot.xml is not seen"
pass "a replaced snapshot.xml is parsed again"
unmount_fs "$M"
