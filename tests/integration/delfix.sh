# Model and checks of the snapshot deletion tests (sourced after lib.sh
# and snapfix.sh, not run).
#
# The model follows a VM through takes, reverts, writes and deletes done
# through the mount, and says what every image must read afterwards:
#
#   m_init VM NDISKS          start following VM (made by make_vm, no snapshots)
#   m_write VM                one new write (id k) on every active disk
#   m_take VM S               m_write, then mkdir snapshots/S
#   m_revert VM S             ln -sfn snapshots/S current
#   m_delete VM S rmdir|rm    delete S with rmdir or rm -r
#   m_rm_image VM S I         rm snapshots/S/<disk I>.qcow2 (partial)
#   m_rename VM S T           mv snapshots/S snapshots/T
#   m_check VM "step"         everything below, or fail naming the step
#
# Write k puts pattern wpat(k, I) on 64k at k MiB of disk I, so an image
# reads wpat(j, I) at j MiB for every write j it inherited, zeros at the
# offsets of the writes it did not, and make_vm's disk_pattern I at 0.
# Deleting a snapshot must not change a byte of any other image.
#
# The model keeps the image tree the SPEC describes, one node per taken
# snapshot (they share one shape on every disk): a deleted snapshot with
# several dependents becomes a hidden node, merged away (or removed) the
# moment it has one (or none) left. From it the checks know how many
# hidden images the store must hold, which snapshot is each snapshot's
# <parent> and `current` (the nearest visible ancestor), and how many
# `merge of` lines each delete must log.
#
#   check_no_orphans STORE VM  every image under STORE/VM is needed
#   hidden_images STORE VM     the images kept under dot-named directories
#   listed DIR NAME            NAME is in the listing of DIR

DEL_MIB=$((1024 * 1024))

# wpat K I: the pattern write K puts on disk I (1..223, distinct per disk).
wpat() {
    printf '0x%02x' $((($1 * 5 + $2 * 17) % 223 + 1))
}

declare -A M_N=() M_DISKS=() M_ACTIVE=() M_APAR=() M_NODES=()
declare -A M_CONT=() M_PAR=() M_NAME=() M_DEVS=() M_SNAP=()
declare -A M_NOCUR=()   # VM -> 1 after `rm current` (hidden until a take or revert)
M_MERGES=0    # merges (per disk) the last model step expects
M_LOGPOS=0    # daemon log lines m_check has looked at

m_init() {
    M_N[$1]=1 M_DISKS[$1]=$2 M_ACTIVE[$1]="" M_APAR[$1]="" M_NODES[$1]=""
}

m_write() {
    local vm=$1 k=${M_N[$1]} i out batch=1
    local -a cmds=()
    ((k < 60)) || fail "model: $vm: too many writes for a 64M disk"
    # One qemu-io writes every disk (open, write, close, disk after disk);
    # when that fails, the writes (the same bytes again) go one qemu-io
    # per disk, failing at the first that does not write.
    for ((i = 0; i < M_DISKS[$vm]; i++)); do
        [[ $M != *[[:space:]]* ]] || batch=0
        cmds+=(-c "open -o driver=qcow2 $M/$vm/disks/${SNAP_DEVS[i]}.qcow2"
            -c "write -q -P $(wpat "$k" "$i") $((k * DEL_MIB)) 64k" -c close)
    done
    if ! { ((batch)) && out=$(qemu-io "${cmds[@]}" 2>&1); }; then
        for ((i = 0; i < M_DISKS[$vm]; i++)); do
            qemu-io -f qcow2 -c "write -q -P $(wpat "$k" "$i") $((k * DEL_MIB)) 64k" \
                "$M/$vm/disks/${SNAP_DEVS[i]}.qcow2" >/dev/null ||
                fail "$vm: write $k through the mount to ${SNAP_DEVS[i]}"
        done
        ((batch == 0)) || fail "$vm: write $k through the mount went disk by disk, but not in one qemu-io: $out"
    fi
    M_ACTIVE[$vm]="${M_ACTIVE[$vm]} $k"
    M_N[$vm]=$((k + 1))
}

m_take() {
    local vm=$1 snap=$2 k i devs=""
    m_write "$vm"
    mkdir "$M/$vm/snapshots/$snap" || fail "$vm: mkdir snapshots/$snap"
    k=$((M_N[$vm] - 1))
    for ((i = 0; i < M_DISKS[$vm]; i++)); do
        devs+=" $i"
    done
    M_CONT[$vm/$k]=${M_ACTIVE[$vm]} M_PAR[$vm/$k]=${M_APAR[$vm]} M_NAME[$vm/$k]=$snap
    M_DEVS[$vm/$k]=$devs M_SNAP[$vm/$snap]=$k
    M_NODES[$vm]="${M_NODES[$vm]} $k"
    M_APAR[$vm]=$k
    unset "M_NOCUR[$vm]"
}

