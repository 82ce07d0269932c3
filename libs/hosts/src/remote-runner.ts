import { encodeFields, PATH_SCRIPT } from './path-ops.js';

/**
 * The long-lived command runner on the far end of a pooled SSH connection.
 *
 * A new SSH session costs sshd a fork and a shell (about 100 ms here); a
 * runner is started once per channel and then runs argument vectors sent to
 * it as frames, answering each with its exit code and output, so a command
 * costs one round trip and one fork on the server.
 *
 * The runner is Perl restricted to the modules of Debian's essential
 * `perl-base` (POSIX, IO::Select, Fcntl): present on every server without
 * installing anything. It never evaluates what it receives: arguments go to
 * `exec { $argv[0] } @argv`, which bypasses any shell.
 *
 * Frames, both ways: a 32-bit big-endian length, then fields that are each a
 * 32-bit big-endian length and that many bytes (Perl's `(N/a*)*`).
 * Request: id, timeout ms, cwd ('' for none), env pair count, the pairs,
 * argc, argv, has-input ('0'/'1'), input.
 * Reply: id, status (`exit` or `timeout`), exit code, stdout, stderr.
 *
 * A request whose timeout field is `become` turns the runner into the
 * command itself (exec, after a `became` reply whose stdout is the runner's
 * process group: the SSH session's, which sshd made for it), with the
 * channel as its stdin and stdout: a stream without the cost of a new SSH
 * session. Closing the channel does not stop such a command (it may not read
 * its input): the engine kills that process group instead.
 *
 * The command runs in its own session (process group); at its timeout, or
 * when the channel closes (the engine gave up or went away), the whole group
 * is killed.
 *
 * Builtins: an argv whose first element is empty (RUNNER_BUILTIN, which no
 * exec could take) names code the runner was started with, run in the child
 * it forks instead of an exec, with the same pipes, timeout and kill:
 * - `path`: PATH_SCRIPT's file operations (`['', 'path', op]`, fields on
 *   stdin), compiled once with the runner: an operation then costs a fork
 *   instead of a new perl, its start-up and its compile (about 14 ms of the
 *   server's CPU each, a few dozen per order).
 * - `perl`: `['', 'perl', script, ...args]` is `perl -e script args` (the
 *   executor sends every such command this way: runnerArgv in
 *   ssh-executor.adapter.ts): the script is compiled and run in the child
 *   as perl would run it (`@ARGV`, `-e` in its messages, a `die` exits as perl
 *   does, files flushed at its end) but without starting a perl or a
 *   global destruction at its exit, and with the modules scripts use
 *   (IO::Handle, which the stage scripts use, and File::Path: 10 to 15 ms
 *   each to load) loaded by the runner itself the first time a script
 *   names one. No runner
 *   lexical or sub is in the script's scope (the lexicals are declared
 *   after it, the subs live in package Runner).
 */
/** The first element of a builtin's argv (see RUNNER_SCRIPT). */
export const RUNNER_BUILTIN = '';

