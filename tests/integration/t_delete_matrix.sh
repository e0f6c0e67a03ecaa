#!/bin/bash
# Snapshot deletion through the mount (SPEC: "Deleting snapshot S of disk
# d"), on the CloudStack test matrices: removal cases 1-5, the deletion
# and reversion sequences, renames among hidden images (mv of a hidden
# image's parent or child), many disks, concurrent deletes; then the merge
# direction (pull / commit by allocated size, into the active image and
# into the next snapshot's) and partial snapshots (rm of one image).
# After every step delfix.sh's model checks every remaining image's data
# through the mount and in the store, the listing, <parent>s, `current`,
# the hidden images, the `merge of` log lines, a sound store and no
# orphan image.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delfix.sh"
need_fuse
need virt-xml-validate xmllint perl

S=$TMP/store M=$TMP/mnt
for vm in rmcases delseq revseq part; do
    make_vm "$S" "$vm" 2
done
make_vm "$S" renhide 1
make_vm "$S" revren 1
make_vm "$S" one 1
make_vm "$S" ten 10
for vm in pull-act commit-act pull-snap commit-snap conc1 conc2 conc3 conc4; do
    make_vm "$S" "$vm" 1
done

# The orphan check itself: it passes on a sound VM, on one whose active
# image grows from an image in a dot-named directory, and fails on an
# image nothing needs (in a hidden directory or elsewhere) and on a
# hidden directory left with no image.
X=$TMP/x
make_vm "$X" v 1
check_no_orphans "$X" v
mkdir "$X/v/snapshots/.h" && mv "$X/v/disks/vda.qcow2" "$X/v/snapshots/.h/vda.qcow2" &&
    make_image "$X/v/disks/vda.qcow2" 64M ../snapshots/.h/vda.qcow2 || fail "building a hidden base"
check_no_orphans "$X" v
orphan_caught() {
    local what=$1 err
    err=$( (check_no_orphans "$X" v) 2>&1) && fail "check_no_orphans missed $what"
    grep -q "check_no_orphans: .*$2" <<<"$err" || fail "check_no_orphans on $what said: $err"
    rm -rf "${@:3}"
}
make_image "$X/v/snapshots/.gone/vda.qcow2" 64M
orphan_caught "a hidden image nothing needs" "snapshots/.gone/vda.qcow2 is an image nothing needs" "$X/v/snapshots/.gone"
mkdir -p "$X/v/base" && qemu-img create -q -f raw "$X/v/base/old.raw" 1M
orphan_caught "a raw file nothing needs" "base/old.raw is an image nothing needs" "$X/v/base"
mkdir "$X/v/snapshots/.empty" && touch "$X/v/snapshots/.empty/snapshot.xml"
orphan_caught "an empty hidden directory" "hidden directory .*\.empty/ is left with no image" "$X/v/snapshots/.empty"
check_no_orphans "$X" v
pass "check_no_orphans passes on needed images (hidden ones too) and catches planted orphans"

check_store "$S"
mount_fs "$S" "$M"

# The model's reads can fail too: a write it was not told of shows.
m_init one 1
m_write one
(expect_content "$S/one/disks/vda.qcow2" 0 "" "self-test" one) 2>/dev/null &&
    fail "expect_content missed write 1"
(expect_content "$S/one/disks/vda.qcow2" 1 "1" "self-test" one) 2>/dev/null &&
    fail "expect_content read disk 0 as disk 1"
m_check one "one: after a write"
pass "the model reads what was written, and sees a write it was not told of"

# --- CloudStack "Snapshot Removal" cases 1-5, on a VM of 2 disks.
V=rmcases
m_init $V 2
m_take $V s1 && m_check $V "take s1"
m_take $V s2 && m_check $V "take s2"
m_revert $V s1 && m_check $V "revert to s1"
m_take $V s3 && m_check $V "take s3 after the revert"
m_delete $V s1 rmdir && m_check $V "case 1: rmdir s1 (two dependents)"
[ "$(hidden_images "$S" $V | grep -c .)" -eq 2 ] || fail "case 1: s1's two images are not kept hidden"
pass "case 1: s1 with two dependents (s2, s3) leaves the listing; its images stay hidden"
# The hidden directory is reachable (chains lead there) but is nobody's
# to change: deleting, renaming or cloning it is refused, nothing changes.
H=$(basename "$(hidden_images "$S" $V | head -n 1 | xargs dirname)")
[ -n "$H" ] && [ -r "$M/$V/snapshots/$H/vda.qcow2" ] || fail "the hidden image is not reachable through the mount"
ls "$M/$V/snapshots" | grep -q '^\.' && fail "snapshots/ lists the hidden directory"
before=$(tree_state "$S/$V")
for cmd in "rmdir $M/$V/snapshots/$H" "rm -r $M/$V/snapshots/$H" "rm $M/$V/snapshots/$H/vda.qcow2" \
    "mv $M/$V/snapshots/$H $M/$V/snapshots/h2" "mkdir $M/$V/snapshots/$H/clones/hc"; do
    $cmd 2>/dev/null && fail "$cmd succeeded"
