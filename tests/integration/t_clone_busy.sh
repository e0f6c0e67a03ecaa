#!/bin/bash
# A long clone is visible and blocks nothing else (SPEC §2 .jobs and the
# clone rows; issue 9 items 6 and 9). How long a copy takes is the
# machine's (a warm cache copied 770 MiB in 0.39 s), so nothing here
# samples a running copy: the daemon's qemu-img is stopped (SIGSTOP,
# qimggate.sh) and looked at while it cannot move.
#   - while `mkdir big/clones/c1` copies, MOUNT/.jobs shows
#     "clone big c1 DONE/TOTAL PCT%" with a constant TOTAL at least the
#     data's size, DONE never going back, PCT = DONE*100/TOTAL, and DONE
#     following the copy as it goes (the man page: qemu-img -p's progress
#     at least once a second): stopped right after qemu-img reported 25,
#     50 and 75 %, .jobs comes to show each of these figures while the
#     copy stands still; the line is gone once mkdir returns; the log has
#     a line naming c1 by the time .jobs shows it and, at the end, one
#     with the duration and the throughput;
#   - meanwhile `ls MOUNT` and `ls MOUNT/other` answer (with the copy
#     stopped, an ls that waited for the clone would never answer);
#   - two clones of big in clones/, one from big's snapshot s1 and a
#     snapshot delete on another VM, started at once, all succeed, and
#     three of them are seen running at once (their qemu-imgs stopped
#     together, their lines in .jobs at one moment); MACs stay apart;
#   - two mkdirs of one name (in clones/, and in clones/ against
#     snapshots/s1/clones/, which the kernel does not serialize), started
#     together, and issued while the first one's copy is stopped: one
#     succeeds, the other fails with EEXIST, and N is one complete clone;
#     an import mkdir MOUNT/N while clone N runs is refused (EEXIST: the
#     clone holds the name).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/clonefix.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate perl pgrep timeout

S=$TMP/store M=$TMP/mnt B=$TMP/mnt/big O=$TMP/mnt/other
# 16 MiB: qemu-img still reports a figure every few percent on the way.
make_big_vm "$S" big 16
make_vm "$S" other 1
# Every clone draws its MACs from the same sequence: only the store's
# MACs and those of clones still copying keep them apart (checked below).
export VMSTOREFS_MAC_SEED=4242
gate_init
mount_fs "$S" "$M" "${GATE_OPT[@]}"
# s0 under s1: s1's image then has a backing file, so a clone of s1 runs
# qemu-img convert (a chainless image is reflinked, with no qemu-img,
# where the file system can).
mkdir "$B/snapshots/s0" || fail "fixture: snapshot big/s0"
chain_big_vm "$M" big
mkdir "$O/snapshots/s" || fail "fixture: snapshot other/s"
qemu-io -f qcow2 -c 'write -q -P 0x77 4M 1M' "$O/disks/vda.qcow2" >/dev/null || fail "fixture: write other"
sync

