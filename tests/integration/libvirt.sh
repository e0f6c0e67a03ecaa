# libvirt verbs of the integration tests (sourced after lib.sh).
#
# They drive the system libvirtd (qemu:///system, so run as root) with
# libvirt's own virsh, to show that a store means to libvirt what it means
# to us. Every function takes a STORE path and a VM directory name, so it
# works on a plain store, a copy, or the store behind a mount.
#
# Domain names and UUIDs are global to the host and other test runs may
# use the same store layout at the same time: lv_define_vm defines each VM
# under its own name (LV_PREFIX + NAME) and UUID (first group replaced by
# a hash of that name), rewriting domain.xml and every snapshot.xml on the
# way in; the files in the store are never changed. The EXIT trap
# undefines those domains and stops only the daemons lv_start started.

VIRSH=(virsh -q -c qemu:///system)
LV_PREFIX=${LV_PREFIX:-vmstorefs-test-$$-}
LV_STARTED=()           # pids of the daemons lv_start started
LV_DEFINED=()           # libvirt names lv_define_vm defined
declare -A LV_NAME=()   # STORE/VM -> libvirt name
declare -A LV_UUID=()   # STORE/VM -> first group of the UUID

# need_libvirt: skip without virsh or libvirtd; fail (not skip) when not
# root, as CI runs the suite as root with libvirt installed.
need_libvirt() {
    need virsh libvirtd virtlogd virt-xml-validate xmllint qemu-img qemu-io
    [ "$(id -u)" -eq 0 ] || fail "qemu:///system needs root"
}

# lv_lock: tests that drive libvirt run one at a time (make -j runs
# tests side by side): one test's lv_stop would stop the libvirtd that
# another one is using. Taken by lv_start, held until the test exits.
LV_LOCK=${LV_LOCK:-/tmp/vmstorefs-test-libvirt.lock}
LV_LOCK_FD=
lv_lock() {
    [ -z "$LV_LOCK_FD" ] || return 0
    exec {LV_LOCK_FD}>>"$LV_LOCK" || fail "cannot open $LV_LOCK"
    flock -w 600 "$LV_LOCK_FD" || fail "another test held $LV_LOCK for 10 minutes"
}

# lv_start: start virtlogd and libvirtd unless running (they keep their
# default pid files, so a second copy refuses to start), then wait up to
# 60 s for libvirtd to answer. The daemons do not inherit the lock.
lv_start() {
    local d i
    lv_lock
    for d in virtlogd libvirtd; do
        ps -C "$d" -o stat= | grep -qv '^Z' && continue    # running (not a zombie)
        "$d" {LV_LOCK_FD}>&- >>"$TMP/$d.log" 2>&1 &
        LV_STARTED+=("$!")
    done
    for i in $(seq 120); do
        "${VIRSH[@]}" uri >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    fail "libvirtd does not answer after 60 s: $(tail -n 5 "$TMP/libvirtd.log" 2>/dev/null)"
}

# lv_stop: stop the daemons lv_start started, libvirtd first, by pid.
lv_stop() {
    local i p
    for ((i = ${#LV_STARTED[@]} - 1; i >= 0; i--)); do
        p=${LV_STARTED[i]}
        kill "$p" 2>/dev/null || continue
        # Our child: its pid cannot be reused before we reap it.
        for _ in $(seq 100); do
            case $(ps -o stat= -p "$p") in "" | Z*) break ;; esac
            sleep 0.1
        done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    LV_STARTED=()
}

lv_cleanup() {
    local d
    for d in "${LV_DEFINED[@]}"; do
        "${VIRSH[@]}" undefine "$d" --snapshots-metadata >/dev/null 2>&1
    done
    lv_stop
}
CLEANUP_HOOKS+=(lv_cleanup)

# lv_virt_type: the virt type the store's type='kvm' domains get here:
# kvm where libvirt can run x86_64 domains under KVM, else qemu (TCG), as
# a user of a host without KVM would define them. libvirt itself is asked
# (domcapabilities), not /dev/kvm: `virsh define` of a kvm domain fails
# ("Emulator ... does not support virt type 'kvm'") exactly when libvirt's
# capabilities of the emulator have no KVM, and the device can be there
# and unusable (no access for libvirt-qemu, KVM disabled) or missing in
# a container while libvirt reports what it probed. Asked once per test,
# after lv_start.
LV_VIRT_TYPE=
lv_virt_type() {
    if [ -z "$LV_VIRT_TYPE" ]; then
        if "${VIRSH[@]}" domcapabilities --virttype kvm --arch x86_64 >/dev/null 2>&1; then
            LV_VIRT_TYPE=kvm
        else
            LV_VIRT_TYPE=qemu
            echo "# libvirt cannot run kvm domains here: they are defined with type='qemu'"
        fi
    fi
}

# lv_xml STORE VM FILE: FILE (a domain.xml or snapshot.xml of VM) with the
# domain's <name> and <uuid> as lv_define_vm gave them, and a kvm domain
# (also the one a snapshot.xml embeds) of the type lv_virt_type chose.
# The network a domain's <interface> names (make-sample-store's 'default')
# is left as it is: libvirt looks it up when the domain starts, not when
# it is defined or its snapshots redefined, so these need no active (nor
# any) 'default' network; what starts a domain drops its interfaces.
lv_xml() {
    local key=$1/$2
    sed -e "/<domain[ >]/,/<\/name>/ s|<name>[^<]*</name>|<name>${LV_NAME[$key]}</name>|" \
        -e "s|<uuid>[0-9a-f]\{8\}-|<uuid>${LV_UUID[$key]}-|" \
        -e "s|<domain type=['\"]kvm['\"]|<domain type='${LV_VIRT_TYPE:-kvm}'|" "$3"
}

# lv_define_vm STORE VM [NAME]: define STORE/VM/domain.xml in libvirt as
# LV_PREFIX+NAME (NAME defaults to VM; lv_name STORE VM gives it back).
# Undefined, with its snapshot metadata, on exit.
lv_define_vm() {
    local store=$1 vm=$2 name=$LV_PREFIX${3:-$2} out
    LV_NAME[$store/$vm]=$name
    LV_UUID[$store/$vm]=$(printf %s "$name" | sha256sum | cut -c1-8)
    lv_virt_type
    lv_xml "$store" "$vm" "$store/$vm/domain.xml" >"$TMP/lv-domain.xml"
    LV_DEFINED+=("$name")
    out=$("${VIRSH[@]}" define "$TMP/lv-domain.xml" 2>&1) || fail "virsh define $store/$vm/domain.xml: $out"
}

lv_name() { echo "${LV_NAME[$1/$2]:?$1/$2 was not defined with lv_define_vm}"; }

# store_current STORE VM: the current snapshot, the one the active images'
# backing names point at (../snapshots/SNAP/DEV.qcow2); empty if none.
store_current() {
    local img bf
    for img in "$1/$2"/disks/*.qcow2; do
        [ -e "$img" ] || continue
        bf=$(qemu-img info -U --output=json "$img" | sed -n 's|^ *"backing-filename": "\.\./snapshots/\([^/]*\)/.*|\1|p')
        [ -n "$bf" ] && { echo "$bf"; return; }
    done
}

# snap_field XML XPATH: one string from a snapshot.xml (or domain.xml).
snap_field() { xmllint --xpath "string($2)" "$1"; }

# lv_redefine_snapshots STORE VM [CURRENT]: `snapshot-create --redefine
# --validate` each snapshot.xml in creation order, with --current for
# CURRENT (e.g. the target of a mount's `current` symlink; by default
# store_current).
lv_redefine_snapshots() {
    local store=$1 vm=$2 current=${3-$(store_current "$1" "$2")} dom x snap flag out
    dom=$(lv_name "$store" "$vm")
    for x in "$store/$vm"/snapshots/*/snapshot.xml; do
        [ -e "$x" ] && echo "$(snap_field "$x" /domainsnapshot/creationTime) $x"
    done | sort -n | while read -r _ x; do
        snap=$(snap_field "$x" /domainsnapshot/name)
        flag=()
        [ "$snap" = "$current" ] && flag=(--current)
        lv_xml "$store" "$vm" "$x" >"$TMP/lv-snapshot.xml"
        out=$("${VIRSH[@]}" snapshot-create "$dom" "$TMP/lv-snapshot.xml" --redefine --validate "${flag[@]}" 2>&1) ||
            fail "virsh snapshot-create --redefine $x: $out"
    done || exit 1
}

# lv_check_tree STORE VM [CURRENT]: libvirt's snapshots of VM, their roots,
# each one's parent and the current one are those of the store; passes
# with libvirt's tree. It fails the test itself, so call it as a command:
# in "$(lv_check_tree ...)" its fail would end only the subshell.
lv_check_tree() {
    local store=$1 vm=$2 current=${3-$(store_current "$1" "$2")} dom x snap parent want got
    dom=$(lv_name "$store" "$vm")
    want=$(for x in "$store/$vm"/snapshots/*/snapshot.xml; do
        [ -e "$x" ] && echo "$(snap_field "$x" /domainsnapshot/name)"; done | sort)
    got=$("${VIRSH[@]}" snapshot-list "$dom" --name | sed '/^$/d' | sort)
    [ "$got" = "$want" ] || fail "$vm: libvirt lists snapshots '$got', the store has '$want'"
    for x in "$store/$vm"/snapshots/*/snapshot.xml; do
        [ -e "$x" ] || continue
        snap=$(snap_field "$x" /domainsnapshot/name)
        parent=$(snap_field "$x" /domainsnapshot/parent/name)
        got=$("${VIRSH[@]}" snapshot-parent "$dom" "$snap" 2>/dev/null)
        [ "$got" = "$parent" ] || fail "$vm/$snap: libvirt's parent is '$got', the store's '$parent'"
    done
    got=$("${VIRSH[@]}" snapshot-current "$dom" --name 2>/dev/null)
    [ "$got" = "$current" ] || fail "$vm: libvirt's current snapshot is '$got', the store's '$current'"
    pass "$vm: libvirt's snapshot tree is the store's, current '$current': $("${VIRSH[@]}" snapshot-list "$dom" --tree | sed '/^ *$/d' | tr -s '\n ' ' ')"
}

# copy_store SRC DST: cp -a, then point the absolute paths in the copy's
# XML at the copy, so that libvirt acting on the copy touches only the copy.
copy_store() {
    cp -a "$1" "$2" || fail "cp -a $1 $2"
    find "$2" -name '*.xml' -exec sed -i "s|$1/|$2/|g" {} + || fail "rewriting paths in $2"
}
