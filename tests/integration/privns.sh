# Sourced first (before lib.sh) by a test that mounts a tmpfs: the test
# runs again in a private mount namespace, so nothing it mounts outlives
# it. Skips (77) without root or without unshare.
if [ -z "${VMSTOREFS_IN_NS:-}" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to mount a tmpfs"; exit 77; }
    unshare -m --propagation private true 2>/dev/null || { echo "SKIP: cannot unshare a mount namespace"; exit 77; }
    VMSTOREFS_IN_NS=1 exec unshare -m --propagation private "$BASH" "$0" "$@"
fi
