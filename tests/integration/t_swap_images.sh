#!/bin/bash
# The owner of a VM can rename and swap the files of its directory at any
# moment, and the daemon (root) runs qemu-img on them. A daemon that
# checks an image's chain and then hands qemu-img its path lets the owner
# swap another image in between (renameat2 RENAME_EXCHANGE): one whose
# backing file lies outside the store, which qemu-img then commits into
# (a write as root), or copies from into a clone or a pulled image (a
# read as root). The daemon hands qemu-img descriptors of what it checked
# instead (qspec.h), so the swap changes nothing qemu-img does.
#
# No race to win: every data step's qemu-img stops at the gate
# (qimggate.sh) before it opens anything. The test swaps the image the
# step works on with a planted one (backing file: a qcow2 outside the
# store, root's, 0600), lets it go on, and checks that
#   - the file outside is unchanged and was never opened (inotify);
#   - the step worked on the images the daemon checked: once the owner
#     swaps back, the VM (and a clone) reads as the operation says;
#   - the planted image is unchanged;
#   - strace of the daemon and all its children (every qemu-img) shows
#     no file opened but the store's, the system's and the gate's.
# For every operation that runs qemu-img on a VM's images: delete in
# the commit direction and in the pull direction, a partial delete (one
# image of a snapshot), the merge of a hidden image after a revert, a
# clone and a clone from a snapshot; and a take, which runs none (it
# writes its overlays itself), with the image swapped before it. Without descriptors every case
# fails (the commit writes the outside file, the others read it).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
. "$(dirname "$0")/qimggate.sh"
. "$(dirname "$0")/watchout.sh"
need_fuse
need python3 perl pgrep sha256sum strace

S=$TMP/store M=$TMP/mnt O=$TMP/outside
EXCHANGE=$HELPERS/exchange
[ -x "$EXCHANGE" ] || fail "no $EXCHANGE (make check builds it)"
mkdir -p "$S" "$O"
make_image "$O/victim.qcow2" 64M && fill "$O/victim.qcow2" 0x77 0 2M ||
    fail "cannot make the outside image"
chmod 0600 "$O/victim.qcow2"
VICTIM=$(sha256sum <"$O/victim.qcow2")

# plant VM DIR: DIR/.evil.qcow2 in VM, 0xee at 1M+1M over the outside
# image (an absolute backing name: the planted file no check passes).
plant() {
    local evil=$S/$1/$2/.evil.qcow2
    # Written before it gets its backing name: qemu-io would open that.
    qemu-img create -q -f qcow2 "$evil" 64M &&
        qemu-io -f qcow2 -c 'write -q -P 0xee 1M 1M' "$evil" >/dev/null &&
        qemu-img rebase -u -b "$O/victim.qcow2" -F qcow2 "$evil" ||
        fail "cannot plant $evil"
    EVIL=$evil
    EVIL_SUM=$(sha256sum <"$evil")
    EVIL_INO=$(stat -c %i "$evil")
}

# swapped_step WHAT IMAGE DONE CMD...: runs CMD (in the background) with
# the gate armed; once its qemu-img stops at the gate, swaps IMAGE with
# the planted image, lets the qemu-img go on and waits for CMD, and (DONE
# not "") for the daemon to log DONE: a merge runs on the background
# worker after rmdir returned. (Not sync: until the owner swaps back, the
# worker's next look at the VM finds the planted chain and fails, as it
# should.)
swapped_step() {
    local what=$1 image=$2 done=$3 q st=0 i
    shift 3
    gate_arm
    "$@" 2>"$TMP/step.err" &
    local pid=$!
    gate_wait "$DAEMON_PID" 1
    q=${GATED[0]}
    gate_disarm
    "$EXCHANGE" "$image" "$EVIL" || fail "$what: exchange"
    gate_cont "$q"
    wait "$pid" || st=$?
    [ "$st" -eq 0 ] || fail "$what: $* failed ($st): $(cat "$TMP/step.err")"
    [ -n "$done" ] || return 0
    for i in $(seq 1200); do
        grep -q "$done" "$DAEMON_LOG" && return 0
        sleep 0.1
    done
    fail "$what: the daemon did not log \"$done\" in 120 s"
}

# after_swap WHAT IMAGE: the owner swaps back if the planted image still
# stands at IMAGE (a merge that replaced IMAGE's file leaves it), and the
# planted file goes; nothing outside was touched.
after_swap() {
    local what=$1 image=$2 at=$EVIL
    # (Not qemu-img info: it would open the outside file itself.)
    if [ "$(stat -c %i "$image")" = "$EVIL_INO" ]; then
        "$EXCHANGE" "$image" "$EVIL" || fail "$what: exchange back"
    fi
    [ "$(stat -c %i "$EVIL" 2>/dev/null)" = "$EVIL_INO" ] || at=""
    [ -z "$at" ] || [ -z "$EVIL_SUM" ] || [ "$(sha256sum <"$at")" = "$EVIL_SUM" ] ||
        fail "$what: the planted image was written"
    rm -f "$EVIL"
    sleep 0.3 # inotify events come asynchronously
    [ ! -s "$TMP/touched" ] || fail "$what: a file outside the store was opened: $(sort -u "$TMP/touched")"
    # Read here (after the watcher's check): the test's own read.
    [ "$(sha256sum <"$O/victim.qcow2")" = "$VICTIM" ] ||
        fail "$what: the image outside the store was written"
    sleep 0.3
    : >"$TMP/touched"
}