export const RUNNER_SCRIPT =
  `{ package PathOps; no warnings; our $EMBEDDED = 1;\n${PATH_SCRIPT}}\n` +
  String.raw`
# The builtin perl: a script as perl -e would run it. Compiled here, ahead of
# the runner's own lexicals: the script sees none of them.
sub Runner::perl_e {
  @ARGV = @_[1 .. $#_];
  # What the runner's own calls left in errno and $? is no business of the script's.
  ($!, $?) = (0, 0);
  # Its exit, and its end, are a fast exit (below).
  no warnings 'once';
  *CORE::GLOBAL::exit = sub { Runner::fast_exit(@_ ? $_[0] : 0) };
  Runner::fast_exit(0) if eval "#line 1 \"-e\"\n$_[0]\n;1";
  # As perl ends on a die: the message, then errno, else $? >> 8, else 255.
  my ($error, $errno, $status) = ($@, $! + 0, $? >> 8);
  print STDERR $error;
  Runner::fast_exit(($errno & 255) || ($status & 255) || 255);
}
# Ends a forked child without perl's global destruction of everything the
# runner compiled (about 6 ms of a server's CPU: it writes to pages the child
# shares with the runner). Every file open for output is flushed first: perl
# does that before any exec (perlfunc, exec), here one that fails at once
# (a directory); then _exit. Nothing the engine runs here needs an END
# block or a destructor at exit.
sub Runner::fast_exit {
  my ($code) = @_;
  { no warnings; exec { '/' } '/'; }
  POSIX::_exit($code);
}
# The runner's own subs stay out of main, where the builtin perl runs scripts.
package Runner;
use strict; use warnings;
use POSIX (); use IO::Select; use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
$SIG{PIPE} = 'IGNORE';
binmode STDIN; binmode STDOUT;
$ENV{PATH} = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
$ENV{LC_ALL} = 'C';
my $TICK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
sub now { my ($real) = POSIX::times(); return $real / $TICK; }
my $in = '';
sub frame {
  while (1) {
    if (length($in) >= 4) {
      my $n = unpack('N', $in);
      if (length($in) >= 4 + $n) { my $f = substr($in, 4, $n); substr($in, 0, 4 + $n) = ''; return $f; }
    }
    my $got = sysread(STDIN, $in, 65536, length $in);
    return undef unless $got;
  }
}
sub reply {
  my $p = pack('(N/a*)*', @_);
  my $out = pack('N', length $p) . $p;
  while (length $out) {
    my $w = syswrite(STDOUT, $out);
    exit 0 unless defined $w;
    substr($out, 0, $w) = '';
  }
}
while (defined(my $f = frame())) {
  my @f = unpack('(N/a*)*', $f);
  my ($id, $timeout, $cwd, $nenv) = splice(@f, 0, 4);
  my @env = splice(@f, 0, 2 * $nenv);
  my $argc = shift @f;
  my @argv = splice(@f, 0, $argc);
  my ($hasinput, $input) = @f;
  if ($timeout eq 'become') {
    # The runner becomes the command, on the channel's own stdin and stdout
    # (a stream: rsync's relay). Acknowledged first: the engine sends the
    # stream's bytes only after this reply, so none sit in the frame buffer.
    if (length $cwd && !chdir $cwd) { reply($id, 'exit', 126, '', "cannot change directory to $cwd: $!\n"); next; }
    while (@env) { my $k = shift @env; $ENV{$k} = shift @env; }
    reply($id, 'became', 0, getpgrp(), '');
    $SIG{PIPE} = 'DEFAULT';
    { no warnings 'exec'; exec { $argv[0] } @argv; }
    print STDERR "$argv[0]: $!\n";
    POSIX::_exit(127);
  }
  # The modules scripts use (10 to 15 ms each to load) are loaded here, by the runner,
  # the first time a script names one: the children it forks after have them (a runner starts without them).
  if ($argv[0] eq '' && ($argv[1] // '') eq 'perl' && defined $argv[2]) {
    # One that fails to load here is left to the script: its own "use" fails in the child, with perl's message, as perl -e would.
    for my $module ($argv[2] =~ /\buse\s+(IO::Handle|File::Path)\b/g) { (my $file = "$module.pm") =~ s{::}{/}g; eval { require $file }; }
  }
  pipe(my $cin, my $win) or die "pipe: $!";
  pipe(my $rout, my $cout) or die "pipe: $!";
  pipe(my $rerr, my $cerr) or die "pipe: $!";
  my $pid = fork();
  die "fork: $!" unless defined $pid;
  if ($pid == 0) {
    POSIX::setsid();
    open(STDIN, '<&', $cin) && open(STDOUT, '>&', $cout) && open(STDERR, '>&', $cerr) or POSIX::_exit(125);
    close $_ for ($cin, $win, $rout, $cout, $rerr, $cerr);
    if (length $cwd && !chdir $cwd) { print STDERR "cannot change directory to $cwd: $!\n"; POSIX::_exit(126); }
    while (@env) { my $k = shift @env; $ENV{$k} = shift @env; }
    if ($argv[0] eq '' && ($argv[1] // '') eq 'path') {
      @ARGV = @argv[2 .. $#argv];
      $PathOps::CHILD = 1;
      PathOps::path_main();
      PathOps::quit(0);
    }
    if ($argv[0] eq '' && ($argv[1] // '') eq 'perl' && @argv >= 3) { Runner::perl_e(@argv[2 .. $#argv]); }
    if ($argv[0] eq '') { print STDERR "no builtin " . ($argv[1] // '') . "\n"; POSIX::_exit(127); }
    { no warnings 'exec'; exec { $argv[0] } @argv; }
    print STDERR "$argv[0]: $!\n";
    POSIX::_exit(127);
  }
  close $cin; close $cout; close $cerr;
  my $deadline = now() + $timeout / 1000;
  my %buf = (fileno($rout) => '', fileno($rerr) => '');
  my $reads = IO::Select->new($rout, $rerr, \*STDIN);
  my $writes = IO::Select->new();
  my $pos = 0;
  if ($hasinput && length $input) {
    fcntl($win, F_SETFL, fcntl($win, F_GETFL, 0) | O_NONBLOCK);
    $writes->add($win);
  } else {
    close $win;
  }
  my $open = 2;
  my $status = 'exit';
  while ($open > 0) {
    my $left = $deadline - now();
    if ($left <= 0) { $status = 'timeout'; last; }
    my ($r, $w) = IO::Select->select($reads, $writes, undef, $left);
    for my $fh (@{ $r || [] }) {
      if (fileno($fh) == fileno(STDIN)) {
        my $got = sysread(STDIN, $in, 65536, length $in);
        if (!$got) { kill 'KILL', -$pid; waitpid($pid, 0); exit 0; }
        next;
      }
      my $n = sysread($fh, $buf{fileno($fh)}, 65536, length $buf{fileno($fh)});
      if (!$n) { $reads->remove($fh); $open--; }
    }
    for my $fh (@{ $w || [] }) {
      my $n = syswrite($win, $input, 65536, $pos);
      if (defined $n) { $pos += $n; }
      elsif (!$!{EAGAIN}) { $pos = length $input; }
      if ($pos >= length $input) { $writes->remove($win); close $win; }
    }
  }
  kill 'KILL', -$pid if $status eq 'timeout';
  waitpid($pid, 0);
  my $st = $?;
  my $code = $status eq 'timeout' ? -1 : ($st & 127) ? 128 + ($st & 127) : $st >> 8;
  reply($id, $status, $code, $buf{fileno($rout)}, $buf{fileno($rerr)});
}
`;