# jobs_done LINE: DONE of a .jobs line "KIND VM WHAT DONE/TOTAL PCT%".
jobs_done() { local f=${1#* * * }; echo "${f%%/*}"; }
jobs_total() { local f=${1#* * * }; f=${f#*/}; echo "${f%% *}"; }

# answers CMD...: CMD succeeds within 30 s (it must not wait for a copy
# that is stopped: that one would never end).
answers() {
    timeout 30 "$@" >/dev/null || fail "'$*' did not answer while c1's copy was stopped"
}

# (1) c1 stopped before its copy starts, then after it reported 25, 50
# and 75 %. At each stop: mkdir still runs, .jobs comes to show the
# figure qemu-img reported last (0 before it starts), ls answers.
n0=$(wc -l <"$DAEMON_LOG")
gate_arm
gate_stops 25 50 75
mkdir "$B/clones/c1" 2>"$TMP/c1.err" &
pid=$!
gate_wait "$DAEMON_PID" 1
q=${GATED[0]}
[[ $(gate_args "$q") == *" convert "*"/c1/"* ]] || fail "c1: the stopped qemu-img is not c1's convert: $(gate_args "$q")"
samples=() figs=() started_logged=
fig=0
while :; do
    kill -0 "$pid" 2>/dev/null || fail "c1: mkdir returned while its copy was stopped: $(cat "$TMP/c1.err")"
    # The daemon publishes progress on its own tick: wait for the figure.
    end=$((SECONDS + 30))
    while :; do
        line=$(clone_line "$M" big c1)
        if [ -n "$line" ]; then
            want=$(awk -v f="$fig" -v t="$(jobs_total "$line")" 'BEGIN { printf "%d", f / 100 * t }')
            d=$(jobs_done "$line")
            ((d >= want - 1 && d <= want + 1)) && break
        fi
        ((SECONDS < end)) ||
            fail "c1: qemu-img reported $fig % and stands still, .jobs still shows '${line:-nothing}' after 30 s"
        sleep 0.05
    done
    samples+=("$line") figs+=("$fig")
    if [ -z "$started_logged" ]; then
        started_logged=$(tail -n +$((n0 + 1)) "$DAEMON_LOG" | grep -m 1 -w c1)
        [ -n "$started_logged" ] || fail "c1: .jobs shows the clone but the log has no line naming c1"
    fi
    answers ls "$M"
    answers ls "$O"
    awk -v f="$fig" 'BEGIN { exit !(f >= 75) }' && break
    gate_cont "$q"
    gate_progress "$q"
    [ "$GATE_FIG" != eof ] || fail "c1: qemu-img ended before reporting ${figs[*]} and 75 %"
    fig=$GATE_FIG
done
gate_cont "$q"
gate_disarm "$DAEMON_PID"
wait "$pid" || fail "clone c1 failed: $(cat "$TMP/c1.err")"
[ -z "$(clone_line "$M" big c1)" ] || fail "c1: .jobs still shows the clone after mkdir returned"
check_clone "$S" c1

# The samples, each with the figure qemu-img had reported: TOTAL
# constant and at least the data, DONE never back nor past TOTAL, the
# percent DONE's, and DONE changed as the copy went (once per figure).
report=$(for ((i = 0; i < ${#samples[@]}; i++)); do echo "${figs[i]} ${samples[i]}"; done |
    awk -v min=$((BIG_MIB * 1048576)) '
    {
        split($5, dt, "/"); d = dt[1] + 0; tot = dt[2] + 0; pct = $6 + 0
        if (NR == 1) { total = tot; last_d = d }
        if (tot != total) { print "FAIL total changed from " total " to " tot; exit }
        if (tot < min) { print "FAIL total " tot " is less than the " min " bytes of data"; exit }
        if (d > tot) { print "FAIL done " d " exceeds total " tot; exit }
        if (d < last_d) { print "FAIL done went back from " last_d " to " d; exit }
        want = int(d * 100 / tot)
        if (pct < want - 1 || pct > want + 1) { print "FAIL " pct "% for " d "/" tot; exit }
        if (d > 0 && d < tot) mid++
        if (d != last_d) changes++
        last_d = d
        seen = seen " " $1 "%:" pct "%"
    }
    END { printf "OK %d stops (qemu-img%s), %d changes of done, %d strictly between 0 and total\n",
                 NR, seen, changes, mid
          if (changes < 2) print "FAIL done changed only " changes " times"
          if (!mid) print "FAIL no stop saw done strictly between 0 and total" }')
grep -q '^FAIL' <<<"$report" && fail "c1 progress: $(grep '^FAIL' <<<"$report"); samples: $(printf '%s | ' "${samples[@]}")"
pass "c1 .jobs: ${report#OK }"

ended=$(tail -n +$((n0 + 1)) "$DAEMON_LOG" | grep -w c1 |
    grep -E '[0-9.]+ ?(ms|s)\b' | grep -E '[0-9.]+ ?[KMGT]i?B/s' | tail -n 1)
[ -n "$ended" ] || fail "c1: no log line naming c1 with a duration and a throughput: $(tail -n +$((n0 + 1)) "$DAEMON_LOG")"
pass "c1 log: start '$started_logged', end '$ended'"
pass "ls $M and ls $O answered at each of the ${#samples[@]} stops of c1's copy"

# (2) Concurrency: two clones of big in clones/ (serialized by the
# kernel's lock on clones/), one of big's s1 (another directory: really
# concurrent), and a snapshot delete on other (a merge), all at once.
# Each stops at the gate: one of c2/c3, c4 and other's merge are seen
# stopped together, and in .jobs at one moment; then the other of c2/c3.
other_before=$(disk_state "$S" other) || fail "cannot read other's disks"
gate_stops
gate_arm
pids=()
for what in "mkdir $B/clones/c2" "mkdir $B/clones/c3" "mkdir $B/snapshots/s1/clones/c4" "rmdir $O/snapshots/s"; do
    $what 2>"$TMP/conc.${#pids[@]}.err" &
    pids+=($!)
done
gate_wait "$DAEMON_PID" 3
first=("${GATED[@]}")
jobs=$(cat "$M/.jobs")
kinds=$(for p in "${first[@]}"; do gate_args "$p" | awk '{ print $3 }'; done | sort | paste -sd' ')
# (A commit merge is a convert, one per window, vm/commitchunks.h; a
# qemu-img commit where the dependent grew past its parent.)
[[ $kinds == "convert convert convert" || $kinds == "commit convert convert" ||
    $kinds == "convert convert rebase" ]] ||
    fail "stopped together: $kinds, not two clones' convert and a merge"
grep -Eq '^clone big c[23] ' <<<"$jobs" && [ -n "$(grep -E '^clone big c4 ' <<<"$jobs")" ] &&
    grep -Eq '^merge other \.hidden-[0-9a-f]+/vda ' <<<"$jobs" ||
    fail ".jobs while three qemu-img were stopped: $(tr '\n' ';' <<<"$jobs")"
[ "$(grep -Ec '^clone big c[23] ' <<<"$jobs")" -eq 1 ] || fail "c2 and c3 at once in one directory: $(tr '\n' ';' <<<"$jobs")"
at_once=$(tr '\n' ';' <<<"$jobs")
gate_cont "${first[@]}"
gate_wait "$DAEMON_PID" 1
second=$(clone_line "$M" big c2)$(clone_line "$M" big c3)
[ -n "$second" ] || fail "the second clone in clones/ is stopped but not in .jobs: $(cat "$M/.jobs")"
gate_cont "${GATED[@]}"
gate_disarm "$DAEMON_PID"
i=0
for what in "mkdir clones/c2" "mkdir clones/c3" "mkdir snapshots/s1/clones/c4" "rmdir other/snapshots/s"; do
    wait "${pids[i]}" || fail "concurrent $what failed: $(cat "$TMP/conc.$i.err")"
    i=$((i + 1))
done
sync "$O" || fail "sync other (its merge)"
check_clone "$S" c2
check_clone "$S" c3
check_clone "$S" c4 s1
check_source "$S" big
macs=$(cat "$S"/*/domain.xml | grep -o "mac address=['\"][^'\"]*" | sort)
[ -z "$(uniq -d <<<"$macs")" ] || fail "clones made at once share a MAC: $(uniq -d <<<"$macs" | tr '\n' ' ')"
[ ! -e "$S/other/snapshots/s" ] && [ ! -e "$O/snapshots/s" ] || fail "other/snapshots/s is still there"
other_after=$(disk_state "$S" other) || fail "cannot read other's disks"
[ "$other_after" = "$other_before" ] || fail "deleting other/snapshots/s changed what other reads"
read_pattern "$S/other/disks/vda.qcow2" 0x10 0 1M
read_pattern "$S/other/disks/vda.qcow2" 0x77 4M 1M
check_store "$S"
pass "two clones of big, a clone of big's s1 and a snapshot delete on other, at once (in .jobs together: $at_once then $second): all done, MACs apart"

# (3) One name twice. race N CMD1 CMD2: the commands started together
# (however they interleave): exactly one succeeds, the other fails with
# EEXIST. Sets WINNER to the command that succeeded.
race() {
    local n=$1 i ok=0 pids=() out
    shift
    WINNER=
    for ((i = 1; i <= $#; i++)); do
        ${!i} 2>"$TMP/race.$i.err" &
        pids+=($!)
    done
    for ((i = 1; i <= $#; i++)); do
        if wait "${pids[i - 1]}"; then
            ok=$((ok + 1)) WINNER=${!i}
        else
            out=$(cat "$TMP/race.$i.err")
            grep -q "File exists" <<<"$out" || fail "$n: '${!i}' failed but not with EEXIST: $out"
        fi
    done
    [ "$ok" -eq 1 ] || fail "$n: $ok of $# mkdirs succeeded"
    case $WINNER in
        */snapshots/s1/*) check_clone "$S" "$n" s1 ;;
        *) check_clone "$S" "$n" ;;
    esac
}
race d1 "mkdir $B/clones/d1" "mkdir $B/clones/d1"
pass "mkdir clones/d1 twice, started together: one clone, the other EEXIST"
race d2 "mkdir $B/clones/d2" "mkdir $B/snapshots/s1/clones/d2"
pass "mkdir clones/d2 and snapshots/s1/clones/d2, started together: one clone (${WINNER#"$M"/}), the other EEXIST"

# in_mkdir PID: waits (up to 30 s) until PID is blocked in mkdir(2).
in_mkdir() {
    local end=$((SECONDS + 30)) nr _ nrs
    nrs=" $(perl -e 'require "syscall.ph"; print join(" ", grep { defined } map { eval { &$_ } } qw(SYS_mkdir SYS_mkdirat))') "
    while :; do
        read -r nr _ <"/proc/$1/syscall" 2>/dev/null && [[ $nrs == *" $nr "* ]] && return 0
        ((SECONDS < end)) || break
        sleep 0.05
    done
    fail "process $1 never got into mkdir(2)"
}

# held N CMD1 CMD2 [in-kernel]: CMD1 runs until its clone's copy is
# stopped at the gate; CMD2 (the same name) is issued then, while the
# clone is being made: CMD1 succeeds, CMD2 fails with EEXIST. Where the
# kernel serializes the two (in-kernel: one directory) CMD2 waits in
# mkdir(2) until CMD1 is done; elsewhere the daemon refuses it while the
# copy is stopped (the man page: EEXIST when a clone named N is being
# made). Meanwhile an import mkdir MOUNT/N is refused (EEXIST: the name
# is the clone's).
held() {
    local n=$1 a=$2 b=$3 how=${4:-} pa pb q end
    gate_arm
    $a 2>"$TMP/held.a.err" &
    pa=$!
    gate_wait "$DAEMON_PID" 1
    q=${GATED[0]}
    [ -n "$(clone_line "$M" big "$n")" ] || fail "$n: stopped, but not in .jobs: $(cat "$M/.jobs")"
    $b 2>"$TMP/held.b.err" &
    pb=$!
    if [ "$how" = in-kernel ]; then
        in_mkdir "$pb"
    else
        end=$((SECONDS + 30))
        while kill -0 "$pb" 2>/dev/null; do
            ((SECONDS < end)) || fail "$n: '$b' waited 30 s for the clone stopped at the gate instead of EEXIST"
            sleep 0.05
        done
    fi
    # Importing a VM (mkdir at the root) is not supported yet: refused
    # (EPERM) like any import, also under the name of a clone being made,
    # and it must not disturb the clone.
    expect_fail "mkdir MOUNT/$n while clone $n runs" "File exists" mkdir "$M/$n"
    kill -0 "$pa" 2>/dev/null || fail "$n: '$a' returned while its copy was stopped"
    gate_cont "$q"
    gate_disarm "$DAEMON_PID"
    wait "$pa" || fail "$n: '$a' failed: $(cat "$TMP/held.a.err")"
    ! wait "$pb" || fail "$n: '$b' succeeded while '$a' made the clone"
    grep -q "File exists" "$TMP/held.b.err" || fail "$n: '$b' failed but not with EEXIST: $(cat "$TMP/held.b.err")"
    case $a in
        */snapshots/s1/*) check_clone "$S" "$n" s1 ;;
        *) check_clone "$S" "$n" ;;
    esac
}
held e1 "mkdir $B/clones/e1" "mkdir $B/clones/e1" in-kernel
pass "mkdir clones/e1 while clone e1 copies (stopped): the second waits in mkdir(2), then EEXIST; mkdir MOUNT/e1 meanwhile EEXIST; one clone"
held e2 "mkdir $B/snapshots/s1/clones/e2" "mkdir $B/clones/e2"
pass "mkdir clones/e2 while snapshots/s1/clones/e2 copies (stopped): refused with EEXIST meanwhile; mkdir MOUNT/e2 EEXIST; one clone"

unmount_fs "$M"
