#!/bin/bash
# The man page is clean under mandoc and groff, and says what the code says:
# every option `vmstorefs --help` prints is in it, and its version is the
# binary's. Exit 0 pass, 1 fail, 77 skip (only when no linter is installed).
top=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
page=$top/man/vmstorefs.8
bin=${VMSTOREFS:-$top/src/vmstorefs}
fail=0
bad() { echo "FAIL: $*"; fail=1; }

[ -r "$page" ] || { echo "FAIL: no man page at $page"; exit 1; }
[ -x "$bin" ] || { echo "FAIL: no vmstorefs binary at $bin"; exit 1; }

# Linters must print nothing at all.
lint() {
    local out
    out=$("$@" 2>&1) || bad "$* exited non-zero"
    [ -z "$out" ] || bad "$* printed:"$'\n'"$out"
}
linted=0
mandoc=${MANDOC:-$(command -v mandoc)}
if [ -n "$mandoc" ]; then lint "$mandoc" -T lint -W warning "$page"; linted=1; fi
if command -v groff >/dev/null; then lint groff -man -ww -z "$page"; linted=1; fi

# The page's source with roff escapes and quotes removed, so `"\-o debug"`
# reads as `-o debug`; OPTIONS is that text's OPTIONS section.
text=$(sed -e 's/\\-/-/g' -e 's/\\[%&]//g' -e 's/\\f[BIRP]//g' -e 's/"//g' "$page")
options=$(sed -n '/^\.SH OPTIONS/,/^\.SH [^O]/p' <<<"$text")

# has WORD TEXT: WORD occurs in TEXT, not as part of a longer word.
has() {
    local end='($|[^[:alnum:]_])'
    case $1 in *= | *-) end= ;; esac
    grep -Eq -- "(^|[^[:alnum:]_-])${1//./\\.}$end" <<<"$2"
}

help=$("$bin" --help) || bad "vmstorefs --help exited non-zero"

# The option table: "  -f, -o foreground      text" gives -f and -o foreground;
# "-o qemu_img=PATH" gives -o qemu_img=.
table=$(sed -En 's/^  (-([^ ]| [^ ])*)  .*/\1/p' <<<"$help" | sed -e 's/, /\n/g' |
        sed -E 's/=[A-Z]+$/=/')
[ "$(wc -l <<<"$table")" -ge 8 ] || bad "--help shows too few options: $table"
while read -r opt; do
    has "$opt" "$options" || bad "option '$opt' of --help is not in OPTIONS of the page"
done <<<"$table"

# The mount and fstab words: "[no]suid" is suid and nosuid, "max_read=N" is
# max_read=, "x-*" is x-.
words=$(sed -n '/^Mount options/,/option is an error/p' <<<"$help" |
        sed -e 's/^[^:]*: *//' -e 's/Any other option is an error\.//' | tr ', ' '\n\n' |
        sed -e 's/\.$//' -e 's/=[N*]$/=/' -e 's/\*$//' -e 's/^\[no\]\(.*\)/\1\nno\1/' | grep .)
[ "$(wc -l <<<"$words")" -ge 20 ] || bad "--help shows too few mount options: $words"
for w in $words; do
    has "$w" "$text" || bad "mount option '$w' of --help is not in the page"
done

# Same version in .TH and --version.
page_ver=$(sed -n 's/^\.TH .*"vmstorefs \([^"]*\)".*/\1/p' "$page")
bin_ver=$("$bin" --version | awk '{ print $2; exit }')
[ -n "$page_ver" ] || bad "no \"vmstorefs VERSION\" in the page's .TH line"
[ "$page_ver" = "$bin_ver" ] || bad "page says version '$page_ver', vmstorefs --version '$bin_ver'"

# vmstorefs-ctl(8): lint-clean, every command of --help in its COMMANDS,
# the same version.
ctl_page=$top/man/vmstorefs-ctl.8
ctl=${bin%/*}/vmstorefs-ctl
[ -r "$ctl_page" ] || bad "no man page at $ctl_page"
[ -x "$ctl" ] || bad "no vmstorefs-ctl binary at $ctl"
if [ -r "$ctl_page" ] && [ -x "$ctl" ]; then
    [ -n "$mandoc" ] && lint "$mandoc" -T lint -W warning "$ctl_page"
    command -v groff >/dev/null && lint groff -man -ww -z "$ctl_page"
    ctl_text=$(sed -e 's/\\-/-/g' -e 's/\\[%&]//g' -e 's/\\f[BIRP]//g' -e 's/"//g' "$ctl_page")
    ctl_cmds=$(sed -n '/^\.SH COMMANDS/,/^\.SH OPTIONS/p' <<<"$ctl_text")
    ctl_help=$("$ctl" --help) || bad "vmstorefs-ctl --help exited non-zero"
    cmds=$(sed -En 's/^  ([a-z][a-z-]+)( .*|$)/\1/p' <<<"$ctl_help")
    [ "$(wc -l <<<"$cmds")" -ge 10 ] || bad "vmstorefs-ctl --help shows too few commands: $cmds"
    for c in $cmds; do
        grep -Eq "^\.BI? $c( |$)" <<<"$ctl_cmds" || bad "command '$c' of vmstorefs-ctl --help is not in COMMANDS of its page"
    done
    for o in -q -h --help -V --version; do
        has "$o" "$(sed -n '/^\.SH OPTIONS/,/^\.SH [^O]/p' <<<"$ctl_text")" ||
            bad "option '$o' of vmstorefs-ctl is not in OPTIONS of its page"
    done
    ctl_ver=$("$ctl" --version | awk '{ print $2; exit }')
    ctl_page_ver=$(sed -n 's/^\.TH .*"vmstorefs \([^"]*\)".*/\1/p' "$ctl_page")
    [ "$ctl_page_ver" = "$ctl_ver" ] || bad "vmstorefs-ctl page says '$ctl_page_ver', --version '$ctl_ver'"
fi

[ $fail = 0 ] || exit 1
[ $linted = 1 ] || { echo "SKIP: neither mandoc nor groff is installed"; exit 77; }
echo "PASS: man page is lint-clean and agrees with vmstorefs --help and --version"
