#!/bin/bash
# Tenants (issue 16, items 4-7): a store mounted with allow_other, where
# an unprivileged user (uid 4711, the tenant) owns one VM, web1, whose
# files are 0600 in 0700 directories, and root owns db1, also 0600/0700.
#
# - Whatever root or the tenant does to web1 (take, rename, revert, a
#   delete whose merge commits the active image into its parent, clones
#   of it and of its snapshots), every file in it stays the tenant's,
#   0600 (0700 for directories): the listing before and after each
#   operation is printed and checked. The tenant can still write its
#   active disk and its domain.xml. db1's files stay root's 0600 after
#   root's own take and clone: nothing the daemon writes is 0644.
# - A clone is a new entry in the store's root: refused (EACCES) while
#   the tenant may not create one there, as a mkdir in the store is;
#   allowed once the root is writable by a group the tenant has, and then
#   the clone is the tenant's.
# - What the tenant (or a third user, 4712) cannot do on the store it
#   cannot do through the mount, and .jobs shows each user the lines of
#   the VMs it may search only.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/qimggate.sh"
need_fuse
need setpriv qemu-img qemu-io
[ "$(id -u)" -eq 0 ] || skip "needs root (setpriv to other users)"

T=4711 X=4712 G=4800
tenant() { setpriv --reuid=$T --regid=$T --groups=$G "$@"; }
other() { setpriv --reuid=$X --regid=$X --clear-groups "$@"; }

S=$TMP/store M=$TMP/mnt
sample_store "$S"
chmod 755 "$TMP"
chmod 711 "$S"
chown -R $T:$T "$S/web1"
for vm in web1 db1; do
    find "$S/$vm" -type d -exec chmod 700 {} + && find "$S/$vm" -type f -exec chmod 600 {} + ||
        fail "fixture: chmod $vm"
done
gate_init
mount_fs "$S" "$M" -o allow_other "${GATE_OPT[@]}"

# perms DIR: each entry below DIR: name, type, owner, mode.
perms() { (cd "$1" && find . -mindepth 1 -printf '%P %y %U:%G %m\n' | sort); }

# owned DIR OWNER WHAT [EXCEPT]: every entry below DIR (and DIR) is
# OWNER's, files 600, directories 700, but the one named EXCEPT (a
# regular expression); the listing goes to the test's output.
owned() {
    local dir=$1 owner=$2 what=$3 except=${4:-^$} bad
    echo "# $what: $dir"
    perms "$dir" | sed 's/^/#   /'
    bad=$( (
        stat -c '. d %u:%g %a' "$dir"
        perms "$dir"
    ) | awk -v o="$owner" -v x="$except" \
        '$1 !~ x && ($3 != o || ($2 == "d" && $4 != 700) || ($2 != "d" && $4 != 600))')
    [ -z "$bad" ] || fail "$what: not $owner with 0600 files and 0700 directories: $bad"
}

# both_refuse "what" STORE_CMD -- MOUNT_CMD: the same user is refused
# (Permission denied) doing it on the store and through the mount.
both_refuse() {
    local what=$1 store=() 
    shift
    while [ "$1" != -- ]; do store+=("$1"); shift; done
    shift
    expect_fail "$what, on the store" "Permission denied" "${store[@]}"
    expect_fail "$what, through the mount" "Permission denied" "$@"
}

owned "$S/web1" $T:$T "web1 before"
owned "$S/db1" 0:0 "db1 before"

# ---- item 5 and 4: the tenant's VM stays the tenant's ----
tenant mkdir "$M/web1/snapshots/t1" || fail "the tenant cannot take a snapshot of its own VM"
owned "$S/web1" $T:$T "after the tenant's take"
mkdir "$M/web1/snapshots/r1" || fail "root: take r1"
owned "$S/web1" $T:$T "after root's take"
mv "$M/web1/snapshots/r1" "$M/web1/snapshots/r2" || fail "root: rename r1 r2"
owned "$S/web1" $T:$T "after root's rename"
tenant qemu-io -f qcow2 -c 'write -q -P 0x5a 0 64k' "$M/web1/disks/vda.qcow2" >/dev/null ||
    fail "the tenant cannot write its active disk after root's take"
