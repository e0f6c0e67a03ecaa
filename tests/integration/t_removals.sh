#!/bin/bash
# Removals do exactly what they name, and merges run in the background
# (issue 15; SPEC's removal rows). Each case on its own 2-disk VM
# (s1 <- s2 <- active, every image holding its own data):
#   - find VM -maxdepth 1 ( -name domain.xml -o -name current ) -delete
#     undefines the VM and hides current, no image changes; the
#     definition is kept and `vmstorefs-ctl define` puts it back, byte
#     for byte;
#   - rm -ri VM answering yes to domain.xml and current only: exactly
#     those two go;
#   - find -type f -mtime +30 -delete over the mount, with domain.xml and
#     one frozen image old: the VM is undefined and that one image leaves
#     its snapshot; the active disks read as before;
#   - tar --remove-files of a VM: the VM leaves the store, nothing is
#     merged, and the archive extracts to chains that open and read as
#     the VM did;
#   - a crash in the middle of rm -r VM: after the remount every
#     snapshot reads as before, the disk being detached is there or not,
#     nothing else changed;
#   - rm domain.xml of a VM a qemu runs: EBUSY, the definition stays;
#   - rmdir of a snapshot returns before its merge runs: while the merge
#     is stopped (SIGSTOP, qimggate.sh) the snapshot is gone from the
#     listing, .jobs shows the merge, ls answers, and `sync VMDIR` waits
#     until the merge is done;
#   - a delete never rewrites an image open for reading through the
#     mount: with s2's image open, deleting s1 (its backing name changes,
#     then a pull into it by size) leaves the reader the file it opened,
#     byte for byte: a copy takes its place.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delmodel.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need virt-xml-validate xmllint perl tar pgrep
CTL=${VMSTOREFS%/*}/vmstorefs-ctl

S=$TMP/store M=$TMP/mnt
gate_init

# chain VM, then fill_chain VM through the mount: s1 <- s2 <- active on
# 2 disks; s1's images hold one slot of their own, s2's eight, the
# active images one (deleting s1 pulls it into s2's image, the cheaper
# way).
chain() {
    make_vm "$S" "$1" 2
    model_init "$1" 2 524288 16
}
fill_chain() {
    local vm=$1 i
    for i in 0 1; do
        model_write "$M" "$vm" "${SNAP_DEVS[i]}" 2 1 $((0x21 + i))
    done
    model_take "$M" "$vm" s1
    for i in 0 1; do
        model_write "$M" "$vm" "${SNAP_DEVS[i]}" 3 8 $((0x31 + i))
    done
    model_take "$M" "$vm" s2
    for i in 0 1; do
        model_write "$M" "$vm" "${SNAP_DEVS[i]}" 12 1 $((0x41 + i))
    done
}
for vm in a b c d e f g h; do
    chain "$vm"
done
mount_fs "$S" "$M" "${GATE_OPT[@]}"
for vm in a b c d e f g h; do
    fill_chain "$vm"
done
model_ok "$M" a b c d e f g h

images_of() { tree_state "$S/$1/disks"; tree_state "$S/$1/snapshots"; }
merges_of() { grep -c "merge of $1 disk" "$DAEMON_LOG"; }

# ---- find -maxdepth 1 (domain.xml or current) -delete ----
cp "$S/a/domain.xml" "$TMP/a.xml"
before=$(images_of a)
find "$M/a" -maxdepth 1 \( -name domain.xml -o -name current \) -delete ||
    fail "find -delete of a's domain.xml and current"
[ "$(images_of a)" = "$before" ] || fail "find -delete of domain.xml and current changed a's images"
[ -e "$M/a/domain.xml" ] && fail "a/domain.xml is still there"
[ -L "$M/a/current" ] && fail "a/current is still there"
cmp -s "$S/a/.domain.xml.undefined" "$TMP/a.xml" || fail "a's definition was not kept as it was"
MODEL[a/#def]=0 MODEL[a/#cur]=""
model_ok "$M" a
"$CTL" "$S" define a || fail "vmstorefs-ctl define a"
cmp -s "$S/a/domain.xml" "$TMP/a.xml" || fail "define did not put a's definition back as it was"
"$CTL" "$S" define a 2>/dev/null && fail "a second define succeeded"
MODEL[a/#def]=1
pass "find -delete of domain.xml and current: undefined, current hidden, no image changed; define puts the definition back"

# ---- rm -ri answering yes to domain.xml and current only ----
# rm asks in the order the mount lists (domain.xml, current, disks,
# snapshots, clones) and reads one answer a line; the prompts it asked
# are checked, so a different order fails here rather than answering
# the wrong question.
before=$(images_of h)
printf '%s\n' y y y n n n n n n >"$TMP/answers"
# (rm's status does not tell: declining is no error.)
rm -ri "$M/h" <"$TMP/answers" 2>"$TMP/prompts"
[ -d "$M/h" ] || fail "rm -ri h removed h"
prompts=$(sed 's/? /?\n/g' "$TMP/prompts" | grep -o "rm: [a-z ]*'[^']*'" | sed "s|$M/||" | paste -sd ';')
[ "$prompts" = "rm: descend into directory 'h';rm: remove regular file 'h/domain.xml';rm: remove symbolic link 'h/current';rm: descend into directory 'h/disks';rm: descend into directory 'h/snapshots';rm: remove directory 'h/clones'" ] ||
    fail "rm -ri h asked: $prompts"
[ "$(images_of h)" = "$before" ] || fail "rm -ri h changed images it was told not to remove"
[ -e "$S/h/domain.xml" ] && fail "rm -ri h left domain.xml"
[ -L "$M/h/current" ] && fail "rm -ri h left current"
MODEL[h/#def]=0 MODEL[h/#cur]=""
model_ok "$M" h
pass "rm -ri h, yes to domain.xml and current only: h undefined, current hidden, nothing else changed"

# ---- find -type f -mtime +30 -delete ----
touch -d '40 days ago' "$S/b/domain.xml" "$S/b/snapshots/s1/vdb.qcow2"
find "$M/b" -type f -mtime +30 -delete || fail "find -mtime +30 -delete"
sync "$M/b" || fail "sync b"
[ -e "$S/b/domain.xml" ] && fail "b is still defined"
[ -e "$M/b/snapshots/s1/vdb.qcow2" ] && fail "b's old s1/vdb image is still listed"
model_forget b s1 vdb
MODEL[b/#def]=0
model_ok "$M" b
store_ok "$S" b
pass "find -mtime +30 -delete: b undefined, s1 loses its old vdb image (merged), the active disks read as before"

# ---- tar --remove-files ----
n0=$(merges_of c)
tar --remove-files -cf "$TMP/c.tar" -C "$M" c || fail "tar --remove-files of c"
[ -e "$S/c" ] && fail "tar --remove-files left $(find "$S/c" | head -n 5 | paste -sd' ')"
[ "$(merges_of c)" = "$n0" ] || fail "tar --remove-files of c merged data"
mkdir "$TMP/x" && tar -xf "$TMP/c.tar" -C "$TMP/x" || fail "extracting c.tar"
for f in "$TMP"/x/c/disks/*.qcow2 "$TMP"/x/c/snapshots/*/*.qcow2; do
    qemu-img check -q "$f" || fail "extracted $f does not check"
    qemu-img info --backing-chain "$f" >/dev/null || fail "extracted $f's chain does not open"
done
model_ok "$TMP/x" c
pass "tar --remove-files: c leaves the store with nothing merged; the archive extracts to chains that read as c did"

# ---- a crash in the middle of rm -r VM ----
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
export VMSTOREFS_CRASH_AT=detach:2
mount_fs "$S" "$M" "${GATE_OPT[@]}"
unset VMSTOREFS_CRASH_AT
pid=$DAEMON_PID
rm -r "$M/d" 2>/dev/null && fail "rm -r d went through a crashed daemon"
status=0
wait "$pid" || status=$?
forget_daemon "$pid"
[ "$status" -eq 99 ] || fail "the daemon exited $status, not at the crash point"
fusermount3 -u -z "$M"
mount_fs "$S" "$M" "${GATE_OPT[@]}"
[ -e "$S/d/domain.xml" ] && fail "d is defined: its domain.xml was removed before the crash"
MODEL[d/#def]=0
[ -e "$M/d/disks/vda.qcow2" ] || model_unset "d/@/vda"
model_ok "$M" d
store_ok "$S" d
pass "a crash during rm -r d: each entry removed so far as it alone would be, the rest as before"

# ---- rm domain.xml of a running VM ----
nbd_hold "$S/e/disks/vda.qcow2"
qio_hold "$S/e/disks/vdb.qcow2" "$S/e/disks/vdb.qcow2"
cp "$S/e/domain.xml" "$TMP/e.xml"
expect_fail "rm domain.xml of a running VM" "Device or resource busy" rm "$M/e/domain.xml"
cmp -s "$S/e/domain.xml" "$TMP/e.xml" || fail "a refused rm domain.xml changed it"
nbd_release
qio_release
pass "rm domain.xml of a VM a qemu runs: EBUSY, the definition stays"

# ---- rmdir returns before the merge ----
gate_arm
rmdir "$M/f/snapshots/s1" || fail "rmdir f/snapshots/s1"
gate_wait "$DAEMON_PID" 1
[ "$(ls "$M/f/snapshots")" = s2 ] || fail "while the merge waits, f/snapshots lists: $(ls "$M/f/snapshots")"
grep -q "^merge f " "$M/.jobs" || fail "while it waits, .jobs has no merge of f: $(cat "$M/.jobs")"
ls -l "$M/f" >/dev/null || fail "ls -l f while its merge runs"
sync "$M/f" &
syncpid=$!
nap 0.5
kill -0 "$syncpid" 2>/dev/null || fail "sync f returned while f's merge was stopped"
gate_disarm "$DAEMON_PID"
wait "$syncpid" || fail "sync f failed"
[ -z "$(cat "$M/.jobs")" ] || fail "after sync f, .jobs still shows: $(cat "$M/.jobs")"
model_forget f s1
model_ok "$M" f
store_ok "$S" f
pass "rmdir returned before its merge; while it ran s1 was gone, .jobs showed it, ls answered; sync f waited for it"

# ---- a reader's image is never rewritten ----
# s1 holds 1 slot, s2's image 8: deleting s1 renames s2's backing file
# and pulls s1 into s2's image.
cp "$S/g/snapshots/s2/vda.qcow2" "$TMP/g-s2-vda"
exec 5<"$M/g/snapshots/s2/vda.qcow2"
n0=$(wc -l <"$DAEMON_LOG")
rmdir "$M/g/snapshots/s1" || fail "rmdir g/snapshots/s1"
sync "$M/g" || fail "sync g"
tail -n +$((n0 + 1)) "$DAEMON_LOG" | grep -q "g/snapshots/s2/vda.qcow2 is open for reading through the mount: a copy" ||
    fail "deleting s1 with s2's image open did not leave the reader its file: $(tail -n +$((n0 + 1)) "$DAEMON_LOG")"
# (Read through the reader's own descriptor: /proc/self/fd/5 would open
# the path again.)
cmp -s - "$TMP/g-s2-vda" <&5 || fail "the open s2 image's bytes changed under its reader"
exec 5<&-
model_forget g s1
model_ok "$M" g
store_ok "$S" g
pass "a delete and a merge around an image open for reading: the reader's bytes stay, a copy took its place"
unmount_fs "$M"
