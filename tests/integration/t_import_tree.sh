#!/bin/bash
# vmstorefs-ctl STORE import NEW DIR: a VM with its snapshots from a
# directory of libvirt's XML and images (the core of the import from
# libvirt, t_lvimport.sh, without libvirt). The images are made by
# qemu-img with absolute backing names, as libvirt makes them; the XML is
# what libvirt 9.0's snapshot-dumpxml prints for an external disk-only
# snapshot (<disks> names the overlay made at the snapshot, the embedded
# <domain> the image frozen there).
#
# Imported: s1 <- s2 and b3 a branch off s1, current b3; relative backing
# names in the store, data and tree as made, --check exits 0. Refused,
# each with the store as it was (tree_state) and no qemu-img run (the
# images are checked by the daemon's header parser alone): two snapshot
# images backing onto each other (a loop), a first snapshot's image with
# a backing file, a backing name with no recorded format, an external
# data file, two snapshots of one name, a snapshot whose parent is
# missing, an internal snapshot, one with a memory state, a raw disk, an
# image that is not the qcow2 its definition says.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io xmllint
CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || skip "no vmstorefs-ctl beside $VMSTOREFS"

S=$TMP/store
mkdir -p "$S"
"$CTL" "$S" recover >/dev/null || fail "cannot make $S a store"

# domain NAME FILE [TYPE]: a <domain> whose vda is FILE.
domain() {
    cat <<EOF
<domain type='kvm'><name>$1</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='${3:-qcow2}'/><source file='$2'/>
<target dev='vda' bus='virtio'/></disk></devices></domain>
EOF
}
# snapshot DIR NAME PARENT CTIME OVERLAY FROZEN: DIR/snapshots/NAME.xml.
snapshot() {
    mkdir -p "$1/snapshots"
    {
        echo "<domainsnapshot><name>$2</name><state>shutoff</state>"
        [ -n "$3" ] && echo "<parent><name>$3</name></parent>"
        echo "<creationTime>$4</creationTime><memory snapshot='no'/><disks>"
        echo "<disk name='vda' snapshot='external' type='file'><driver type='qcow2'/>"
        echo "<source file='$5'/></disk></disks>"
        domain lv "$6"
        echo "</domainsnapshot>"
    } >"$1/snapshots/$2.xml"
}
img() { # FILE [BACKING]: a 16M qcow2, its backing name absolute
    if [ -n "${2:-}" ]; then
        qemu-img create -q -f qcow2 -b "$2" -F qcow2 "$1" 16M
    else
        qemu-img create -q -f qcow2 "$1" 16M
    fi || fail "qemu-img create $1"
}
write() { qemu-io -f qcow2 -c "write -q -P $2 $3 1M" "$1" >/dev/null || fail "write $2 to $1"; }

# The good one: s1 (frozen base), s2 (frozen base.s1), b3 off s1 (frozen r1,
# a fresh overlay on base after a revert to s1), active r1.b3.
D=$TMP/good
mkdir -p "$D"
img "$D/base.qcow2" && write "$D/base.qcow2" 0x11 0
img "$D/base.s1" "$D/base.qcow2" && write "$D/base.s1" 0x22 1M
img "$D/base.s2" "$D/base.s1" && write "$D/base.s2" 0x33 2M
img "$D/r1.qcow2" "$D/base.qcow2" && write "$D/r1.qcow2" 0x44 2M
img "$D/r1.b3" "$D/r1.qcow2" && write "$D/r1.b3" 0x55 3M
snapshot "$D" s1 "" 1700000000 "$D/base.s1" "$D/base.qcow2"
snapshot "$D" s2 s1 1700000100 "$D/base.s2" "$D/base.s1"
snapshot "$D" b3 s1 1700000200 "$D/r1.b3" "$D/r1.qcow2"
domain lv "$D/r1.b3" >"$D/domain.xml"
sources() { find "$D" -type f -exec sha256sum {} + | sort; }
sums=$(sources)

before=$(tree_state "$S")
# refuse WHAT ERRNO PATTERN DIR: import of DIR refused, nothing changed.
refuse() {
    expect_fail "$1" "$2: .*$3" "$CTL" "$S" import bad "$4"
    [ "$(tree_state "$S")" = "$before" ] ||
        fail "$1: the store changed: $(diff <(echo "$before") <(tree_state "$S"))"
    pass "$1: refused ($2), the store unchanged"
}
# variant NAME: a copy of the good directory, its XML pointed at the copy.
variant() {
    local v=$TMP/$1 x
    cp -a "$D" "$v"
    find "$v" -name '*.xml' -exec sed -i "s|$D/|$v/|g" {} +
    for x in base.s1:base.qcow2 base.s2:base.s1 r1.qcow2:base.qcow2 r1.b3:r1.qcow2; do
        qemu-img rebase -u -f qcow2 -b "$v/${x#*:}" -F qcow2 "$v/${x%:*}"
    done
    echo "$v"
}

