/**
 * The file operations of HostExecutor, as one constant Perl script run on the
 * server (`perl -e PATH_SCRIPT <op>`, data on stdin; over SSH the pooled
 * runner has it compiled in and runs an operation in a child it forks,
 * without a new interpreter: see remote-runner.ts): each operation resolves
 * its paths and acts in the same process, so nothing can change between a
 * check and its use.
 *
 * The safe walk: a path is given as a root (the operator's own directory:
 * entered as configured, symlinks there followed) and the components below
 * it. Each component is opened relative to the directory reached so far with
 * O_DIRECTORY|O_NOFOLLOW and entered with fchdir: opening a single name
 * without following it is atomic, so a tenant who swaps a directory for a
 * symlink (to /etc, or to another shop) makes the open fail with ELOOP instead
 * of leading it elsewhere; no lstat-then-open window exists to race. The
 * operation then acts on one name relative to the directory reached: files
 * created with O_EXCL|O_NOFOLLOW, owner and mode set on the open handle,
 * renamed within that directory, removals with `rm -rf` of that name (rm
 * never follows links), recursive owners with `chown -R -P` (never through a
 * link). A symlink as the last component is refused, except by `remove`
 * (which removes the link) and the link operations (which replace it).
 *
 * Perl restricted to Debian's essential perl-base, and only Fcntl (POSIX and
 * Errno cost 5 to 15 ms of start-up per call). Input: fields, each a 32-bit
 * big-endian length and that many bytes (Perl's `(N/a*)*`). On failure one
 * line `<kind>\t<why>\t<path>` goes to stderr; the exit code is 3 for an
 * unsafe path (a symlink, a bad component), 4 for "already exists", 1 else.
 */
