#!/bin/bash
# Snapshot deletes under load (SPEC §2 "Deleting snapshot S", §4):
#   - a merge goes the cheaper way (pull F into C, or commit C into F, by
#     allocated size) and logs "merge of VM disk DEV (snapshot S):
#     direction=... bytes=N started" and "... done in T s";
#   - while a long merge runs, .jobs shows "merge VM S/DEV done/total
#     pct%", moving at least once a second, and `ls`, listings and a
#     snapshot of another VM answer within a second;
#   - the CloudStack concurrent test: 4 VMs with 3-4 snapshots each, every
#     delete at once: all succeed, every VM reads as before;
#   - two daemons on one store: deletes on two VMs at once both succeed;
#     on one VM at once, one waits for the other or gets EBUSY, never a
#     wrong chain; the same snapshot twice: one delete wins;
#   - rm -r of a whole VM (its visiting order shown by strace) merges
#     nothing and leaves nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
need_fuse
need virt-xml-validate xmllint strace

S=$TMP/store M=$TMP/mnt M2=$TMP/mnt2

# new_log: the daemon log lines since the last new_log call, in $TMP/new.log.
LOG_MARK=0
new_log() {
    tail -n +$((LOG_MARK + 1)) "$DAEMON_LOG" >"$TMP/new.log"
    LOG_MARK=$(wc -l <"$DAEMON_LOG")
}

# ms CMD...: runs CMD (which must succeed), prints how long it took in ms.
ms() {
    local t0
    t0=$(date +%s%N)
    "$@" >/dev/null || fail "$* failed"
    echo $((($(date +%s%N) - t0) / 1000000))
}

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
mount_fs "$S" "$M"
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

# ---- 2. progress and responsiveness during a long merge ----
# p: 2 GiB disk in 64 MiB slots; s1's image 640 MiB, s2's 640 MiB over
# half of it: merging s1 into s2 copies some 640 MiB either way.
add_vm p 1 67108864 16
qemu-img resize -q "$S/p/disks/vda.qcow2" 2G || fail "cannot grow p's disk"
model_write "$M" p vda 0 10 0x31
model_take "$M" p s1
model_write "$M" p vda 5 10 0x32
model_take "$M" p s2
model_write "$M" p vda 15 1 0x33
add_vm o 1 524288 16
model_take "$M" o s1
model_write "$M" o vda 2 1 0x34

new_log
rmdir "$M/p/snapshots/s1" 2>"$TMP/p.err" &
RM=$!
# Sampled every 0.05 s: "<seconds> <the merge line or nothing>". With a
# warm page cache the merge can be over in 0.6 s (CI saw two samples at
# a 0.2 s step).
(
    for ((i = 0; i < 2400; i++)); do
        kill -0 "$RM" 2>/dev/null || break
        echo "$(date +%s.%N) $(grep '^merge p ' "$M/.jobs" 2>/dev/null | head -n 1)"
        sleep 0.05
    done
) >"$TMP/samples" &
SAMPLER=$!
JOB_RE='^merge p s1/vda [0-9]\+/[0-9]\+ [0-9]\+%$'
for ((i = 0; i < 200; i++)); do
    grep -q "$JOB_RE" "$M/.jobs" && break
    kill -0 "$RM" 2>/dev/null || fail "rmdir of p's s1 ended before .jobs showed 'merge p s1/vda done/total pct%': $(cat "$M/.jobs")"
    sleep 0.05
done
grep -q "$JOB_RE" "$M/.jobs" || fail ".jobs never showed the merge of p's s1: $(cat "$M/.jobs")"
t_ls=$(ms ls "$M")
t_snaps=$(ms ls -l "$M/o/snapshots")
t_take=$(ms mkdir "$M/o/snapshots/during")
grep -q "$JOB_RE" "$M/.jobs" || fail "the merge ended before the other operations had been timed: make it bigger"
((t_ls < 1000 && t_snaps < 1000 && t_take < 1000)) ||
    fail "during a merge of p: ls took $t_ls ms, ls of o's snapshots $t_snaps ms, a snapshot of o $t_take ms (bound 1000)"
