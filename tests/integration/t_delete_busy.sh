#!/bin/bash
# Snapshot deletes under load (SPEC §2 "Deleting snapshot S", §4). How
# long a merge takes is the machine's (a warm cache merged 640 MiB in
# 0.62 s), so nothing here samples a running merge: the daemon's
# qemu-img is stopped (SIGSTOP, qimggate.sh) and looked at while it
# cannot move, and what is said to run at once is seen to.
#   - a merge goes the cheaper way (pull F into C, or commit C into F, by
#     allocated size) and logs "merge of VM disk DEV (snapshot S):
#     direction=... bytes=N started" and "... done in T s";
#   - while a merge runs, .jobs shows "merge VM S/DEV done/total pct%",
#     following the merge as it goes (stopped right after qemu-img
#     reported 25, 50 and 75 %, .jobs comes to show each figure while the
#     merge stands still), and `ls`, listings and a snapshot of another
#     VM answer (with the merge stopped, one that waited for it would
#     never answer);
#   - the CloudStack concurrent test: 4 VMs with 3-4 snapshots each, every
#     delete started at once: all succeed, every VM reads as before;
#   - two daemons on one store: deletes on two VMs at once (both merges
#     seen stopped together) both succeed; on one VM, started together,
#     one waits for the other or gets EBUSY, never a wrong chain, and one
#     issued while the other's merge is stopped gets EBUSY; the same
#     snapshot twice: one delete wins, also when the second is issued
#     while the first one's merge is stopped;
#   - rm -r of a whole VM (its visiting order shown by strace) merges
#     nothing and leaves nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate xmllint strace perl pgrep timeout

S=$TMP/store M=$TMP/mnt M2=$TMP/mnt2

# new_log: the daemon log lines since the last new_log call, in $TMP/new.log.
LOG_MARK=0
new_log() {
    tail -n +$((LOG_MARK + 1)) "$DAEMON_LOG" >"$TMP/new.log"
    LOG_MARK=$(wc -l <"$DAEMON_LOG")
}

# answers WHAT CMD...: CMD succeeds within 30 s (it must not wait for a
# merge that is stopped: that one would never end).
answers() {
    local what=$1
    shift
    timeout 30 "$@" >/dev/null || fail "$* did not answer (or failed) while $what was stopped"
}

