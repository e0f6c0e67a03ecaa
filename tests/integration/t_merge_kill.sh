#!/bin/bash
# A pull merge whose qemu-img is killed (kill -9 of the child alone, not
# the daemon) never loses the deleted snapshot's data (journal.h, the
# replay contract). qemu-img rebase writes the new backing name into the
# image's header before it flushes the metadata of what it copied; a
# kill between the two leaves a header naming the new backing over data
# the image does not reference. Here the kill comes there: the merge is
# stopped (qimggate.sh) after it reported 10 %, its header is written as
# qemu-img writes it (the new name in place of the old), and it is
# killed. The merge is the background worker's (rmdir returned before it
# ran); sync VMDIR waits for it and says how it went. Then:
#   - the daemon tries again at once: its qemu-img is let run, and sync
#     succeeds with the VM reading as after the delete;
#   - the second try is killed too (at the gate): sync fails with EIO,
#     the VM still reads as before while the worker's third try waits
#     at the gate, and the next mount finishes the merge, the VM reading
#     as after;
# each time from the image it started from, its leaks freed: qemu-img
# check finds nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate xmllint perl pgrep

S=$TMP/store M=$TMP/mnt

# set_backing_name IMAGE NAME: NAME written over IMAGE's backing name in
# place, with its length, as qemu-img rebase writes it; past any lock (the
# stopped qemu-img holds them). A longer NAME only over zero padding.
set_backing_name() {
    perl -e '
        my ($img, $name) = @ARGV;
        open(my $f, "+<", $img) or die "$img: $!\n";
        sysread($f, my $h, 20) == 20 or die "$img: short header\n";
        my ($off, $len) = unpack("x8 Q> N", $h);
        if (length($name) > $len) {
            sysseek($f, $off + $len, 0) and sysread($f, my $pad, length($name) - $len);
            $pad =~ /^\0+$/ or die "$img: no room for the name\n";
        }
        sysseek($f, $off, 0) and syswrite($f, $name) == length($name) or die "$img: $!\n";
        sysseek($f, 16, 0) and syswrite($f, pack("N", length($name))) == 4 or die "$img: $!\n";
    ' "$1" "$2" || fail "cannot write the backing name of $1"
}


