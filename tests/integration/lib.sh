# Shared verbs of the integration tests (sourced, not run).
#
# Every test mounts the real filesystem on a temp dir and acts on it with
# the real tools. The EXIT trap unmounts (lazily if it must) and kills any
# daemon the test started, so a failing test never leaves a mount behind.
# Exit codes follow automake: 0 pass, 1 fail, 77 skip.

set -u

: "${VMSTOREFS:?VMSTOREFS must point to the built vmstorefs binary}"
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vmstorefs-test.XXXXXX")
DAEMON_LOG=$TMP/daemon.log
MOUNTED=()
DAEMONS=()
CLEANUP_HOOKS=()    # functions cleanup() calls first (e.g. libvirt.sh's)

cleanup() {
    local m p h
    for h in "${CLEANUP_HOOKS[@]}"; do
        "$h"
    done
    for m in "${MOUNTED[@]}"; do
        if mountpoint -q "$m" 2>/dev/null || grep -qs " $m " /proc/self/mounts; then
            fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
        fi
    done
    for p in "${DAEMONS[@]}"; do
        kill -9 "$p" 2>/dev/null
    done
    # The test's own time, in its log: what orders the suite (longest
    # first in Makefile.am) and shows where the suite's minutes go; the
    # CPU time of what it ran (user, system; daemons it reaped included)
    # does not depend on what else loads the machine.
    local cpu=""
    times >"$TMP/times" 2>/dev/null && cpu=$(tail -n 1 "$TMP/times")
    rm -rf "$TMP"
    echo "# ${0##*/}: ${SECONDS} s (cpu of children: ${cpu:-?})"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -s "$DAEMON_LOG" ]; then
        echo "--- daemon log ---" >&2
        tail -n ${FAIL_LOG_LINES:-20} "$DAEMON_LOG" >&2
    fi
    exit 1
}
skip() {
    echo "SKIP: $*"
    exit 77
}
pass() {
    echo "ok - $*"
}
# The crash loops (t_*_crash.sh) crash an operation at every durable
# point, or with VMSTOREFS_CRASH_STRIDE=K at every K-th one, from a first
# point in 1..K (VMSTOREFS_CRASH_FIRST, else drawn at random and printed so
# a failing run can be repeated). scripts/run-tests samples so (K=6, the
# suite's time); scripts/crash-campaign, which CI runs too, crashes at
# every point. crash_sampling sets CRASH_FIRST and CRASH_STRIDE.
crash_sampling() {
    CRASH_STRIDE=${VMSTOREFS_CRASH_STRIDE:-1}
    [[ $CRASH_STRIDE =~ ^[1-9][0-9]*$ ]] || fail "VMSTOREFS_CRASH_STRIDE=$CRASH_STRIDE: not a count"
    CRASH_FIRST=${VMSTOREFS_CRASH_FIRST:-$((1 + RANDOM % CRASH_STRIDE))}
    [[ $CRASH_FIRST =~ ^[1-9][0-9]*$ ]] || fail "VMSTOREFS_CRASH_FIRST=$CRASH_FIRST: not a point"
    if ((CRASH_STRIDE > 1)); then
        echo "# crash points: one in $CRASH_STRIDE, from point $CRASH_FIRST" \
            "(VMSTOREFS_CRASH_STRIDE=$CRASH_STRIDE VMSTOREFS_CRASH_FIRST=$CRASH_FIRST to repeat;" \
            "VMSTOREFS_CRASH_STRIDE=1 for every point)"
    fi
}

# crash_below LOW WANT: a crash loop's run finished the operation without
# reaching its crash point (CRASH_FINISHED: the lowest such point), and
# the loop has not seen what it must (WANT, non-empty, says what: no
# crash at all when the operation has fewer points than CRASH_FIRST, say).
# Its points below CRASH_FINISHED, down to LOW+1 (LOW: the highest point
# tried), are tried next, highest first: the first that crashes is the
# operation's last point. Status 0 and CRASH_NEXT set to that point less
# the stride (the loop adds it back); status 1 when nothing is wanted or
# no point is left to try. (Every point is the campaign's, stride 1.)
crash_below() {
    local low=${1:-0} want=$2
    [ -n "$want" ] && ((CRASH_FINISHED - 1 > low)) || return 1
    CRASH_NEXT=$((CRASH_FINISHED - 1 - CRASH_STRIDE))
    echo "# point $CRASH_FINISHED not reached, $want: trying point $((CRASH_FINISHED - 1))"
}