gate_init
watch_outside "$O" "$TMP/touched"
mount_fs "$S" "$M" "${GATE_OPT[@]}"
# Every file the daemon and its children (the qemu-imgs) open, from here
# on: checked at the end against what they may open.
strace -f -y -qq -e trace=open,openat,openat2 -o "$TMP/opens" -p "$DAEMON_PID" 2>"$TMP/strace.err" &
STRACE=$!
DAEMONS+=("$STRACE")
for i in $(seq 50); do
    grep -q "^TracerPid:[[:space:]]*$STRACE$" "/proc/$DAEMON_PID/status" && break
    sleep 0.1
done
grep -q "^TracerPid:[[:space:]]*$STRACE$" "/proc/$DAEMON_PID/status" ||
    fail "strace did not attach to the daemon: $(cat "$TMP/strace.err")"

# vm_base VM NDISKS: slot 0 (4 MiB slots) in s0, 1-2 in s1, then the
# active image holds what the case writes.
vm_base() {
    make_vm "$S" "$1" "$2"
    model_init "$1" "$2" 4194304 16
    [ -d "$M/$1" ] || fail "$1 does not show in the mount"
    local dev
    for dev in $(model_devs "$1" @); do model_write "$M" "$1" "$dev" 0 1 0x21; done
    model_take "$M" "$1" s0
    for dev in $(model_devs "$1" @); do model_write "$M" "$1" "$dev" 1 2 0x22; done
    model_take "$M" "$1" s1
}

# ---- take: the active image becomes the snapshot's and a new overlay,
# which the daemon writes itself, takes its place: no qemu-img runs, so
# there is no process between the take's checks and its renames that a
# swap could send outside. With every qemu-img gated, a take ends and
# none stopped (one that ran a qemu-img would stop here: it is let go,
# and the test fails). The owner then swaps the planted image in before
# the next take: the daemon takes it as the snapshot's or refuses its
# chain; either way it opens nothing outside.
vm_base tak 1
gate_arm_all
mkdir "$M/tak/snapshots/s2" 2>"$TMP/step.err" &
pid=$!
ran_qemu_img=()
while kill -0 "$pid" 2>/dev/null; do
    mapfile -t ran_qemu_img < <(gate_stopped "$DAEMON_PID")
    if [ "${#ran_qemu_img[@]}" -gt 0 ]; then
        gate_disarm
        gate_cont "${ran_qemu_img[@]}"
        break
    fi
    sleep 0.05
done
gate_disarm
[ "${#ran_qemu_img[@]}" -eq 0 ] ||
    fail "take: it ran qemu-img: $(gate_args "${ran_qemu_img[0]}" 2>/dev/null)"
wait "$pid" || fail "take: $(cat "$TMP/step.err")"
plant tak disks
"$EXCHANGE" "$S/tak/disks/vda.qcow2" "$EVIL" || fail "take: exchange"
# The take moves whatever stands at disks/vda.qcow2 into s3 and gives it
# the backing name it needs there (the owner's own file, in its VM), or
# refuses the chain it finds: either way nothing outside is opened, and
# the VM then reads only its own files.
mkdir "$M/tak/snapshots/s3" 2>"$TMP/step.err" || grep -q "Permission denied" "$TMP/step.err" ||
    fail "take: $(cat "$TMP/step.err")"
EVIL_SUM=""
after_swap take "$S/tak/disks/vda.qcow2"
qemu-img convert -O raw "$M/tak/disks/vda.qcow2" "$TMP/tak.raw" 2>"$TMP/conv.err" ||
    grep -q "Permission denied" "$TMP/conv.err" || fail "take: reading tak: $(cat "$TMP/conv.err")"
rm -f "$TMP/tak.raw"
after_swap "take, read" "$S/tak/disks/vda.qcow2"
rmdir "$M/tak" || fail "take: rmdir tak"
pass "take: the swapped-in image's backing file outside is never opened"

# ---- delete, commit direction: s1's image (8 MiB) takes the small active
# image's data; qemu-img commit opens the active image.
vm_base com 1
model_write "$M" com vda 3 1 0x23
plant com disks
swapped_step "commit" "$S/com/disks/vda.qcow2" "merge of com disk vda .*direction=commit .* done" \
    rmdir "$M/com/snapshots/s1"