# kill_after_header VM: rmdir VM's s1 in the background (RM), its merge
# stopped after 10 %, its header naming s0's image, killed. The daemon's
# second try is left stopped at the gate: Q2.
kill_after_header() {
    local vm=$1 name=${2:-../snapshots/s0/vda.qcow2} q
    # 10 %: s1's data lies at 6-19 % of the disk, so qemu-img is still
    # copying when it stops (past the data it would only run through
    # empty clusters, write its header and exit before the stop).
    gate_stops 10
    # The merge runs in the background; sync VMDIR (RM) waits for it and
    # says how it went.
    gate_delete "$vm"
    RM=$GATE_SYNC q=${GATED[0]}
    [[ $(gate_args "$q") == *" rebase -p "* && $(gate_image "$q" 0) == "$S/$vm/disks/vda.qcow2" ]] ||
        fail "$vm: the stopped qemu-img is not the pull of s1: $(gate_args "$q")"
    gate_cont "$q"
    gate_progress "$q"
    [ "$GATE_FIG" != eof ] || fail "$vm: the merge ended before it reported 10 %"
    gate_stops # none for the second try
    set_backing_name "$S/$vm/disks/vda.qcow2" "$name"
    kill -9 "$q"
    gate_cont "$q" # lets its relay read to the end
    # The second try's qemu-img at the gate, unless rmdir ends first: the
    # pull taken for done from its header, nothing copied again.
    Q2=""
    while [ -z "$Q2" ] && kill -0 "$RM" 2>/dev/null; do
        Q2=$(gate_stopped "$DAEMON_PID" | head -n 1)
        sleep 0.05
    done
    [ "$Q2" != "$q" ] || fail "$vm: the killed qemu-img is still there"
    [ -n "$Q2" ] && return
    wait "$RM"
    local st=$?
    model_forget "$vm" s1
    MODEL[$vm/#cur]=s0
    model_check "$M" "$vm" && fail "$vm: sync returned $st with no second qemu-img run"
    fail "$vm: sync returned $st, no qemu-img copied again, and the data is lost: $MODEL_ERR"
}

# clean_after VM: VM reads as after the delete of s1, the store is whole,
# the active image has no leaks, the log says the pull was made again.
clean_after() {
    local out
    model_forget "$1" s1
    MODEL[$1/#cur]=s0
    model_ok "$M" "$1"
    store_ok "$S" "$1"
    out=$(qemu-img check -U "$S/$1/disks/vda.qcow2" 2>&1) || fail "$1: qemu-img check: $out"
    grep -q "pull into $S/$1/disks/vda.qcow2: .*set back onto ../snapshots/[^ ]*/vda.qcow2" "$DAEMON_LOG" ||
        fail "$1: no log line of the pull set back onto s1's image"
    grep -q "merge of $1 disk vda (snapshot [^)]*): replayed; [0-9]* leaked cluster(s) of .* freed" "$DAEMON_LOG" ||
        fail "$1: no log line of the leaks of the replayed merge"
}

mkdir -p "$S"
gate_init
mount_fs "$S" "$M" "${GATE_OPT[@]}"
model_pull_vm "$S" "$M" a
model_pull_vm "$S" "$M" b
model_pull_vm "$S" "$M" c

# ---- the second try runs ----
kill_after_header a
gate_disarm "$DAEMON_PID"
wait "$RM" || fail "the merge of a's s1 failed though the daemon's second try ran: $(cat "$TMP/sync.err")"
grep -q "gc of a finished on a second try" "$DAEMON_LOG" || fail "a: no second try logged"
clean_after a
pass "qemu-img killed after writing its header: the second try copied again from s1's image; sync a succeeded, a reads as after"

# ---- the second try is killed too ----
kill_after_header b
kill -9 "$Q2"
wait "$RM" && fail "sync b succeeded though both merges of its s1 were killed"
grep -q "Input/output error" "$TMP/sync.err" || fail "sync b: $(cat "$TMP/sync.err"), not EIO"
# The worker tries again after its back-off; the gate, still armed,
# holds that third try before it starts, so b is read while nothing
# moves. The try holds its images' locks already (a merge does from its
# check on): b is read as a backup would, with force-share. s1 left the
# listing with its rmdir; every image still reads as before.
gate_wait "$DAEMON_PID" 1
model_forget b s1
MODEL[b/#cur]=s0
MODEL_SHARE=1
model_ok "$M" b
MODEL_SHARE=
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
mount_fs "$S" "$M"
sync "$M/b" || fail "sync b after the remount"
clean_after b
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
pass "the second try killed too: sync b failed with EIO, b reading as before; the next mount finished the merge, b reads as after"

# ---- killed after qemu-img wrote the spec of the new backing ----
# qemu-img is given the new backing as a json: spec of descriptors
# (qspec.h) and writes that string into the header; the daemon sets the
# real name after it exits. A kill in between leaves a name no chain
# check passes: the replay sets it back onto s1's image and copies again.
mount_fs "$S" "$M" "${GATE_OPT[@]}"
kill_after_header c 'json:{"driver":"qcow2","file":"f2","backing":null}'
gate_disarm "$DAEMON_PID"
wait "$RM" || fail "the merge of c's s1 failed though the daemon's second try ran: $(cat "$TMP/sync.err")"
grep -q "pull into $S/c/disks/vda.qcow2: its header names the spec qemu-img was given" "$DAEMON_LOG" ||
    fail "c: no log line of the spec set back"
model_forget c s1
MODEL[c/#cur]=s0
model_ok "$M" c
store_ok "$S" c
out=$(qemu-img check -U "$S/c/disks/vda.qcow2" 2>&1) || fail "c: qemu-img check: $out"
pass "qemu-img killed after it wrote its new backing's spec: set back, copied again; c reads as after"
