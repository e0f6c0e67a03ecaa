#!/bin/bash
# vmstorefs --check / --repair, the store's fsck, against a corpus of
# damage built with real tools (qemu-img, qemu-io, dd/printf into
# headers, sed on the XML, crash points of vmstorefs-ctl mid-operation
# and mid-merge). One store holds the damage, one kind or a few that do
# not interact per VM (copies of the sample's web1, each its own uuid and
# MAC), so one check reads it all; two small stores hold what needs its
# own: a chain deeper than the limit (found by the mount's cheap check,
# in its log line) and a qemu-img that never returns (the time bound).
#
# For each damage: --check exits 4 and its JSON names the kind and the
# file; nothing runs longer than `timeout` allows; --repair fixes what is
# safe and a second --check reports exactly the unrepairable rest; guest
# data reads as before (qemu-io read -P, qemu-img compare). A sample of
# the kinds is shown missed with its check turned off
# (VMSTOREFS_CHECK_SKIP).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/qimggate.sh"
need qemu-img qemu-io jq perl
need_fuse

CTL=${VMSTOREFS%/*}/vmstorefs-ctl
S=$TMP/store
sample_store "$S"
W=$S/web1

# mkvm NAME: a copy of web1 named NAME, with its own uuid and MAC.
n=16
mkvm() {
    local name=$1 d=$S/$1 hex
    n=$((n + 1))
    hex=$(printf %02x $n)
    cp -a "$W" "$d" || fail "cp $W $d"
    sed -i -e "s|$W/|$d/|g" -e "s|<name>web1</name>|<name>$name</name>|" \
        -e "s|6f1c1e2a-0b7d-4c55-9a3e-1d2b3c4d5e01|6f1c1e2a-0b7d-4c55-9a3e-1d2b3c4d5f$hex|" \
        -e "s|52:54:00:a1:b2:01|52:54:00:a1:c3:$hex|" "$d/domain.xml" "$d"/snapshots/*/snapshot.xml ||
        fail "sed $name"
}
# be64 FILE OFFSET: the big-endian 64-bit number at OFFSET.
be64() {
    local h
    h=$(od -An -tx1 -j"$2" -N8 "$1" | tr -d ' \n')
    echo $((16#$h))
}
# poke FILE OFFSET BYTES: printf-escaped BYTES written over FILE at OFFSET.
poke() {
    printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none || fail "poke $1"
}
# leak IMAGE: one leaked cluster: a cluster past the end, its refcount 1.
leak() {
    local size cl
    size=$(stat -c %s "$1")
    cl=$(((size + 65535) / 65536))
    truncate -s $(((cl + 1) * 65536)) "$1" || fail "truncate $1"
    poke "$1" $(($(be64 "$1" "$(be64 "$1" 48)") + 2 * cl)) '\x00\x01'
}
# db1_store DIR: a store DIR holding a copy of the sample's db1 alone.
db1_store() {
    mkdir -p "$1" && cp -a "$S/db1" "$1/db1" || fail "copy db1 to $1"
    sed -i "s|$S/db1/|$1/db1/|g" "$1/db1/domain.xml" || fail "sed $1"
}
rebase_u() { # IMAGE NAME: the backing name in IMAGE's header, nothing opened
    qemu-img rebase -u -f qcow2 -b "$2" -F qcow2 "$1" || fail "rebase -u $1 $2"
}

# The sample store as made: clean, exit 0.
out=$(timeout 60 "$VMSTOREFS" --check "$S" 2>&1)
st=$?
[ $st -eq 0 ] || fail "--check of the sample store exited $st: $out"
[[ $out == *": clean; 0 repaired, 0 left"* ]] || fail "--check of the sample store says: $out"
pass "the sample store checks clean (exit 0)"

# ---- the corpus ----
mkvm v-hdr            # headers the parser refuses
poke "$S/v-hdr/snapshots/installed/vda.qcow2" 0 'XXXX'               # magic
poke "$S/v-hdr/snapshots/configured/vda.qcow2" 20 '\x00\x00\x00\x28' # cluster_bits 40
truncate -s 50 "$S/v-hdr/disks/vda.qcow2"                            # cut short
mkvm v-esc            # backing names that leave the VM
rebase_u "$S/v-esc/disks/vda.qcow2" "$S/v-esc/snapshots/configured/vda.qcow2" # absolute
rebase_u "$S/v-esc/snapshots/configured/vda.qcow2" ../../../web1/snapshots/installed/vda.qcow2
rebase_u "$S/v-esc/snapshots/installed/vda.qcow2" nbd://localhost/x                  # a protocol
mkvm v-fmt            # no recorded backing format: the extension's magic overwritten
f=$S/v-fmt/disks/vda.qcow2
off=$(LC_ALL=C grep -obUaP '\xe2\x79\x2a\xca' "$f" | head -n 1 | cut -d: -f1)
[ -n "$off" ] || fail "no backing format extension in $f"
poke "$f" "$off" '\x12\x34\x56\x78'
mkvm v-loop           # installed backs onto configured, which backs onto it
rebase_u "$S/v-loop/snapshots/installed/vda.qcow2" ../configured/vda.qcow2
mkvm v-relink         # a snapshot directory renamed by hand: its image relinked
mv "$S/v-relink/snapshots/configured" "$S/v-relink/snapshots/configured2"
mkvm v-nofile         # a snapshot's image deleted: nothing can stand in
rm "$S/v-nofile/snapshots/configured/vda.qcow2"
mkvm v-shared         # a second disk grown from the first disk's snapshot
qemu-img create -q -f qcow2 -F qcow2 -b ../snapshots/installed/vda.qcow2 "$S/v-shared/disks/vdb.qcow2" ||
    fail "create vdb"
perl -0pi -e "s|(<interface)|<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$S/v-shared/disks/vdb.qcow2'/><target dev='vdb' bus='virtio'/></disk>\n    \$1|" \
    "$S/v-shared/domain.xml"
mkvm v-nodisk         # the active image gone; a snapshot's parent that is none
rm "$S/v-nodisk/disks/vda.qcow2"
sed -i 's|<parent><name>installed</name></parent>|<parent><name>nosuch</name></parent>|' \
    "$S/v-nodisk/snapshots/configured/snapshot.xml"
mkvm v-fix            # all repairable: no snapshot.xml, orphans, leaked clusters
rm "$S/v-fix/snapshots/configured/snapshot.xml"
echo notes >"$S/v-fix/snapshots/installed/notes.txt"
qemu-img create -q -f qcow2 "$S/v-fix/snapshots/installed/vdc.qcow2" 1M || fail "create vdc"
mkdir "$S/v-fix/snapshots/.hidden-dead" && cp "$S/v-fix/snapshots/installed/vdc.qcow2" "$S/v-fix/snapshots/.hidden-dead/vda.qcow2"
cp "$S/v-fix/snapshots/installed/vdc.qcow2" "$S/v-fix/disks/vdz.qcow2"
mkdir "$S/v-fix/snapshots/bad name"
f=$S/v-fix/disks/vda.qcow2
leak "$f"
qemu-img convert -O raw "$f" "$TMP/v-fix-active.raw" || fail "v-fix unreadable"
mkvm v-unsafe         # a DOCTYPE with an entity
sed -i '1i <!DOCTYPE domain [<!ENTITY x SYSTEM "/etc/passwd">]>' "$S/v-unsafe/domain.xml"
mkvm v-schema         # not libvirt's schema; a CD-ROM outside the store
sed -i 's|<vcpu>1</vcpu>|<vcpu>one</vcpu>|' "$S/v-schema/domain.xml"
perl -0pi -e "s|(<interface)|<disk type='file' device='cdrom'><source file='/etc/passwd'/><target dev='hdc' bus='ide'/><readonly/></disk>\n    \$1|" \
    "$S/v-schema/domain.xml"
mkvm v-ids            # web1's name, uuid and MAC
sed -i -e "s|<name>v-ids</name>|<name>web1</name>|" \
    -e "s|6f1c1e2a-0b7d-4c55-9a3e-1d2b3c4d5f[0-9a-f]*|6f1c1e2a-0b7d-4c55-9a3e-1d2b3c4d5e01|" \
    -e "s|52:54:00:a1:c3:[0-9a-f]*|52:54:00:a1:b2:01|" "$S/v-ids/domain.xml"
mkvm v-perm           # modes looser than the source; a refcount of 0 for a used cluster
chmod 666 "$S/v-perm/disks/vda.qcow2" "$S/v-perm/snapshots/configured/snapshot.xml"
f=$S/v-perm/snapshots/installed/vda.qcow2
poke "$f" "$(be64 "$f" "$(be64 "$f" 48)")" '\x00\x00'
mkvm v-take           # an operation cut short before its commit (rolled back)
VMSTOREFS_CRASH_AT=take:2 "$CTL" "$S" take v-take cut >/dev/null 2>&1
[ $? -eq 99 ] || fail "the crash point did not stop the take"
mkvm v-merge          # a delete cut short after its commit, before its merge (rolled forward)
VMSTOREFS_CRASH_AT=delete:4 "$CTL" "$S" delete v-merge configured >/dev/null 2>&1
[ $? -eq 99 ] || fail "the crash point did not stop the delete"
grep -qs '"committed":true' "$S"/.vmstorefs/journal/*.json ||
    fail "no committed record left by the delete: $(cat "$S"/.vmstorefs/journal/*.json)"
mkdir "$S/.vmstorefs/tmp/0badc0de"  # a temporary directory no record names
pass "built the corpus"

# expected KIND FILE: the kinds and files the first check must name.
EXPECT=(
    "bad-header v-hdr/snapshots/installed/vda.qcow2"
    "bad-header v-hdr/snapshots/configured/vda.qcow2"
    "bad-header v-hdr/disks/vda.qcow2"
    "backing-escape v-esc/disks/vda.qcow2"
    "backing-escape v-esc/snapshots/configured/vda.qcow2"
    "backing-escape v-esc/snapshots/installed/vda.qcow2"
    "backing-no-format v-fmt/disks/vda.qcow2"
    "backing-loop v-loop/snapshots/"
    "backing-missing v-relink/disks/vda.qcow2"
    "name-mismatch v-relink/snapshots/configured2/snapshot.xml"
    "backing-missing v-nofile/disks/vda.qcow2"
    "snapshot-file-missing v-nofile/snapshots/configured/snapshot.xml"
    "shared-parent v-shared/snapshots/installed/vda.qcow2"
    "disk-missing v-nodisk/disks/vda.qcow2"
    "snapshot-parent v-nodisk/snapshots/configured/snapshot.xml"
    "snapshot-xml-missing v-fix/snapshots/configured/snapshot.xml"
    "orphan v-fix/snapshots/installed/notes.txt"
    "orphan v-fix/snapshots/installed/vdc.qcow2"
    "orphan v-fix/snapshots/.hidden-dead/vda.qcow2"
    "orphan v-fix/disks/vdz.qcow2"
    "orphan v-fix/snapshots/bad name"
    "leaked-clusters v-fix/disks/vda.qcow2"
    "xml-unsafe v-unsafe/domain.xml"
    "xml-schema v-schema/domain.xml"
    "xml-outside v-schema/domain.xml"
    "name-mismatch v-ids/domain.xml"
    "duplicate-name v-ids/domain.xml"
    "duplicate-uuid v-ids/domain.xml"
    "duplicate-mac v-ids/domain.xml"
    "duplicate-name web1/domain.xml"
    "duplicate-uuid web1/domain.xml"
    "duplicate-mac web1/domain.xml"
    "perm-loose v-perm/disks/vda.qcow2"
    "perm-loose v-perm/snapshots/configured/snapshot.xml"
    "image-corrupt v-perm/snapshots/installed/vda.qcow2"
    "journal-unfinished .vmstorefs/journal/"
    "journal-unfinished .vmstorefs/journal/"
    "journal-stray .vmstorefs/tmp/0badc0de"
)
# What no repair may touch: left after --repair, as found.
LEFT_KINDS="bad-header backing-escape backing-no-format backing-loop name-mismatch backing-missing
snapshot-file-missing shared-parent disk-missing snapshot-parent xml-unsafe xml-schema xml-outside
duplicate-name duplicate-uuid duplicate-mac perm-loose image-corrupt"

# check OUT [ARGS...]: vmstorefs --check --json ARGS STORE into OUT, its status in ST.
check() {
    local out=$1
    shift
    ST=0
    timeout 120 "$VMSTOREFS" --check --json "$@" "$S" >"$out" 2>"$out.err" || ST=$?
    [ "$ST" -ne 124 ] || fail "vmstorefs --check $* hung"
    jq -e . "$out" >/dev/null || fail "--check $* printed no JSON: $(head -c 500 "$out") $(cat "$out.err")"
}
# findings OUT: "kind relative-file" per finding.
findings() {
    jq -r --arg root "$S/" '.findings[] | "\(.kind) \(.file | ltrimstr($root))"' "$1"
}
# has OUT KIND FILE-PREFIX: a finding of KIND whose file starts so.
has() {
    local k f
    while read -r k f; do
        [ "$k" = "$2" ] && [[ $f == "$3"* ]] && return 0
    done < <(findings "$1")
    return 1
}
count_kind() { jq --arg k "$2" '[.findings[] | select(.kind == $k)] | length' "$1"; }

# ---- the check finds each one ----
# (Every image's refcounts are counted by the check itself; only the two
# it does not find clean, v-fix's leak and v-perm's refcount, go to
# qemu-img check: what the JSON's counts say.)
before=$(tree_state "$S")
check "$TMP/c1.json"
[ "$ST" -eq 4 ] || fail "--check of the damaged store exited $ST, expected 4"
for e in "${EXPECT[@]}"; do
    has "$TMP/c1.json" "${e%% *}" "${e#* }" || fail "--check did not find ${e%% *} in ${e#* }: $(findings "$TMP/c1.json")"
done
[ "$(count_kind "$TMP/c1.json" journal-unfinished)" -eq 2 ] || fail "expected 2 unfinished journal records"
[ "$(jq .qemu_checks "$TMP/c1.json")" -eq 2 ] || fail "expected 2 qemu-img checks: $(jq -c '[.refcounts_counted, .qemu_checks]' "$TMP/c1.json")"
# Nothing else: web1, db1 and every VM's untouched parts are clean.
got=$(findings "$TMP/c1.json" | wc -l)
[ "$got" -eq ${#EXPECT[@]} ] || fail "--check found $got problems, expected ${#EXPECT[@]}: $(findings "$TMP/c1.json")"
[ "$(tree_state "$S")" = "$before" ] || fail "--check changed the store"
pass "--check finds all ${#EXPECT[@]} problems of the corpus and changes nothing"

# The human report: a line per finding, a summary; vmstorefs-ctl the same.
VMSTOREFS_CHECK_SKIP=leaked-clusters,image-corrupt,check-timeout timeout 60 "$VMSTOREFS" --check "$S" >"$TMP/human" 2>&1
st=$?
[ $st -eq 4 ] || fail "--check (human) exited $st"
grep -q "^v-loop: backing-loop: $S/v-loop/snapshots/" "$TMP/human" ||
    fail "no human line for the loop: $(cat "$TMP/human")"
grep -q "problem(s)" "$TMP/human" || fail "no summary line: $(tail -n 2 "$TMP/human")"
VMSTOREFS_CHECK_SKIP=leaked-clusters,image-corrupt,check-timeout timeout 60 "$CTL" "$S" check --json >"$TMP/ctl.json"
st=$?
[ $st -eq 4 ] || fail "vmstorefs-ctl check exited $st"
[ "$(findings "$TMP/ctl.json" | wc -l)" -eq $((${#EXPECT[@]} - 2)) ] ||
    fail "vmstorefs-ctl check found other problems: $(findings "$TMP/ctl.json")"
pass "the human report and vmstorefs-ctl check agree"

# A sample of the checks turned off: each kind is then missed (so the
# assertions above stand on the check, not on something else).
for k in backing-loop orphan snapshot-xml-missing duplicate-mac journal-unfinished bad-header \
    backing-escape xml-schema perm-loose; do
    VMSTOREFS_CHECK_SKIP=$k,leaked-clusters,image-corrupt,check-timeout check "$TMP/skip.json"
    [ "$(count_kind "$TMP/skip.json" "$k")" -eq 0 ] || fail "$k found with its check off"
done
pass "with its check off, each of a sample of nine kinds goes unfound"

# Usage errors: fsck's 16.
st=0
"$VMSTOREFS" --check >/dev/null 2>&1 || st=$?
[ $st -eq 16 ] || fail "--check without a store exited $st, expected 16"
st=0
"$VMSTOREFS" --check "$S" "$TMP/mnt" >/dev/null 2>&1 || st=$?
[ $st -eq 16 ] || fail "--check with a mount point exited $st, expected 16"
st=0
"$VMSTOREFS" --check "$TMP/nosuch" >/dev/null 2>&1 || st=$?
[ $st -eq 8 ] || fail "--check of no store exited $st, expected 8"
pass "usage errors exit 16, a missing store 8"

# ---- repair ----
qemu-img convert -U -O raw "$S/v-merge/disks/vda.qcow2" "$TMP/v-merge.raw" 2>/dev/null ||
    fail "v-merge unreadable before the repair"
timeout 120 "$VMSTOREFS" --repair --json "$S" >"$TMP/r.json" 2>"$TMP/r.err"
ST=$?
[ $ST -eq 5 ] || fail "--repair exited $ST, expected 5 (some repaired, some left): $(cat "$TMP/r.err")"
for k in journal-unfinished journal-stray snapshot-xml-missing orphan leaked-clusters; do
    left=$(jq --arg k "$k" '[.findings[] | select(.kind == $k and (.repaired | not))] | length' "$TMP/r.json")
    [ "$left" -eq 0 ] || fail "--repair left $k: $(jq -c --arg k "$k" '.findings[] | select(.kind == $k)' "$TMP/r.json")"
done
jq -e '.findings[] | select(.kind == "backing-missing" and (.file | endswith("v-relink/disks/vda.qcow2"))) | .repaired' \
    "$TMP/r.json" >/dev/null || fail "the renamed snapshot's dependent was not relinked"
jq -e '.findings[] | select(.kind == "backing-missing" and (.file | endswith("v-nofile/disks/vda.qcow2"))) | .repaired | not' \
    "$TMP/r.json" >/dev/null || fail "v-nofile's missing image was relinked to something"

check "$TMP/c2.json"
[ "$ST" -eq 4 ] || fail "--check after --repair exited $ST, expected 4 (the unrepairable rest)"
while read -r k f; do
    [[ " "${LEFT_KINDS//$'\n'/ }" " == *" $k "* ]] || fail "after --repair, $k in $f is left"
done < <(findings "$TMP/c2.json")
# Exactly what could not be repaired is left: the first check's list less
# what the repair fixed.
want=$(jq -r --arg root "$S/" '.findings[] | select(.repaired | not) | "\(.kind) \(.file | ltrimstr($root))"' "$TMP/r.json" | sort)
[ "$(findings "$TMP/c2.json" | sort)" = "$want" ] ||
    fail "after --repair the check lists: $(findings "$TMP/c2.json" | sort) -- expected: $want"
pass "--repair fixes what is safe; a second check lists exactly the rest ($(findings "$TMP/c2.json" | wc -l))"

# What the repairs did, on the files and the guest data.
[ -f "$S/lost+found/v-fix/snapshots/installed/notes.txt" ] || fail "notes.txt not in lost+found"
[ -f "$S/lost+found/v-fix/snapshots/.hidden-dead/vda.qcow2" ] || fail "the hidden orphan not in lost+found"
[ -d "$S/lost+found/v-fix/snapshots/bad name" ] || fail "the badly named directory not in lost+found"
[ "$(stat -c %a "$S/lost+found")" = 700 ] || fail "lost+found is not 0700"
[ ! -e "$S/v-fix/disks/vdz.qcow2" ] || fail "vdz.qcow2 still in disks/"
x=$S/v-fix/snapshots/configured/snapshot.xml
[ -f "$x" ] || fail "snapshot.xml not regenerated"
virt-xml-validate "$x" domainsnapshot >/dev/null 2>&1 || fail "the regenerated $x does not validate"
[ "$(snap_parent "$S/v-fix/snapshots/configured")" = installed ] || fail "the regenerated parent is not installed"
grep -Eq "<source file=[\"']$S/v-fix/snapshots/configured/vda.qcow2[\"']/>" "$x" ||
    fail "the regenerated <domain> does not name the frozen image: $(cat "$x")"
qemu-img check -q "$S/v-fix/disks/vda.qcow2" || fail "leaks left in v-fix's active image"
qemu-img compare -q -f raw -F qcow2 "$TMP/v-fix-active.raw" "$S/v-fix/disks/vda.qcow2" ||
    fail "v-fix's active image reads differently after the leak repair"
read_patterns "$S/v-fix/disks/vda.qcow2" 0x11 0 4M "$S/v-fix/disks/vda.qcow2" 0x22 4M 4M \
    "$S/v-fix/disks/vda.qcow2" 0x33 8M 1M
read_patterns "$S/v-relink/disks/vda.qcow2" 0x11 0 4M "$S/v-relink/disks/vda.qcow2" 0x22 4M 4M \
    "$S/v-relink/disks/vda.qcow2" 0x33 8M 1M
[ "$(qemu-img info --output=json "$S/v-relink/disks/vda.qcow2" | jq -r '."backing-filename"')" = \
    ../snapshots/configured2/vda.qcow2 ] || fail "v-relink's active image is not relinked to configured2"
# The merge a crash cut short was finished: the snapshot is gone, the
# disk reads as before.
[ ! -e "$S/v-merge/snapshots/configured" ] || fail "v-merge's configured still there"
qemu-img compare -q -f raw -F qcow2 "$TMP/v-merge.raw" "$S/v-merge/disks/vda.qcow2" ||
    fail "v-merge reads differently after the recovery"
[ ! -e "$S/v-take/snapshots/cut" ] || fail "the take cut short was not rolled back"
read_patterns "$S/v-take/disks/vda.qcow2" 0x11 0 4M "$S/v-take/disks/vda.qcow2" 0x22 4M 4M \
    "$S/v-take/disks/vda.qcow2" 0x33 8M 1M
journal_empty "$S"
pass "orphans in lost+found (0700), snapshot.xml regenerated and valid, leaks freed and relinked data identical, journal finished"

# check_line: the mount's check runs on its own thread once the mount
# serves: wait (up to 20 s) for its line.
check_line() {
    local i
    for ((i = 0; i < 200; i++)); do
        grep -q 'check: ' "$DAEMON_LOG" && return 0
        nap 0.1
    done
    fail "no check line in the mount's log after 20 s: $(cat "$DAEMON_LOG")"
}

# ---- the mount: its check in one log line ----
mount_fs "$S" "$TMP/mnt"
check_line
grep -q "check: .*problem(s) (.*backing-loop" "$DAEMON_LOG" || fail "no check line in the mount's log: $(cat "$DAEMON_LOG")"
[ "$(grep -c 'check: ' "$DAEMON_LOG")" -eq 1 ] || fail "more than one check line: $(grep 'check: ' "$DAEMON_LOG")"
# Beside the mount, a check takes the VMs' locks shared and finds the same.
VMSTOREFS_CHECK_SKIP=leaked-clusters,image-corrupt,check-timeout check "$TMP/c3.json"
[ "$ST" -eq 4 ] && [ "$(findings "$TMP/c3.json" | wc -l)" -eq "$(jq '[.findings[] | select(.kind != "image-corrupt")] | length' "$TMP/c2.json")" ] ||
    fail "the check beside the mount says otherwise: $(findings "$TMP/c3.json")"
unmount_fs "$TMP/mnt"
pass "the mount logs its cheap check in one line; a check beside the mount agrees"

# fsck_exits WANT WHAT OUT VMSTOREFS-ARGS...: vmstorefs ARGS (under a
# 120 s timeout) exits WANT, its stdout in OUT, its stderr in OUT.err.
fsck_exits() {
    local want=$1 what=$2 out=$3 st=0
    shift 3
    timeout 120 "$VMSTOREFS" "$@" >"$out" 2>"$out.err" || st=$?
    [ "$st" -eq "$want" ] || fail "$what exited $st, expected $want: $(cat "$out" "$out.err")"
}

# ---- only what --repair fixes: exit 1, then a clean check (exit 0) ----
R=$TMP/fixable
db1_store "$R"
echo junk >"$R/db1/disks/notes"
fsck_exits 1 "--repair of a store with an orphan alone" "$TMP/fixable.out" --repair "$R"
fsck_exits 0 "--check after that repair" "$TMP/fixable.out" --check "$R"
[ -f "$R/lost+found/db1/disks/notes" ] || fail "the orphan is not in lost+found"
read_patterns "$R/db1/disks/vda.qcow2" 0x44 0 2M "$R/db1/disks/vdb.qcow2" 0x55 0 1M
pass "a store whose problems are all repairable: --repair exits 1, the next --check 0"

# ---- kill -9 of the daemon mid-merge (qimggate.sh) ----
# A delete's merge runs in the mount's background worker; its qemu-img is
# held at the gate and the daemon killed: a committed record with its
# merge not done. --check names it; --repair (the journal's recovery, the
# merge run with the real qemu-img) finishes it; the disks read as before.
G=$TMP/gated
db1_store "$G"
"$CTL" "$G" take db1 s1 >/dev/null 2>&1 || fail "take s1"
qemu-io -f qcow2 -c 'write -q -P 0x66 1M 2M' "$G/db1/disks/vda.qcow2" >/dev/null || fail "qemu-io write"
"$CTL" "$G" take db1 s2 >/dev/null 2>&1 || fail "take s2"
for d in vda vdb; do
    qemu-img convert -O raw "$G/db1/disks/$d.qcow2" "$TMP/gated-$d.raw" || fail "convert $d"
done
gate_init
M=$TMP/mnt3
mount_fs "$G" "$M" "${GATE_OPT[@]}"
gate_delete db1
gate_kill_daemon "${GATED[0]}"
wait "$GATE_SYNC" 2>/dev/null
fusermount3 -u -z "$M" 2>/dev/null
grep -qs '"committed":true' "$G"/.vmstorefs/journal/*.json || fail "no committed record after the kill"
fsck_exits 4 "--check after the kill" "$TMP/gated.json" --check --json "$G"
jq -e '.findings[] | select(.kind == "journal-unfinished" and .vm == "db1")' "$TMP/gated.json" >/dev/null ||
    fail "--check did not name the merge the kill left: $(cat "$TMP/gated.json")"
fsck_exits 1 "--repair after the kill" "$TMP/gated.out" --repair "$G"
fsck_exits 0 "--check after that repair" "$TMP/gated.out" --check "$G"
[ ! -e "$G/db1/snapshots/s1" ] || fail "s1 is still there after the recovery"
for d in vda vdb; do
    qemu-img compare -q -f raw -F qcow2 "$TMP/gated-$d.raw" "$G/db1/disks/$d.qcow2" ||
        fail "db1's $d reads differently after the recovery"
done
journal_empty "$G"
pass "kill -9 mid-merge: --check names the record (exit 4; found: $(jq -r '[.findings[].kind] | unique | join(", ")' "$TMP/gated.json")), --repair finishes the merge (exit 1), then clean (exit 0), the disks identical"

# ---- a repair keeps off an image a mount has open for writing ----
# (a plain handle: the writer mark every mount takes, vmlock.h, not
# qemu's locks). The leak is found and left until the handle is closed.
R2=$TMP/open
db1_store "$R2"
leak "$R2/db1/disks/vda.qcow2"
mount_fs "$R2" "$TMP/mnt2"
exec 7<>"$TMP/mnt2/db1/disks/vda.qcow2" || fail "cannot open the active image through the mount"
fsck_exits 4 "--repair with the image open for writing" "$TMP/open.json" --repair --json "$R2"
jq -e '.findings[] | select(.kind == "leaked-clusters" and (.repaired | not) and (.action | test("open for writing")))' \
    "$TMP/open.json" >/dev/null || fail "the leak was not left for the open handle: $(cat "$TMP/open.json")"
exec 7>&-
fsck_exits 1 "--repair once the handle is closed" "$TMP/open.out" --repair "$R2"
unmount_fs "$TMP/mnt2"
pass "a repair leaves an image open for writing through a mount alone, and repairs it once closed"

# ---- a chain deeper than the limit, found by the mount's check ----
D=$TMP/deep
mkdir -p "$D/deep/disks" "$D/deep/snapshots/.hidden-0000"
qemu-img create -q -f qcow2 "$D/deep/snapshots/.hidden-0000/vda.qcow2" 1M &&
    qemu-img create -q -f qcow2 -u -F qcow2 -b ../.hidden-0000/vda.qcow2 "$TMP/mid.qcow2" 1M &&
    qemu-img create -q -f qcow2 -u -F qcow2 -b ../snapshots/.hidden-1025/vda.qcow2 "$D/deep/disks/vda.qcow2" 1M ||
    fail "qemu-img create (deep)"
# 1025 links, each the template with its number: one perl, no process each.
perl -e '
    local $/; open(my $t, "<", $ARGV[0]) or die; binmode $t; my $img = <$t>;
    for my $i (1 .. 1025) {
        my $d = sprintf("%s/.hidden-%04d", $ARGV[1], $i);
        mkdir $d or die "$d: $!";
        (my $x = $img) =~ s/hidden-0000/sprintf("hidden-%04d", $i - 1)/e;
        open(my $o, ">", "$d/vda.qcow2") or die; binmode $o; print $o $x; close $o or die;
    }' "$TMP/mid.qcow2" "$D/deep/snapshots" || fail "perl (deep)"
: >"$DAEMON_LOG"
mount_fs "$D" "$TMP/mnt"
check_line
grep -q "check: .*1 chain-too-deep" "$DAEMON_LOG" || fail "the mount's check missed the deep chain: $(grep check: "$DAEMON_LOG")"
unmount_fs "$TMP/mnt"
VMSTOREFS_CHECK_SKIP=leaked-clusters,image-corrupt,check-timeout timeout 60 "$VMSTOREFS" --check --json "$D" >"$TMP/deep.json"
[ $? -eq 4 ] && jq -e --arg f "$D/deep/disks/vda.qcow2" '.findings[] | select(.kind == "chain-too-deep" and .file == $f)' "$TMP/deep.json" >/dev/null ||
    fail "--check missed the deep chain: $(cat "$TMP/deep.json")"
pass "a chain of 1027 images: chain-too-deep, in the mount's line and in --check"

# ---- a qemu-img check that never returns: the time bound ----
T=$TMP/slow
db1_store "$T"
# A leaked cluster in each image: only what the check's own count of the
# refcounts does not find clean goes to qemu-img.
for f in "$T"/db1/disks/*.qcow2; do
    leak "$f"
done
cat >"$TMP/qemu-img" <<EOF
#!/bin/bash
[ "\$1" = check ] && exec sleep 600
exec qemu-img "\$@"
EOF
chmod +x "$TMP/qemu-img"
SECONDS_BEFORE=$SECONDS
timeout 60 "$VMSTOREFS" --check --json --timeout=2 -o qemu_img="$TMP/qemu-img" "$T" >"$TMP/slow.json"
st=$?
[ $st -eq 4 ] || fail "--check with a hanging qemu-img exited $st: $(cat "$TMP/slow.json")"
[ "$(count_kind "$TMP/slow.json" check-timeout)" -eq 2 ] || fail "expected two check-timeout: $(cat "$TMP/slow.json")"
pass "a qemu-img check that hangs is stopped after --timeout (check-timeout, $((SECONDS - SECONDS_BEFORE)) s for two at once)"
