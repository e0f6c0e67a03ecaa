#!/bin/bash
# A long clone is visible and blocks nothing else (SPEC §2 .jobs and the
# clone rows; issue 9 items 6 and 9):
#   - while `mkdir big/clones/c1` copies 768 MiB, MOUNT/.jobs shows
#     "clone big c1 DONE/TOTAL PCT%" with a constant TOTAL at least the
#     data's size, DONE never going back, PCT = DONE*100/TOTAL, and DONE
#     changing at least once a second; the line is gone once mkdir
#     returns; the log has a line naming c1 by the time .jobs shows it
#     and, at the end, one with the duration and the throughput;
#   - meanwhile `ls MOUNT` and `ls MOUNT/other` answer within 100 ms;
#   - two clones of big in clones/, one from big's snapshot s1 and a
#     snapshot delete on another VM, started at once, all succeed;
#   - two mkdirs of one name at once (in clones/, and in clones/ against
#     snapshots/s1/clones/, which the kernel does not serialize), and an
#     import mkdir MOUNT/N while clone N runs: one succeeds, the others
#     fail with EEXIST, and N is one complete clone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/clonefix.sh"
need_fuse
need virt-xml-validate

S=$TMP/store M=$TMP/mnt B=$TMP/mnt/big O=$TMP/mnt/other
make_big_vm "$S" big 768
make_vm "$S" other 1
# Every clone draws its MACs from the same sequence: only the store's
# MACs and those of clones still copying keep them apart (checked below).
export VMSTOREFS_MAC_SEED=4242
mount_fs "$S" "$M"
chain_big_vm "$M" big
mkdir "$O/snapshots/s" || fail "fixture: snapshot other/s"
qemu-io -f qcow2 -c 'write -q -P 0x77 4M 1M' "$O/disks/vda.qcow2" >/dev/null || fail "fixture: write other"
sync

# (1) Progress, log lines and the latency of ls while c1 runs. Every
# ~50 ms: the .jobs line (with its time), and when the clone shows, an ls
# of the root and of another VM, timed.
n0=$(wc -l <"$DAEMON_LOG")
mkdir "$B/clones/c1" 2>"$TMP/c1.err" &
pid=$!
samples=() lat_root=() lat_other=() started_logged=
while kill -0 "$pid" 2>/dev/null; do
    now=$EPOCHREALTIME
    line=$(clone_line "$M" big c1)
    if [ -n "$line" ]; then
        samples+=("$now $line")
        if [ -z "$started_logged" ]; then
            started_logged=$(tail -n +$((n0 + 1)) "$DAEMON_LOG" | grep -m 1 -w c1)
            [ -n "$started_logged" ] || fail "c1: .jobs shows the clone but the log has no line naming c1"
        fi
        t0=$EPOCHREALTIME
        ls "$M" >/dev/null || fail "ls $M failed during the clone"
        lat_root+=("$(ms_since "$t0")")
        t0=$EPOCHREALTIME
        ls "$O" >/dev/null || fail "ls $O failed during the clone"
        lat_other+=("$(ms_since "$t0")")
    fi
    sleep 0.05
done
wait "$pid" || fail "clone c1 failed: $(cat "$TMP/c1.err")"
[ -z "$(clone_line "$M" big c1)" ] || fail "c1: .jobs still shows the clone after mkdir returned"
check_clone "$S" c1
[ "${#samples[@]}" -ge 3 ] || fail "c1: .jobs showed the clone in only ${#samples[@]} samples"

