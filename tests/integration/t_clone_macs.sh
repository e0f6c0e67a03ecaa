#!/bin/bash
# MACs stay unique in the store when two processes clone at once (two
# vmstorefs-ctl here; two daemons on one store, two hosts, are the same
# case): no in-process bookkeeping can see the other's clone, only what
# is in the store can (SPEC §2: "unique in the store").
#   Both clones draw from one sequence (VMSTOREFS_MAC_SEED), so only the
#   MACs found in the store keep them apart. c1 (of web1) is stopped in
#   its copy (its qemu-img held at the gate, qimggate.sh), its MACs drawn
#   and its definition not yet in the store; c2 (of db1: a second clone
#   of web1's active images is EBUSY across processes, as they are pinned)
#   runs from start to end meanwhile; then c1 goes on. Deterministic: no
#   race is sampled.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/qimggate.sh"
need qemu-img qemu-io perl pgrep

CTL=${VMSTOREFS%/*}/vmstorefs-ctl
[ -x "$CTL" ] || fail "vmstorefs-ctl was not built next to $VMSTOREFS"
S=$TMP/store
sample_store "$S"
export VMSTOREFS_MAC_SEED=4242
gate_init

# macs VM: the interface MACs of VM's domain.xml, one a line.
macs() {
    sed -n "s/.*<mac address=['\"]\([0-9a-f:]*\)['\"].*/\1/p" "$S/$1/domain.xml"
}

# web1's current state has a chain: its clone's copy is a qemu-img convert.
gate_arm
"$CTL" -q "$GATE_DIR/qemu-img" "$S" clone web1 c1 2>"$TMP/c1.err" &
c1=$!
gate_wait "$c1" 1
[[ $(gate_args "${GATED[0]}") == *" convert "*"/c1/"* ]] ||
    fail "c1: the stopped qemu-img is not c1's copy: $(gate_args "${GATED[0]}")"
gate_disarm
"$CTL" "$S" clone db1 c2 2>"$TMP/c2.err" || fail "ctl clone db1 c2: $(tail -n 1 "$TMP/c2.err")"
gate_cont "${GATED[@]}"
wait "$c1" || fail "ctl clone web1 c1: $(tail -n 1 "$TMP/c1.err")"

all=$(for vm in web1 db1 c1 c2; do macs "$vm"; done)
[ "$(macs c1 | wc -l)" -ge 1 ] && [ "$(macs c2 | wc -l)" -ge 1 ] || fail "the clones have no MAC: $all"
dups=$(sort <<<"$all" | uniq -d)
[ -z "$dups" ] || fail "MACs handed out twice: $dups (c1: $(macs c1 | tr '\n' ' '), c2: $(macs c2 | tr '\n' ' '))"
check_store "$S"
pass "two clones by two processes at once, one stopped mid-copy: every MAC in the store is unique"