export interface RunnerRequest {
  id: number;
  /** `become`: the runner execs the command on the channel (see above). */
  timeoutMs: number | 'become';
  cwd?: string;
  env?: Record<string, string>;
  argv: readonly string[];
  input?: string | Buffer;
}

export interface RunnerReply {
  id: number;
  status: 'exit' | 'timeout' | 'became';
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
}

/** The fields, length-prefixed as the path script reads them too, in a frame of their own length. */
function fields(values: readonly (string | Buffer)[]): Buffer {
  const body = encodeFields(values);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
}

/** One request frame. */
export function encodeRequest(request: RunnerRequest): Buffer {
  const env = Object.entries(request.env ?? {});
  for (const value of [...request.argv, ...env.flat(), request.cwd ?? '']) {
    if (value.includes('\0')) throw new Error('an argument, variable or directory contains a NUL byte');
  }
  return fields([
    String(request.id),
    request.timeoutMs === 'become' ? 'become' : String(Math.max(1, Math.ceil(request.timeoutMs))),
    request.cwd ?? '',
    String(env.length),
    ...env.flat(),
    String(request.argv.length),
    ...request.argv,
    request.input === undefined ? '0' : '1',
    request.input ?? '',
  ]);
}

/**
 * Splits complete reply frames off the front of `buffer`; returns the
 * replies and what is left (an incomplete frame, or nothing).
 */
export function decodeReplies(buffer: Buffer): { replies: RunnerReply[]; rest: Buffer } {
  const replies: RunnerReply[] = [];
  let offset = 0;
  while (buffer.length - offset >= 4) {
    const length = buffer.readUInt32BE(offset);
    if (buffer.length - offset - 4 < length) break;
    const values: Buffer[] = [];
    let at = offset + 4;
    const end = at + length;
    while (at < end) {
      const n = buffer.readUInt32BE(at);
      values.push(buffer.subarray(at + 4, at + 4 + n));
      at += 4 + n;
    }
    if (values.length !== 5 || at !== end) throw new Error('the remote runner sent a malformed reply');
    const status = values[1]!.toString();
    if (status !== 'exit' && status !== 'timeout' && status !== 'became') throw new Error(`the remote runner sent an unknown status ${JSON.stringify(status)}`);
    replies.push({ id: Number(values[0]!.toString()), status, exitCode: Number(values[2]!.toString()), stdout: values[3]!, stderr: values[4]! });
    offset = end;
    // The runner is the command from here on: what follows is the command's own output, never a reply.
    if (status === 'became') break;
  }
  return { replies, rest: buffer.subarray(offset) };
}
