# shellcheck shell=bash
# The data model and store checks of the delete crash and busy tests
# (sourced after lib.sh and snapfix.sh, not run).
#
# A VM's disks are cut in fixed slots (MSLOT[vm] bytes each). The model
# says, for every image the user can see - the active image of each disk
# and each visible snapshot's image - which pattern each slot holds (0:
# never written). Writes go through the mount and into the model; a
# snapshot copies the active images' entries; a delete only drops the
# deleted image's entries: SPEC says every other image reads exactly as
# before. model_check reads every modelled image through the mount with
# qemu-io read -P, so a merge in the wrong direction or onto the wrong
# image shows as a pattern mismatch.
#
#   MODEL[vm/@/dev]   active image of dev: " slot:pat slot:pat ..."
#   MODEL[vm/S/dev]   snapshot S's image of dev
#   MODEL[vm/#cur]    the snapshot `current` names ("" when none)
#   MODEL[vm/#def]    1 while the VM has a domain.xml
#   MSLOT[vm], MNSLOT[vm]  slot size in bytes and the number of slots read

declare -A MODEL=() MSLOT=() MNSLOT=()

# model_init VM NDISKS SLOTBYTES NSLOTS: a make_vm VM (disk I holds
# disk_pattern I at 0+1M; with slots above 1M the caller overwrites slot 0
# before anything is checked).
model_init() {
    local vm=$1 n=$2 i s dev
    MSLOT[$vm]=$3 MNSLOT[$vm]=$4
    MODEL[$vm/#cur]="" MODEL[$vm/#def]=1
    for ((i = 0; i < n; i++)); do
        dev=${SNAP_DEVS[i]}
        MODEL[$vm/@/$dev]=""
        for ((s = 0; s * $3 < 1048576; s++)); do
            MODEL[$vm/@/$dev]+=" $s:$(disk_pattern "$i")"
        done
    done
}

# slot_set LIST SLOT PAT: SLOT_LIST=LIST with SLOT holding PAT.
slot_set() {
    local e
    SLOT_LIST=""
    for e in $1; do
        [ "${e%%:*}" = "$2" ] || SLOT_LIST+=" $e"
    done
    SLOT_LIST+=" $2:$3"
}

# model_pull_vm STORE MNT VM [S1 ACTIVE]: a VM with one disk, s0 <- s1 <-
# active, slots of 4 MiB, 16 of them: s0's image holds slot 0 (0x21), s1's
# the next S1 slots (0x22; 2: 8 MiB), the active image the ACTIVE after
# them (0x23; 4). Deleting s1 merges the smaller side: with the defaults
# s1 is pulled into the active image; with S1 > ACTIVE (4 1) the active
# image is committed into s1's.
model_pull_vm() {
    local s1=${4:-2} active=${5:-4}
    make_vm "$1" "$3" 1
    model_init "$3" 1 4194304 16
    [ -d "$2/$3" ] || fail "$3 does not show in the mount"
    model_write "$2" "$3" vda 0 1 0x21
    model_take "$2" "$3" s0
    model_write "$2" "$3" vda 1 "$s1" 0x22
    model_take "$2" "$3" s1
    model_write "$2" "$3" vda $((1 + s1)) "$active" 0x23
}

# model_write MNT VM DEV FIRST COUNT PAT: slots FIRST..FIRST+COUNT-1 of
# DEV's active image get PAT, through the mount.
model_write() {
    local mnt=$1 vm=$2 dev=$3 first=$4 count=$5 pat=$6 s out
    out=$(qemu-io -f qcow2 -c "write -q -P $pat $((first * MSLOT[$vm])) $((count * MSLOT[$vm]))" \
        "$mnt/$vm/disks/$dev.qcow2" 2>&1) || fail "model_write $vm $dev: $out"
    for ((s = first; s < first + count; s++)); do
        slot_set "${MODEL[$vm/@/$dev]}" "$s" "$pat"
        MODEL[$vm/@/$dev]=$SLOT_LIST
    done
}

# model_devs VM WHERE: the disks the model has at WHERE (@ or a
# snapshot), sorted, one a line; model_devs_v puts them in SORTED.
model_devs() {
    model_devs_v "$@"
    ((${#SORTED[@]} == 0)) || printf '%s\n' "${SORTED[@]}"
}
model_devs_v() {
    local k
    local -a devs=()
    for k in "${!MODEL[@]}"; do
        [[ $k == "$1/$2/"* ]] && devs+=("${k##*/}")
    done
    sort_words "${devs[@]}"
}

# model_snaps VM: the visible snapshots of VM.
model_snaps() {
    local k s
    for k in "${!MODEL[@]}"; do
        [[ $k == "$1/"*/* ]] || continue
        s=${k#"$1"/}
        s=${s%%/*}
        [[ $s == @ || $s == \#* ]] || echo "$s"
    done | sort -u
}

# model_take MNT VM S: mkdir snapshots/S; S's images hold what the active
# images hold.
model_take() {
    local mnt=$1 vm=$2 s=$3 dev
    mkdir "$mnt/$vm/snapshots/$s" || fail "model_take: mkdir $vm/snapshots/$s"
    model_devs_v "$vm" @
    for dev in "${SORTED[@]}"; do
        MODEL[$vm/$s/$dev]=${MODEL[$vm/@/$dev]}
    done
    MODEL[$vm/#par:$s]=${MODEL[$vm/#cur]}
    MODEL[$vm/#cur]=$s
}

# model_revert MNT VM S: the active images read as S's again.
model_revert() {
    local mnt=$1 vm=$2 s=$3 dev
    ln -sfn "snapshots/$s" "$mnt/$vm/current" || fail "model_revert: $vm to $s"
    model_devs_v "$vm" "$s"
    for dev in "${SORTED[@]}"; do
        MODEL[$vm/@/$dev]=${MODEL[$vm/$s/$dev]}
    done
    MODEL[$vm/#cur]=$s
}

# model_forget VM S [DEV]: the model after deleting snapshot S (or only
# DEV's image of it). When S goes (whole, or its last image), its
# children take its parent, and so does `current` if it named S: the VM
# then grows from S's parent, as libvirt has it.
model_forget() {
    local vm=$1 s=$2 k par
    model_unset "$vm/$s/${3:-}"
    model_devs_v "$vm" "$s"
    ((${#SORTED[@]} == 0)) || return 0
    par=${MODEL[$vm/#par:$s]:-}
    unset "MODEL[$vm/#par:$s]"
    for k in "${!MODEL[@]}"; do
        [[ $k == "$vm/#par:"* && ${MODEL[$k]} == "$s" ]] && MODEL[$k]=$par
    done
    [ "${MODEL[$vm/#cur]}" = "$s" ] && MODEL[$vm/#cur]=$par
    return 0
}

# model_drop_vm VM: the VM is gone.
model_drop_vm() {
    model_unset "$1/"
}

# model_unset PREFIX: every key starting with PREFIX leaves the model.
model_unset() {
    local k
    for k in "${!MODEL[@]}"; do
        [[ $k == "$1"* ]] && unset "MODEL[$k]"
    done
    return 0
}

# model_dump / model_load TEXT: the model as text, to keep a "before" and
# an "after" and switch between them.
model_dump() {
    local k
    for k in "${!MODEL[@]}"; do
        printf '%s\t%s\n' "$k" "${MODEL[$k]}"
    done | sort
}
model_load() {
    local k v
    MODEL=()
    while IFS=$'\t' read -r k v; do
        [ -n "$k" ] && MODEL[$k]=$v
    done <<<"$1"
}

# model_shape MNT VM: what the mount lists for VM, in model_shape_of's
# words: cheap, tells "before" from "after" before any data is read.
# model_shape_v puts it in SHAPE (no trailing newline). Listings are
# bash's globs (names_in, ls -A's names in sort's order), the disks of
# domain.xml xmllint's (xpath_cached): the crash loops ask it twice a
# point, and a process costs here.
model_shape() {
    model_shape_v "$@"
    printf '%s\n' "$SHAPE"
}
model_shape_v() {
    local mnt=$1 vm=$2 s line rest
    local -a devs=() snaps=()
    [ -e "$mnt/$vm" ] || { SHAPE=absent; return 0; }
    names_in "$mnt/$vm/snapshots"
    SHAPE="snapshots: $NAMES"
    snaps=("${NAMES_A[@]}")
    for s in "${snaps[@]}"; do
        names_in "$mnt/$vm/snapshots/$s"
        SHAPE+=$'\n'"$s: $NAMES"
    done
    names_in "$mnt/$vm/disks"
    SHAPE+=$'\n'"disks: $NAMES"
    SHAPE+=$'\n'"current: $(readlink "$mnt/$vm/current")"
    if [ -e "$mnt/$vm/domain.xml" ]; then
        # The "..." strings of xmllint's lines (grep -o), unquoted, sorted.
        xpath_cached "$mnt/$vm/domain.xml" '//devices/disk[@device="disk" or not(@device)]/target/@dev'
        while IFS= read -r line; do
            rest=$line
            while [[ $rest =~ \"([^\"]*)\" ]]; do
                devs+=("${BASH_REMATCH[1]}")
                rest=${rest#*"${BASH_REMATCH[0]}"}
            done
        done <<<"$XPATH_RESULT"
        sort_words "${devs[@]}"
        SHAPE+=$'\n'"domain: ${SORTED[*]}"
    else
        SHAPE+=$'\n'"domain: none"
    fi
}
# model_shape_of VM: the same, as the model has it (model_shape_of_v: in
# SHAPE_OF). Snapshots sorted, and each one's disks.
model_shape_of() {
    model_shape_of_v "$@"
    printf '%s\n' "$SHAPE_OF"
}
model_shape_of_v() {
    local vm=$1 k w d snaps="" disks="" devs=""
    local -a where=() lines=()
    local -A of=()
    [ -n "${MODEL[$vm/#def]:-}" ] || { SHAPE_OF=absent; return 0; }
    for k in "${!MODEL[@]}"; do
        [[ $k == "$vm/"*/* ]] || continue
        w=${k#"$vm"/}
        w=${w%%/*}
        [[ $w == \#* ]] && continue
        [ -n "${of[$w]+set}" ] || where+=("$w")
        of[$w]+=" ${k##*/}"
    done
    sort_words "${where[@]}"
    where=("${SORTED[@]}")
    for w in "${where[@]}"; do
        # (word splitting: device names have no blanks)
        # shellcheck disable=SC2086
        sort_words ${of[$w]}
        if [ "$w" = @ ]; then
            for d in "${SORTED[@]}"; do
                disks+=" $d.qcow2" devs+=" $d"
            done
            continue
        fi
        snaps+=" $w"
        k="$w:"
        for d in "${SORTED[@]}"; do
            k+=" $d.qcow2"
        done
        lines+=("$k")
    done
    SHAPE_OF="snapshots: ${snaps# }"
    for k in "${lines[@]}"; do
        SHAPE_OF+=$'\n'"$k"
    done
    SHAPE_OF+=$'\n'"disks: ${disks# }"
    SHAPE_OF+=$'\n'"current: ${MODEL[$vm/#cur]:+snapshots/${MODEL[$vm/#cur]}}"
    if [ "${MODEL[$vm/#def]}" = 1 ]; then
        SHAPE_OF+=$'\n'"domain: ${devs# }"
    else
        SHAPE_OF+=$'\n'"domain: none"
    fi
}

# slot_reads VM LIST: the qemu-io commands (in SLOT_CMDS) that read each
# slot of an image of VM as LIST says.
slot_reads() {
    local vm=$1 list=$2 s pat e
    SLOT_CMDS=()
    for ((s = 0; s < MNSLOT[$vm]; s++)); do
        pat=0
        for e in $list; do
            [ "${e%%:*}" = "$s" ] && pat=${e#*:}
        done
        SLOT_CMDS+=(-c "read -q -P $pat $((s * MSLOT[$vm])) ${MSLOT[$vm]}")
    done
}

# read_slots IMAGE VM LIST: IMAGE reads as LIST says, slot by slot (one
# qemu-io for all of them). Prints what failed; status 1 then.
read_slots() {
    local img=$1 vm=$2 list=$3 out
    slot_reads "$vm" "$list"
    out=$(qemu-io -r ${MODEL_SHARE:+-U} -f qcow2 "${SLOT_CMDS[@]}" "$img" 2>&1) || { echo "$img: $out" | head -n 3; return 1; }
}

# MODEL_SHARE=1: the images are read with force-share (qemu-io -U), as
# while a merge holds one it writes (imagelock.h: such a merge refuses
# readers that ask for a consistent image, as qemu-img's own locks do).
MODEL_SHARE=
# model_check MNT VM [SHAPE]: the mount shows VM as the model has it -
# listing, `current`, the disks domain.xml names, every image's data.
# Status 1 and MODEL_ERR set when not (the crash loops try "before", then
# "after", with SHAPE: what model_shape printed, listed once for both).
# The data of all the images is read by one qemu-io (open, read, close,
# image after image); when that fails, read_slots per image says which.
model_check() {
    local mnt=$1 vm=$2 k where dev img got want out i batch=1
    local -a imgs=() lists=() cmds=()
    MODEL_ERR=""
    if (($# > 2)); then
        got=$3
    else
        model_shape_v "$mnt" "$vm"
        got=$SHAPE
    fi
    model_shape_of_v "$vm"
    want=$SHAPE_OF
    if [ "$got" != "$want" ]; then
        MODEL_ERR="$vm lists as
$got
but the model has
$want"
        return 1
    fi
    for k in "${!MODEL[@]}"; do
        [[ $k == "$vm/"*/* ]] || continue
        where=${k#"$vm"/} dev=${k##*/}
        where=${where%/*}
        if [ "$where" = @ ]; then
            img=$mnt/$vm/disks/$dev.qcow2
        else
            img=$mnt/$vm/snapshots/$where/$dev.qcow2
        fi
        imgs+=("$img") lists+=("${MODEL[$k]}")
        # (a qemu-io command cannot hold a path with blanks)
        [[ $img != *[[:space:]]* ]] || batch=0
        slot_reads "$vm" "${MODEL[$k]}"
        cmds+=(-c "open -r ${MODEL_SHARE:+-U }-o driver=qcow2 $img" "${SLOT_CMDS[@]}" -c close)
    done
    if ((batch)); then
        ((${#cmds[@]})) || return 0
        out=$(qemu-io "${cmds[@]}" 2>&1) && [[ ${out,,} != *"verification failed"* ]] && return 0
    fi
    for ((i = 0; i < ${#imgs[@]}; i++)); do
        MODEL_ERR=$(read_slots "${imgs[i]}" "$vm" "${lists[i]}") || return 1
    done
    ((batch)) || return 0
    MODEL_ERR="$vm: its images read one by one as the model has them, but not in one qemu-io: $(head -n 3 <<<"$out")"
    return 1
}

# model_ok MNT VM...: model_check that fails the test.
model_ok() {
    local mnt=$1 vm
    shift
    for vm in "$@"; do
        model_check "$mnt" "$vm" || fail "model: $MODEL_ERR"
    done
}

# ---- the store ----

# image_parents FILE...: PARENT_OF[file] is the absolute path of each
# (real) FILE's backing file ("" if none: realpath -m of backing_name,
# one realpath for all of them). It depends on the file's bytes and its
# path only, so it is asked once per path and content (b2sum, images up
# to 64 MiB as IMG_SIZE has them): the crash loops see the same files over
# and over. An answer is kept only when the file's sum is the same after
# qemu-img read it as before.
declare -A PARENT_OF=() PARENT_CACHE=() IMG_SIZE=()
image_parents() {
    local f i
    # (REAL local: real_paths fills it here, the caller's - store_sound's
    # - stays as it was)
    local -a small=() miss=() asked=() names=() REAL=()
    local -A INFO_OF=()
    PARENT_OF=()
    for f in "$@"; do
        [ -n "${IMG_SIZE[$f]:-}" ] && ((IMG_SIZE[$f] <= 67108864)) && small+=("$f")
    done
    file_sums "${small[@]}"
    for f in "$@"; do
        if [ -n "${FILE_SUM[$f]:-}" ] && [ -n "${PARENT_CACHE[$f:${FILE_SUM[$f]}]+set}" ]; then
            PARENT_OF[$f]=${PARENT_CACHE[$f:${FILE_SUM[$f]}]}
        else
            backing_name "$f"
            PARENT_OF[$f]=""
            INFO_OF[$f]=$BACKING_INFO
            [ -z "$BACKING" ] || { asked+=("$f") names+=("$BACKING"); }
            [ -n "${FILE_SUM[$f]:-}" ] && miss+=("$f" "${FILE_SUM[$f]}")
        fi
    done
    if ((${#names[@]})); then
        real_paths -m "${names[@]}"
        for ((i = 0; i < ${#asked[@]}; i++)); do
            PARENT_OF[${asked[i]}]=${REAL[i]}
        done
    fi
    ((${#miss[@]})) || return 0
    local -a again=()
    for ((i = 0; i < ${#miss[@]}; i += 2)); do
        again+=("${miss[i]}")
    done
    file_sums "${again[@]}"
    for ((i = 0; i < ${#miss[@]}; i += 2)); do
        f=${miss[i]}
        [ "${FILE_SUM[$f]:-}" = "${miss[i + 1]}" ] || continue
        PARENT_CACHE[$f:${miss[i + 1]}]=${PARENT_OF[$f]}
        # (and check_store need not ask qemu-img about these bytes again)
        [ -z "${INFO_OF[$f]}" ] || BACKING_BY_SUM[${miss[i + 1]}]=${INFO_OF[$f]}
    done
    return 0
}

# real_paths [-m] FILE...: REAL[i] is `realpath [-m] FILE` of the i-th
# FILE ("" when it fails), from one realpath when all of them resolve
# (with -m, resolve_m's).
real_paths() {
    local f
    if [ "${1:-}" = -m ]; then
        shift
        resolve_m "$@"
        REAL=("${RESOLVED[@]}")
        return 0
    fi
    # (realpath without -m: when every path resolve_m worked out is there,
    # that is realpath's answer too)
    resolve_m "$@"
    REAL=("${RESOLVED[@]}")
    for f in "${REAL[@]}"; do
        [ -e "$f" ] || { REAL=(); break; }
    done
    ((${#REAL[@]} == $#)) && return 0
    REAL=()
    (($#)) || return 0
    while IFS= read -r -d '' f; do
        REAL+=("$f")
    done < <(realpath -z -- "$@" 2>/dev/null)
    ((${#REAL[@]} == $#)) && return 0
    REAL=()
    for f in "$@"; do
        REAL+=("$(realpath -- "$f")")
    done
}

# store_sound STORE VM: no orphan and no idle hidden image. Every file
# under STORE/VM is domain.xml, a snapshot.xml, or an image that an
# active image or a visible snapshot's image needs (itself or in its
# backing chain); every image in a hidden (dot-named) snapshot directory
# has at least two dependents (SPEC: merged at one, removed at none); a
# VM the model has deleted has no directory left. Status 1 and STORE_ERR
# set when not.
store_sound() {
    local store=$1 vm=$2 f p n i top size
    local -a found=() tops=() sizes=()
    local -A parent=() needed=() deps=()
    STORE_ERR=""
    if [ -z "${MODEL[$vm/#def]:-}" ]; then
        [ ! -e "$store/$vm" ] && return 0
        STORE_ERR="$vm was deleted but $store/$vm holds: $(find "$store/$vm" | head -n 5 | paste -sd' ')"
        return 1
    fi
    while IFS= read -r -d '' f; do
        size=${f%% *} f=${f#* }
        case $f in
            */domain.xml | */.domain.xml.undefined | */snapshots/*/snapshot.xml) continue ;;
            *.qcow2) ;;
            *) STORE_ERR="stray file $f"; return 1 ;;
        esac
        found+=("$f") sizes+=("$size")
    done < <(find "$store/$vm" -type f -printf '%s %p\0')
    for f in "$store/$vm"/disks/*.qcow2 "$store/$vm"/snapshots/[!.]*/*.qcow2; do
        [ -e "$f" ] && tops+=("$f")
    done
    # The real paths of the images, of the tops and of the VM, at once.
    real_paths "${found[@]}" "${tops[@]}" "$store/$vm"
    IMG_SIZE=()
    for ((i = 0; i < ${#found[@]}; i++)); do
        [ -z "${REAL[i]}" ] || IMG_SIZE[${REAL[i]}]=${sizes[i]}
    done
    image_parents "${REAL[@]:0:${#found[@]}}"
    for ((i = 0; i < ${#found[@]}; i++)); do
        f=${REAL[i]}
        parent[$f]=${PARENT_OF[$f]}
        [ -n "${parent[$f]}" ] && deps[${parent[$f]}]=$((${deps[${parent[$f]}]:-0} + 1))
    done
    for ((i = 0; i < ${#tops[@]}; i++)); do
        p=${REAL[${#found[@]} + i]}
        while [ -n "$p" ] && [ -z "${needed[$p]:-}" ]; do
            needed[$p]=1
            p=${parent[$p]:-}
        done
    done
    top=${REAL[${#found[@]} + ${#tops[@]}]}
    for f in "${!parent[@]}"; do
        [ -n "${needed[$f]:-}" ] || { STORE_ERR="orphan image $f"; return 1; }
        case $f in
            "$top"/snapshots/.*)
                n=${deps[$f]:-0}
                [ "$n" -ge 2 ] || { STORE_ERR="hidden image $f has $n dependent(s), not merged or removed"; return 1; }
                ;;
        esac
    done
    for f in "$store/$vm"/snapshots/[!.]*; do
        [ -e "$f" ] || continue
        [ -f "$f/snapshot.xml" ] || { STORE_ERR="visible snapshot $f has no snapshot.xml"; return 1; }
    done
}

# store_ok [--settled] STORE VM...: store_sound and check_store (valid XML
# and images, journal and tmp/ empty), failing the test. --settled: right
# after settled STORE VM... held, whose store_sound is not made again.
store_ok() {
    local sound=1 store vm
    [ "$1" = --settled ] && { sound=0; shift; }
    store=$1
    shift
    for vm in "$@"; do
        ((sound == 0)) || store_sound "$store" "$vm" || fail "store: $STORE_ERR"
        [ -e "$store/$vm" ] && check_store "$store" "$vm"
    done
    journal_empty "$store"
}

# hidden_dirs STORE VM: the hidden snapshot directories of VM.
hidden_dirs() {
    find "$1/$2/snapshots" -mindepth 1 -maxdepth 1 -name '.*' 2>/dev/null | sort
}

# settled STORE VM...: waits up to 5 s for store_sound to hold (a merge
# that follows an operation - the gc - may run after it returns).
settled() {
    local store=$1 i vm ok
    shift
    for ((i = 0; i < 50; i++)); do
        ok=1
        for vm in "$@"; do
            store_sound "$store" "$vm" || { ok=0; break; }
        done
        ((ok)) && return 0
        sleep 0.1
    done
    return 1
}