need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
    done
}
need_fuse() {
    [ -c /dev/fuse ] || skip "no /dev/fuse"
    need fusermount3 mountpoint qemu-img qemu-io
}

# xfs_reflink: an XFS file system with reflinks (reflink=1) on a loop
# device, mounted on $X ($TMP/xfs), 1 GiB, detached on exit.
XFS_LOOP=""
detach_xfs() {
    mountpoint -q "$X" && umount -l "$X"
    [ -n "$XFS_LOOP" ] && losetup -d "$XFS_LOOP" 2>/dev/null
    return 0
}
xfs_reflink() {
    need mkfs.xfs losetup mount umount df
    [ "$(id -u)" -eq 0 ] || fail "a loop device needs root (CI runs the suite as root)"
    X=$TMP/xfs
    CLEANUP_HOOKS+=(detach_xfs)
    truncate -s 1G "$TMP/xfs.img" && mkfs.xfs -q -m reflink=1 "$TMP/xfs.img" || fail "mkfs.xfs -m reflink=1"
    XFS_LOOP=$(losetup -f --show "$TMP/xfs.img") || fail "no loop device"
    mkdir -p "$X" && mount "$XFS_LOOP" "$X" || fail "cannot mount the XFS file system"
}

# nap SECONDS: sleep, as a read -t on a FIFO nobody writes to: no
# process (the mount polls of the crash tests add up to thousands).
nap() {
    [ -p "$TMP/nap.fifo" ] || mkfifo "$TMP/nap.fifo" 2>/dev/null || { sleep "$1"; return 0; }
    read -r -t "$1" _ <>"$TMP/nap.fifo"
    return 0
}

