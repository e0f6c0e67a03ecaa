#!/bin/bash
# Collapsed clones through the mount (SPEC §2 clone rows, issue 9):
# mkdir <vm>/clones/N makes VM N whose disks are standalone qcow2 images
# holding the current state of each chain, whose read-only disk and
# CD-ROM are the source's own files, with a new identity and the lineage;
# <vm>/clones/ lists it as N -> ../../N. mkdir <vm>/snapshots/S/clones/N
# clones the state and definition as at S, also while a qemu holds the
# active image. Refusals (EINVAL, EEXIST, EBUSY) change nothing and log
# one line each. .jobs shows a running clone; the log has a start and an
# end line with the throughput.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate xmllint perl qemu-nbd

S=$TMP/store M=$TMP/mnt
make_vm "$S" src 2 --ro-and-cdrom
mount_fs "$S" "$M"
V=$M/src

xp() { xmllint --xpath "$2" "$1" 2>/dev/null; }

# History: s1 with the disks' first patterns; more data; s2; more data.
mkdir "$V/snapshots/s1" || fail "take s1"
qemu-io -f qcow2 -c 'write -q -P 0x31 2M 1M' "$V/disks/vda.qcow2" >/dev/null || fail "write vda"
mkdir "$V/snapshots/s2" || fail "take s2"
qemu-io -f qcow2 -c 'write -q -P 0x32 4M 1M' "$V/disks/vda.qcow2" >/dev/null || fail "write vda"
qemu-io -f qcow2 -c 'write -q -P 0x33 3M 1M' "$V/disks/vdb.qcow2" >/dev/null || fail "write vdb"
[ -z "$(ls "$V/clones")" ] || fail "clones/ lists something before any clone"

# ---- a clone of the current state ----
n0=$(wc -l <"$DAEMON_LOG")
mkdir "$V/clones/c1" || fail "mkdir clones/c1"
[ -d "$M/c1" ] && [ -f "$S/c1/domain.xml" ] || fail "c1 is not a VM of the store/mount"
[ "$(ls "$V/clones")" = "c1" ] || fail "clones/ lists '$(ls "$V/clones")', not c1"
[ -L "$V/clones/c1" ] && [ "$(readlink "$V/clones/c1")" = "../../c1" ] ||
    fail "clones/c1 is not a symlink to ../../c1"
