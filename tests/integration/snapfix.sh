# Fixtures and checks of the snapshot tests (sourced after lib.sh, not run).
#
#   make_vm STORE NAME NDISKS [--raw-base] [--ro-and-cdrom]
#   disk_state ROOT VM           one line per disk: what the guest reads
#   disk_pattern I               the pattern make_vm writes on disk I

# make-sample-store's image and XML helpers (make_image, fill, disk_xml,
# domain_xml); its main runs only when it is executed. It sets -e and
# pipefail for itself: the tests run with -u alone, as lib.sh has it.
# shellcheck source=../../scripts/make-sample-store
. "$TOP_SRCDIR/scripts/make-sample-store"
set +e +o pipefail

SNAP_DEVS=(vda vdb vdc vdd vde vdf vdg vdh vdi vdj vdk vdl)

# Disk I (0 = vda) of a make_vm VM holds this pattern at 0+1M.
disk_pattern() {
    printf '0x%02x' $((0x10 + $1))
}

# make_vm STORE NAME NDISKS [--raw-base] [--ro-and-cdrom]: a shut-off VM
# with NDISKS standalone 64M qcow2 disks vda.. (disk I holds
# disk_pattern I at 0+1M), no snapshots.
#   --raw-base      vda is an empty qcow2 overlay (-F raw, backing name
#                   ../base/vda.raw) on a raw file holding vda's pattern
#   --ro-and-cdrom  also a <readonly/> qcow2 disk (the next vdX, file
#                   shared/ro.qcow2, pattern 0x7e at 0+1M) and a CD-ROM
#                   (hdc on ide, raw file shared/cd.iso, 0x7c at 0+64k):
#                   neither can be snapshotted
make_vm() {
    local store=$1 name=$2 ndisks=$3 raw=0 ro=0 opt i dev img vm disks="" uuid mac
    shift 3
    for opt in "$@"; do
        case $opt in
            --raw-base) raw=1 ;;
            --ro-and-cdrom) ro=1 ;;
            *) fail "make_vm: unknown option $opt" ;;
        esac
    done
    vm=$store/$name
    mkdir -p "$vm/disks" "$vm/snapshots" || fail "make_vm: cannot create $vm"
    for ((i = 0; i < ndisks; i++)); do
        dev=${SNAP_DEVS[i]} img=$vm/disks/${SNAP_DEVS[i]}.qcow2
        if ((i == 0 && raw)); then
            mkdir -p "$vm/base" &&
                qemu-img create -q -f raw "$vm/base/vda.raw" 64M &&
                qemu-io -f raw -c "write -q -P $(disk_pattern 0) 0 1M" "$vm/base/vda.raw" >/dev/null &&
                (cd "$vm/disks" && qemu-img create -q -f qcow2 -b ../base/vda.raw -F raw vda.qcow2 64M) ||
                fail "make_vm: cannot build the raw base of $name"
            disks+="    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$img'/>
      <backingStore type='file'>
        <format type='raw'/>
        <source file='$vm/base/vda.raw'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
"
        else
            make_image "$img" 64M && fill "$img" "$(disk_pattern "$i")" 0 1M ||
                fail "make_vm: cannot build $img"
            disks+="$(disk_xml "$dev" "$img")
"
        fi
    done
    if ((ro)); then
        make_image "$vm/shared/ro.qcow2" 64M && fill "$vm/shared/ro.qcow2" 0x7e 0 1M &&
            qemu-img create -q -f raw "$vm/shared/cd.iso" 1M &&
            qemu-io -f raw -c 'write -q -P 0x7c 0 64k' "$vm/shared/cd.iso" >/dev/null ||
            fail "make_vm: cannot build the shared images of $name"
        disks+="    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$vm/shared/ro.qcow2'/>
      <backingStore/>
      <target dev='${SNAP_DEVS[ndisks]}' bus='virtio'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='$vm/shared/cd.iso'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
"
    fi
    uuid=$(cat /proc/sys/kernel/random/uuid)
    mac=$(printf '52:54:00:%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
    domain_xml "$name" "$uuid" "$mac" "${disks%$'\n'}" >"$vm/domain.xml" ||
        fail "make_vm: cannot write $vm/domain.xml"
    virt-xml-validate "$vm/domain.xml" domain >/dev/null 2>&1 ||
        fail "make_vm: $vm/domain.xml does not validate"
}