# The samples: "TIME clone big c1 DONE/TOTAL PCT%".
report=$(printf '%s\n' "${samples[@]}" | awk -v min=$((BIG_MIB * 1048576)) '
    {
        t = $1; split($5, dt, "/"); d = dt[1] + 0; tot = dt[2] + 0; pct = $6 + 0
        if (NR == 1) { total = tot; last_d = d; last_t = t; first_t = t }
        if (tot != total) { print "FAIL total changed from " total " to " tot; exit }
        if (tot < min) { print "FAIL total " tot " is less than the " min " bytes of data"; exit }
        if (d > tot) { print "FAIL done " d " exceeds total " tot; exit }
        if (d < last_d) { print "FAIL done went back from " last_d " to " d; exit }
        want = int(d * 100 / tot)
        if (pct < want - 1 || pct > want + 1) { print "FAIL " pct "% for " d "/" tot; exit }
        if (d != last_d) { gap = t - last_t; if (gap > maxgap) maxgap = gap; last_t = t; changes++ }
        else if (d < tot && t - last_t > maxgap) maxgap = t - last_t
        last_d = d
    }
    END { printf "OK %d samples over %.2f s, %d changes of done, longest %.2f s without one (done < total)\n",
                 NR, last_t - first_t, changes, maxgap
          if (changes < 2) print "FAIL done changed only " changes " times" }')
grep -q '^FAIL' <<<"$report" && fail "c1 progress: $(grep '^FAIL' <<<"$report"); samples: $(printf '%s | ' "${samples[@]}")"
maxgap=$(sed -n 's/.*longest \([0-9.]*\) s.*/\1/p' <<<"$report")
# Sampled every ~50 ms (plus an ls each): allow that much on top of 1 s.
awk -v g="$maxgap" 'BEGIN { exit !(g <= 1.25) }' ||
    fail "c1: .jobs went $maxgap s without progress (at least once a second wanted)"
pass "c1 .jobs: ${report#OK }"

ended=$(tail -n +$((n0 + 1)) "$DAEMON_LOG" | grep -w c1 |
    grep -E '[0-9.]+ ?(ms|s)\b' | grep -E '[0-9.]+ ?[KMGT]i?B/s' | tail -n 1)
[ -n "$ended" ] || fail "c1: no log line naming c1 with a duration and a throughput: $(tail -n +$((n0 + 1)) "$DAEMON_LOG")"
pass "c1 log: start '$started_logged', end '$ended'"

sorted() { printf '%s\n' "$@" | sort -n | tr '\n' ' '; }
[ "${#lat_root[@]}" -ge 3 ] || fail "only ${#lat_root[@]} ls samples while the clone ran"
# An ls that waited on the clone would take as long as the copy (seconds):
# every one must end within a second, and the median within 100 ms (one
# slow sample on a loaded machine is the machine, not the mount;
# scripts/bench-clone reports the figures).
all=$(sorted "${lat_root[@]}" "${lat_other[@]}")
for ms in $all; do
    [ "$ms" -lt 1000 ] || fail "an ls during the clone took $ms ms (root: $(sorted "${lat_root[@]}"); other: $(sorted "${lat_other[@]}"))"
done
read -ra sl <<<"$all"
median=${sl[${#sl[@]} / 2]}
[ "$median" -lt 100 ] || fail "ls during the clone: median $median ms (root: $(sorted "${lat_root[@]}"); other: $(sorted "${lat_other[@]}"))"
pass "ls during the clone, ms: root $(sorted "${lat_root[@]}"); other $(sorted "${lat_other[@]}")"

# (2) Concurrency: two clones of big in clones/ (serialized by the
# kernel's lock on clones/), one of big's s1 (another directory: really
# concurrent), and a snapshot delete on other, all at once.
other_before=$(disk_state "$S" other)
pids=()
for what in "mkdir $B/clones/c2" "mkdir $B/clones/c3" "mkdir $B/snapshots/s1/clones/c4" "rmdir $O/snapshots/s"; do
    $what 2>"$TMP/conc.${#pids[@]}.err" &
    pids+=($!)
done
i=0
for what in "mkdir clones/c2" "mkdir clones/c3" "mkdir snapshots/s1/clones/c4" "rmdir other/snapshots/s"; do
    wait "${pids[i]}" || fail "concurrent $what failed: $(cat "$TMP/conc.$i.err")"
    i=$((i + 1))
done
check_clone "$S" c2
check_clone "$S" c3
check_clone "$S" c4 s1
check_source "$S" big
macs=$(cat "$S"/*/domain.xml | grep -o "mac address=['\"][^'\"]*" | sort)
[ -z "$(uniq -d <<<"$macs")" ] || fail "clones made at once share a MAC: $(uniq -d <<<"$macs" | tr '\n' ' ')"
[ ! -e "$S/other/snapshots/s" ] && [ ! -e "$O/snapshots/s" ] || fail "other/snapshots/s is still there"
[ "$(disk_state "$S" other)" = "$other_before" ] || fail "deleting other/snapshots/s changed what other reads"
read_pattern "$S/other/disks/vda.qcow2" 0x10 0 1M
read_pattern "$S/other/disks/vda.qcow2" 0x77 4M 1M
check_store "$S"
pass "two clones of big, a clone of big's s1 and a snapshot delete on other, at once: all done"

# (3) One name twice at once. race N CMD1 CMD2...: the commands started
# together; exactly one succeeds, the others fail with EEXIST. Sets
# WINNER to the command that succeeded.
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
pass "mkdir clones/d1 twice at once: one clone, the other EEXIST"
race d2 "mkdir $B/clones/d2" "mkdir $B/snapshots/s1/clones/d2"
pass "mkdir clones/d2 and snapshots/s1/clones/d2 at once: one clone (${WINNER#"$M"/}), the other EEXIST"

# An import of the name a running clone is creating is refused too.
mkdir "$B/clones/d3" 2>"$TMP/d3.err" &
pid=$!
wait_clone_running "$M" big d3 "$pid"
# Importing a VM (mkdir at the root) is not supported yet: refused
# (EPERM) like any import, and it must not disturb the clone.
expect_fail "mkdir MOUNT/d3 while clone d3 runs" "Operation not permitted" mkdir "$M/d3"
wait "$pid" || fail "clone d3 failed after the refused import: $(cat "$TMP/d3.err")"
check_clone "$S" d3
pass "mkdir MOUNT/d3 while clone d3 runs: refused; the clone is complete"

unmount_fs "$M"