[ -f "$V/clones/c1/domain.xml" ] || fail "clones/c1 does not resolve to the VM"
for dev in vda vdb; do
    img=$S/c1/disks/$dev.qcow2
    info=$(qemu-img info -U --output=json "$img") || fail "qemu-img info $img"
    grep -q backing-filename <<<"$info" && fail "$img has a backing file"
    qemu-img compare -U "$img" "$S/src/disks/$dev.qcow2" >/dev/null ||
        fail "c1's $dev differs from the source's current state (store)"
    qemu-img compare -U "$M/c1/disks/$dev.qcow2" "$V/disks/$dev.qcow2" >/dev/null ||
        fail "c1's $dev differs from the source's current state (mount)"
    src=$(xp "$S/c1/domain.xml" "string(//disk[target/@dev='$dev']/source/@file)")
    [ "$src" = "$S/c1/disks/$dev.qcow2" ] || fail "c1's $dev source is $src"
    [ "$(xp "$S/c1/domain.xml" "count(//disk[target/@dev='$dev']/backingStore/*)")" = 0 ] ||
        fail "c1's $dev keeps a <backingStore> chain"
done
read_pattern "$M/c1/disks/vda.qcow2" 0x32 4M 1M
read_pattern "$M/c1/disks/vda.qcow2" 0x31 2M 1M
read_pattern "$M/c1/disks/vdb.qcow2" 0x33 3M 1M
for dev in vdc hdc; do
    a=$(xp "$S/src/domain.xml" "string(//disk[target/@dev='$dev']/source/@file)")
    b=$(xp "$S/c1/domain.xml" "string(//disk[target/@dev='$dev']/source/@file)")
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "c1's $dev is $b, not the source's $a (shared, not copied)"
done
[ ! -e "$S/c1/disks/vdc.qcow2" ] && [ ! -e "$S/c1/disks/hdc.qcow2" ] || fail "c1 copied a shared disk"
[ -d "$S/c1/snapshots" ] && [ -z "$(ls -A "$S/c1/snapshots")" ] || fail "c1 has snapshots"
[ -z "$(ls "$M/c1/snapshots")" ] || fail "c1 lists snapshots"
virt-xml-validate "$S/c1/domain.xml" domain >/dev/null || fail "c1's domain.xml does not validate"
for f in "string(/domain/name)" "string(/domain/uuid)" "string(//interface/mac/@address)"; do
    a=$(xp "$S/src/domain.xml" "$f") b=$(xp "$S/c1/domain.xml" "$f")
    [ -n "$b" ] && [ "$a" != "$b" ] || fail "c1 keeps the source's $f ($a)"
done
[ "$(xp "$S/c1/domain.xml" "string(/domain/name)")" = c1 ] || fail "c1's <name> is not c1"
grep -q "source=.src." "$S/c1/domain.xml" || fail "c1's domain.xml records no lineage"
added=$(tail -n +$((n0 + 1)) "$DAEMON_LOG")
grep -q "clone c1 of src: copying 2 disks" <<<"$added" || fail "no clone start line: $added"
grep -q "clone c1 of src: copied .* MiB in .* s (.* MiB/s)" <<<"$added" || fail "no clone end line: $added"
pass "mkdir clones/c1: standalone disks with the current state, shared read-only disk and CD-ROM, new identity, lineage, listed as a link"

# ---- a clone as at a snapshot ----
# s1's definition differs from today's: the current one gets a <description>.
perl -0pi -e 's|</name>|</name>\n  <description>after s2</description>|' "$S/src/domain.xml"
nbd_hold "$S/src/disks/vda.qcow2"
mkdir "$V/snapshots/s1/clones/c2" || fail "mkdir snapshots/s1/clones/c2 while a qemu holds vda"
nbd_release
for dev in vda vdb; do
    qemu-img info -U "$S/c2/disks/$dev.qcow2" | grep -q "backing file" && fail "c2's $dev has a backing file"
    qemu-img compare -U "$S/c2/disks/$dev.qcow2" "$S/src/snapshots/s1/$dev.qcow2" >/dev/null ||
        fail "c2's $dev is not the state at s1"
done
read_pattern "$M/c2/disks/vda.qcow2" 0 2M 1M
grep -q "after s2" "$S/c2/domain.xml" && fail "c2's definition is today's, not s1's"
grep -q 'snapshot=.s1.' "$S/c2/domain.xml" || fail "c2's lineage does not name s1"
virt-xml-validate "$S/c2/domain.xml" domain >/dev/null || fail "c2's domain.xml does not validate"
[ "$(ls "$V/clones" | sort | tr '\n' ' ')" = "c1 c2 " ] || fail "clones/ lists $(ls "$V/clones")"
ls "$V/snapshots/s1" | grep -q clones && fail "s1's listing shows clones"
[ -d "$V/snapshots/s1/clones" ] || fail "s1/clones cannot be entered"
[ -z "$(ls "$V/snapshots/s1/clones")" ] || fail "s1/clones lists something"
a=$(xp "$S/c1/domain.xml" "string(//interface/mac/@address)")
b=$(xp "$S/c2/domain.xml" "string(//interface/mac/@address)")
[ "$a" != "$b" ] || fail "c1 and c2 got the same MAC"
pass "mkdir snapshots/s1/clones/c2: the data and definition as at s1, while a qemu holds the active image"

# ---- refusals ----
before=$(tree_state "$S")
expect_refusal "clone with a bad name" "Invalid argument" "not a valid VM name" mkdir "$V/clones/.bad"
# clones/c1 is listed already: the kernel answers EEXIST itself.
expect_fail "clone onto an existing clone" "File exists" mkdir "$V/clones/c1"
expect_refusal "clone onto the source" "File exists" "src already exists" mkdir "$V/clones/src"
nbd_hold "$S/src/disks/vdb.qcow2"
expect_refusal "clone while a qemu holds vdb" "Device or resource busy" \
    "$S/src/disks/vdb.qcow2 is in use" mkdir "$V/clones/c3"
nbd_release
qemu-io -f qcow2 -c 'sleep 600000' "$V/disks/vda.qcow2" >/dev/null 2>&1 &
QIO=$!
DAEMONS+=("$QIO")
for i in $(seq 100); do
    [ -n "$(ls -l /proc/$QIO/fd 2>/dev/null | grep "$M/src/disks/vda.qcow2")" ] && break
    sleep 0.05
done
expect_refusal "clone while vda is open for writing through the mount" "Device or resource busy" \
    "open for writing through the mount" mkdir "$V/clones/c3"
kill "$QIO"; wait "$QIO" 2>/dev/null
[ "$(tree_state "$S")" = "$before" ] || fail "a refused clone changed the store"
[ ! -e "$M/c3" ] || fail "c3 exists after the refusals"
pass "refusals: EINVAL bad name, EEXIST existing VM, EBUSY qemu holding or writer through the mount; nothing changed, one log line each"

# ---- .jobs while a clone runs, two clones at once ----
qemu-io -f qcow2 -c 'write -q -P 0x44 8M 56M' "$S/src/disks/vda.qcow2" >/dev/null || fail "grow vda"
mkdir "$V/clones/c4" & p4=$!
mkdir "$V/clones/c5" & p5=$!
seen=""
for i in $(seq 200); do
    line=$(grep "^clone src c[45] " "$M/.jobs") && { seen=$line; break; }
    kill -0 $p4 2>/dev/null || kill -0 $p5 2>/dev/null || break
    sleep 0.01
done
wait $p4 || fail "clone c4 (two at once)"
wait $p5 || fail "clone c5 (two at once)"
for n in c4 c5; do
    qemu-img compare -U "$S/$n/disks/vda.qcow2" "$S/src/disks/vda.qcow2" >/dev/null || fail "$n's vda differs"
done
if [ -n "$seen" ]; then
    grep -Eq '^clone src c[45] [0-9]+/[0-9]+ [0-9]+%$' <<<"$seen" || fail ".jobs line: $seen"
    pass "two clones of one VM at once both succeed; .jobs showed: $seen"
else
    pass "two clones of one VM at once both succeed (too fast for .jobs to show)"
fi

# rm clones/N forgets the lineage; N stays a VM with its data. rm -r of a
# clone deletes that VM only, and it leaves its source's clones/.
c4state=$(tree_state "$S/c4/disks")
rm "$V/clones/c4" || fail "rm clones/c4"
sleep 1.1 # the kernel's entry for clones/c4 ages out
[ -e "$V/clones/c4" ] && fail "clones/c4 still listed after rm"
ls "$V/clones" | grep -qx c4 && fail "clones/ still lists c4"
grep -q "vmstorefs:clone" "$S/c4/domain.xml" && fail "c4 still records its lineage"
[ "$(tree_state "$S/c4/disks")" = "$c4state" ] && virt-xml-validate "$S/c4/domain.xml" domain >/dev/null ||
    fail "rm clones/c4 changed c4's data or broke its definition"
expect_fail "rm clones/c4 again" "No such file" rm "$V/clones/c4"
rm -r "$M/c5" || fail "rm -r of the clone c5"
[ ! -e "$S/c5" ] || fail "rm -r c5 left STORE/c5"
sleep 1.1
ls "$V/clones" | grep -qx c5 && fail "clones/ still lists the deleted c5"
[ -d "$S/src/disks" ] || fail "deleting the clone touched its source"
pass "rm clones/N forgets the lineage and keeps N; rm -r of a clone deletes it and its entry in clones/"

# rmdir clones/ with clones in it: accepted, nothing changes, still listed.
before=$(tree_state "$S")
rmdir "$V/clones" || fail "rmdir clones with clones in it"
[ "$(tree_state "$S")" = "$before" ] || fail "rmdir clones changed the store"
ls "$V/clones" | grep -qx c1 || fail "clones/ no longer lists c1 after rmdir clones"
# The source of clones that share its read-only disk and CD-ROM is not
# deleted from under them (EBUSY, nothing changes; the clone still reads).
# (rmdir: rm -r would first remove src's entries one by one, each as it
# alone means, before the rmdir that is refused.)
expect_fail "rmdir of a VM whose clones share its files" "Device or resource busy" rmdir "$V"
after=$(tree_state "$S")
[ "$after" = "$before" ] || fail "the refused rmdir of src changed the store: $(diff <(echo "$before") <(echo "$after") | head -n 6)"
read_pattern "$(xp "$S/c1/domain.xml" 'string(//disk[readonly]/source/@file)')" 0x7e 0 1M
pass "rmdir clones/ changes nothing; a VM whose clones share its files is not deleted (EBUSY)"

# nvram: the clone gets its own copy, inside its own directory.
mkdir -p "$S/src/nvram" && head -c 128k /dev/urandom >"$S/src/nvram/src_VARS.fd" &&
    sed -i "s|</os>|<nvram>$S/src/nvram/src_VARS.fd</nvram></os>|" "$S/src/domain.xml" ||
    fail "cannot give src an nvram"
virt-xml-validate "$S/src/domain.xml" domain >/dev/null || fail "src with nvram does not validate"
mkdir "$V/clones/nv" || fail "clone nv of a VM with nvram"
nv=$(xp "$S/nv/domain.xml" 'string(//os/nvram)')
case $nv in "$S/nv/"*) ;; *) fail "nv's nvram is $nv, not in nv's own directory" ;; esac
cmp "$nv" "$S/src/nvram/src_VARS.fd" || fail "nv's nvram is not a copy of src's"
virt-xml-validate "$S/nv/domain.xml" domain >/dev/null || fail "nv does not validate"
pass "a clone gets its own copy of the source's nvram"