m_revert() {
    local vm=$1 snap=$2 old=${M_APAR[$1]} n=${M_SNAP[$1/$2]:?model: no snapshot $2} n0 got
    log_since 0 && n0=$LOG_POS
    ln -sfn "snapshots/$snap" "$M/$vm/current" || fail "$vm: ln -sfn snapshots/$snap current"
    # Merges run in the background: sync VMDIR waits for them.
    sync "$M/$vm" || fail "$vm: sync after the revert to $snap"
    M_ACTIVE[$vm]=${M_CONT[$vm/$n]} M_APAR[$vm]=$n
    unset "M_NOCUR[$vm]"
    M_MERGES=0
    [ -n "$old" ] && [ -z "${M_NAME[$vm/$old]}" ] && m_settle "$vm" "$old"
    merge_lines "$vm" "$n0" && got=$MERGE_LINES
    [ "$got" = "$M_MERGES $M_MERGES" ] ||
        fail "$vm: reverting to $snap should merge $M_MERGES disk(s); logged (started done): $got"
}

# m_deps VM NODE: the node's dependents (child nodes, "active").
m_deps() {
    local vm=$1 n=$2 c
    for c in ${M_NODES[$vm]}; do
        [ "${M_PAR[$vm/$c]}" = "$n" ] && echo "$c"
    done
    [ "${M_APAR[$vm]}" = "$n" ] && echo active
}

# m_settle VM NODE: a hidden node with one dependent is merged into it,
# with none it is removed (and its parent may follow); with more it stays.
m_settle() {
    local vm=$1 n=$2 deps parent c keep=""
    deps=$(m_deps "$vm" "$n")
    [ "$(grep -c . <<<"$deps")" -ge 2 ] && return
    parent=${M_PAR[$vm/$n]}
    for c in ${M_NODES[$vm]}; do
        [ "$c" = "$n" ] || keep+=" $c"
    done
    M_NODES[$vm]=$keep
    if [ -z "$deps" ]; then
        [ -n "$parent" ] && [ -z "${M_NAME[$vm/$parent]}" ] && m_settle "$vm" "$parent"
    elif [ "$deps" = active ]; then
        M_APAR[$vm]=$parent
        M_MERGES=$((M_MERGES + $(wc -w <<<"${M_DEVS[$vm/$n]}")))
    else
        M_PAR[$vm/$deps]=$parent
        M_MERGES=$((M_MERGES + $(wc -w <<<"${M_DEVS[$vm/$n]}")))
    fi
}

# m_forget VM SNAP: the model's side of deleting SNAP.
m_forget() {
    local vm=$1 snap=$2 n=${M_SNAP[$1/$2]:?model: no snapshot $2}
    unset "M_SNAP[$vm/$snap]"
    M_NAME[$vm/$n]=""
    M_MERGES=0
    m_settle "$vm" "$n"
}

# merge_lines VM FROM: the `merge of VM disk` lines logged since line FROM
# of the daemon log, as "started" and "done" counts.
# (In MERGE_LINES, from log_since and bash's patterns: the model asks
# after every step.)
merge_lines() {
    local l started=0 done=0
    log_since "$2"
    for l in "${LOG_ADDED[@]}"; do
        case $l in
            *"merge of $1 disk "*started) started=$((started + 1)) ;;
            *"merge of $1 disk "*" done in "*) done=$((done + 1)) ;;
        esac
    done
    MERGE_LINES="$started $done"
}

