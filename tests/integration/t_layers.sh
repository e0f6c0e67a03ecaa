#!/bin/bash
# The source tree's layering (scripts/check-layers): the tree passes, and
# the check is shown to catch what it exists for on planted copies: an
# include of a higher layer, an include between the two front ends, an
# include that does not name its folder, and an include circle.
. "$(dirname "$0")/lib.sh"

check=$TOP_SRCDIR/scripts/check-layers
[ -x "$check" ] || fail "scripts/check-layers is missing"

out=$("$check" "$TOP_SRCDIR/src" 2>&1) || fail "the source tree breaks its layering: $out"
pass "the source tree keeps its layers ($out)"

# plant NAME FILE LINE: a copy of src/ with LINE added to FILE must fail,
# naming FILE (or the circle through it).
plant() {
    local name=$1 file=$2 line=$3 copy out
    copy=$TMP/src-$name
    rm -rf "$copy"
    cp -r "$TOP_SRCDIR/src" "$copy" || fail "cannot copy the source tree"
    [ -f "$copy/$file" ] || fail "$file is not in the tree (update this test)"
    printf '%s\n' "$line" >>"$copy/$file"
    if out=$("$check" "$copy" 2>&1); then
        fail "$name: check-layers passed a tree with '$line' in $file"
    fi
    case $out in
    *"$file"*) pass "$name refused: $out" ;;
    *) fail "$name: refused, but the message does not name $file: $out" ;;
    esac
}

plant upward util/log.c '#include "fuse/node.h"'
plant upward-header store/store.h '#include "vm/current.h"'
plant front-ends ctl/ctl.c '#include "fuse/session.h"'
plant no-folder vm/merge.c '#include "log.h"'
# store.h <- storeio.h already; store.h -> storeio.h closes a circle.
plant circle store/store.h '#include "store/storeio.h"'
