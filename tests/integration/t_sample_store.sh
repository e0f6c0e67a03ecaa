#!/bin/bash
# The sample store the README's demo mounts is valid libvirt material:
# every domain.xml and snapshot.xml validates, every image passes
# qemu-img check, backing names are relative and carry their format, and
# the script refuses to write into a non-empty directory.
. "$(dirname "$0")/lib.sh"
need qemu-img virt-xml-validate xmllint

S=$TMP/store
sample_store "$S"
for x in "$S"/*/domain.xml; do
    virt-xml-validate "$x" domain >/dev/null 2>&1 || fail "$x does not validate as a domain"
done
n=0
for x in "$S"/*/snapshots/*/snapshot.xml; do
    virt-xml-validate "$x" domainsnapshot >/dev/null 2>&1 || fail "$x does not validate as a domainsnapshot"
    n=$((n + 1))
done
[ "$n" -eq 2 ] || fail "expected 2 snapshots, found $n"
pass "domain.xml and snapshot.xml files validate with virt-xml-validate"

for img in "$S"/*/disks/*.qcow2 "$S"/*/snapshots/*/*.qcow2; do
    qemu-img check -q "$img" || fail "qemu-img check $img"
    info=$(qemu-img info --output=json "$img")
    if grep -q '"backing-filename"' <<<"$info"; then
        grep -q '"backing-filename": "\.\./' <<<"$info" || fail "$img: backing name is not relative"
        grep -q '"backing-filename-format": "qcow2"' <<<"$info" || fail "$img: no backing format"
    fi
done
pass "every image passes qemu-img check; backing names are relative with a format"

if "$TOP_SRCDIR/scripts/make-sample-store" "$S" >/dev/null 2>&1; then
    fail "make-sample-store wrote into a non-empty directory"
fi
pass "make-sample-store refuses a non-empty directory"
