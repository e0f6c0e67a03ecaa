# Fixtures and checks of the clone robustness tests (sourced after lib.sh
# and snapfix.sh, not run).
#
#   make_big_vm STORE NAME MIB     a one-disk VM holding MIB MiB of data
#   chain_big_vm MNT NAME          snapshot s1 through the mount, then a write
#   check_clone STORE N [s1]       N is a complete, standalone clone
#   clone_line MNT VM N            N's line in MNT/.jobs ("" if none)
#   wait_clone_running MNT VM N PID  until .jobs shows the clone
#   no_partial_clone STORE N       nothing of N anywhere, journal and tmp empty
#   qimg_children PID              the qemu-img processes PID started

# make_big_vm STORE NAME MIB: make_vm's one-disk VM (0x10 at 0+1M) with
# vda grown to 4G and MIB MiB of 0x5a written from 1M on: a clone's copy
# reports progress figure by figure, and qimggate.sh can stop it at one
# (however fast this machine copies).
make_big_vm() {
    local img=$1/$2/disks/vda.qcow2
    make_vm "$1" "$2" 1
    qemu-img resize -q -f qcow2 "$img" 4G &&
        qemu-io -f qcow2 -c "write -q -P 0x5a 1M ${3}M" "$img" >/dev/null ||
        fail "make_big_vm: cannot fill $img"
    BIG_MIB=$3
}

# chain_big_vm MNT NAME: snapshot s1 taken through the mount, then 0x6b
# written at 2M+1M of the active disk, so a clone of the current state
# collapses a chain (s1's image below the overlay) and a clone of s1
# must not see the write. Returns once the daemon has let go of the
# write handle (the kernel releases a closed FUSE file asynchronously,
# and until then the image is open for writing: a clone is EBUSY).
chain_big_vm() {
    local ino i
    mkdir "$1/$2/snapshots/s1" || fail "chain_big_vm: mkdir $2/snapshots/s1"
    qemu-io -f qcow2 -c 'write -q -P 0x6b 2M 1M' "$1/$2/disks/vda.qcow2" >/dev/null ||
        fail "chain_big_vm: write through the mount"
    ino=$(stat -c %i "$1/$2/disks/vda.qcow2")
    for ((i = 0; i < 50; i++)); do
        grep -q ":$ino " /proc/locks || return 0
        sleep 0.1
    done
    fail "chain_big_vm: $2's active image is still locked 5 s after qemu-io exited"
}

# check_clone STORE N [s1]: N is a VM in STORE whose every image is a
# standalone qcow2 (no backing file) reading as make_big_vm's VM did after
# chain_big_vm (or, with s1, as at snapshot s1), and check_store finds N
# sound (domain.xml validates, qemu-img check passes, journal and tmp are
# empty).
check_clone() {
    local store=$1 n=$2 at=${3:-} img out mid
    img=$store/$n/disks/vda.qcow2
    [ -f "$img" ] || fail "clone $n: no $img"
    out=$(qemu-img info -U --output=json "$img" 2>&1) || fail "clone $n: qemu-img info: $out"
    ! grep -q '"backing-filename"' <<<"$out" || fail "clone $n: $img has a backing file"
    [ -z "$(ls -A "$store/$n/snapshots" 2>/dev/null)" ] || fail "clone $n has snapshots"
    # (read_patterns: the same reads, in one qemu-io)
    local -a reads=("$img" 0x10 0 1M "$img" 0x5a 1M 1M)
    if [ "$at" = s1 ]; then
        reads+=("$img" 0x5a 2M 1M)
    else
        reads+=("$img" 0x6b 2M 1M)
    fi
    mid=$((BIG_MIB / 2))
    reads+=("$img" 0x5a "${mid}M" 1M "$img" 0x5a "${BIG_MIB}M" 1M "$img" 0 "$((BIG_MIB + 1))M" 1M)
    read_patterns "${reads[@]}"
    check_store "$store" "$n"
}

# check_source STORE VM: the source still reads as after chain_big_vm.
check_source() {
    local img=$1/$2/disks/vda.qcow2
    # (read_patterns: the same reads, in one qemu-io)
    read_patterns "$img" 0x10 0 1M "$img" 0x6b 2M 1M "$img" 0x5a "$((BIG_MIB / 2))M" 1M \
        "$img" 0x5a "${BIG_MIB}M" 1M "$1/$2/snapshots/s1/vda.qcow2" 0x5a 2M 1M
}

# clone_line MNT VM N: the .jobs line of the clone of VM named N, as the
# SPEC and the jobs registry render it: "clone VM N DONE/TOTAL PCT%".
clone_line() {
    grep -E "^clone $2 $3 [0-9]+/[0-9]+ [0-9]+%$" "$1/.jobs" 2>/dev/null | head -n 1
}

# wait_clone_running MNT VM N PID: poll .jobs (every 20 ms, up to 60 s)
# until the clone shows there; fails if PID (the mkdir) ended first.
wait_clone_running() {
    local i
    for ((i = 0; i < 3000; i++)); do
        [ -n "$(clone_line "$1" "$2" "$3")" ] && return 0
        kill -0 "$4" 2>/dev/null || fail "mkdir of clone $3 ended before .jobs showed it (.jobs: $(cat "$1/.jobs"))"
        sleep 0.02
    done
    fail "clone $3 of $2 never showed in .jobs"
}

# no_partial_clone STORE N: no STORE/N and nothing in the journal or tmp/.
no_partial_clone() {
    [ ! -e "$1/$2" ] || fail "a partial clone $2 is left in the store: $(ls -A "$1/$2")"
    journal_empty "$1"
}

# qimg_children PID: the pids of the qemu-img processes PID started.
qimg_children() {
    pgrep -P "$1" -x qemu-img | tr '\n' ' '
}

# wait_gone SECONDS PID...: true once none of the PIDs is alive.
wait_gone() {
    local secs=$1 i p alive
    shift
    for ((i = 0; i < secs * 10; i++)); do
        alive=0
        for p in "$@"; do
            kill -0 "$p" 2>/dev/null && alive=1
        done
        [ "$alive" -eq 0 ] && return 0
        sleep 0.1
    done
    return 1
}