# A partial snapshot: a disk that left s1 is left out of a clone as at s1
# (oVirt's behaviour), logged; the clone is a valid VM with the rest.
rm "$V/snapshots/s1/vdb.qcow2" || fail "rm s1/vdb.qcow2"
sync "$V" || fail "sync src (the merge of s1's vdb image)"
mkdir "$V/snapshots/s1/clones/part" || fail "clone part at the partial s1"
[ -e "$S/part/disks/vda.qcow2" ] && [ ! -e "$S/part/disks/vdb.qcow2" ] ||
    fail "part: $(ls "$S/part/disks"): not vda alone"
[ "$(xp "$S/part/domain.xml" 'count(//disk[target/@dev="vdb"])')" = 0 ] || fail "part's domain.xml still has vdb"
virt-xml-validate "$S/part/domain.xml" domain >/dev/null || fail "part does not validate"
grep -q "clone part of src at s1: disk vdb is not in the snapshot, left out" "$DAEMON_LOG" ||
    fail "no log line for the disk left out"
pass "a clone of a partial snapshot leaves out the disk the snapshot lacks, and says so"
[ -z "$(cat "$M/.jobs")" ] || fail ".jobs not empty after the clones: $(cat "$M/.jobs")"
# ---- Ctrl-C on the mkdir stops the copy and leaves nothing ----
qemu-io -f qcow2 -c 'write -q -P 0x55 0 64M' "$S/src/disks/vdb.qcow2" >/dev/null || fail "fill vdb"
qemu-img resize -q "$S/src/disks/vda.qcow2" 3G && 
    qemu-io -f qcow2 -c 'write -q -P 0x66 64M 1500M' "$S/src/disks/vda.qcow2" >/dev/null || fail "grow vda"