after_swap commit "$S/com/disks/vda.qcow2"
sync "$M/com" || fail "commit: sync com"
model_forget com s1
model_ok "$M" com
pass "delete (commit direction): the swapped-in image is not committed into the file outside"

# ---- delete, pull direction: the active image (16 MiB) takes s1's.
vm_base pul 1
model_write "$M" pul vda 3 4 0x23
plant pul disks
swapped_step "pull" "$S/pul/disks/vda.qcow2" "merge of pul disk vda .*direction=pull .* done" \
    rmdir "$M/pul/snapshots/s1"
after_swap pull "$S/pul/disks/vda.qcow2"
sync "$M/pul" || fail "pull: sync pul"
model_forget pul s1
model_ok "$M" pul
pass "delete (pull direction): the file outside is not read into the VM"

# ---- partial delete: one image of s1 (vdb stays).
vm_base part 2
model_write "$M" part vda 3 4 0x23
plant part disks
swapped_step "partial" "$S/part/disks/vda.qcow2" "merge of part disk vda .* done" \
    rm "$M/part/snapshots/s1/vda.qcow2"
after_swap partial "$S/part/disks/vda.qcow2"
sync "$M/part" || fail "partial: sync part"
model_forget part s1 vda
model_ok "$M" part
pass "partial delete: the same"

# ---- revert, then the hidden image's merge: after a revert to s0, s0's
# image has two dependents (s1's, the new active); deleting s0 hides
# it, deleting s1 leaves it one, and the worker merges it into the
# active image.
vm_base rev 1
model_revert "$M" rev s0
model_write "$M" rev vda 3 4 0x24
rmdir "$M/rev/snapshots/s0" || fail "rev: rmdir s0"
model_forget rev s0
plant rev disks
swapped_step "hidden merge" "$S/rev/disks/vda.qcow2" "merge of rev disk vda .* done" \
    rmdir "$M/rev/snapshots/s1"
after_swap "hidden merge" "$S/rev/disks/vda.qcow2"
sync "$M/rev" || fail "hidden merge: sync rev"
model_forget rev s1
model_ok "$M" rev
pass "revert, then the merge of the hidden image: the same"

# ---- clone of the current state, and clone from a snapshot: qemu-img
# convert reads the source chain.
vm_base cln 1
model_write "$M" cln vda 3 1 0x25
plant cln disks
swapped_step "clone" "$S/cln/disks/vda.qcow2" "" mkdir "$M/cln/clones/c1"
after_swap clone "$S/cln/disks/vda.qcow2"
model_ok "$M" cln
for e in ${MODEL[cln/@/vda]}; do
    read_pattern "$M/c1/disks/vda.qcow2" "${e#*:}" $((${e%%:*} * 4194304)) 4194304
done
qemu-img info -U "$S/c1/disks/vda.qcow2" | grep -q "backing file" && fail "clone: c1's disk has a backing file"
pass "clone: the copy holds the source's data, nothing from outside"

plant cln disks
swapped_step "clone from s1" "$S/cln/snapshots/s1/vda.qcow2" "" mkdir "$M/cln/snapshots/s1/clones/c2"
after_swap "clone from s1" "$S/cln/snapshots/s1/vda.qcow2"
for e in ${MODEL[cln/s1/vda]}; do
    read_pattern "$M/c2/disks/vda.qcow2" "${e#*:}" $((${e%%:*} * 4194304)) 4194304
done
pass "clone from a snapshot: the same"

# What the daemon and every qemu-img opened: the store, qemu-img's
# descriptors (/proc/self/fd), the gate's wrapper and the shim it
# preloads, and the system's own files; nothing else, and nothing outside
# the store in particular.
unmount_fs "$M"
kill "$STRACE" 2>/dev/null
wait "$STRACE" 2>/dev/null
[ -s "$TMP/opens" ] || fail "strace recorded nothing"
grep -q 'openat(.*"/proc/self/fd/3"' "$TMP/opens" || fail "strace saw no qemu-img open a descriptor"
# -y: each successful open's result names the file it reached, however
# it was named (a dirfd and a relative name, a link followed).
bad=$(sed -n 's/.* = [0-9]*<\(.*\)>$/\1/p' "$TMP/opens" | sort -u |
    grep -v -e "^$S/" -e "^$S\$" -e '^/proc/' -e '^/sys/' -e '^/dev/' -e '^/usr/' -e '^/lib' \
        -e '^/etc/' -e "^$TMP/gate/" -e "^$TMP/gate\$" -e "^$HELPERS/gateshim.so\$" -e '^pipe:' -e '^socket:' -e '^anon_inode:' || true)
[ -z "$bad" ] || fail "the daemon or a qemu-img opened: $bad"
grep -q "$O" "$TMP/opens" && fail "an open outside the store: $(grep "$O" "$TMP/opens" | head -3)"
pass "strace: the daemon and every qemu-img opened only the store, descriptors and system files"