#!/bin/bash
# A frozen image's pages stay in the kernel's cache across opens
# (keep_cache: it never changes). fincore opens the file and counts its
# resident pages; an open without keep_cache would have dropped them.
# (That active images are never served stale is t_passthrough's job.)
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

unmount_fs "$M"
