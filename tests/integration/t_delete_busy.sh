#!/bin/bash
# Snapshot deletes under load (SPEC §2 "Deleting snapshot S", §4), with
# the merges in the background (src/vm/bgmerge.h): rmdir only changes the
# namespace, each daemon's worker merges later, and `sync VMDIR` waits
# for the VM's merges and says how they went. How long a merge takes is
# the machine's (a warm cache merged 640 MiB in 0.62 s), so nothing here
# samples a running merge: the daemon's qemu-img is stopped (SIGSTOP,
# qimggate.sh) and looked at while it cannot move.
#   - a merge goes the cheaper way (pull F into C, or commit C into F, by
#     allocated size) and logs "merge of VM disk DEV (snapshot ...):
#     direction=... bytes=N started" and "... done in T s";
#   - rmdir returns with the merge held at the gate: the snapshot has left
#     the listing, its image waits in a hidden directory, .jobs shows
#     "merge-queued VM"; while the merge runs .jobs shows "merge VM
#     .../DEV done/total pct%", following it (stopped right after qemu-img
#     reported 25, 50 and 75 %, .jobs comes to show each figure while the
#     merge stands still); `ls -l` of the VM, `ls`, a listing of another
#     VM and a snapshot of it answer; a `sync VMDIR` started then is
#     still waiting at every stop and returns once the merge is done,
#     .jobs then empty of the VM;
#   - the CloudStack concurrent test: 4 VMs with 3-4 snapshots each, every
#     delete started at once: all succeed, and after sync every VM reads
#     as before with nothing left over;
#   - two daemons on one store, each with its own worker:
#       deletes on two VMs, one through each: both merges seen stopped
#       together, each in its own daemon's .jobs only; meanwhile the
#       other daemon lists the VM without the snapshot and a second
#       rmdir of it there gets ENOENT; a sync through the daemon that
#       deleted waits for the merge;
#       on one VM, one snapshot through one daemon, another and the first
#       again through the other, all started together: each snapshot is
#       deleted once (the second rmdir of it: ENOENT), the chain reads
#       right through both, and each of its merges ran exactly once
#       (counted in the log the daemons share);
#       a merge whose images a qemu on the other daemon's mount holds:
#       the worker fails and tries again after 1 s, then 2 s, sync says
#       EBUSY, nothing is merged; once the qemu is gone, sync succeeds
#       and the merge ran once;
#   - rm -r of a whole VM (its visiting order shown by strace) merges
#     nothing and leaves nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate xmllint strace perl pgrep

S=$TMP/store M=$TMP/mnt M2=$TMP/mnt2

# new_log: the daemon log lines since the last new_log call, in $TMP/new.log.
LOG_MARK=0
new_log() {
    tail -n +$((LOG_MARK + 1)) "$DAEMON_LOG" >"$TMP/new.log"
    LOG_MARK=$(wc -l <"$DAEMON_LOG")
}

# log_wait PATTERN WHAT: waits (up to 30 s) for a daemon log line that
# matches PATTERN (grep BRE): something the worker does on its own time.
log_wait() {
    local end=$((SECONDS + 30))
    until grep -q -- "$1" "$DAEMON_LOG"; do
        ((SECONDS < end)) || fail "$2: no log line '$1' after 30 s"
        nap 0.1
    done
}