# mounted MNT: mountpoint -q MNT, asked once /proc/self/mountinfo lists
# MNT's real path (escaped as there): until then the polls cost no
# process. (mountpoint itself decides, as before: it stats MNT first,
# which on a FUSE mount waits for the daemon to serve.)
declare -A REAL_MNT=()
mounted() {
    local a b c d mp rest want
    [ -n "${REAL_MNT[$1]:-}" ] || REAL_MNT[$1]=$(realpath -m -- "$1")
    want=${REAL_MNT[$1]//\\/\\134}
    want=${want// /\\040} want=${want//$'\t'/\\011} want=${want//$'\n'/\\012}
    while read -r a b c d mp rest; do
        [ "$mp" = "$want" ] && { mountpoint -q "$1"; return; }
    done </proc/self/mountinfo
    return 1
}

# mount_fs STORE MNT [ARGS...]: start a foreground daemon and wait until the
# mount is there (or the daemon has died). Sets DAEMON_PID.
mount_fs() {
    local store=$1 mnt=$2
    shift 2
    mkdir -p "$mnt"
    "$VMSTOREFS" "$store" "$mnt" -f "$@" >>"$DAEMON_LOG" 2>&1 &
    DAEMON_PID=$!
    DAEMONS+=("$DAEMON_PID")
    MOUNTED+=("$mnt")
    local i
    for ((i = 0; i < 100; i++)); do
        mounted "$mnt" && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon exited before mounting $mnt"
        nap 0.1
    done
    fail "$mnt not mounted after 10 s"
}

# unmount_fs MNT: unmount and require the daemon to exit with status 0.
unmount_fs() {
    local mnt=$1 status=0
    fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt failed"
    wait "$DAEMON_PID" || status=$?
    [ "$status" -eq 0 ] || fail "daemon exited with status $status after unmount"
}

# forget_daemon PID: a daemon this test has reaped (wait) leaves the list
# the EXIT trap kills, so a recycled pid is never signalled.
forget_daemon() {
    local p keep=()
    for p in "${DAEMONS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    DAEMONS=("${keep[@]}")
}

# rename_syscall FROM TO: rename(2) itself, with no fallback (GNU mv
# copies on EXDEV and looks at the target first).
rename_syscall() {
    perl -e 'rename($ARGV[0], $ARGV[1]) or die "$!\n"' "$@"
}

# names_in DIR: in NAMES, what `ls -A DIR | sort` prints, joined by
# blanks, from a glob (sorted as sort sorts: the same collation); the
# names in NAMES_A too. "(not a directory)" when DIR is not one (ls would
# have said why). The model checks list after every step: no process.
names_in() {
    local f dg=0 ng=0
    NAMES="" NAMES_A=()
    [ -d "$1" ] || { NAMES="(not a directory)"; return 0; }
    shopt -q dotglob && dg=1
    shopt -q nullglob && ng=1
    shopt -s dotglob nullglob
    for f in "$1"/*; do
        NAMES+="${NAMES:+ }${f##*/}"
        NAMES_A+=("${f##*/}")
    done
    ((dg)) || shopt -u dotglob
    ((ng)) || shopt -u nullglob
    return 0
}

# sort_words WORD...: SORTED=(the WORDs in the order sort(1) gives them:
# bash's [[ < ]] collates as the locale does, as sort does). An insertion
# sort, for the short lists of the model checks, without a process.
sort_words() {
    local w i
    SORTED=()
    for w in "$@"; do
        i=${#SORTED[@]}
        while ((i > 0)) && [[ ${SORTED[i - 1]} > $w ]]; do
            SORTED[i]=${SORTED[i - 1]}
            i=$((i - 1))
        done
        SORTED[i]=$w
    done
}

# xpath_cached FILE XPATH: XPATH_RESULT=what `xmllint --xpath XPATH FILE
# 2>&1` prints, asked once per XPath and content of FILE (read by bash, the
# key): the model checks ask after every step, a definition changes seldom.
declare -A XPATH_CACHE=()
xpath_cached() {
    local x="" key
    IFS= read -r -d '' x <"$1"
    key=$2$'\1'$x
    [ -n "${XPATH_CACHE[$key]+set}" ] || XPATH_CACHE[$key]=$(xmllint --xpath "$2" "$1" 2>&1)
    XPATH_RESULT=${XPATH_CACHE[$key]}
}

# log_since N: LOG_ADDED=(the daemon log's lines after its first N, each
# without its newline), LOG_POS=how many whole lines it has now; a line
# the daemon is still writing (no newline yet) is left for the next call.
# Read by mapfile rather than tail/wc in $(...): the model checks ask
# after every step, and each process costs here.
log_since() {
    local -a lines=()
    LOG_ADDED=()
    mapfile -s "$1" lines <"$DAEMON_LOG"
    LOG_POS=$1
    local l
    for l in "${lines[@]}"; do
        [[ $l == *$'\n' ]] || break
        LOG_ADDED+=("${l%$'\n'}")
        LOG_POS=$((LOG_POS + 1))
    done
}

# expect_refusal "what" PATTERN LOGLINE CMD...: CMD fails saying PATTERN,
# and the daemon logs exactly one line for it, matching LOGLINE (SPEC: a
# refused operation logs one clear line saying why).
expect_refusal() {
    local what=$1 pattern=$2 logline=$3 n0 added
    shift 3
    log_since 0
    n0=$LOG_POS
    expect_fail "$what" "$pattern" "$@"
    log_since "$n0"
    added=$(printf '%s\n' "${LOG_ADDED[@]}")
    [ "${#LOG_ADDED[@]}" -eq 1 ] && grep -q -- "$logline" <<<"$added" ||
        fail "$what: expected one log line matching '$logline', got: $added"
}

# expect_fail "what" PATTERN CMD...: CMD must fail and say PATTERN on stderr.
expect_fail() {
    local what=$1 pattern=$2
    shift 2
    local err
    if err=$("$@" 2>&1 >/dev/null); then
        fail "$what: succeeded but should have failed"
    fi
    grep -q -- "$pattern" <<<"$err" || fail "$what: expected '$pattern', got: $err"
}

# A tree listing with checksums: proves an operation changed nothing.
# tree_state DIR: names, sizes, modes, owners, mtimes and contents, to
# compare before and after something that must change nothing.
# The lock files under .vmstorefs/locks are left out: an operation makes
# its VM's lock file before it can refuse, and they hold no data.
tree_state() {
    (cd "$1" && find . -path ./.vmstorefs/locks -prune -o -printf '%p %s %m %U:%G %T@\n' | sort &&
        find . -path ./.vmstorefs/locks -prune -o -type f -exec b2sum {} + | sort)
}

# bad_mount STORE MNT "what" PATTERN CMD...: CMD (vmstorefs with its
# arguments) must exit non-zero within 20 s with exactly one line on
# stderr matching PATTERN, mount nothing on MNT and leave STORE as it was.
bad_mount() {
    local store=$1 mnt=$2 what=$3 pattern=$4 status=0 before
    shift 4
    before=$(tree_state "$store")
    timeout 20 "$@" >"$TMP/bad.out" 2>"$TMP/bad.err" || status=$?
    [ "$status" -ne 0 ] || fail "$what: exit status 0"
    [ "$status" -ne 124 ] || fail "$what: hung"
    [ "$(wc -l <"$TMP/bad.err")" -eq 1 ] || fail "$what: expected one line, got: $(cat "$TMP/bad.err")"
    grep -q -- "$pattern" "$TMP/bad.err" || fail "$what: expected '$pattern', got: $(cat "$TMP/bad.err")"
    mountpoint -q "$mnt" && fail "$what: something got mounted"
    [ "$(tree_state "$store")" = "$before" ] || fail "$what: the store changed"
    pass "$what: $(cat "$TMP/bad.err")"
}

sample_store() {
    "$TOP_SRCDIR/scripts/make-sample-store" "$1" >/dev/null || fail "make-sample-store failed"
}

# read_pattern IMAGE PATTERN OFFSET LEN: guest-visible data check (qemu-io
# exits non-zero on "Pattern verification failed").
read_pattern() {
    local out
    out=$(qemu-io -r -f qcow2 -c "read -P $2 $3 $4" "$1" 2>&1) ||
        fail "$1: expected pattern $2 at $3+$4: $out"
}

# read_patterns IMAGE PATTERN OFFSET LEN [IMAGE PATTERN OFFSET LEN]...:
# read_pattern of each, in this order, in one qemu-io (an open and a
# close around each run of reads of one image). When that fails,
# read_pattern runs them one by one and fails at the first that does not
# read so, with its message; if none does, with what the batch said. An
# image path with blanks (a qemu-io command cannot hold it) goes one by
# one from the start.
read_patterns() {
    local i cur="" out batch=1
    local -a a=("$@") cmds=()
    for ((i = 0; i < ${#a[@]}; i += 4)); do
        [[ ${a[i]} != *[[:space:]]* ]] || { batch=0; break; }
        if [ "${a[i]}" != "$cur" ]; then
            [ -z "$cur" ] || cmds+=(-c close)
            cur=${a[i]}
            cmds+=(-c "open -r -o driver=qcow2 $cur")
        fi
        cmds+=(-c "read -P ${a[i + 1]} ${a[i + 2]} ${a[i + 3]}")
    done
    if ((batch)); then
        ((${#cmds[@]})) || return 0
        out=$(qemu-io "${cmds[@]}" -c close 2>&1) && [[ ${out,,} != *"verification failed"* ]] && return 0
    fi
    for ((i = 0; i < ${#a[@]}; i += 4)); do
        read_pattern "${a[i]}" "${a[i + 1]}" "${a[i + 2]}" "${a[i + 3]}"
    done
    ((batch)) || return 0
    fail "the reads read as expected one by one, but not in one qemu-io: $(grep -v -e '^read ' -e 'ops/sec' <<<"$out" | head -n 3)"
}

# Files check_store found sound, by kind and content: the same bytes are
# not checked twice (the crash tests see the same files over and over).
declare -A STORE_CHECKED=()
# FILE_SUM[path]: the BLAKE2b sum of each file the last file_sums call
# read. (b2sum, not sha256sum: as strong for telling contents apart, and
# 2.5x less CPU here; the model checks sum every image after every step.)
declare -A FILE_SUM=()

# file_sums FILE...: FILE_SUM holds the sum of each FILE, all read by
# one b2sum (a file it cannot read has no entry).
file_sums() {
    local rec
    FILE_SUM=()
    (($#)) || return 0
    while IFS= read -r -d '' rec; do
        FILE_SUM[${rec#*  }]=${rec%%  *}
    done < <(b2sum -z -- "$@" 2>/dev/null)
}

# BACKING_BY_SUM[sum]: "F<TAB>NAME" for an image whose bytes have that
# BLAKE2b sum, as a qemu-img info of them said: NAME its backing name ("" for
# none), F 1 when the backing format is recorded. Bytes are what qemu-img
# reads, so the same sum means the same answer: check_store asks qemu-img
# only about images no backing chain printed (delfix.sh's image_chain_v
# notes every image of each chain it asks about, delmodel.sh's
# image_parents each image it asks backing_name about).
declare -A BACKING_BY_SUM=()

# backing_note FILES BACKS FMTS: FILES (lines, real paths as file_sums read
# them) and the names of two arrays, each file's backing name and format
# flag in the same order; notes those whose sum the last file_sums has.
backing_note() {
    local -n _backs=$2 _fmts=$3
    local f sum i=0
    while IFS= read -r f; do
        sum=${FILE_SUM[$f]:-}
        [ -z "$sum" ] || BACKING_BY_SUM[$sum]=${_fmts[i]}$'\t'${_backs[i]}
        i=$((i + 1))
    done <<<"$1"
}

# checked KIND FILE: true if FILE's bytes passed as KIND before; else
# remembers them (a failed check exits the test anyway). The sum comes
# from the last file_sums when it read FILE.
checked() {
    local key sum=${FILE_SUM[$2]:-}
    [ -n "$sum" ] || sum=$(b2sum <"$2")
    key=$1:${sum%% *}
    [ -n "${STORE_CHECKED[$key]:-}" ] && return 0
    STORE_CHECKED[$key]=1
    return 1
}

# resolve_m PATH...: RESOLVED[i] is `realpath -m` of the i-th PATH. When
# every PATH is absolute and no directory on its way is a symbolic link,
# that is the path with its "." and ".." taken out, worked out here with
# an lstat per component; otherwise one realpath -m does all of them. (A
# process costs more than the lstats: the model checks resolve every
# chain's names after every step.)
resolve_m() {
    local p rest c out
    RESOLVED=()
    for p in "$@"; do
        [[ $p == /* ]] || break
        rest=${p#/} out=""
        while :; do
            c=${rest%%/*}
            case $c in
                "" | .) ;;
                ..) out=${out%/*} ;;
                *) out+=/$c && [ ! -L "$out" ] || break 2 ;;
            esac
            [[ $rest == */* ]] || break
            rest=${rest#*/}
        done
        RESOLVED+=("${out:-/}")
    done
    ((${#RESOLVED[@]} == $#)) && return 0
    mapfile -d '' -t RESOLVED < <(realpath -m -z -- "$@" 2>/dev/null)
    ((${#RESOLVED[@]} == $#)) && return 0
    RESOLVED=()
    for p in "$@"; do
        RESOLVED+=("$(realpath -m -- "$p" 2>/dev/null)")
    done
}

# files_under DIR PATTERN...: FILES holds each regular file (not a
# symbolic link) under DIR, at any depth and in dot-named directories
# too, whose name matches a PATTERN, as `find DIR -type f \( -name P -o
# ... \)` lists them (order aside), from bash's globs: no process.
# (globstar does not follow symbolic links to directories, as find.)
files_under() {
    local dir=$1 pat f o
    local -a off=()
    shift
    FILES=()
    for o in globstar dotglob nullglob; do
        shopt -q $o || off+=($o)
    done
    shopt -s globstar dotglob nullglob
    for pat in "$@"; do
        for f in "$dir"/**/$pat; do
            [ -f "$f" ] && [ ! -L "$f" ] && FILES+=("$f")
        done
    done
    ((${#off[@]} == 0)) || shopt -u "${off[@]}"
}

# lists_nothing PATH: `ls -A PATH` would list nothing - PATH is an empty
# directory or is not there - told by bash's globs, without an ls.
lists_nothing() {
    local f
    [ -d "$1" ] || { [ ! -e "$1" ] && [ ! -L "$1" ]; return; }
    for f in "$1"/* "$1"/.*; do
        case ${f##*/} in . | ..) continue ;; esac
        [ -e "$f" ] || [ -L "$f" ] && return 1
    done
    return 0
}

# journal_empty STORE: no operation is left in the journal or in tmp/.
journal_empty() {
    local d
    for d in journal tmp; do
        lists_nothing "$1/.vmstorefs/$d" ||
            fail "$1/.vmstorefs/$d is not empty: $(ls -A "$1/.vmstorefs/$d")"
    done
}

# The directory virt-xml-validate takes libvirt's schemas from, in
# LIBVIRT_SCHEMAS ("" when it cannot be told): xml_valid runs the same
# xmllint on many files. Found once: set in the caller's shell (in a
# $(...) the answer was lost, and looked for again at every call).
LIBVIRT_SCHEMAS=unset
libvirt_schemas() {
    local v
    if [ "$LIBVIRT_SCHEMAS" = unset ]; then
        LIBVIRT_SCHEMAS=""
        v=$(command -v virt-xml-validate) &&
            LIBVIRT_SCHEMAS=$(sed -n 's|^SCHEMA="\(/.*\)/${TYPE}\.rng"$|\1|p' "$v" 2>/dev/null | head -n 1)
    fi
}

# xml_valid TYPE FILE...: every FILE is a valid TYPE. virt-xml-validate
# FILE TYPE is `xmllint --noout --relaxng SCHEMAS/TYPE.rng FILE`; this is
# one xmllint for all the files (the schema is compiled once). Status 1
# when any is not valid or the schema is not found: the caller then runs
# virt-xml-validate per file, for its verdict and its message.
xml_valid() {
    local type=$1 dir
    shift
    (($#)) || return 0
    libvirt_schemas
    dir=$LIBVIRT_SCHEMAS
    [ -n "$dir" ] && [ -f "$dir/$type.rng" ] || return 1
    xmllint --noout --relaxng "$dir/$type.rng" "$@" >/dev/null 2>&1
}

# check_store STORE [VM]: what any finished operation leaves (SPEC: the
# store stays valid libvirt material): every domain.xml validates as a
# domain and every snapshot.xml as a domainsnapshot, every image passes
# qemu-img check, no image stores an absolute backing name or one without
# its format, and the journal and tmp/ are empty. Only bytes not checked
# before are: one b2sum reads all the files, one xmllint validates
# each kind of XML (virt-xml-validate per file, for the message, when
# that fails). Images over 64 MiB are checked every time rather than
# summed (qemu-img check reads their metadata, b2sum all of them).
check_store() {
    local store=$1 vms=${2:-*} f out name size note hasfmt
    local -a doms=() snaps=() imgs=() todo=()
    local -A big=()
    for f in "$store"/$vms/domain.xml; do
        [ -e "$f" ] && doms+=("$f")
    done
    for f in "$store"/$vms/snapshots/*/snapshot.xml; do
        [ -e "$f" ] && snaps+=("$f")
    done
    while IFS= read -r -d '' f; do
        size=${f%% *} f=${f#* }
        imgs+=("$f")
        ((size <= 67108864)) && todo+=("$f") || big[$f]=1
    done < <(find "$store"/$vms -name '*.qcow2' -type f -printf '%s %p\0')
    file_sums "${doms[@]}" "${snaps[@]}" "${todo[@]}"
    todo=()
    for f in "${doms[@]}"; do
        checked domain "$f" || todo+=("$f")
    done
    if ! xml_valid domain "${todo[@]}"; then
        for f in "${todo[@]}"; do
            out=$(virt-xml-validate "$f" domain 2>&1) || fail "check_store: $f is not a valid domain: $out"
        done
    fi
    todo=()
    for f in "${snaps[@]}"; do
        checked domainsnapshot "$f" || todo+=("$f")
    done
    if ! xml_valid domainsnapshot "${todo[@]}"; then
        for f in "${todo[@]}"; do
            out=$(virt-xml-validate "$f" domainsnapshot 2>&1) ||
                fail "check_store: $f is not a valid domainsnapshot: $out"
        done
    fi
    for f in "${imgs[@]}"; do
        [ -n "${big[$f]:-}" ] || ! checked qcow2 "$f" || continue
        out=$(qemu-img check -U -q "$f" 2>&1) || fail "check_store: qemu-img check $f: $out"
        note=${BACKING_BY_SUM[${FILE_SUM[$f]:-none}]:-}
        if [ -z "$note" ]; then
            backing_name "$f"
            [ -n "$BACKING_INFO" ] || fail "check_store: qemu-img info $f: $BACKING_ERR"
            note=$BACKING_INFO
        fi
        name=${note#*$'\t'} hasfmt=${note%%$'\t'*}
        case $name in /*) fail "check_store: $f: absolute backing name $name" ;; esac
        [ -z "$name" ] || ((hasfmt)) || fail "check_store: $f: backing name $name without a format"
    done
    journal_empty "$store"
}

# xpath_strings FILE EXPR...: the string value of each XPath EXPR in FILE,
# one a line (XPATH_OUT), from one xmllint. Status 1 when that cannot be
# told (a value with a newline in it, an expression xmllint refuses): the
# caller then asks xmllint once per expression.
xpath_strings() {
    local f=$1 e expr=""
    shift
    XPATH_OUT=()
    (($#)) || return 0
    for e in "$@"; do
        expr+="string($e), '"$'\n'"', "
    done
    mapfile -t XPATH_OUT < <(xmllint --xpath "concat($expr'')" "$f" 2>/dev/null)
    # concat's output ends with the last value's newline, then xmllint's.
    ((${#XPATH_OUT[@]} == $# + 1)) && [ -z "${XPATH_OUT[$#]}" ] || return 1
    unset "XPATH_OUT[$#]"
}

# backing_name IMAGE: BACKING=IMAGE's backing file name as qemu-img
# resolves it ("full-backing-filename", "" if none), parsed by bash; and
# BACKING_INFO what check_store wants of the same answer (BACKING_BY_SUM's
# form; "" when qemu-img info failed, and BACKING_ERR what it said).
backing_name() {
    local out line name="" fmt=0
    BACKING="" BACKING_INFO="" BACKING_ERR=""
    out=$(qemu-img info -U --output=json "$1" 2>&1) || { BACKING_ERR=$out; return 0; }
    while IFS= read -r line; do
        if [[ $line =~ ^\ *\"full-backing-filename\":\ \"(.*)\",?$ ]]; then
            BACKING=${BASH_REMATCH[1]}
        elif [[ $line =~ ^\ *\"backing-filename\":\ \"(.*)\",?$ ]]; then
            name=${BASH_REMATCH[1]}
        elif [[ $line == *'"backing-filename-format":'* ]]; then
            fmt=1
        fi
    done <<<"$out"
    BACKING_INFO=$fmt$'\t'$name
}

# check_overlays STORE VM: each snapshot's <disks><disk><source> is, as in
# libvirt, the overlay that took the changes after the snapshot: an image
# whose backing image is the snapshot's own image (the embedded domain's
# disk source). libvirt's snapshot-delete refuses a snapshot where not.
# (The XPaths of a snapshot go to one xmllint, and its images' backing
# names to one realpath; each one's own when that cannot be.)
check_overlays() {
    local x dev n i overlay frozen backing
    local -a devs=() overlays=() frozens=() backings=() paths=()
    for x in "$1/$2"/snapshots/*/snapshot.xml; do
        [ -e "$x" ] || continue
        n=$(xmllint --xpath "count(/domainsnapshot/disks/disk[@snapshot='external'])" "$x")
        devs=() overlays=() frozens=() backings=() paths=()
        local -a ex=()
        for ((i = 1; i <= n; i++)); do
            ex+=("/domainsnapshot/disks/disk[@snapshot='external'][$i]/@name"
                "/domainsnapshot/disks/disk[@snapshot='external'][$i]/source/@file")
        done
        if xpath_strings "$x" "${ex[@]}"; then
            for ((i = 0; i < n; i++)); do
                devs+=("${XPATH_OUT[2 * i]}") overlays+=("${XPATH_OUT[2 * i + 1]}")
            done
        else
            for ((i = 1; i <= n; i++)); do
                devs+=("$(xmllint --xpath "string(/domainsnapshot/disks/disk[@snapshot='external'][$i]/@name)" "$x")")
                overlays+=("$(xmllint --xpath "string(/domainsnapshot/disks/disk[@snapshot='external'][$i]/source/@file)" "$x")")
            done
        fi
        ex=()
        for dev in "${devs[@]}"; do
            ex+=("//domain/devices/disk[target/@dev='$dev']/source/@file")
        done
        if [[ "${devs[*]}" != *"'"* ]] && xpath_strings "$x" "${ex[@]}"; then
            frozens=("${XPATH_OUT[@]}")
        else
            for dev in "${devs[@]}"; do
                frozens+=("$(xmllint --xpath "string(//domain/devices/disk[target/@dev='$dev']/source/@file)" "$x")")
            done
        fi
        for ((i = 0; i < n; i++)); do
            backing_name "${overlays[i]}"
            backings+=("$BACKING")
            paths+=("${backings[i]}" "${frozens[i]}")
        done
        # realpath -m of each backing name and frozen image (resolve_m).
        local -a real=()
        if ((n)); then
            resolve_m "${paths[@]}"
            real=("${RESOLVED[@]}")
        fi
        for ((i = 0; i < n; i++)); do
            dev=${devs[i]} overlay=${overlays[i]} frozen=${frozens[i]} backing=${backings[i]}
            [ -n "$backing" ] && [ "${real[2 * i]}" = "${real[2 * i + 1]}" ] ||
                fail "check_overlays: $x: $dev's overlay $overlay is not backed by $frozen (backing: ${backing:-none})"
        done
    done
}

# nbd_hold IMAGE [QEMU-NBD ARGS...]: a qemu-nbd serving IMAGE on a unix
# socket (as a running VM would hold it) until nbd_release. --fork returns
# once the image is open and its locks are taken. Sets NBD_PID.
nbd_hold() {
    local image=$1
    shift
    rm -f "$TMP/nbd.pid" "$TMP/nbd.sock"
    qemu-nbd --fork --persistent --pid-file="$TMP/nbd.pid" -f qcow2 -k "$TMP/nbd.sock" "$@" "$image" ||
        fail "qemu-nbd could not serve $image"
    NBD_PID=$(cat "$TMP/nbd.pid")
    DAEMONS+=("$NBD_PID")
}
nbd_release() {
    kill "$NBD_PID" 2>/dev/null
    local i
    for i in $(seq 50); do
        if ! kill -0 "$NBD_PID" 2>/dev/null; then
            forget_daemon "$NBD_PID" # reaped: its pid may be reused
            return 0
        fi
        sleep 0.1
    done
    fail "qemu-nbd $NBD_PID did not exit"
}

# qio_hold IMAGE STORE-IMAGE: a qemu-io with IMAGE (a mount's active
# image) open for writing, as a VM booted from the mount would have it,
# until qio_release; returns once the daemon holds the image locks qemu
# asked for on STORE-IMAGE (the file behind IMAGE). Sets QIO_PID.
qio_hold() {
    local ino i
    qemu-io -f qcow2 -c 'sleep 600000' "$1" >/dev/null 2>&1 &
    QIO_PID=$!
    DAEMONS+=("$QIO_PID")
    ino=$(stat -c %i "$2")
    for i in $(seq 100); do
        grep -q "OFDLCK .*:$ino " /proc/locks && return 0
        sleep 0.1
    done
    fail "qemu-io never locked $1"
}
qio_release() {
    kill "$QIO_PID"
    wait "$QIO_PID" 2>/dev/null
    forget_daemon "$QIO_PID"
}

# lock_hold FILE: a process holding a POSIX write lock on all of FILE
# (conflicting with the daemon's OFD locks) until lock_release. Returns
# once the lock is held. Sets LOCK_PID.
lock_hold() {
    rm -f "$TMP/lock.held"
    perl -e '
        use Fcntl;
        sysopen(my $fh, $ARGV[0], O_RDWR | O_CREAT, 0600) or die "$ARGV[0]: $!\n";
        my $fl = pack("ssqqi", F_WRLCK, 0, 0, 0, 0);
        fcntl($fh, F_SETLKW, $fl) or die "lock: $!\n";
        open(my $ok, ">", $ARGV[1]) and close($ok);
        sleep 120;' "$1" "$TMP/lock.held" &
    LOCK_PID=$!
    DAEMONS+=("$LOCK_PID")
    local i
    for i in $(seq 100); do
        [ -e "$TMP/lock.held" ] && return 0
        kill -0 "$LOCK_PID" 2>/dev/null || fail "lock holder on $1 died"
        sleep 0.1
    done
    fail "lock holder never got $1"
}
lock_release() {
    kill "$LOCK_PID"
    wait "$LOCK_PID" 2>/dev/null
    forget_daemon "$LOCK_PID"
}

# snap_parent SNAPDIR: the <parent> named in SNAPDIR/snapshot.xml ("" if none).
snap_parent() {
    perl -0ne 'print $1 if m|<parent>\s*<name>([^<]*)</name>|' "$1/snapshot.xml"
}

# mount_sample: the sample store in $S mounted on $M; $V is web1 there.
mount_sample() {
    S=$TMP/store M=$TMP/mnt
    sample_store "$S"
    mount_fs "$S" "$M"
    V=$M/web1
}