# m_delete VM SNAP rmdir|rm: delete SNAP through the mount; every disk
# that merges logs one start and one end line.
m_delete() {
    local vm=$1 snap=$2 how=$3 n0 got
    log_since 0 && n0=$LOG_POS
    case $how in
        rmdir) rmdir "$M/$vm/snapshots/$snap" || fail "$vm: rmdir snapshots/$snap" ;;
        rm) rm -r "$M/$vm/snapshots/$snap" || fail "$vm: rm -r snapshots/$snap" ;;
        *) fail "m_delete: rmdir or rm, not $how" ;;
    esac
    sync "$M/$vm" || fail "$vm: sync after deleting $snap"
    m_forget "$vm" "$snap"
    [ -e "$M/$vm/snapshots/$snap" ] && fail "$vm: snapshots/$snap still there after $how"
    # Its images are gone or moved: no chain in any XML names them there.
    got=$(grep -l "$S/$vm/snapshots/$snap/" "$S/$vm"/domain.xml "$S/$vm"/snapshots/*/snapshot.xml 2>/dev/null)
    [ -z "$got" ] || fail "$vm: after $how $snap, XML still names snapshots/$snap/: $got"
    merge_lines "$vm" "$n0" && got=$MERGE_LINES
    [ "$got" = "$M_MERGES $M_MERGES" ] ||
        fail "$vm: deleting $snap should merge $M_MERGES disk(s); logged (started done): $got"

}

# m_rename VM FROM TO: mv snapshots/FROM snapshots/TO through the mount.
# The node keeps its place in the tree under its new name; no XML names
# FROM (its directory in a path, or its name in a <name> or <parent>)
# afterwards. m_check then opens every chain, hidden images' included.
m_rename() {
    local vm=$1 from=$2 to=$3 n=${M_SNAP[$1/$2]:?model: no snapshot $2} got
    mv "$M/$vm/snapshots/$from" "$M/$vm/snapshots/$to" || fail "$vm: mv snapshots/$from snapshots/$to"
    unset "M_SNAP[$vm/$from]"
    M_SNAP[$vm/$to]=$n M_NAME[$vm/$n]=$to
    got=$(grep -l -e "$S/$vm/snapshots/$from/" -e "<name>$from</name>" "$S/$vm"/domain.xml "$S/$vm"/snapshots/*/snapshot.xml 2>/dev/null)
    [ -z "$got" ] || fail "$vm: after mv $from $to, XML still names $from: $got"
}

# m_rm_image VM SNAP I: remove disk I's image from SNAP. The tests only
# do it where the image has one dependent (or none), so that every disk
# keeps the tree's one shape; the last image takes the snapshot with it.
m_rm_image() {
    local vm=$1 snap=$2 i=$3 n=${M_SNAP[$1/$2]:?model: no snapshot $2} keep="" d deps n0 want got
    deps=$(m_deps "$vm" "$n")
    [ "$(grep -c . <<<"$deps")" -le 1 ] || fail "test bug: $snap has several dependents"
    log_since 0 && n0=$LOG_POS
    rm "$M/$vm/snapshots/$snap/${SNAP_DEVS[i]}.qcow2" || fail "$vm: rm snapshots/$snap/${SNAP_DEVS[i]}.qcow2"
    sync "$M/$vm" || fail "$vm: sync after removing $snap/${SNAP_DEVS[i]}.qcow2"
    want=0
    [ -n "$deps" ] && want=1
    for d in ${M_DEVS[$vm/$n]}; do
        [ "$d" = "$i" ] || keep+=" $d"
    done
    if [ -z "$keep" ]; then
        m_forget "$vm" "$snap"
        [ -e "$M/$vm/snapshots/$snap" ] && fail "$vm: $snap still listed after its last image went"
    else
        M_DEVS[$vm/$n]=$keep
    fi
    merge_lines "$vm" "$n0" && got=$MERGE_LINES
    [ "$got" = "$want $want" ] ||
        fail "$vm: removing $snap/${SNAP_DEVS[i]}.qcow2 should merge $want disk(s); logged (started done): $got"
}

# m_visible VM NODE: the nearest visible node from NODE up ("" if none).
m_visible() {
    m_visible_v "$@"
    [ -n "$VISIBLE" ] && echo "$VISIBLE"
}
# m_visible_v VM NODE: the same in VISIBLE, without a subshell.
m_visible_v() {
    local vm=$1 n=$2
    while [ -n "$n" ] && [ -z "${M_NAME[$vm/$n]}" ]; do
        n=${M_PAR[$vm/$n]}
    done
    VISIBLE=""
    [ -z "$n" ] || VISIBLE=${M_NAME[$vm/$n]}
}

# parent_in SNAPDIR: in PARENT, what snap_parent SNAPDIR prints, read by
# bash (the same first <parent><name> match).
parent_in() {
    local x=""
    PARENT=""
    IFS= read -r -d '' x <"$1/snapshot.xml"
    [[ $x =~ \<parent\>[[:space:]]*\<name\>([^\<]*)\</name\> ]] && PARENT=${BASH_REMATCH[1]}
    return 0
}