# (The journal's own directories change: the clone had begun a record.)
before=$(tree_state "$S/src")
n0=$(wc -l <"$DAEMON_LOG")
mkdir "$V/clones/big" & pb=$!
for i in $(seq 500); do
    grep -q "^clone src big " "$M/.jobs" && break
    sleep 0.01
done
grep -q "^clone src big " "$M/.jobs" || fail "the long clone never showed in .jobs"
# A background job of a script ignores SIGINT: SIGTERM is as fatal, and
# the kernel sends the daemon the same FUSE interrupt for it.
kill -TERM $pb
wait $pb && fail "the interrupted mkdir succeeded"
for i in $(seq 50); do
    grep -q "refused mkdir /src/clones/big: interrupted" "$DAEMON_LOG" && break
    sleep 0.1
done
tail -n +$((n0 + 1)) "$DAEMON_LOG" | grep -q "refused mkdir /src/clones/big: interrupted" ||
    fail "no log line for the interrupted clone: $(tail -n +$((n0 + 1)) "$DAEMON_LOG")"
[ ! -e "$S/big" ] && [ -z "$(ls -A "$S/.vmstorefs/tmp")" ] || fail "the interrupted clone left files"
pgrep -f "qemu-img convert.*/big/disks/" >/dev/null && fail "qemu-img still runs after the interrupt"
[ "$(tree_state "$S/src")" = "$before" ] || fail "the interrupted clone changed the source"
journal_empty "$S"
[ -z "$(cat "$M/.jobs")" ] || fail ".jobs not empty after the interrupt"
pass "Ctrl-C on a running clone: EINTR, qemu-img stopped, nothing left, the source untouched"

check_store "$S"
pass "the store is sound after the clones"
