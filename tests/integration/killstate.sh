# shellcheck shell=bash
# What scripts/kill-campaign compares and checks (sourced after lib.sh,
# snapfix.sh and delmodel.sh, not run): a store mounted on $M from $S,
# its images cut in NSLOT slots of SLOT bytes.
#
#   capture STATE   records the state STATE as the mount shows it now
#   classify        VERDICT=before or after when every VM reads as that
#                   state (the same for all), else neither (CLASSIFY_WHY)
#   store_checks    adds to PROBLEMS what is wrong in the store
#
# A state is, for every VM the mount lists, its listing (delmodel.sh's
# model_shape: snapshots and their disks, disks, current, the disks
# domain.xml names; plus the VM's own entries and its clones) and, for
# every image it shows, the byte each slot holds: found once (the first
# byte of each slot) and then verified whole with read -P, through the
# mount and in the store, by one qemu-io per image.

declare -A VMS=() SHAPE=() IMGS=()

# mount_vms: the VMs the mount lists.
mount_vms() {
    local f
    for f in "$M"/*; do
        [ -d "$f" ] && echo "${f##*/}"
    done
}

# vm_shape VM: what the mount lists of VM ("absent" when nothing).
vm_shape() {
    local out
    model_shape "$M" "$1"
    [ -e "$M/$1" ] || return 0
    out=$(ls -A "$M/$1" 2>&1)
    echo "entries: ${out//$'\n'/ }"
    out=$(ls -A "$M/$1/clones" 2>&1)
    echo "clones: ${out//$'\n'/ }"
}

# vm_images VM: the images the mount shows of VM, relative to VM.
vm_images() {
    local f
    for f in "$M/$1"/disks/*.qcow2 "$M/$1"/snapshots/*/*.qcow2; do
        [ -e "$f" ] && echo "${f#"$M/$1"/}"
    done
}

# slot_map IMAGE: "slot:0xNN ..." the first byte of each slot of IMAGE.
slot_map() {
    local out s=0 map="" line
    local -a cmds=()
    for ((s = 0; s < NSLOT; s++)); do
        cmds+=(-c "read -v $((s * SLOT)) 1")
    done
    out=$(qemu-io -r -f qcow2 "${cmds[@]}" "$1" 2>&1) || { echo "$out"; return 1; }
    s=0
    while read -r line; do
        [[ $line =~ ^[0-9a-f]{8}:\ +([0-9a-f]{2}) ]] || continue
        map+=" $s:0x${BASH_REMATCH[1]}"
        s=$((s + 1))
    done <<<"$out"
    ((s == NSLOT)) || { echo "$1: $s slots read of $NSLOT: $out"; return 1; }
    echo "${map# }"
}