done
[ "$(tree_state "$S/$V")" = "$before" ] && [ ! -e "$S/hc" ] || fail "a refused change to the hidden directory changed the store"
m_check $V "case 1: after the refused changes to $H"
pass "the hidden directory is read-only through the mount: rmdir, rm, mv and a clone of it are refused"
m_delete $V s2 rm && m_check $V "case 2: rm -r s2"
[ -z "$(hidden_images "$S" $V)" ] || fail "case 2: hidden s1 is still there: $(hidden_images "$S" $V)"
pass "case 2: deleting s2 leaves hidden s1 one dependent: it is merged with s3"
m_delete $V s3 rmdir && m_check $V "case 3: rmdir s3 (current)"
pass "case 3: deleting the current s3 merges it with the active images; no current left"
m_take $V a && m_take $V b && m_take $V c && m_check $V "case 4: take a, b, c"
m_delete $V a rm && m_check $V "case 4: rm -r a"
pass "case 4: deleting the first of three merges it with the second"
m_take $V x && m_take $V y && m_revert $V x && m_check $V "case 5: take x, y, revert to x"
m_delete $V y rmdir && m_check $V "case 5: rmdir y"
pass "case 5: deleting a snapshot nothing grows from removes it, with no merge"

# --- CloudStack "Deletion Test", step by step; the VM writes between steps.
V=delseq
m_init $V 2
for s in s1 s2 s3; do
    m_take $V $s && m_check $V "take $s"
done
m_revert $V s2 && m_check $V "revert to s2"
m_take $V s4 && m_check $V "take s4"
m_delete $V s2 rmdir && m_check $V "rmdir s2 (dependents s3, s4)"
[ "$(hidden_images "$S" $V | grep -c .)" -eq 2 ] || fail "$V: s2 is not kept hidden"
m_delete $V s3 rm && m_check $V "rm -r s3: hidden s2 merges with s4"
[ -z "$(hidden_images "$S" $V)" ] || fail "$V: hidden s2 was not merged after s3 went"
m_take $V s5 && m_check $V "take s5"
m_revert $V s4 && m_check $V "revert to s4"
m_write $V && m_check $V "write after the revert"
m_delete $V s4 rmdir && m_check $V "rmdir s4 (dependents s5, the active images)"
[ "$(hidden_images "$S" $V | grep -c .)" -eq 2 ] || fail "$V: s4 is not kept hidden"
m_delete $V s5 rm && m_check $V "rm -r s5: hidden s4 merges with the active images"
[ -z "$(hidden_images "$S" $V)" ] || fail "$V: hidden s4 was not merged after s5 went"
m_delete $V s1 rmdir && m_check $V "rmdir s1, the last one"
pass "deletion sequence: s1 s2 s3, revert s2, s4, rm s2 (hidden), rm s3 (merged), s5, revert s4, rm s4 (hidden), rm s5 (merged), rm s1"

# --- CloudStack "Reversion Test": a revert takes a hidden image's dependent.
V=revseq
m_init $V 2
m_take $V s1 && m_take $V s2 && m_check $V "take s1, s2"
m_revert $V s1 && m_check $V "revert to s1"
m_delete $V s1 rm && m_check $V "rm -r s1 (dependents s2, the active images)"
[ "$(hidden_images "$S" $V | grep -c .)" -eq 2 ] || fail "$V: s1 is not kept hidden"
m_revert $V s2 && m_check $V "revert to s2: hidden s1 merges with s2"
[ -z "$(hidden_images "$S" $V)" ] || fail "$V: hidden s1 was not merged by the revert"
pass "reversion sequence: s1 s2, revert s1, rm s1 (hidden), revert s2 (s1 merged with s2)"

# --- Renames among hidden images (issue 15): a rename rewrites the
# backing name of every image growing from the renamed snapshot's, the
# hidden ones included; otherwise the active disk and the later
# snapshots no longer open, and every operation on the VM is refused.
V=renhide
m_init $V 1
m_take $V s1 && m_take $V s2 && m_take $V s3 && m_revert $V s2 && m_take $V s4
m_delete $V s2 rmdir
m_rename $V s1 t1 && m_check $V "rename after hide: mv s1 t1 (the hidden s2's parent)"
m_rename $V s3 u3 && m_take $V s5 && m_delete $V u3 rm &&
    m_check $V "mv s3 u3 (growing from the hidden s2), take s5, rm -r u3 (s2 merges with s4)"
pass "rename after hide: s1 s2 s3, revert s2, s4, rm s2 (hidden), mv s1 t1, mv s3 u3, s5, rm u3 (merged)"

