#!/bin/bash
# A backing chain that leaves the store is never served: frozen images
# whose backing name is absolute, climbs out with ../../, is json:{...} or
# nbd://, has no recorded format, or loops are each logged once; `current`
# never points at their snapshot; opening the images (frozen or the active
# one above) through the mount fails with EACCES, so qemu-img info and
# convert fail without reading the file outside the store or connecting
# to the planted nbd address. Good VMs keep being served.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/watchout.sh"
need_fuse
need python3

S=$TMP/store M=$TMP/mnt O=$TMP/outside
sample_store "$S"
mkdir -p "$O"
qemu-img create -q -f raw "$O/outside.raw" 1M
qemu-io -f raw -c "write -q -P 0x5a 0 1M" "$O/outside.raw" >/dev/null

# A watcher: every open or read of a file in $O, and every connection to
# the nbd socket, is written to $TMP/touched.
SOCK=$TMP/nbd.sock
watch_outside "$O" "$TMP/touched" "$SOCK"

# plant VM KIND BACKING FORMAT: a VM whose snapshot s1 image has this
# backing (FORMAT "" = a name with no recorded format), and whose active
# disk grows from s1.
plant() {
    local vm=$1 backing=$2 fmt=$3 d=$S/$1/snapshots/s1
    mkdir -p "$d" "$S/$vm/disks"
    sed "s|<name>db1</name>|<name>$vm</name>|; s|$S/db1/disks|$S/$vm/disks|g" \
        "$S/db1/domain.xml" >"$S/$vm/domain.xml"
    echo "<domainsnapshot><name>s1</name><creationTime>1700000000</creationTime></domainsnapshot>" >"$d/snapshot.xml"
    (cd "$d" && qemu-img create -q -f qcow2 -u -b "$backing" -F "${fmt:-qcow2}" vda.qcow2 1M) ||
        fail "cannot plant $vm"
    if [ -z "$fmt" ]; then
        # qemu-img no longer writes a name without a format: rename the
        # format extension (0xE2792ACA) to a type qemu ignores.
        python3 -c 'import sys; d=open(sys.argv[1],"r+b"); h=d.read(4096); i=h.index(bytes.fromhex("e2792aca")); d.seek(i); d.write(bytes.fromhex("0badf0f0"))' "$d/vda.qcow2"
        qemu-img info "$d/vda.qcow2" | grep -q 'backing file format' && fail "format still recorded"
    fi
    (cd "$S/$vm/disks" && qemu-img create -q -f qcow2 -u -b ../snapshots/s1/vda.qcow2 -F qcow2 vda.qcow2 1M)
}
plant abs "$O/outside.raw" raw
plant esc "../../../../outside/outside.raw" raw
plant json "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$O/outside.raw\"}}" raw
plant nbd "nbd+unix:///export?socket=$SOCK" raw
plant nofmt "../../../db1/disks/vda.qcow2" ""
# Another VM's disk: inside the store, but not this VM's to read.
plant cross "../../../db1/disks/vda.qcow2" qcow2
plant loop "../s2/vda.qcow2" qcow2
mkdir -p "$S/loop/snapshots/s2"
sed 's/s1/s2/' "$S/loop/snapshots/s1/snapshot.xml" >"$S/loop/snapshots/s2/snapshot.xml"
(cd "$S/loop/snapshots/s2" && qemu-img create -q -f qcow2 -u -b ../s1/vda.qcow2 -F qcow2 vda.qcow2 1M)
KINDS="abs esc json nbd nofmt cross loop"
# nvx: a good disk, but its definition names db1's nvram.
mkdir -p "$S/db1/nvram" "$S/nvx/disks" && head -c 65536 /dev/urandom >"$S/db1/nvram/db1_VARS.fd"
for d in nvx/disks/vda nvx/disks/vdb cross/disks/vdb; do
    qemu-img create -q -f qcow2 "$S/$d.qcow2" 1M
done
sed "s|<name>db1</name>|<name>nvx</name>|; s|$S/db1/disks|$S/nvx/disks|g; s|</os>|<nvram>$S/db1/nvram/db1_VARS.fd</nvram></os>|" \
    "$S/db1/domain.xml" >"$S/nvx/domain.xml"
grep -q "<nvram>" "$S/nvx/domain.xml" || fail "nvx: no <nvram> planted"
: >"$TMP/touched"

