#!/bin/bash
# Snapshot take, rename and revert through the mount, on VMs of 1, 2 and
# 10 disks, one whose vda grows from a raw base (served by the mount, so
# its chain opens there as from the store) and one with a read-only disk
# and a CD-ROM: after every step the store is sound (check_store),
# the guest reads what it must through the mount and from the store, the
# mount serves the store's bytes, `current`, the snapshots' <parent> and
# <disks>, and domain.xml's chains name the right files; the disks that
# cannot be snapshotted are recorded so and never touched. Then every
# refusal (bad names, existing names, across VMs, missing snapshot) says
# why and changes nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate xmllint perl

S=$TMP/store M=$TMP/mnt
make_vm "$S" one 1
make_vm "$S" two 2
make_vm "$S" ten 10
make_vm "$S" raw 2 --raw-base
make_vm "$S" rocd 1 --ro-and-cdrom
check_store "$S"
mount_fs "$S" "$M"

# The new data each disk gets through the mount between S1 and S2.
new_pattern() {
    printf '0x%02x' $((0x40 + $1))
}

# The patterns of disk I, computed once (in a $(...) each, a fork each,
# they were a good part of the test's time).
DISK_PAT=() NEW_PAT=()
for ((i = 0; i < 10; i++)); do
    DISK_PAT[i]=$(disk_pattern "$i") NEW_PAT[i]=$(new_pattern "$i")
done

# img_args ROOT VM REL: qemu-io/qemu-img arguments opening ROOT/VM/REL,
# in IMG_ARGS (set in this shell: no subshell). (VM raw's chain ends in
# its raw base, which the mount serves where the store has it: the same
# arguments open it from either side.)
img_args() {
    IMG_ARGS="-f qcow2 $1/$2/$3"
}

# expect_read ROOT VM REL "PATTERN OFFSET LEN"...: ROOT/VM/REL reads so.
expect_read() {
    local root=$1 vm=$2 rel=$3 out r cmds=() args
    shift 3
    for r in "$@"; do
        cmds+=(-c "read -P $r")
    done
    img_args "$root" "$vm" "$rel"
    args=$IMG_ARGS
    # shellcheck disable=SC2086
    out=$(qemu-io -r $args "${cmds[@]}" 2>&1) ||
        fail "$STEP: $root/$vm/$rel: expected $*: $out"
}

