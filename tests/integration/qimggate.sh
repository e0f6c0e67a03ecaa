# A gate on the daemon's qemu-img, to look at operations while they run
# (sourced after lib.sh, not run).
#
# How long a copy or a merge takes is the machine's business (a warm
# cache copies 770 MiB in 0.4 s), so sampling .jobs while one runs is a
# race. Instead the daemon runs qemu-img through a wrapper (-o qemu_img=,
# which the daemon documents): while the gate is armed, every data
# command (one with -p: convert, commit, a rebase that copies) stops
# itself (SIGSTOP) before it starts, still a child of the daemon named
# qemu-img. The test sees it stopped, looks at .jobs, ls and whatever
# else while nothing can move, and lets it go on with SIGCONT. It can
# stop again right after it reported a given progress: tests/helpers/
# gateshim.so, preloaded, stops it as part of flushing that figure (a
# signal from the reader of its output came too late for a fast copy:
# it could end first). Its output to the daemon goes through a relay
# that tells the test the figure and holds back what it prints after
# that until it is let go, so the test knows which figure the daemon has.
# qemu-img is the real one (exec'd); the daemon reads its real output.
#
#   gate_init               write the wrapper; GATE_OPT=(-o qemu_img=...)
#   gate_arm / gate_disarm [DAEMON...]
#                           data commands stop at the gate, or run freely
#   gate_arm_all            every command stops (info, rebase -u too)
#   gate_stops "F..."       the qemu-imgs let go from now on stop again
#                           after reporting a figure >= each F (percent)
#   gate_wait DAEMON N      until N of DAEMON's qemu-img children are
#                           stopped; GATED=(their pids)
#   gate_delete VM          rmdir VM's s1, sync VM in the background
#                           (GATE_SYNC), until its merge is at the gate
#   gate_args PID           the command line of a gated process (stdout)
#   gate_image PID K        the file layer K of its chain spec names
#   gate_progress PID       until the relay stopped PID after a figure;
#                           GATE_FIG=that figure ("eof" if it ended first)
#   gate_cont PID...        let them go on (SIGCONT)
#   gate_kill_daemon PID    kill -9 the daemon (DAEMON_PID) while its
#                           qemu-img PID is held; PID must die with it
#   gate_calls              the data commands run so far, armed or not,
#                           one a line: "PID ARGS" (what a replay ran)
# A gated process left stopped when the test ends dies with the daemon:
# the daemon gives its children PR_SET_PDEATHSIG (SIGKILL).

GATE_DIR=$TMP/gate
GATE_OPT=()
GATED=()
GATE_FIG=

gate_init() {
    local real
    real=$(command -v qemu-img) || fail "gate_init: no qemu-img"
    [ -f "${HELPERS:?HELPERS must point to the built test helpers}/gateshim.so" ] ||
        fail "gate_init: $HELPERS/gateshim.so not built"
    mkdir -p "$GATE_DIR" || fail "gate_init: cannot make $GATE_DIR"
    # The daemon gives its children LC_ALL and PATH only: the gate's
    # directory is written into the wrapper.
    cat >"$GATE_DIR/qemu-img" <<EOF || fail "gate_init: cannot write the wrapper"
#!/bin/bash
case " \$* " in
    *" -p "*) echo "\$\$ \$*" >>'$GATE_DIR/calls'
        [ -e '$GATE_DIR/armed' ] || exec '$real' "\$@" ;;
    *" --version "*) exec '$real' "\$@" ;;
    *) [ -e '$GATE_DIR/armed-all' ] || exec '$real' "\$@" ;;
esac
kill -STOP \$\$
LD_PRELOAD='$HELPERS/gateshim.so' VMSTOREFS_GATE_STOPS='$GATE_DIR/stops' \\
    exec '$real' "\$@" > >(exec perl '$GATE_DIR/relay' \$\$ '$GATE_DIR')
EOF
    cat >"$GATE_DIR/relay" <<'EOF' || fail "gate_init: cannot write the relay"
