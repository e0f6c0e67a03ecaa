#!/bin/bash
# A store name cannot forge a log line or reach the terminal: a VM
# directory named with a newline and an ESC is logged on one line, with
# both escaped (\n, \x1b), and the log holds no raw control byte.
. "$(dirname "$0")/lib.sh"
need_fuse

S=$TMP/store M=$TMP/mnt
mkdir -p "$S/vm1"
evil=$'bad\nvmstorefs: serving etc\e[2J'
mkdir "$S/$evil"
mount_fs "$S" "$M"
ls "$M" >/dev/null || fail "ls of the mount failed"
unmount_fs "$M"

want='bad\nvmstorefs: serving etc\x1b[2J: not a valid name'
[ "$(grep -cF -- "$want" "$DAEMON_LOG")" -eq 1 ] || fail "no single escaped line for the bad name"
grep -q '^vmstorefs: serving etc' "$DAEMON_LOG" && fail "the name forged a second log line"
LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$DAEMON_LOG" && fail "a raw control byte reached the log"
pass "a name with a newline and ESC is logged on one line, escaped: $(grep -F -- "$want" "$DAEMON_LOG")"