read_pattern "$M/web1/disks/vda.qcow2" 0x5a 0 64k
# Root makes t1's image its own (as an administrator may, or an older
# daemon did): the overlay a revert to t1 puts on it, and the image a
# merge later moves into the active image's place, must stay the
# tenant's all the same, as the active image they replace.
T1='^snapshots/t1/vda[.]qcow2$'
chown 0:0 "$S/web1/snapshots/t1/vda.qcow2" && chmod 644 "$S/web1/snapshots/t1/vda.qcow2"
ln -sfn snapshots/t1 "$M/web1/current" || fail "root: revert to t1"
owned "$S/web1" $T:$T "after root's revert (t1's image made root's 0644 before)" "$T1"
# r2 has no dependent left (the revert discarded the changes after it):
# removed. Then t1 has one, the small new overlay, which is committed
# into t1's image, and t1's image takes the active image's place.
rmdir "$M/web1/snapshots/r2" || fail "root: delete r2"
owned "$S/web1" $T:$T "after root's delete of r2" "$T1"
tenant qemu-io -f qcow2 -c 'write -q -P 0x6b 1M 64k' "$M/web1/disks/vda.qcow2" >/dev/null ||
    fail "the tenant cannot write its active disk after root's revert"
n0=$(wc -l <"$DAEMON_LOG")
# The merge runs in the background, from a hidden directory the delete
# made: looked at while the merge's qemu-img is stopped.
gate_arm
rmdir "$M/web1/snapshots/t1" || fail "root: delete t1"
gate_wait "$DAEMON_PID" 1
ls -d "$S"/web1/snapshots/.hidden* >/dev/null || fail "no hidden directory while t1's merge waits"
owned "$S/web1" $T:$T "after root's delete, its merge waiting (t1's image hidden)" \
    '^snapshots/[.]hidden-[^/]*/vda[.]qcow2$'
stat -c '%U:%G %a' "$S"/web1/snapshots/.hidden*/vda.qcow2 | grep -qx 'root:root 644' ||
    fail "t1's image, hidden, is no longer as root made it"
gate_cont "${GATED[@]}"
gate_disarm "$DAEMON_PID"
sync "$M/web1" || fail "sync web1 after deleting t1"
tail -n +$((n0 + 1)) "$DAEMON_LOG" | grep -q "merge of web1 disk vda (snapshot [^)]*): direction=commit .* done" ||
    fail "deleting t1 did not commit the active image into t1's: $(tail -n +$((n0 + 1)) "$DAEMON_LOG")"
owned "$S/web1" $T:$T "after root's delete (commit into the parent)"
read_pattern "$M/web1/disks/vda.qcow2" 0x6b 1M 64k
tenant qemu-io -f qcow2 -c 'write -q -P 0x7c 2M 64k' "$M/web1/disks/vda.qcow2" >/dev/null ||
    fail "the tenant cannot write its active disk after root's delete"
tenant test -w "$S/web1/domain.xml" || fail "the tenant cannot write its domain.xml"
pass "web1 stays the tenant's (0600/0700) after take, rename, revert and delete by root and tenant"

# ---- item 6: a clone is a new entry in the store's root ----
both_refuse "the tenant makes a VM in a root it may not write" \
    tenant mkdir "$S/tc" -- tenant mkdir "$M/web1/clones/tc"
[ ! -e "$S/tc" ] || fail "a refused clone left $S/tc"
grep -q "may not create entries in the store's root" "$DAEMON_LOG" ||
    fail "the refused clone logged no reason"
# Write for the group G, which the tenant has as a supplementary group
# (read by the daemon from the request's process).
chgrp $G "$S" && chmod 771 "$S"
tenant mkdir "$M/web1/snapshots/t3" || fail "the tenant cannot take t3"
tenant mkdir "$M/web1/clones/tc" || fail "the tenant cannot clone its VM into a root it may write"
owned "$S/tc" $T:$T "the tenant's clone tc"
tenant mkdir "$M/web1/snapshots/t3/clones/tc2" || fail "the tenant cannot clone its own snapshot"
owned "$S/tc2" $T:$T "the tenant's clone tc2 of its snapshot t3"
tenant rm -r "$M/tc2" || fail "the tenant cannot delete its own clone"
[ ! -e "$S/tc2" ] || fail "tc2 still in the store"
owned "$S/web1" $T:$T "web1 after the tenant's clones"
pass "a clone needs the right to create in the store's root (EACCES without), and is the caller's"