V=$(variant loop)
qemu-img rebase -u -f qcow2 -b "$V/base.s1" -F qcow2 "$V/base.qcow2"
refuse "snapshot images backing onto each other" EACCES "first snapshot of its disk" "$V"
V=$(variant nofmt)
# qemu-img no longer writes a name without a format: the format
# extension (0xE2792ACA) renamed to a type qemu ignores (t_chain_escape).
python3 -c 'import sys; d=open(sys.argv[1],"r+b"); h=d.read(4096); i=h.index(bytes.fromhex("e2792aca")); d.seek(i); d.write(bytes.fromhex("0badf0f0"))' "$V/base.s1"
refuse "a backing name without its format" EACCES "no recorded format" "$V"
V=$(variant datafile)
qemu-img create -q -f qcow2 -o data_file="$V/data.raw" "$V/base.qcow2" 16M
refuse "an external data file" EACCES "external data file" "$V"
V=$(variant orphan)
sed -i 's|<name>s1</name>|<name>s0</name>|' "$V/snapshots/s2.xml"
refuse "a snapshot whose parent is missing" EINVAL "its parent s0 is not among them" "$V"
V=$(variant dup)
cp "$V/snapshots/s2.xml" "$V/snapshots/s2-again.xml"
refuse "two snapshots of one name" EINVAL "two snapshots named s2" "$V"
V=$(variant internal)
sed -i "s|snapshot='external'|snapshot='internal'|" "$V/snapshots/s2.xml"
refuse "an internal snapshot" EINVAL "snapshot s2 is internal" "$V"
V=$(variant memory)
sed -i "s|<memory snapshot='no'/>|<memory snapshot='external' file='$V/s2.mem'/>|" "$V/snapshots/s2.xml"
refuse "a snapshot with a memory state" EINVAL "snapshot s2 has a memory state" "$V"
V=$(variant raw)
domain lv "$V/r1.b3" raw >"$V/domain.xml"
refuse "a disk the definition says is raw" EINVAL "only qcow2 images" "$V"
V=$(variant notqcow2)
head -c 1M /dev/zero >"$V/base.qcow2"
refuse "an image that is not a qcow2" EINVAL "base.qcow2" "$V"
[ "$(sources)" = "$sums" ] || fail "the refusals changed the source"

"$CTL" "$S" import imp "$D" >/dev/null 2>"$TMP/import.err" || fail "import: $(cat "$TMP/import.err")"
[ "$(sources)" = "$sums" ] || fail "the import changed libvirt's files"
journal_empty "$S"
"$VMSTOREFS" --check "$S" >"$TMP/check.out" || fail "--check: $(cat "$TMP/check.out")"
I=$S/imp
for x in s1: s2:s1 b3:s1; do
    got=$(xmllint --xpath 'string(/domainsnapshot/parent/name)' "$I/snapshots/${x%:*}/snapshot.xml")
    [ "$got" = "${x#*:}" ] || fail "${x%:*}'s parent is '$got', not '${x#*:}'"
done
bf() { qemu-img info -U --output=json "$1" | sed -n 's/^ *"backing-filename": "\(.*\)",$/\1/p'; }
[ "$(bf "$I/disks/vda.qcow2")" = ../snapshots/b3/vda.qcow2 ] || fail "active backs onto $(bf "$I/disks/vda.qcow2")"
[ "$(bf "$I/snapshots/b3/vda.qcow2")" = ../s1/vda.qcow2 ] || fail "b3 backs onto $(bf "$I/snapshots/b3/vda.qcow2")"
[ "$(bf "$I/snapshots/s2/vda.qcow2")" = ../s1/vda.qcow2 ] || fail "s2 backs onto $(bf "$I/snapshots/s2/vda.qcow2")"
[ -z "$(bf "$I/snapshots/s1/vda.qcow2")" ] || fail "s1 backs onto $(bf "$I/snapshots/s1/vda.qcow2")"
read_patterns "$I/snapshots/s2/vda.qcow2" 0x11 0 1M "$I/snapshots/s2/vda.qcow2" 0x22 1M 1M \
    "$I/snapshots/s2/vda.qcow2" 0 2M 2M \
    "$I/snapshots/b3/vda.qcow2" 0 1M 1M "$I/snapshots/b3/vda.qcow2" 0x44 2M 1M \
    "$I/disks/vda.qcow2" 0x11 0 1M "$I/disks/vda.qcow2" 0 1M 1M \
    "$I/disks/vda.qcow2" 0x44 2M 1M "$I/disks/vda.qcow2" 0x55 3M 1M
