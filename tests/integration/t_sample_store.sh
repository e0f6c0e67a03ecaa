#!/bin/bash
# The sample store the README's demo mounts is valid libvirt material:
# every domain.xml and snapshot.xml validates, every image passes
# qemu-img check, backing names are relative and carry their format,
# each snapshot's <disks> source is its overlay as in libvirt, and the
# script refuses to write into a non-empty directory.
. "$(dirname "$0")/lib.sh"
need qemu-img virt-xml-validate xmllint

S=$TMP/store
sample_store "$S"
check_store "$S"
n=$(find "$S" -name snapshot.xml | wc -l)
[ "$n" -eq 2 ] || fail "expected 2 snapshots, found $n"
pass "XML validates; images pass qemu-img check with relative backing names and formats"
check_overlays "$S" web1
pass "each snapshot's <disks> source is the overlay backed by its own image"

if "$TOP_SRCDIR/scripts/make-sample-store" "$S" >/dev/null 2>&1; then
    fail "make-sample-store wrote into a non-empty directory"
fi
pass "make-sample-store refuses a non-empty directory"
