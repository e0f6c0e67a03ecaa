# Sourced first (before lib.sh) by a test that mounts a tmpfs: the test
# runs again in a private mount namespace, so nothing it mounts outlives
# it. Skips (77) without root or without unshare.
if [ -z "${VMSTOREFS_IN_NS:-}" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to mount a tmpfs"; exit 77; }
    unshare -m --propagation private true 2>/dev/null || { echo "SKIP: cannot unshare a mount namespace"; exit 77; }
    VMSTOREFS_IN_NS=1 exec unshare -m --propagation private "$BASH" "$0" "$@"
fi
# The new namespace holds a copy of every mount there was, the FUSE
# mounts of the tests running beside this one included. A daemon learns
# that its mount is gone only once no namespace holds it: while this one
# held a copy, another test's fusermount3 -u returned and its wait for
# the daemon to exit lasted until this test ended (seen: a test stuck for
# minutes in unmount_fs). Nothing here uses them: they are detached.
while read -r _ mp fstype _; do
    case $fstype in
        fuse | fuse.*) umount -l "$mp" 2>/dev/null ;;
    esac
done </proc/self/mounts
