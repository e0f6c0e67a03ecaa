#!/bin/bash
# Lint: no check of the integration tests is run where its fail cannot
# fail the test. lib.sh's fail ends the shell it runs in; inside a command
# substitution, "$(f ...)" or `f ...`, or a process substitution <(f ...),
# that is a subshell, so the test goes on (t_libvirt.sh's pass of
# lv_check_tree's output, so written, passed whatever libvirt's tree was). This finds every such substitution
# that starts with a function defined in tests/integration/*.sh which
# calls fail, directly or through other such functions, and is not the
# one form whose status is looked at:
#     VAR=$(f ...) || ...          (f's fail exits the subshell with 1;
#                                   not `local VAR=$(...)`: local's own
#                                   status hides it)
# Call such a function as a command instead (let it pass or set a
# variable), or check the status as above.
#
# It reads the scripts as text: a function runs from its "name() {" line
# to the "}" at the same indentation (or is one line); a call is a name in
# command position (line start, after ; | & ( { ! or if/then/else/do...).
# Usage: t_lint_subshell_fail.sh [FILE...] (default: the integration
# tests and their libraries). Exit 0 clean, 1 with what it found listed.
set -u
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

if [ $# -eq 0 ]; then
    set -- "$TOP_SRCDIR"/tests/integration/*.sh
fi
[ -e "$1" ] || { echo "FAIL: no scripts to lint in $TOP_SRCDIR/tests/integration"; exit 1; }

out=$(awk '
    # Comments off (not ${#x} or $#), and strings kept: a call written in
    # a string, "$(f ...)", is a call.
    function code(s) {
        sub(/^[ \t]*#.*/, "", s)
        gsub(/[ \t]#[^"'\'']*$/, "", s)
        return s
    }
    # The words in command position on line s, into the array w (count n).
    function commands(s, w,   n, i, p, parts, k, word) {
        gsub(/\$\(\(/, " ", s)                    # arithmetic, not a subshell
        gsub(/\|\||&&|[;|&(){}`!]/, "\n", s)
        k = split(s, parts, "\n")
        n = 0
        for (i = 1; i <= k; i++) {
            p = parts[i]
            sub(/^[ \t]+/, "", p)
            # Keywords and assignments before the command: "then f",
            # "DAEMON_PID=$P2 unmount_fs ...".
            while (match(p, /^(if|then|else|elif|do|while|until|time|[A-Za-z_][A-Za-z0-9_]*=[^ \t]*)[ \t]+/))
                p = substr(p, RLENGTH + 1)
            if (match(p, /^[A-Za-z_][A-Za-z0-9_]*/)) {
                word = substr(p, 1, RLENGTH)
                # Not "f=..." (an assignment) nor "f()" (a definition).
                if (substr(p, RLENGTH + 1, 1) != "=") w[++n] = word
            }
        }
        return n
    }
    # The node a call of name from file f reaches: f`s own function, else
    # the libraries` (a t_*.sh defines functions for itself only).
    function node(f, name) {
        if ((f SUBSEP name) in defined) return f SUBSEP name
        if (("lib" SUBSEP name) in defined) return "lib" SUBSEP name
        return ""
    }
    FNR == 1 { file = FILENAME; lib = FILENAME !~ /(^|\/)t_[^\/]*\.sh$/; infn = 0 }
    {
        line[file, FNR] = $0
        nlines[file] = FNR
        if (!infn && match($0, /^[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*\(\)[ \t]*\{/)) {
            indent = $0; sub(/[^ \t].*/, "", indent)
            name = $0; sub(/^[ \t]*/, "", name); sub(/[ \t]*\(.*/, "", name)
            cur = (lib ? "lib" : file) SUBSEP name
            defined[cur] = 1
            owner[cur] = owner[cur] ? owner[cur] : file
            rest = substr($0, RSTART + RLENGTH)
            body[cur] = body[cur] "\n" rest
            # "name() { ...; }" on one line, else to the "}" at this indentation.
            if (code(rest) !~ /\}[ \t]*$/) infn = 1
            next
        }
        if (infn) {
            body[cur] = body[cur] "\n" $0
            if ($0 ~ "^" indent "\\}[ \t]*$") infn = 0
        }
    }
    END {
        # Direct calls of fail, then the fixpoint over the call graph.
        for (c in defined) {
            split(c, fn, SUBSEP)
            nb = split(body[c], bl, "\n")
            for (i = 1; i <= nb; i++) {
                m = commands(code(bl[i]), w)
                for (j = 1; j <= m; j++) {
                    if (w[j] == "fail") { failing[c] = "fail" }
                    else if ((t = node(owner[c], w[j])) != "" && t != c) calls[c, t] = 1
                }
            }
        }
        do {
            changed = 0
            for (e in calls) {
                split(e, ab, SUBSEP)
                a = ab[1] SUBSEP ab[2]; b = ab[3] SUBSEP ab[4]
                if (!(a in failing) && (b in failing)) { failing[a] = ab[4] " -> " failing[b]; changed = 1 }
            }
        } while (changed)
        # Every substitution that starts with a failing function.
        for (fl in nlines) {
            for (n = 1; n <= nlines[fl]; n++) {
                s = code(line[fl, n])
                rest = s
                while (match(rest, /(\$\(|`|<\()[ \t]*[A-Za-z_][A-Za-z0-9_]*/)) {
                    call = substr(rest, RSTART, RLENGTH)
                    rest = substr(rest, RSTART + RLENGTH)
                    if (substr(rest, 1, 1) ~ /[A-Za-z0-9_=]/) continue
                    name = call; sub(/^(\$\(|`|<\()[ \t]*/, "", name)
                    t = node(fl, name)
                    if (t == "" || !(t in failing)) continue
                    # The checked form: VAR=$(f ...) || ...
                    if (s ~ "^[ \t]*(if[ \t]+!?[ \t]*)?[A-Za-z_][A-Za-z0-9_]*(\\[[^]]*\\])?=\\$\\([ \t]*" name "([ \t].*)?\\)[ \t]*(\\|\\||;[ \t]*then)") continue
                    close_ = substr(call, 1, 1) == "`" ? "`" : ")"
                    printf "%s:%d: %s ...%s runs %s in a subshell; it calls %s, which would end only the subshell\n",
                        fl, n, call, close_, name, failing[t]
                    bad++
                }
            }
        }
        exit bad > 0
    }' "$@")
status=$?
if [ "$status" -ne 0 ]; then
    echo "${out:-awk failed}" | sed "s|$TOP_SRCDIR/||" | sort -t: -k1,1 -k2,2n
    echo "FAIL: a fail in \$(...) ends only the subshell: call the function as a command, or use VAR=\$(f ...) || fail \"...\""
    exit 1
fi
echo "ok - no \$(f ...) around a function that calls fail in $# scripts"
