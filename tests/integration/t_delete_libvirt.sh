#!/bin/bash
# libvirt still takes the store after snapshot deletes (SPEC §1: the
# snapshot.xml files can be redefined into libvirt): after the CloudStack
# deletion sequence, stopped once while a deleted snapshot is kept hidden
# and once at its end, every remaining snapshot.xml redefines
# (--validate) and libvirt's tree (each snapshot's parent, the current
# one) is the mount's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapfix.sh"
. "$(dirname "$0")/delfix.sh"
. "$(dirname "$0")/libvirt.sh"
need_fuse
need_libvirt

S=$TMP/store M=$TMP/mnt
make_vm "$S" mid 2
make_vm "$S" end 2
mount_fs "$S" "$M"

# The deletion test of CloudStack, up to step STEPS.
sequence() {
    local vm=$1 upto=$2 step=0
    m_init "$vm" 2
    for op in "take s1" "take s2" "take s3" "revert s2" "take s4" "delete s2 rmdir" "delete s3 rm" \
        "take s5" "revert s4" "delete s4 rmdir" "delete s5 rm"; do
        step=$((step + 1))
        ((step <= upto)) || break
        # shellcheck disable=SC2086
        set -- $op
        case $1 in
            take) m_take "$vm" "$2" ;;
            revert) m_revert "$vm" "$2" ;;
            delete) m_delete "$vm" "$2" "$3" ;;
        esac
        m_check "$vm" "$vm: $op"
    done
}
sequence mid 6    # s2 deleted and hidden: s3 and s4 grow from it
sequence end 11   # s1 left, the active images merged with s4
[ -n "$(hidden_images "$S" mid)" ] || fail "mid: s2 is not kept hidden"
cur_mid=$(readlink "$M/mid/current") cur_end=$(readlink "$M/end/current")
unmount_fs "$M"
check_store "$S"

lv_start
for vm in mid end; do
    cur=$([ $vm = mid ] && echo "${cur_mid#snapshots/}" || echo "${cur_end#snapshots/}")
    lv_define_vm "$S" $vm
    lv_redefine_snapshots "$S" $vm "$cur"
    lv_check_tree "$S" $vm "$cur"
done
pass "libvirt redefines the snapshots left by deletes (with a hidden one, and after merges), same tree and current"
