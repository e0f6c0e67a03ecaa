# Small file systems to run out of space on (sourced after privns.sh and
# lib.sh, not run): the ENOSPC tests run on each kind a store may live
# on, as each reserves and accounts space its own way (ext4's block
# groups and journal, xfs's allocation groups, log and per-AG
# reservations, tmpfs's pages).
#
#   smallfs DIR TYPE SIZE   mounts a TYPE (tmpfs, ext4, xfs) of about SIZE
#                           (MiB) on DIR: ext4 and xfs on a loop device
#                           backed by a sparse file in $TMP (xfs at least
#                           300 MiB, mkfs.xfs's minimum); unmounted
#                           lazily by the EXIT trap (the test runs in a
#                           private mount namespace: privns.sh)
#   fill_to DIR FILE BYTES  FILE (new, on DIR's file system) takes all but
#                           BYTES of what DIR's file system has free (or
#                           up to 16 MiB more, what its metadata needs)
#   SMALLFS_TYPES           the types a test runs on: VMSTOREFS_SMALLFS
#                           (scripts/run-tests draws one, to keep the suite
#                           short; scripts/crash-campaign sets all three),
#                           all three when it is unset

SMALLFS_TYPES=(${VMSTOREFS_SMALLFS:-tmpfs ext4 xfs})
echo "# file systems: ${SMALLFS_TYPES[*]} (VMSTOREFS_SMALLFS=\"tmpfs ext4 xfs\" for all three)"
SMALLFS_MOUNTED=()

smallfs_unmount() {
    local d
    for d in "${SMALLFS_MOUNTED[@]}"; do
        umount -l "$d" 2>/dev/null
    done
    SMALLFS_MOUNTED=()
}
CLEANUP_HOOKS+=(smallfs_unmount)

smallfs() {
    local dir=$1 type=$2 mib=$3 img=$TMP/smallfs.$2.$RANDOM.img
    mkdir -p "$dir"
    case $type in
        tmpfs)
            mount -t tmpfs -o "size=${mib}M" tmpfs "$dir" || skip "cannot mount a tmpfs"
            ;;
        ext4)
            need mkfs.ext4 losetup
            # -m 0: the daemon runs as root, which ext4's reserved blocks
            # would let write past what df calls free.
            truncate -s "${mib}M" "$img" && mkfs.ext4 -q -F -m 0 "$img" >/dev/null ||
                fail "smallfs: mkfs.ext4 $img"
            mount -o loop "$img" "$dir" || skip "cannot mount a loop device"
            ;;
        xfs)
            need mkfs.xfs losetup
            ((mib >= 300)) || mib=300
            truncate -s "${mib}M" "$img" && mkfs.xfs -q -f "$img" >/dev/null ||
                fail "smallfs: mkfs.xfs $img"
            mount -o loop "$img" "$dir" || skip "cannot mount a loop device"
            ;;
        *) fail "smallfs: unknown type $type" ;;
    esac
    SMALLFS_MOUNTED+=("$dir")
}

fill_to() {
    local dir=$1 file=$2 left=$3 avail i
    avail=$(df --output=avail -B1 "$dir" | tail -n 1)
    # ext4 and xfs need blocks of their own for the file's extents: a
    # MiB less each time until it fits.
    for ((i = 0; i < 16; i++)); do
        ((avail > left + i * 1048576)) || return 0
        fallocate -l $((avail - left - i * 1048576)) "$file" 2>/dev/null && return 0
        rm -f "$file"
    done
    fail "fill_to: cannot fill $dir"
}
