#!/bin/bash
# Broken things in the store never stop the daemon: a VM with a malformed
# or missing domain.xml is listed and logged once; entries with bad names
# are skipped with a log line; an active image that is not a readable
# qcow2 shows no `current`; a malformed snapshot.xml leaves the snapshot
# listed. Good VMs keep being served.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mkdir -p "$S/badxml/disks" "$S/noxml/disks" "$S/bad name" "$S/-dash" "$S/brokenimg/disks"
printf '<domain><name>badxml</name>' >"$S/badxml/domain.xml"   # not well-formed
echo "stray" >"$S/a-file"
echo "notes" >"$S/web1/disks/notes.txt"
qemu-img create -q -f qcow2 "$S/noxml/disks/vda.qcow2" 16M
cp "$S/db1/domain.xml" "$S/brokenimg/domain.xml"
# A qcow2 header qemu-img refuses (version 99).
printf 'QFI\xfb\x00\x00\x00\x63' >"$S/brokenimg/disks/vda.qcow2"
head -c 4096 /dev/zero >>"$S/brokenimg/disks/vda.qcow2"
printf 'garbage' >"$S/web1/snapshots/installed/snapshot.xml"
# A DOCTYPE with entities is refused, not expanded.
cat >"$S/noxml/domain.xml" <<'XML'
<!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<domain type="kvm"><name>&x;</name></domain>
XML
mv "$S/noxml/domain.xml" "$S/noxml/domain.xml.bak"

# FIFOs where files belong must not hang a lookup (a blocking open would).
mkdir -p "$S/fifovm/disks"
mkfifo "$S/fifovm/domain.xml" "$S/fifovm/disks/vda.qcow2" "$S/web1/snapshots/configured/vdb.qcow2"

mount_fs "$S" "$M"
timeout 20 ls -l "$M" "$M/fifovm" "$M/fifovm/disks" "$M/web1/snapshots/configured" >/dev/null 2>&1
[ $? -ne 124 ] || fail "a FIFO in the store hangs lookups"
expect_fail "open a FIFO domain.xml" "No such file or directory" timeout 20 cat "$M/fifovm/domain.xml"
pass "FIFOs in the store neither hang the mount nor show as files"
for i in 1 2 3; do ls -l "$M" "$M"/* >/dev/null 2>&1; done

[ "$(ls "$M" | tr '\n' ' ')" = "badxml brokenimg db1 fifovm noxml web1 " ] || fail "root lists: $(ls "$M")"
pass "VMs with broken definitions are listed, bad names and stray files are not"

[ "$(grep -c 'VM badxml: .*not well-formed' "$DAEMON_LOG")" -eq 1 ] || fail "malformed domain.xml not logged exactly once"
[ "$(grep -c 'VM noxml has no domain.xml' "$DAEMON_LOG")" -eq 1 ] || fail "missing domain.xml not logged exactly once"
[ ! -e "$M/noxml/domain.xml" ] || fail "noxml shows a domain.xml"
cmp "$M/badxml/domain.xml" "$S/badxml/domain.xml" || fail "malformed domain.xml not served as is"
pass "malformed and missing domain.xml are logged once each"

grep -q "skipping $S/bad name: not a valid name" "$DAEMON_LOG" || fail "bad VM name not logged"
grep -q "skipping $S/-dash: not a valid name" "$DAEMON_LOG" || fail "-dash not logged"
ls "$M/web1/disks" >/dev/null
[ "$(ls "$M/web1/disks")" = "vda.qcow2" ] || fail "disks lists: $(ls "$M/web1/disks")"
grep -q "skipping $S/web1/disks/notes.txt: not a regular <dev>.qcow2 image" "$DAEMON_LOG" ||
    fail "stray file in disks/ not logged"
pass "bad names are skipped with a log line"

ls "$M/brokenimg" >/dev/null
[ ! -L "$M/brokenimg/current" ] || fail "brokenimg shows current"
grep -q "image $S/brokenimg/disks/vda.qcow2 is not served: .*unsupported qcow2 version 99" \
    "$DAEMON_LOG" || fail "unreadable image not logged"
[ "$(grep -c "brokenimg/disks/vda.qcow2 is not served" "$DAEMON_LOG")" -eq 1 ] || fail "logged more than once"
pass "an image that is not a readable qcow2 is logged once and shows no current"

[ -d "$M/web1/snapshots/installed" ] || fail "snapshot with malformed snapshot.xml not listed"
grep -q "snapshot web1/installed: .*not well-formed" "$DAEMON_LOG" || fail "malformed snapshot.xml not logged"
pass "a snapshot with a malformed snapshot.xml is still listed, and logged"

[ -e "$M/noxml/domain.xml" ] && fail "noxml shows a domain.xml it does not have"
mv "$S/noxml/domain.xml.bak" "$S/noxml/domain.xml"
# Looked up as missing just now; no negative caching, so it is there now.
[ -f "$M/noxml/domain.xml" ] || fail "a domain.xml added to the store does not show at once"
ls "$M/noxml" >/dev/null; ls "$M" >/dev/null
grep -q "VM noxml: .*DOCTYPE is refused" "$DAEMON_LOG" || fail "DOCTYPE domain.xml not refused"
pass "XML with a DOCTYPE/entities is refused, never expanded"

read_pattern "$M/web1/disks/vda.qcow2" 0x33 8M 1M
kill -0 "$DAEMON_PID" || fail "daemon died"
pass "the daemon keeps serving good VMs"
unmount_fs "$M"