export const PATH_SCRIPT = String.raw`
use strict;
use Fcntl qw(O_RDONLY O_WRONLY O_CREAT O_EXCL O_NOFOLLOW O_DIRECTORY O_NONBLOCK F_SETFD);
# The operation, its fields (stdin), the temporary names made: set by path_main for each run.
our ($OP, @F, $SEQ);

sub fail {
  my ($kind, $why, $path) = @_;
  $why =~ s/[\t\n]/ /g;
  print STDERR "$kind\t$why\t$path\n";
  quit($kind eq 'unsafe' ? 3 : $kind eq 'exists' ? 4 : 1);
}

# Ends the operation. In a child the runner forked (\$CHILD): the runner's
# fast exit (Runner::fast_exit in remote-runner.ts: output flushed, no global
# destruction of everything the runner compiled).
sub quit {
  my ($code) = @_;
  Runner::fast_exit($code) if our $CHILD;
  exit($code);
}

# A root, or the directory holding one: the operator's path, entered as configured.
sub enter_base {
  my ($base, $create) = @_;
  return if chdir($base);
  fail('error', "cannot enter: $!", $base) unless $create;
  my $at = '';
  for my $c (grep { length } split m{/}, $base) {
    $at .= "/$c";
    mkdir($at, 0755) or -d $at or fail('error', "cannot create: $!", $at);
  }
  chdir($base) or fail('error', "cannot enter: $!", $base);
}

# Opens and enters the directory $name of the current directory, never through
# a symlink. Undef when nothing is there.
sub enter {
  my ($name, $shown) = @_;
  if (sysopen(my $fh, $name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) {
    chdir($fh) or fail('error', "cannot enter: $!", $shown);
    return $fh;
  }
  my $err = "$!";
  return undef unless lstat($name);
  fail('unsafe', 'is a symlink', $shown) if -l _;
  fail('error', -d _ ? "cannot enter: $err" : 'is not a directory', $shown);
}

# Enters $base, then every component of $rel (all, or all but the last), never
# through a symlink, creating missing ones if asked. Returns the handle of the
# directory reached (undef when a component is missing), the last component
# (when not entered) and the path for messages. The cwd is the directory reached.
sub walk {
  my ($base, $rel, $create, $all) = @_;
  my @parts = length $rel ? split(m{/}, $rel, -1) : ();
  for (@parts) { fail('unsafe', 'has an empty, . or .. component', "$base/$rel") if $_ eq '' || $_ eq '.' || $_ eq '..'; }
  my $full = ($base eq '/' ? '' : $base) . (length $rel ? "/$rel" : '');
  my $last = $all ? undef : pop @parts;
  fail('unsafe', 'is a root itself', $base) if !$all && !defined $last;
  enter_base($base, $create);
  my $at = $base eq '/' ? '' : $base;
  my $fh;
  for my $c (@parts) {
    $at .= "/$c";
    $fh = enter($c, $at);
    next if $fh;
    return (undef, $last, $full) unless $create;
    mkdir($c, 0755) or do { my $e = "$!"; lstat($c) or fail('error', "cannot create: $e", $at) };
    $fh = enter($c, $at) or fail('error', 'vanished while being created', $at);
  }
  if (!$fh) { sysopen($fh, '.', O_RDONLY | O_DIRECTORY) or fail('error', "cannot open: $!", $at || '/'); }
  return ($fh, $last, $full || '/');
}

# An entry of the current directory, opened itself (never a link's target, no
# side effect on a FIFO): a file or a directory, the same one lstat saw. With
# $sole, a file with other hard links is refused: changing its owner or mode
# would change another path's (one a tenant linked to /etc/shadow, where the
# kernel's protected_hardlinks does not stop it).
sub open_entry {
  my ($name, $shown, $sole) = @_;
  my @l = lstat($name) or return undef;
  fail('unsafe', 'is a symlink', $shown) if -l _;
  fail('error', 'is not a file or a directory', $shown) unless -f _ || -d _;
  fail('unsafe', 'is a file with other hard links', $shown) if $sole && -f _ && $l[3] > 1;
  sysopen(my $fh, $name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) or fail('error', "cannot open: $!", $shown);
  my @s = stat($fh);
  fail('unsafe', 'changed while being opened', $shown) unless @s && $s[0] == $l[0] && $s[1] == $l[1];
  return $fh;
}

sub owner {
  my ($spec) = @_;
  return () unless length $spec;
  my ($u, $g) = split /:/, $spec, 2;
  my ($uid, $gid) = (-1, -1);
  if (length $u) { $uid = getpwnam($u); fail('error', "no user $u", $spec) unless defined $uid; }
  if (defined $g && length $g) { $gid = getgrnam($g); fail('error', "no group $g", $spec) unless defined $gid; }
  return ($uid, $gid);
}

sub temp_name { my ($name, $kind) = @_; return sprintf('.%s.%s-%x%06x%x', $name, $kind, $$, int(rand(0x1000000)), $SEQ++); }

# A new file beside $name in the current directory, never through a link.
sub create_exclusive {
  my ($name, $kind, $shown) = @_;
  for (1 .. 8) {
    my $temp = temp_name($name, $kind);
    if (sysopen(my $fh, $temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600)) { binmode $fh; return ($fh, $temp); }
    fail('error', "cannot create a file beside it: $!", $shown) unless lstat($temp);
  }
  fail('error', 'cannot find a free temporary name beside it', $shown);
}

sub write_all {
  my ($fh, $data) = @_;
  my $at = 0;
  while ($at < length $data) {
    my $n = syswrite($fh, $data, 1 << 20, $at);
    return 0 unless defined $n;
    $at += $n;
  }
  return 1;
}

sub run_tool {
  my @argv = @_;
  my $st = system { $argv[0] } @argv;
  return '' if $st == 0;
  return $st == -1 ? "cannot run $argv[0]: $!" : ($? & 127) ? "$argv[0] was killed by signal " . ($? & 127) : "$argv[0] exited " . ($? >> 8);
}

# Removes the entry $name of the current directory: a directory with rm -rf
# (which never follows links), anything else (a link too) with unlink.
sub remove_entry {
  my ($name, $shown) = @_;
  return unless lstat($name);
  if (-d _) { my $e = run_tool('rm', '-rf', '--one-file-system', '--', $name); fail('error', "cannot remove: $e", $shown) if $e; }
  else { unlink($name) or fail('error', "cannot remove: $!", $shown); }
}

# What a killed earlier run left beside the entries named in %$names:
# ".<name>.<kind>-<hex>" (and "<name>.lnk-<pid>" of earlier versions).
sub clear_stale {
  my ($kind, $names) = @_;
  opendir(my $dh, '.') or return;
  my @stale = grep { (/^\.(.+)\.\Q$kind\E-[0-9a-f]+$/s || ($kind eq 'lnk' && /^(.+)\.lnk-\d+$/s)) && $names->{$1} } readdir($dh);
  closedir($dh);
  remove_entry($_, $_) for @stale;
}

# One operation: \@ARGV holds its name, stdin its fields. Run at the end of this
# script, or by the runner (remote-runner.ts) in a child it forks, where this
# code was compiled once with the runner.
sub path_main {
binmode STDIN; binmode STDOUT;
umask 022;
$OP = shift @ARGV;
@F = do { local $/; my $raw = <STDIN>; defined $raw ? unpack('(N/a*)*', $raw) : () };
$SEQ = 0;
if ($OP eq 'write') {
  my ($base, $rel, $mode, $own, $content) = @F;
  my @owner = owner($own);
  my ($dir, $name, $shown) = walk($base, $rel, 0, 0);
  fail('error', 'its directory does not exist', $shown) unless $dir;
  clear_stale('tmp', { $name => 1 });
  my ($fh, $temp) = create_exclusive($name, 'tmp', $shown);
  # The owner before the mode: chown clears set-id bits.
  my $ok = write_all($fh, $content) && (!@owner || chown(@owner, $fh)) && chmod(oct $mode, $fh);
  my $err = "$!";
  if (!close($fh) && $ok) { $ok = 0; $err = "$!"; }
  if ($ok && !rename($temp, $name)) { $ok = 0; $err = "$!"; }
  if (!$ok) { unlink($temp); fail('error', "cannot write: $err", $shown); }
}
elsif ($OP eq 'read') {
  my ($base, $rel) = @F;
  my ($dir, $name, $shown) = walk($base, $rel, 0, 0);
  my $fh = ($dir && open_entry($name, $shown)) || fail('error', 'does not exist', $shown);
  fail('error', 'is not a file', $shown) unless -f $fh;
  while (1) {
    my $n = sysread($fh, my $buf, 1 << 20);
    fail('error', "cannot read: $!", $shown) unless defined $n;
    last unless $n;
    print STDOUT $buf;
  }
}
elsif ($OP eq 'exists') {
  my ($base, $rel) = @F;
  if (!length $rel) { print(-e $base ? '1' : '0'); }
  else { my ($dir, $name) = walk($base, $rel, 0, 0); print($dir && lstat($name) ? '1' : '0'); }
}
elsif ($OP eq 'check') {
  my ($base, $rel) = @F;
  if (length $rel && -e $base) { my ($dir, $name, $shown) = walk($base, $rel, 0, 0); fail('unsafe', 'is a symlink', $shown) if $dir && lstat($name) && -l _; }
}
elsif ($OP eq 'mkdirs') {
  my ($mode, $own, @paths) = @F;
  my @owner = owner($own);
  while (@paths) {
    my ($base, $rel) = splice(@paths, 0, 2);
    my ($dir, undef, $shown) = walk($base, $rel, 1, 1);
    (!@owner || chown(@owner, $dir)) && (!length $mode || chmod(oct $mode, $dir)) or fail('error', "cannot set its owner or mode: $!", $shown);
  }
}
elsif ($OP eq 'mkdirnew') {
  my ($base, $rel, $mode, $own, $has_marker, $marker, $content) = @F;
  my @owner = owner($own);
  my ($dir, $name, $shown) = walk($base, $rel, 0, 0);
  fail('error', 'its parent directory does not exist', $shown) unless $dir;
  mkdir($name, 0700) or do { my $e = "$!"; fail('exists', 'already exists', $shown) if lstat($name); fail('error', "cannot create: $e", $shown) };
  my $new = enter($name, $shown) || fail('error', 'vanished while being created', $shown);
  # Marker first, then owner and mode: until then the new directory is root's only.
  my $fh;
  my $ok = !$has_marker || (sysopen($fh, $marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644) && write_all($fh, $content) && close($fh));
  $ok &&= (!@owner || chown(@owner, $new)) && chmod(length $mode ? oct $mode : 0755, $new);
  if (!$ok) {
    my $e = "$!";
    unlink($marker) if $has_marker;
    chdir($dir) && rmdir($name);
    fail('error', "cannot finish it (removed again): $e", $shown);
  }
}
elsif ($OP eq 'symlinks') {
  # Groups: base, parent below it, count, then (name, target) pairs. Every parent
  # is reached before any link is made.
  my @groups;
  while (@F) {
    my ($base, $rel, $n) = splice(@F, 0, 3);
    my %links = splice(@F, 0, 2 * $n);
    my ($dir, undef, $shown) = walk($base, $rel, 0, 1);
    fail('error', 'does not exist', $shown) unless $dir;
    push @groups, [$base, $rel, \%links, @groups < 256 ? $dir : undef, $shown];
  }
  for my $g (@groups) {
    my ($base, $rel, $links, $dir, $shown) = @$g;
    if ($dir) { chdir($dir) or fail('error', "cannot enter: $!", $shown); }
    else { my ($again) = walk($base, $rel, 0, 1); fail('error', 'does not exist', $shown) unless $again; }
    clear_stale('lnk', $links);
    for my $name (sort keys %$links) {
      my $temp;
      for (1 .. 8) { $temp = temp_name($name, 'lnk'); last if symlink($links->{$name}, $temp); fail('error', "cannot create a link beside it: $!", "$shown/$name") unless lstat($temp); }
      rename($temp, $name) or do { my $e = "$!"; unlink($temp); fail('error', "cannot replace: $e", "$shown/$name") };
    }
  }
}
elsif ($OP eq 'remove') {
  while (@F) {
    my ($base, $rel) = splice(@F, 0, 2);
    my ($dir, $name, $shown) = walk($base, $rel, 0, 0);
    remove_entry($name, $shown) if $dir;
  }
}
elsif ($OP eq 'chown' || $OP eq 'chmod') {
  my ($what, $recursive, @paths) = @F;
  my @owner = $OP eq 'chown' ? owner($what) : ();
  while (@paths) {
    my ($base, $rel) = splice(@paths, 0, 2);
    my ($fh, $name, $shown) = walk($base, $rel, 0, !length $rel);
    $fh = open_entry($name, $shown, 1) if $fh && defined $name;
    fail('error', 'does not exist', $shown) unless $fh;
    if ($OP eq 'chmod') { chmod(oct $what, $fh) or fail('error', "cannot change its mode: $!", $shown); }
    elsif ($recursive && -d $fh) { my $e = run_tool('chown', '-R', '-P', '--', $what, $name // '.'); fail('error', "cannot change owners: $e", $shown) if $e; }
    else { chown(@owner, $fh) or fail('error', "cannot change its owner: $!", $shown); }
  }
}
elsif ($OP eq 'copy') {
  while (@F) {
    my ($fbase, $frel, $tbase, $trel) = splice(@F, 0, 4);
    my ($sdir, $sname, $from) = walk($fbase, $frel, 0, 0);
    my $src = ($sdir && open_entry($sname, $from)) || fail('error', 'does not exist', $from);
    my @st = stat($src);
    my ($ddir, $dname, $to) = walk($tbase, $trel, 1, 0);
    clear_stale('cp', { $dname => 1 });
    my $temp;
    if (-d $src) {
      # Copied into a new directory of ours, entered (so cp works inside it, not
      # through a name the tenant could swap), from the source handle itself.
      for (1 .. 8) { $temp = temp_name($dname, 'cp'); last if mkdir($temp, 0700); fail('error', "cannot create a directory beside it: $!", $to) unless lstat($temp); }
      my $in = enter($temp, "$to (copy)") || fail('error', 'vanished while being created', "$to (copy)");
      fcntl($src, F_SETFD, 0) or fail('error', "cannot pass the source on: $!", $from);
      my $e = run_tool('cp', '-a', '-T', '--', '/proc/self/fd/' . fileno($src) . '/.', '.');
      chdir($ddir) or fail('error', "cannot enter: $!", $to);
      if ($e) { remove_entry($temp, $to); fail('error', "cannot copy: $e", $to); }
    } else {
      chdir($ddir) or fail('error', "cannot enter: $!", $to);
      my ($out, $t) = create_exclusive($dname, 'cp', $to);
      $temp = $t;
      my $ok = 1;
      while (1) {
        my $n = sysread($src, my $buf, 1 << 20);
        if (!defined $n) { $ok = 0; last; }
        last unless $n;
        if (!write_all($out, $buf)) { $ok = 0; last; }
      }
      # As cp -a: the owner kept when the engine may (root), mode and times always.
      $ok &&= (chown($st[4], $st[5], $out) || $> != 0) && chmod($st[2] & 07777, $out) && utime($st[8], $st[9], $out);
      my $e = "$!";
      $ok = close($out) && $ok;
      if (!$ok) { unlink($temp); fail('error', "cannot copy: $e", $to); }
    }
    # What was there goes (a directory cannot be renamed over); the copy takes its place.
    remove_entry($dname, $to);
    rename($temp, $dname) or do { my $e = "$!"; remove_entry($temp, $to); fail('error', "cannot put in place: $e", $to) };
  }
}
else {
  fail('error', 'unknown operation', $OP);
}
}
path_main() unless our $EMBEDDED;
`;

/** Exit codes of PATH_SCRIPT. */
export const PATH_UNSAFE = 3;
export const PATH_EXISTS = 4;

/** Fields for PATH_SCRIPT's stdin: each a 32-bit big-endian length and its bytes. */
export function encodeFields(values: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [];
  for (const value of values) {
    const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

/** The `<kind>\t<why>\t<path>` line PATH_SCRIPT printed last, if any. */
export function pathFailure(stderr: string): { kind: 'unsafe' | 'exists' | 'error'; why: string; path: string } | null {
  const lines = stderr.split('\n').filter((l) => /^(unsafe|exists|error)\t[^\t]*\t/.test(l));
  const last = lines[lines.length - 1];
  if (!last) return null;
  const [kind, why, ...path] = last.split('\t');
  return { kind: kind as 'unsafe' | 'exists' | 'error', why: why!, path: path.join('\t') };
}