# jobs_done LINE: DONE of a .jobs line "KIND VM WHAT DONE/TOTAL PCT%".
jobs_done() { local f=${1#* * * }; echo "${f%%/*}"; }
jobs_total() { local f=${1#* * * }; f=${f#*/}; echo "${f%% *}"; }

# merge_logged VM DEV SNAP DIRECTION: both log lines of that merge are in
# $TMP/new.log, with bytes > 0.
merge_logged() {
    local re="merge of $1 disk $2 (snapshot $3): direction=$4 bytes=\([0-9]*\)"
    local bytes
    bytes=$(sed -n "s/.*$re started.*/\1/p" "$TMP/new.log" | head -n 1)
    [ -n "$bytes" ] && [ "$bytes" -gt 0 ] ||
        fail "no 'merge of $1 disk $2 (snapshot $3): direction=$4 bytes=N started' line; log: $(grep 'merge of' "$TMP/new.log")"
    grep -q "$re.* done in [0-9.]* s" "$TMP/new.log" ||
        fail "no '... done in T s' line for the merge of $1 $2 ($3): $(grep 'merge of' "$TMP/new.log")"
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
# q1: s1's image holds 6.5 MiB, the active image 512 KiB over it: commit.
# q2: s1's image holds 1 MiB, the active image 7 MiB over it: pull.
add_vm q1 1 524288 16
model_write "$M" q1 vda 2 13 0x21
model_take "$M" q1 s1
model_write "$M" q1 vda 3 1 0x22
add_vm q2 1 524288 16
model_take "$M" q2 s1
model_write "$M" q2 vda 1 14 0x23
new_log
rmdir "$M/q1/snapshots/s1" || fail "rmdir q1's s1"
rmdir "$M/q2/snapshots/s1" || fail "rmdir q2's s1"
new_log
model_forget q1 s1
model_forget q2 s1
MODEL[q1/#cur]="" MODEL[q2/#cur]=""
model_ok "$M" q1 q2
store_ok "$S" q1 q2
merge_logged q1 vda s1 commit
merge_logged q2 vda s1 pull
pass "a small dependent is committed into its big parent, a big one pulls its small parent; both logged"

# ---- 2. progress and responsiveness during a merge ----
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
rmdir "$M/p/snapshots/s1" 2>"$TMP/p.err" &
RM=$!
gate_wait "$P1" 1
Q=${GATED[0]}
[[ $(gate_args "$Q") == *" rebase -p "*"/p/snapshots/s2/vda.qcow2"* ]] ||
    fail "the stopped qemu-img is not the pull of p's s1 into s2: $(gate_args "$Q")"
JOB_RE='^merge p s1/vda [0-9]+/[0-9]+ [0-9]+%$'
# At each stop (the merge about to start, then after qemu-img reported
# FIG %): the rmdir still runs, .jobs comes to show FIG % of the merge's
# bytes (the daemon publishes on its own time: waited for), and the
# samples file gets "FIG LINE".
: >"$TMP/samples"
fig=0 stops=0
while :; do
    kill -0 "$RM" 2>/dev/null || fail "rmdir of p's s1 returned while its merge was stopped: $(cat "$TMP/p.err")"
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
        # Nothing else waits for the merge: ls, a listing of another VM's
        # snapshots, a snapshot of it.
        answers "p's merge" ls "$M"
        answers "p's merge" ls -l "$M/o/snapshots"
        answers "p's merge" mkdir "$M/o/snapshots/during"
        grep -Eq "$JOB_RE" "$M/.jobs" || fail "the merge of p's s1 left .jobs while it was stopped: $(cat "$M/.jobs")"
    fi
    awk -v f="$fig" 'BEGIN { exit !(f >= 75) }' && break
    gate_cont "$Q"
    gate_progress "$Q"
    [ "$GATE_FIG" != eof ] || fail "p's merge ended before qemu-img reported 75 % (samples: $(tr '\n' ';' <"$TMP/samples"))"
    fig=$GATE_FIG
done
gate_cont "$Q"
gate_disarm "$P1"
# The snapshot "during" of o holds what o's active image held.
MODEL[o/during/vda]=${MODEL[o/@/vda]} MODEL[o/#cur]=during
wait "$RM" || fail "rmdir of p's s1 failed: $(cat "$TMP/p.err")"
grep -Eq "$JOB_RE" "$M/.jobs" && fail ".jobs still shows the merge after rmdir returned: $(cat "$M/.jobs")"
new_log
merge_logged p vda s1 pull
pass "while p's merge was stopped (and at $((stops - 1)) more stops): ls, ls -l of another VM's snapshots and a snapshot of it answered"

# The samples "FIG merge p s1/vda DONE/TOTAL PCT%": total constant, done
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
# deletes of one VM wait for each other, at most 2 s each: none is
# stopped here). k1..k3: s1 <- s2 <- s3 <- s4 <- active; k4: s1 <- s2 <- s3, reverted to
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
model_ok "$M" k1 k2 k3 k4
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
    for s in s1 s2 s3 s4; do
        model_forget $v $s
    done
    MODEL[$v/#cur]=""
done
model_ok "$M" k1 k2 k3 k4
settled "$S" k1 k2 k3 k4 || fail "after the concurrent deletes: $STORE_ERR"
store_ok "$S" k1 k2 k3 k4
pass "16 deletes started together on 4 VMs (one with a branch): all succeed, every active image reads as before, nothing left over"

# ---- 4. two daemons on one store ----
mount_fs "$S" "$M2" "${GATE_OPT[@]}"
P2=$DAEMON_PID
# (a) two VMs, one through each daemon, at once: both merges are seen
# stopped together, each in its daemon's .jobs.
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
rmdir "$M/t1/snapshots/s1" 2>"$TMP/t1.err" &
A=$!
rmdir "$M2/t2/snapshots/s1" 2>"$TMP/t2.err" &
B=$!
gate_wait "$P1" 1
Q1=${GATED[0]}
gate_wait "$P2" 1
Q2=${GATED[0]}
grep -q '^merge t1 s1/vda ' "$M/.jobs" && grep -q '^merge t2 s1/vda ' "$M2/.jobs" ||
    fail "both merges stopped, but .jobs shows: daemon 1 '$(tr '\n' ';' <"$M/.jobs")', daemon 2 '$(tr '\n' ';' <"$M2/.jobs")'"
gate_cont "$Q1" "$Q2"
gate_disarm "$P1" "$P2"
wait "$A" || fail "delete on t1 through daemon 1, with daemon 2 deleting on t2: $(cat "$TMP/t1.err")"
wait "$B" || fail "delete on t2 through daemon 2, with daemon 1 deleting on t1: $(cat "$TMP/t2.err")"
model_forget t1 s1
model_forget t2 s1
model_ok "$M" t1 t2
model_ok "$M2" t1 t2
store_ok "$S" t1 t2
pass "two daemons delete on two VMs at once (both merges stopped together, each in its .jobs): both succeed"

# held VM A B ERRS: rmdir of VM's snapshot A through daemon 1 until its
# merge is stopped at the gate; then rmdir of B through daemon 2, which
# must end meanwhile (it cannot wait for a merge that does not move:
# EBUSY after 2 s at most), failing with ERRS (a grep pattern); A's
# delete succeeds once let go. Sets HELD_ERR to how B failed.
held() {
    local vm=$1 a=$2 b=$3 errs=$4 pa pb q end
    gate_arm
    rmdir "$M/$vm/snapshots/$a" 2>"$TMP/held.a.err" &
    pa=$!
    gate_wait "$P1" 1
    q=${GATED[0]}
    grep -q "^merge $vm $a/vda " "$M/.jobs" || fail "$vm: $a's merge is stopped but not in .jobs: $(cat "$M/.jobs")"
    rmdir "$M2/$vm/snapshots/$b" 2>"$TMP/held.b.err" &
    pb=$!
    end=$((SECONDS + 60))
    while kill -0 "$pb" 2>/dev/null; do
        ((SECONDS < end)) || fail "$vm: the delete of $b through daemon 2 still waits 60 s into daemon 1's stopped merge of $a"
        sleep 0.05
    done
    ! wait "$pb" || fail "$vm: the delete of $b through daemon 2 succeeded while daemon 1 was merging $a"
    HELD_ERR=$(cat "$TMP/held.b.err")
    grep -q "$errs" <<<"$HELD_ERR" || fail "$vm: the delete of $b through daemon 2 failed, but not with $errs: $HELD_ERR"
    kill -0 "$pa" 2>/dev/null || fail "$vm: the delete of $a returned while its merge was stopped"
    gate_cont "$q"
    gate_disarm "$P1" "$P2"
    wait "$pa" || fail "$vm: the delete of $a through daemon 1 failed: $(cat "$TMP/held.a.err")"
    model_forget "$vm" "$a"
}

# t3 VM: s1 <- s2 <- s3 <- active, in 1 MiB slots.
t3_vm() {
    add_vm "$1" 1 1048576 16
    model_write "$M" "$1" vda 0 10 0x61
    model_take "$M" "$1" s1
    model_write "$M" "$1" vda 5 10 0x62
    model_take "$M" "$1" s2
    model_write "$M" "$1" vda 15 1 0x63
    model_take "$M" "$1" s3
    model_write "$M" "$1" vda 15 1 0x64
}
# (b) one VM, a different snapshot through each daemon. Started
# together, however they interleave: one waits for the other or gets
# EBUSY, at least one is deleted, the chain reads right.
t3_vm t3
rmdir "$M/t3/snapshots/s1" 2>"$TMP/t3a.err" &
A=$!
rmdir "$M2/t3/snapshots/s2" 2>"$TMP/t3b.err" &
B=$!
outcome=""
for x in "$A:s1:$TMP/t3a.err" "$B:s2:$TMP/t3b.err"; do
    IFS=: read -r pid snap err <<<"$x"
    if wait "$pid"; then
        model_forget t3 "$snap"
        outcome+=" $snap deleted"
    else
        grep -q "Device or resource busy" "$err" || fail "delete of t3's $snap failed but not with EBUSY: $(cat "$err")"
        outcome+=" $snap EBUSY"
    fi
done
[[ $outcome == *deleted* ]] || fail "two deletes on t3 through two daemons: neither succeeded"
model_ok "$M" t3
model_ok "$M2" t3
store_ok "$S" t3
pass "two daemons delete on one VM, started together:$outcome; the chain reads right through both"
# The two meet: s2's delete through daemon 2 while daemon 1's merge of
# s1 is stopped.
t3_vm t3h
held t3h s1 s2 "Device or resource busy"
model_ok "$M" t3h
model_ok "$M2" t3h
store_ok "$S" t3h
pass "two daemons delete on one VM at once (s2 while s1's merge is stopped): s2 EBUSY, s1 deleted; the chain reads right through both"

# (c) the same snapshot through both daemons: one delete wins, started
# together, and when the second comes while the first one's merge is
# stopped.
t4_vm() {
    add_vm "$1" 1 524288 16
    model_write "$M" "$1" vda 2 4 0x71
    model_take "$M" "$1" s1
    model_write "$M" "$1" vda 3 1 0x72
    model_take "$M" "$1" s2
}
t4_vm t4
rmdir "$M/t4/snapshots/s1" 2>"$TMP/t4a.err" &
A=$!
rmdir "$M2/t4/snapshots/s1" 2>"$TMP/t4b.err" &
B=$!
won=0
for x in "$A:$TMP/t4a.err" "$B:$TMP/t4b.err"; do
    IFS=: read -r pid err <<<"$x"
    if wait "$pid"; then
        won=$((won + 1))
    else
        grep -q "No such file or directory\|Device or resource busy" "$err" ||
            fail "the losing delete of t4's s1 said: $(cat "$err")"
    fi
done
[ "$won" -eq 1 ] || fail "$won of two deletes of the same snapshot succeeded"
model_forget t4 s1
model_ok "$M" t4
model_ok "$M2" t4
store_ok "$S" t4
pass "the same snapshot deleted through both daemons, started together: one succeeds, the other gets ENOENT or EBUSY"
t4_vm t4h
held t4h s1 s1 "No such file or directory\|Device or resource busy"
model_ok "$M" t4h
model_ok "$M2" t4h
store_ok "$S" t4h
pass "the same snapshot deleted through both daemons at once (the second while the first one's merge is stopped): the first succeeds, the second: ${HELD_ERR##*: }"
DAEMON_PID=$P2 unmount_fs "$M2"
forget_daemon "$P2"

# ---- 5. rm -r of a whole VM ----
# z: two disks, s1 <- s2 <- s3, reverted to s2, s4; s2 deleted (hidden).
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
