#!/bin/bash
# Everything the tests and scripts source or run from the source tree is
# there: in a release tarball (make distcheck runs this test with the
# unit tests, not the whole suite) a helper missing from EXTRA_DIST would
# otherwise only show when the test needing it runs.
. "$(dirname "$0")/lib.sh"
cd "$TOP_SRCDIR" || fail "no source tree"
missing=()
for t in tests/integration/*.sh scripts/*; do
    [ -f "$t" ] || continue
    # ". "$(dirname "$0")/X"" and ". "$TOP_SRCDIR/X"" forms.
    while read -r f; do
        [ -e "$f" ] || missing+=("$t needs $f")
    done < <(sed -n -e 's|^[[:space:]]*\. "\$(dirname "\$0")/\([^"]*\)".*|tests/integration/\1|p' \
        -e 's|^[[:space:]]*\. "\$TOP_SRCDIR/\([^"]*\)".*|\1|p' "$t"
        # and the scripts it runs, as $top/scripts/NAME or $TOP_SRCDIR/scripts/NAME in quotes
        grep -o '"\$\(top\|TOP_SRCDIR\)/scripts/[A-Za-z0-9_-]*"' "$t" | sed 's|^"\$[A-Za-z_]*/||; s|"$||')
done
for t in $(sed -n 's|^[[:space:]]*\(tests/integration/t_[a-z_]*\.sh\).*|\1|p' "$TOP_SRCDIR/Makefile.am"); do
    [ -e "$t" ] || missing+=("TESTS lists $t")
done
[ ${#missing[@]} -eq 0 ] || fail "missing from the tree: ${missing[*]}"
n=$(ls tests/integration/t_*.sh | wc -l)
[ "$n" -gt 10 ] || fail "only $n integration tests in the tree"
pass "every file the $n integration tests and the scripts source or run is in the tree"