# read_map IMAGE MAP: IMAGE reads as MAP (what slot_map prints), a run
# of slots holding one byte (up to 16 MiB) checked by one read -P. Reading
# zeros costs qemu-io as much as reading data: a slot that must read as
# zeros is read only where `qemu-img map` does not say "zero" (unallocated
# in the whole chain, or zero clusters: qemu's own answer for what a read
# returns). Prints what failed; status 1 then. qemu-io's buffers come from
# the heap, not from a fresh mmap a read (GLIBC_TUNABLES; 32 MiB is its
# largest threshold): half the time.
read_map() {
    local img=$1 e s pat first=0 cur="" n=0 out line start len
    local -a cmds=()
    local -A data=()
    out=$(qemu-img map -f qcow2 --output=json "$img" 2>&1) || { echo "$img: $(head -n 3 <<<"$out")"; return 1; }
    while read -r line; do
        [[ $line =~ \"start\":\ ([0-9]+),\ \"length\":\ ([0-9]+),.*\"zero\":\ false ]] || continue
        start=${BASH_REMATCH[1]} len=${BASH_REMATCH[2]}
        for ((s = start / SLOT; s <= (start + len - 1) / SLOT; s++)); do
            data[$s]=1
        done
    done <<<"$out"
    for e in $2 end:; do
        s=${e%%:*} pat=${e#*:}
        # (a zero slot that map says is zero reads as nothing: "")
        [ "$pat" != 0x00 ] || [ -n "${data[$s]:-}" ] || pat=""
        if [ "$pat" != "$cur" ] || ((n * SLOT >= 16777216)); then
            [ -z "$cur" ] || cmds+=(-c "read -q -P $cur $((first * SLOT)) $((n * SLOT))")
            first=$s cur=$pat n=0
        fi
        n=$((n + 1))
    done
    ((${#cmds[@]})) || return 0
    out=$(GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432 qemu-io -r -f qcow2 "${cmds[@]}" "$img" 2>&1) ||
        { echo "$img: $(head -n 3 <<<"$out")"; return 1; }
}

# reads_as VM REL MAP: VM's image REL reads as MAP through the mount and
# in the store. Status 1 and STATE_ERR set when not.
reads_as() {
    local where
    for where in "$M" "$S"; do
        STATE_ERR=$(read_map "$where/$1/$2" "$3") || return 1
    done
}

# capture STATE: the mount's state, recorded as STATE. Status 1 and
# STATE_ERR set when an image cannot be read or a slot does not hold one
# byte throughout (then the campaign's store is not what it thinks).
capture() {
    local state=$1 vm rel map
    VMS[$state]=$(mount_vms)
    for vm in ${VMS[$state]}; do
        SHAPE[$state/$vm]=$(vm_shape "$vm")
        IMGS[$state/$vm]=""
        for rel in $(vm_images "$vm"); do
            map=$(slot_map "$M/$vm/$rel") || { STATE_ERR=$map; return 1; }
            reads_as "$vm" "$rel" "$map" || return 1
            IMGS[$state/$vm]+="$rel $map"$'\n'
        done
    done
}

# matches STATE: every VM (those of STATE, and those the mount lists)
# reads as in STATE. Status 1 and STATE_ERR set when not. NOW[vm] caches
# the listing of the mount.
declare -A NOW=()
matches() {
    local state=$1 vm want rel map
    for vm in $( (echo "${VMS[$state]}"; mount_vms) | sort -u); do
        [ -n "${NOW[$vm]+set}" ] || NOW[$vm]=$(vm_shape "$vm")
        want=${SHAPE[$state/$vm]:-absent}
        if [ "${NOW[$vm]}" != "$want" ]; then
            STATE_ERR="$vm lists as
$(sed 's/^/      /' <<<"${NOW[$vm]}")
    but in the state $state as
$(sed 's/^/      /' <<<"$want")"
            return 1
        fi
        while read -r rel map; do
            [ -n "$rel" ] || continue
            reads_as "$vm" "$rel" "$map" || { STATE_ERR="$vm/$rel: $STATE_ERR"; return 1; }
        done <<<"${IMGS[$state/$vm]:-}"
    done
}

# classify: VERDICT for the state after the kill of the operation OP.
classify() {
    local why
    NOW=()
    VERDICT=before
    matches before && return
    why=$STATE_ERR
    VERDICT=after
    matches "after:$OP" && return
    VERDICT=neither
    CLASSIFY_WHY="not before: $why
    not after: $STATE_ERR"
}

# store_checks: no orphan (nothing at the top of the store but VMs and
# .vmstorefs; store_sound for every VM there or in the mount: a VM the
# mount does not list has no directory left), the journal and tmp/ empty,
# qemu-img check clean on every image, every domain.xml and snapshot.xml
# valid. Appends "orphan: ..." and "check: ..." lines to PROBLEMS.
store_checks() {
    local f vm out
    for f in "$S"/.[!.]* "$S"/..?*; do
        [ -e "$f" ] && [ "${f##*/}" != .vmstorefs ] && PROBLEMS+=("orphan: $f at the top of the store")
    done
    for vm in $( (mount_vms; ls "$S") | sort -u); do
        if [ -e "$M/$vm" ]; then
            MODEL[$vm/#def]=1
        else
            unset "MODEL[$vm/#def]"
        fi
        store_sound "$S" "$vm" || PROBLEMS+=("orphan: $STORE_ERR")
    done
    for f in journal tmp; do
        lists_nothing "$S/.vmstorefs/$f" ||
            PROBLEMS+=("check: .vmstorefs/$f is not empty: $(ls -A "$S/.vmstorefs/$f" | head -n 3)")
    done
    while IFS= read -r -d '' f; do
        out=$(qemu-img check -U -q "$f" 2>&1) || PROBLEMS+=("check: qemu-img check $f: $out")
    done < <(find "$S" -path "$S/.vmstorefs" -prune -o -name '*.qcow2' -type f -print0)
    xml_checks domain "$S"/*/domain.xml
    xml_checks domainsnapshot "$S"/*/snapshots/*/snapshot.xml
}

# xml_checks TYPE FILE...: those of the FILEs that are there validate as
# TYPE (one xmllint for all; virt-xml-validate per file, for its message,
# when that fails).
xml_checks() {
    local type=$1 f out
    local -a files=()
    shift
    for f in "$@"; do
        [ -e "$f" ] && files+=("$f")
    done
    xml_valid "$type" "${files[@]}" && return
    for f in "${files[@]}"; do
        out=$(virt-xml-validate "$f" "$type" 2>&1) || PROBLEMS+=("check: $f: $out")
    done
}