V=revren
m_init $V 1
m_take $V s0 && m_take $V s1 && m_take $V s2 && m_revert $V s1
m_delete $V s1 rmdir
m_rename $V s0 t0 && m_delete $V t0 rmdir &&
    m_check $V "revert, delete, rename, delete: mv s0 t0 (the hidden s1's parent), rmdir t0"
pass "revert, delete, rename, delete: s0 s1 s2, revert s1, rm s1 (hidden), mv s0 t0, rm t0 (merged with s1)"

# --- Multiple volumes: two snapshots of 1 and 10 disks, deleted one at a time.
for V in one ten; do
    # (one has the self-test's write already)
    [ -n "${M_N[$V]:-}" ] || m_init $V 10
    m_take $V s1 && m_take $V s2 && m_check $V "take s1, s2"
    m_delete $V s1 rmdir && m_check $V "rmdir s1"
    m_delete $V s2 rm && m_check $V "rm -r s2"
    pass "$V: two snapshots of ${M_DISKS[$V]} disk(s) deleted one at a time, each disk merged"
done

# --- Concurrent: four VMs, each deletes its snapshot at the same time.
pids=()
for V in conc1 conc2 conc3 conc4; do
    m_init $V 1
    m_take $V s1
done
n0=$(wc -l <"$DAEMON_LOG")
for V in conc1 conc2 conc3 conc4; do
    rmdir "$M/$V/snapshots/s1" &
    pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || fail "a concurrent rmdir failed"
done
# The journal holds a record while any VM's merge runs: every VM's merges
# are done before any check.
for V in conc1 conc2 conc3 conc4; do
    sync "$M/$V" || fail "sync $V (its merge)"
done
for V in conc1 conc2 conc3 conc4; do
    m_forget $V s1
    merge_lines $V "$n0"
    [ "$MERGE_LINES" = "1 1" ] || fail "$V: concurrent delete logged (started done) $MERGE_LINES"
    m_check $V "concurrent rmdir s1"
done
pass "four VMs delete a snapshot each at the same time: all merged"