META_DIRS='^\./\.vmstorefs/\(journal\|tmp\) '
store_files() { tree_state "$1" | grep -v "$META_DIRS"; }
mount_fs "$S" "$M"
before=$(tree_state "$S") # the first mount adds .vmstorefs
for vm in $KINDS; do
    ls -l "$M/$vm" "$M/$vm/snapshots/s1" >/dev/null || fail "$vm is not listed"
    [ -f "$M/$vm/snapshots/s1/vda.qcow2" ] || fail "$vm: the frozen image is not listed"
    [ -L "$M/$vm/current" ] && fail "$vm: current points at s1 ($(readlink "$M/$vm/current"))"
    for img in snapshots/s1/vda.qcow2 disks/vda.qcow2; do
        expect_fail "$vm: cat $img" "Permission denied" cat "$M/$vm/$img"
        expect_fail "$vm: qemu-img info $img" "Permission denied" \
            qemu-img info --backing-chain "$M/$vm/$img"
        expect_fail "$vm: qemu-img convert $img" "Permission denied" \
            timeout 10 qemu-img convert -O raw "$M/$vm/$img" "$TMP/$vm.out"
        [ ! -s "$TMP/$vm.out" ] || fail "$vm: convert wrote data"
    done
done
pass "no refused chain is opened, and current never points at one"

declare -A why=([abs]="an absolute name" [esc]="leaves the VM's directory" [json]="a json: name"
    [nbd]="a protocol name" [nofmt]="no recorded backing format" [loop]="loops back to"
    [cross]="leaves the VM's directory")
for vm in $KINDS; do
    n=$(grep -c "image $S/$vm/snapshots/s1/vda.qcow2 is not served: .*${why[$vm]}" "$DAEMON_LOG")
    [ "$n" -eq 1 ] || fail "$vm: the frozen image logged $n times, expected once (${why[$vm]})"
    n=$(grep -c "image $S/$vm/disks/vda.qcow2 is not served: .*${why[$vm]}" "$DAEMON_LOG")
    [ "$n" -eq 1 ] || fail "$vm: the active image logged $n times, expected once"
done
pass "each refused chain is logged once per image, with the reason"

# A clone would copy what the chain reads (the daemon is root): refused,
# as is a clone whose definition names another VM's nvram (the variable
# store of db1, say, with its secure-boot keys).
expect_fail "clone of cross" "Permission denied" mkdir "$M/cross/clones/c"
expect_fail "clone of a VM naming another VM's nvram" "Invalid argument" mkdir "$M/nvx/clones/c"
grep -q "nvram $S/db1/nvram/db1_VARS.fd is not in the directory of VM nvx" "$DAEMON_LOG" ||
    fail "the nvram refusal is not logged with its reason"
[ ! -e "$S/c" ] || fail "a refused clone left $S/c"
pass "a clone reading another VM's disk or nvram is refused"

sleep 0.5 # inotify events are delivered asynchronously
[ ! -s "$TMP/touched" ] || fail "something outside the store was touched: $(cat "$TMP/touched")"
pass "nothing outside the store was opened or read, no nbd connection was made"

read_pattern "$M/web1/disks/vda.qcow2" 0x33 8M 1M
[ "$(readlink "$M/web1/current")" = "snapshots/configured" ] || fail "web1 lost its current"
qemu-img convert -O raw "$M/web1/disks/vda.qcow2" "$TMP/web1.raw" || fail "web1 convert"
pass "good chains are still served"
unmount_fs "$M"
# (The refused clones' records came and went: the journal's and tmp's
# directory times are all they changed.)
[ "$(store_files "$S")" = "$(grep -v "$META_DIRS" <<<"$before")" ] ||
    fail "the store changed: $(diff <(grep -v "$META_DIRS" <<<"$before") <(store_files "$S") | head -5)"

# The watcher sees what it should: without the check, qemu-img would read
# the outside file (shown directly on the store, not through the mount).
qemu-img convert -O raw "$S/abs/snapshots/s1/vda.qcow2" "$TMP/direct.raw" 2>/dev/null
timeout 10 qemu-img convert -O raw "$S/nbd/snapshots/s1/vda.qcow2" "$TMP/direct-nbd.raw" >/dev/null 2>&1
sleep 0.5
grep -q "inotify outside.raw" "$TMP/touched" || fail "the watcher missed a read of the outside file"
grep -q "nbd connection" "$TMP/touched" || fail "the watcher missed an nbd connection"
pass "the watcher sees a direct read and connection (the mount made none)"
