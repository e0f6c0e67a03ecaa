#!/bin/bash
# Redefining a VM by writing its domain.xml through the mount (issue 18,
# part 1; SPEC §2, "write <vm>/domain.xml"). The tools people use work:
# cp, `>` redirection, tee, sed -i (a temporary file beside domain.xml,
# renamed over it), vim (its backup and swap files beside it), and
# writing back the domain.xml of an undefined VM. A definition that fails
# a check (malformed XML, libvirt's schema, a <name> that is not the VM's,
# a disk outside the VM or the store, a disk whose image is not in disks/)
# is refused: the writing program fails (close or rename returns
# EINVAL), the daemon logs one line naming the reason, and domain.xml
# stays byte for byte. A disk the new definition leaves out is detached
# (its active image goes, its snapshots still read); one it adds needs
# its image in disks/. A crash (kill at each durable point of the
# redefine) leaves the old definition or the new one, never a mix.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
need_fuse
need virt-xml-validate xmllint perl vim nano script

S=$TMP/store M=$TMP/mnt O=$TMP/outside
D=$M/vm/domain.xml
make_vm "$S" vm 2
mkdir -p "$O"
mount_fs "$S" "$M"
qemu-io -f qcow2 -c "write -q -P 0x44 2M 1M" "$M/vm/disks/vdb.qcow2" >/dev/null || fail "write vdb"
mkdir "$M/vm/snapshots/s1" || fail "mkdir s1"
qemu-io -f qcow2 -c "write -q -P 0x45 3M 1M" "$M/vm/disks/vdb.qcow2" >/dev/null || fail "write vdb"
cp "$D" "$TMP/orig.xml" || fail "read domain.xml"

# memory MIB FILE: the definition in FILE with <memory> set to MIB.
memory() {
    sed "s|<memory unit=.MiB.>[0-9]*</memory>|<memory unit='MiB'>$1</memory>|" "$2"
}
# has_memory MIB: the store's domain.xml says so, and validates.
has_memory() {
    grep -q "<memory unit=.MiB.>$1</memory>" "$S/vm/domain.xml" ||
        fail "$2: the store's domain.xml does not have memory $1: $(grep memory "$S/vm/domain.xml")"
    virt-xml-validate "$S/vm/domain.xml" domain >/dev/null 2>&1 || fail "$2: domain.xml does not validate"
}

memory 601 "$TMP/orig.xml" >"$TMP/m601.xml"
cp "$TMP/m601.xml" "$D" || fail "cp new.xml domain.xml"
has_memory 601 cp
cmp -s "$D" "$S/vm/domain.xml" || fail "the mount's domain.xml is not the store's after cp"
pass "cp new.xml VM/domain.xml redefines the VM"

memory 602 "$TMP/orig.xml" >"$TMP/m602.xml"
cat "$TMP/m602.xml" >"$D" || fail "cat >domain.xml"
has_memory 602 redirection
memory 603 "$TMP/orig.xml" | tee "$D" >/dev/null || fail "tee domain.xml"
has_memory 603 tee
sed -i 's|>603</memory>|>604</memory>|' "$D" || fail "sed -i domain.xml"
has_memory 604 "sed -i"
# vim writes in place (a shorter text: it truncates), with its swap file
# beside domain.xml, fsyncs (the redefine) and sets the mode again.
HOME=$TMP vim --clean -es -c '%s/>604<\/memory>/>64<\/memory>/' -c wq "$D" || fail "vim"
has_memory 64 vim
HOME=$TMP vim -u NONE -es -c '%s/>64<\/memory>/>606<\/memory>/' -c wq "$D" || fail "vim -u NONE"
has_memory 606 "vim -u NONE"
# nano_replace FROM TO [OPTION]: nano, on a terminal (script(1)), replaces
# FROM by TO in domain.xml and saves (^\ replace, A all, ^O write, ^X
# exit). The keys go once nano has drawn its screen: before that the
# terminal is not raw yet and ^\ would be a SIGQUIT.
nano_replace() {
    local fifo=$TMP/nano.in out=$TMP/nano.out pid i st=0
    rm -f "$fifo" "$out" && mkfifo "$fifo" || fail "nano: mkfifo"
    TERM=xterm HOME=$TMP script -qfec "nano --ignorercfiles ${3:-} $D" /dev/null <"$fifo" >"$out" 2>&1 &
    pid=$!
    exec 7>"$fifo"
    for ((i = 0; i < 400; i++)); do
        grep -q 'GNU nano' "$out" && break
        nap 0.05
    done
    printf '\x1c%s\r%s\rA\x0f\r\x18' "$1" "$2" >&7
    timeout 20 tail --pid="$pid" -f /dev/null
    wait "$pid" || st=$?
    exec 7>&-
    ((st == 0)) || fail "nano ${3:-}: exit status $st: $(tr -cd '[:print:]\n' <"$out" | tail -n 3)"
}
nano_replace '>606<' '>608<'
has_memory 608 nano
# (-B: the backup domain.xml~ beside it, a scratch file as vim's)
nano_replace '>608<' '>609<' -B
has_memory 609 "nano -B"
mode=$(stat -c %a "$S/vm/domain.xml")
memory 607 "$TMP/orig.xml" >"$TMP/m607.xml"
perl -e 'use IO::Handle; open(my $in, "<", $ARGV[0]) or die "$!\n"; local $/; my $t = <$in>;
    open(my $fh, "+<", $ARGV[1]) or die "open: $!\n"; truncate($fh, 0) or die "truncate: $!\n";
    print $fh $t; $fh->flush; $fh->sync or die "fsync: $!\n";
    chmod(oct($ARGV[2]), $fh) or die "fchmod to its own mode after the redefine: $!\n";
    close($fh) or die "close: $!\n"' "$TMP/m607.xml" "$D" "$mode" || fail "write, fsync, fchmod"