# ---- what the store refuses, the mount refuses ----
both_refuse "the tenant lists root's VM" tenant ls "$S/db1" -- tenant ls "$M/db1"
both_refuse "the tenant reads root's disk" \
    tenant cat "$S/db1/disks/vda.qcow2" -- tenant cat "$M/db1/disks/vda.qcow2"
both_refuse "the tenant makes a snapshot directory in root's VM" \
    tenant mkdir "$S/db1/snapshots/x" -- tenant mkdir "$M/db1/snapshots/x"
both_refuse "the tenant clones root's VM" \
    tenant ls "$S/db1/disks" -- tenant mkdir "$M/db1/clones/x"
both_refuse "another user lists the tenant's VM" other ls "$S/web1" -- other ls "$M/web1"
both_refuse "another user makes a VM" other mkdir "$S/oc" -- other mkdir "$M/tc/clones/oc"
both_refuse "another user removes the tenant's clone" other rmdir "$S/tc" -- other rm -r "$M/tc"
pass "what the store refuses the tenant and another user, the mount refuses"

# ---- item 4 for root's own VM: nothing written 0644 ----
mkdir "$M/db1/snapshots/d1" || fail "root: take d1 of db1"
ln -sfn snapshots/d1 "$M/db1/current" || fail "root: revert db1"
mkdir "$M/db1/clones/dc" || fail "root: clone db1"
owned "$S/db1" 0:0 "db1 after root's take and revert"
owned "$S/dc" 0:0 "root's clone dc of db1"
pass "root's 0600 VM and its clone stay 0600 (no file the daemon writes is 0644)"

# ---- item 7: .jobs names a VM only to who may search it ----
# Two clones stopped before they copy, one of each VM: db1's two disks,
# then web1's one. The background worker's pass after db1's revert
# would wait for the clone's lock, and show as merge-queued: done first.
sync "$M/db1" "$M/web1" || fail "sync db1 web1"
gate_arm
mkdir "$M/db1/clones/jd" 2>"$TMP/jd.err" &
pd=$!
gate_wait "$DAEMON_PID" 2
mkdir "$M/web1/clones/jw" 2>"$TMP/jw.err" &
pw=$!
gate_wait "$DAEMON_PID" 3
# (kind, VM, what; the clone lines for the comparisons)
sees() { "$@" cut -d' ' -f1-3 "$M/.jobs" | sort | paste -sd,; }
root_all=$(sees) tenant_all=$(sees tenant) other_all=$(sees other)
root_sees=$(tr , '\n' <<<"$root_all" | grep '^clone ' | paste -sd,)
tenant_sees=$(tr , '\n' <<<"$tenant_all" | grep '^clone ' | paste -sd,)
other_sees=$other_all
# What an operation prepares stands in a directory of the daemon's own
# (the files in it already have the owners they will have in place).
tmpdirs=$(stat -c '%n %U %a' "$S"/.vmstorefs/tmp/*)
echo "# operations' temporary directories:"
sed 's/^/#   /' <<<"$tmpdirs"
[ "$(awk '$2 != "root" || $3 != 700' <<<"$tmpdirs")" = "" ] ||
    fail "an operation's temporary directory is not root's 0700: $tmpdirs"
gate_cont "${GATED[@]}"
gate_disarm "$DAEMON_PID"
wait "$pd" || fail "clone jd: $(cat "$TMP/jd.err")"
wait "$pw" || fail "clone jw: $(cat "$TMP/jw.err")"
echo "# .jobs: root sees '$root_all', the tenant '$tenant_all', another user '$other_all'"
[ "$root_sees" = "clone db1 jd,clone web1 jw" ] || fail "root's .jobs: $root_all"
[ "$tenant_sees" = "clone web1 jw" ] && [[ $tenant_all != *db1* ]] ||
    fail "the tenant's .jobs: $tenant_all"
[ -z "$other_sees" ] || fail "another user's .jobs: $other_sees"
pass ".jobs shows each user the VMs it may search only"

unmount_fs "$M"
