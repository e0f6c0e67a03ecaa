#!/bin/bash
# The data path's caching rules: a frozen image's pages stay in the
# kernel's cache across opens (keep_cache: it never changes), an active
# image's never enter it (direct I/O: a qemu may write the store path at
# any moment). fincore opens the file and counts its resident pages.
. "$(dirname "$0")/lib.sh"
need_fuse
need fincore

S=$TMP/store M=$TMP/mnt
sample_store "$S"
mount_fs "$S" "$M"

resident() { fincore --bytes --noheadings --output RES "$1" | tr -d ' '; }

F=$M/web1/snapshots/configured/vda.qcow2
cat "$F" >/dev/null
size=$(stat -c %s "$F")
res=$(resident "$F")
[ "$res" -ge $((size * 9 / 10)) ] || fail "frozen image: $res of $size bytes cached after a reopen"
cat "$F" >/dev/null
[ "$(resident "$F")" -ge $((size * 9 / 10)) ] || fail "frozen image cache dropped by a second reader"
pass "a frozen image stays cached across opens ($res of $size bytes)"

A=$M/web1/disks/vda.qcow2
cat "$A" >/dev/null
[ "$(resident "$A")" -eq 0 ] || fail "active image pages are cached: $(resident "$A") bytes"
pass "an active image is never served from the mount's page cache"

unmount_fs "$M"