# expect_content IMAGE-ARGS DISK "IDS" WHAT: the image (qemu-io's
# arguments for it) reads disk_pattern at 0, write j of every id in IDS,
# and zeros where every other write of the VM so far went.
expect_content() {
    local img=$1 i=$2 ids=" $3 " what=$4 vm=$5 k cmds=() out
    cmds=(-c "read -P $(disk_pattern "$i") 0 1M")
    for ((k = 1; k < M_N[$vm]; k++)); do
        if [[ $ids == *" $k "* ]]; then
            cmds+=(-c "read -P $(wpat "$k" "$i") $((k * DEL_MIB)) 64k")
        else
            cmds+=(-c "read -P 0 $((k * DEL_MIB)) 64k")
        fi
    done
    out=$(qemu-io -r -f qcow2 "${cmds[@]}" "$img" 2>&1) ||
        fail "$what: $img should hold writes {$3}: $(grep -v -e '^read ' -e 'ops/sec' <<<"$out" | head -n 3)"
    grep -qi 'verification failed' <<<"$out" && fail "$what: $img should hold writes {$3}: $out"
    return 0
}

# listed DIR NAME: NAME is in DIR's listing (not just found by lookup).
listed() {
    # shellcheck disable=SC2010
    ls -A "$1" | grep -qx -- "$2"
}