has_memory 607 "write, fsync, fchmod"
chmod "$mode" "$D" || fail "chmod domain.xml to its own mode"
expect_fail "chmod domain.xml to another mode" "Operation not permitted" chmod 600 "$D"
lists_nothing_more() {
    [ "$(ls -A "$M/vm" | tr '\n' ' ')" = "clones current disks domain.xml snapshots " ] ||
        fail "the VM directory lists $(ls -A "$M/vm" | tr '\n' ' ')"
}
lists_nothing_more
pass "redirection, tee, sed -i and vim redefine the VM; their scratch files leave nothing behind"

rm "$D" || fail "rm domain.xml"
[ -e "$D" ] && fail "domain.xml still there after rm"
cp "$TMP/m601.xml" "$D" || fail "cp into an undefined VM"
has_memory 601 "write back"
[ -e "$S/vm/.domain.xml.undefined" ] && fail "the undefined definition was kept after the VM was defined"
pass "rm domain.xml, then cp: the undefined VM is defined again"

# ---- refusals: the program fails, one log line, domain.xml unchanged ----
cp "$S/vm/domain.xml" "$TMP/before.xml"
state0=$(tree_state "$S")
unchanged() {
    cmp -s "$TMP/before.xml" "$S/vm/domain.xml" || fail "$1: domain.xml changed"
    [ "$(tree_state "$S")" = "$state0" ] || fail "$1: the store changed"
    lists_nothing_more
}
sed 's|<name>vm</name>|<name>other</name>|' "$TMP/m601.xml" >"$TMP/name.xml"
expect_refusal "wrong <name>" "Invalid argument" "its <name> is 'other', not the VM's directory name vm" \
    cp "$TMP/name.xml" "$D"
unchanged "wrong <name>"
expect_refusal "invalid XML" "Invalid argument" "refused write /vm/domain.xml: not well-formed XML" \
    cp /dev/stdin "$D" <<<"<domain type='kvm'><name>vm</name>"
unchanged "invalid XML"
sed 's|<vcpu>1</vcpu>|<vcpu>one</vcpu>|' "$TMP/m601.xml" >"$TMP/schema.xml"
expect_refusal "schema failure" "Invalid argument" "not valid by libvirt's domain schema" \
    tee "$D" <"$TMP/schema.xml"
unchanged "schema failure"
qemu-img create -q -f qcow2 "$O/x.qcow2" 16M || fail "outside image"
expect_refusal "a disk outside the store" "Invalid argument" "disk vdb: $O/x.qcow2 is outside the store" \
    sed -i "s|$S/vm/disks/vdb.qcow2|$O/x.qcow2|" "$D"
unchanged "a disk outside the store"
expect_refusal "a disk outside the VM" "Invalid argument" \
    "disk vdb: its <source file> is $S/other/disks/vdb.qcow2, not the store's active image" \
    sed -i "s|$S/vm/disks/vdb.qcow2|$S/other/disks/vdb.qcow2|" "$D"
unchanged "a disk outside the VM"
ro="<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$O/x.qcow2'/><target dev='vdz' bus='virtio'/><readonly/></disk>"
sed "s|</devices>|$ro</devices>|" "$TMP/m601.xml" >"$TMP/ro.xml"
expect_refusal "a read-only disk outside the store" "Invalid argument" "disk vdz: $O/x.qcow2 is outside the store" \
    cp "$TMP/ro.xml" "$D"
unchanged "a read-only disk outside the store"
vdc="<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$S/vm/disks/vdc.qcow2'/><target dev='vdc' bus='virtio'/></disk>"
sed "s|</devices>|$vdc</devices>|" "$TMP/m601.xml" >"$TMP/vdc.xml"
expect_refusal "a new disk without its image" "Invalid argument" "disk vdc: .*must be in disks/" \
    cp "$TMP/vdc.xml" "$D"
unchanged "a new disk without its image"
# (A qemu on the store's image, as a VM libvirt runs from the store.)
qio_hold "$S/vm/disks/vda.qcow2" "$S/vm/disks/vda.qcow2"
expect_refusal "a VM a qemu runs" "Device or resource busy" "vda.qcow2 is in use" \
    cp "$TMP/m602.xml" "$D"