# relay PID DIR: qemu-img PID's stdout to ours, figure by figure. After
# the first figure "(F/100%)" at or past each threshold in DIR/stops
# (read once, at the start) it is forwarded, PID has stopped, DIR/at.PID
# says "F STATE" and nothing more is forwarded until the test removes
# that file (and sends SIGCONT). At EOF with thresholds left: "eof".
use strict;
use warnings;
my ($pid, $dir) = @ARGV;
my @stops;
if (open(my $f, '<', "$dir/stops")) {
    local $/;
    @stops = grep { length } split /\s+/, (<$f> // '');
}
sub put {
    my $d = shift;
    while (length $d) {
        my $n = syswrite(STDOUT, $d);
        defined $n or return;
        substr($d, 0, $n) = '';
    }
}
sub state {
    open(my $s, '<', "/proc/$pid/stat") or return 'gone';
    my $l = <$s> // '';
    return $l =~ /\)\s+(\S)/ ? $1 : 'gone';
}
sub hold {
    my $what = shift;
    open(my $o, '>', "$dir/at.$pid.new") or die "relay: $dir/at.$pid.new: $!\n";
    print $o "$what " . state() . "\n";
    close $o;
    rename("$dir/at.$pid.new", "$dir/at.$pid") or die "relay: $!\n";
    select(undef, undef, undef, 0.01) while -e "$dir/at.$pid";
}
# What it read, for the test's messages: DIR/log.PID.
open(my $log, '>>', "$dir/log.$pid") or die "relay: $dir/log.$pid: $!\n";
$log->autoflush(1);
print $log "stops: @stops\n";
my $buf = '';
for (;;) {
    my $n = sysread(STDIN, my $chunk, 65536);
    next if !defined $n && $!{EINTR};
    last if !$n;
    print $log "read: ", join(' ', $chunk =~ /\((\d+(?:\.\d+)?)\/100%\)/g), "\n";
    $buf .= $chunk;
    while (@stops && $buf =~ /\((\d+(?:\.\d+)?)\/100%\)/g) {
        my ($fig, $end) = ($1, pos($buf));
        next if $fig < $stops[0];
        shift @stops while @stops && $fig >= $stops[0];
        put(substr($buf, 0, $end));
        $buf = substr($buf, $end);
        # gateshim.so stops PID as it flushes this figure; a SIGSTOP of
        # ours could come first, and the test's SIGCONT before PID's
        # own stop, which would then hold it for good. Stopped (T), or
        # already exited (Z: not reaped while we hold its output),
        # before the test is told.
        select(undef, undef, undef, 0.01) until state() =~ /^(T|t|Z|gone)$/;
        hold($fig);
    }
    # A figure cut in two stays until its end has come.
    my $cut = rindex($buf, '(');
    my $keep = $cut >= 0 && index($buf, ')', $cut) < 0 ? substr($buf, $cut) : '';
    put(substr($buf, 0, length($buf) - length($keep)));
    $buf = $keep;
}
put($buf);
print $log "eof\n";
hold('eof') if @stops;
EOF
    chmod 0755 "$GATE_DIR/qemu-img" || fail "gate_init: chmod"
    : >"$GATE_DIR/stops"
    GATE_OPT=(-o "qemu_img=$GATE_DIR/qemu-img")
}

gate_arm() { : >"$GATE_DIR/armed" || fail "gate_arm"; }
# gate_arm_all: every command stops, not only data commands (an info, a
# rebase -u); gate_disarm undoes it too.
gate_arm_all() { : >"$GATE_DIR/armed" && : >"$GATE_DIR/armed-all" || fail "gate_arm_all"; }
# gate_disarm [DAEMON...]: data commands run freely again; any still
# stopped at the gate among DAEMON's children (one the test did not wait
# for) is let go, so that nothing is left waiting for the test.
gate_disarm() {
    local d
    rm -f "$GATE_DIR/armed" "$GATE_DIR/armed-all"
    for d in "$@"; do
        gate_cont $(gate_stopped "$d")
    done
}
gate_stops() { echo "$*" >"$GATE_DIR/stops" || fail "gate_stops"; }