# The snapshot "during" of o holds what o's active image held.
MODEL[o/during/vda]=${MODEL[o/@/vda]} MODEL[o/#cur]=during
wait "$RM" || fail "rmdir of p's s1 failed: $(cat "$TMP/p.err")"
wait "$SAMPLER"
new_log
merge_logged p vda s1 '[a-z]*'
pass "during the merge: ls ${t_ls} ms, ls of another VM's snapshots ${t_snaps} ms, a snapshot of it ${t_take} ms"

# The samples (those with a total): done only grows, is seen
# strictly between 0 and total, the percent agrees with it, and no value
# short of total lasts more than 1.5 s (updated once a second, plus the
# sampling step).
awk '
    NF >= 5 && $2 == "merge" {
        split($5, dt, "/"); done = dt[1] + 0; total = dt[2] + 0; pct = $6 + 0
        # The total may be learnt once qemu-img reports: until then 0/0.
        if (total == 0) { if (done) { print "done " done " of no total"; bad = 1 } next }
        n++
        if (n > 1 && total != tot0) { print "total changed from " tot0 " to " total; bad = 1 }
        if (n > 1 && done < last) { print "done went back from " last " to " done; bad = 1 }
        if (done > 0 && done < total) mid++
        want = int(100 * done / total)
        if (pct < want - 1 || pct > want + 1) { print "pct " pct "% for " done "/" total; bad = 1 }
        if (n == 1 || done != last) { since = $1; last = done }
        else if (done < total && $1 - since > 1.5 && !stale) { print "done stayed at " done " for " $1 - since " s"; bad = 1; stale = 1 }
        if (n == 1) { first = done; tot0 = total }
    }
    END {
        if (n < 3) { print "only " n " samples showed the merge"; bad = 1 }
        if (!mid) { print "no sample between 0 and total"; bad = 1 }
        if (n >= 3 && last <= first) { print "done never grew (" first " to " last ")"; bad = 1 }
        if (!bad) print "ok " n " samples, " mid " in progress, " first " to " last " of " tot0
        exit bad
    }' "$TMP/samples" >"$TMP/progress" ||
    fail ".jobs progress: $(cat "$TMP/progress"); samples: $(grep merge "$TMP/samples" | head -n 20)"
model_forget p s1
model_ok "$M" p o
store_ok "$S" p o
pass ".jobs during the merge: $(cat "$TMP/progress")"

# ---- 3. the CloudStack concurrent test ----
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
pass "16 deletes at once on 4 VMs (one with a branch): all succeed, every active image reads as before, nothing left over"

# ---- 4. two daemons on one store ----
mount_fs "$S" "$M2"
P2=$DAEMON_PID
# (a) two VMs, one through each daemon, at once.
for v in t1 t2; do
    add_vm $v 1 524288 64
    model_write "$M" $v vda 0 48 0x51
    model_take "$M" $v s1
    model_write "$M" $v vda 24 40 0x52
    model_take "$M" $v s2
    model_write "$M" $v vda 40 2 0x53
done
rmdir "$M/t1/snapshots/s1" 2>"$TMP/t1.err" &
A=$!
rmdir "$M2/t2/snapshots/s1" 2>"$TMP/t2.err" &
B=$!
wait "$A" || fail "delete on t1 through daemon 1, with daemon 2 deleting on t2: $(cat "$TMP/t1.err")"
wait "$B" || fail "delete on t2 through daemon 2, with daemon 1 deleting on t1: $(cat "$TMP/t2.err")"
model_forget t1 s1
model_forget t2 s1
model_ok "$M" t1 t2
model_ok "$M2" t1 t2
store_ok "$S" t1 t2
pass "two daemons delete on two VMs at once: both succeed"

# (b) one VM, a different snapshot through each daemon, at once. Each
# merge copies some 160 MiB, so the two meet.
add_vm t3 1 8388608 32
qemu-img resize -q "$S/t3/disks/vda.qcow2" 512M || fail "cannot grow t3's disk"
model_write "$M" t3 vda 0 20 0x61
model_take "$M" t3 s1
model_write "$M" t3 vda 10 20 0x62
model_take "$M" t3 s2
model_write "$M" t3 vda 30 1 0x63
model_take "$M" t3 s3
model_write "$M" t3 vda 31 1 0x64
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
pass "two daemons delete on one VM at once:$outcome; the chain reads right through both"

# (c) the same snapshot through both daemons: one delete wins.
add_vm t4 1 524288 16
model_write "$M" t4 vda 2 4 0x71
model_take "$M" t4 s1
model_write "$M" t4 vda 3 1 0x72
model_take "$M" t4 s2
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
pass "the same snapshot deleted through both daemons at once: one succeeds, the other gets ENOENT or EBUSY"
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