# unlocked FILE...: waits (up to 30 s) until no process holds a lock on
# any FILE. (A daemon lets go of what a qemu held through it when the
# kernel tells it the qemu closed the image: a moment after the qemu
# exited.)
unlocked() {
    local f id ids="" end=$((SECONDS + 30))
    for f in "$@"; do
        id=$(stat -c '%Hd %Ld %i' "$f") || fail "unlocked: no $f"
        # as /proc/locks has it: MAJOR:MINOR:INODE, the numbers in hex
        ids+="|$(awk '{ printf "%02x:%02x:%s", $1, $2, $3 }' <<<"$id")"
    done
    while grep -Eq " (${ids#|}) " /proc/locks; do
        ((SECONDS < end)) || fail "locks on $* still held after 30 s: $(grep -E " (${ids#|}) " /proc/locks)"
        nap 0.1
    done
}

# ends PID SECS WHAT: PID's status once it ended; the test fails when it
# has not after SECS s. (A FUSE request the daemon does not answer
# cannot be killed: a sync or rmdir that waits for what the gate holds,
# or for a merge that never ends, would hang the test.)
ends() {
    local end=$((SECONDS + $2))
    while kill -0 "$1" 2>/dev/null; do
        ((SECONDS < end)) || fail "$3 has not returned after $2 s"
        nap 0.05
    done
    wait "$1"
}

# within SECS CMD...: ends for CMD, its output in $TMP/cmd.out and .err.
within() {
    local secs=$1
    shift
    "$@" >"$TMP/cmd.out" 2>"$TMP/cmd.err" &
    ends $! "$secs" "$*"
}

# answers WHAT CMD...: CMD succeeds at once (it must not wait for WHAT,
# held at the gate: that would never end).
answers() {
    local what=$1
    shift
    "$@" >"$TMP/cmd.out" 2>"$TMP/cmd.err" &
    ends $! 30 "$* (with $what held at the gate)" ||
        fail "$* failed while $what was held at the gate: $(cat "$TMP/cmd.err")"
}

# synced MNT/VM: sync of a VM's directory (it waits for the VM's merges:
# small ones here) succeeds.
synced() {
    within 120 sync "$1" || fail "sync $1: $(cat "$TMP/cmd.err")"
}

# still_waits PID WHAT: the background sync PID has not returned (it
# cannot while the merge it waits for is stopped).
still_waits() {
    kill -0 "$1" 2>/dev/null || fail "sync $2 returned while its merge was stopped at the gate"
}

# jobs_done LINE: DONE of a .jobs line "KIND VM WHAT DONE/TOTAL PCT%".
jobs_done() { local f=${1#* * * }; echo "${f%%/*}"; }
jobs_total() { local f=${1#* * * }; f=${f#*/}; echo "${f%% *}"; }

# merge_logged VM DEV DIRECTION: both log lines of that merge are in
# $TMP/new.log, with bytes > 0. (A background merge names the hidden
# directory of the deleted image where it would name the snapshot.)
merge_logged() {
    local re="merge of $1 disk $2 (snapshot [^)]*): direction=$3 bytes=\([0-9]*\)"
    local bytes
    bytes=$(sed -n "s/.*$re started.*/\1/p" "$TMP/new.log" | head -n 1)
    [ -n "$bytes" ] && [ "$bytes" -gt 0 ] ||
        fail "no 'merge of $1 disk $2 (snapshot ...): direction=$3 bytes=N started' line; log: $(grep 'merge of' "$TMP/new.log")"
    grep -q "$re.* done in [0-9.]* s" "$TMP/new.log" ||
        fail "no '... done in T s' line for the merge of $1 $2: $(grep 'merge of' "$TMP/new.log")"
}

# merges_once VM N: VM's merges started and were done N times in all, in
# the log of every daemon (one file): none ran twice, none failed.
merges_once() {
    local re="merge of $1 disk [^ ]* (snapshot [^)]*): direction=[a-z]* bytes=[0-9]*" nstarted ndone
    nstarted=$(grep -c "$re started" "$DAEMON_LOG")
    ndone=$(grep -c "$re done in " "$DAEMON_LOG")
    [ "$nstarted" = "$2" ] && [ "$ndone" = "$2" ] ||
        fail "$1: $nstarted merges started and $ndone done, not $2 each: $(grep "merge.* of $1 " "$DAEMON_LOG")"
}

# no_jobs_of MNT VM: MNT's .jobs has no merge of VM, queued or running.
no_jobs_of() {
    ! grep -Eq "^merge(-queued)? $2 " "$1/.jobs" || fail "after sync $2, .jobs still shows: $(cat "$1/.jobs")"
}

mkdir -p "$S"
gate_init
mount_fs "$S" "$M" "${GATE_OPT[@]}"
P1=$DAEMON_PID # the first daemon, on $M
add_vm() {
    make_vm "$S" "$1" "$2"
    model_init "$1" "$2" "$3" "$4"
    [ -d "$M/$1" ] || fail "$1 does not show in the mount"
}

# ---- 1. the cheaper direction ----
# q: s1's image holds 6.5 MiB, the active image 512 KiB over it: commit.
# (The other way, a big dependent pulling its small parent, is p's
# merge below.)
add_vm q 1 524288 16
model_write "$M" q vda 2 13 0x21
model_take "$M" q s1
model_write "$M" q vda 3 1 0x22
new_log
rmdir "$M/q/snapshots/s1" || fail "rmdir q's s1"
synced "$M/q"
new_log
model_forget q s1
model_ok "$M" q
store_ok "$S" q
merge_logged q vda commit
pass "a small dependent is committed into its big parent, logged"

# ---- 2. rmdir, progress, ls and sync while a merge runs ----
# p: 64 MiB disk in 4 MiB slots; s1's image 8 MiB, s2's 16 MiB over
# half of it: the cheaper way is to pull s1 into s2 (qemu-img rebase).
# rebase reports a figure for each 2 MiB of the disk that s2's image
# does not hold (3.125 % each, 75 % in all, then 100 %): every threshold
# gets a stop of its own, whatever the machine. (commit's block job
# reports when it gets round to it: 40 %, then 75 %, here.)
add_vm p 1 4194304 16
model_write "$M" p vda 0 2 0x31
model_take "$M" p s1
model_write "$M" p vda 1 4 0x32
model_take "$M" p s2
model_write "$M" p vda 15 1 0x33
add_vm o 1 524288 16
model_take "$M" o s1
model_write "$M" o vda 2 1 0x34

new_log
gate_arm
gate_stops 25 50 75
# The merge cannot end while the gate is armed: a delete that waited for
# it would never return, and what the delete did is seen as it left it.
answers "p's merge" rmdir "$M/p/snapshots/s1"
[ "$(ls "$M/p/snapshots")" = s2 ] || fail "after rmdir of p's s1, p/snapshots lists: $(ls "$M/p/snapshots")"
[ -n "$(hidden_dirs "$S" p)" ] || fail "rmdir of p's s1 left no hidden image: it merged, or dropped s1's data"
grep -q '^merge-queued p ' "$M/.jobs" || fail "after rmdir of p's s1, .jobs shows no queued merge of p: $(cat "$M/.jobs")"
gate_wait "$P1" 1
Q=${GATED[0]}
[[ $(gate_args "$Q") == *" rebase -p "* && $(gate_image "$Q" 0) == "$S/p/snapshots/s2/vda.qcow2" ]] ||
    fail "the stopped qemu-img is not the pull of p's s1 into s2: $(gate_args "$Q")"
JOB_RE='^merge p [^ ]+/vda [0-9]+/[0-9]+ [0-9]+%$'
# At each stop (the merge about to start, then after qemu-img reported
# FIG %): .jobs comes to show FIG % of the merge's bytes (the daemon
# publishes on its own time: waited for), the samples file gets "FIG
# LINE", and from the first one on a sync of p waits.
: >"$TMP/samples"
fig=0 stops=0 SYNC=""
while :; do
    [ -z "$SYNC" ] || still_waits "$SYNC" p
    end=$((SECONDS + 30))
    while :; do
        line=$(grep -E "$JOB_RE" "$M/.jobs" | head -n 1)
        if [ -n "$line" ]; then
            want=$(awk -v f="$fig" -v t="$(jobs_total "$line")" 'BEGIN { printf "%d", t * f / 100 }')
            d=$(jobs_done "$line")
            ((d >= want - 1 && d <= want + 1)) && break
        fi
        ((SECONDS < end)) ||
            fail "p's merge: qemu-img reported $fig % and stands still, .jobs still shows '${line:-nothing}' after 30 s"
        sleep 0.05
    done
    echo "$fig $line" >>"$TMP/samples"
    stops=$((stops + 1))
    if ((stops == 1)); then
        # Nothing else waits for the merge: ls of p itself, ls, a listing
        # of another VM's snapshots, a snapshot of it.
        answers "p's merge" ls -l "$M/p" "$M/p/snapshots" "$M/p/snapshots/s2"
        [ "$(ls "$M/p/snapshots")" = s2 ] || fail "while p's merge runs, p/snapshots lists: $(ls "$M/p/snapshots")"
        answers "p's merge" ls "$M"
        answers "p's merge" ls -l "$M/o/snapshots"
        answers "p's merge" mkdir "$M/o/snapshots/during"
        grep -Eq "$JOB_RE" "$M/.jobs" || fail "the merge of p's s1 left .jobs while it was stopped: $(cat "$M/.jobs")"
        # Only then: while `sync p` waits, the kernel holds p's
        # directory locked (FUSE's fsyncdir), and a listing of p waits
        # with it. After a nap, a sync that did not wait has returned.
        sync "$M/p" 2>"$TMP/p.err" &
        SYNC=$!
        nap 0.5
        still_waits "$SYNC" p
    fi
    awk -v f="$fig" 'BEGIN { exit !(f >= 75) }' && break
    gate_cont "$Q"
    gate_progress "$Q"
    [ "$GATE_FIG" != eof ] || fail "p's merge ended before qemu-img reported 75 % (samples: $(tr '\n' ';' <"$TMP/samples"))"
    fig=$GATE_FIG
done
still_waits "$SYNC" p
gate_cont "$Q"
gate_disarm "$P1"
# The snapshot "during" of o holds what o's active image held.
MODEL[o/during/vda]=${MODEL[o/@/vda]} MODEL[o/#cur]=during
ends "$SYNC" 120 "sync p" || fail "sync p after the merge of its s1: $(cat "$TMP/p.err")"
no_jobs_of "$M" p
new_log
merge_logged p vda pull
pass "rmdir of p's s1 returned with its merge (a pull: s2's image is the bigger) held; while it was stopped (and at $((stops - 1)) more stops) sync p waited, ls -l of p, ls, another VM's listing and a snapshot of it answered"

# The samples "FIG merge p WHAT DONE/TOTAL PCT%": total constant, done
# only grows, is seen strictly between 0 and total, the percent agrees
# with it, and it changed with the figures.
awk '
    {
        split($5, dt, "/"); done = dt[1] + 0; total = dt[2] + 0; pct = $6 + 0
        if (total == 0) { print "no total in: " $0; bad = 1; next }
        n++
        if (n > 1 && total != tot0) { print "total changed from " tot0 " to " total; bad = 1 }
        if (n > 1 && done < last) { print "done went back from " last " to " done; bad = 1 }
        if (done > 0 && done < total) mid++
        want = int(100 * done / total)
        if (pct < want - 1 || pct > want + 1) { print "pct " pct "% for " done "/" total; bad = 1 }
        if (n > 1 && done != last) changes++
        if (n == 1) { first = done; tot0 = total }
        last = done
        seen = seen " " $1 "%:" pct "%"
    }
    END {
        if (n < 3) { print "only " n " samples showed the merge"; bad = 1 }
        if (!mid) { print "no sample between 0 and total"; bad = 1 }
        if (changes < 2) { print "done changed only " changes " times"; bad = 1 }
        if (!bad) print "ok " n " stops (qemu-img" seen "), " mid " in progress, " first " to " last " of " tot0
        exit bad
    }' "$TMP/samples" >"$TMP/progress" ||
    fail ".jobs progress: $(cat "$TMP/progress"); samples: $(tr '\n' ';' <"$TMP/samples")"
model_forget p s1
model_ok "$M" p o
store_ok "$S" p o
pass ".jobs during the merge: $(cat "$TMP/progress")"

# ---- 3. the CloudStack concurrent test ----
# Every delete started together, however they then interleave (the
# deletes of one VM wait for each other's namespace change, and for a
# merge that starts between them: short ones, none is stopped here).
# k1..k3: s1 <- s2 <- s3 <- s4 <- active; k4: s1 <- s2 <- s3, reverted to
# s2, s4 on the new branch (s2 goes hidden when deleted before s3).
for v in k1 k2 k3 k4; do
    add_vm $v 2 524288 16
    model_write "$M" $v vda 2 3 0x41
    model_write "$M" $v vdb 2 1 0x42
    model_take "$M" $v s1
    model_write "$M" $v vda 3 4 0x43
    model_take "$M" $v s2
    model_write "$M" $v vdb 2 6 0x44
    model_take "$M" $v s3
    [ $v = k4 ] && model_revert "$M" $v s2
    model_write "$M" $v vda 6 2 0x45
    model_take "$M" $v s4
    model_write "$M" $v vda 8 1 0x46
done
pids=()
for v in k1 k2 k3 k4; do
    for s in s1 s2 s3 s4; do
        (rmdir "$M/$v/snapshots/$s" 2>"$TMP/k.$v.$s.err") &
        pids+=($!)
    done
done
for p in "${pids[@]}"; do
    wait "$p" || fail "a concurrent delete failed: $(cat "$TMP"/k.*.err)"
done
for v in k1 k2 k3 k4; do
    synced "$M/$v"
    for s in s1 s2 s3 s4; do
        model_forget $v $s
    done
    MODEL[$v/#cur]=""
done
[ -z "$(cat "$M/.jobs")" ] || fail "after sync of every VM, .jobs still shows: $(cat "$M/.jobs")"
model_ok "$M" k1 k2 k3 k4
store_ok "$S" k1 k2 k3 k4
pass "16 deletes started together on 4 VMs (one with a branch): all succeed; after sync every active image reads as before, nothing left over"

# ---- 4. two daemons on one store ----
mount_fs "$S" "$M2" "${GATE_OPT[@]}"
P2=$DAEMON_PID
# (a) two VMs, one through each daemon: both merges are seen stopped
# together, each in its own daemon's .jobs (a worker runs what its own
# daemon deleted).
for v in t1 t2; do
    add_vm $v 1 524288 16
    model_write "$M" $v vda 0 12 0x51
    model_take "$M" $v s1
    model_write "$M" $v vda 6 10 0x52
    model_take "$M" $v s2
    model_write "$M" $v vda 10 1 0x53
done
gate_stops
gate_arm
answers "t1's merge" rmdir "$M/t1/snapshots/s1"
answers "t2's merge" rmdir "$M2/t2/snapshots/s1"
gate_wait "$P1" 1
Q1=${GATED[0]}
gate_wait "$P2" 1
Q2=${GATED[0]}
grep -q '^merge t1 [^ ]*/vda ' "$M/.jobs" && grep -q '^merge t2 [^ ]*/vda ' "$M2/.jobs" ||
    fail "both merges stopped, but .jobs shows: daemon 1 '$(tr '\n' ';' <"$M/.jobs")', daemon 2 '$(tr '\n' ';' <"$M2/.jobs")'"
{ grep -q ' t2 ' "$M/.jobs" || grep -q ' t1 ' "$M2/.jobs"; } &&
    fail "a daemon shows the other's merge: daemon 1 '$(tr '\n' ';' <"$M/.jobs")', daemon 2 '$(tr '\n' ';' <"$M2/.jobs")'"
# Meanwhile the other daemon has each s1 gone: listed without it, a
# second rmdir of it ENOENT at once.
for x in "$M2:t1" "$M:t2"; do
    IFS=: read -r mnt v <<<"$x"
    [ "$(ls "$mnt/$v/snapshots")" = s2 ] || fail "while $v's merge is stopped, the other daemon lists: $(ls "$mnt/$v/snapshots")"
    within 30 rmdir "$mnt/$v/snapshots/s1" &&
        fail "a second rmdir of $v's s1, through the other daemon, succeeded"
    grep -q "No such file or directory" "$TMP/cmd.err" ||
        fail "a second rmdir of $v's s1 through the other daemon, while the first one's merge is stopped: $(cat "$TMP/cmd.err")"
done
sync "$M/t1" 2>"$TMP/t1.err" &
A=$!
sync "$M2/t2" 2>"$TMP/t2.err" &
B=$!
nap 0.5
still_waits "$A" t1
still_waits "$B" t2
gate_cont "$Q1" "$Q2"
gate_disarm "$P1" "$P2"
ends "$A" 120 "sync t1" || fail "sync t1 through daemon 1: $(cat "$TMP/t1.err")"
ends "$B" 120 "sync t2" || fail "sync t2 through daemon 2: $(cat "$TMP/t2.err")"
no_jobs_of "$M" t1
no_jobs_of "$M2" t2
model_forget t1 s1
model_forget t2 s1
model_ok "$M" t1 t2
model_ok "$M2" t1 t2
store_ok "$S" t1 t2
merges_once t1 1
merges_once t2 1
pass "two daemons delete on two VMs (both merges stopped together, each in its own .jobs; the snapshot gone through the other daemon, a second rmdir ENOENT): a sync through the daemon that deleted waited for the merge"

# (b) one VM: s1 through daemon 1, s2 and s1 again through daemon 2, all
# started together. s1 <- s2 <- active, in 1 MiB slots: both deleted,
# two hidden images, two merges, whichever worker runs them.
add_vm t3 1 1048576 16
model_write "$M" t3 vda 0 10 0x61
model_take "$M" t3 s1
model_write "$M" t3 vda 5 10 0x62
model_take "$M" t3 s2
model_write "$M" t3 vda 15 1 0x63
rmdir "$M/t3/snapshots/s1" 2>"$TMP/t3a.err" &
A=$!
rmdir "$M2/t3/snapshots/s1" 2>"$TMP/t3b.err" &
B=$!
rmdir "$M2/t3/snapshots/s2" 2>"$TMP/t3c.err" &
C=$!
wait "$C" || fail "delete of t3's s2 through daemon 2, with s1 deleted through both: $(cat "$TMP/t3c.err")"
won=0
for x in "$A:$TMP/t3a.err" "$B:$TMP/t3b.err"; do
    IFS=: read -r pid err <<<"$x"
    if wait "$pid"; then
        won=$((won + 1))
    else
        grep -q "No such file or directory" "$err" || fail "the losing delete of t3's s1 said: $(cat "$err")"
    fi
done
[ "$won" -eq 1 ] || fail "$won of two deletes of t3's s1 (one through each daemon) succeeded"
synced "$M/t3"
synced "$M2/t3"
model_forget t3 s1
model_forget t3 s2
model_ok "$M" t3
model_ok "$M2" t3
store_ok "$S" t3
merges_once t3 2
pass "two daemons delete on one VM, started together: s1 deleted once (the other rmdir ENOENT), s2 deleted; after sync through both the chain reads right and each merge ran once"

# (c) a merge whose images a qemu holds through the other daemon's
# mount (a VM started there after the delete). h: s1 <- active.
add_vm h 1 524288 16
model_write "$M" h vda 0 10 0x71
model_take "$M" h s1
model_write "$M" h vda 5 2 0x72
# h's directory open here (a walker): the worker leaves h's merge queued
# (bgmerge.h) until the qemu holds the images. (The qemu-io must not get
# the descriptor: the directory would stay open with it.)
exec 8<"$M/h"
rmdir "$M/h/snapshots/s1" || fail "rmdir h's s1"
qio_hold "$M2/h/disks/vda.qcow2" "$S/h/disks/vda.qcow2" 8<&-
exec 8<&-
HELD='\(is in use (a qemu holds its image lock)\|is open for writing through another mount of the store\)'
log_wait "merges of h: attempt 1 failed (Device or resource busy): .*$HELD; again in 1 s" "h held by a qemu"
log_wait "merges of h: attempt 2 failed (Device or resource busy): .*$HELD; again in 2 s" "h held by a qemu"
within 30 sync "$M/h" && fail "sync h succeeded while a qemu holds h's images"
grep -q "Device or resource busy" "$TMP/cmd.err" || fail "sync h, with h's images held: $(cat "$TMP/cmd.err"), not EBUSY"
grep -q "merge of h disk" "$DAEMON_LOG" && fail "h was merged while a qemu held its images: $(grep 'merge of h' "$DAEMON_LOG")"
qio_release
# (the images, and the mark of a writer through daemon 2: vmlock.h)
unlocked "$S/h/disks/vda.qcow2" "$(hidden_dirs "$S" h)/vda.qcow2" "$S/.vmstorefs/locks/h@vda"
synced "$M/h"
no_jobs_of "$M" h
model_forget h s1
model_ok "$M" h
model_ok "$M2" h
store_ok "$S" h
merges_once h 1
pass "a qemu on the other mount holds h's images: the merge is tried again after 1 s, then 2 s, sync says EBUSY; once it is gone, sync succeeds and the merge ran once"
DAEMON_PID=$P2 unmount_fs "$M2"
forget_daemon "$P2"

# ---- 5. rm -r of a whole VM ----
# z: two disks, s1 <- s2 <- s3, reverted to s2, s4; s2 deleted (hidden:
# two dependents, nothing to merge).
add_vm z 2 524288 16
model_write "$M" z vda 2 2 0x81
model_take "$M" z s1
model_write "$M" z vdb 2 2 0x82
model_take "$M" z s2
model_write "$M" z vda 3 2 0x83
model_take "$M" z s3
model_revert "$M" z s2
model_write "$M" z vda 5 1 0x84
model_take "$M" z s4
rmdir "$M/z/snapshots/s2" || fail "rmdir z's s2"
synced "$M/z"
model_forget z s2
model_ok "$M" z
[ -n "$(hidden_dirs "$S" z)" ] || fail "no hidden image after deleting z's s2 (two dependents)"
new_log
strace -f -o "$TMP/rm.strace" -e trace=unlinkat,rmdir,unlink,openat rm -r "$M/z" ||
    fail "rm -r of VM z failed: $(tail -n 5 "$TMP/rm.strace")"
new_log
order=$(grep -o '\(unlinkat\|rmdir\|unlink\)(.*' "$TMP/rm.strace" | grep -v '= -1 ENOENT' |
    sed -n 's/^\([a-z]*\)([^"]*"\([^"]*\)"\(, AT_REMOVEDIR\)\{0,1\}.*/\1\3 \2/p' |
    sed 's/^unlinkat, AT_REMOVEDIR /rmdir /; s/^unlinkat /unlink /; s|^\([a-z]* \).*/|\1|' | paste -sd, -)
[ ! -e "$M/z" ] || fail "z still shows after rm -r: $(ls -A "$M/z")"
grep -q 'merge of' "$TMP/new.log" && fail "rm -r of VM z merged: $(grep 'merge of' "$TMP/new.log")"
model_drop_vm z
store_ok "$S" z
model_ok "$M" o k1
pass "rm -r of a VM merges nothing and leaves nothing; rm visited: $order"

DAEMON_PID=$P1 unmount_fs "$M"