# disk_state ROOT VM: "dev sha256" per active disk of VM under ROOT (a
# store or a mount). The chain is flattened into a compact qcow2 of what
# the guest reads (zeros left out, whatever the layers), so two states
# with the same guest data hash the same, and any byte of difference
# shows. Its fail ends only the $(...) it runs in: call it as
# VAR=$(disk_state ROOT VM) || fail "..." (t_lint_subshell_fail.sh).
disk_state() {
    local root=$1 vm=$2 img flat=$TMP/disk_state.qcow2 sum
    for img in "$root/$vm"/disks/*.qcow2; do
        [ -e "$img" ] || continue
        rm -f "$flat"
        qemu-img convert -U -f qcow2 -O qcow2 "$img" "$flat" || fail "disk_state: cannot read $img"
        sum=$(sha256sum <"$flat")
        img=${img##*/}
        echo "${img%.qcow2} ${sum%% *}"
    done
    rm -f "$flat"
}

# try_mount: mount_fs of $S on $M with a quicker poll (the crash tests
# mount some 150 times), except that a daemon refusing to mount (its
# recovery failed) returns 1 instead of failing the test.
try_mount() {
    local i
    "$VMSTOREFS" "$S" "$M" -f >>"$DAEMON_LOG" 2>&1 &
    DAEMON_PID=$!
    DAEMONS+=("$DAEMON_PID")
    MOUNTED+=("$M")
    for ((i = 0; i < 500; i++)); do
        mounted "$M" && return 0
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            wait "$DAEMON_PID"
            forget_daemon "$DAEMON_PID"
            return 1
        fi
        nap 0.02
    done
    fail "$M not mounted after 10 s"
}

# crash_loop WHAT OP RESTORE RUN FINISHED RECOVERED: the crash loop of
# the crash tests (crash_sampling's points of operation OP, each made the
# daemon's exit: VMSTOREFS_CRASH_AT=OP:N). For each point: RESTORE the
# fixture, mount $S on $M, RUN the operation (status 0: it finished).
# Finished without reaching the point, FINISHED "WHAT:N" checks what the
# daemon left, and points below are tried (crash_below) or the loop ends;
# else the daemon must have exited 99, a remount recovers and RECOVERED
# "WHAT:N" checks the state, setting CRASH_STATE to B (as before) or A
# (as after). Rolled back after an earlier point rolled forward fails.
# Ends with the pass line; CRASH_FINISHED is the lowest point not
# reached.
crash_loop() {
    local what=$1 op=$2 restore=$3 run=$4 finished=$5 recovered=$6
    local n pid status seen_after=0 points="" tried=""
    CRASH_FINISHED=""
    for ((n = CRASH_FIRST; n <= MAX_POINTS; n += CRASH_STRIDE)); do
        "$restore"
        export VMSTOREFS_CRASH_AT=$op:$n
        try_mount || fail "$what:$n: no mount"
        unset VMSTOREFS_CRASH_AT
        pid=$DAEMON_PID
        if "$run" 2>"$TMP/op.err"; then
            # No point n: the operation finished, the daemon lives on.
            kill -0 "$pid" 2>/dev/null || fail "$what:$n: succeeded but the daemon is gone"
            "$finished" "$what:$n"
            unmount_fs "$M"
            forget_daemon "$pid"
            CRASH_FINISHED=$n
            if crash_below "${tried##* }" "$( ((seen_after)) || echo "no point rolled forward yet")"; then
                n=$CRASH_NEXT
                continue
            fi
            break
        fi
        status=0
        wait "$pid" || status=$?
        forget_daemon "$pid"
        [ "$status" -eq 99 ] ||
            fail "$what:$n: the operation failed ($(cat "$TMP/op.err")) and the daemon exited $status, not 99"
        fusermount3 -u -z "$M" || fail "$what:$n: fusermount3 -u -z"
        try_mount || fail "$what:$n: the daemon would not mount after the crash"
        CRASH_STATE=""
        "$recovered" "$what:$n"
        case $CRASH_STATE in
            B) ((seen_after)) && fail "$what:$n: rolled back after an earlier point was committed" ;;
            A) seen_after=1 ;;
            *) fail "$what:$n: no verdict on the state after recovery" ;;
        esac
        points+=$CRASH_STATE tried+=" $n"
        unmount_fs "$M"
        forget_daemon "$DAEMON_PID"
        # (A point below one that finished: the last one.)
        [ -z "$CRASH_FINISHED" ] || break
    done
    ((n <= MAX_POINTS)) || fail "$what: still crashing at point $MAX_POINTS"
    ((seen_after)) || fail "$what: no crash point rolled forward"
    pass "$what: crashed at point(s)$tried of $((CRASH_FINISHED - 1)) at most ($points: B rolled back, A rolled forward)"
}
