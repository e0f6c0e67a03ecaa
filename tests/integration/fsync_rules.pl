#!/usr/bin/perl
# fsync_rules.pl --root STORE TRACE: checks a trace of one store operation
# for the fsync orders a power cut needs (issue 15).
#
# A crash test that kills the process (VMSTOREFS_CRASH_AT) keeps the page
# cache, so it cannot see an fsync missing or late: what was written is
# all still there. This reads what the operation asked of the file system
# instead (strace -f -y of vmstorefs-ctl and its qemu-img children) and
# checks the orders that make every state a power cut could leave one the
# journal's recovery handles (src/journal/journal.h, the replay
# contract). The model is POSIX's, not one file system's: a power cut
# keeps a file's data only once an fsync or fdatasync of it returned, a
# directory's entries only once an fsync of the directory returned, and
# may keep or lose anything else, call by call (no rename is assumed to
# reach the disk in order, as ext4's data=ordered mostly would). The
# journal's marks are its records: a record
# written (renamed into .vmstorefs/journal/ID.json: begin, commit, each
# progress mark) or removed (the operation is over, nothing is replayed).
# Recovery trusts what a mark says, so everything before a mark must be on
# disk when the mark is. The rules, each named in what it reports:
#
#   1  What is renamed into its final place is whole first. A rename whose
#      target is outside .vmstorefs/tmp/ (a prepared file or directory
#      moved into the VM, an image moved between snapshots) or is a
#      journal record: the file it moves, and for a directory every file
#      and directory below it, has no write (write, pwrite, truncate,
#      fallocate, reflink) and no entry change that no fsync/fdatasync
#      followed. Otherwise a power cut after the rename keeps the name and
#      loses the content (ext4's delayed allocation: an empty file).
#   2  Every directory whose entries changed (a file created, a directory
#      made, a rename's source and target directories, an unlink, an
#      rmdir) is fsynced before the next journal mark and before the
#      operation replies (the process exits): a mark after a change that
#      a power cut can take back tells recovery a step is done that is
#      not. Not counted: .vmstorefs/locks/ (lock files hold no state), and
#      removals from an operation's own temporary directory: a step's
#      move out of it, the directory itself removed after its record, and
#      what was removed from a directory a later step moved in there (a
#      deleted snapshot's directory, emptied by the steps before). Once
#      the record is gone the whole directory is garbage the next mount
#      removes; until then a name a power cut brings back there is the
#      same file seen twice, and a move's replay finds its target.
#   3  The journal directory is fsynced after each record is renamed into
#      it or unlinked from it, before anything else in the store changes
#      and before the reply: a step made durable before the record that
#      orders it would be a change no record explains. (That the record
#      file itself is fsynced before its rename is rule 1.)
#   4  Every file written (by the daemon or a qemu-img it ran: the image a
#      data step wrote, a header edited in place) is fsynced or
#      fdatasynced before the next journal mark and before the reply: a
#      progress mark after a pull or commit says its data is there.
#   5  No process reads what another one wrote and nobody synced yet: a
#      step must not decide from a header or a file a power cut could
#      still take back (journal.h: "a data step is never taken for done
#      from what a header says").
#   6  After the commit, a step is durable before any later step that
#      depends on it: what a step made (an entry in a directory: a
#      rename's target, a mkdir, a file created; data written) is
#      fsynced before a change (a rename, mkdir, unlink or create; for an
#      entry made, a data write too) to a path that is the entry's, or
#      the path a rename took it from, or a directory above or below one
#      of them (for data written: the file's path). Recovery replays from
#      the last mark, and journal.h's table holds only for states where a
#      later step is not on disk without an earlier one it depends on: a
#      replace over a name that a move had taken away, durable while the
#      move is not, loses the image the move was saving. A change that
#      touches none of those paths is of an independent step (two images
#      moved into one directory): a power cut may keep it and lose the
#      other, and the replay redoes the other, so the two may share one
#      sync. The sources steps leave behind are rule 2's
#      (synced together before the next mark: a name a power cut brings
#      back is the same file seen twice, which the replay resolves). A
#      hard link (link, linkat) is an entry made whose source is the
#      linked name, as a rename's: a rename over that name (the take's
#      overlay put over the active image it linked into the snapshot)
#      depends on it, or a power cut could keep the rename and lose the
#      link, and the file with it. An
#      operation is committed from its second record write (the first is
#      its begin), or from a record that a recovery finds and reads,
#      until its record is removed.
# sync_file_range is no sync (it flushes no metadata and no disk cache);
# syncfs and sync are. Failed calls change nothing and are skipped. Paths
# outside STORE are not looked at.
#
# Prints one line per violation naming the rule and the trace lines, and
# a last line "fsync_rules: N lines, N record writes, ..., K violation(s)"
# (STORE in the lines quoted stands for the store's path). Exit status:
# 0 none, 1 violations, 2 a trace it cannot use.
use strict;
use warnings;