qio_release
# (The qemu itself touched vda: the definition is what must stay.)
cmp -s "$TMP/before.xml" "$S/vm/domain.xml" || fail "a VM a qemu runs: domain.xml changed"
journal_empty "$S"
pass "refused definitions (name, XML, schema, disk outside, image missing, VM running): the program fails, one log line, nothing changes"

# ---- disks added and removed ----
qemu-img create -q -f qcow2 "$S/vm/disks/vdc.qcow2" 32M || fail "vdc image"
cp "$TMP/vdc.xml" "$D" || fail "cp a definition adding vdc"
grep -q "$S/vm/disks/vdc.qcow2" "$S/vm/domain.xml" || fail "vdc not in domain.xml"
has_memory 601 "disk added"
pass "a disk added whose image is in disks/"

perl -0pe 's|<disk[^>]*>(?:(?!</disk>).)*?/disks/vdb\.qcow2.*?</disk>\s*||s' "$TMP/vdc.xml" >"$TMP/novdb.xml"
grep -q vdb.qcow2 "$TMP/novdb.xml" && fail "fixture: vdb still in novdb.xml"
cp "$TMP/novdb.xml" "$D" || fail "cp a definition without vdb"
[ -e "$S/vm/disks/vdb.qcow2" ] && fail "vdb's active image stayed after vdb left the definition"
[ -e "$M/vm/disks/vdb.qcow2" ] && fail "the mount still lists disks/vdb.qcow2"
grep -q "vdb" "$S/vm/domain.xml" && fail "domain.xml still names vdb"
read_patterns "$M/vm/snapshots/s1/vdb.qcow2" 0x44 2M 1M "$M/vm/snapshots/s1/vdb.qcow2" 0 3M 1M \
    "$M/vm/disks/vda.qcow2" 0x10 0 1M
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
check_store "$S" vm
pass "a disk removed from the definition is detached: its image gone, its snapshot still reads"

# ---- crash at each durable point of a redefine that detaches a disk ----
S2=$TMP/fix
rm -rf "$S"
make_vm "$S" vm 2
mount_fs "$S" "$M"
qemu-io -f qcow2 -c "write -q -P 0x44 2M 1M" "$M/vm/disks/vdb.qcow2" >/dev/null || fail "write vdb"
mkdir "$M/vm/snapshots/s1" || fail "mkdir s1"
perl -0pe 's|<disk[^>]*>(?:(?!</disk>).)*?/disks/vdb\.qcow2.*?</disk>\s*||s' "$D" |
    sed "s|<memory unit=.MiB.>[0-9]*</memory>|<memory unit='MiB'>700</memory>|" >"$TMP/crash.xml"
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
cp -a "$S" "$S2"
# state: the definition and what must go with it, from the store.
state() {
    (cd "$S" && sha256sum vm/domain.xml vm/snapshots/*/snapshot.xml && ls vm/disks &&
        ls -A .vmstorefs/journal .vmstorefs/tmp 2>/dev/null)
}
before=$(state)
mount_fs "$S" "$M"
cp "$TMP/crash.xml" "$D" || fail "crash reference: cp"
unmount_fs "$M"
forget_daemon "$DAEMON_PID"
after=$(state)
[ "$before" != "$after" ] || fail "the reference redefine changed nothing"
points=""
for ((n = 1; n <= 30; n++)); do
    rm -rf "$S" && cp -a "$S2" "$S" || fail "restore"
    export VMSTOREFS_CRASH_AT=redefine:$n
    try_mount || fail "redefine:$n: no mount"
    unset VMSTOREFS_CRASH_AT
    pid=$DAEMON_PID
    if cp "$TMP/crash.xml" "$D" 2>/dev/null; then
        unmount_fs "$M"
        forget_daemon "$pid"
        [ "$(state)" = "$after" ] || fail "redefine:$n: finished, but not as the reference"
        break
    fi
    status=0
    wait "$pid" || status=$?
    forget_daemon "$pid"
    [ "$status" -eq 99 ] || fail "redefine:$n: cp failed and the daemon exited $status, not 99"
    fusermount3 -u -z "$M" || fail "redefine:$n: fusermount3 -u -z"
    try_mount || fail "redefine:$n: no mount after the crash"
    unmount_fs "$M"
    forget_daemon "$DAEMON_PID"
    now=$(state)
    if [ "$now" = "$before" ]; then
        [[ $points == *A* ]] && fail "redefine:$n: rolled back after a later point rolled forward"
        points+=B
    elif [ "$now" = "$after" ]; then
        points+=A
    else
        diff <(echo "$before") <(echo "$now") >&2
        diff <(echo "$after") <(echo "$now") >&2
        fail "redefine:$n: neither the old definition nor the new one (diffs above)"
    fi
done
((n <= 30)) || fail "still crashing at point 30"
[[ $points == *B* && $points == *A* ]] || fail "crash points $points: want some rolled back and some forward"
check_store "$S" vm
pass "kill at each of the $((n - 1)) durable points of a redefine: old or new definition, never a mix ($points)"