# open_cmd ROOT VM REL: img_args' image as a qemu-io `open` command (in
# OPEN_CMD); status 1 when a path has blanks, which it cannot hold.
open_cmd() {
    local a
    img_args "$1" "$2" "$3"
    a=${IMG_ARGS#-f qcow2 } OPEN_CMD="open -r -o driver=qcow2 $a"
    [[ $a != *[[:space:]]* ]]
}

# reads_ok ROOT VM REL "PATTERN OFFSET LEN"... -- ...: the images read
# so, all in one qemu-io (open, read, close, image after image): ROOT VM
# REL and the reads of each image in turn, each image's ended by "--".
# Status 1 and READS_ERR set when they do not, 2 when a path cannot go in
# a qemu-io command: the caller then checks them one by one (expect_read).
reads_ok() {
    local -a cmds=()
    local out
    READS_ERR=""
    while (($#)); do
        open_cmd "$1" "$2" "$3" || return 2
        cmds+=(-c "$OPEN_CMD")
        shift 3
        while [ "$1" != -- ]; do
            cmds+=(-c "read -q -P $1")
            shift
        done
        shift
        cmds+=(-c close)
    done
    out=$(qemu-io "${cmds[@]}" 2>&1) && [[ ${out,,} != *"verification failed"* ]] && return 0
    READS_ERR=$(head -n 3 <<<"$out")
    return 1
}

# What disk I holds past its own pattern: the new data or nothing (in
# SECOND).
second() {
    if (($2)); then
        SECOND="${NEW_PAT[$1]} 1M 512k"
    else
        SECOND="0 1M 512k"
    fi
}

# check_data VM NDISKS WRITTEN: what every disk must read now, through
# the mount and from the store; with WRITTEN=1 the new data is there.
check_data() {
    local vm=$1 n=$2 written=$3 i root st
    local -a all=()
    for ((i = 0; i < n; i++)); do
        for root in "$M" "$S"; do
            second "$i" "$written"
            all+=("$root" "$vm" "disks/${SNAP_DEVS[i]}.qcow2" "${DISK_PAT[i]} 0 1M" "$SECOND" --)
        done
    done
    # All at once; one by one (saying which) when that fails.
    reads_ok "${all[@]}" && return 0
    st=$?
    for ((i = 0; i < n; i++)); do
        for root in "$M" "$S"; do
            second "$i" "$written"
            expect_read "$root" "$vm" "disks/${SNAP_DEVS[i]}.qcow2" "${DISK_PAT[i]} 0 1M" "$SECOND"
        done
    done
    ((st == 2)) || fail "$STEP: $vm's disks read as expected one by one, but not in one qemu-io: $READS_ERR"
}

# check_frozen VM NDISKS SNAP WRITTEN: SNAP's images read as the guest's
# disks did when it was taken, and the mount serves the store's bytes.
check_frozen() {
    local vm=$1 n=$2 snap=$3 written=$4 i rel a b root st=0
    local -a all=()
    for ((i = 0; i < n; i++)); do
        for root in "$M" "$S"; do
            second "$i" "$written"
            all+=("$root" "$vm" "snapshots/$snap/${SNAP_DEVS[i]}.qcow2" "${DISK_PAT[i]} 0 1M" "$SECOND" --)
        done
    done
    # The reads all at once; when that fails, one by one (saying which).
    reads_ok "${all[@]}" || st=$?
    # The images through the mount and in the store, summed by one
    # sha256sum: cmp runs only where the sums differ. (From branch speed.)
    local -a both=()
    for ((i = 0; i < n; i++)); do
        both+=("$M/$vm/snapshots/$snap/${SNAP_DEVS[i]}.qcow2" "$S/$vm/snapshots/$snap/${SNAP_DEVS[i]}.qcow2")
    done
    file_sums "${both[@]}"
    for ((i = 0; i < n; i++)); do
        rel=snapshots/$snap/${SNAP_DEVS[i]}.qcow2
        ((st == 0)) || for root in "$M" "$S"; do
            second "$i" "$written"
            expect_read "$root" "$vm" "$rel" "${DISK_PAT[i]} 0 1M" "$SECOND"
        done
        [ -n "${FILE_SUM[$M/$vm/$rel]:-}" ] && [ "${FILE_SUM[$M/$vm/$rel]}" = "${FILE_SUM[$S/$vm/$rel]:-}" ] ||
            cmp -s "$M/$vm/$rel" "$S/$vm/$rel" || fail "$vm: $rel differs between the mount and the store"
        img_args "$M" "$vm" "$rel"
        a=$IMG_ARGS
        img_args "$S" "$vm" "$rel"
        b=$IMG_ARGS
        qemu-img compare -U -f qcow2 -F qcow2 "${a#-f qcow2 }" "${b#-f qcow2 }" >/dev/null ||
            fail "$vm: qemu-img compare of $rel through the mount and the store"
    done
    ((st != 1)) || fail "$STEP: $vm's $snap images read as expected one by one, but not in one qemu-io: $READS_ERR"
}

# check_chain VM NDISKS SNAP...: domain.xml's chain of every disk is the
# active image, then SNAP... (newest first), then the raw base if any;
# and the images themselves say the same.
check_chain() {
    local vm=$1 n=$2 i dev want got snap out line
    local -a files=()
    shift 2
    for ((i = 0; i < n; i++)); do
        dev=${SNAP_DEVS[i]}
        want="$S/$vm/disks/$dev.qcow2"
        for snap in "$@"; do
            want+=" $S/$vm/snapshots/$snap/$dev.qcow2"
        done
        [ "$vm/$dev" = raw/vda ] && want+=" $S/$vm/base/vda.raw"
        # (xmllint's and qemu-img's lines taken apart in bash, as sed
        # took them; qemu-img's image names to one realpath.)
        # (xmllint once per content of domain.xml: xpath_cached)
        xpath_cached "$S/$vm/domain.xml" "//devices/disk[target/@dev='$dev']//source/@file"
        out=$XPATH_RESULT got=""
        while IFS= read -r line; do
            [[ $line =~ file=\"(.*)\" ]] && line=${BASH_REMATCH[1]}
            got+="${got:+ }$line"
        done <<<"$out"
        [ "$got" = "$want" ] || fail "$vm: domain.xml chain of $dev is '$got', expected '$want'"
        out=$(qemu-img info -U --backing-chain "$S/$vm/disks/$dev.qcow2")
        files=()
        while IFS= read -r line; do
            [[ $line == "image: "* ]] && files+=("${line#image: }")
        done <<<"$out"
        resolve_m "${files[@]}"
        got="${RESOLVED[*]}"
        [ "$got" = "$want" ] || fail "$vm: image chain of $dev is '$got', expected '$want'"
    done
}

# check_snapxml VM SNAP PARENT SOURCE: SNAP's <name>, <parent> ("" for
# none), and <disks> source of vda (where S's changes go).
check_snapxml() {
    local vm=$1 snap=$2 parent=$3 source=$4 f=$S/$1/snapshots/$2/snapshot.xml got i
    local -a ex=(/domainsnapshot/name /domainsnapshot/parent/name
        "/domainsnapshot/disks/disk[@name='vda']/source/@file")
    [ "$vm" = rocd ] && ex+=("/domainsnapshot/disks/disk[@name='vdb']/@snapshot"
        "/domainsnapshot/disks/disk[@name='hdc']/@snapshot")
    # Their values from one xmllint (xpath_strings); one xmllint each
    # when it cannot tell them.
    if ! xpath_strings "$f" "${ex[@]}"; then
        XPATH_OUT=()
        for i in "${ex[@]}"; do
            XPATH_OUT+=("$(xmllint --xpath "string($i)" "$f")")
        done
    fi
    got=${XPATH_OUT[0]}
    [ "$got" = "$snap" ] || fail "$f: <name> is '$got', expected '$snap'"
    got=${XPATH_OUT[1]}
    [ "$got" = "$parent" ] || fail "$f: <parent> is '$got', expected '$parent'"
    got=${XPATH_OUT[2]}
    [ "$got" = "$S/$vm/$source" ] || fail "$f: vda's <source> is '$got', expected '$S/$vm/$source'"
    if [ "$vm" = rocd ]; then
        for i in 3 4; do
            got=${XPATH_OUT[i]}
            [ "$got" = no ] || fail "$f: ${ex[i]} is '$got', expected 'no'"
        done
    fi
}

check_current() {
    local got
    got=$(readlink "$M/$1/current")
    [ "$got" = "snapshots/$2" ] || fail "$1: current -> '$got', expected snapshots/$2"
}

check_shared() {
    [ "$1" != rocd ] && return
    [ "$(sha256sum "$S/rocd/shared/"*)" = "$SHARED_SUM" ] || fail "rocd: the read-only disk or the CD-ROM changed"
    cmp -s <(xmllint --xpath "//devices/disk[target/@dev='vdb' or target/@dev='hdc']" "$S/rocd/domain.xml") \
        "$TMP/rocd-shared.xml" || fail "rocd: domain.xml's read-only disk or CD-ROM changed"
}

# no_disks: a <domain> on stdin, formatted, without its <disk> elements.
no_disks() {
    xmllint --format - | sed -e '/<?xml/d' -e '/<disk /,/<\/disk>/d' -e '/^\s*$/d'
}

matrix() {
    local vm=$1 n=$2 i f args
    STEP="$vm: initial"
    check_data "$vm" "$n" 0
    [ "$vm" = rocd ] && {
        SHARED_SUM=$(sha256sum "$S/rocd/shared/"*)
        xmllint --xpath "//devices/disk[target/@dev='vdb' or target/@dev='hdc']" "$S/rocd/domain.xml" \
            >"$TMP/rocd-shared.xml"
    }

    local t0 t
    t0=$(date +%s)
    mkdir "$M/$vm/snapshots/S1" || fail "$vm: mkdir S1"
    # SPEC: a snapshot's mtime in the listing is its creation time.
    t=$(stat -c %Y "$M/$vm/snapshots/S1")
    ((t >= t0 && t <= $(date +%s))) || fail "$vm: S1's mtime $t is not its creation time (taken at $t0)"
    check_store "$S" "$vm"
    check_overlays "$S" "$vm"
    check_current "$vm" S1
    check_snapxml "$vm" S1 "" disks/vda.qcow2
    check_chain "$vm" "$n" S1
    STEP="$vm: take S1"
    check_data "$vm" "$n" 0
    check_frozen "$vm" "$n" S1 0
    check_shared "$vm"

    for ((i = 0; i < n; i++)); do
        img_args "$M" "$vm" "disks/${SNAP_DEVS[i]}.qcow2"
        args=$IMG_ARGS
        # shellcheck disable=SC2086
        qemu-io $args -c "write -q -P ${NEW_PAT[i]} 1M 512k" >/dev/null ||
            fail "$vm: write through the mount to ${SNAP_DEVS[i]}"
    done
    check_store "$S" "$vm"
    STEP="$vm: write"
    check_data "$vm" "$n" 1
    check_frozen "$vm" "$n" S1 0

    mkdir "$M/$vm/snapshots/S2" || fail "$vm: mkdir S2"
    check_store "$S" "$vm"
    # Every disk's overlay, in S1 as in S2: the next snapshot's image, or
    # the active one.
    check_overlays "$S" "$vm"
    check_current "$vm" S2
    check_snapxml "$vm" S2 S1 disks/vda.qcow2
    check_snapxml "$vm" S1 "" snapshots/S2/vda.qcow2
    check_chain "$vm" "$n" S2 S1
    STEP="$vm: take S2"
    check_data "$vm" "$n" 1
    check_frozen "$vm" "$n" S1 0
    check_frozen "$vm" "$n" S2 1
    check_shared "$vm"

    mv "$M/$vm/snapshots/S1" "$M/$vm/snapshots/base1" || fail "$vm: mv S1 base1"
    [ -e "$M/$vm/snapshots/S1" ] && fail "$vm: S1 still there after mv"
    [ -e "$S/$vm/snapshots/S1" ] && fail "$vm: S1 still in the store after mv"
    # The rename rewrote the backing name in S2's frozen images, which the
    # kernel caches across opens: the mount must serve the new header at
    # once, not after the attribute timeout.
    for ((i = 0; i < n; i++)); do
        f=snapshots/S2/${SNAP_DEVS[i]}.qcow2
        cmp -s "$M/$vm/$f" "$S/$vm/$f" ||
            fail "$vm: right after mv S1 base1, $M/$vm/$f is stale: $(qemu-img info -U "$M/$vm/$f" | grep 'backing file:')"
    done
    check_store "$S" "$vm"
    check_overlays "$S" "$vm"
    # No XML of the VM names the old directory any more: domain.xml's
    # chains, S2's <domain> chain, base1's own <domain>.
    ! grep -l "$S/$vm/snapshots/S1/" "$S/$vm/domain.xml" "$S/$vm"/snapshots/*/snapshot.xml ||
        fail "$vm: XML still names snapshots/S1 after the rename"
    check_current "$vm" S2
    check_snapxml "$vm" base1 "" snapshots/S2/vda.qcow2
    check_snapxml "$vm" S2 base1 disks/vda.qcow2
    check_chain "$vm" "$n" S2 base1
    STEP="$vm: rename"
    check_data "$vm" "$n" 1
    check_frozen "$vm" "$n" base1 0
    check_frozen "$vm" "$n" S2 1
    check_shared "$vm"

    ln -sfn snapshots/base1 "$M/$vm/current" || fail "$vm: ln -sfn snapshots/base1 current"
    check_store "$S" "$vm"
    check_current "$vm" base1
    check_snapxml "$vm" base1 "" disks/vda.qcow2
    check_snapxml "$vm" S2 base1 disks/vda.qcow2
    check_chain "$vm" "$n" base1
    STEP="$vm: revert"
    check_data "$vm" "$n" 0
    check_frozen "$vm" "$n" base1 0
    check_frozen "$vm" "$n" S2 1
    check_shared "$vm"
    # The definition is base1's <domain> again (the chains are checked above).
    cmp -s <(xmllint --xpath '/domainsnapshot/domain' "$S/$vm/snapshots/base1/snapshot.xml" | no_disks) \
        <(no_disks <"$S/$vm/domain.xml") || fail "$vm: domain.xml is not base1's <domain>"
    pass "$vm ($n disk$([ "$n" = 1 ] || echo s)): take S1, write, take S2, mv S1 base1, revert to base1"
}

matrix one 1
matrix two 2
matrix ten 10
matrix raw 2
matrix rocd 1

# Refusals: each says why and changes nothing, in the store or in the view.
before=$(tree_state "$S")
for name in .x -x "a b" "$(printf 'a%.0s' {1..65})"; do
    expect_refusal "mkdir snapshots/'$name'" "Invalid argument" "refused mkdir /two/snapshots/.*not a valid snapshot name" \
        mkdir "$M/two/snapshots/$name"
done
# (The kernel answers this one itself: its lookup finds S2, and no
# request reaches the daemon to log.)
expect_fail "mkdir of an existing snapshot" "File exists" mkdir "$M/two/snapshots/S2"
expect_refusal "mv -T onto an existing snapshot" "File exists" \
    "refused rename /two/snapshots/S2: snapshot base1 already exists" \
    mv -T "$M/two/snapshots/S2" "$M/two/snapshots/base1"
expect_refusal "rename to a bad name" "Invalid argument" \
    "refused rename /two/snapshots/S2: '.S2' is not a valid snapshot name" \
    rename_syscall "$M/two/snapshots/S2" "$M/two/snapshots/.S2"
expect_refusal "rename into another VM" "Invalid cross-device link" \
    "refused rename /two/snapshots/S2: a snapshot can only be renamed within its own VM" \
    rename_syscall "$M/two/snapshots/S2" "$M/one/snapshots/S2"
expect_refusal "ln -sfn to a missing snapshot" "No such file or directory" \
    "refused rename /two/Cu.*: no snapshot nope" ln -sfn snapshots/nope "$M/two/current"
check_current two base1
[ "$(tree_state "$S")" = "$before" ] || fail "a refusal changed the store"
[ -z "$(ls -A "$M/two" | grep -v -x -e clones -e current -e disks -e domain.xml -e snapshots)" ] ||
    fail "a refusal left an entry in the view: $(ls -A "$M/two")"
check_store "$S"
pass "refusals: EINVAL for bad names, EEXIST, EXDEV across VMs, ENOENT for a missing snapshot; nothing changed"

unmount_fs "$M"