my ($root, $trace);
while (@ARGV) {
    my $a = shift @ARGV;
    if ($a eq '--root') { $root = shift @ARGV; }
    else { $trace = $a; }
}
unless (defined $root && defined $trace) {
    print STDERR "usage: fsync_rules.pl --root STORE TRACE\n";
    exit 2;
}
$root =~ s{/+$}{};

my %dirty_data;   # path -> { line => first unsynced write, tids => { writer => 1 } }
# path -> { add => first unsynced entry made, rm => first unsynced entry
# removed that was not in an operation's own temporary directory }
my %dirty_dir;
my %tgid;         # tid -> process id (threads of one qemu-img are one writer)
my $journal_pending;
my %live;         # record id -> "begun" or "committed" (rule 6)   # line of a record write/unlink whose directory is not synced yet
my %reported;
my @violations;
my %count = (lines => 0, marks => 0, removals => 0, syncs => 0, renames => 0, writes => 0);
my $root_pid;
my @text;         # trace line number -> text, for the reports

sub rel {
    my $p = shift;
    return '.' if $p eq $root;
    return substr($p, length($root) + 1);
}

sub in_store {
    my $p = shift;
    return defined $p && ($p eq $root || index($p, "$root/") == 0);
}

sub parent {
    my $p = shift;
    $p =~ s{/[^/]*$}{};
    return $p;
}