# gate_stopped DAEMON: the pids of DAEMON's qemu-img children stopped
# at the gate (state T, still the wrapper: not yet qemu-img itself),
# one a line.
gate_stopped() {
    local p
    for p in $(pgrep -P "$1" -x qemu-img); do
        # T, or t when a tracer (strace) watches it.
        [[ $(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) == [Tt] ]] &&
            grep -qzxF -- "$GATE_DIR/qemu-img" "/proc/$p/cmdline" 2>/dev/null && echo "$p"
    done
}

# gate_wait DAEMON N: waits (up to 120 s) until N qemu-img children of
# DAEMON are stopped at once; GATED=(their pids).
gate_wait() {
    local end=$((SECONDS + 120))
    while :; do
        mapfile -t GATED < <(gate_stopped "$1")
        [ "${#GATED[@]}" -ge "$2" ] && return 0
        ((SECONDS < end)) || break
        sleep 0.05
    done
    fail "gate_wait: ${#GATED[@]} of daemon $1's qemu-img stopped after 120 s, not $2 (.jobs: $(cat "$M/.jobs" 2>/dev/null | tr '\n' ';'))"
}

gate_calls() { cat "$GATE_DIR/calls" 2>/dev/null; }
# gate_delete VM: with the gate armed, rmdir VM's s1 (it returns once s1
# is out of the namespace) and sync VM in the background, which waits for
# the merge the worker runs and says how it went: GATE_SYNC its pid, its
# stderr in $TMP/sync.err. Returns once the merge's qemu-img is stopped at
# the gate: GATED=(its pid).
gate_delete() {
    gate_arm
    rmdir "$M/$1/snapshots/s1" || fail "$1: rmdir snapshots/s1"
    sync "$M/$1" 2>"$TMP/sync.err" &
    GATE_SYNC=$!
    gate_wait "$DAEMON_PID" 1
}

gate_args() { tr '\0' ' ' <"/proc/$1/cmdline"; }
# gate_image PID K: the file layer K of a gated qemu-img's chain spec is
# (the daemon hands qemu-img descriptors, 3 + K, never names: qspec.h).
gate_image() { readlink "/proc/$1/fd/$((3 + $2))"; }

# gate_progress PID: waits (up to 120 s) until the relay stopped PID
# after a figure; GATE_FIG=the figure ("eof" if qemu-img ended first).
gate_progress() {
    local end=$((SECONDS + 120))
    while :; do
        if [ -e "$GATE_DIR/at.$1" ]; then
            read -r GATE_FIG _ <"$GATE_DIR/at.$1"
            return 0
        fi
        ((SECONDS < end)) || break
        sleep 0.05
    done
    fail "gate_progress: qemu-img $1 reported no figure past its next stop in 120 s; it reported: $(tr '\n' ';' <"$GATE_DIR/log.$1" 2>/dev/null)"
}

gate_cont() {
    local p
    for p in "$@"; do
        rm -f "$GATE_DIR/at.$p"
        kill -CONT "$p" 2>/dev/null
    done
}

# gate_kill_daemon PID: kill -9 the daemon (DAEMON_PID: reaped and
# forgotten) while its qemu-img PID is held; fails unless PID dies with it
# within 2 s (PR_SET_PDEATHSIG).
gate_kill_daemon() {
    local d=$DAEMON_PID i state
    kill -9 "$d"
    wait "$d" 2>/dev/null
    forget_daemon "$d"
    for ((i = 0; i < 40; i++)); do
        state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
        [ -z "$state" ] || [ "$state" = Z ] && break
        sleep 0.05
    done
    [ -z "$state" ] || [ "$state" = Z ] || fail "qemu-img $1 outlived the daemon by 2 s"
}