# hidden_images STORE VM: images in dot-named directories of snapshots/,
# one a line (hidden_images_v's HIDDEN).
hidden_images() {
    hidden_images_v "$1" "$2"
    ((${#HIDDEN[@]} == 0)) || printf '%s\n' "${HIDDEN[@]}"
}

# hidden_images_v STORE VM: HIDDEN=(the regular files named *.qcow2 in
# dot-named directories of STORE/VM/snapshots), found by bash's globs (in
# the order sort gives) rather than by find | sort: the model checks ask
# after every step. (The daemon puts a hidden image right in its hidden
# directory, never deeper.)
hidden_images_v() {
    local f ng=0
    shopt -q nullglob && ng=1
    shopt -s nullglob
    HIDDEN=()
    for f in "$1/$2"/snapshots/.[!.]*/*.qcow2 "$1/$2"/snapshots/..?*/*.qcow2; do
        [ -f "$f" ] && [ ! -L "$f" ] && HIDDEN+=("$f")
    done
    ((ng)) || shopt -u nullglob
}

# m_views VM STEP: the mount and the store show what the model says:
# the listing, each snapshot's <parent>, listing and disks, that the
# mount serves the store's bytes, every image's data (mount and store),
# `current`, the hidden images. One check at a time, failing the test at
# the first that does not hold.
m_views() {
    local vm=$1 step=$2 n i want got root snap x hidden=0 d
    want=$(for n in ${M_NODES[$vm]}; do
        [ -n "${M_NAME[$vm/$n]}" ] && echo "${M_NAME[$vm/$n]}"
    done | sort)
    want=$(paste -sd' ' <<<"$want") got=$(ls -A "$M/$vm/snapshots" | sort | paste -sd' ')
    [ "$got" = "$want" ] || fail "$step: $vm lists snapshots '$got', expected '$want'"
    for n in ${M_NODES[$vm]}; do
        snap=${M_NAME[$vm/$n]}
        if [ -z "$snap" ]; then
            hidden=$((hidden + $(wc -w <<<"${M_DEVS[$vm/$n]}")))
            continue
        fi
        x=$S/$vm/snapshots/$snap/snapshot.xml
        got=$(snap_parent "$S/$vm/snapshots/$snap")
        want=$(m_visible "$vm" "${M_PAR[$vm/$n]}")
        [ "$got" = "$want" ] || fail "$step: $vm/$snap's <parent> is '$got', expected '$want'"
        want="" got=$(ls -A "$M/$vm/snapshots/$snap" | sort | paste -sd' ')
        for d in ${M_DEVS[$vm/$n]}; do
            want+=" ${SNAP_DEVS[d]}.qcow2"
        done
        [ "$got" = "${want# }" ] || fail "$step: $vm/snapshots/$snap lists '$got', expected '${want# }'"
        for ((i = 0; i < M_DISKS[$vm]; i++)); do
            want=no
            [[ " ${M_DEVS[$vm/$n]} " == *" $i "* ]] && want=external
            got=$(xmllint --xpath "string(/domainsnapshot/disks/disk[@name='${SNAP_DEVS[i]}']/@snapshot)" "$x")
            [ "$got" = "$want" ] || fail "$step: $x marks ${SNAP_DEVS[i]} snapshot='$got', expected '$want'"
        done
        for i in ${M_DEVS[$vm/$n]}; do
            # A delete rewrites the backing names in the headers of
            # images the kernel has cached (the previous check read them
            # all): the mount must serve the new bytes at once.
            cmp -s "$M/$vm/snapshots/$snap/${SNAP_DEVS[i]}.qcow2" "$S/$vm/snapshots/$snap/${SNAP_DEVS[i]}.qcow2" ||
                fail "$step: the mount serves stale bytes of $vm/snapshots/$snap/${SNAP_DEVS[i]}.qcow2: $(qemu-img info -U "$M/$vm/snapshots/$snap/${SNAP_DEVS[i]}.qcow2" | grep '^backing file:')"
            for root in "$M" "$S"; do
                expect_content "$root/$vm/snapshots/$snap/${SNAP_DEVS[i]}.qcow2" "$i" "${M_CONT[$vm/$n]}" "$step" "$vm"
            done
        done
    done
    for ((i = 0; i < M_DISKS[$vm]; i++)); do
        for root in "$M" "$S"; do
            expect_content "$root/$vm/disks/${SNAP_DEVS[i]}.qcow2" "$i" "${M_ACTIVE[$vm]}" "$step" "$vm"
        done
    done
    want=$(m_visible "$vm" "${M_APAR[$vm]}")
    [ -n "${M_NOCUR[$vm]:-}" ] && want=""
    got=$(readlink "$M/$vm/current")
    [ "$got" = "${want:+snapshots/$want}" ] || fail "$step: $vm/current -> '$got', expected '${want:+snapshots/$want}'"
    got=$(hidden_images "$S" "$vm" | grep -c .)
    [ "$got" -eq "$hidden" ] ||
        fail "$step: $vm should keep $hidden hidden image(s), the store has: $(hidden_images "$S" "$vm")"
    return 0
}

# content_reads IMAGE I IDS [FROM]: expect_content's reads of IMAGE
# (disk I, writes IDS of VM $vm), added to the caller's qemu-io commands
# (cmds) as an open, the reads and a close; with FROM, only the reads at
# the offsets of writes FROM and later (see m_views_fast). Status 1 when
# IMAGE's path has blanks, which a qemu-io command cannot hold.
declare -A M_PAT=()    # "K I" -> $(wpat K I), "I" -> $(disk_pattern I)
content_reads() {
    local k from=${4:-1}
    [[ $1 != *[[:space:]]* ]] || return 1
    [ -n "${M_PAT[$2]:-}" ] || M_PAT[$2]=$(disk_pattern "$2")
    cmds+=(-c "open -r -o driver=qcow2 $1")
    ((from > 1)) || cmds+=(-c "read -q -P ${M_PAT[$2]} 0 1M")
    for ((k = from; k < M_N[$vm]; k++)); do
        if [[ " $3 " == *" $k "* ]]; then
            [ -n "${M_PAT[$k $2]:-}" ] || M_PAT[$k $2]=$(wpat "$k" "$2")
            cmds+=(-c "read -q -P ${M_PAT[$k $2]} $((k * DEL_MIB)) 64k")
        else
            cmds+=(-c "read -q -P 0 $((k * DEL_MIB)) 64k")
        fi
    done
    cmds+=(-c close)
}

# m_views_fast VM STEP: m_views' checks, every one of them, with fewer
# processes: one xmllint per snapshot for its disks, one b2sum for
# the snapshots' images through the mount and in the store (compared in
# pairs, as cmp did, before anything reads them) and for every file of
# the VM in the store, one qemu-io for all the data (open, read, close,
# image after image). An image whose chain holds the very files (path and
# bytes: chain_of) it held when an earlier check read all of it as the
# model said, with the model saying the same writes, reads the same: of
# it only the offsets of the writes made since are read (zeros), through
# the mount and in the store; every other image is read whole, as
# m_views reads it. Status 1 and M_FAST_ERR set when something does not
# hold; 2 when a path cannot go in a qemu-io command (blanks in it).
declare -A M_READ=()    # store image -> "chain key|writes it holds|M_N" when read whole
declare -A M_XML_TRUE=() # "XPath:snapshot.xml's bytes" -> true, as xmllint found it
m_views_fast() {
    local vm=$1 step=$2 n i want got snap x hidden=0 d root rel expr out real key content
    local -a pairs=() cmds=() reads=() files=() w=()
    local -A from=()
    M_FAST_ERR=""
    [ -n "${S_REAL:-}" ] || S_REAL=$(realpath -- "$S")
    want=$(for n in ${M_NODES[$vm]}; do
        [ -n "${M_NAME[$vm/$n]}" ] && echo "${M_NAME[$vm/$n]}"
    done | sort)
    # (Lines joined by blanks in bash, as paste -sd' ' joins them.)
    names_in "$M/$vm/snapshots"
    want=${want//$'\n'/ } got=$NAMES
    [ "$got" = "$want" ] || { M_FAST_ERR="$vm lists snapshots '$got', expected '$want'"; return 1; }
    for n in ${M_NODES[$vm]}; do
        snap=${M_NAME[$vm/$n]}
        if [ -z "$snap" ]; then
            read -r -a w <<<"${M_DEVS[$vm/$n]}"
            hidden=$((hidden + ${#w[@]}))
            continue
        fi
        x=$S/$vm/snapshots/$snap/snapshot.xml
        parent_in "$S/$vm/snapshots/$snap"
        m_visible_v "$vm" "${M_PAR[$vm/$n]}"
        got=$PARENT want=$VISIBLE
        [ "$got" = "$want" ] || { M_FAST_ERR="$vm/$snap's <parent> is '$got', expected '$want'"; return 1; }
        names_in "$M/$vm/snapshots/$snap"
        want="" got=$NAMES
        for d in ${M_DEVS[$vm/$n]}; do
            want+=" ${SNAP_DEVS[d]}.qcow2"
        done
        [ "$got" = "${want# }" ] || { M_FAST_ERR="$vm/snapshots/$snap lists '$got', expected '${want# }'"; return 1; }
        # Each disk's snapshot= as m_views reads it, all in one XPath.
        expr=""
        for ((i = 0; i < M_DISKS[$vm]; i++)); do
            want=no
            [[ " ${M_DEVS[$vm/$n]} " == *" $i "* ]] && want=external
            expr+="${expr:+ and }string(/domainsnapshot/disks/disk[@name='${SNAP_DEVS[i]}']/@snapshot)='$want'"
        done
        # (xmllint once per content of the file and expression: a
        # snapshot.xml is written once and read after every later step)
        content=""
        IFS= read -r -d '' content <"$x"
        got=${M_XML_TRUE[$expr:$content]:-}
        if [ -z "$got" ]; then
            got=$(xmllint --xpath "boolean($expr)" "$x" 2>&1)
            [ "$got" != true ] || M_XML_TRUE[$expr:$content]=true
        fi
        [ "$got" = true ] || { M_FAST_ERR="$x: the disks' snapshot= are not as the model has them ($got)"; return 1; }
        for i in ${M_DEVS[$vm/$n]}; do
            rel=$vm/snapshots/$snap/${SNAP_DEVS[i]}.qcow2
            pairs+=("$M/$rel" "$S/$rel")
            reads+=("$rel" "$i" "${M_CONT[$vm/$n]}")
        done
    done
    for ((i = 0; i < M_DISKS[$vm]; i++)); do
        reads+=("$vm/disks/${SNAP_DEVS[i]}.qcow2" "$i" "${M_ACTIVE[$vm]}")
    done
    # The mount serves the store's bytes (cmp, before any read below); the
    # sums of the VM's files in the store tell which chains are as read.
    files_under "$S_REAL/$vm" '*.qcow2'
    files=("${FILES[@]}")
    file_sums "${pairs[@]}" "${files[@]}"
    for ((i = 0; i < ${#pairs[@]}; i += 2)); do
        [ -n "${FILE_SUM[${pairs[i]}]:-}" ] && [ "${FILE_SUM[${pairs[i]}]}" = "${FILE_SUM[${pairs[i + 1]}]:-}" ] ||
            { M_FAST_ERR="the mount serves other bytes than the store's of ${pairs[i]#"$M/"}"; return 1; }
    done
    for ((i = 0; i < ${#reads[@]}; i += 3)); do
        rel=${reads[i]} real=$S_REAL/${reads[i]}
        chain_of "$real" || { M_FAST_ERR=$CHAIN_ERR; return 1; }
        key=$CHAIN_KEY
        # (read whole before, its chain the same files, the same writes)
        got=${M_READ[$real]:-}
        if [ -n "$key" ] && [ "${got%|*}" = "$key|${reads[i + 2]}" ]; then
            from[$real]=${got##*|}
        else
            from[$real]=1
        fi
        for root in "$M" "$S"; do
            content_reads "$root/$rel" "${reads[i + 1]}" "${reads[i + 2]}" "${from[$real]}" || return 2
        done
    done
    out=$(qemu-io "${cmds[@]}" 2>&1) && [[ ${out,,} != *"verification failed"* ]] ||
        { M_FAST_ERR="reading the images of $vm: $(head -n 3 <<<"$out")"; return 1; }
    for ((i = 0; i < ${#reads[@]}; i += 3)); do
        real=$S_REAL/${reads[i]}
        chain_of "$real" && [ -n "$CHAIN_KEY" ] && M_READ[$real]="$CHAIN_KEY|${reads[i + 2]}|${M_N[$vm]}"
    done
    want=$(m_visible "$vm" "${M_APAR[$vm]}")
    [ -n "${M_NOCUR[$vm]:-}" ] && want=""
    got=$(readlink "$M/$vm/current")
    [ "$got" = "${want:+snapshots/$want}" ] || { M_FAST_ERR="$vm/current -> '$got', expected '${want:+snapshots/$want}'"; return 1; }
    hidden_images_v "$S" "$vm"
    got=${#HIDDEN[@]}
    [ "$got" -eq "$hidden" ] || { M_FAST_ERR="$vm should keep $hidden hidden image(s), the store has: $(hidden_images "$S" "$vm")"; return 1; }
    return 0
}

# m_check VM STEP: after STEP, the store and the mount are what the model
# says: m_views' checks (all of them at once; when one fails, m_views
# again, one at a time, so that the failure says which), nothing logged
# as an error, the store is sound with no orphan image.
m_check() {
    local vm=$1 step=$2 got st=0 line
    m_views_fast "$vm" "$step" || st=$?
    if ((st)); then
        m_views "$vm" "$step"
        ((st == 2)) || fail "$step: $M_FAST_ERR"
    fi
    # Nothing since the last check logged an error (e.g. a hidden
    # directory taken for a snapshot and its snapshot.xml looked for).
    log_since "$M_LOGPOS"
    M_LOGPOS=$LOG_POS
    got=""
    for line in "${LOG_ADDED[@]}"; do
        case ${line,,} in *"no such file"* | *error* | *failed*) got+=$line ;; esac
    done
    [ -z "$got" ] || fail "$step: the daemon logged an error: $got"
    # (No check_overlays: a revert leaves the discarded branch's leaf
    # naming disks/<dev>.qcow2, as libvirt does; t_snap_matrix has it so.)
    check_store "$S" "$vm"
    check_no_orphans "$S" "$vm"
}

# image_chain IMAGE: IMAGE and every image below it, as real paths.
# Fails (status 1, why on stderr) when the chain does not open: callers
# check the status, as a fail in $(...) would exit only that subshell.
image_chain() {
    image_chain_v "$1" || { echo "$CHAIN_ERR" >&2; return 1; }
    [ -z "$IMAGE_CHAIN" ] || echo "$IMAGE_CHAIN"
}

# image_chain_v IMAGE: image_chain's lines in IMAGE_CHAIN (a caller that
# keeps them needs no $(...) around it: one process fewer per chain);
# status 1 and CHAIN_ERR set when the chain does not open.
image_chain_v() {
    local out line bname="" bfmt=0
    local -a files=() backs=() bfmts=()
    IMAGE_CHAIN=""
    out=$(qemu-img info -U --backing-chain --output=json "$1" 2>&1) || {
        CHAIN_ERR="qemu-img info --backing-chain $1: $out"
        return 1
    }
    # The "filename" lines' values, as sed -n 's/^ *"filename": "\(.*\)",\{0,1\}$/\1/p'
    # prints them, resolved as realpath -m would (resolve_m); and each image's backing name and
    # whether its format is recorded, which check_store needs too
    # (backing_note).
    while IFS= read -r line; do
        if [[ $line =~ ^\ *\"filename\":\ \"(.*)\",?$ ]]; then
            files+=("${BASH_REMATCH[1]}")
        elif [[ $line =~ ^\ *\"backing-filename\":\ \"(.*)\",?$ ]]; then
            bname=${BASH_REMATCH[1]}
        elif [[ $line == *'"backing-filename-format":'* ]]; then
            bfmt=1
        elif [[ $line == '    }'* ]]; then
            # (the end of one image's object in the array)
            backs+=("$bname") bfmts+=("$bfmt") bname="" bfmt=0
        fi
    done <<<"$out"
    resolve_m "${files[@]}"
    for line in "${RESOLVED[@]}"; do
        IMAGE_CHAIN+=$line$'\n'
    done
    IMAGE_CHAIN=${IMAGE_CHAIN%$'\n'}
    ((${#backs[@]} != ${#files[@]})) || backing_note "$IMAGE_CHAIN" backs bfmts
}

# chain_of IMAGE: IMAGE's backing chain (IMAGE, a real path, first) in
# CHAIN_FILES, one a line; in CHAIN_KEY, each file of it with its sum as
# FILE_SUM has it (the caller's file_sums read every file of the VM just
# before), "" when a file of it has none there. A chain is what qemu-img
# makes of its files' paths and bytes: while every file of the chain it
# printed holds the same bytes, it is the same chain, not asked again.
# Status 1 and CHAIN_ERR set when the chain does not open.
declare -A CHAIN=()    # real path -> "file<TAB>sum" lines, as qemu-img last said
chain_of() {
    local p=$1 f sum ok=1 chain key=""
    CHAIN_KEY="" CHAIN_FILES="" CHAIN_ERR=""
    if [ -n "${CHAIN[$p]:-}" ]; then
        while IFS=$'\t' read -r f sum; do
            [ "${FILE_SUM[$f]:-}" = "$sum" ] || { ok=0; break; }
            CHAIN_FILES+=$f$'\n'
        done <<<"${CHAIN[$p]}"
        if ((ok)); then
            CHAIN_KEY=${CHAIN[$p]} CHAIN_FILES=${CHAIN_FILES%$'\n'}
            return 0
        fi
    fi
    unset "CHAIN[$p]"
    image_chain_v "$p" || return 1
    chain=$IMAGE_CHAIN
    CHAIN_FILES=$chain
    while IFS= read -r f; do
        [ -n "${FILE_SUM[$f]:-}" ] || return 0
        key+=$f$'\t'${FILE_SUM[$f]}$'\n'
    done <<<"$chain"
    CHAIN[$p]=${key%$'\n'} CHAIN_KEY=${key%$'\n'}
}

# domain_sources FILE: DOMAIN_SOURCES=the <source file=> of every disk
# FILE (a domain.xml) names, blank-separated, as xmllint reads them
# (xpath_cached: once per content); "" when there is no FILE.
domain_sources() {
    local line
    DOMAIN_SOURCES=""
    [ -f "$1" ] || return 0
    xpath_cached "$1" '//devices/disk/source/@file'
    # (sed -n 's/.*file="\(.*\)".*/\1/p' of each line, in bash)
    while IFS= read -r line; do
        [[ $line =~ file=\"(.*)\" ]] && DOMAIN_SOURCES+=" ${BASH_REMATCH[1]}"
    done <<<"$XPATH_RESULT"
    return 0
}

# check_no_orphans STORE VM: every image file under STORE/VM (qcow2, raw,
# iso, img) is an active image, a visible snapshot's image, or in the
# backing chain of one of those; and every dot-named directory under
# snapshots/ (a hidden snapshot) still holds such an image. A top image
# already met in the chain of an earlier one is not opened again: that
# chain opened it and everything below it; nor is one whose chain's files
# hold the bytes they held when it was (chain_of; one b2sum reads
# them all first).
check_no_orphans() {
    local store=$1 vm=$2 f d top chain i
    local -a tops=() files=() real=()
    declare -A need=()
    # The images domain.xml names (read-only disks, CD-ROMs) count as
    # active ones.
    domain_sources "$store/$vm/domain.xml"
    for top in "$store/$vm"/disks/*.qcow2 "$store/$vm"/snapshots/[!.]*/*.qcow2 $DOMAIN_SOURCES; do
        [ -e "$top" ] && tops+=("$top")
    done
    files_under "$store/$vm" '*.qcow2' '*.raw' '*.img' '*.iso'
    files=("${FILES[@]}")
    # The real paths of both (resolve_m).
    resolve_m "${tops[@]}" "${files[@]}"
    real=("${RESOLVED[@]}")
    file_sums "${real[@]}"
    for ((i = 0; i < ${#tops[@]}; i++)); do
        top=${tops[i]}
        case $top in *.qcow2) ;; *) need[${real[i]}]=1 && continue ;; esac
        [ -n "${need[${real[i]}]:-}" ] && continue
        chain_of "${real[i]}" || fail "check_no_orphans: $CHAIN_ERR"
        while IFS= read -r f; do
            need[$f]=1
        done <<<"$CHAIN_FILES"
    done
    for ((i = 0; i < ${#files[@]}; i++)); do
        f=${files[i]}
        [ -n "${need[${real[${#tops[@]} + i]}]:-}" ] ||
            fail "check_no_orphans: $f is an image nothing needs (no active image, visible snapshot or chain of one)"
    done
    for d in "$store/$vm"/snapshots/.*/; do
        case $d in */./ | */../) continue ;; esac
        [ -d "$d" ] || continue
        files_under "$d" '*.qcow2'
        ((${#FILES[@]})) ||
            fail "check_no_orphans: hidden directory $d is left with no image"
    done
}