sub short {
    my $n = shift;
    my $t = $text[$n] // '';
    $t =~ s/\Q$root\E(?=[\/>"])/STORE/g;
    $t = substr($t, 0, 160) . '...' if length($t) > 160;
    return "line $n: $t";
}

sub violation {
    my ($rule, $key, $msg) = @_;
    return if $reported{"$rule\0$key"}++;
    push @violations, "fsync_rules: rule $rule: $msg";
}

sub is_meta_locks { my $r = rel(shift); return $r =~ m{^\.vmstorefs/locks(/|$)}; }
sub is_journal_dir { return rel(shift) eq '.vmstorefs/journal'; }
sub is_record { return rel(shift) =~ m{^\.vmstorefs/journal/[^/.][^/]*\.json$}; }
sub is_tmp_area { return rel(shift) =~ m{^\.vmstorefs/tmp(/|$)}; }
# In an operation's own temporary directory, or that directory: what is
# removed from there (unlinked, or renamed away by a step) needs no sync,
# as the whole directory goes once the record is gone (and a name a power
# cut brings back there is only the same file seen twice until then).
sub own_tmp { return rel(shift) =~ m{^\.vmstorefs/tmp/[^/]+(/|$)}; }
# The scratch directory of the rename probe (storeio_rename_probe: a
# directory with one file in it, which every probed rename fails to
# replace): nothing is ever read back from it, so nothing in it needs a
# sync; it goes with the operation's temporary directory.
sub is_probe_scratch { return rel(shift) =~ m{^\.vmstorefs/tmp/[^/]+/rename-probe(/|$)}; }

# "N</path>" or "AT_FDCWD</path>": the path strace -y shows for a fd.
sub fd_path {
    my $arg = shift // '';
    return undef unless $arg =~ /^(?:-?\d+|AT_FDCWD)<(.*)>$/s;
    my $p = $1;
    $p =~ s/ \(deleted\)$//;
    return $p;
}

sub unquote {
    my $s = shift // '';
    return undef unless $s =~ /^"(.*)"(?:\.\.\.)?$/s;
    my $v = $1;
    $v =~ s/\\x([0-9a-fA-F]{2})/chr(hex($1))/ge;
    $v =~ s/\\(["\\])/$1/g;
    return $v;
}

sub join_path {
    my ($dir, $name) = @_;
    return undef unless defined $name;
    return $name if $name =~ m{^/};
    return undef unless defined $dir;
    my $p = "$dir/$name";
    $p =~ s{/\./}{/}g;
    $p =~ s{/\.$}{};
    $p =~ s{/+}{/}g;
    return $p;
}

# Splits a syscall's arguments at the commas that are not inside quotes,
# braces, brackets or a fd's <path>.
sub split_args {
    my $s = shift;
    my (@out, $cur, $depth, $q);
    $cur = ''; $depth = 0; $q = 0;
    for (my $i = 0; $i < length $s; $i++) {
        my $c = substr($s, $i, 1);
        if ($q) {
            $cur .= $c;
            if ($c eq '\\') { $cur .= substr($s, ++$i, 1); }
            elsif ($c eq '"') { $q = 0; }
            next;
        }
        if ($c eq '"') { $q = 1; }
        elsif ($c =~ /[\{\[\(<]/) { $depth++; }
        elsif ($c =~ /[\}\]\)>]/) { $depth-- if $depth > 0; }
        elsif ($c eq ',' && $depth == 0) { push @out, $cur; $cur = ''; next; }
        $cur .= $c;
    }
    push @out, $cur if $cur ne '';
    s/^\s+|\s+$//g for @out;
    return @out;
}

sub moved_path {
    my ($p, $from, $to) = @_;
    return $p unless defined $p && ($p eq $from || index($p, "$from/") == 0);
    return $to . substr($p, length $from);
}

sub moved_state {
    my ($h, $from, $to) = @_;
    for my $p (keys %$h) {
        if ($p eq $from || index($p, "$from/") == 0) {
            $h->{ moved_path($p, $from, $to) } = delete $h->{$p};
        }
    }
    # A directory's unsynced entries (rule 6) name paths too.
    for my $d (values %$h) {
        next unless ref $d eq 'HASH' && $d->{entries};
        my %e;
        for my $p (keys %{ $d->{entries} }) {
            my $x = $d->{entries}{$p};
            $x->{from} = moved_path($x->{from}, $from, $to);
            $e{ moved_path($p, $from, $to) } = $x;
        }
        $d->{entries} = \%e;
    }
}

sub drop_state {
    my $from = shift;
    for my $h (\%dirty_data, \%dirty_dir) {
        delete $h->{$_} for grep { $_ eq $from || index($_, "$from/") == 0 } keys %$h;
    }
}

# An entry of DIR made (kind "add") or removed ("rm"; ENTRY is what was
# removed, for rule 2's exception). An entry made is kept with the line
# and, for a rename, the path it came from (FROM), for rule 6.
sub dir_changed {
    my ($dir, $n, $kind, $entry, $from) = @_;
    return unless in_store($dir) && !is_meta_locks($dir) && !is_probe_scratch($dir);
    my $d = $dirty_dir{$dir} //= {};
    $kind = 'tmp' if $kind eq 'rm' && own_tmp($entry);
    $d->{$kind} //= $n;
    $d->{entries}{$entry} //= { line => $n, from => $from } if $kind eq 'add';
}

# The line of the first change of a dirty directory that rule 2 counts
# (undef: only removals it does not count).
sub counted_change {
    my ($p, $d) = @_;
    return $d->{add} if defined $d->{add};
    return undef if own_tmp($p);
    return $d->{rm};
}

sub data_written {
    my ($path, $n, $tid) = @_;
    return unless in_store($path) && !is_meta_locks($path);
    steps_in_order([$path], $n, 1) unless $dirty_data{$path};
    my $d = $dirty_data{$path} //= { line => $n, tids => {} };
    # The writing thread; its process is looked up when it matters, as a
    # thread may run before strace prints what its clone returned.
    $d->{tids}{$tid} = 1;
    $count{writes}++;
}

sub synced {
    my $path = shift;
    return unless in_store($path);
    $count{syncs}++;
    delete $dirty_data{$path};
    delete $dirty_dir{$path};
    $journal_pending = undef if is_journal_dir($path);
}

# Something in the store changes: rule 3 wants the journal directory
# synced first when a record was just written or removed.
sub store_change {
    my ($path, $n) = @_;
    return unless in_store($path) && !is_meta_locks($path);
    return if index($path, "$root/.vmstorefs/journal/") == 0;
    return unless defined $journal_pending;
    violation(3, "$journal_pending", "the journal directory was not fsynced after the record "
        . "change at " . short($journal_pending) . " before the store changed at " . short($n));
}

sub record_id {
    my $r = rel(shift);
    return $r =~ m{^\.vmstorefs/journal/([^/.][^/]*)\.json$} ? $1 : undef;
}

sub committed { return scalar grep { $_ eq 'committed' } values %live; }

# Is one of A and B the other, or a directory above it?
sub related {
    my ($a, $b) = @_;
    return 0 unless defined $a && defined $b;
    return $a eq $b || index($a, "$b/") == 0 || index($b, "$a/") == 0;
}

# Rule 6, before a change at line N of the paths in PATHS (a rename's
# source and target, else the one path; data: a data write, which is
# checked against the entries made only). Only what the change depends
# on must be durable before it: an unsynced entry whose own path or
# source is one of PATHS or a directory above or below one, a file
# written whose path is. A change that touches none of them is of a step
# independent of theirs (journal.h): a power cut may keep it and lose
# them, and the replay redoes them.
sub steps_in_order {
    my ($paths, $n, $data) = @_;
    my @paths = grep { defined && in_store($_) && !is_meta_locks($_)
        && index($_, "$root/.vmstorefs/journal/") != 0 } @$paths;
    return unless committed() && @paths;
    for my $p (sort keys %dirty_dir) {
        next if is_journal_dir($p);
        my $es = $dirty_dir{$p}{entries} or next;
        for my $e (sort { $es->{$a}{line} <=> $es->{$b}{line} } keys %$es) {
            my $x = $es->{$e};
            my ($hit) = grep { related($_, $e) || related($_, $x->{from}) } @paths;
            next unless defined $hit;
            violation(6, "$p\0$x->{line}", "directory " . rel($p) . " got an entry at "
                . short($x->{line}) . " after the commit and was not fsynced before the next "
                . "change at " . short($n) . ", which depends on it (" . rel($hit) . ")");
        }
    }
    return if $data;
    for my $p (sort keys %dirty_data) {
        my ($hit) = grep { related($_, $p) } @paths;
        next unless defined $hit;
        my $first = $dirty_data{$p}{line};
        violation(6, "$p\0$first", "file " . rel($p) . " written at " . short($first)
            . " after the commit was not fsynced before the next change at " . short($n)
            . ", which depends on it (" . rel($hit) . ")");
    }
}

# Rules 2 and 4 at a journal mark (what: "record write at line N") or
# the reply.
sub all_durable {
    my ($n, $what) = @_;
    for my $p (sort keys %dirty_dir) {
        my $first = counted_change($p, $dirty_dir{$p});
        next unless defined $first;
        next if is_journal_dir($p);    # rule 3's
        violation(2, "$p\0$first", "directory " . rel($p) . " changed at " . short($first)
            . " was not fsynced before the $what at " . short($n));
    }
    for my $p (sort keys %dirty_data) {
        my $d = $dirty_data{$p};
        violation(4, "$p\0$d->{line}", "file " . rel($p) . " written at " . short($d->{line})
            . " was not fsynced before the $what at " . short($n));
    }
}

# Rule 1: nothing below FROM is unsynced when it is renamed to TO.
sub check_whole {
    my ($from, $to, $n) = @_;
    my $rule = is_record($to) ? '1 (journal record)' : 1;
    for my $p (sort grep { $_ eq $from || index($_, "$from/") == 0 } keys %dirty_data) {
        violation($rule, "$p\0$n", "file " . rel($p) . " written at " . short($dirty_data{$p}{line})
            . " was not fsynced before it was renamed into place (to " . rel($to) . ") at "
            . short($n));
    }
    for my $p (sort grep { $_ eq $from || index($_, "$from/") == 0 } keys %dirty_dir) {
        my $first = counted_change($p, $dirty_dir{$p}) // next;
        violation($rule, "$p\0$n", "directory " . rel($p) . " changed at "
            . short($first) . " was not fsynced before it was renamed into place (to "
            . rel($to) . ") at " . short($n));
    }
}

sub do_rename {
    my ($from, $to, $n) = @_;
    return unless in_store($from) || in_store($to);
    $count{renames}++;
    steps_in_order([$from, $to], $n, 0);
    store_change($to, $n);
    store_change($from, $n);
    check_whole($from, $to, $n) if is_record($to) || !is_tmp_area($to);
    delete $dirty_data{$to};
    drop_state($to);
    moved_state(\%dirty_data, $from, $to);
    moved_state(\%dirty_dir, $from, $to);
    dir_changed(parent($from), $n, 'rm', $from);
    dir_changed(parent($to), $n, 'add', $to, $from);
    if (is_record($to)) {
        my $id = record_id($to);
        $live{$id} = exists $live{$id} ? 'committed' : 'begun';
        mark($n, 'journal record write');
    }
}

sub mark {
    my ($n, $what) = @_;
    all_durable($n, $what);
    $count{ $what =~ /write/ ? 'marks' : 'removals' }++;
    $journal_pending = $n;
}

sub do_unlink {
    my ($path, $n) = @_;
    return unless in_store($path);
    my $own_tmp = own_tmp($path);
    steps_in_order([$path], $n, 0);
    store_change($path, $n) unless $own_tmp;
    drop_state($path);
    if (is_record($path)) {
        delete $live{ record_id($path) };
        dir_changed(parent($path), $n, 'rm', $path);
        mark($n, 'journal record removal');
        return;
    }
    dir_changed(parent($path), $n, 'rm', $path);
}

sub do_create {
    my ($path, $n, $from) = @_;
    return unless in_store($path);
    steps_in_order([$path], $n, 0);
    store_change($path, $n);
    dir_changed(parent($path), $n, 'add', $path, $from);
}

# Rule 5.
sub do_read {
    my ($path, $n, $tid) = @_;
    my $d = $dirty_data{$path} or return;
    my $me = $tgid{$tid} // $tid;
    my %by = map { ($tgid{$_} // $_) => 1 } keys %{ $d->{tids} };
    my @others = sort grep { $_ != $me } keys %by;
    return unless @others;
    violation(5, "$path\0$d->{line}\0$me", "process $me read " . rel($path) . " at " . short($n)
        . ", which process @others wrote at " . short($d->{line}) . " and nobody synced");
}

my %known;    # paths seen to exist (an O_CREAT open of one creates nothing)

sub open_result {
    my ($flags, $ret, $n, $ret_path, $name_path) = @_;
    my $p = $ret_path // $name_path;
    return unless defined $p && in_store($p);
    # A record a recovery finds: its operation is committed (or rolled
    # back, which only removes the record and then the temporary directory).
    my $id = is_record($p) ? record_id($p) : undef;
    $live{$id} //= 'committed' if defined $id && $flags !~ /O_CREAT|O_PATH/;
    if ($flags =~ /O_CREAT/ && ($flags =~ /O_EXCL/ || !$known{$p})) {
        do_create($p, $n);
    }
    if ($flags =~ /O_TRUNC/ && $flags =~ /O_WRONLY|O_RDWR/) {
        data_written($p, $n, 0);
    }
    $known{$p} = 1;
}

sub handle {
    my ($n, $tid, $name, $args, $ret) = @_;
    my @a = split_args($args);
    my ($rv, $rpath) = $ret =~ /^(-?\d+|\?)(?:<(.*)>)?/ ? ($1, $2) : ('?', undef);
    if ($name =~ /^(clone|clone3|fork|vfork)$/) {
        $tgid{$rv} = $args =~ /CLONE_THREAD/ ? ($tgid{$tid} // $tid) : $rv if $rv =~ /^\d+$/ && $rv > 0;
        return;
    }
    return if $rv eq '?' || $rv =~ /^-/;    # failed or unknown: no effect
    if ($name =~ /^(openat|openat2|open|creat)$/) {
        my ($dir, $fname, $flags) =
            $name eq 'open' ? (undef, unquote($a[0]), $a[1]) :
            $name eq 'creat' ? (undef, unquote($a[0]), 'O_CREAT|O_WRONLY|O_TRUNC') :
            (fd_path($a[0]), unquote($a[1]), $a[2]);
        $flags //= '';
        $rpath =~ s/ \(deleted\)$// if defined $rpath;
        open_result($flags, $rv, $n, $rpath, join_path($dir, $fname));
    } elsif ($name =~ /^(write|pwrite64|pwritev|pwritev2|writev|ftruncate|fallocate)$/) {
        data_written(fd_path($a[0]), $n, $tid) if $rv ne '0' || $name =~ /truncate|fallocate/;
    } elsif ($name eq 'copy_file_range') {
        data_written(fd_path($a[2]), $n, $tid);
    } elsif ($name eq 'ioctl' && $args =~ /FICLONE/) {
        data_written(fd_path($a[0]), $n, $tid);
    } elsif ($name =~ /^(fsync|fdatasync)$/) {
        synced(fd_path($a[0]));
    } elsif ($name =~ /^(syncfs|sync)$/) {
        synced($_) for keys %dirty_data, keys %dirty_dir;
        $journal_pending = undef;
    } elsif ($name =~ /^(read|pread64|preadv|preadv2|readv)$/) {
        my $p = fd_path($a[0]);
        do_read($p, $n, $tid) if defined $p && $rv ne '0';
    } elsif ($name eq 'rename') {
        do_rename(unquote($a[0]), unquote($a[1]), $n);
    } elsif ($name =~ /^(renameat|renameat2)$/) {
        my $from = join_path(fd_path($a[0]), unquote($a[1]));
        my $to = join_path(fd_path($a[2]), unquote($a[3]));
        return unless defined $from && defined $to;
        if (($a[4] // '') =~ /RENAME_EXCHANGE/) {
            violation('?', "x$n", "RENAME_EXCHANGE at " . short($n) . " is not modelled");
            return;
        }
        do_rename($from, $to, $n);
    } elsif ($name =~ /^(unlink|rmdir)$/) {
        do_unlink(join_path(undef, unquote($a[0])), $n);
    } elsif ($name eq 'unlinkat') {
        do_unlink(join_path(fd_path($a[0]), unquote($a[1])), $n);
    } elsif ($name eq 'mkdir') {
        do_create(join_path(undef, unquote($a[0])), $n);
    } elsif ($name eq 'mkdirat') {
        do_create(join_path(fd_path($a[0]), unquote($a[1])), $n);
    } elsif ($name eq 'link') {
        do_create(join_path(undef, unquote($a[1])), $n, join_path(undef, unquote($a[0])));
    } elsif ($name eq 'symlink') {
        do_create(join_path(undef, unquote($a[1])), $n);
    } elsif ($name eq 'linkat') {
        do_create(join_path(fd_path($a[2]), unquote($a[3])), $n,
            join_path(fd_path($a[0]), unquote($a[1])));
    } elsif ($name eq 'symlinkat') {
        do_create(join_path(fd_path($a[1]), unquote($a[2])), $n);
    } elsif ($name eq 'newfstatat' || $name eq 'statx') {
        my $p = join_path(fd_path($a[0]), unquote($a[1]));
        $known{$p} = 1 if defined $p;
    }
}

my $fh;
unless (open($fh, '<', $trace)) {
    print STDERR "fsync_rules: $trace: $!\n";
    exit 2;
}
my %pending;    # tid -> [line number, text before "<unfinished ...>"]
my $exited = 0;
while (my $l = <$fh>) {
    chomp $l;
    my $n = $.;
    $text[$n] = $l;
    $count{lines}++;
    # "PID  text"; a trace of one process has no PID column.
    my ($tid, $rest) = $l =~ /^(\d+)\s+(.*)$/ ? ($1, $2) : (0, $l);
    $root_pid //= $tid;
    if ($rest =~ /^\+\+\+ (?:exited with|killed by)/) {
        if ($tid == $root_pid) {
            all_durable($n, 'reply (exit)');
            if (defined $journal_pending) {
                violation(3, "$journal_pending", "the journal directory was not fsynced after the "
                    . "record change at " . short($journal_pending) . " before the reply at "
                    . short($n));
            }
            $exited = 1;
        }
        next;
    }
    next if $rest =~ /^---/;
    my $start = $n;
    if ($rest =~ /^(.*?)\s*<unfinished \.\.\.>$/) {
        $pending{$tid} = [$n, $1];
        next;
    }
    if ($rest =~ /^<\.\.\. \w+ resumed>(.*)$/) {
        my $p = delete $pending{$tid} or next;
        ($start, $rest) = ($p->[0], $p->[1] . $1);
    }
    next unless $rest =~ /^(\w+)\((.*)\)\s+=\s+(.*)$/s;
    my ($name, $args, $ret) = ($1, $2, $3);
    $tgid{$tid} //= $tid;
    handle($start, $tid, $name, $args, $ret);
}
close $fh;
unless ($exited) {
    print STDERR "fsync_rules: $trace: no exit of the traced process (a cut trace?)\n";
    exit 2;
}

print "$_\n" for @violations;
printf "fsync_rules: %d lines, %d record writes, %d record removals, %d renames, %d writes, "
    . "%d syncs: %d violation(s)\n", $count{lines}, $count{marks}, $count{removals},
    $count{renames}, $count{writes}, $count{syncs}, scalar @violations;
exit(@violations ? 1 : 0);