# --- Merge direction. F = S's image, C its one dependent (the active
# image, or the next snapshot T's image). The cheaper direction copies
# the smaller one: F 10x C commits C into F, which takes C's place; C 10x
# F pulls F into C (qemu-img rebase onto F's parent).
# F holds 0xa1 on FLEN at 32M; C holds 0xa3 on 64k at 32M (over F's) and
# 0xa2 on CLEN right after F's data. P below holds 0xa0 at 8M.
direction() {
    local vm=$1 want=$2 dep=$3 flen=$4 clen=$5 img=$S/$1/disks/vda.qcow2 line root top n0 got
    qemu-io -f qcow2 -c 'write -q -P 0xa0 8M 1M' "$M/$vm/disks/vda.qcow2" >/dev/null &&
        mkdir "$M/$vm/snapshots/P" &&
        qemu-io -f qcow2 -c "write -q -P 0xa1 32M $flen" "$M/$vm/disks/vda.qcow2" >/dev/null &&
        mkdir "$M/$vm/snapshots/S" &&
        qemu-io -f qcow2 -c 'write -q -P 0xa3 32M 64k' -c "write -q -P 0xa2 $((32 * DEL_MIB + flen)) $clen" \
            "$M/$vm/disks/vda.qcow2" >/dev/null || fail "$vm: building P and S"
    top=disks/vda.qcow2
    if [ "$dep" = snap ]; then
        mkdir "$M/$vm/snapshots/T" &&
            qemu-io -f qcow2 -c 'write -q -P 0xa4 60M 64k' "$M/$vm/disks/vda.qcow2" >/dev/null ||
            fail "$vm: taking T"
        top=snapshots/T/vda.qcow2
    fi
    n0=$(wc -l <"$DAEMON_LOG")
    rmdir "$M/$vm/snapshots/S" || fail "$vm: rmdir S"
    sync "$M/$vm" || fail "$vm: sync (the merge of S)"
    # (All of them in one qemu-io, in this order.)
    local -a reads=()
    for root in "$M" "$S"; do
        reads+=("$root/$vm/$top" 0xa3 32M 64k
            "$root/$vm/$top" 0xa1 $((32 * DEL_MIB + 65536)) $((flen - 65536))
            "$root/$vm/$top" 0xa2 $((32 * DEL_MIB + flen)) "$clen"
            "$root/$vm/$top" 0 $((32 * DEL_MIB + flen + clen)) 1M
            "$root/$vm/$top" 0xa0 8M 1M
            "$root/$vm/$top" "$(disk_pattern 0)" 0 1M
            "$root/$vm/snapshots/P/vda.qcow2" 0xa0 8M 1M
            "$root/$vm/snapshots/P/vda.qcow2" 0 32M 32M
            "$root/$vm/disks/vda.qcow2" 0xa3 32M 64k)
        [ "$dep" = snap ] && reads+=("$root/$vm/disks/vda.qcow2" 0xa4 60M 64k)
        [ "$dep" = snap ] && reads+=("$root/$vm/$top" 0 60M 64k)
    done
    read_patterns "${reads[@]}"
    [ "$(ls -A "$M/$vm/snapshots" | paste -sd' ')" = "$([ "$dep" = snap ] && echo P T || echo P)" ] ||
        fail "$vm: snapshots left: $(ls -A "$M/$vm/snapshots")"
    # The chain below the dependent is P's image, in the images and in
    # domain.xml; the active path is the same file name as ever.
    got=$(image_chain "$S/$vm/$top") || fail "$vm: $top's chain does not open"
    got=$(paste -sd' ' <<<"$got")
    [ "$got" = "$S/$vm/$top $S/$vm/snapshots/P/vda.qcow2" ] || fail "$vm: $top's chain is now $got"
    got=$(xmllint --xpath "//devices/disk[target/@dev='vda']//source/@file" "$S/$vm/domain.xml" |
        sed 's/.*file="\(.*\)"/\1/' | paste -sd' ')
    if [ "$dep" = snap ]; then
        [ "$got" = "$img $S/$vm/snapshots/T/vda.qcow2 $S/$vm/snapshots/P/vda.qcow2" ] ||
            fail "$vm: domain.xml's chain of vda is $got"
        [ "$(snap_parent "$S/$vm/snapshots/T")" = P ] || fail "$vm: T's <parent> is not P"
        [ "$(readlink "$M/$vm/current")" = snapshots/T ] || fail "$vm: current is not T"
    else
        [ "$got" = "$img $S/$vm/snapshots/P/vda.qcow2" ] || fail "$vm: domain.xml's chain of vda is $got"
        [ "$(readlink "$M/$vm/current")" = snapshots/P ] || fail "$vm: current is not P"
    fi
    check_store "$S" "$vm"
    check_overlays "$S" "$vm"
    check_no_orphans "$S" "$vm"
    # (The background merge names the hidden directory S's image went to.)
    line=$(tail -n +$((n0 + 1)) "$DAEMON_LOG" | grep "merge of $vm disk vda (snapshot \.hidden-[0-9a-f]*): ")
    grep -Eq "^(.*: )?merge of $vm disk vda \(snapshot \.hidden-[0-9a-f]+\): direction=$want bytes=[1-9][0-9]* started\$" <<<"$line" ||
        fail "$vm: no 'direction=$want bytes=N started' line: $line"
    grep -Eq "^(.*: )?merge of $vm disk vda \(snapshot \.hidden-[0-9a-f]+\): direction=$want bytes=[1-9][0-9]* done in [0-9.]+ s( .*)?\$" <<<"$line" ||
        fail "$vm: no 'direction=$want bytes=N done in T s' line: $line"
    [ "$(grep -c . <<<"$line")" -eq 2 ] || fail "$vm: expected 2 merge lines, got: $line"
    pass "$vm: F holds $((flen / DEL_MIB))M, C $((clen / DEL_MIB))M (+64k): direction=$want; data, chain, domain.xml intact"
}
direction commit-act commit act $((20 * DEL_MIB)) $((2 * DEL_MIB))
direction pull-act pull act $((2 * DEL_MIB)) $((20 * DEL_MIB))
direction commit-snap commit snap $((20 * DEL_MIB)) $((2 * DEL_MIB))
direction pull-snap pull snap $((2 * DEL_MIB)) $((20 * DEL_MIB))

# --- Partial snapshots: rm of one image of a snapshot of 2 disks.
V=part
m_init $V 2
m_take $V s1 && m_take $V s2 && m_take $V s3 && m_check $V "take s1, s2, s3"
m_rm_image $V s2 1 && m_check $V "rm s2/vdb.qcow2"
[ "$(ls -A "$M/$V/snapshots/s2")" = vda.qcow2 ] || fail "$V: s2 lists $(ls -A "$M/$V/snapshots/s2")"
pass "rm s2/vdb.qcow2: s2 keeps vda only, its snapshot.xml says vdb snapshot='no'; every image reads as before"
m_rm_image $V s3 1 && m_check $V "rm s3/vdb.qcow2 (the current, merged into the active vdb)"
m_rm_image $V s2 0 && m_check $V "rm s2/vda.qcow2, its last image"
[ -e "$S/$V/snapshots/s2" ] && fail "$V: s2 is still in the store after its last image went"
pass "removing a snapshot's last image removes the snapshot; s3's parent is s1"
m_delete $V s3 rm && m_check $V "rm -r s3 (holding vda only)"
pass "rm -r of a partial snapshot deletes what it holds"

check_store "$S"
unmount_fs "$M"