grep -q "<source file=\"$I/disks/vda.qcow2\"/>" "$I/snapshots/b3/snapshot.xml" ||
    fail "b3's overlay is not the store's active image"
! grep -q "<source" <(xmllint --xpath '/domainsnapshot/disks' "$I/snapshots/s2/snapshot.xml") ||
    fail "s2's overlay (a tip a revert left behind) is still named"
pass "imported: s1 <- s2, s1 <- b3 (current), relative backing names, data as made, --check 0"
expect_fail "an import onto an existing VM" "EEXIST" "$CTL" "$S" import imp "$D"

# A partial snapshot (as in libvirt: <disk snapshot='no'>): s1 of vda and
# vdb, s2 of vda only. s2's <domain> names, for vdb, the file vdb was
# using then: the active image, which the store names as disks/vdb.qcow2.
P=$TMP/partial
mkdir -p "$P/snapshots"
img "$P/a.qcow2" && img "$P/a.s1" "$P/a.qcow2" && img "$P/a.s2" "$P/a.s1"
img "$P/b.qcow2" && img "$P/b.s1" "$P/b.qcow2"
write "$P/b.s1" 0x66 0
two() { # VDA VDB: a <domain> with both disks
    domain lv "$1" | sed "s|</devices>|<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$2'/><target dev='vdb' bus='virtio'/></disk></devices>|"
}
psnap() { # NAME PARENT CTIME VDA-OVERLAY VDB-OVERLAY|no DOMAIN-VDA DOMAIN-VDB
    {
        echo "<domainsnapshot><name>$1</name><state>shutoff</state>"
        [ -n "$2" ] && echo "<parent><name>$2</name></parent>"
        echo "<creationTime>$3</creationTime><memory snapshot='no'/><disks>"
        echo "<disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='$4'/></disk>"
        if [ "$5" = no ]; then
            echo "<disk name='vdb' snapshot='no'/>"
        else
            echo "<disk name='vdb' snapshot='external' type='file'><driver type='qcow2'/><source file='$5'/></disk>"
        fi
        echo "</disks>"
        two "$6" "$7"
        echo "</domainsnapshot>"
    } >"$P/snapshots/$1.xml"
}
psnap s1 "" 1700000000 "$P/a.s1" "$P/b.s1" "$P/a.qcow2" "$P/b.qcow2"
psnap s2 s1 1700000100 "$P/a.s2" no "$P/a.s1" "$P/b.s1"
two "$P/a.s2" "$P/b.s1" >"$P/domain.xml"
"$CTL" "$S" import imp2 "$P" >/dev/null 2>"$TMP/import.err" || fail "import of a partial snapshot: $(cat "$TMP/import.err")"
"$VMSTOREFS" --check "$S" >"$TMP/check.out" || fail "--check: $(cat "$TMP/check.out")"
! grep -l "$P/" "$S"/imp2/domain.xml "$S"/imp2/snapshots/*/snapshot.xml || fail "the store's XML names libvirt's files"
[ "$(ls "$S/imp2/snapshots/s2")" = "snapshot.xml
vda.qcow2" ] || fail "s2 holds $(ls "$S/imp2/snapshots/s2")"
grep -q "<source file=\"$S/imp2/disks/vdb.qcow2\"/>" "$S/imp2/snapshots/s2/snapshot.xml" ||
    fail "s2's <domain> does not name vdb's active image"
read_pattern "$S/imp2/disks/vdb.qcow2" 0x66 0 1M
pass "a partial snapshot: s2 without vdb, its <domain> naming vdb's active image; --check 0"

# What the front end refuses before it reaches libvirt or the store.
st=0; "$CTL" "$S" import x "$D" --connect qemu:///system >/dev/null 2>&1 || st=$?
[ $st -eq 2 ] || fail "import NEW DIR --connect URI: exit $st, not 2 (usage)"
st=0; "$CTL" "$S" import x --libvirt >/dev/null 2>&1 || st=$?
[ $st -eq 2 ] || fail "import NEW --libvirt without a domain: exit $st, not 2 (usage)"
expect_fail "export of a VM that is not there" "ENOENT" "$CTL" "$S" export nope
expect_fail "export of a bad name" "EINVAL: not a valid VM name" "$CTL" "$S" export ../imp
pass "usage errors exit 2; export of a missing VM is ENOENT, of a bad name EINVAL"
